"""FHIR Bulk Data export: kick-off records a job; the job streams NDJSON files to disk.

The job reads each resource type through a server-side cursor in fixed-size batches and writes
the stored JSON texts line by line, so memory does not grow with the number of resources. It
checks for cancellation between batches. Files live in ``<instance>/exports/<job id>/`` and are
removed when the job is cancelled or deleted. A job never includes data written after its
``transactionTime`` (the kick-off time), as the Bulk Data spec requires.

Exports hold patient data outside the database, so they do not stay: a job expires
INTAKE_BULK_EXPORT_TTL_HOURS after it ended (the status answer says when, in `Expires`), and
`expire` (a periodic job: the in-process poller or `celery beat`) deletes it with its files. Each
API client holds at most INTAKE_BULK_EXPORT_MAX_JOBS_PER_CLIENT unexpired jobs; DELETE on the
status URL frees a slot at once.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from flask import Flask

from intake.core.fhir_time import utcnow
from intake.fhir.publish import questionnaires
from intake.fhir.search import date_range
from intake.services import services
from intake.storage import fhir_store
from intake.storage.db import session_scope

PATIENT_TYPES = ("Patient", "QuestionnaireResponse", "Observation", "Flag", "DocumentReference", "Provenance")
SYSTEM_TYPES = ("Questionnaire", "Group", *PATIENT_TYPES)
OUTPUT_FORMATS = {"application/fhir+ndjson", "application/ndjson", "ndjson"}
BATCH = 1000
EXPIRY_SWEEP_SECONDS = 60.0  # how often `expire` runs


def ttl(app: Flask) -> timedelta:
    """How long a job's files are kept after it ends."""
    return timedelta(hours=float(app.config["INTAKE_BULK_EXPORT_TTL_HOURS"]))


def expired(job: Any, now: datetime) -> bool:
    """Whether the job's time is up (its row and files may still await `expire`)."""
    return bool(job.expires_at <= now)


def export_dir(app: Flask, job_id: str) -> Path:
    return Path(app.instance_path) / "exports" / job_id


def run_job(app: Flask, *, job_id: str) -> None:
    """Write the job's NDJSON files; mark it completed with its manifest (or failed)."""
    sessions = services(app).sessions
    with session_scope(sessions) as session:
        job = fhir_store.get_export(session, job_id)
        if job is None or not fhir_store.update_export(session, job_id, status="in-progress", progress="starting"):
            return
        types, since, until, scope, group_id = list(job.types), job.since, job.transaction_time, job.scope, job.group_id
    folder = export_dir(app, job_id)
    try:
        with session_scope(sessions) as session:
            members = _members(session, scope, group_id)

        def progress(done: int) -> bool:
            """Record progress; False when the job was cancelled meanwhile."""
            with session_scope(sessions) as session:
                return fhir_store.update_export(session, job_id, progress=f"{done} of {len(types)} resource types written")

        counts = write_ndjson(app, folder, types=types, since=since, until=until, members=members,
                              cancelled=lambda: _cancelled(app, job_id), progress=progress)
        if counts is None:
            shutil.rmtree(folder, ignore_errors=True)
            return
        output = [{"type": t, "count": n, "file": f"{t}.ndjson"} for t, n in counts.items() if n]
        with session_scope(sessions) as session:
            if not fhir_store.update_export(session, job_id, status="completed", progress="done", output=output,
                                            expires_at=utcnow() + ttl(app)):
                shutil.rmtree(folder, ignore_errors=True)
    except Exception as exc:
        with session_scope(sessions) as session:
            fhir_store.update_export(session, job_id, status="failed", error=type(exc).__name__,
                                     expires_at=utcnow() + ttl(app))
        raise


def write_ndjson(app: Flask, folder: Path, *, types: list[str], since: datetime | None, until: datetime | None = None,
                 members: list[str] | None = None, cancelled: Callable[[], bool] = lambda: False,
                 progress: Callable[[int], bool] = lambda done: True) -> dict[str, int] | None:
    """`<folder>/<Type>.ndjson` per type (empty types leave no file): {type: count}, or None
    when cancelled."""
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for index, rtype in enumerate(types):
        path = folder / f"{rtype}.ndjson"
        count = _write_type(app, path, rtype, since=since, until=until, members=members, cancelled=cancelled)
        if count is None or not progress(index + 1):
            return None
        if not count:
            path.unlink(missing_ok=True)
        counts[rtype] = count
    return counts


def _members(session: Any, scope: str, group_id: str | None) -> list[str] | None:
    if scope == "system":
        return None
    if scope == "patient":
        return fhir_store.patient_ids(session)
    group = fhir_store.get_resource(session, "Group", group_id or "")
    if group is None:
        return []
    return [m["entity"]["reference"].split("/", 1)[1] for m in json.loads(group.resource_json).get("member") or []]


def _write_type(app: Flask, path: Path, rtype: str, *, since: datetime | None, until: datetime | None,
                members: list[str] | None, cancelled: Callable[[], bool]) -> int | None:
    """Stream one type to `path`; the number of lines, or None when the job was cancelled."""
    if rtype == "Questionnaire":
        return _write_questionnaires(app, path, since)
    count = 0
    readers = services(app).readers
    with path.open("w", encoding="utf-8", newline="\n") as out, readers() as session, closing(
        fhir_store.stream(session, rtype, since=since, until=until, patient_ids=members, batch=BATCH)
    ) as texts:
        for text in texts:
            out.write(text)
            out.write("\n")
            count += 1
            if count % BATCH == 0 and cancelled():
                return None
    return count


def _write_questionnaires(app: Flask, path: Path, since: datetime | None) -> int:
    """The loaded Questionnaires; with `_since`, those whose file changed after it."""
    loaded = services(app).catalog
    changed = {f.canonical for f in loaded.versions if since is None or _modified(f.source) > since}
    texts = [text for text, canonical in questionnaires(loaded).values() if canonical in changed]
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for text in texts:
            out.write(text)
            out.write("\n")
    return len(texts)


def _modified(source: str) -> datetime:
    try:
        return datetime.fromtimestamp(Path(source).stat().st_mtime, tz=timezone.utc)
    except OSError:
        return datetime.max.replace(tzinfo=timezone.utc)  # unknown: count it as changed


def _cancelled(app: Flask, job_id: str) -> bool:
    with services(app).sessions() as session:
        job = fhir_store.get_export(session, job_id)
        return job is None or job.status == "cancelled"


def manifest(job: Any, file_url: str) -> dict[str, Any]:
    """The completion manifest (Bulk Data IG): where each file is and how many resources it has."""
    return {
        "transactionTime": job.transaction_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [{"type": o["type"], "url": f"{file_url}/{o['file']}", "count": o["count"]} for o in job.output or []],
        "error": [],
    }


def cancel(app: Flask, session: Any, job_id: str) -> bool:
    """Cancel a running job (it stops at its next check; `expire` deletes the row later) or
    delete a finished one, with its files. False when unknown."""
    job = fhir_store.get_export(session, job_id)
    if job is None or job.status == "cancelled":
        return False
    if not fhir_store.update_export(session, job_id, status="cancelled"):  # it has ended: nothing runs
        fhir_store.delete_export(session, job_id)
    shutil.rmtree(export_dir(app, job_id), ignore_errors=True)
    return True


def wait_for_slot(app: Flask, session: Any, client: str, *, now: datetime) -> timedelta | None:
    """None when `client` may start another job; else how long until one of its jobs expires
    and frees a slot (in the caller's write transaction, which it serialises per client)."""
    live = fhir_store.live_exports(session, client, now=now)
    limit = max(1, int(app.config["INTAKE_BULK_EXPORT_MAX_JOBS_PER_CLIENT"]))
    if len(live) < limit:
        return None
    return max(timedelta(seconds=1), live[len(live) - limit].expires_at - now)


def expire(app: Flask, *, now: datetime | None = None) -> int:
    """Delete the jobs whose time is up, then their files and any export folder no job owns (its
    row deleted by a process that died before removing it); how many jobs. The periodic job."""
    with session_scope(services(app).sessions) as session:
        ids = fhir_store.expired_exports(session, now=now or utcnow())
        for job_id in ids:
            fhir_store.delete_export(session, job_id)
    for job_id in ids:
        shutil.rmtree(export_dir(app, job_id), ignore_errors=True)
    root = export_dir(app, "")
    folders = [entry.name for entry in root.iterdir() if entry.is_dir()] if root.is_dir() else []
    with services(app).sessions() as session:
        owned = fhir_store.export_ids(session, folders)
    for name in folders:
        if name not in owned:
            shutil.rmtree(root / name, ignore_errors=True)
    return len(ids)


def since_of(value: str | None) -> datetime | None:
    """Parse `_since` (a FHIR instant; a date is taken as its start, UTC)."""
    if value is None:
        return None
    _prefix, start, _end = date_range(value, "_since")
    if _prefix != "eq":
        raise ValueError("_since takes an instant, not a prefixed date")
    return start
