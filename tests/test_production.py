"""The README's "Production" section, followed literally: `make run-prod` in one terminal, then the
second block (first admin, a patient link) in another; a patient completes the intake over HTTP
through gunicorn and the Celery worker renders the PDF.

Only what the README itself says may differ is changed: the database URL (a database of this
test's own, which `make run-prod` creates), and INTAKE_BIND, the broker and the instance folder in
the environment. Needs the PostgreSQL and Redis on 127.0.0.1 (skips, saying so, without them).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from intake import close_app, create_app
from intake.services import services
from intake.storage import outbox_store
from intake.storage.db import make_engine
from tests.durability import Invite, Patient, page_answers
from tests.support.celery_processes import REDIS_URL, flush_broker, redis_available
from tests.support.gunicorn_server import HttpClient, free_socket

PROJECT = Path(__file__).resolve().parents[1]
README_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/intake"
TEST_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/intake_readme_production"
PASSWORD = "a long enough admin password"


def production_blocks() -> list[list[str]]:
    """The command lines of each ```sh block in the README's Production section."""
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Production\n", 1)[1].split("\n## ", 1)[0]
    return [[line for line in block.splitlines() if line.strip()]
            for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def _server_up() -> bool:
    engine = make_engine(README_URL.rsplit("/", 1)[0] + "/postgres")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


def _drop_test_database() -> None:
    engine = make_engine(README_URL.rsplit("/", 1)[0] + "/postgres")
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("DROP DATABASE IF EXISTS intake_readme_production WITH (FORCE)"))
    finally:
        engine.dispose()


def test_the_readme_documents_what_this_test_runs() -> None:
    blocks = production_blocks()
    assert blocks[0] == ["make run-prod"]
    assert blocks[1][0] == f"export DATABASE_URL={README_URL}"
    assert [line.split(" intake ", 1)[1].split(" ", 1)[0] for line in blocks[1][1:]] == ["user", "invite"]


@pytest.fixture
def environment(tmp_path: Path) -> Iterator[dict[str, str]]:
    if not (_server_up() and redis_available()):
        pytest.skip("needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379")
    _drop_test_database()
    flush_broker()
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    base = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_") and k != "DATABASE_URL"}
    yield {**base, "DATABASE_URL": TEST_URL, "INTAKE_BIND": f"127.0.0.1:{port}", "INTAKE_WEB_WORKERS": "2",
           "INTAKE_CELERY_BROKER_URL": REDIS_URL, "INTAKE_INSTANCE_PATH": str(tmp_path / "instance"),
           "INTAKE_JOB_WORKERS": "1", "INTAKE_OUTBOX_POLL_SECONDS": "1",
           "INTAKE_AUDIT_KEY": "the audit key production requires, 32+ characters"}
    _drop_test_database()


def _wait_for_web(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"make run-prod exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if HttpClient(port, timeout=2).get("/staff/login").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"web not up after {timeout} s:\n{log.read_text()[-3000:]}")


def test_make_run_prod_then_a_patient_completes_an_intake(environment: dict[str, str], tmp_path: Path) -> None:
    first, second = production_blocks()[:2]
    log = tmp_path / "run-prod.log"
    port = int(environment["INTAKE_BIND"].rsplit(":", 1)[1])
    with log.open("wb") as out:
        run_prod = subprocess.Popen(["bash", "-c", "\n".join(first)], cwd=PROJECT, env=environment,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_web(port, run_prod, log)
        script = "\n".join(line.replace(README_URL, TEST_URL) for line in ["set -e", *second])
        made = subprocess.run(["bash", "-c", script], cwd=PROJECT, env=environment, input=f"{PASSWORD}\n{PASSWORD}\n",
                              capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stderr
        link = "/i/" + made.stdout.strip().rsplit("/i/", 1)[1]

        app = create_app({"DATABASE_URL": TEST_URL, "INSTANCE_PATH": environment["INTAKE_INSTANCE_PATH"],
                          "INTAKE_AUDIT_KEY": environment["INTAKE_AUDIT_KEY"],
                          "INTAKE_OUTBOX_POLLER": "off"})  # an observer: the deployment's workers do the work
        try:
            answers = {}
            for form in services(app).catalog.forms:
                answers.update(page_answers(app, form.key))
            outcome = Patient(port, Invite("", link), answers, duplicate=True).run(time.monotonic() + 120)
            assert outcome.acknowledged and not outcome.problems, outcome.problems
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                with services(app).sessions() as session:
                    counts = outbox_store.counts(session)
                if counts["done"] >= 1 and counts["pending"] == counts["queued"] == 0:
                    break
                time.sleep(0.5)
            settled = {"pending": 0, "queued": 0, "done": 1, "dead": 0, "held": 0}
            assert counts == settled, (counts, log.read_text()[-3000:])
            admin = app.test_cli_runner().invoke(args=["intake", "user", "list"])
            assert "admin" in admin.output
            # the processes' audit anchors reached their log, and the keyed chain matches them
            audit = app.test_cli_runner().invoke(args=["intake", "audit", "verify", "--anchors", str(log)])
            assert audit.exit_code == 0 and "keyed" in audit.output, audit.output
        finally:
            close_app(app)
        worker_log = log.read_text()
        assert re.search(r"worker\.1 .*Task intake\.job\[.*\] succeeded", worker_log), worker_log[-3000:]
    finally:
        os.killpg(run_prod.pid, signal.SIGTERM)
        run_prod.wait(timeout=60)
    assert "web.1 stopped" in log.read_text() and "worker.1 stopped" in log.read_text()
