"""EHR push against a real FHIR receiver on 127.0.0.1 (tests/support/fhir_receiver.py) that can fail
on command: delivery once, repeats harmless, retries of 5xx/429/timeouts/refusals with backoff and
Retry-After, dead letters for 4xx only, and an outage followed by recovery."""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from flask import Flask

from intake import create_app
from intake.core import extract
from intake.fhir import ehr_push, publish
from intake.jobs import outbox
from intake.jobs.errors import Permanent
from intake.services import services
from intake.storage import audit_log, outbox_store
from intake.storage.models import OutboxRecord
from tests.conftest import AppFactory, app_config
from tests.fhircheck import fhircheck
from tests.support.clock import ManualClock
from tests.support.fhir_receiver import FhirReceiver, outcome
from tests.web.conftest import csrf, invite_link
from tests.web.flow import EMERGENCY, HIGH_PHQ4, complete_intake, fill_all, first_page, signed_in

TOKEN = "ehr-secret-token"


@pytest.fixture
def receiver() -> Iterator[FhirReceiver]:
    with FhirReceiver() as server:
        yield server


def ehr_settings(receiver: FhirReceiver) -> dict[str, Any]:
    """The EHR to push to: the receiver of this test, with a short timeout."""
    return {"INTAKE_EHR_FHIR_BASE": receiver.base_url, "INTAKE_EHR_BEARER_TOKEN": TOKEN,
            "INTAKE_EHR_TIMEOUT_SECONDS": 2.0}


def app_for(database_url: str, tmp_path: Path, receiver: FhirReceiver, **config: Any) -> Flask:
    """An app pushing to `receiver` that the caller closes (for tests that manage the app
    themselves; others use the `make_app` fixture)."""
    return create_app(app_config(database_url, tmp_path / "i", **{**ehr_settings(receiver), **config}))


@pytest.fixture
def app(make_app: AppFactory, receiver: FhirReceiver) -> Flask:
    return make_app(**ehr_settings(receiver))


def submit_short_intake(app: Flask, name: str = "Test Patient") -> str:
    """A patient completes a one-questionnaire intake over the web pages; its id."""
    client = app.test_client()
    assert client.get(invite_link(app, name=name, questionnaires="stress")).status_code == 302
    fill_all(client, app, first_page(client))
    review = client.get("/intake/review")
    assert client.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302
    with services(app).sessions() as session:
        return (
            session.query(OutboxRecord.subject).filter_by(kind="render_pdf").order_by(OutboxRecord.id.desc()).first()[0]
        )


def rows_of(app: Flask, intake_id: str) -> dict[str, OutboxRecord]:
    with services(app).sessions() as session:
        return {r.kind: r for r in outbox_store.rows(session, subject=intake_id)}


def pushes(receiver: FhirReceiver) -> list[Any]:
    return [r for r in receiver.requests if r.method == "POST"]


def test_a_completed_intake_arrives_once_with_its_pdf_and_a_repeat_creates_nothing(
        app: Flask, receiver: FhirReceiver) -> None:
    intake_id = submit_short_intake(app)
    rows = rows_of(app, intake_id)
    assert {k: r.state for k, r in rows.items()} == {"render_pdf": "done", "ehr_push": "done"}
    assert rows["ehr_push"].after_id == rows["render_pdf"].id  # the PDF first, so the Bundle carries it
    [push] = pushes(receiver)
    assert push.status == 200 and push.headers["authorization"] == f"Bearer {TOKEN}"
    assert push.headers["content-type"] == "application/fhir+json"
    kinds = sorted({e["resource"]["resourceType"] for e in push.bundle["entry"]})
    assert {"Patient", "QuestionnaireResponse", "Observation", "DocumentReference", "Provenance"} <= set(kinds)
    ehr_push.push_job(app, intake_id)  # the same push again (a worker died before settling the row)
    assert len(pushes(receiver)) == 2 and receiver.transactions_ok == 2
    counts = receiver.created_counts()
    assert counts and set(counts.values()) == {1}  # every resource created exactly once
    with services(app).sessions() as session:
        exports = [r for r in audit_log.records(session) if r.action == "export" and r.actor == "ehr-push"]
    assert len(exports) == 2 and f"Intake/{intake_id}" in exports[0].entities


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (500, None), (429, "7"), (408, None)])
def test_transient_answers_are_retried_later(
    app: Flask, receiver: FhirReceiver, status: int, retry_after: str | None
) -> None:
    receiver.fail_next(status, retry_after=retry_after)
    before = datetime.now(UTC)
    intake_id = submit_short_intake(app)
    push = rows_of(app, intake_id)["ehr_push"]
    assert (push.state, push.attempts) == ("pending", 1)
    assert push.last_error is not None and push.last_error.startswith(f"HTTP {status}")
    # Measured from when the failure was settled (`updated_at`), not from the submit: a loaded
    # machine may take seconds to render the PDF that runs first.
    assert push.updated_at >= before
    wait = (push.due_at - push.updated_at).total_seconds()
    if retry_after:
        assert 6.9 <= wait <= 7 + 1  # exactly Retry-After from when the answer came
    else:
        assert 0.9 <= wait <= 2 + 1  # the first backoff step: 1-2 s
    assert outbox.dispatch(app, now=push.due_at) == 1
    assert rows_of(app, intake_id)["ehr_push"].state == "done"
    assert [r.status for r in pushes(receiver)] == [status, 200]


def test_refused_connections_and_timeouts_are_retried(app: Flask, receiver: FhirReceiver) -> None:
    receiver.outage()
    intake_id = submit_short_intake(app)
    assert rows_of(app, intake_id)["ehr_push"].last_error == "ConnectionRefusedError"
    receiver.recover()
    receiver.delay(3)  # longer than INTAKE_EHR_TIMEOUT_SECONDS
    due = rows_of(app, intake_id)["ehr_push"].due_at
    outbox.dispatch(app, now=due)
    push = rows_of(app, intake_id)["ehr_push"]
    assert (push.state, push.attempts, push.last_error) == ("pending", 2, "TimeoutError")
    receiver.delay(0)
    outbox.dispatch(app, now=push.due_at)
    assert rows_of(app, intake_id)["ehr_push"].state == "done"


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
def test_a_4xx_is_a_dead_letter_shown_to_admins_and_re_drivable(
    app: Flask, receiver: FhirReceiver, status: int
) -> None:
    receiver.fail_next(status)
    intake_id = submit_short_intake(app)
    push = rows_of(app, intake_id)["ehr_push"]
    assert (push.state, push.attempts) == ("dead", 1) and push.last_error.startswith(f"HTTP {status}")
    admin = signed_in(app, "admin")
    page = admin.get("/admin/outbox").text
    assert intake_id in page and f"HTTP {status}" in page
    assert admin.post("/admin/outbox/retry", data={"row": str(push.id), "csrf_token": csrf(page)}).status_code == 302
    assert rows_of(app, intake_id)["ehr_push"].state == "done"
    assert [r.status for r in pushes(receiver)] == [status, 200]


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    assert ehr_push.retry_after_seconds("120") == 120
    assert ehr_push.retry_after_seconds("Thu, 03 Dec 2026 09:01:30 GMT", now=now) == 90
    assert ehr_push.retry_after_seconds("Thu, 03 Dec 2026 08:00:00 GMT", now=now) == 0
    assert ehr_push.retry_after_seconds("99999999") == ehr_push.MAX_RETRY_AFTER_S
    assert ehr_push.retry_after_seconds("soon") is None and ehr_push.retry_after_seconds(None) is None


TICK_S = 0.1  # how often the outage test dispatches, in virtual seconds


def _outage_then_recovery(make_app: AppFactory, receiver: FhirReceiver, outage_s: float) -> None:
    """Intakes completed during an EHR outage (503 to everything) are all delivered after it, each
    after attempts whose gaps grow (the backoff), and only the one the EHR refuses is dead.

    On a virtual clock (`ManualClock`): the test moves time on by TICK_S and dispatches, as the
    poller would, so each retry comes at the first tick after its due time, whatever the load."""
    clock = ManualClock()
    app = make_app(clock=clock, **ehr_settings(receiver), INTAKE_OUTBOX_BACKOFF_SECONDS=0.5,
                   INTAKE_OUTBOX_BACKOFF_MAX_SECONDS=outage_s / 3, INTAKE_OUTBOX_MAX_ATTEMPTS=50)
    attempts: dict[str, list[float]] = {}  # intake id -> virtual seconds of each push
    handlers = services(app).outbox_handlers
    push = handlers[outbox.EHR_PUSH]

    def timed_push(app: Flask, intake_id: str) -> None:
        attempts.setdefault(intake_id, []).append(clock.elapsed)
        push(app, intake_id)

    handlers[outbox.EHR_PUSH] = timed_push
    receiver.outage(mode="503")
    receiver.reject_when(lambda bundle: 422 if "Refused" in json.dumps(bundle) else None)
    names = [f"Patient {n}" for n in "ABCD"] + ["Refused Patient"]
    ids = [submit_short_intake(app, name=name) for name in names]  # all at virtual time 0
    while clock.elapsed < outage_s:
        clock.advance(TICK_S)
        outbox.dispatch(app)
    receiver.recover()
    while clock.elapsed < outage_s + outage_s / 3 + 1:  # the longest wait is one capped step
        clock.advance(TICK_S)
        outbox.dispatch(app)
        with services(app).sessions() as session:
            if not outbox_store.rows(session, states=("pending", "queued")):
                break
    states = {i: rows_of(app, i)["ehr_push"] for i in ids}
    assert {i: r.state for i, r in states.items()} == {**{i: "done" for i in ids[:-1]}, ids[-1]: "dead"}
    assert states[ids[-1]].last_error.startswith("HTTP 422")
    assert receiver.transactions_ok == 4 and set(receiver.created_counts().values()) == {1}
    assert sum(map(len, attempts.values())) == len(pushes(receiver))  # each attempt was a real POST
    for intake_id in ids[:-1]:
        gaps = [b - a for a, b in itertools.pairwise(attempts[intake_id])]
        assert len(gaps) >= 3, gaps
        assert attempts[intake_id][-1] >= outage_s  # delivered only after the outage
        # Attempt n+1 comes a backoff step after attempt n: not before half the step (the jitter's
        # floor), and at most one tick after the whole step.
        for n, gap in enumerate(gaps, start=1):
            step = min(outage_s / 3, 0.5 * 2 ** (n - 1))
            assert step / 2 - 1e-6 <= gap <= step + TICK_S + 1e-6, (n, gaps)
    print(f"outage {outage_s:.0f} s (virtual): {len(pushes(receiver))} POSTs, "
          f"{receiver.transactions_ok} delivered, 1 dead letter (422)")


def test_an_ehr_outage_then_recovery(make_app: AppFactory, receiver: FhirReceiver) -> None:
    _outage_then_recovery(make_app, receiver, outage_s=6)


@pytest.mark.long
def test_a_one_minute_ehr_outage_then_recovery(make_app: AppFactory, receiver: FhirReceiver) -> None:
    _outage_then_recovery(make_app, receiver, outage_s=60)


def test_the_embedded_runner_delivers_and_retries_on_its_own(make_app: AppFactory, receiver: FhirReceiver) -> None:
    """`make run`'s mode: the submit's work runs on the web process's job thread after the
    response, and the poller retries it after its backoff without any further request."""
    # A timeout far above the receiver's answer time: under a loaded machine a 2 s timeout lapsed
    # while the receiver was still saying 200, and the retry delivered a second time (correctly,
    # but this test counts requests).
    app = make_app(**{**ehr_settings(receiver), "INTAKE_EHR_TIMEOUT_SECONDS": 30.0}, INTAKE_JOBS="thread",
                   INTAKE_OUTBOX_POLL_SECONDS=0.2, INTAKE_OUTBOX_BACKOFF_SECONDS=0.5, TESTING=False)
    receiver.fail_next(503)
    intake_id = submit_short_intake(app)
    receiver.wait_for_requests(2, timeout=20)
    deadline = time.monotonic() + 10
    while rows_of(app, intake_id)["ehr_push"].state != "done" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {k: r.state for k, r in rows_of(app, intake_id).items()} == {"render_pdf": "done", "ehr_push": "done"}
    assert [r.status for r in pushes(receiver)] == [503, 200]


# --- requests real servers take: encoding, chunks, Provenance, dead-letter text ------------------------


@pytest.mark.parametrize("value", ["AB+12&3", "x#y%z ñ", "a|b,c$d\\e", "plain"])
def test_conditional_queries_are_percent_encoded_and_read_back_whole(value: str) -> None:
    query = extract.conditional_query("urn:oid:1.2.3", value)
    encoded = query.split("=", 1)[1]
    assert re.fullmatch(r"(?:[A-Za-z0-9._~-]|%[0-9A-F]{2})+", encoded)  # nothing a URL parser splits or mangles
    [(name, token)] = parse_qsl(query)
    assert name == "identifier" and token == "urn:oid:1.2.3|" + re.sub(r"([\\|,$])", r"\\\1", value)


def synthetic_bundle(observations: int, flags: int) -> dict[str, Any]:
    """Patient, two responses with `observations` Observations each, `flags` Flags, Provenance."""
    patient = extract.patient_resource("p", name="N", birth_date=None, mrn="AB+12&3", mrn_system="urn:mrn")
    responses = [{"resourceType": "QuestionnaireResponse", "id": f"qr{n}", "status": "completed",
                  "identifier": extract.response_identifier(f"qr{n}"), "subject": {"reference": "Patient/p"}}
                 for n in range(2)]
    derived = [{"resourceType": "Observation", "id": f"o{n}-{k}", "status": "final",
                "identifier": [{"system": extract.OBSERVATION_SYSTEM, "value": f"o{n}-{k}"}],
                "code": {"text": "score"}, "subject": {"reference": "Patient/p"},
                "derivedFrom": [{"reference": f"QuestionnaireResponse/qr{n}"}]}
               for n in range(2) for k in range(observations)]
    derived += [extract.flag_resource(intake_id="i", patient_id="p", rule_id=f"r{k}", tier="urgent", message="m",
                                      raised=datetime(2026, 1, 1, tzinfo=UTC)) for k in range(flags)]
    provenance = extract.provenance(intake_id="i", recorded=datetime(2026, 1, 1, tzinfo=UTC),
                                    targets=[f"{r['resourceType']}/{r['id']}" for r in derived],
                                    sources=["QuestionnaireResponse/qr0", "QuestionnaireResponse/qr1"],
                                    engine_versions=["1"])
    return extract.transaction_bundle([patient, *responses, *derived, provenance],
                                      timestamp=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(("limit", "observations", "flags"), [(8, 5, 3), (8, 9, 0), (3, 2, 2), (1, 2, 1), (50, 5, 3)])
def test_chunks_keep_dependency_order_and_the_entry_limit(limit: int, observations: int, flags: int) -> None:
    entries = synthetic_bundle(observations, flags)["entry"]
    planned = ehr_push.chunks(entries, max_entries=limit, max_bytes=10**6)
    assert all(1 <= len(c) <= limit for c in planned)
    sent = [e["fullUrl"] for c in planned for e in c]
    assert sorted(sent) == sorted(e["fullUrl"] for e in entries)  # everything once
    position = {url: n for n, url in enumerate(sent)}
    for entry in entries:
        for reference in json.dumps(entry["resource"]).split('"reference": "')[1:]:
            target = reference.split('"', 1)[0]
            if target in position:
                assert position[target] < position[entry["fullUrl"]]  # what it refers to goes first
    if limit >= observations + 1:  # a response and the Observations derived from it travel together
        chunk_of = {e["fullUrl"]: n for n, c in enumerate(planned) for e in c}
        for entry in entries:
            derived = entry["resource"].get("derivedFrom")
            if derived:
                assert chunk_of[entry["fullUrl"]] == chunk_of[derived[0]["reference"]]
    assert len(planned) == (1 if limit >= len(entries) else len(planned))


def test_the_byte_budget_splits_chunks() -> None:
    entries = synthetic_bundle(3, 0)["entry"]
    biggest = max(len(json.dumps(e, ensure_ascii=False).encode()) for e in entries)
    planned = ehr_push.chunks(entries, max_entries=100, max_bytes=biggest * 2)
    assert len(planned) > 1
    assert all(sum(len(json.dumps(e, ensure_ascii=False).encode()) for e in c) <= biggest * 2 for c in planned)


def test_whole_intake_and_per_response_bundles_have_distinct_provenance(app: Flask) -> None:
    intake_id = submit_short_intake(app)
    with services(app).sessions() as session:
        whole = publish.extract_bundle(session, intake_id)
        response_id = next(e["resource"]["identifier"]["value"] for e in whole["entry"]
                           if e["resource"]["resourceType"] == "QuestionnaireResponse")
        one = publish.extract_bundle(session, intake_id, response_id=response_id)
    [first] = [e for e in whole["entry"] if e["resource"]["resourceType"] == "Provenance"]
    [second] = [e for e in one["entry"] if e["resource"]["resourceType"] == "Provenance"]
    assert first["fullUrl"] != second["fullUrl"]
    assert first["resource"]["meta"]["tag"] != second["resource"]["meta"]["tag"]
    assert first["request"]["ifNoneExist"] != second["request"]["ifNoneExist"]
    # no create-by-PUT: a POST (conditional create) or a PUT to a conditional URL, never to an id
    assert all(e["request"]["method"] == "POST" or "?" in e["request"]["url"] for e in whole["entry"] + one["entry"])


def test_outcome_text_is_kept_short_on_the_row() -> None:
    body = json.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "details": {"text": "Invalid   value"}, "expression": ["Flag.code"]},
        {"severity": "error", "code": "required", "diagnostics": "x" * 500}]}).encode()
    codes, text = ehr_push.outcome_summary(body)
    assert codes == " (invalid, required)"
    assert text.startswith("Invalid value (at Flag.code); xxx") and len(text) == ehr_push.MAX_OUTCOME_CHARS
    assert text.endswith("…")
    assert ehr_push.outcome_summary(b"<html>Bad gateway</html>") == ("", "")


def test_a_dead_letter_carries_the_receivers_text_and_the_log_does_not(
        app: Flask, receiver: FhirReceiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.fail_next(422, body=outcome("invalid", "Flag.subject: Patient 'Test Patient' is not known here"))
    with caplog.at_level(logging.DEBUG):
        intake_id = submit_short_intake(app)
    push = rows_of(app, intake_id)["ehr_push"]
    assert push.state == "dead" and push.last_error is not None
    assert push.last_error.startswith("HTTP 422 (invalid) on request 1 of 1 (")
    assert push.last_error.endswith(": Flag.subject: Patient 'Test Patient' is not known here")
    assert "HTTP 422 (invalid) on request 1 of 1" in caplog.text
    assert "Test Patient" not in caplog.text and "not known here" not in caplog.text


def test_a_server_that_runs_a_transaction_as_a_batch_is_read_entry_by_entry() -> None:
    bundle = synthetic_bundle(1, 0)
    answer = {"resourceType": "Bundle", "type": "transaction-response", "entry": [
        {"response": {"status": "201 Created", "location": "Patient/9/_history/1"}},
        {"response": {"status": "201 Created", "location": "QuestionnaireResponse/8/_history/1"}},
        {"response": {"status": "400 Bad Request", "outcome": outcome("invalid", "no subject")}},
    ]}
    with FhirReceiver() as server:
        server.fail_next(200, body=answer)  # a 200 whose entries say what failed
        target = ehr_push.Target(base=server.base_url, max_entries=3)  # Patient, a response, its Observation
        with pytest.raises(Permanent) as refused:
            ehr_push.push_bundle(target, bundle)
    assert str(refused.value).startswith("HTTP 400 (invalid) on entry 3 of request 1 of ")
    assert str(refused.value).endswith(": no subject")


def test_the_transactions_as_sent_pass_fhircheck(app: Flask, receiver: FhirReceiver, tmp_path: Path) -> None:
    """A whole intake (five questionnaires, flags, reflexes) goes in several transactions of at
    most 8 entries; each, with its references rewritten to the receiver's ids, is valid FHIR."""
    _client, intake_id = complete_intake(app, {**EMERGENCY, **HIGH_PHQ4})
    assert rows_of(app, intake_id)["ehr_push"].state == "done"
    sent = [r.bundle for r in pushes(receiver) if r.bundle is not None]
    assert len(sent) > 1 and all(len(b["entry"]) <= 8 for b in sent)
    out = tmp_path / "sent"
    out.mkdir()
    for number, bundle in enumerate(sent):
        (out / f"transaction-{number}.json").write_text(json.dumps(bundle), encoding="utf-8")
    assert "0 failed" in fhircheck(out)
