"""`flask intake api-client`, `publish`, `group`, `pdf`, `export` and `ehr check`: the FHIR API's
clients, its store, what it exports, and the EHR it pushes to, from a terminal."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from intake import audit, documents, workflow
from intake.auth import smart
from intake.cli.failure import CommandError
from intake.core.extract import is_local_reference
from intake.core.fhir_time import utcnow
from intake.fhir import bulk_export, ehr_capability, ehr_push, publish
from intake.services import services
from intake.storage import fhir_store, intakes
from intake.storage import patients as patient_store
from intake.storage.db import session_scope


@click.command("api-client")
@click.argument("name")
@click.option("--jwks", "jwks_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The client's public JWK set (RS384 or ES384 keys), a JSON file.")
@click.option("--scope", "scopes", multiple=True, default=("system/*.read",), show_default=True,
              help="A scope the client may be granted (repeat), e.g. system/Observation.read.")
@click.option("--revoke", is_flag=True, help="Revoke NAME instead (no new access tokens).")
@with_appcontext
def api_client_command(name: str, jwks_path: Path | None, scopes: tuple[str, ...], revoke: bool) -> None:
    """Register (or update) the SMART Backend Services client NAME: its public keys and scopes."""
    name = " ".join(name.split())
    with session_scope(services().sessions) as session:
        if revoke:
            count = fhir_store.revoke_api_client(session, name, now=utcnow())
            if count:
                audit.record_cli(session, "delete", f"ApiClient/{name}")
            click.echo(f"revoked {name}" if count else f"no active client {name}")
            return
        if jwks_path is None:
            raise CommandError("give --jwks FILE (the client's public keys)")
        try:
            client = smart.register_client(session, name=name, jwks_text=jwks_path.read_text(encoding="utf-8"),
                                           scopes=" ".join(scopes), now=utcnow())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        allowed = client.scopes
        audit.record_cli(session, "create", f"ApiClient/{name}")
    click.echo(
        f"client {name}: {allowed}; token endpoint {current_app.config['INTAKE_BASE_URL'].rstrip('/')}/auth/token"
    )


@click.command("publish")
@click.argument("intake_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every completed intake.")
@with_appcontext
def publish_command(intake_ids: tuple[str, ...], everything: bool) -> None:
    """(Re)build the FHIR resources of completed intakes (after an upgrade, or a failed publish)."""
    app = current_app
    catalog = services(app).catalog
    with session_scope(services(app).sessions) as session:
        ids = intakes.completed_intake_ids(session) if everything else list(intake_ids)
    if not ids:
        raise CommandError("give intake ids or --all")
    failed = 0
    for intake_id in ids:
        with session_scope(services(app).sessions) as session:
            try:
                forms = [form for form, _ in workflow.stored_pairs(session, catalog, intake_id, latest=False)]
            except workflow.WorkflowError as exc:
                click.echo(f"{intake_id}: {exc}", err=True)
                failed += 1
                continue
            if not workflow.publish(session, intake_id, forms, now=utcnow()):
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
    if not is_local_reference(f"Group/{group_id}"):
        raise CommandError("a group id is 1 to 64 letters, digits, '-' or '.'")
    with session_scope(services().sessions) as session:
        missing = [p for p in patients if patient_store.get_patient(session, p) is None]
        if missing:
            raise CommandError(f"no patient {missing[0]!r}")
        publish.publish_group(session, group_id=group_id, name=" ".join(name.split()),
                              patient_ids=list(dict.fromkeys(patients)), now=utcnow())
    click.echo(f"Group/{group_id}: {len(set(patients))} patient(s)")


@click.command("pdf")
@click.argument("intake_id")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the PDF.")
@with_appcontext
def pdf_command(intake_id: str, output: Path) -> None:
    """Write the clinician PDF of a completed intake (the stored one; rendered now if missing)."""
    with session_scope(services().sessions) as session:
        try:
            document = documents.document_for(session, services().catalog, intake_id)
        except (documents.DocumentError, publish.PublishError, workflow.WorkflowError) as exc:
            raise CommandError(str(exc)) from None
        content = document.content
        audit.record_cli(session, "pdf", f"Intake/{intake_id}", detail={"output": str(output)[:200]})
    _write(output, content)
    click.echo(f"{output}: {len(content)} bytes")


@click.command("export")
@click.argument("intake_id", required=False)
@click.option("--all", "everything", is_flag=True, help="Every resource, as NDJSON per type (bulk export).")
@click.option("--since", default=None, help="With --all: only resources changed after this FHIR instant or date.")
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The folder to write into (created if missing).")
@with_appcontext
def export_command(intake_id: str | None, everything: bool, since: str | None, output: Path) -> None:
    """Write one intake's $extract Bundles and PDF, or (--all) NDJSON per resource type."""
    app = current_app
    if everything == bool(intake_id) or (since and not everything):
        raise CommandError("give INTAKE_ID, or --all [--since DATE]")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"{output}: {exc.strerror}") from None
    if everything:
        try:
            since_at = bulk_export.since_of(since)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        counts = bulk_export.write_ndjson(app, output, types=list(bulk_export.SYSTEM_TYPES),
                                          since=since_at) or {}  # None only when cancelled: never here
        assert counts is not None  # None means cancelled, and nothing cancels this export
        with session_scope(services(app).sessions) as session:
            audit.record_cli(
                session, "export", detail={"scope": "system", "since": since or "", "output": str(output)[:200]}
            )
        click.echo(", ".join(f"{t}: {n}" for t, n in counts.items() if n) or "nothing to export")
        return
    with session_scope(services(app).sessions) as session:
        try:
            document = documents.document_for(session, services(app).catalog, intake_id or "")
            files = [(name, data) for name, data, _ in documents.attachments_of(session, intake_id or "")]
            bundle = publish.extract_bundle(session, intake_id or "")
        except (documents.DocumentError, publish.PublishError, workflow.WorkflowError) as exc:
            raise CommandError(str(exc)) from None
        content = document.content
        audit.record_cli(session, "export", f"Intake/{intake_id}", detail={"output": str(output)[:200]})
    _write(output / "extract-bundle.json", documents.extract_bundle_bytes(bundle))
    for name, data in files:
        _write(output / name, data)
    _write(output / "screening-summary.pdf", content)
    click.echo(f"{output}: extract-bundle.json, {len(files)} response file(s), screening-summary.pdf")


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror}") from None


ehr_cli = AppGroup("ehr", help="The EHR the service pushes completed intakes to.")


@ehr_cli.command("check")
def ehr_check_command() -> None:
    """Read the EHR's CapabilityStatement and say which push mode fits, one line per finding;
    exit 1 when it cannot be read or the settings do not fit."""
    try:
        target = ehr_push.target_of(current_app)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if target is None:
        raise CommandError("INTAKE_EHR_FHIR_BASE is not set: this deployment pushes to no EHR")
    try:
        verdict = ehr_capability.judge(ehr_capability.fetch(target), target)
    except ehr_capability.CapabilityError as exc:
        raise CommandError(str(exc)) from None
    for line in verdict.findings:
        click.echo(line)
    click.echo(f"mode: {verdict.mode}")
    if verdict.problems:
        raise CommandError(f"{verdict.problems} finding(s) above stop pushes to {target.base}")
