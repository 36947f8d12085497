"""Invitations and reminders: patient contact details, link opened/sealed, the messages table.

`patients.email` and `patients.phone` are where invitations go (PHI). `invite_tokens.opened_at` is
when the patient first opened the link; `invite_tokens.sealed` keeps the raw link encrypted while
messages still have to carry it (intake/invitations.py). `patient_messages` holds one row per
invitation or reminder and channel.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("patients", sa.Column("email", sa.String(254), nullable=True))
    op.add_column("patients", sa.Column("phone", sa.String(16), nullable=True))
    op.add_column("invite_tokens", sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("invite_tokens", sa.Column("sealed", sa.Text(), nullable=True))
    op.create_table(
        "patient_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("intake_id", sa.String(36), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.CheckConstraint("purpose IN ('invitation', 'reminder')", name=op.f("ck_patient_messages_purpose")),
        sa.CheckConstraint("channel IN ('email', 'sms')", name=op.f("ck_patient_messages_channel")),
        sa.CheckConstraint("state IN ('scheduled', 'sent', 'cancelled', 'failed')",
                           name=op.f("ck_patient_messages_state")),
        sa.ForeignKeyConstraint(["intake_id"], ["intakes.id"], name=op.f("fk_patient_messages_intake_id_intakes")),
        sa.ForeignKeyConstraint(["link_id"], ["invite_tokens.id"],
                                name=op.f("fk_patient_messages_link_id_invite_tokens")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_messages")),
    )
    op.create_index(op.f("ix_patient_messages_intake_id"), "patient_messages", ["intake_id"])
    op.create_index(op.f("ix_patient_messages_link_id"), "patient_messages", ["link_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_patient_messages_link_id"), table_name="patient_messages")
    op.drop_index(op.f("ix_patient_messages_intake_id"), table_name="patient_messages")
    op.drop_table("patient_messages")
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+, PostgreSQL), as 0014 does: a batch copy would drop
    # tables that other tables' foreign keys name
    op.execute("ALTER TABLE invite_tokens DROP COLUMN sealed")
    op.execute("ALTER TABLE invite_tokens DROP COLUMN opened_at")
    op.execute("ALTER TABLE patients DROP COLUMN phone")
    op.execute("ALTER TABLE patients DROP COLUMN email")
