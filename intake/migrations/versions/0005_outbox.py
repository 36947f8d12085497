"""The outbox: background work written in the same transaction as its cause.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", _utc(), nullable=False),
        sa.Column("after_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("done_at", _utc(), nullable=True),
        sa.Column("last_error", sa.String(255), nullable=True),
        sa.CheckConstraint("state IN ('pending', 'queued', 'done', 'dead')", name=op.f("ck_outbox_state")),
        sa.ForeignKeyConstraint(["after_id"], ["outbox.id"], name=op.f("fk_outbox_after_id_outbox")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_state_due_at", "outbox", ["state", "due_at"])
    op.create_index(op.f("ix_outbox_subject"), "outbox", ["subject"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_subject"), table_name="outbox")
    op.drop_index("ix_outbox_state_due_at", table_name="outbox")
    op.drop_table("outbox")
