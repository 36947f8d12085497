"""Real Celery workers and beat over real Redis: the outbox's PDF renders and EHR pushes complete
exactly once from the receiver's point of view although workers are killed with SIGKILL in the
middle of them, nothing is left in the outbox, and Redis losing its data loses no work."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from intake.core.fhir_time import utcnow
from intake.fhir import bulk_export
from intake.jobs import background
from intake.services import services
from intake.storage import fhir_store, outbox_store
from intake.storage.db import session_scope
from intake.storage.models import DocumentRecord
from tests.conftest import AppFactory
from tests.fhir.test_ehr_push import submit_short_intake
from tests.support.celery_processes import REDIS_URL, CeleryProcesses, flush_broker, redis_available
from tests.support.fhir_receiver import FhirReceiver

pytestmark = pytest.mark.skipif(not redis_available(), reason=f"needs Redis at {REDIS_URL} (INTAKE_TEST_REDIS_URL)")

# Short leases and visibility timeouts so a killed worker's work is handed over again within seconds.
FAST = {"INTAKE_OUTBOX_LEASE_SECONDS": "6", "INTAKE_OUTBOX_POLL_SECONDS": "0.5",
        "INTAKE_CELERY_VISIBILITY_TIMEOUT": "6", "INTAKE_OUTBOX_BACKOFF_SECONDS": "0.5"}


@pytest.fixture
def receiver() -> Iterator[FhirReceiver]:
    with FhirReceiver() as server:
        yield server


@pytest.fixture
def settings(database_url: str, tmp_path: Path, receiver: FhirReceiver) -> dict[str, str]:
    """What the web side and the Celery processes share, as the environment would carry it."""
    flush_broker()
    return {"DATABASE_URL": database_url, "INTAKE_SECRET_KEY": "t", "INTAKE_INSTANCE_PATH": str(tmp_path / "i"),
            "INTAKE_AUDIT_KEY": "the audit key the web side and the workers share",  # required with celery
            "INTAKE_EHR_FHIR_BASE": receiver.base_url, **FAST}


@pytest.fixture
def web(make_app: AppFactory, settings: dict[str, str]) -> Flask:
    """The web side in celery mode: a submit writes rows and hands them to the broker."""
    return make_app(
        INSTANCE_PATH=settings["INTAKE_INSTANCE_PATH"],
        SECRET_KEY=settings["INTAKE_SECRET_KEY"],
        INTAKE_JOBS="celery",
        INTAKE_AUDIT_KEY=settings["INTAKE_AUDIT_KEY"],
        INTAKE_LINK_RATE_LIMIT="1000 per minute",  # one test client opens every link
        INTAKE_CELERY_BROKER_URL=REDIS_URL,
        INTAKE_EHR_FHIR_BASE=settings["INTAKE_EHR_FHIR_BASE"],
        **{k: float(v) if "." in v or k.endswith("SECONDS") else int(v) for k, v in FAST.items()},
    )


def counts(app: Flask) -> dict[str, int]:
    with services(app).sessions() as session:
        return outbox_store.counts(session)


def wait_settled(app: Flask, processes: CeleryProcesses, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = counts(app)
        if now["pending"] == now["queued"] == 0:
            return now
        time.sleep(0.25)
    raise AssertionError(f"outbox not settled after {timeout} s: {counts(app)}\n{processes.logs()[-3000:]}")


def assert_each_delivered_once(app: Flask, receiver: FhirReceiver, intake_ids: list[str]) -> None:
    assert counts(app) == {"pending": 0, "queued": 0, "done": 2 * len(intake_ids), "dead": 0, "held": 0}
    with services(app).sessions() as session:
        rendered = session.scalar(select(func.count()).select_from(DocumentRecord)
                                  .where(DocumentRecord.intake_id.in_(intake_ids)))
    assert rendered == len(intake_ids)
    created = receiver.created_counts()
    assert set(created.values()) == {1}, {k: v for k, v in created.items() if v != 1}
    patients = [key for key in created if key[0] == "Patient"]
    responses = [key for key in created if key[0] == "QuestionnaireResponse"]
    assert len(patients) == len(responses) == len(intake_ids)
    assert len(receiver.resources("DocumentReference")) == len(intake_ids)  # every push carried its PDF


def _kill_workers_mid_job(web: Flask, settings: dict[str, str], receiver: FhirReceiver, tmp_path: Path,
                          *, intakes: int, kills: int) -> None:
    intake_ids = [submit_short_intake(web, name=f"Patient {n}") for n in range(intakes)]  # waiting on the broker
    (tmp_path / "logs").mkdir()
    with CeleryProcesses(settings, tmp_path / "logs") as processes:
        started, done_before, mid_job = time.monotonic(), 0, 0
        for _ in range(kills):
            deadline = time.monotonic() + 60
            while counts(web)["done"] <= done_before and time.monotonic() < deadline:
                time.sleep(0.02)  # the restarted worker is up and has finished a job: the next is under way
            now = counts(web)
            assert now["pending"] + now["queued"] > 0, f"work ran out before the kills did: add intakes ({now})"
            mid_job += now["queued"] > 0
            processes.kill_worker()
            done_before = counts(web)["done"]
            processes.start_worker()
        settled = wait_settled(web, processes, timeout=120)
        elapsed = time.monotonic() - started
    assert_each_delivered_once(web, receiver, intake_ids)
    repeats = receiver.transactions_ok - len(intake_ids)
    assert mid_job == kills  # every kill found a job handed over and not yet settled
    print(f"{intakes} intakes, {kills} SIGKILLs: {settled} in {elapsed:.1f} s; "
          f"{repeats} repeated pushes, each a no-op at the receiver")


def test_killed_workers_lose_and_duplicate_nothing(web: Flask, settings: dict[str, str], receiver: FhirReceiver,
                                                   tmp_path: Path) -> None:
    _kill_workers_mid_job(web, settings, receiver, tmp_path, intakes=12, kills=3)


@pytest.mark.long
def test_killed_workers_lose_and_duplicate_nothing_long(web: Flask, settings: dict[str, str], receiver: FhirReceiver,
                                                        tmp_path: Path) -> None:
    _kill_workers_mid_job(web, settings, receiver, tmp_path, intakes=30, kills=12)


def test_redis_losing_its_data_loses_no_work(web: Flask, settings: dict[str, str], receiver: FhirReceiver,
                                             tmp_path: Path) -> None:
    intake_ids = [submit_short_intake(web, name=f"Patient {n}") for n in range(3)]
    assert counts(web)["queued"] == 3  # the renders are on the broker (the pushes wait for them)
    flush_broker()  # Redis restarts empty (it keeps nothing on disk here)
    (tmp_path / "logs").mkdir()
    with CeleryProcesses(settings, tmp_path / "logs") as processes:
        wait_settled(web, processes, timeout=90)  # beat hands the lapsed rows over again
    assert_each_delivered_once(web, receiver, intake_ids)


def test_beat_is_the_clock_of_bulk_export_expiry_and_the_web_side_polls_nothing(web: Flask) -> None:
    """Celery mode: no in-process poller, even when asked for; `celery beat` sends the expiry job."""
    web.config["INTAKE_OUTBOX_POLLER"] = "on"
    assert not background.start(web) and not background.start_in_worker(web)
    assert not [t for t in threading.enumerate() if t.name == "intake-outbox"]
    celery = services(web).jobs.celery
    assert celery.conf.beat_schedule["job-expire_exports"] == {
        "task": "intake.job", "schedule": bulk_export.EXPIRY_SWEEP_SECONDS, "args": ["expire_exports", {}]}
    with session_scope(services(web).sessions) as session:
        job = fhir_store.create_export(session, request_url="http://x/fhir/$export", scope="system", group_id=None,
                                       types=["Patient"], since=None, now=utcnow() - timedelta(days=2),
                                       requested_by="ehr", expires_at=utcnow() - timedelta(days=1))
        job_id = job.id
    folder = bulk_export.export_dir(web, job_id)
    folder.mkdir(parents=True)
    (folder / "Patient.ndjson").write_text("{}\n")
    celery.tasks["intake.job"].run("expire_exports", {})  # what a worker runs when beat sends it
    assert not folder.exists()
    with services(web).sessions() as session:
        assert fhir_store.get_export(session, job_id) is None
