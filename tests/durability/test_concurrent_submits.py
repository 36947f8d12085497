"""Many patients submitting at once through gunicorn: nothing lost, nothing stored twice.

Every 10th patient is a flaky phone: it sends a page twice and double-taps Submit (two POSTs at
once on two connections); workers are recycled (max_requests) a few times meanwhile.
Afterwards every acknowledged submit must be completed with its one completed response, its
scoring row and its records, exactly once each; every request must have been answered, none
with a 5xx, and the server log may not say "database is locked" (SQLite's single writer under
contention) or show a traceback or a hung worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from intake import audit
from intake.core.fhir_time import utcnow
from intake.services import services
from intake.storage.db import session_scope
from tests.conftest import AppFactory
from tests.durability import (
    Outcome,
    Run,
    bad_log_lines,
    check_database,
    check_sqlite_integrity,
    invite_many,
    local_app,
    page_answers,
    run_patients,
    server_env,
)
from tests.support.gunicorn_server import gunicorn_server
from tests.web.conftest import csrf
from tests.web.flow import fill_all, first_page

CLIENTS = 8
WORKERS = 2
# Workers are recycled (gracefully) during the run, as production does: every 500 requests, or
# sooner in a small run so that it recycles too.
MAX_REQUESTS = 500


# 50 submits keep `make test` short and still contend (8 clients, 2 workers, 5 flaky phones, two
# recycles a worker); 200 and 1,000 run in `make test-long`.
@pytest.mark.parametrize("submits", [50, pytest.param(200, marks=pytest.mark.long),
                                     pytest.param(1000, marks=pytest.mark.long)])
def test_concurrent_submits(make_app: AppFactory, database_url: str, tmp_path: Path, submits: int) -> None:
    with local_app(make_app) as app:
        invites = invite_many(app, submits)
        answers = page_answers(app)
        recycle = min(MAX_REQUESTS, submits * 5 // 2)
        env = {**server_env(database_url, tmp_path), "INTAKE_WEB_MAX_REQUESTS": str(recycle)}
        with gunicorn_server(env, tmp_path / "logs", workers=WORKERS) as server:
            run = run_patients(server, invites, answers, clients=CLIENTS, timeout=600 if submits > 200 else 150)
        print(
            "\n"
            + run.figures(
                f"concurrent submits ({services(app).engine.dialect.name}, {CLIENTS} clients, {WORKERS} workers)"
            )
            + f", server stop {server.stop_seconds:.1f} s"
        )

        assert run.problems() == [], run.problems()[:10]
        assert len(run.acknowledged) == submits
        assert not [s for s in run.statuses() if s >= 500]
        # Nobody was killed: every request gets an answer within the client's 30 s.
        assert sum(o.connection_errors for o in run.outcomes) == 0
        assert check_database(app, run) == []
        assert check_sqlite_integrity(app) == []
        assert bad_log_lines(server) == []
        assert server.process.returncode == 0, server.tail()


def test_the_checks_see_lost_and_duplicated_submits(make_app: AppFactory, database_url: str, tmp_path: Path) -> None:
    """check_database itself: an acknowledged intake left unfinished is lost, a second
    'submitted' row is a duplicate (so the tests above can fail)."""
    with local_app(make_app) as app:
        done, lost = invite_many(app, 2)
        client = app.test_client()
        client.get(done.link)
        fill_all(client, app, first_page(client))
        assert (
            client.post("/intake/submit", data={"csrf_token": csrf(client.get("/intake/review").text)}).status_code
            == 302
        )
        run = Run([Outcome(done.intake_id, acknowledged=True), Outcome(lost.intake_id, acknowledged=True)], 1.0)
        assert check_database(app, run) == ["intake #1: submit acknowledged but status is 'not-started' (lost)"]

        with session_scope(services(app).sessions) as session:
            audit.record(session, actor=audit.Actor("patient-link", "test"), action="create", now=utcnow(),
                         entities=[f"Intake/{done.intake_id}"], detail={"submitted": True})
        assert "intake #0: 2 'submitted' audit rows, expected 1" in check_database(app, run)
