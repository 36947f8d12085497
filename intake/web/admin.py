"""Admin pages: staff accounts, API clients, the audit log (view, check, export as AuditEvent)
and the outbox of background work (dead letters, re-drive).

Admins manage access; they do not see clinical summaries (that is the clinician role). Every
change here is audited in the transaction that makes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
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
from wtforms import PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

from intake import accounts, audit, outbox, smart
from intake.core.audit_event import audit_event
from intake.storage import accounts as account_store
from intake.storage import audit_log as audit_store
from intake.storage import fhir_store, outbox_store
from intake.storage.models import ROLES, ApiClient
from intake.web import auditing, readers, writer
from intake.web.staff import role_required

bp = Blueprint("admin", __name__, url_prefix="/admin")

PAGE_ROWS = 200


def _now() -> datetime:
    return datetime.now(timezone.utc)


class UserForm(FlaskForm):  # type: ignore[misc]
    username = StringField("User name", validators=[InputRequired(), Length(max=64)])
    display_name = StringField("Display name", validators=[Length(max=128)])
    role = SelectField("Role", choices=[SelectChoice(r, r) for r in ROLES])
    password = PasswordField("First password (at least 12 characters)", validators=[InputRequired(), Length(max=256)])


class PasswordForm(FlaskForm):  # type: ignore[misc]
    password = PasswordField("New password", validators=[InputRequired(), Length(max=256)])


class ClientForm(FlaskForm):  # type: ignore[misc]
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
            user = accounts.add_user(db, username=form.username.data, display_name=form.display_name.data or "",
                                     role=form.role.data, password=form.password.data, now=_now())
            auditing.record_change(db, "create", f"User/{user.username}", detail={"role": user.role})
    except accounts.AccountError as exc:
        return _users_page(form, error=str(exc).capitalize() + ".", status=400)
    return redirect(url_for("admin.users"))


CHANGES = {
    "disable": lambda db, name, form: accounts.set_disabled(db, name, True, now=_now()),
    "enable": lambda db, name, form: accounts.set_disabled(db, name, False, now=_now()),
    "reset-totp": lambda db, name, form: accounts.clear_totp(db, name),
    "reset-password": lambda db, name, form: accounts.reset_password(db, name, form.password.data or "", now=_now()),
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
    except accounts.AccountError as exc:
        return _users_page(UserForm(), error=str(exc).capitalize() + ".", status=400)
    return redirect(url_for("admin.users"))


def _clients_page(form: ClientForm, error: str | None = None, status: int = 200) -> Any:
    from sqlalchemy import select

    with readers() as db:
        clients = list(db.scalars(select(ApiClient).order_by(ApiClient.name)))
    return render_template("staff/admin_clients.html", clients=clients, form=form, error=error, action=FlaskForm()), status


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
            client = smart.register_client(db, name=form.name.data, jwks_text=form.jwks.data, scopes=form.scopes.data, now=_now())
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
        if fhir_store.revoke_api_client(db, name, now=_now()):
            auditing.record_change(db, "delete", f"ApiClient/{name}")
    return redirect(url_for("admin.clients"))


@bp.get("/audit")
@role_required("admin")
def audit_log() -> Any:
    action = request.args.get("action") or None
    actor = (request.args.get("actor") or "")[:255] or None
    if action is not None and action not in audit.ACTIONS:
        action = None
    with readers() as db:
        rows = list(audit_store.records(db, action=action, actor=actor, limit=PAGE_ROWS, newest_first=True))
        count, problems = audit.verify(db)
    return render_template("staff/admin_audit.html", rows=rows, count=count, problems=problems,
                           actions=audit.ACTIONS, action=action, actor=actor or "", limit=PAGE_ROWS)


@bp.get("/audit/AuditEvent.ndjson")
@role_required("admin")
def audit_export() -> Response:
    """The whole log as FHIR AuditEvent resources, one per line (streamed)."""
    factory = current_app.extensions["intake.readers"]  # the generator runs after the request context

    def lines() -> Iterator[str]:
        with factory() as db:
            for row in audit_store.records(db):
                yield json.dumps(audit_event(audit.row_dict(row)), separators=(",", ":")) + "\n"

    return Response(lines(), 200, content_type="application/fhir+ndjson",
                    headers={"Content-Disposition": 'attachment; filename="AuditEvent.ndjson"'})


@bp.get("/outbox")
@role_required("admin")
def outbox_rows() -> Any:
    """Background work that is not done: dead letters first (they need a person), then waiting."""
    with readers() as db:
        dead = outbox_store.rows(db, states=("dead",), limit=PAGE_ROWS)
        waiting = outbox_store.rows(db, states=("pending", "queued"), limit=PAGE_ROWS)
        counts = outbox_store.counts(db)
    return render_template("staff/admin_outbox.html", dead=dead, waiting=waiting, counts=counts,
                           action=FlaskForm(), limit=PAGE_ROWS)


@bp.post("/outbox/retry")
@role_required("admin")
def outbox_retry() -> Any:
    """Re-drive one dead letter (`row`) or all of them: pending again, attempts from zero."""
    if not FlaskForm().validate_on_submit():
        abort(400)
    raw = request.form.get("row", "")
    if raw and not raw.isdigit():
        abort(400)
    row_ids = [int(raw)] if raw else None
    with writer() as db:
        auditing.record_change(db, "update", *(f"Outbox/{i}" for i in row_ids or []), detail={"redrive": raw or "all"})
    outbox.redrive(current_app._get_current_object(), row_ids)  # type: ignore[attr-defined]
    return redirect(url_for("admin.outbox_rows"))
