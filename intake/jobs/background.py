"""Where the in-process clock starts: the poller that dispatches outbox rows and runs the
periodic jobs (bulk-export expiry), in every mode that has no `celery beat`.

A process that serves starts it when the app is created, so work a previous run left behind (an
emergency notification, a PDF, an EHR push, expired export files) is done without waiting for a
request or a submit. It is not started:
- in celery mode (`celery beat` is the clock there: intake/jobs/celery.py);
- with INTAKE_OUTBOX_POLLER=off (the default of TESTING apps);
- by `flask` commands other than `run` (`flask intake ...` serves nothing), nor in the watcher
  process of `flask run --reload` (its child serves);
- with INTAKE_OUTBOX_POLLER=worker at app creation: the server calls `start_in_worker` in each
  worker process instead (gunicorn.conf.py, whose master preloads the app and forks: a forked
  process keeps no threads, and the master must not run any).
Several processes may poll one database: claiming a row is atomic (intake/storage/outbox_store.py).
"""

from __future__ import annotations

import click
from flask import Flask
from flask.helpers import get_debug_flag
from werkzeug.serving import is_running_from_reloader

from intake.jobs import jobs_of
from intake.jobs.outbox import poller_of

POLLER_MODES = ("on", "off", "worker")


def start(app: Flask) -> bool:
    """At app creation: start the poller if this process serves and the settings ask for it."""
    if _mode(app) != "on" or not serving():
        return False
    return _start(app)


def start_in_worker(app: Flask) -> bool:
    """In a pre-forking server's worker, after the fork: start the poller unless it is off."""
    if _mode(app) == "off":
        return False
    return _start(app)


def serving() -> bool:
    """False in a `flask` command other than `run`, and in `flask run`'s reloader watcher."""
    context = click.get_current_context(silent=True)
    if context is None:  # a WSGI server importing wsgi.py, or code embedding the app
        return True
    if context.command.name != "run":
        return False
    reload = context.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return not reload or is_running_from_reloader()


def _mode(app: Flask) -> str:
    mode = str(app.config["INTAKE_OUTBOX_POLLER"])
    if mode not in POLLER_MODES:
        raise ValueError(f"INTAKE_OUTBOX_POLLER must be one of {', '.join(POLLER_MODES)}, not {mode!r}")
    return mode


def _start(app: Flask) -> bool:
    if jobs_of(app).mode == "celery":
        return False
    poller_of(app).start()
    return True
