"""The app's services in one typed object, stored once on the app (`app.extensions["intake"]`).

`create_app` builds it (storage, catalog, outbox handlers, then the pieces that need the app: the
outbox poller and the job runner); the web layer adds what only it runs (the read-audit queue, the
rate limiter, the fragment cache). Code reaches a service by attribute, `services().sessions` in a
request or command, `services(app).jobs` with an app in hand: a misspelt name fails where it is
read, and a type checker knows what each one is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, cast

from flask import Flask, current_app

from intake.core.fhir_time import utcnow

if TYPE_CHECKING:  # types only: the services' own modules import this one to find each other
    from flask_limiter import Limiter
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from intake.audit.queue import AuditQueue
    from intake.core.catalog import Catalog
    from intake.jobs import Jobs
    from intake.jobs.outbox import Handler, Poller
    from intake.web.forms.fragments import FragmentCache

KEY = "intake"


@dataclass(eq=False)
class Services:
    """Everything an app's requests, commands and jobs share; one per app."""

    engine: Engine
    sessions: sessionmaker[Session]  # read-write; one unit of work each (`storage.db.session_scope`)
    readers: sessionmaker[Session]  # read-only snapshots (GET views, exports)
    relaxed_writers: sessionmaker[Session]  # commits that need not wait for the disk: read-audit rows
    catalog: Catalog
    outbox_handlers: dict[str, Handler]  # outbox row kind -> what runs it
    # "Now" for the use cases (intake.workflow) and the outbox: when rows are due, when retries
    # come. `create_app(clock=...)` swaps it, so a test can run an hour-long outage in a second.
    clock: Callable[[], datetime] = utcnow
    # Set as the app is assembled, after this object is on it (each takes the app):
    outbox_poller: Poller = field(init=False)
    jobs: Jobs = field(init=False)
    audit_queue: AuditQueue = field(init=False)  # intake.web.auditing
    limiter: Limiter = field(init=False)  # intake.web.limits
    fragments: FragmentCache = field(init=False)  # intake.web


def services(app: Flask | None = None) -> Services:
    """The services of `app`, or of the current app (in a request, command or app context)."""
    return cast("Services", (app if app is not None else current_app).extensions[KEY])
