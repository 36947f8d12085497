"""Invitations and reminders to patients, by e-mail and/or SMS, through the outbox.

Queueing (`intake.workflow.schedule_invitation`, in the caller's transaction: the request or
command only queues)
writes one `PatientMessage` per purpose and channel — the invitation, due now (or when quiet hours
end), and its reminders before the appointment (intake/core/reminders.py) — each with an outbox
row due at its time. The outbox (intake/jobs/outbox.py) runs `send_message_job` when a row is due,
with its retries, dead letters and re-drive.

The link. Links are stored hashed and the raw link exists only when it is made; yet a message
sent later has to carry it. So the raw token is kept *sealed* beside its hash
(`invite_tokens.sealed`): Fernet-encrypted under a key derived from SECRET_KEY (never in the
database), only while a message still has to carry it. It is dropped when the intake is sent, when
the link is replaced (revoked), and when the last scheduled message of the link is settled; a
copy of the database alone opens no intake. The outbox row names only the message id.

A message is not sent (it is cancelled, and audited) when, at its time, the intake was sent, the
link was replaced or expired, or the patient has no address for its channel. Quiet hours
(INTAKE_QUIET_HOURS, local time) hold a due message until they end. Each message sent or cancelled
is audited (actor "system"). Sending is at least once: a worker that dies after the server took
the message and before it was recorded sends it again.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from cryptography.fernet import Fernet, InvalidToken
from flask import Flask, render_template
from flask_babel import force_locale
from sqlalchemy.orm import Session

from intake import audit, channels
from intake.core.reminders import QuietHours
from intake.jobs.errors import Permanent, Retry
from intake.services import services
from intake.storage import intakes, messages, patients
from intake.storage.db import session_scope
from intake.storage.models import InviteToken

log = logging.getLogger(__name__)

SYSTEM = audit.Actor("system", "patient-messages")
CHANNELS = ("email", "sms")
LANGUAGES = ("en", "es")


def _fernet(app: Flask) -> Fernet:
    digest = hashlib.sha256(b"intake/patient-link-seal\x00" + str(app.config["SECRET_KEY"]).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(app: Flask, token: str) -> str:
    return _fernet(app).encrypt(token.encode()).decode()


def unseal(app: Flask, sealed: str) -> str | None:
    try:
        return _fernet(app).decrypt(sealed.encode()).decode()
    except (InvalidToken, ValueError):
        return None  # SECRET_KEY changed since it was sealed: the message cannot carry the link


def link_url(app: Flask, token: str) -> str:
    return f"{app.config['INTAKE_BASE_URL'].rstrip('/')}/i/{token}"


def quiet_hours(app: Flask) -> QuietHours:
    return QuietHours.parse(str(app.config["INTAKE_QUIET_HOURS"]), str(app.config["INTAKE_TIMEZONE"]))


def compose(app: Flask, purpose: str, channel: str, language: str, *, link: str,
            appointment: datetime | None) -> tuple[str, str]:
    """(subject, text) of a message, from templates/messages/, in `language`."""
    zone = ZoneInfo(str(app.config["INTAKE_TIMEZONE"]))
    when = appointment.astimezone(zone) if appointment else None
    context = {"link": link, "appointment": when.strftime("%Y-%m-%d %H:%M") if when else "",
               "clinic_phone": app.config.get("INTAKE_CLINIC_PHONE") or "",
               "hours": int(app.config["INTAKE_LINK_TTL_HOURS"]) // 24}
    with force_locale(language if language in LANGUAGES else "en"):
        subject = render_template(f"messages/{purpose}_subject.txt", **context).strip()
        text = render_template(f"messages/{purpose}_{channel}.txt", **context).strip() + "\n"
    return subject, text


def _cancel(app: Flask, session: Session, message_id: int, intake_id: str, link_id: int, reason: str,
            now: datetime) -> None:
    if messages.settle(session, message_id, "cancelled", now=now, reason=reason):
        audit.record(session, actor=SYSTEM, action="update", now=now, entities=[f"Intake/{intake_id}"],
                     detail={"message": message_id, "cancelled": reason})
    messages.drop_sealed_when_done(session, link_id)


def send_message_job(app: Flask, subject: str) -> None:
    """The outbox handler of one patient message: send it, or cancel it when it is of no more use."""
    sessions = services(app).sessions
    now = services(app).clock()
    with session_scope(sessions) as session:
        message = messages.get(session, int(subject))
        if message is None or message.state not in messages.OPEN:
            return  # settled already: a repeated hand-over
        intake = intakes.get_intake(session, message.intake_id)
        link = session.get(InviteToken, message.link_id)
        patient = patients.get_patient(session, intake.patient_id) if intake else None
        if intake is None or link is None or patient is None:
            raise Permanent("message names no intake")
        address = patient.email if message.channel == "email" else patient.phone
        token = unseal(app, link.sealed) if link.sealed else None
        reason = ("intake sent" if intake.status == "completed" else "link replaced" if link.revoked_at
                  else "link expired" if link.expires_at <= now else f"no {message.channel} address"
                  if not address else "link not kept" if token is None else "")
        if reason:
            _cancel(app, session, message.id, intake.id, link.id, reason, now)
            return
        quiet = quiet_hours(app)
        if quiet.contains(now):
            raise Retry("quiet hours", after=max(1.0, (quiet.end_after(now) - now).total_seconds()))
        title, text = compose(app, message.purpose, message.channel, message.language,
                              link=link_url(app, token or ""), appointment=intake.appointment_at)
        ids = (message.id, message.purpose, message.channel, intake.id, link.id)
    message_id, purpose, channel, intake_id, link_id = ids
    try:
        if channel == "email":
            channels.send_email(app, to=str(address), subject=title, body=text)
        else:
            channels.send_sms(app, to=str(address), body=text)
    except Permanent as exc:
        with session_scope(sessions) as session:
            if messages.settle(session, message_id, "failed", now=services(app).clock(), reason=exc.reason[:64]):
                audit.record(session, actor=SYSTEM, action="update", now=services(app).clock(), outcome="failure",
                             entities=[f"Intake/{intake_id}"],
                             detail={"message": message_id, purpose: "not sent", "channel": channel})
            messages.drop_sealed_when_done(session, link_id)
        raise
    with session_scope(sessions) as session:
        sent_at = services(app).clock()
        if messages.settle(session, message_id, "sent", now=sent_at):
            audit.record(session, actor=SYSTEM, action="update", now=sent_at, entities=[f"Intake/{intake_id}"],
                         detail={"message": message_id, purpose: "sent", "channel": channel})
        messages.drop_sealed_when_done(session, link_id)
    log.info("patient message %s (%s by %s) sent", message_id, purpose, channel)
