"""EHR push against a real FHIR receiver on 127.0.0.1 (tests/support/fhir_receiver.py) that can fail
on command: delivery once, repeats harmless, retries of 5xx/429/timeouts/refusals with backoff and
Retry-After, dead letters for 4xx only, and an outage followed by recovery."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from intake import create_app
from intake.fhir import ehr_push
from intake.jobs import outbox
from intake.services import services
from intake.storage import audit_log, outbox_store
from intake.storage.models import OutboxRecord
from tests.conftest import AppFactory, app_config
from tests.support.clock import ManualClock
from tests.support.fhir_receiver import FhirReceiver
from tests.web.conftest import csrf, invite_link
from tests.web.flow import fill_all, first_page, signed_in

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
    app = make_app(**ehr_settings(receiver), INTAKE_JOBS="thread", INTAKE_OUTBOX_POLL_SECONDS=0.2,
                   INTAKE_OUTBOX_BACKOFF_SECONDS=0.5, TESTING=False)
    receiver.fail_next(503)
    intake_id = submit_short_intake(app)
    receiver.wait_for_requests(2, timeout=20)
    deadline = time.monotonic() + 10
    while rows_of(app, intake_id)["ehr_push"].state != "done" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {k: r.state for k, r in rows_of(app, intake_id).items()} == {"render_pdf": "done", "ehr_push": "done"}
    assert [r.status for r in pushes(receiver)] == [503, 200]
