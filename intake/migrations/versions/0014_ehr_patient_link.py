"""EHR patient matching: a patient's link to the EHR's own Patient, and held EHR pushes.

`patients.ehr_reference` holds the EHR's Patient reference (`Patient/123`) when staff named it at
the invitation or linked a held push to it. The outbox gains the state "held": an EHR push for a
patient the EHR cannot be matched to waits there (INTAKE_EHR_UNMATCHED_PATIENT=hold) until staff
link the patient and release it.

Downgrading drops the link and turns held pushes into dead letters (the older code knows no
"held"; a dead letter is what an admin re-drives by hand, which then creates the Patient).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = "state IN ('pending', 'queued', 'done', 'dead', 'held')"
OLD_STATES = "state IN ('pending', 'queued', 'done', 'dead')"


def upgrade() -> None:
    op.add_column("patients", sa.Column("ehr_reference", sa.String(255), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(op.f("ck_outbox_state"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_state"), sa.text(STATES))


def downgrade() -> None:
    op.execute("UPDATE outbox SET state = 'dead' WHERE state = 'held'")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(op.f("ck_outbox_state"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_state"), sa.text(OLD_STATES))
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+, PostgreSQL): a batch copy of `patients` would
    # drop a table that other tables' foreign keys name
    op.execute("ALTER TABLE patients DROP COLUMN ehr_reference")
