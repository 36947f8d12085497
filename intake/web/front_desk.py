"""Front desk: the day's intakes with their status, a new intake for an appointment, new links.

A patient link is shown once, right after it is made (the database keeps only its hash); making
a new link revokes the old one. Clinicians see the same day list, with links to the summaries.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

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
from wtforms import DateField, SelectMultipleField, StringField, TimeField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from intake import workflow
from intake.core.summary import top_tier
from intake.storage import repository
from intake.web import auditing, catalog, reader, writer
from intake.web.staff import role_required

bp = Blueprint("front_desk", __name__, url_prefix="/front-desk")

SHOWN_LINK = "front_desk_link"  # the link to show once, between the POST and its redirect


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["INTAKE_TIMEZONE"])


def _link(token: str) -> str:
    return f"{current_app.config['INTAKE_BASE_URL'].rstrip('/')}/i/{token}"


def status_of(intake_status: str, tiers: list[str]) -> str:
    """The day list's status words: not started, in progress, completed, flagged."""
    if intake_status == "completed" and tiers:
        return "flagged"
    return intake_status.replace("-", " ")


@bp.get("/")
@role_required("front-desk", "clinician")
def day() -> Any:
    zone = _zone()
    today = datetime.now(zone).date()
    try:
        chosen = date.fromisoformat(request.args["day"]) if request.args.get("day") else today
    except ValueError:
        chosen = today
    start = datetime.combine(chosen, time.min, zone).astimezone(timezone.utc)
    end = datetime.combine(chosen + timedelta(days=1), time.min, zone).astimezone(timezone.utc)
    rows = []
    for intake, patient, tiers in repository.intakes_between(reader(), start, end):
        rows.append({"intake": intake, "patient": patient, "status": status_of(intake.status, tiers), "tier": top_tier(tiers),
                     "time": intake.appointment_at.astimezone(zone).strftime("%H:%M") if intake.appointment_at else ""})
        auditing.note(f"Patient/{patient.id}")
    return render_template("staff/day.html", rows=rows, day=chosen, today=today,
                           previous=chosen - timedelta(days=1), next=chosen + timedelta(days=1))


class IntakeForm(FlaskForm):  # type: ignore[misc]
    name = StringField("Full name", validators=[InputRequired(), Length(max=255)])
    birth_date = DateField("Date of birth", validators=[InputRequired()])
    mrn = StringField("Record number (optional)", validators=[Optional(), Length(max=64)])
    appointment_day = DateField("Appointment date", validators=[InputRequired()])
    appointment_time = TimeField("Appointment time", validators=[InputRequired()])
    questionnaires = SelectMultipleField("Questionnaires", validators=[InputRequired()],
                                         option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False))


@bp.route("/new", methods=["GET", "POST"])
@role_required("front-desk")
def new_intake() -> Any:
    form = IntakeForm()
    loaded = catalog().by_key
    form.questionnaires.choices = [SelectChoice(key, loaded[key].title) for key in current_app.config["INTAKE_QUESTIONNAIRES"]
                                   if key in loaded]
    if request.method == "GET":
        form.questionnaires.data = [choice.value for choice in form.questionnaires.choices]
        form.appointment_day.data = datetime.now(_zone()).date() + timedelta(days=1)
    error = None
    if request.method == "POST" and form.validate_on_submit():
        appointment = datetime.combine(form.appointment_day.data, form.appointment_time.data, _zone()).astimezone(timezone.utc)
        try:
            with writer() as db:
                intake, token = workflow.invite(
                    db, catalog(), name=form.name.data, birth_date=form.birth_date.data,
                    questionnaires=form.questionnaires.data, appointment_at=appointment,
                    ttl=timedelta(hours=current_app.config["INTAKE_LINK_TTL_HOURS"]),
                    mrn=form.mrn.data or None, mrn_system=current_app.config["INTAKE_MRN_SYSTEM"])
                auditing.record_change(db, "create", f"Patient/{intake.patient_id}", f"Intake/{intake.id}")
                intake_id = intake.id
        except workflow.WorkflowError as exc:
            error = str(exc).capitalize() + "."
        else:
            session[SHOWN_LINK] = {"intake": intake_id, "link": _link(token)}
            return redirect(url_for("front_desk.show_link", intake_id=intake_id))
    status = 400 if request.method == "POST" else 200
    return render_template("staff/new_intake.html", form=form, error=error), status


@bp.post("/intakes/<intake_id>/link")
@role_required("front-desk")
def new_link(intake_id: str) -> Any:
    """A new link for a patient who lost theirs (the old one stops working)."""
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        with writer() as db:
            token = workflow.new_link(db, intake_id, ttl=timedelta(hours=current_app.config["INTAKE_LINK_TTL_HOURS"]))
            auditing.record_change(db, "update", f"Intake/{intake_id}", detail={"link": "replaced"})
    except workflow.WorkflowError:
        abort(404)
    session[SHOWN_LINK] = {"intake": intake_id, "link": _link(token)}
    return redirect(url_for("front_desk.show_link", intake_id=intake_id))


@bp.get("/intakes/<intake_id>/link")
@role_required("front-desk")
def show_link(intake_id: str) -> Any:
    """The new link, once: a reload shows that it was shown, and offers a new one."""
    shown = session.pop(SHOWN_LINK, None)
    link = shown["link"] if isinstance(shown, dict) and shown.get("intake") == intake_id else None
    intake = repository.get_intake(reader(), intake_id)
    if intake is None:
        abort(404)
    patient = repository.get_patient(reader(), intake.patient_id)
    day = intake.appointment_at.astimezone(_zone()).date().isoformat() if intake.appointment_at else None
    return render_template("staff/link.html", link=link, intake=intake, patient=patient, form=FlaskForm(), day=day,
                           expires_hours=current_app.config["INTAKE_LINK_TTL_HOURS"])
