"""Tell staff about emergency and urgent flags: once per flag, by webhook and/or e-mail.

A flag row is claimed (pending -> sending) in its own transaction before anything is sent, so
two workers never send the same flag; a failed send is recorded and can be retried with
`flask intake flags --retry`. Messages carry the flag, its tier and the intake id — no patient
name or answers: staff open the summary behind their login.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any

from flask import Flask

from intake import channels
from intake.core.clinician_text import clinician_message
from intake.core.fhir_time import utcnow
from intake.jobs.errors import Retry
from intake.services import services
from intake.storage import notifications
from intake.storage.db import session_scope
from intake.storage.models import FlagRecord

log = logging.getLogger(__name__)
TIMEOUT_S = 10


def configured(app: Flask) -> bool:
    return bool(app.config.get("INTAKE_NOTIFY_WEBHOOK") or app.config.get("INTAKE_NOTIFY_EMAIL_TO"))


def payload(flag: FlagRecord, app: Flask) -> dict[str, Any]:
    base = str(app.config.get("INTAKE_BASE_URL", "")).rstrip("/")
    return {
        "event": "intake.flag",
        "flag": flag.rule_id,
        "tier": flag.tier,
        "message": clinician_message(flag.message),  # no rule codes or reference sections
        "intake": flag.intake_id,
        "raisedAt": flag.raised_at.isoformat(),
        # "draft": raised while the patient was still answering; the intake may never be sent.
        "source": flag.source,
        "summaryUrl": f"{base}/clinician/intakes/{flag.intake_id}",
        # The summary exists once the intake is sent; the flags list shows draft flags too.
        "flagsUrl": f"{base}/clinician/flags",
    }


def send_webhook(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "intake-notify"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # configured URL
        if response.status >= 300:
            raise OSError(f"webhook answered {response.status}")


def send_email(app: Flask, body: dict[str, Any]) -> None:
    message = EmailMessage()
    message["Subject"] = f"[Intake] {body['tier'].upper()} flag: {body['flag']}"
    message["From"] = app.config.get("INTAKE_SMTP_FROM") or "intake@localhost"
    message["To"] = app.config["INTAKE_NOTIFY_EMAIL_TO"]
    message.set_content(
        f"{body['message']}\n\nTier: {body['tier']}\n"
        + ("Raised while the patient was answering: the intake may not be sent yet.\n"
           if body.get("source") == "draft" else "")
        + f"Intake: {body['intake']}\nSummary: {body['summaryUrl']}\nFlags: {body['flagsUrl']}\n"
    )
    channels.smtp_send(app, message)


def _send(app: Flask, body: dict[str, Any]) -> str | None:
    """Send one message by every configured channel; the error (no PHI) or None."""
    try:
        if app.config.get("INTAKE_NOTIFY_WEBHOOK"):
            send_webhook(app.config["INTAKE_NOTIFY_WEBHOOK"], body)
        if app.config.get("INTAKE_NOTIFY_EMAIL_TO"):
            send_email(app, body)
    except (OSError, smtplib.SMTPException, urllib.error.URLError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _claim_and_send(app: Flask, flag_id: int, states: tuple[str, ...]) -> str | None:
    """Claim the flag (from one of `states`), send it, record the outcome. Returns "" when it
    was sent, None when there was nothing to send (claimed elsewhere, or sent), else the error."""
    factory = services(app).sessions
    with session_scope(factory) as session:
        flag = notifications.claim_notification(session, flag_id, states=states)
        body = payload(flag, app) if flag else None
    if body is None:
        return None
    error = _send(app, body)
    if error is not None:
        log.warning("flag notification %s failed: %s", flag_id, error.split(":", 1)[0])
    with session_scope(factory) as session:
        notifications.finish_notification(session, flag_id, ok=error is None, now=utcnow(), error=error)
    return error or ""


def notify_job(app: Flask, subject: str) -> None:
    """The outbox handler: one flag's notification. At least once: a flag left `sending` by a
    worker that died, or `failed`, is sent again (a repeat beats a missed emergency)."""
    if not configured(app):
        return
    error = _claim_and_send(app, int(subject), ("pending", "sending", "failed"))
    if error:
        raise Retry(error.split(":", 1)[0])


def send_pending(app: Flask) -> int:
    """Send every pending notification once (`flask intake flags --send`); how many were sent."""
    if not configured(app):
        return 0
    with session_scope(services(app).sessions) as session:
        pending = notifications.pending_notifications(session)
    return sum(_claim_and_send(app, flag_id, ("pending",)) == "" for flag_id in pending)
