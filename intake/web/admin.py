"""Admin pages: staff accounts, API clients, the audit log (view, check, export as AuditEvent)
and the outbox of background work (dead letters, re-drive; EHR pushes held until their patient is
linked to the EHR's record).

Admins manage access; they do not see clinical summaries (that is the clinician role). Every
change here is audited in the transaction that makes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    Form,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, Regexp

from intake import audit
from intake.auth import smart, staff
from intake.core.audit_event import audit_event
from intake.core.fhir_time import utcnow
from intake.core.numbers import INT32_MAX, whole_number
from intake.fhir import patient_match
from intake.jobs import outbox
from intake.services import services
from intake.storage import accounts as account_store
from intake.storage import audit_log as audit_store
from intake.storage import fhir_store, outbox_store
from intake.storage.models import ROLES, ApiClient
from intake.web import auditing
from intake.web.context import readers, writer
from intake.web.staff import role_required, sentence

bp = Blueprint("admin", __name__, url_prefix="/admin")

PAGE_ROWS = 200


class UserForm(FlaskForm):
    username = StringField("User name", validators=[InputRequired(), Length(max=64)])
    display_name = StringField("Display name", validators=[Length(max=128)])
    role = SelectField("Role", choices=[SelectChoice(r, r) for r in ROLES])
    password = PasswordField("First password (at least 12 characters)", validators=[InputRequired(), Length(max=256)])


class PasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[InputRequired(), Length(max=256)])


class ClientForm(FlaskForm):
    name = StringField("Client id", validators=[InputRequired(), Length(max=255)])
    jwks = TextAreaField("Public JWK set (JSON)", validators=[InputRequired(), Length(max=100_000)])
    scopes = StringField("Scopes", default="system/*.read", validators=[InputRequired(), Length(max=1000)])


def _users_page(form: UserForm, error: str | None = None, status: int = 200) -> Any:
    with readers() as db:
        users = account_store.list_users(db)
    return render_template("staff/admin_users.html", users=users, form=form, error=error,
                           password_form=PasswordForm(), action=FlaskForm(),
                           idle=current_app.config["INTAKE_STAFF_IDLE_MINUTES"]), status


@bp.get("/users")
@role_required("admin")
def users() -> Any:
    return _users_page(UserForm())


@bp.post("/users")
@role_required("admin")
def add_user() -> Any:
    form = UserForm()
    if not form.validate_on_submit():
        return _users_page(form, status=400)
    try:
        with writer() as db:
            user = staff.add_user(db, username=form.username.data, display_name=form.display_name.data or "",
                                     role=form.role.data, password=form.password.data, now=utcnow())
            auditing.record_change(db, "create", f"User/{user.username}", detail={"role": user.role})
    except staff.AccountError as exc:
        return _users_page(form, error=sentence(str(exc)), status=exc.status)
    return redirect(url_for("admin.users"))


CHANGES = {
    "disable": lambda db, name, form: staff.set_disabled(db, name, True, now=utcnow()),
    "enable": lambda db, name, form: staff.set_disabled(db, name, False, now=utcnow()),
    "reset-totp": lambda db, name, form: staff.clear_totp(db, name),
    "reset-password": lambda db, name, form: staff.reset_password(db, name, form.password.data or "", now=utcnow()),
}


@bp.post("/users/<username>/<change>")
@role_required("admin")
def change_user(username: str, change: str) -> Any:
    if change not in CHANGES:
        abort(404)
    form = PasswordForm() if change == "reset-password" else FlaskForm()
    if not form.validate_on_submit():
        return _users_page(UserForm(), error="The form expired or was incomplete. Try again.", status=400)
    try:
        with writer() as db:
            user = CHANGES[change](db, username, form)
            auditing.record_change(db, "update", f"User/{user.username}", detail={"change": change})
    except staff.AccountError as exc:
        return _users_page(UserForm(), error=sentence(str(exc)), status=exc.status)
    return redirect(url_for("admin.users"))


def _clients_page(form: ClientForm, error: str | None = None, status: int = 200) -> Any:
    from sqlalchemy import select

    with readers() as db:
        clients = list(db.scalars(select(ApiClient).order_by(ApiClient.name)))
    return render_template(
        "staff/admin_clients.html", clients=clients, form=form, error=error, action=FlaskForm()
    ), status


@bp.get("/clients")
@role_required("admin")
def clients() -> Any:
    return _clients_page(ClientForm())


@bp.post("/clients")
@role_required("admin")
def add_client() -> Any:
    form = ClientForm()
    if not form.validate_on_submit():
        return _clients_page(form, status=400)
    try:
        with writer() as db:
            client = smart.register_client(
                db, name=form.name.data, jwks_text=form.jwks.data, scopes=form.scopes.data, now=utcnow()
            )
            auditing.record_change(db, "create", f"ApiClient/{client.name}", detail={"scopes": client.scopes})
    except ValueError as exc:
        return _clients_page(form, error=str(exc)[:300], status=400)
    return redirect(url_for("admin.clients"))


@bp.post("/clients/<name>/revoke")
@role_required("admin")
def revoke_client(name: str) -> Any:
    if not FlaskForm().validate_on_submit():
        abort(400)
    with writer() as db:
        if fhir_store.revoke_api_client(db, name, now=utcnow()):
            auditing.record_change(db, "delete", f"ApiClient/{name}")
    return redirect(url_for("admin.clients"))


DATE_MESSAGE = "Enter a date as YYYY-MM-DD, for example 2024-03-31."


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


class AuditFilterForm(Form):
    """The audit report's filters (ONC 170.315(d)(3): by user, record and date), read from the
    query string: a GET changes nothing, so there is no CSRF token to carry in links."""

    action = SelectField("Action", choices=[SelectChoice("", "Any"), *(SelectChoice(a, a) for a in audit.ACTIONS)],
                         default="")
    actor = StringField("Who (user name or API client)", filters=[_strip], validators=[Optional(), Length(max=255)])
    entity = StringField("Record", filters=[_strip], validators=[
        Optional(), Length(max=255),
        Regexp(r"[A-Za-z]+/\S+\Z", message="Enter a record as type/id, for example Patient/12 or Intake/abc.")])
    since = DateField("From (UTC)", validators=[Optional()], invalid_value_message=DATE_MESSAGE)
    until = DateField("To (UTC, this day included)", validators=[Optional()], invalid_value_message=DATE_MESSAGE)

    def validate_until(self, field: DateField) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The end date must be on or after the start date.")

    def query(self) -> dict[str, Any]:
        """The filters as `audit_log.records` takes them: days become UTC instants, `until`
        exclusive (the day after the one asked for)."""
        since, until = self.since.data, self.until.data
        return {
            "action": self.action.data or None,
            "actor": self.actor.data or None,
            "entity": self.entity.data or None,
            "since": datetime.combine(since, time.min, UTC) if since else None,
            "until": datetime.combine(until, time.min, UTC) + timedelta(days=1) if until and until < date.max else None,
        }

    def args(self) -> dict[str, str]:
        """The filters that are set, as query parameters (for the paging and export links)."""
        values = {name: self[name].data for name in ("action", "actor", "entity", "since", "until")}
        return {
            name: value.isoformat() if isinstance(value, date) else value for name, value in values.items() if value
        }


def _before(raw: str | None) -> int | None:
    """The row number an "Older rows" link starts below; ValueError if it is not a row number."""
    if raw is None or raw == "":
        return None
    return whole_number(raw, high=INT32_MAX)


def _entities(text: str) -> list[str]:
    """A row's records (a JSON list); shown as they are if a tampered row holds something else."""
    try:
        found = json.loads(text)
    except ValueError:
        return [text]
    return [str(e) for e in found] if isinstance(found, list) else [text]


def _audit_page(form: AuditFilterForm, *, error: str | None = None, status: int = 200, **page: Any) -> Any:
    return render_template("staff/admin_audit.html", form=form, error=error, filters=form.args(),
                           entities=_entities, shown_detail=audit.shown_detail, limit=PAGE_ROWS, **page), status


@bp.get("/audit")
@role_required("admin")
def audit_log() -> Any:
    """Newest first, PAGE_ROWS a page, keyset paging on the row number (`before`). The hash chain
    is checked only when asked (`check=1`): it reads every row, too slow to run on each view."""
    form = AuditFilterForm(request.args)
    try:
        before = _before(request.args.get("before"))
    except ValueError:
        return _audit_page(form, error="That page of the log does not exist. Start again from the newest rows.",
                           status=400)
    if not form.validate():
        return _audit_page(form, status=400)
    checking = request.args.get("check") == "1"
    with readers() as db:
        rows = list(audit_store.records(db, **form.query(), before_seq=before, limit=PAGE_ROWS + 1, newest_first=True))
        result = audit.check(db) if checking else None
        count = result.count if result else audit_store.head(db)[0]
    older = rows[PAGE_ROWS - 1].seq if len(rows) > PAGE_ROWS else None
    return _audit_page(form, rows=rows[:PAGE_ROWS], older=older, paged=before is not None, checked=checking,
                       count=count, problems=result.problems if result else [], result=result)


@bp.get("/audit/AuditEvent.ndjson")
@role_required("admin")
def audit_export() -> Any:
    """The log (or the rows the audit page's filters keep) as FHIR AuditEvent resources, one per
    line, in chain order (streamed)."""
    form = AuditFilterForm(request.args)
    if not form.validate():
        return _audit_page(form, status=400)
    query = form.query()
    factory = services().readers  # the generator runs after the request context

    def lines() -> Iterator[str]:
        with factory() as db:
            for row in audit_store.records(db, **query):
                yield json.dumps(audit_event(audit.row_dict(row)), separators=(",", ":")) + "\n"

    return Response(lines(), 200, content_type="application/fhir+ndjson",
                    headers={"Content-Disposition": 'attachment; filename="AuditEvent.ndjson"'})


@bp.get("/outbox")
@role_required("admin")
def outbox_rows() -> Any:
    """Background work that is not done: dead letters first (they need a person), then waiting."""
    return _outbox_page()


def _outbox_page(link_error: tuple[int, str] | None = None, status: int = 200) -> Any:
    with readers() as db:
        dead = outbox_store.rows(db, states=("dead",), limit=PAGE_ROWS)
        held = outbox_store.rows(db, states=("held",), limit=PAGE_ROWS)
        waiting = outbox_store.rows(db, states=("pending", "queued"), limit=PAGE_ROWS)
        counts = outbox_store.counts(db)
    return render_template("staff/admin_outbox.html", dead=dead, held=held, waiting=waiting, counts=counts,
                           action=FlaskForm(), limit=PAGE_ROWS, link_error=link_error), status


@bp.post("/outbox/link")
@role_required("admin")
def outbox_link() -> Any:
    """Link the patient of a held EHR push (`row`) to the EHR's Patient (`reference`) and release
    the push: it is sent at once, referring to that Patient."""
    if not FlaskForm().validate_on_submit():
        abort(400)
    try:
        row_id = whole_number(request.form.get("row", ""), high=INT32_MAX)
    except ValueError:
        abort(400)
    try:
        reference = patient_match.parse_reference(request.form.get("reference", ""))
    except patient_match.MatchError as exc:
        return _outbox_page((row_id, sentence(str(exc))), 400)
    with writer() as db:
        intake_id = patient_match.link_held_push(db, row_id, reference, now=utcnow())
        if intake_id is None:
            return _outbox_page((row_id, "That push is no longer held: reload the page."), 400)
        auditing.record_change(db, "update", f"Outbox/{row_id}", f"Intake/{intake_id}",
                               detail={"ehr_patient": reference, "released": True})
    outbox.kick(current_app._get_current_object())  # type: ignore[attr-defined]
    return redirect(url_for("admin.outbox_rows"))


@bp.post("/outbox/retry")
@role_required("admin")
def outbox_retry() -> Any:
    """Re-drive one dead letter (`row`) or all of them: pending again, attempts from zero."""
    if not FlaskForm().validate_on_submit():
        abort(400)
    raw = request.form.get("row", "")
    try:
        row_ids = [whole_number(raw, high=INT32_MAX)] if raw else None
    except ValueError:
        abort(400)
    with writer() as db:
        auditing.record_change(db, "update", *(f"Outbox/{i}" for i in row_ids or []), detail={"redrive": raw or "all"})
    outbox.redrive(current_app._get_current_object(), row_ids)  # type: ignore[attr-defined]
    return redirect(url_for("admin.outbox_rows"))
