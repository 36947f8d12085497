"""EHR push to a FHIR engine nobody here wrote: Medplum's router (../shared/reference-ehr) started
by the test, stock and with Medplum's server rules (UUID ids, no create-by-update), in both push
modes. Intakes are completed over the web pages and pushed by the real outbox job (in-process,
eager); the EHR's own store is then inspected."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from intake import close_app, create_app
from intake.config import MRN_SYSTEM
from intake.core import extract
from intake.fhir import ehr_push
from intake.services import services
from intake.storage import outbox_store
from intake.storage import responses as response_store
from intake.storage.models import Intake
from tests.support.reference_ehr import ReferenceEhr, reference_ehr
from tests.web.conftest import csrf
from tests.web.flow import EMERGENCY, HIGH_PHQ4, fill_all, first_page

MRN = "AB+12&3 x#y%z ñ"  # + & # % space and non-ASCII: each breaks an unencoded conditional URL


def make_app(database_url: str, tmp_path: Path, ehr: ReferenceEhr, **config: Any) -> Flask:
    return create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "i"), "SECRET_KEY": "t",
                       "TESTING": True, "INTAKE_JOBS": "eager", "INTAKE_EHR_FHIR_BASE": ehr.base_url,
                       "INTAKE_EHR_BEARER_TOKEN": ehr.token, "INTAKE_EHR_TIMEOUT_SECONDS": 10.0, **config})


def complete(app: Flask, overrides: dict[str, Any], *, mrn: str | None = None, patient: str | None = None,
             questionnaires: str | None = None) -> str:
    """Invite (a new patient with a record number, or a follow-up of `patient`), answer every page
    (defaults + `overrides`), submit; the intake's id. The push runs as the submit's outbox job."""
    args = ["intake", "invite", *(["--patient", patient] if patient else
                                  ["--name", "Ana Díaz", "--birth-date", "1960-05-01"])]
    if mrn:
        args += ["--mrn", mrn]
    if questionnaires:
        args += ["--questionnaires", questionnaires]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    client = app.test_client()
    client.get("/i/" + result.output.strip().rsplit("/i/", 1)[1])
    fill_all(client, app, first_page(client), overrides)
    review = client.get("/intake/review")
    assert client.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302
    with services(app).sessions() as session:
        return str(session.scalars(select(Intake.id).order_by(Intake.completed_at.desc())).first())


def references(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [v for k, v in value.items() if k == "reference" and isinstance(v, str)] + [
            r for k, v in value.items() if k != "reference" for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def dead_letters(app: Flask) -> list[str]:
    with services(app).sessions() as session:
        return [f"{r.kind}: {r.last_error}" for r in outbox_store.rows(session) if r.state != "done"]


def completed_responses(app: Flask, intake_ids: list[str]) -> int:
    with services(app).sessions() as session:
        return sum(1 for i in intake_ids for r in response_store.list_responses(session, i) if r.status == "completed")


@pytest.fixture
def ehr(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReferenceEhr]:
    with reference_ehr(tmp_path, rules=request.param == "medplum-rules") as server:
        yield server


# Each case starts the EHR (its in-memory store does not roll back, so counts need a fresh one)
# and completes and pushes two intakes: about 10 s on an idle machine. The stock engine in
# sequence mode adds least (the rules are the stricter server), so it runs with the long tests.
@pytest.mark.parametrize(("ehr", "mode"), [
    ("stock", "transaction"), ("medplum-rules", "transaction"), ("medplum-rules", "sequence"),
    pytest.param("stock", "sequence", marks=pytest.mark.long),
], indirect=["ehr"])
def test_intakes_and_a_follow_up_arrive_whole_under_one_patient(
        database_url: str, tmp_path: Path, ehr: ReferenceEhr, mode: str) -> None:
    app = make_app(database_url, tmp_path, ehr, INTAKE_EHR_PUSH_MODE=mode)
    try:
        first = complete(app, {**EMERGENCY, **HIGH_PHQ4}, mrn=MRN)  # flags, and the PHQ-9/GAD-7 reflexes
        with services(app).sessions() as session:
            patient = session.get(Intake, first).patient_id
        follow_up = complete(app, HIGH_PHQ4, patient=patient, questionnaires="stress")  # reflexes again
        assert dead_letters(app) == []
        stats = ehr.stats()
        assert stats["Patient"] == 1, stats
        assert stats["QuestionnaireResponse"] == completed_responses(app, [first, follow_up])
        assert stats["Provenance"] == 2 and stats["DocumentReference"] == 2
        assert stats["Flag"] >= 2 and stats["Observation"] >= 8
        dump = ehr.dump()
        stored = {f"{t}/{r['id']}" for t, resources in dump.items() for r in resources}
        dangling = [r for r in references(dump) if r not in stored]
        assert dangling == []  # every reference points at what the EHR holds (no urn:uuid, no ?search)
        [ehr_patient] = dump["Patient"]
        assert any(i["value"] == MRN for i in ehr_patient["identifier"])
        assert {r["subject"]["reference"] for r in dump["QuestionnaireResponse"]} == {f"Patient/{ehr_patient['id']}"}
        provenance_tags = [r["meta"]["tag"][0]["code"] for r in dump["Provenance"]]
        assert len(set(provenance_tags)) == 2
        found = ehr.search("Patient?" + extract.conditional_query(MRN_SYSTEM, MRN))
        assert found.get("total", len(found.get("entry") or [])) == 1

        before = ehr.stats()
        ehr_push.push_job(app, first)  # a repeat (a worker died before settling the row)
        assert ehr.stats() == before
        logged = ehr.requests()
        assert logged and not [r for r in logged if r["status"] >= 400]
        assert not [r for r in logged if r["method"] == "PUT" and "?" not in r["path"]]  # no create-by-PUT
        if mode == "sequence":
            assert not [r for r in logged if r["path"].rstrip("/") == "/fhir"]  # no Bundle at all
    finally:
        close_app(app)


@pytest.mark.parametrize("ehr", ["stock"], indirect=True)
def test_a_refused_push_is_a_dead_letter_with_the_ehrs_own_words(
        database_url: str, tmp_path: Path, ehr: ReferenceEhr, caplog: pytest.LogCaptureFixture) -> None:
    """Configured past Medplum's cap (8 entries once any entry is conditional), the first
    transaction is refused: the row says what Medplum said, the log only the status and step."""
    app = make_app(database_url, tmp_path, ehr, INTAKE_EHR_MAX_ENTRIES=50)
    try:
        with caplog.at_level(logging.WARNING):
            intake_id = complete(app, EMERGENCY, mrn=MRN)
        with services(app).sessions() as session:
            [row] = [r for r in outbox_store.rows(session, subject=intake_id) if r.kind == "ehr_push"]
        assert row.state == "dead" and row.last_error is not None
        assert re.match(r"HTTP 400 \(invalid\) on request 1 of \d+ \(20: Patient, ", row.last_error)
        assert row.last_error.endswith(": Transaction requires strict isolation but has too many entries")
        assert "HTTP 400 (invalid) on request 1 of " in caplog.text and "strict isolation" not in caplog.text
        assert MRN not in caplog.text
    finally:
        close_app(app)
