"""EHR push: a completed intake's `$extract` transaction Bundle POSTed to the deployment's EHR.

The Bundle is the one `GET QuestionnaireResponse/{id}/$extract` serves for the whole intake: its
entries are conditional creates (`ifNoneExist` on each resource's identifier) and a PUT for the
Provenance, so POSTing it again, after a timeout whose request did arrive, creates nothing twice.
How the EHR answers decides what the outbox does with the row (`intake.jobs.outbox`):

- 2xx: delivered;
- 408, 429, 5xx, a timeout or a refused connection: tried again later, honouring `Retry-After`;
- any other 4xx: the EHR refused the content, and repeating cannot fix it: a dead letter.

Only the status (and the OperationOutcome's issue codes) is kept as the error: an EHR's
diagnostics may quote the patient data back.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from flask import Flask

from intake import audit
from intake.audit import Actor
from intake.core.fhir_time import utcnow
from intake.fhir import ehr_auth, patient_match, publish
from intake.jobs.errors import Permanent, Retry
from intake.services import services
from intake.storage.db import session_scope

RETRIED_STATUSES = frozenset({408, 429})
USER_AGENT = "intake-ehr-push"
MAX_RETRY_AFTER_S = 3600.0


def push_job(app: Flask, intake_id: str) -> None:
    """The outbox handler: send the intake's Bundle; raises `Retry` or `Permanent` on failure."""
    base = str(app.config.get("INTAKE_EHR_FHIR_BASE") or "").rstrip("/")
    if not base:
        return  # the deployment stopped pushing since the row was written
    with session_scope(services(app).sessions) as session:
        try:
            bundle = publish.extract_bundle(session, intake_id)
        except publish.PublishError as exc:  # not published yet (`flask intake publish` fixes it)
            raise Retry("not published") from exc
        bundle = patient_match.for_push(session, intake_id, bundle,
                                        unmatched=app.config["INTAKE_EHR_UNMATCHED_PATIENT"])
    status = ehr_auth.with_token(app, lambda token: post_bundle(
        base, bundle, token=token, timeout=float(app.config["INTAKE_EHR_TIMEOUT_SECONDS"])))
    with session_scope(services(app).sessions) as session:  # a disclosure of PHI: audited
        audit.record(session, actor=Actor("system", "ehr-push"), action="export", now=utcnow(),
                     entities=[f"Intake/{intake_id}"], detail={"to": base, "status": status})


def post_bundle(base: str, bundle: dict[str, Any], *, token: str, timeout: float) -> int:
    """POST the transaction Bundle to the FHIR base; the 2xx status, else `Retry`/`Permanent`."""
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json", "User-Agent": USER_AGENT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base, data=json.dumps(bundle).encode("utf-8"), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # configured URL
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        with exc:
            status, retry_after, body = exc.code, exc.headers.get("Retry-After"), exc.read()
        reason = f"HTTP {status}{_issue_codes(body)}"
        if status in RETRIED_STATUSES or status >= 500:
            raise Retry(reason, after=retry_after_seconds(retry_after)) from None
        if status == 401:  # with SMART Backend Services, a fresh token is fetched and the push sent once more
            raise ehr_auth.Unauthorized(reason) from None
        raise Permanent(reason) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:  # socket.timeout is TimeoutError
        cause = getattr(exc, "reason", exc)
        raise Retry(type(cause).__name__ if isinstance(cause, BaseException) else "URLError") from None


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP-date (RFC 9110 10.2.3);
    None when absent or unreadable, capped at an hour (a receiver cannot park our work for days)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - (now or utcnow())).total_seconds()), MAX_RETRY_AFTER_S)


def _issue_codes(body: bytes) -> str:
    """The OperationOutcome's issue codes (e.g. ` (invalid, required)`), never its free text."""
    try:
        outcome = json.loads(body)
        codes = [str(i.get("code")) for i in outcome.get("issue", []) if isinstance(i, dict)][:5]
    except (ValueError, AttributeError):
        return ""
    return f" ({', '.join(codes)})" if codes else ""
