"""Bulk Data Access routes on the FHIR blueprint: kick-off, status, files, cancel.

`GET /fhir/$export`, `/fhir/Patient/$export`, `/fhir/Group/{id}/$export` with
`Prefer: respond-async` answer 202 with a Content-Location status URL; the status URL answers
202 with `X-Progress` while the job runs, 200 with the manifest when it is done (`Expires`: when
its files will be deleted), 500 with an OperationOutcome if it failed, 404 once it expired; DELETE
cancels it or deletes it (and removes its files), freeing one of the client's
INTAKE_BULK_EXPORT_MAX_JOBS_PER_CLIENT slots. A kick-off beyond them answers 429 with Retry-After.
The job itself is `intake.fhir.bulk_export.run_job`, run by the job interface.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import Response, current_app, request, send_file
from werkzeug.http import http_date

from intake.core.fhir_time import utcnow
from intake.jobs import jobs_of
from intake.services import services
from intake.storage import fhir_store
from intake.storage.db import session_scope
from intake.web.auditing import note
from intake.web.context import reader
from intake.web.fhir_api import (
    FhirError,
    _base,
    _json_response,
    bp,
    grant,
    outcome,
    require_read,
)
from intake.fhir import bulk_export

KICKOFF_PARAMETERS = {"_type", "_since", "_outputFormat", "_format"}


@bp.get("/$export")
def export_system() -> Response:
    return _kickoff("system", None, bulk_export.SYSTEM_TYPES)


@bp.get("/Patient/$export")
def export_patients() -> Response:
    return _kickoff("patient", None, bulk_export.PATIENT_TYPES)


@bp.get("/Group/<group_id>/$export")
def export_group(group_id: str) -> Response:
    require_read("Group")
    if fhir_store.get_resource(reader(), "Group", group_id) is None:
        raise FhirError(404, "not-found", f"Group/{group_id} is not known")
    note(f"Group/{group_id}")
    return _kickoff("group", group_id, bulk_export.PATIENT_TYPES)


def _kickoff(scope: str, group_id: str | None, allowed: tuple[str, ...]) -> Response:
    if "respond-async" not in request.headers.get("Prefer", ""):
        raise FhirError(400, "invalid", "bulk export is asynchronous: send Prefer: respond-async")
    unknown = set(request.args) - KICKOFF_PARAMETERS
    if unknown:
        raise FhirError(400, "not-supported", f"unsupported $export parameter {sorted(unknown)[0]!r}")
    output_format = request.args.get("_outputFormat", "application/fhir+ndjson")
    if output_format not in bulk_export.OUTPUT_FORMATS:
        raise FhirError(400, "not-supported", f"_outputFormat: only application/fhir+ndjson, not {output_format!r}")
    types = list(allowed)
    if "_type" in request.args:
        asked = [t.strip() for value in request.args.getlist("_type") for t in value.split(",") if t.strip()]
        bad = [t for t in asked if t not in allowed]
        if bad or not asked:
            raise FhirError(400, "invalid", f"_type: {bad[0] if bad else '(empty)'} is not exported here; "
                                            f"types: {', '.join(allowed)}")
        types = list(dict.fromkeys(asked))
    require_read(*types)
    try:
        since = bulk_export.since_of(request.args.get("_since"))
    except ValueError as exc:
        raise FhirError(400, "invalid", str(exc)) from exc
    app, now = current_app._get_current_object(), utcnow()  # type: ignore[attr-defined]
    with session_scope(services(app).sessions) as session:
        wait = bulk_export.wait_for_slot(app, session, grant().client, now=now)
        if wait is not None:
            response = outcome(429, "throttled", "this client holds as many bulk exports as it may "
                                                 f"({app.config['INTAKE_BULK_EXPORT_MAX_JOBS_PER_CLIENT']}): "
                                                 "DELETE a finished one's status URL, or retry later")
            response.headers["Retry-After"] = str(math.ceil(wait.total_seconds()))
            return response
        job = fhir_store.create_export(session, request_url=request.url, scope=scope, group_id=group_id,
                                       types=types, since=since, now=now, requested_by=grant().client,
                                       expires_at=now + bulk_export.ttl(app))
        job_id = job.id
    jobs_of(current_app).submit("export", job_id=job_id)  # type: ignore[arg-type]
    response = Response(status=202)
    response.headers["Content-Location"] = f"{_base()}/$export-status/{job_id}"
    return response


@bp.get("/$export-status/<job_id>")
def export_status(job_id: str) -> Response:
    job = _own_job(job_id)
    if job is None or job.status == "cancelled":
        raise FhirError(404, "not-found", "no such export (it may have been cancelled or deleted)")
    if bulk_export.expired(job, utcnow()):
        raise FhirError(404, "not-found", "this export has expired and its files are deleted")
    if job.status in ("accepted", "in-progress"):
        response = Response(status=202)
        response.headers["X-Progress"] = job.progress or job.status
        response.headers["Retry-After"] = "2"
        return response
    if job.status == "failed":
        return outcome(500, "exception", f"the export failed ({job.error or 'unknown error'})")
    body = bulk_export.manifest(job, f"{_base()}/$export-file/{job.id}")
    response = _json_response(json.dumps(body))
    response.headers["Content-Type"] = "application/json"  # the manifest is plain JSON, not a resource
    response.headers["Expires"] = http_date(job.expires_at)  # when the files are deleted
    return response


@bp.delete("/$export-status/<job_id>")
def export_cancel(job_id: str) -> Response:
    if _own_job(job_id) is None:
        raise FhirError(404, "not-found", "no such export")
    with session_scope(services().sessions) as session:
        if not bulk_export.cancel(current_app, session, job_id):  # type: ignore[arg-type]
            raise FhirError(404, "not-found", "no such export")
    return Response(status=202)


@bp.get("/$export-file/<job_id>/<name>")
def export_file(job_id: str, name: str) -> Response:
    job = _own_job(job_id)
    files = ({o["file"] for o in (job.output or [])}
             if job is not None and job.status == "completed" and not bulk_export.expired(job, utcnow()) else set())
    if name not in files:
        raise FhirError(404, "not-found", "no such export file")
    path = bulk_export.export_dir(current_app, job.id) / name  # type: ignore[union-attr, arg-type]
    return send_file(path, mimetype="application/fhir+ndjson", conditional=False, max_age=0)


def _own_job(job_id: str) -> Any:
    """The export job if the caller started it (another client's job does not exist for them)."""
    job = fhir_store.get_export(reader(), job_id)
    return job if job is not None and job.requested_by == grant().client else None
