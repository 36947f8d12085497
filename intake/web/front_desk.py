"""Front desk: the day's intakes with their status, a new intake for an appointment, new links.

A patient link is shown once, right after it is made (the database keeps only its hash); making
a new link revokes the old one, and ends the browser sessions it opened. Between the POST that
makes a link and the page that shows it, the link waits server-side, sealed with a key that only
the staff member's session cookie holds (`hold_link`): the cookie never carries the link, the row is
deleted when shown, and a link not shown within `HOLD_FOR` is never shown. Clinicians see the
same day list, with links to the summaries.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.fernet import Fernet, InvalidToken
from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from wtforms import DateField, SelectField, SelectMultipleField, StringField, TimeField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from intake import channels, workflow
from intake.core.contact_points import ContactError, normalise_email, normalise_phone
from intake.core.fhir_time import utcnow
from intake.core.summary import top_tier
from intake.fhir import patient_match
from intake.jobs import outbox
from intake.storage import intakes, invites, patients, worklists
from intake.web import auditing, intake_progress
from intake.web.context import catalog, reader, writer
from intake.web.staff import role_required

bp = Blueprint("front_desk", __name__, url_prefix="/front-desk")

SHOWN_LINK = "front_desk_link"  # which held link to show once, and its key (never the link itself)
HOLD_FOR = timedelta(minutes=5)  # a new link not shown by then is dropped: make another
# The days the list can show: any date whose neighbours and local midnights are valid datetimes.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only (`\d` takes any script's)


def local_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["INTAKE_TIMEZONE"])


def _link(token: str) -> str:
    return f"{current_app.config['INTAKE_BASE_URL'].rstrip('/')}/i/{token}"


def hold_link(db: Session, intake_id: str, token: str) -> dict[str, str]:
    """Keep the new link server-side until it is shown; returns what the session remembers."""
    key = Fernet.generate_key()
    now = utcnow()
    held = invites.hold_shown_link(db, intake_id=intake_id, sealed=Fernet(key).encrypt(token.encode()).decode(),
                                      expires_at=now + HOLD_FOR, now=now)
    return {"id": held, "key": key.decode()}


def _take(db: Session, ticket: object, intake_id: str) -> str | None:
    """The held link of this intake, once: its row is deleted as it is read."""
    if not isinstance(ticket, dict) or not isinstance(ticket.get("id"), str) or not isinstance(ticket.get("key"), str):
        return None
    sealed = invites.take_shown_link(db, ticket["id"], intake_id=intake_id, now=utcnow())
    if sealed is None:
        return None
    try:
        return Fernet(ticket["key"].encode()).decrypt(sealed.encode(), ttl=int(HOLD_FOR.total_seconds())).decode()
    except (InvalidToken, ValueError):
        return None


def parse_day(value: str) -> date | None:
    """A day asked for in the address (`YYYY-MM-DD`), or None when it is not one the list can show."""
    if not _ISO_DAY.fullmatch(value):
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if FIRST_DAY <= day <= LAST_DAY else None


def status_of(intake_status: str, tiers: list[str]) -> str:
    """The day list's status words: not started, in progress, completed, flagged."""
    if intake_status == "completed" and tiers:
        return "flagged"
    return intake_status.replace("-", " ")


@bp.get("/")
@role_required("front-desk", "clinician")
def day() -> Any:
    zone = local_zone()
    today = datetime.now(zone).date()
    asked = request.args.get("day")
    chosen = parse_day(asked) if asked else today
    error = None
    if chosen is None:
        error = (f"The day must be a date written as YYYY-MM-DD, from {FIRST_DAY.isoformat()} to "
                 f"{LAST_DAY.isoformat()}. Showing today instead.")
        chosen = today
    start = datetime.combine(chosen, time.min, zone).astimezone(UTC)
    end = datetime.combine(chosen + timedelta(days=1), time.min, zone).astimezone(UTC)
    rows = []
    listed = worklists.intakes_between(reader(), start, end)
    stages = intake_progress.progress_of(reader(), [intake for intake, _p, _t in listed], zone=zone)
    for intake, patient, tiers in listed:
        rows.append(
            {
                "intake": intake,
                "patient": patient,
                "status": status_of(intake.status, tiers),
                "tier": top_tier(tiers),
                "time": intake.appointment_at.astimezone(zone).strftime("%H:%M") if intake.appointment_at else "",
                "stages": stages[intake.id],
            }
        )
        auditing.note(f"Patient/{patient.id}")
    return render_template("staff/day.html", rows=rows, day=chosen, today=today, error=error,
                           previous=chosen - timedelta(days=1), next=chosen + timedelta(days=1)), 400 if error else 200


def _record_number(form: FlaskForm, field: StringField) -> None:
    """`NUMBER` (in INTAKE_MRN_SYSTEM) or `SYSTEM|NUMBER`: the EHR's identifier of the patient."""
    try:
        patient_match.parse_identifier(field.data, current_app.config["INTAKE_MRN_SYSTEM"])
    except patient_match.MatchError as exc:
        raise ValidationError(str(exc).capitalize() + ".") from None


def _ehr_patient(form: FlaskForm, field: StringField) -> None:
    try:
        patient_match.parse_reference(field.data)
    except patient_match.MatchError as exc:
        raise ValidationError(str(exc).capitalize() + ".") from None


def _email(form: FlaskForm, field: StringField) -> None:
    try:
        normalise_email(field.data)
    except ContactError as exc:
        raise ValidationError(str(exc).capitalize() + ".") from None


def _phone(form: FlaskForm, field: StringField) -> None:
    try:
        normalise_phone(field.data)
    except ContactError as exc:
        raise ValidationError(str(exc).capitalize() + ".") from None


SEND_CHOICES = [SelectChoice("email", "E-mail"), SelectChoice("sms", "Text message (SMS)")]
LANGUAGE_CHOICES = [SelectChoice("en", "English"), SelectChoice("es", "Spanish (Español)")]


def sendable() -> list[SelectChoice]:
    """The channels this deployment can send by: SMS only with a provider set up."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return [choice for choice in SEND_CHOICES if choice.value != "sms" or channels.sms_configured(app)]


class InvitationForm(FlaskForm):
    """The invitation's part of a new intake: when, what, in which language, and how it is sent."""

    appointment_day = DateField("Appointment date", validators=[InputRequired()])
    appointment_time = TimeField("Appointment time", validators=[InputRequired()])
    questionnaires = SelectMultipleField("Questionnaires", validators=[InputRequired()],
                                         option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False))
    language = SelectField("Language of the questionnaires and messages", choices=LANGUAGE_CHOICES, default="en")
    email = StringField("E-mail address (optional)", validators=[Optional(), Length(max=254), _email])
    phone = StringField("Mobile number (optional)", validators=[Optional(), Length(max=40), _phone])
    send = SelectMultipleField("Send the link to the patient", choices=SEND_CHOICES, validate_choice=True,
                               option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False))

    def offer(self) -> None:
        """The questionnaires this deployment offers, all ticked on a new form."""
        loaded = catalog().by_key
        self.questionnaires.choices = [
            SelectChoice(key, loaded[key].title) for key in current_app.config["INTAKE_QUESTIONNAIRES"]
            if key in loaded]
        self.send.choices = sendable()
        if request.method == "GET":
            self.questionnaires.data = [choice.value for choice in self.questionnaires.choices]
            self.appointment_day.data = datetime.now(local_zone()).date() + timedelta(days=1)

    def appointment(self) -> datetime:
        return datetime.combine(self.appointment_day.data, self.appointment_time.data, local_zone()).astimezone(UTC)

    def contact(self) -> workflow.Contact:
        return workflow.Contact(email=self.email.data, phone=self.phone.data, language=self.language.data,
                                send=list(self.send.data or []))


class IntakeForm(InvitationForm):
    name = StringField("Full name", validators=[InputRequired(), Length(max=255)])
    birth_date = DateField("Date of birth", validators=[InputRequired()])
    mrn = StringField("Record number (optional)", validators=[Optional(), Length(max=321), _record_number])
    ehr_patient = StringField("EHR patient (optional)", validators=[Optional(), Length(max=80), _ehr_patient])


def _ehr_identity(form: IntakeForm) -> tuple[str | None, str | None, str | None]:
    """The record number, its system and the EHR Patient reference the form gives (validated)."""
    mrn, system = None, None
    if form.mrn.data and form.mrn.data.strip():
        system, mrn = patient_match.parse_identifier(form.mrn.data, current_app.config["INTAKE_MRN_SYSTEM"])
    ehr = form.ehr_patient.data
    return mrn, system, patient_match.parse_reference(ehr) if ehr and ehr.strip() else None


@bp.route("/new", methods=["GET", "POST"])
@role_required("front-desk")
def new_intake() -> Any:
    form = IntakeForm()
    form.offer()
    error, refused = None, None
    if request.method == "POST" and form.validate_on_submit():
        mrn, mrn_system, ehr_reference = _ehr_identity(form)
        done, error, refused = invite_and_show(form, name=form.name.data, birth_date=form.birth_date.data,
                                               mrn=mrn, mrn_system=mrn_system, ehr_reference=ehr_reference)
        if done is not None:
            return done
    status = (refused or 400) if request.method == "POST" else 200
    return render_template("staff/new_intake.html", form=form, error=error), status


def invite_and_show(form: InvitationForm, **who: Any) -> tuple[Any, str | None, int | None]:
    """Invite from a validated form (`who`: the patient's fields for `workflow.invite_patient`):
    `(redirect to the new link, None, None)`, or `(None, error, status)` when it is refused."""
    contact = form.contact()
    try:
        with writer() as db:
            intake, token = workflow.invite_patient(
                current_app, db, catalog(), by=workflow.Caller(auditing.current_actor(), auditing.source()),
                questionnaires=form.questionnaires.data, appointment_at=form.appointment(), contact=contact, **who)
            intake_id = intake.id
            ticket = hold_link(db, intake_id, token)
    except workflow.WorkflowError as exc:
        return None, str(exc).capitalize() + ".", exc.status
    return after_link(ticket, intake_id, contact.send), None, None


def after_link(ticket: dict[str, str], intake_id: str, sent: list[str]) -> Any:
    """Committed: hand the queued messages over (when any) and show the new link once."""
    if sent:
        outbox.kick(current_app._get_current_object())  # type: ignore[attr-defined]
    session[SHOWN_LINK] = ticket
    return redirect(url_for("front_desk.show_link", intake_id=intake_id, sent=",".join(sent) or None))


class NewLinkForm(FlaskForm):
    """The confirmation of a new link (intake/web/front_desk_patients.py shows it)."""

    send = SelectMultipleField("Also send the new link to the patient", choices=SEND_CHOICES, validate_choice=True,
                               option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False))


@bp.post("/intakes/<intake_id>/link")
@role_required("front-desk")
def new_link(intake_id: str) -> Any:
    """A new link for a patient who lost theirs (the old one stops working), confirmed on the page
    `front_desk.confirm_new_link`; sent to the patient too when asked."""
    form = NewLinkForm()
    if not form.validate_on_submit():
        abort(400)
    send = list(form.send.data or [])
    try:
        with writer() as db:
            token = workflow.replace_link(current_app, db, intake_id, send=send,
                                          by=workflow.Caller(auditing.current_actor(), auditing.source()))
            ticket = hold_link(db, intake_id, token)
    except workflow.WorkflowError as exc:  # no such intake (404), already submitted (409), no address (400)
        abort(exc.status)
    return after_link(ticket, intake_id, send)


@bp.get("/intakes/<intake_id>/link")
@role_required("front-desk")
def show_link(intake_id: str) -> Any:
    """The new link, once: a reload shows that it was shown, and offers a new one.

    The page names the patient, so showing it is audited (a read, with whether the link was shown),
    in the same transaction that deletes the held link.
    """
    ticket = session.pop(SHOWN_LINK, None)
    with writer() as db:
        intake = intakes.get_intake(db, intake_id)
        if intake is None:
            abort(404)
        token = _take(db, ticket, intake_id)
        patient = patients.get_patient(db, intake.patient_id)
        auditing.record_change(db, "read", f"Patient/{intake.patient_id}", f"Intake/{intake_id}",
                               detail={"method": request.method, "path": request.path[:300],
                                       "link": "shown" if token else "not shown"})
    link = _link(token) if token else None
    day = intake.appointment_at.astimezone(local_zone()).date().isoformat() if intake.appointment_at else None
    asked = request.args.get("sent", "").split(",")
    sent = [words for channel, words in (("email", "e-mail"), ("sms", "text message")) if channel in asked]
    return render_template("staff/link.html", link=link, intake=intake, patient=patient, day=day, sent=sent,
                           expires_hours=current_app.config["INTAKE_LINK_TTL_HOURS"])
