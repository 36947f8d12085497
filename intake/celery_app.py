"""The Celery entry point for production job workers and the outbox clock:

    celery -A intake.celery_app worker --loglevel INFO
    celery -A intake.celery_app beat --loglevel INFO

It builds the app from the environment (DATABASE_URL, INTAKE_CELERY_BROKER_URL, ...) like
`wsgi.py`, with INTAKE_JOBS forced to celery. Each forked worker process drops the connections it
inherited, so no two processes ever share one.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from intake import create_app
from intake.jobs import jobs_of
from intake.services import services

flask_app = create_app({"INTAKE_JOBS": "celery"})
celery: Celery = jobs_of(flask_app).celery  # type: ignore[assignment]


@signals.worker_process_init.connect
def _own_connections(**_kwargs: Any) -> None:
    services(flask_app).engine.dispose(close=False)
