"""Observation `category` becomes a search parameter: index the categories of stored Observations.

New Observations get their `category` tokens when published; this adds them to the Observations
already in the store (read from their stored JSON), so `Observation?category=survey` finds old
and new alike. Only tokens are added; no resource changes version.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    bind = op.get_bind()
    after = 0
    while True:
        rows = bind.execute(sa.text(
            "SELECT seq, resource_json FROM fhir_resources WHERE resource_type = 'Observation' AND seq > :after "
            "AND NOT EXISTS (SELECT 1 FROM fhir_tokens t WHERE t.resource_seq = fhir_resources.seq "
            "AND t.param = 'category') ORDER BY seq LIMIT :batch"), {"after": after, "batch": BATCH}).all()
        if not rows:
            return
        tokens = [
            {"seq": row.seq, "system": coding.get("system"), "value": str(coding["code"])[:320]}
            for row in rows for category in json.loads(row.resource_json).get("category") or []
            for coding in category.get("coding") or [] if "code" in coding
        ]
        if tokens:
            bind.execute(sa.text("INSERT INTO fhir_tokens (resource_seq, param, system, value) "
                                 "VALUES (:seq, 'category', :system, :value)"), tokens)
        after = rows[-1].seq


def downgrade() -> None:
    op.execute("DELETE FROM fhir_tokens WHERE param = 'category'")
