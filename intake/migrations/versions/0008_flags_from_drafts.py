"""Flags raised while the patient is still answering: where a flag came from, and whether the
answers still raise it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.add_column(sa.Column("source", sa.String(16), nullable=False, server_default="submitted"))
        batch.add_column(sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint("source", "source IN ('draft', 'submitted')")


def downgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.drop_constraint("source", type_="check")
        batch.drop_column("cleared_at")
        batch.drop_column("source")
