"""Patient links and the sessions they open: a new link is held server-side until shown once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shown_links",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("intake_id", sa.String(36), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shown_links")),
        sa.ForeignKeyConstraint(["intake_id"], ["intakes.id"], name=op.f("fk_shown_links_intake_id_intakes")),
    )
    op.create_index(op.f("ix_shown_links_intake_id"), "shown_links", ["intake_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_shown_links_intake_id"), table_name="shown_links")
    op.drop_table("shown_links")
