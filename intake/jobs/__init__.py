"""The job runner: background work (outbox rows, bulk export) runs here, not in requests.

Three modes, chosen by `INTAKE_JOBS`:
- ``thread`` (default): one worker thread per process runs jobs in order after the request
  that asked for them has committed; nothing else is needed (the embedded default).
- ``eager``: the job runs at once in the caller's thread (tests and one-off commands, so
  results are there when the call returns).
- ``celery``: each job is a Celery task on the broker (INTAKE_CELERY_BROKER_URL), run by
  `celery -A intake.celery_app worker` processes (production; see intake/celery_app.py).
Jobs are plain functions of (app, **kwargs) over ids and plain values, so any mode can run them;
a job must be safe to run twice (a worker may die after the work and before acknowledging it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from flask import Flask

from intake.services import services

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

JobFunction = Callable[..., Any]
MODES = ("thread", "eager", "celery")


class Jobs:
    """Runs registered jobs by name in the configured mode."""

    def __init__(self, app: Flask, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"INTAKE_JOBS must be one of {', '.join(MODES)}, not {mode!r}")
        self.app, self.mode = app, mode
        self.registry: dict[str, JobFunction] = {}
        self.periodic: dict[str, float] = {}  # job name -> seconds between runs
        self._executor: ThreadPoolExecutor | None = None
        self.celery: Celery | None = None
        if mode == "celery":
            # Only in celery mode: Celery and its Redis client load here, so the thread and eager
            # modes (`make run`, the tests) never import them.
            from intake.jobs.celery import make_celery  # cycle-ok: Celery loads only in celery mode

            self.celery = make_celery(self)

    def register(self, name: str, function: JobFunction, *, every: float | None = None) -> None:
        """Make `function` runnable as job `name`; with `every`, also run it (without arguments)
        every so many seconds: by the in-process poller (intake/jobs/outbox.py), or by `celery beat`."""
        self.registry[name] = function
        if every is None:
            return
        self.periodic[name] = every
        if self.celery is not None:
            entry = {"task": "intake.job", "schedule": every, "args": [name, {}]}
            self.celery.conf.beat_schedule = {**self.celery.conf.beat_schedule, f"job-{name}": entry}

    def submit(self, name: str, **kwargs: Any) -> Future[Any] | None:
        """Run job `name` with `kwargs` (ids and plain values only); errors are logged, not raised
        (in celery mode a broker error is raised: the caller keeps the work and retries)."""
        function = self.registry[name]
        if self.mode == "eager":
            self.run(name, function, kwargs)
            return None
        if self.celery is not None:
            self.celery.send_task("intake.job", args=[name, kwargs])
            return None
        if self._executor is None:  # created lazily: after a pre-forking server has forked
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-job")
        return self._executor.submit(self.run, name, function, kwargs)

    def run(self, name: str, function: JobFunction, kwargs: dict[str, Any]) -> None:
        """Run one job in an app context; failures are logged without PHI (the type only)."""
        with self.app.app_context():
            try:
                function(self.app, **kwargs)
            except Exception as exc:  # a job failure must not take the worker down
                log.error("job %s failed: %s", name, type(exc).__name__)
                if self.app.testing or self.mode == "celery":
                    raise  # celery: the task's retry policy decides (intake/jobs/celery.py)

    def wait(self) -> None:
        """Block until queued jobs have run (tests, and shutdown)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def jobs_of(app: Flask) -> Jobs:
    jobs: Jobs = services(app).jobs
    return jobs
