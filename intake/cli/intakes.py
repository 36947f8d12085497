"""`flask intake init-db`, `lint-forms`, `invite` and `demo`: the database, the forms, and
intakes with their patient links, from a terminal."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from intake import workflow
from intake.cli.failure import CommandError
from intake.core.catalog import ARCHIVE, lint_file
from intake.core.fhir_time import utcnow
from intake.fhir import patient_match
from intake.jobs import outbox
from intake.services import services
from intake.storage import intakes
from intake.storage.db import session_scope
from intake.storage.migrate import create_database_if_missing, upgrade


@click.command("init-db")
@with_appcontext
@click.option("--create-database", is_flag=True, help="First create the PostgreSQL database if the server lacks it.")
def init_db(create_database: bool) -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    if create_database and create_database_if_missing(current_app.config["DATABASE_URL"]):
        click.echo("database created")
    upgrade(current_app.config["DATABASE_URL"])
    click.echo("database is up to date")


@click.command("lint-forms")
@with_appcontext
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def lint_forms(paths: tuple[Path, ...]) -> None:
    """Lint Questionnaire files (default: the forms folder). Exit 1 if any has an error."""
    targets: list[Path] = []
    for path in paths or (Path(current_app.config["INTAKE_FORMS_DIR"]),):
        if path.is_dir():  # the forms and the earlier versions kept for pinned intakes
            targets.extend(sorted(path.glob("*.json")) + sorted((path / ARCHIVE).glob("*.json")))
        elif path.exists():
            targets.append(path)
        else:
            raise CommandError(f"{path}: no such file or folder")
    failed = 0
    for path in targets:
        issues = lint_file(path)
        errors = [i for i in issues if i.severity == "error"]
        click.echo(f"{'FAIL' if errors else 'ok  '} {path}")
        for issue in issues:
            click.echo(f"  {issue.format(path.name)}")
        failed += bool(errors)
    click.echo(f"{len(targets) - failed} ok, {failed} failed")
    if failed:
        sys.exit(1)


def _parse_date(value: str, what: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{what} must be a date like 1970-01-31, not {value!r}") from None


def _parse_datetime(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--appointment must be a date and time like 2026-12-01T09:30, not {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def create_invite(name: str, birth_date: date, appointment: datetime | None, questionnaires: list[str],
                  patient_id: str | None = None, mrn: tuple[str, str] | None = None,
                  ehr_patient: str | None = None, contact: workflow.Contact | None = None) -> tuple[str, str]:
    """Create patient (unless `patient_id`), intake and link, audited; with `contact`, record the
    patient's details and queue the invitation. Returns (the patient's URL, the patient id).
    `mrn` is (system, value); `ehr_patient` the EHR's own Patient reference."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with session_scope(services(app).sessions) as session:
        intake, token = workflow.invite_patient(
            app, session, services(app).catalog, by=workflow.Caller.cli(), name=name,
            birth_date=birth_date, questionnaires=questionnaires, appointment_at=appointment,
            patient_id=patient_id, mrn=mrn[1] if mrn else None, mrn_system=mrn[0] if mrn else None,
            ehr_reference=ehr_patient, contact=contact)
        patient = intake.patient_id
    if contact is not None and contact.send:
        outbox.kick(app)
    return _link(token), patient


def replace_link(intake_id: str) -> tuple[str, str]:
    """A new link for an intake not yet submitted; its earlier link, and every browser session
    that link opened, stop working. Returns (the patient's URL, the patient id)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with session_scope(services(app).sessions) as session:
        token = workflow.replace_link(app, session, intake_id, by=workflow.Caller.cli())
        intake = intakes.get_intake(session, intake_id)
        patient = intake.patient_id if intake is not None else ""
    return _link(token), patient


def _print_link(link: str, patient_id: str) -> None:
    """One line: the patient id (`invite --patient ID` makes their next intake), then the link last,
    so a script takes the link as the last word."""
    click.echo(f"patient {patient_id} link {link}")


def _link(token: str) -> str:
    return f"{current_app.config['INTAKE_BASE_URL'].rstrip('/')}/i/{token}"


@click.command("invite")
@with_appcontext
@click.option("--name", default=None, help="The patient's full name (a new patient).")
@click.option("--birth-date", default=None, help="YYYY-MM-DD (a new patient)")
@click.option("--patient", "patient_id", default=None, help="An existing patient's id (a follow-up intake).")
@click.option("--appointment", default=None, help="YYYY-MM-DDTHH:MM (UTC unless an offset is given)")
@click.option("--questionnaires", default=None, help="Comma-separated questionnaire ids (default: all five)")
@click.option("--mrn", default=None,
              help="The health record's number for a new patient: SYSTEM|VALUE, or VALUE in INTAKE_MRN_SYSTEM.")
@click.option("--ehr-patient", default=None,
              help="The EHR's own Patient (Patient/123): pushes refer to it instead of sending a Patient.")
@click.option("--intake", "intake_id", default=None,
              help="An existing intake's id: a new link for it (its old link and that link's sessions stop working).")
@click.option("--email", default=None, help="The patient's e-mail address: the link is sent there (outbox).")
@click.option("--phone", default=None, help="The patient's mobile number, +country code: the link is sent by SMS.")
@click.option("--language", type=click.Choice(["en", "es"]), default=None,
              help="The language of the intake and its messages (default English).")
def invite(name: str | None, birth_date: str | None, patient_id: str | None, appointment: str | None,
           questionnaires: str | None, mrn: str | None, ehr_patient: str | None, intake_id: str | None,
           email: str | None, phone: str | None, language: str | None) -> None:
    """Create a patient and an intake, and print the one-time link to send them.

    With --intake, print a new link for that intake instead (a patient who lost theirs). With
    --mrn or --ehr-patient, the patient is the EHR's: a patient already known by either gets a
    follow-up intake, and pushes to the EHR refer to its record. With --email and/or --phone, the
    link is also sent (by the outbox, with reminders before the appointment) in --language.
    Prints the link and the patient id.
    """
    if intake_id is not None:
        if any(v is not None for v in (name, birth_date, patient_id, appointment, questionnaires, mrn, ehr_patient,
                                       email, phone, language)):
            raise CommandError("--intake takes no other option: it only replaces that intake's link")
        try:
            _print_link(*replace_link(intake_id))
        except workflow.WorkflowError as exc:
            raise CommandError(str(exc)) from None
        return
    if patient_id is None and (name is None or birth_date is None):
        raise CommandError("give --name and --birth-date for a new patient, or --patient ID for an existing one")
    if patient_id is not None and (mrn is not None or ehr_patient is not None):
        raise CommandError("--mrn and --ehr-patient describe a new patient; with --patient, leave them out")
    try:
        record = patient_match.parse_identifier(mrn, current_app.config["INTAKE_MRN_SYSTEM"]) if mrn else None
    except patient_match.MatchError as exc:
        raise CommandError(f"--mrn: {exc}") from None
    try:
        ehr_reference = patient_match.parse_reference(ehr_patient) if ehr_patient is not None else None
    except patient_match.MatchError as exc:
        raise CommandError(f"--ehr-patient: {exc}") from None
    born = _parse_date(birth_date, "--birth-date") if birth_date else date.min
    when = _parse_datetime(appointment) if appointment else None
    keys = (
        [k.strip() for k in questionnaires.split(",")]
        if questionnaires
        else current_app.config["INTAKE_QUESTIONNAIRES"]
    )
    send = [channel for channel, given in (("email", email), ("sms", phone)) if given]
    contact = workflow.Contact(email=email, phone=phone, language=language, send=send)
    try:
        link, patient = create_invite(name or "", born, when, keys, patient_id, record, ehr_reference, contact)
    except workflow.WorkflowError as exc:
        raise CommandError(str(exc)) from None
    _print_link(link, patient)


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Load demo data: one invited patient; prints their ready-to-open link."""
    link, patient = create_invite("Alex Demo", date(1968, 4, 2), utcnow() + timedelta(days=1),
                                  current_app.config["INTAKE_QUESTIONNAIRES"])
    click.echo(f"Demo patient id: {patient}")
    click.echo(f"Demo patient link: {link}")
    click.echo("Staff pages (/staff/login): make an account first, e.g. "
               "flask --app wsgi intake user add alice --role clinician (also admin, front-desk)")
