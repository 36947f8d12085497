"""The Celery side of `intake.jobs` (INTAKE_JOBS=celery): the broker settings that keep a task
from being lost, and the two tasks every job and the outbox clock go through.

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a task is acknowledged after it ran, so
  a worker killed mid-task leaves it on the broker to be run again (jobs are safe to repeat);
- ``visibility_timeout``: how long Redis waits for that acknowledgement before handing the task
  to another worker (longer than any task runs);
- ``worker_prefetch_multiplier=1``: a worker holds one task at a time, so a killed worker strands
  as little as possible and long PDF renders do not queue behind each other in one process;
- retries with exponential backoff and jitter for database outages (`autoretry_for`); a row's own
  delivery retries live in the outbox table, not in Redis, so losing Redis loses none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery import Celery
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from intake.jobs import Jobs

DISPATCH_JOB = "outbox_dispatch"  # the job the app registers as the outbox's dispatch
TASK_RETRY = {"autoretry_for": (DBAPIError,), "retry_backoff": 2, "retry_backoff_max": 300,
              "retry_jitter": True, "max_retries": 10}


def make_celery(jobs: Jobs) -> Celery:
    """A Celery app for `jobs`' Flask app, with the tasks `intake.job` and `intake.dispatch`."""
    config = jobs.app.config
    celery = Celery("intake", set_as_current=False)
    celery.conf.update(
        broker_url=config["INTAKE_CELERY_BROKER_URL"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": config["INTAKE_CELERY_VISIBILITY_TIMEOUT"]},
        # A request hands rows over after its commit; with the broker down it must not hang: the
        # rows stay in the table and `beat` hands them over later.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue="intake",
        timezone="UTC",
        beat_schedule={"outbox-dispatch": {"task": "intake.dispatch", "schedule": float(config["INTAKE_OUTBOX_POLL_SECONDS"])}},
        beat_schedule_filename=str(jobs.app.instance_path) + "/celerybeat-schedule",
    )

    # shared=False: the tasks close over this app's `jobs`; a shared task would also be added to
    # every Celery app made later in the process (tests make several), under the same name.
    @celery.task(name="intake.job", shared=False, **TASK_RETRY)
    def run_job(name: str, kwargs: dict[str, Any]) -> None:
        jobs.run(name, jobs.registry[name], kwargs)

    @celery.task(name="intake.dispatch", shared=False, **TASK_RETRY)
    def dispatch() -> None:
        # The outbox's dispatch, by its registered job name (intake/__init__.py), so this module
        # needs no import of the outbox (which imports the runner, which imports this module).
        jobs.run(DISPATCH_JOB, jobs.registry[DISPATCH_JOB], {})

    return celery
