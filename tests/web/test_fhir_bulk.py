"""Bulk Data export: kick-off, status (202 with progress, 200 manifest), NDJSON files that pass
fhircheck, _type/_since filters, Patient and Group scopes, cancellation, and the background thread."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from intake.core.fhir_time import utcnow
from intake.fhir import bulk_export
from intake.services import services
from intake.storage import fhir_store
from intake.storage.db import session_scope
from tests.conftest import AppFactory
from tests.fhircheck import fhircheck
from tests.web.flow import EMERGENCY, complete_intake
from tests.web.test_fhir_api import Api, assert_outcome, new_token, patient_of

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def eager_app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def api(eager_app: Flask) -> Api:
    return Api(eager_app.test_client(), new_token(eager_app))


@pytest.fixture
def intakes(eager_app: Flask) -> tuple[str, str]:
    return complete_intake(eager_app, EMERGENCY)[1], complete_intake(eager_app, {}, birth_date="1980-01-01")[1]


def kickoff(api: Api, path: str) -> str:
    response = api.get(path, headers=ASYNC)
    assert response.status_code == 202, response.text
    return str(response.headers["Content-Location"])


def local(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def finished(api: Api, status_url: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(local(status_url))
        if response.status_code == 200:
            return json.loads(response.data)
        assert response.status_code == 202 and response.headers["X-Progress"]
        assert time.monotonic() < deadline, "export did not finish"
        time.sleep(0.05)


def download(api: Api, manifest: dict[str, Any], folder: Path) -> dict[str, list[dict[str, Any]]]:
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        response = api.get(local(item["url"]))
        assert response.status_code == 200 and response.content_type.startswith("application/fhir+ndjson")
        lines = response.data.decode().splitlines()
        response.close()  # send_file's handle
        assert len(lines) == item["count"]
        (folder / f"{item['type']}.ndjson").write_bytes(response.data)
        out[item["type"]] = [json.loads(line) for line in lines]
        assert {r["resourceType"] for r in out[item["type"]]} == {item["type"]}
    return out


def test_system_export_writes_ndjson_per_type_that_passes_fhircheck(api: Api, intakes: tuple[str, str],
                                                                   tmp_path: Path) -> None:
    manifest = finished(api, kickoff(api, "/fhir/$export"))
    assert manifest["requiresAccessToken"] is True and manifest["request"].endswith("/fhir/$export")
    files = download(api, manifest, tmp_path / "ndjson")
    assert set(files) == {"Questionnaire", "Patient", "QuestionnaireResponse", "Observation", "Flag", "Provenance",
                          "DocumentReference"}
    assert len(files["Patient"]) == 2 and len(files["QuestionnaireResponse"]) == 10
    assert "0 failed" in fhircheck(tmp_path / "ndjson")
    # Files need the token too.
    assert api.client.get(local(manifest["output"][0]["url"])).status_code == 401


def test_type_and_since_filter_and_bad_kickoffs_are_refused(api: Api, intakes: tuple[str, str], tmp_path: Path) -> None:
    manifest = finished(
        api, kickoff(api, "/fhir/$export?_type=Observation,Flag&_outputFormat=application/fhir%2Bndjson")
    )
    assert {o["type"] for o in manifest["output"]} == {"Observation", "Flag"}
    later = finished(api, kickoff(api, "/fhir/$export?_since=2999-01-01T00:00:00Z"))
    assert later["output"] == []
    assert_outcome(api.get("/fhir/$export"), 400, "invalid")  # no Prefer: respond-async
    for query, code in [("_type=Medication", "invalid"), ("_outputFormat=text/csv", "not-supported"),
                        ("_since=yesterday", "invalid"), ("_typeFilter=x", "not-supported"), ("_type=", "invalid")]:
        assert_outcome(api.get(f"/fhir/$export?{query}", headers=ASYNC), 400, code)


def test_patient_and_group_exports_are_scoped(
    eager_app: Flask, api: Api, intakes: tuple[str, str], tmp_path: Path
) -> None:
    patients = finished(api, kickoff(api, "/fhir/Patient/$export"))
    assert "Questionnaire" not in {o["type"] for o in patients["output"]}
    flagged, plain = intakes
    member = patient_of(eager_app, plain)
    result = eager_app.test_cli_runner().invoke(args=["intake", "group", "tuesday", "--name", "Tuesday list",
                                                      "--patient", member])
    assert result.exit_code == 0, result.output
    files = download(api, finished(api, kickoff(api, "/fhir/Group/tuesday/$export")), tmp_path / "group")
    assert [p["id"] for p in files["Patient"]] == [member]
    assert {r["subject"]["reference"] for r in files["QuestionnaireResponse"]} == {f"Patient/{member}"}
    assert patient_of(eager_app, flagged) not in json.dumps(files)
    assert api.json("/fhir/Group/tuesday")["quantity"] == 1
    assert_outcome(api.get("/fhir/Group/nope/$export", headers=ASYNC), 404)
    bad = eager_app.test_cli_runner().invoke(args=["intake", "group", "x", "--name", "n", "--patient", "nobody"])
    assert bad.exit_code == 1 and "no patient" in bad.output


def test_status_is_202_with_progress_until_done_and_delete_cancels(eager_app: Flask, api: Api) -> None:
    with session_scope(services(eager_app).sessions) as session:
        job = fhir_store.create_export(session, request_url="http://x/fhir/$export", scope="system", group_id=None,
                                       types=["Patient"], since=None, now=utcnow(), requested_by="ehr",
                                       expires_at=utcnow() + timedelta(hours=1))
        job_id = job.id
    status = api.get(f"/fhir/$export-status/{job_id}")
    assert status.status_code == 202 and status.headers["X-Progress"] == "accepted" and status.headers["Retry-After"]
    assert api.client.delete(f"/fhir/$export-status/{job_id}", headers=api.headers).status_code == 202
    assert_outcome(api.get(f"/fhir/$export-status/{job_id}"), 404)
    bulk_export.run_job(eager_app, job_id=job_id)  # a cancelled job never runs
    assert not bulk_export.export_dir(eager_app, job_id).exists()
    assert_outcome(api.client.delete("/fhir/$export-status/nope", headers=api.headers), 404)


def test_cancelling_mid_run_removes_the_files(eager_app: Flask, api: Api, intakes: tuple[str, str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_export, "BATCH", 1)

    def cancel_now(app: Flask, job_id: str) -> bool:
        with session_scope(services(app).sessions) as session:
            bulk_export.cancel(app, session, job_id)
        return True

    monkeypatch.setattr(bulk_export, "_cancelled", cancel_now)
    status_url = kickoff(api, "/fhir/$export?_type=Observation")
    job_id = status_url.rsplit("/", 1)[1]
    assert_outcome(api.get(local(status_url)), 404)
    assert not bulk_export.export_dir(eager_app, job_id).exists()


def test_the_background_thread_runs_the_export(make_app: AppFactory) -> None:
    app = make_app(INTAKE_JOBS="thread")
    complete_intake(app, {})
    api = Api(app.test_client(), new_token(app))
    manifest = finished(api, kickoff(api, "/fhir/$export?_type=Patient"))
    assert manifest["output"][0]["count"] == 1


def test_jobs_belong_to_the_client_that_started_them_and_need_read_scopes(eager_app: Flask, api: Api,
                                                                         intakes: tuple[str, str]) -> None:
    status_url = kickoff(api, "/fhir/$export?_type=Patient")
    manifest = finished(api, status_url)
    other = Api(eager_app.test_client(), new_token(eager_app, "other"))
    assert_outcome(other.get(local(status_url)), 404)
    assert_outcome(other.get(local(manifest["output"][0]["url"])), 404)
    assert_outcome(other.client.delete(local(status_url), headers=other.headers), 404)
    narrow = Api(eager_app.test_client(), new_token(eager_app, "narrow", ("system/Observation.read",)))
    assert_outcome(narrow.get("/fhir/$export", headers=ASYNC), 403, "forbidden")
    assert narrow.get("/fhir/$export?_type=Observation", headers=ASYNC).status_code == 202


# --- expiry and the per-client limit --------------------------------------------------------------


def job_id_of(status_url: str) -> str:
    return status_url.rsplit("/", 1)[1]


def set_expiry(app: Flask, job_id: str, delta: timedelta) -> None:
    """Move the job's expiry to now + delta (negative: its time is up)."""
    with session_scope(services(app).sessions) as session:
        assert fhir_store.update_export(session, job_id, only_if=("completed",), expires_at=utcnow() + delta)


def test_export_files_expire_then_answer_404_and_are_deleted(
    eager_app: Flask, api: Api, intakes: tuple[str, str]
) -> None:
    status_url = kickoff(api, "/fhir/$export?_type=Patient,Observation")
    response = api.get(local(status_url))
    assert response.status_code == 200
    expires = parsedate_to_datetime(response.headers["Expires"])  # the default: 24 h after it completed
    assert abs(expires - (utcnow() + timedelta(hours=24))) < timedelta(minutes=1)
    manifest = json.loads(response.data)
    job_id = job_id_of(status_url)
    folder = bulk_export.export_dir(eager_app, job_id)
    assert sorted(p.name for p in folder.iterdir()) == ["Observation.ndjson", "Patient.ndjson"]
    leftover = bulk_export.export_dir(eager_app, "from-a-process-that-died")
    leftover.mkdir()
    (leftover / "Patient.ndjson").write_text("{}\n")

    set_expiry(eager_app, job_id, -timedelta(seconds=1))
    assert "expired" in assert_outcome(api.get(local(status_url)), 404, "not-found")["issue"][0]["diagnostics"]
    for item in manifest["output"]:
        assert_outcome(api.get(local(item["url"])), 404, "not-found")
    assert bulk_export.expire(eager_app) == 1  # the periodic job
    assert not folder.exists() and not leftover.exists()
    with services(eager_app).sessions() as session:
        assert fhir_store.get_export(session, job_id) is None
    assert_outcome(api.get(local(status_url)), 404, "not-found")


def test_expiry_runs_from_start_up_without_a_request(eager_app: Flask, api: Api, intakes: tuple[str, str],
                                                     make_app: AppFactory) -> None:
    """The in-process poller deletes expired exports on its own (here: its first round at start)."""
    job_id = job_id_of(kickoff(api, "/fhir/$export?_type=Patient"))
    set_expiry(eager_app, job_id, -timedelta(seconds=1))
    folder = bulk_export.export_dir(eager_app, job_id)
    assert folder.exists()
    make_app(INSTANCE_PATH=eager_app.instance_path, INTAKE_JOBS="thread", INTAKE_OUTBOX_POLLER="on")
    deadline = time.monotonic() + 20
    while folder.exists():
        assert time.monotonic() < deadline, "the poller did not delete the expired export"
        time.sleep(0.05)


def test_a_client_holds_a_bounded_number_of_exports_and_delete_frees_one(eager_app: Flask, api: Api,
                                                                        intakes: tuple[str, str]) -> None:
    held = [kickoff(api, "/fhir/$export?_type=Patient") for _ in range(3)]  # INTAKE_BULK_EXPORT_MAX_JOBS_PER_CLIENT
    refused = api.get("/fhir/$export?_type=Patient", headers=ASYNC)
    assert "DELETE" in assert_outcome(refused, 429, "throttled")["issue"][0]["diagnostics"]
    retry_after = int(refused.headers["Retry-After"])  # when the first held job expires
    assert 23 * 3600 < retry_after <= 24 * 3600
    other = Api(eager_app.test_client(), new_token(eager_app, "other"))
    assert other.get("/fhir/$export?_type=Patient", headers=ASYNC).status_code == 202  # per client

    first = job_id_of(held[0])
    assert api.client.delete(local(held[0]), headers=api.headers).status_code == 202  # the spec's DELETE
    assert not bulk_export.export_dir(eager_app, first).exists()
    assert_outcome(api.get(local(held[0])), 404)
    with services(eager_app).sessions() as session:
        assert fhir_store.get_export(session, first) is None  # a finished job is deleted at once
    again = kickoff(api, "/fhir/$export?_type=Patient")
    assert_outcome(api.get("/fhir/$export?_type=Patient", headers=ASYNC), 429)
    set_expiry(eager_app, job_id_of(again), -timedelta(seconds=1))  # an expired job holds no slot
    assert api.get("/fhir/$export?_type=Patient", headers=ASYNC).status_code == 202


def test_concurrent_kickoffs_do_not_exceed_the_bound(eager_app: Flask, api: Api) -> None:
    def kick(_: int) -> int:
        return int(Api(eager_app.test_client(), api.headers["Authorization"].split()[1])
                   .get("/fhir/$export?_type=Patient", headers=ASYNC).status_code)

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = sorted(pool.map(kick, range(6)))
    assert statuses == [202, 202, 202, 429, 429, 429]
