"""Keyed audit chain: each audit row records how its hash was made (`scheme`).

Rows already in the log keep their unkeyed SHA-256 hashes and get scheme "sha256"; rows written
from now on are HMAC-SHA256 under `INTAKE_AUDIT_KEY` (scheme "hmac-sha256:<key id>"), so
`flask intake audit verify` reports which range is keyed and refuses an unkeyed row after a keyed
one. ADD COLUMN with a constant default rewrites no row: the append-only triggers of migration
0007 (UPDATE/DELETE) are not involved and stay in place (a batch table copy on SQLite would drop them).

A log that already has rows is announced on the migration's log (an AUDIT_ANCHOR line of its head,
and the number to set as INTAKE_AUDIT_UNKEYED_ROWS): only that many unkeyed rows are accepted
later, so nobody can pass keyed rows off as old unkeyed ones by rewriting them.

Downgrading drops the column; keyed rows then no longer verify with the older code.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

import json
import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("scheme", sa.String(32), nullable=False, server_default="sha256"))
    head = op.get_bind().execute(sa.text("SELECT seq, hash FROM audit_head WHERE id = 1")).first()
    if head is not None and head.seq > 0:
        anchor = json.dumps({"seq": head.seq, "hash": head.hash, "key": ""}, separators=(",", ":"))
        logging.getLogger("intake.audit.anchor").warning(
            "AUDIT_ANCHOR %s: audit rows 1-%d were written before the chain was keyed; set "
            "INTAKE_AUDIT_UNKEYED_ROWS=%d and keep this line", anchor, head.seq, head.seq)


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+, PostgreSQL), not a batch copy that loses the triggers
    op.execute("ALTER TABLE audit_log DROP COLUMN scheme")
