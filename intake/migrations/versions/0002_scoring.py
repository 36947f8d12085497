"""Scoring results and red flags.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

One row of computed results per completed intake (the engine's JSON, with the versions that
produced it, so it can be recomputed), and one row per raised flag: the staff list, and the
once-only notification state.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "scoring_results",
        sa.Column("intake_id", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(36), nullable=False),
        sa.Column("scoring_versions", sa.JSON(), nullable=False),
        sa.Column("result_json", sa.Text(), nullable=False),
        sa.Column("computed_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("intake_id", name=op.f("pk_scoring_results")),
        sa.ForeignKeyConstraint(["intake_id"], ["intakes.id"], name=op.f("fk_scoring_results_intake_id_intakes")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_scoring_results_patient_id_patients")),
    )
    op.create_index(op.f("ix_scoring_results_patient_id"), "scoring_results", ["patient_id"])

    op.create_table(
        "flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("intake_id", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(36), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("because", sa.JSON(), nullable=False),
        sa.Column("questionnaire", sa.String(320), nullable=False),
        sa.Column("scoring_version", sa.String(319), nullable=False),
        sa.Column("raised_at", _utc(), nullable=False),
        sa.Column("notify_state", sa.String(16), nullable=False),
        sa.Column("notified_at", _utc(), nullable=True),
        sa.Column("notify_error", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flags")),
        sa.ForeignKeyConstraint(["intake_id"], ["intakes.id"], name=op.f("fk_flags_intake_id_intakes")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], name=op.f("fk_flags_patient_id_patients")),
        sa.UniqueConstraint("intake_id", "rule_id", name=op.f("uq_flags_intake_id_rule_id")),
        sa.CheckConstraint("tier IN ('emergency', 'urgent', 'review')", name=op.f("ck_flags_tier")),
        sa.CheckConstraint(
            "notify_state IN ('pending', 'sending', 'sent', 'failed', 'not-required')",
            name=op.f("ck_flags_notify_state"),
        ),
    )
    op.create_index(op.f("ix_flags_intake_id"), "flags", ["intake_id"])
    op.create_index(op.f("ix_flags_patient_id"), "flags", ["patient_id"])
    op.create_index(op.f("ix_flags_tier"), "flags", ["tier"])


def downgrade() -> None:
    op.drop_table("flags")
    op.drop_table("scoring_results")
