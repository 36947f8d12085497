"""`flask intake outbox ...`: the background work queue from a terminal — what is waiting, what
failed for good (dead letters), re-driving them, linking the patient of a held EHR push, and
running due work once by hand."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from intake import audit
from intake.cli.failure import CommandError
from intake.core.fhir_time import utcnow
from intake.fhir import patient_match
from intake.jobs import outbox
from intake.services import services
from intake.storage import outbox_store
from intake.storage.db import session_scope
from intake.storage.models import OUTBOX_STATES

outbox_cli = AppGroup("outbox", help="Background work: list, retry dead letters, dispatch due rows.")


def _app() -> Flask:
    return current_app._get_current_object()  # type: ignore[attr-defined]


@outbox_cli.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice(OUTBOX_STATES),
              help="Only rows in this state (repeatable). Default: every row not done.")
@click.option("--limit", default=200, show_default=True)
def list_rows(states: tuple[str, ...], limit: int) -> None:
    """One line per row, newest first, then the count in each state."""
    with session_scope(services(_app()).sessions) as session:
        rows = outbox_store.rows(session, states=states or ("pending", "queued", "dead", "held"), limit=limit)
        counts = outbox_store.counts(session)
    for row in rows:
        after = f" after {row.after_id}" if row.after_id else ""
        click.echo(f"{row.id:>8}  {row.state:<7} {row.kind:<10} {row.subject}  attempts {row.attempts}  "
                   f"due {row.due_at:%Y-%m-%d %H:%M:%S}Z{after}  {row.last_error or ''}".rstrip())
    click.echo("  ".join(f"{state} {count}" for state, count in counts.items()))


@outbox_cli.command("retry")
@click.argument("row_ids", nargs=-1, type=int)
@click.option("--dead", "every_dead", is_flag=True, help="Every dead letter.")
def retry_rows(row_ids: tuple[int, ...], every_dead: bool) -> None:
    """Re-drive dead letters (by id, or --dead for all): pending again, attempts from zero."""
    if not row_ids and not every_dead:
        raise CommandError("name row ids or use --dead")
    app = _app()
    with session_scope(services(app).sessions) as session:
        known = {r.id for r in outbox_store.rows(session, states=("dead",), limit=1_000_000)}
        missing = sorted(set(row_ids) - known)
        if missing:
            raise CommandError(f"not dead letters: {', '.join(map(str, missing))}")
        audit.record_cli(session, "update", *(f"Outbox/{i}" for i in (row_ids or sorted(known))),
                         detail={"redrive": True})
    count = outbox.redrive(app, list(row_ids) if row_ids else None)
    click.echo(f"re-driven: {count}")


@outbox_cli.command("link")
@click.argument("row_id", type=int)
@click.argument("ehr_patient")
def link_row(row_id: int, ehr_patient: str) -> None:
    """Link the patient of a held EHR push to the EHR's Patient (EHR_PATIENT, like Patient/123)
    and release the push: it is sent, referring to that Patient."""
    app = _app()
    try:
        reference = patient_match.parse_reference(ehr_patient)
    except patient_match.MatchError as exc:
        raise CommandError(str(exc)) from None
    with session_scope(services(app).sessions) as session:
        intake_id = patient_match.link_held_push(session, row_id, reference, now=utcnow())
        if intake_id is None:
            raise CommandError(f"row {row_id} is not a held EHR push")
        audit.record_cli(session, "update", f"Outbox/{row_id}", f"Intake/{intake_id}",
                         detail={"ehr_patient": reference, "released": True})
    outbox.kick(app)
    click.echo(f"released: row {row_id}, intake {intake_id}, EHR patient {reference}")


@outbox_cli.command("dispatch")
def dispatch_rows() -> None:
    """Hand every due row to the job runner now (with INTAKE_JOBS=celery, to the workers)."""
    click.echo(f"handed over: {outbox.dispatch(_app())}")
