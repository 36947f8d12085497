"""`flask intake flags` and `rescore`: the staff side of scoring from a terminal."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from intake import notify, workflow
from intake.cli.failure import CommandError
from intake.jobs import outbox
from intake.services import services
from intake.storage import flags, intakes, notifications
from intake.storage.db import session_scope


@click.command("flags")
@with_appcontext
@click.option("--all-tiers", is_flag=True, help="Include review-tier flags.")
@click.option("--send", is_flag=True, help="Send pending notifications now (and retry failed ones).")
def flags_command(all_tiers: bool, send: bool) -> None:
    """List emergency and urgent flags (newest first), one per line, including those raised from
    intakes the patient has not sent, and those a later answer no longer raises ("cleared")."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    factory = services(app).sessions
    if send:
        with session_scope(factory) as session:
            notifications.retry_failed_notifications(session)
        sent = notify.send_pending(app)
        click.echo(f"notifications sent: {sent}" if notify.configured(app)
                   else "no notification channel configured (INTAKE_NOTIFY_WEBHOOK / INTAKE_NOTIFY_EMAIL_TO)")
    tiers = ("emergency", "urgent", "review") if all_tiers else flags.NOTIFIED_TIERS
    with session_scope(factory) as session:
        rows = workflow.staff_flags(session, services(app).catalog, tiers=tiers)
        for row in rows:
            flag = row.flag
            # Where it came from (an unsent draft, or the sent intake) and whether the answers
            # still raise it; never the answers themselves (a terminal is no place for them).
            source = "draft" if row.from_draft else "sent"
            if row.from_draft and row.intake_status != "completed":
                source = "draft (not sent)"
            state = f"cleared {flag.cleared_at:%Y-%m-%d %H:%M}Z" if flag.cleared_at else "raised"
            click.echo(f"{flag.raised_at:%Y-%m-%d %H:%M}Z  {flag.tier:<9} {flag.rule_id:<24} intake {flag.intake_id}  "
                       f"from {source}  {state}  notify {flag.notify_state}")
    if not rows:
        click.echo("no flags")


@click.command("rescore")
@with_appcontext
@click.argument("intake_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every completed intake.")
def rescore_command(intake_ids: tuple[str, ...], everything: bool) -> None:
    """Recompute scores and flags with the Questionnaire versions loaded now."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    factory = services(app).sessions
    if not intake_ids and not everything:
        raise CommandError("name intake ids or use --all")
    if everything:
        with session_scope(factory) as session:
            intake_ids = tuple(intakes.completed_intake_ids(session))
    for intake_id in intake_ids:
        try:
            with session_scope(factory) as session:
                # Audited; the PDF shows the new scores, new flags are notified, the EHR gets the new Bundle.
                result = workflow.rescore_intake(app, session, services(app).catalog, intake_id,
                                                 by=workflow.Caller.cli())
        except workflow.WorkflowError as exc:
            raise CommandError(str(exc)) from None
        click.echo(f"{intake_id}: {len(result.scores)} scores, {len(result.flags)} flags "
                   f"({'; '.join(sorted(set(result.versions.values())))})")
    outbox.kick(app)
