"""Audit rows for every read, search, download and export, written after the view answered.

Reads are audited here, in one place, by endpoint (`AUDITED`, and `PATIENT_READS` for a patient's
own pages), refused attempts included: only a 2xx (or 304) answer is a success; a redirect to
sign-in, 401, 403, 404 or any other answer is outcome failure, with its status. Views name what they
returned with `note(...)`. A query string is recorded as its parameter names only: its values can
be a patient's name or birth date (FHIR search, bulk export, the audit filters themselves).
Their rows go through the write-behind queue (`intake.audit.queue`: group commit, without waiting
for the disk), so a read does not pay for a write transaction of its own. Sign-ins and changes are
audited by the code that makes them, in the same transaction as the change (`intake.audit.record`),
so a change and its audit row commit or fail together. Each audited request writes exactly one row.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Flask, Response, g, request
from flask_login import current_user

from intake import audit
from intake.audit.queue import AuditQueue
from intake.core.fhir_time import utcnow
from intake.services import services

# endpoint -> action, for requests that disclose records (changes are recorded where they happen)
AUDITED: dict[str, str] = {
    "fhir.read": "read",
    "fhir.search": "search",
    "fhir.search_post": "search",
    "fhir.extract": "read",
    "fhir.binary": "pdf",
    "fhir.export_system": "export",
    "fhir.export_patients": "export",
    "fhir.export_group": "export",
    "fhir.export_file": "export",
    "fhir.export_cancel": "delete",
    "clinician.intakes": "search",
    "clinician.flags": "search",
    "clinician.summary": "read",
    "clinician.summary_pdf": "pdf",
    "clinician.timeline": "read",
    "front_desk.day": "search",
    "admin.audit_log": "search",
    "admin.audit_export": "export",
}
# Pages that show a patient their own saved answers, progress or guidance: a read by the patient
# link, audited on GET (their POSTs are saves, audited as changes where they are made).
PATIENT_READS = frozenset({"patient.start", "patient.page", "patient.urgent_help", "patient.review", "patient.done"})
# `flask.g` key of the patient-link actor of this request's browser session, kept current by
# `intake.web.patient` (which binds and ends those sessions).
LINK_ACTOR = "link_actor"


def note(*entities: str) -> None:
    """Name the records this request disclosed ("Type/id"), for its audit row."""
    g.setdefault("audit_entities", []).extend(entities)


def current_actor() -> audit.Actor:
    """Who is asking: an API client or a clinician through the FHIR API, a signed-in staff member,
    a patient's link session, or nobody."""
    grant = g.get("grant")
    if grant is not None:  # the kind is the grant's own, never read from the name (a client may be called anything)
        return audit.Actor(grant.kind, grant.name)
    if current_user.is_authenticated:
        return audit.Actor("user", current_user.username)
    link: audit.Actor | None = g.get(LINK_ACTOR)  # set by the patient blueprint: this module imports no blueprint
    return link if link is not None else audit.Actor("anonymous", "")


def source() -> str:
    return request.remote_addr or ""


def record_change(db: object, action: str, *entities: str, detail: dict[str, object] | None = None,
                  now: datetime | None = None) -> None:
    """Audit a change in the caller's write transaction (`db` is its session)."""
    audit.record(db, actor=current_actor(), action=action, now=now or utcnow(),  # type: ignore[arg-type]
                 entities=entities, detail=detail, source=source())


def succeeded(status: int) -> bool:
    """Whether an answer disclosed what was asked for: 2xx, or 304 (the client's copy is current).
    A redirect (to sign-in, or elsewhere) shows nothing."""
    return 200 <= status < 300 or status == 304


def keyed_sessions(app: Flask) -> None:
    """Give every session factory of the app the audit key (writers chain with it, readers check
    with it), and make sure the anchor lines reach a log."""
    key = audit.audit_key(app.config["INTAKE_AUDIT_KEY"])
    found = services(app)
    audit.use_key([found.sessions, found.relaxed_writers, found.readers],
                  key, app.config["INTAKE_AUDIT_ANCHOR_ROWS"], app.config["INTAKE_AUDIT_UNKEYED_ROWS"])
    anchors = audit.anchor_log
    anchors.setLevel(logging.INFO)
    if not anchors.hasHandlers():  # gunicorn and `flask` configure no root handler: stderr then
        anchors.addHandler(logging.StreamHandler())


def register(app: Flask) -> None:
    keyed_sessions(app)
    queued = AuditQueue(services(app).relaxed_writers, app.config["INTAKE_AUDIT_QUEUE"])
    services(app).audit_queue = queued

    @app.after_request
    def audit_disclosure(response: Response) -> Response:
        endpoint = request.endpoint or ""
        action, actor = AUDITED.get(endpoint), None
        if action is None and endpoint in PATIENT_READS and request.method == "GET":
            actor = current_actor()
            if actor.kind != "patient-link" or response.status_code // 100 == 3:
                return response  # no intake in this session, or sent on elsewhere: nothing shown
            action = "read"
            note(actor.name)
        if action is None:
            return response
        detail: dict[str, object] = {
            "method": request.method,
            "path": request.path[:300],
            "status": response.status_code,
        }
        if request.query_string:
            detail["query"] = audit.query_names(request.query_string.decode("latin-1"))
        queued.put(audit.row_fields(actor=actor or current_actor(), action=action, now=utcnow(),
                                   entities=g.get("audit_entities", ()), detail=detail, source=source(),
                                   outcome="success" if succeeded(response.status_code) else "failure"))
        return response


def flush(app: Flask) -> None:
    """Write every queued read row now (tests, before counting rows)."""
    services(app).audit_queue.flush()
