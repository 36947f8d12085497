"""The job interface: background work (PDF rendering, bulk export) runs here, not in requests.

Two modes, chosen by `INTAKE_JOBS`:
- ``thread`` (default): one worker thread per process runs jobs in order after the request
  that asked for them has committed; nothing else is needed (the embedded default).
- ``eager``: the job runs at once in the caller's thread (tests and the CLI, so results are
  there when the call returns).
A Celery mode comes with the scale-out work; jobs are plain functions of (app, **kwargs) over
ids, so they can be sent to a worker as they are. A job must be safe to run twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)

JobFunction = Callable[..., Any]
MODES = ("thread", "eager")


class Jobs:
    """Runs registered jobs by name in the configured mode."""

    def __init__(self, app: Flask, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"INTAKE_JOBS must be one of {', '.join(MODES)}, not {mode!r}")
        self.app, self.mode = app, mode
        self.registry: dict[str, JobFunction] = {}
        self._executor: ThreadPoolExecutor | None = None

    def register(self, name: str, function: JobFunction) -> None:
        self.registry[name] = function

    def submit(self, name: str, **kwargs: Any) -> Future[Any] | None:
        """Run job `name` with `kwargs` (ids and plain values only); errors are logged, not raised."""
        function = self.registry[name]
        if self.mode == "eager":
            self._run(name, function, kwargs)
            return None
        if self._executor is None:  # created lazily: after a pre-forking server has forked
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-job")
        return self._executor.submit(self._run, name, function, kwargs)

    def _run(self, name: str, function: JobFunction, kwargs: dict[str, Any]) -> None:
        with self.app.app_context():
            try:
                function(self.app, **kwargs)
            except Exception as exc:  # a job failure must not take the worker down; no PHI in logs
                log.error("job %s failed: %s", name, type(exc).__name__)
                if self.app.testing:
                    raise

    def wait(self) -> None:
        """Block until queued jobs have run (tests, and shutdown)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def jobs_of(app: Flask) -> Jobs:
    jobs: Jobs = app.extensions["intake.jobs"]
    return jobs
