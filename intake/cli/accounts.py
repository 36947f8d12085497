"""`flask intake user ...` and `flask intake audit ...`: staff accounts and the audit log from a
terminal (the first admin is made here). Passwords are prompted for, never taken as arguments,
so they stay out of shell history and process lists."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

import click
from flask.cli import AppGroup

from intake import audit
from intake.auth import staff
from intake.cli.failure import CommandError
from intake.core.audit_event import audit_event
from intake.core.fhir_time import utcnow
from intake.services import services
from intake.storage import accounts as account_store
from intake.storage import audit_log
from intake.storage.db import session_scope
from intake.storage.models import ROLES

user_cli = AppGroup("user", help="Staff accounts: add, list, disable, enable, reset, totp.")
audit_cli = AppGroup("audit", help="The audit log: verify the hash chain and its anchors, anchor the head, export AuditEvents.")


def _sessions():  # type: ignore[no-untyped-def]
    return session_scope(services().sessions)


@user_cli.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--display-name", default="", help="The name shown on pages (default: the user name).")
@click.password_option(help="Prompted for (twice) when not given on standard input.")
def add_user(username: str, role: str, display_name: str, password: str) -> None:
    """Add a staff account."""
    try:
        with _sessions() as session:
            user = staff.add_user(session, username=username, display_name=display_name, role=role,
                                     password=password, now=utcnow())
            audit.record_cli(session, "create", f"User/{user.username}", detail={"role": role})
            name = user.username
    except staff.AccountError as exc:
        raise CommandError(str(exc)) from None
    click.echo(f"user {name} ({role}) added")


@user_cli.command("list")
def list_users() -> None:
    """Every account, its role, second factor and state."""
    with _sessions() as session:
        for user in account_store.list_users(session):
            state = "disabled" if user.disabled_at else "active"
            click.echo(f"{user.username}\t{user.role}\t{'totp' if user.totp_secret else '-'}\t{state}\t{user.display_name}")


def _change(username: str, action: str, change) -> None:  # type: ignore[no-untyped-def]
    try:
        with _sessions() as session:
            user = change(session)
            audit.record_cli(session, "update", f"User/{user.username}", detail={"change": action})
    except staff.AccountError as exc:
        raise CommandError(str(exc)) from None


@user_cli.command("disable")
@click.argument("username")
def disable_user(username: str) -> None:
    """Disable an account; its open sessions end at once."""
    _change(username, "disabled", lambda s: staff.set_disabled(s, username, True, now=utcnow()))
    click.echo(f"user {username} disabled")


@user_cli.command("enable")
@click.argument("username")
def enable_user(username: str) -> None:
    """Enable a disabled account again."""
    _change(username, "enabled", lambda s: staff.set_disabled(s, username, False, now=utcnow()))
    click.echo(f"user {username} enabled")


@user_cli.command("reset")
@click.argument("username")
@click.password_option(help="The new password (prompted for twice).")
def reset_password(username: str, password: str) -> None:
    """Set a new password; the user's open sessions end."""
    _change(username, "password reset", lambda s: staff.reset_password(s, username, password, now=utcnow()))
    click.echo(f"password of {username} reset")


@user_cli.command("totp")
@click.argument("username")
@click.option("--clear", is_flag=True, help="Remove the user's second factor (a lost phone).")
def totp(username: str, clear: bool) -> None:
    """Remove a user's TOTP second factor (users turn it on themselves, on their account page)."""
    if not clear:
        raise CommandError("give --clear to remove the second factor; users set it up on /staff/two-step")
    _change(username, "second factor cleared", lambda s: staff.clear_totp(s, username))
    click.echo(f"second factor of {username} cleared")


@audit_cli.command("verify")
@click.option("--anchors", "anchor_files", multiple=True, type=click.File("r", encoding="utf-8", errors="replace"),
              help="An application log holding AUDIT_ANCHOR lines (repeatable; - for standard input): each "
                   "anchored row must still be there with the same hash.")
def verify(anchor_files: tuple[TextIO, ...]) -> None:
    """Check the audit log's keyed hash chain (with INTAKE_AUDIT_KEY), and the anchors logged
    outside the database; exit 1 and name the rows if it was tampered with."""
    anchors = [anchor for stream in anchor_files for anchor in audit.read_anchors(stream)]
    if anchor_files and not anchors:
        raise CommandError("no AUDIT_ANCHOR lines in the given log")
    with _sessions() as session:
        result = audit.check(session, anchors)
    for problem in result.problems:
        click.echo(f"TAMPERED: {problem}", err=True)
    if result.unkeyed:
        click.echo(f"rows {result.unkeyed[0]}-{result.unkeyed[1]}: unkeyed SHA-256 (written before the chain was keyed)")
    if result.keyed:
        click.echo(f"rows {result.keyed[0]}-{result.keyed[1]}: keyed (HMAC-SHA256, key {result.key_id})")
    if anchor_files:
        click.echo(f"anchors: {result.anchors} matched, the latest at row {result.last_anchor}")
    if result.problems:
        sys.exit(1)
    click.echo(f"audit log intact: {result.count} rows")


@audit_cli.command("anchor")
def anchor() -> None:
    """Write the chain's head (row number and hash) to the application log and print it: run it
    from cron or at each deploy, and keep the log where the database's users cannot change it."""
    with _sessions() as session:
        click.echo(audit.anchor_head(session))


@audit_cli.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The NDJSON file to write (one AuditEvent per line).")
def export(output: Path) -> None:
    """Write the audit log as FHIR R4 AuditEvent resources, one per line."""
    written = 0
    try:
        with _sessions() as session, output.open("w", encoding="utf-8") as out:
            for row in audit_log.records(session):
                out.write(json.dumps(audit_event(audit.row_dict(row)), separators=(",", ":")) + "\n")
                written += 1
            audit.record_cli(session, "export", detail={"what": "audit log", "rows": written})
    except OSError as exc:
        raise CommandError(f"{output}: {exc.strerror}") from None
    click.echo(f"{output}: {written} AuditEvent resources")
