"""The outbox state machine with the in-process (eager) runner and probe handlers: rows written in
the caller's transaction, dispatch, ordering, backoff with jitter, Retry-After, dead letters,
re-drive, lapsed hand-overs, duplicate deliveries, and the `flask intake outbox` commands; and the
poller that runs from start-up (intake/jobs/background.py) under `wsgi.py`, gunicorn and `flask`."""

from __future__ import annotations

import random
import runpy
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.cli import cli as flask_cli

from intake import close_app, workflow
from intake.jobs import background, outbox
from intake.jobs.errors import Permanent, Retry
from intake.services import services
from intake.storage import intakes, notifications, outbox_store, patients, scores
from intake.storage.db import session_scope
from intake.storage.models import OutboxRecord
from tests.conftest import AppFactory
from tests.support.clock import ManualClock
from tests.support.gunicorn_server import ROOT, gunicorn_server

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


class Probe:
    """A handler that fails as scripted: each call pops the next outcome (None = success)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.script: list[BaseException | None] = []

    def __call__(self, _app: Flask, subject: str) -> None:
        self.calls.append(subject)
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app(INTAKE_OUTBOX_MAX_ATTEMPTS=4)


@pytest.fixture
def probe(app: Flask) -> Probe:
    probe = Probe()
    services(app).outbox_handlers["probe"] = probe
    return probe


def add(app: Flask, subject: str, *, after: int | None = None, now: datetime = NOW) -> int:
    with session_scope(services(app).sessions) as session:
        return outbox.enqueue(session, "probe", subject, now=now, after=after)


def row(app: Flask, row_id: int) -> OutboxRecord:
    with services(app).sessions() as session:
        found = session.get(OutboxRecord, row_id)
        assert found is not None
        return found


def test_a_row_exists_only_if_its_transaction_commits(app: Flask, probe: Probe) -> None:
    with pytest.raises(RuntimeError), session_scope(services(app).sessions) as session:
        outbox.enqueue(session, "probe", "rolled-back", now=NOW)
        raise RuntimeError("the cause's transaction fails")
    kept = add(app, "kept")
    assert outbox.dispatch(app, now=NOW) == 1
    assert probe.calls == ["kept"] and row(app, kept).state == "done"
    assert outbox.dispatch(app, now=NOW + timedelta(hours=1)) == 0  # done is done


def test_a_row_waits_for_the_one_it_comes_after_even_if_that_one_dies(app: Flask, probe: Probe) -> None:
    first = add(app, "first")
    second = add(app, "second", after=first)
    probe.script = [Permanent("HTTP 422")]
    assert outbox.dispatch(app, now=NOW) == 2  # first settles (dead), then second runs
    assert probe.calls == ["first", "second"]
    assert (row(app, first).state, row(app, second).state) == ("dead", "done")
    third, fourth = add(app, "third"), None
    fourth = add(app, "fourth", after=third)
    probe.script = [Retry("HTTP 503")]
    outbox.dispatch(app, now=NOW)
    assert row(app, third).state == "pending" and row(app, fourth).state == "pending"
    assert probe.calls[-1] == "third"  # fourth did not run while third waits out its backoff


def test_retries_back_off_exponentially_with_jitter_then_dead(app: Flask, probe: Probe) -> None:
    row_id = add(app, "flaky")
    probe.script = [Retry("HTTP 503")] * 10
    moment, waits = NOW, []
    for attempt in range(1, 5):
        assert outbox.dispatch(app, now=moment) == 1
        settled = row(app, row_id)
        if attempt < 4:
            wait = (settled.due_at - moment).total_seconds()
            step = 2.0 * 2 ** (attempt - 1)  # INTAKE_OUTBOX_BACKOFF_SECONDS = 2
            assert step / 2 <= wait <= step, (attempt, wait)
            assert outbox.dispatch(app, now=settled.due_at - timedelta(milliseconds=1)) == 0  # not before
            waits.append(wait)
            moment = settled.due_at
    assert waits == sorted(waits)
    dead = row(app, row_id)
    assert (dead.state, dead.attempts) == ("dead", 4)
    assert dead.last_error == "gave up after 4 attempts: HTTP 503"


def test_without_now_rows_are_claimed_run_and_settled_on_the_apps_clock(make_app: AppFactory) -> None:
    """`create_app(clock=...)`: the outbox reads that clock, not the wall's (tests run outages on it)."""
    clock = ManualClock(NOW)
    app = make_app(clock=clock, INTAKE_OUTBOX_MAX_ATTEMPTS=4)
    probe = Probe()
    services(app).outbox_handlers["probe"] = probe
    row_id = add(app, "flaky", now=clock() + timedelta(seconds=10))  # due in 10 s of the clock
    assert outbox.dispatch(app) == 0  # the wall clock is years past NOW; this clock is not
    clock.advance(10)
    probe.script = [Retry("HTTP 503")]
    assert outbox.dispatch(app) == 1
    settled = row(app, row_id)
    assert settled.updated_at == clock() and clock() < settled.due_at <= clock() + timedelta(seconds=2)
    clock.advance(2)
    assert outbox.dispatch(app) == 1 and row(app, row_id).state == "done"


def test_backoff_is_capped_and_jitter_spreads_rows(app: Flask) -> None:
    app.config["INTAKE_OUTBOX_BACKOFF_MAX_SECONDS"] = 60.0
    assert outbox.backoff(app, 30, rng=random.Random(1)) <= timedelta(seconds=60)
    spread = {outbox.backoff(app, 5, rng=random.Random(seed)).total_seconds() for seed in range(20)}
    assert len(spread) == 20 and min(spread) >= 16 and max(spread) <= 32


def test_retry_after_is_honoured(app: Flask, probe: Probe) -> None:
    row_id = add(app, "busy")
    probe.script = [Retry("HTTP 429", after=120)]
    outbox.dispatch(app, now=NOW)
    assert row(app, row_id).due_at == NOW + timedelta(seconds=120)


def test_dead_letters_are_re_driven_from_zero(app: Flask, probe: Probe) -> None:
    row_id = add(app, "refused")
    probe.script = [Permanent("HTTP 400 (invalid)")]
    outbox.dispatch(app, now=NOW)
    assert (row(app, row_id).state, row(app, row_id).last_error) == ("dead", "HTTP 400 (invalid)")
    assert outbox.redrive(app, [row_id]) == 1  # and dispatched at once
    again = row(app, row_id)
    assert (again.state, again.attempts, again.last_error) == ("done", 1, None)
    assert outbox.redrive(app, None) == 0


def test_an_unexpected_error_is_retried_and_logged_without_detail(app: Flask, probe: Probe,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    row_id = add(app, "buggy")
    probe.script = [ValueError("Secret Name said something")]
    outbox.dispatch(app, now=NOW)
    assert (row(app, row_id).state, row(app, row_id).last_error) == ("pending", "ValueError")
    assert "Secret Name" not in caplog.text and "ValueError" in caplog.text


def test_a_lapsed_hand_over_is_handed_over_again_and_a_late_duplicate_does_nothing(app: Flask, probe: Probe) -> None:
    row_id = add(app, "stranded")
    with session_scope(services(app).sessions) as session:  # handed to a worker that then died
        assert [w.id for w in outbox_store.claim_due(session, now=NOW, lease=timedelta(minutes=5), limit=10)] == [
            row_id
        ]
    assert outbox.dispatch(app, now=NOW + timedelta(minutes=4)) == 0  # the hand-over still holds
    assert outbox.dispatch(app, now=NOW + timedelta(minutes=5, seconds=1)) == 1
    assert probe.calls == ["stranded"] and row(app, row_id).state == "done"
    assert outbox.run(app, row_id) is None  # the broker redelivers the first hand-over: nothing runs
    assert probe.calls == ["stranded"]


def test_the_commands_list_and_retry_dead_letters(app: Flask, probe: Probe) -> None:
    dead, waiting = add(app, "refused"), add(app, "later", now=NOW + timedelta(days=1))
    probe.script = [Permanent("HTTP 404")]
    outbox.dispatch(app, now=NOW)
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["intake", "outbox", "list"])
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert any(str(dead) in line and "dead" in line and "HTTP 404" in line for line in lines)
    assert any(str(waiting) in line and "pending" in line for line in lines)
    assert lines[-1] == "pending 1  queued 0  done 0  dead 1  held 0"
    only_dead = runner.invoke(args=["intake", "outbox", "list", "--state", "dead"]).output
    assert [line.split()[:3] for line in only_dead.splitlines()[:-1]] == [[str(dead), "dead", "probe"]]
    refused = runner.invoke(args=["intake", "outbox", "retry", str(waiting)])
    assert refused.exit_code == 1 and refused.output.strip() == f"error: not dead letters: {waiting}"
    assert runner.invoke(args=["intake", "outbox", "retry"]).exit_code == 1
    retried = runner.invoke(args=["intake", "outbox", "retry", "--dead"])
    assert (retried.exit_code, retried.output.strip()) == (0, "re-driven: 1")
    assert row(app, dead).state == "done"
    assert runner.invoke(args=["intake", "audit", "verify"]).exit_code == 0


def test_a_closing_process_finishes_the_row_in_hand_and_leaves_the_rest(app: Flask, probe: Probe) -> None:
    """A recycled gunicorn worker must not render the whole backlog before it may exit."""
    ids = [add(app, f"row {n}") for n in range(3)]
    probe_call = probe.__call__

    def close_during_first(app_: Flask, subject: str) -> None:
        probe_call(app_, subject)
        outbox.poller_of(app_).stop()  # close_app (gunicorn's worker_exit) while a row runs

    services(app).outbox_handlers["probe"] = close_during_first
    assert outbox.dispatch(app, now=NOW) == 1
    assert probe.calls == ["row 0"]
    assert [row(app, i).state for i in ids] == ["done", "pending", "pending"]  # for the other processes


# --- the poller from start-up (finding 5) ---------------------------------------------------------

Webhook = tuple[str, list[dict[str, Any]]]


def leave_pending_notifications(make_app: AppFactory, hook: str, rules: tuple[str, ...]) -> list[int]:
    """What a previous run left: emergency flags whose notifications were queued, then the process
    stopped before sending them. The outbox rows' ids."""
    app = make_app(INTAKE_NOTIFY_WEBHOOK=hook)
    try:
        with session_scope(services(app).sessions) as session:
            patient = patients.create_patient(session, name="Secret Name", birth_date=date(1950, 1, 1))
            intake = intakes.create_intake(session, patient_id=patient.id, questionnaires=["https://x/q|1"])
            flags = [{"id": rule, "tier": "emergency", "message": f"{rule} message", "because": ["a"],
                      "questionnaire": "https://x/q|1"} for rule in rules]
            scores.store_scoring(session, intake_id=intake.id, patient_id=patient.id,
                                     result={"scores": [], "flags": flags, "notes": []},
                                     versions={"https://x/q|1": "v"}, now=NOW)
            assert workflow.notify_flags(
                app, session, notifications.pending_notifications(session, intake_id=intake.id), now=NOW
            ) == len(rules)
        with services(app).sessions() as session:
            return [r.id for r in session.query(OutboxRecord).filter_by(kind=outbox.NOTIFY)]
    finally:
        close_app(app)  # the process stops, here rather than at the end of the test


def served_environment(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path, hook: str) -> None:
    """The environment `make run` gives `wsgi.py`: only where the data is and whom to notify."""
    for name in ("INTAKE_JOBS", "INTAKE_OUTBOX_POLLER", "INTAKE_CELERY_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("INTAKE_INSTANCE_PATH", str(tmp_path / "served"))
    monkeypatch.setenv("INTAKE_SECRET_KEY", "s" * 32)
    monkeypatch.setenv("INTAKE_NOTIFY_WEBHOOK", hook)


def wait_for(condition: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def pollers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "intake-outbox"]


def test_finding_5_a_restarted_process_delivers_pending_notifications_without_a_request(
        make_app: AppFactory, database_url: str, tmp_path: Path, webhook: Webhook,
        monkeypatch: pytest.MonkeyPatch) -> None:
    hook, received = webhook
    rows = leave_pending_notifications(make_app, hook, ("e1", "e2"))
    served_environment(monkeypatch, database_url, tmp_path, hook)
    app = runpy.run_path(str(ROOT / "wsgi.py"))["app"]  # start-up exactly as `flask --app wsgi run` / gunicorn
    try:
        assert app.config["INTAKE_JOBS"] == "thread"
        # no request, no submit: the poller started with the app delivers what the last run left
        assert wait_for(lambda: len(received) >= 2), "pending notifications were not sent after a restart"
        assert sorted(body["flag"] for body in received) == ["e1", "e2"]
        assert wait_for(lambda: all(row(app, r).state == "done" for r in rows))
    finally:
        close_app(app)
    assert not pollers()  # close_app stops it: nothing outlives the app


def test_finding_5_every_gunicorn_worker_polls_and_each_row_runs_once(make_app: AppFactory, database_url: str,
                                                                       tmp_path: Path, webhook: Webhook) -> None:
    hook, received = webhook
    rules = tuple(f"e{n}" for n in range(6))
    leave_pending_notifications(make_app, hook, rules)
    env = {"DATABASE_URL": database_url, "INTAKE_INSTANCE_PATH": str(tmp_path / "served"),
           "INTAKE_SECRET_KEY": "s" * 32, "INTAKE_NOTIFY_WEBHOOK": hook, "INTAKE_OUTBOX_POLL_SECONDS": "0.2"}
    with gunicorn_server(env, tmp_path / "logs", workers=2, ready_path="/openapi.json") as server:
        assert wait_for(lambda: len(received) >= len(rules)), server.tail()
        time.sleep(1.0)  # both workers keep polling: a duplicate would arrive now
        assert sorted(body["flag"] for body in received) == sorted(rules)
        assert "intake-outbox" not in server.error_log() and "Traceback" not in server.error_log()


def test_finding_5_flask_commands_that_do_not_serve_start_no_poller(make_app: AppFactory, database_url: str,
                                                                     tmp_path: Path,
                                                                     webhook: Webhook,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    hook, received = webhook
    rows = leave_pending_notifications(make_app, hook, ("e1",))
    served_environment(monkeypatch, database_url, tmp_path, hook)
    monkeypatch.chdir(ROOT)
    monkeypatch.delitem(sys.modules, "wsgi", raising=False)  # `--app wsgi` imports it afresh
    result = CliRunner().invoke(flask_cli, ["--app", "wsgi", "intake", "outbox", "list"])
    try:
        assert result.exit_code == 0, result.output
        assert not pollers()
        time.sleep(0.5)
        assert received == [] and row(sys.modules["wsgi"].app, rows[0]).state == "pending"
    finally:
        close_app(sys.modules["wsgi"].app)


@pytest.mark.parametrize(("command", "reload", "reloader_child", "serves"), [
    ("run", False, False, True),       # flask run
    ("run", True, False, False),       # flask run --reload: the watcher serves nothing
    ("run", True, True, True),         # ... its child does
    ("intake", None, False, False),    # flask intake ...
    ("shell", None, False, False),
])
def test_finding_5_only_flask_run_serves(command: str, reload: bool | None, reloader_child: bool, serves: bool,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    if reloader_child:
        monkeypatch.setenv("WERKZEUG_RUN_MAIN", "true")
    else:
        monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
    with click.Context(click.Command(command)) as context:
        context.params["reload"] = reload
        assert background.serving() is serves
    assert background.serving() is True  # no command: a WSGI server importing wsgi.py


def test_finding_5_the_poller_setting_is_checked_and_off_for_tests(app: Flask) -> None:
    assert app.config["INTAKE_OUTBOX_POLLER"] == "off" and not background.start(app)
    app.config["INTAKE_OUTBOX_POLLER"] = "sometimes"
    with pytest.raises(ValueError, match="INTAKE_OUTBOX_POLLER"):
        background.start(app)


def test_handlers_and_the_celery_tasks_do_not_import_the_outbox() -> None:
    """No cycle between the runner, the outbox and what it runs: `Retry`/`Permanent` come from
    intake/jobs/errors.py, and the Celery dispatch task runs the registered job, so loading the
    handlers and the tasks loads no outbox."""
    code = ("import sys, intake.notify, intake.invitations, intake.fhir.ehr_push, intake.jobs.celery, "
            "intake.jobs.errors; "
            "print('intake.jobs.outbox' in sys.modules, 'intake.jobs.errors' in sys.modules)")
    found = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert found.stdout.split() == ["False", "True"]
    errors_module = (ROOT / "intake" / "jobs" / "errors.py").read_text()
    assert "import intake" not in errors_module and "from intake" not in errors_module  # a leaf: no cycle through it
