"""`flask intake ...`: thin commands over the same functions the views use.

The `intake` group gathers the commands of its submodules: `intakes` (init-db, lint-forms,
invite, demo), `score`, `flags` (flags, rescore), `fhir` (api-client, publish, group, pdf,
export, ehr check), `accounts` (user, audit) and `outbox`. A refused command raises
`intake.cli.failure.CommandError`: one line `error: ...` on stderr, exit status 1; nothing a
patient typed is echoed to logs.
"""

from __future__ import annotations

from flask import Flask
from flask.cli import AppGroup

from intake.cli.accounts import audit_cli, user_cli
from intake.cli.fhir import (
    api_client_command,
    ehr_cli,
    export_command,
    group_command,
    pdf_command,
    publish_command,
)
from intake.cli.flags import flags_command, rescore_command
from intake.cli.intakes import demo, init_db, invite, lint_forms
from intake.cli.outbox import outbox_cli
from intake.cli.score import score as score_command  # not `score`: that names the submodule

intake_cli = AppGroup("intake", help="Intake service commands.")
for _command in (init_db, lint_forms, invite, demo, score_command, flags_command, rescore_command,
                 api_client_command, publish_command, group_command, pdf_command, export_command, user_cli,
                 audit_cli, outbox_cli, ehr_cli):
    intake_cli.add_command(_command)


def register(app: Flask) -> None:
    """Add `flask intake ...` to the app's command line."""
    app.cli.add_command(intake_cli)
