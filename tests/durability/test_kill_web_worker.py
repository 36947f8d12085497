"""A web worker killed with SIGKILL while patients submit: acknowledged work survives.

Clients submit continuously; at evenly spaced points of the run a random gunicorn worker gets
`kill -9` (whatever it was doing: a page save, a submit, a PDF render on its job thread) and the
test waits for the master to replace it. Clients take a connection error as "not acknowledged"
and carry on with the same intake. Afterwards: every acknowledged submit is stored completely,
no intake is half-written, the audit chain verifies (`flask intake audit verify`) and, on SQLite,
the file passes `PRAGMA integrity_check` and `foreign_key_check`.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from intake.services import services
from tests.conftest import AppFactory
from tests.durability import (
    bad_log_lines,
    check_database,
    check_sqlite_integrity,
    invite_many,
    local_app,
    page_answers,
    run_patients,
    server_env,
)
from tests.support.gunicorn_server import GunicornServer, gunicorn_server

CLIENTS = 8
WORKERS = 2
INTAKES_PER_CYCLE = 20
REPLACE_TIMEOUT = 30.0


def killer(server: GunicornServer, cycles: int, total: int, killed: list[int]) -> Callable[[Callable[[], int]], None]:
    """Kill a random worker each time another 1/(cycles + 1) of the intakes has finished."""
    rng = random.Random(os.getpid())

    def kill_cycles(finished: Callable[[], int]) -> None:
        for cycle in range(cycles):
            threshold = (cycle + 1) * total // (cycles + 1)
            deadline = time.monotonic() + 120
            while finished() < threshold and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0, 0.3))  # anywhere in a request, not just after one ended
            victim = rng.choice(server.wait_for_workers(timeout=REPLACE_TIMEOUT))
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:  # it had just left (max_requests): the next cycle kills
                continue
            killed.append(victim)
            server.wait_for_workers(gone=[victim], timeout=REPLACE_TIMEOUT)

    return kill_cycles


@pytest.mark.parametrize("cycles", [3, pytest.param(20, marks=pytest.mark.long)])
def test_kill_web_worker(make_app: AppFactory, database_url: str, tmp_path: Path, cycles: int) -> None:
    total = INTAKES_PER_CYCLE * (cycles + 1)
    killed: list[int] = []
    with local_app(make_app) as app:
        invites = invite_many(app, total)
        answers = page_answers(app)
        with gunicorn_server(server_env(database_url, tmp_path), tmp_path / "logs", workers=WORKERS) as server:
            run = run_patients(server, invites, answers, clients=CLIENTS, timeout=420 if cycles > 3 else 120,
                               during=killer(server, cycles, total, killed))
            survivors = server.worker_pids()
        print(
            "\n"
            + run.figures(
                f"kill -9 a web worker x{len(killed)} "
                f"({services(app).engine.dialect.name}, {CLIENTS} clients, {WORKERS} workers)"
            )
            + f", server stop {server.stop_seconds:.1f} s"
        )

        assert len(killed) == cycles
        assert not set(killed) & set(survivors)
        assert run.problems() == [], run.problems()[:10]
        assert len(run.acknowledged) == total
        assert not [s for s in run.statuses() if s >= 500]
        assert check_database(app, run) == []
        assert check_sqlite_integrity(app) == []
        result = app.test_cli_runner().invoke(args=["intake", "audit", "verify"])
        assert result.exit_code == 0, result.output
        assert bad_log_lines(server) == []
        assert server.process.returncode == 0, server.tail()
