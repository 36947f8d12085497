"""Intake: pre-appointment clinical intake and screening.

`create_app(config=None)` wires configuration -> storage -> catalog -> blueprints -> CLI; nothing
happens at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from flask import Flask


def create_app(config: dict[str, Any] | None = None, *, clock: Callable[[], datetime] | None = None) -> Flask:
    """Build the Flask app; `config` overrides the environment (tests pass DATABASE_URL etc.);
    `clock` replaces the wall clock the use cases and the outbox read (tests advance it by hand).

    Flask is imported here, not at module level, so `import intake.core...` stays free of it.
    """
    from flask import Flask

    from intake.config import PROJECT_ROOT, load_config  # cycle-ok: late, see create_app

    app = Flask(
        __name__,
        # The instance folder (SQLite file, secret key, export files): INTAKE_INSTANCE_PATH lets
        # web and job workers of one deployment share it.
        instance_path=str(Path((config or {}).get("INSTANCE_PATH") or os.environ.get("INTAKE_INSTANCE_PATH")
                               or PROJECT_ROOT / "instance")),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.update(load_config(Path(app.instance_path), config))

    # Imported here, not at module level: this package's __init__ runs for every `import intake.core...`,
    # which must stay free of Flask, SQLAlchemy and the rest of the service (tests/core/test_imports.py).
    from intake import cli, invitations, notify, web  # cycle-ok: late, see create_app
    from intake.core.catalog import load_catalog  # cycle-ok: late, see create_app
    from intake.documents import render_job as render_pdf_job  # cycle-ok: late, see create_app
    from intake.fhir import ehr_auth, ehr_push  # cycle-ok: late, see create_app
    from intake.fhir.bulk_export import EXPIRY_SWEEP_SECONDS  # cycle-ok: late, see create_app
    from intake.fhir.bulk_export import expire as expire_exports  # cycle-ok: late, see create_app
    from intake.fhir.bulk_export import run_job as run_export_job  # cycle-ok: late, see create_app
    from intake.jobs import Jobs, outbox  # cycle-ok: late, see create_app
    from intake.services import KEY, Services  # cycle-ok: late, see create_app
    from intake.storage.db import make_engine, make_session_factory  # cycle-ok: late, see create_app
    from intake.web import errors as web_errors  # cycle-ok: late, see create_app

    ehr_auth.check_config(app.config)  # a key that cannot sign stops start-up, not the first push
    engine = make_engine(app.config["DATABASE_URL"])
    found = Services(
        engine=engine,
        sessions=make_session_factory(engine),
        readers=make_session_factory(engine, read_only=True),
        # Commits that need not wait for the disk: the audit rows of reads (intake.audit.queue).
        relaxed_writers=make_session_factory(engine, relaxed=True),
        catalog=load_catalog(Path(app.config["INTAKE_FORMS_DIR"])),
        outbox_handlers={
            outbox.RENDER_PDF: render_pdf_job,
            outbox.EHR_PUSH: ehr_push.push_job,
            outbox.NOTIFY: notify.notify_job,
            outbox.PATIENT_MESSAGE: invitations.send_message_job,
        },
    )
    if clock is not None:
        found.clock = clock
    app.extensions[KEY] = found  # the one entry; read it with intake.services.services(app)
    found.outbox_poller = outbox.Poller(app)
    jobs = Jobs(app, app.config["INTAKE_JOBS"])
    jobs.register("export", run_export_job)
    jobs.register("expire_exports", expire_exports, every=EXPIRY_SWEEP_SECONDS)
    jobs.register("outbox", outbox.run)
    jobs.register("outbox_dispatch", outbox.dispatch)
    found.jobs = jobs

    web.register(app)
    web_errors.register(app)
    cli.register(app)
    return app


def close_app(app: Flask) -> None:
    """Finish what runs behind requests (queued audit rows, background jobs), then close the
    database connections: for tests and embedding code that make apps and throw them away."""
    from intake.services import services  # cycle-ok: not at module level, see create_app

    found = services(app)
    found.audit_queue.flush()
    found.outbox_poller.stop()
    found.jobs.wait()
    found.engine.dispose()
