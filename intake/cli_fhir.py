"""`flask intake api-client` and `publish`: the FHIR API's clients and its store, from a terminal."""

from __future__ import annotations

import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from intake import workflow
from intake.auth import new_token, token_hash
from intake.storage import fhir_store, repository
from intake.storage.db import session_scope
from intake.storage.models import utcnow


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.command("api-client")
@click.argument("name")
@click.option("--revoke", is_flag=True, help="Revoke every active token of NAME instead.")
@with_appcontext
def api_client_command(name: str, revoke: bool) -> None:
    """Create a FHIR API client NAME and print its bearer token (shown once; only a hash is kept)."""
    name = " ".join(name.split())
    if not name or len(name) > 255:
        _fail("a client name of 1 to 255 characters is required")
    with session_scope(current_app.extensions["intake.sessions"]) as session:
        if revoke:
            count = fhir_store.revoke_api_client(session, name, now=utcnow())
            click.echo(f"revoked {count} token(s) of {name}")
            return
        token = new_token()
        fhir_store.add_api_client(session, name=name, token_hash=token_hash(token), now=utcnow())
    click.echo(token)


@click.command("publish")
@click.argument("intake_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every completed intake.")
@with_appcontext
def publish_command(intake_ids: tuple[str, ...], everything: bool) -> None:
    """(Re)build the FHIR resources of completed intakes (after an upgrade, or a failed publish)."""
    app = current_app
    catalog = app.extensions["intake.catalog"]
    with session_scope(app.extensions["intake.sessions"]) as session:
        ids = repository.completed_intake_ids(session) if everything else list(intake_ids)
    if not ids:
        _fail("give intake ids or --all")
    failed = 0
    for intake_id in ids:
        with session_scope(app.extensions["intake.sessions"]) as session:
            try:
                forms = [form for form, _ in workflow.stored_pairs(session, catalog, intake_id, latest=False)]
            except workflow.WorkflowError as exc:
                click.echo(f"{intake_id}: {exc}", err=True)
                failed += 1
                continue
            if not workflow.publish(session, intake_id, forms, now=utcnow(), mrn_system=app.config["INTAKE_MRN_SYSTEM"]):
                click.echo(f"{intake_id}: not published (see the log)", err=True)
                failed += 1
    click.echo(f"published {len(ids) - failed} of {len(ids)} intake(s)")
    if failed:
        sys.exit(1)


@click.command("group")
@click.argument("group_id")
@click.option("--name", required=True, help="What the group is (e.g. 'GI clinic, Tuesday list').")
@click.option("--patient", "patients", multiple=True, required=True, help="A patient id (repeat).")
@with_appcontext
def group_command(group_id: str, name: str, patients: tuple[str, ...]) -> None:
    """Create or replace the Group GROUP_ID of patients, for `GET /fhir/Group/GROUP_ID/$export`."""
    from intake import records
    from intake.core.extract import is_local_reference

    if not is_local_reference(f"Group/{group_id}"):
        _fail("a group id is 1 to 64 letters, digits, '-' or '.'")
    with session_scope(current_app.extensions["intake.sessions"]) as session:
        missing = [p for p in patients if repository.get_patient(session, p) is None]
        if missing:
            _fail(f"no patient {missing[0]!r}")
        records.publish_group(session, group_id=group_id, name=" ".join(name.split()),
                              patient_ids=list(dict.fromkeys(patients)), now=utcnow())
    click.echo(f"Group/{group_id}: {len(set(patients))} patient(s)")
