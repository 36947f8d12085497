"""Bulk export expiry: each job has a time after which it and its files are deleted.

Jobs made before this revision expire 24 hours (the default INTAKE_BULK_EXPORT_TTL_HOURS) after
their last change, as if they had been made under it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("export_jobs") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.execute("UPDATE export_jobs SET expires_at = strftime('%Y-%m-%d %H:%M:%f', updated_at, '+24 hours')")
    else:
        op.execute("UPDATE export_jobs SET expires_at = updated_at + interval '24 hours'")
    with op.batch_alter_table("export_jobs") as batch:
        batch.alter_column("expires_at", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index(op.f("ix_export_jobs_expires_at"), "export_jobs", ["expires_at"])
    op.create_index(op.f("ix_export_jobs_requested_by"), "export_jobs", ["requested_by"])


def downgrade() -> None:
    op.drop_index(op.f("ix_export_jobs_requested_by"), table_name="export_jobs")
    op.drop_index(op.f("ix_export_jobs_expires_at"), table_name="export_jobs")
    with op.batch_alter_table("export_jobs") as batch:
        batch.drop_column("expires_at")
