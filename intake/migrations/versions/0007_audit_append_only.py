"""The audit log is append-only in the database itself; a pending TOTP secret is kept server-side.

Triggers refuse UPDATE and DELETE of audit rows (and TRUNCATE on PostgreSQL), removing the chain's
head row, and moving the head backwards. The hash chain already *detects* tampering; these make
the service's own database account unable to do it by mistake or through a bug, so only someone
who can change the schema (drop a trigger) can, and `flask intake audit verify` still tells.

`staff_sessions.totp_pending`: the secret offered while a staff member turns on two-step sign-in
was kept in the signed (readable) session cookie; it now stays in the database with the session.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "the audit log is append-only"

_POSTGRES_UP = [
    f"""CREATE OR REPLACE FUNCTION intake_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{MESSAGE}: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END $$""",
    ("CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log "
     "FOR EACH ROW EXECUTE FUNCTION intake_audit_append_only()"),
    ("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
     "FOR EACH STATEMENT EXECUTE FUNCTION intake_audit_append_only()"),
    ("CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
     "FOR EACH ROW EXECUTE FUNCTION intake_audit_append_only()"),
    ("CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head "
     "FOR EACH STATEMENT EXECUTE FUNCTION intake_audit_append_only()"),
    ("CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head "
     "FOR EACH ROW WHEN (NEW.seq < OLD.seq OR NEW.id <> OLD.id) EXECUTE FUNCTION intake_audit_append_only()"),
]
_POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log",
    "DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log",
    "DROP TRIGGER IF EXISTS audit_head_no_delete ON audit_head",
    "DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_head",
    "DROP TRIGGER IF EXISTS audit_head_forward_only ON audit_head",
    "DROP FUNCTION IF EXISTS intake_audit_append_only()",
]
_SQLITE_UP = [
    f"CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
    f"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
    f"CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
    ("CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head WHEN NEW.seq < OLD.seq OR NEW.id <> OLD.id "
     f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"),
]
_SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS audit_log_no_update",
    "DROP TRIGGER IF EXISTS audit_log_no_delete",
    "DROP TRIGGER IF EXISTS audit_head_no_delete",
    "DROP TRIGGER IF EXISTS audit_head_forward_only",
]


def _statements(up: bool) -> list[str]:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        return _POSTGRES_UP if up else _POSTGRES_DOWN
    if dialect == "sqlite":
        return _SQLITE_UP if up else _SQLITE_DOWN
    raise NotImplementedError(f"no append-only triggers written for {dialect}")


def upgrade() -> None:
    with op.batch_alter_table("staff_sessions") as batch:
        batch.add_column(sa.Column("totp_pending", sa.String(64), nullable=True))
    for statement in _statements(up=True):
        op.execute(statement)


def downgrade() -> None:
    for statement in _statements(up=False):
        op.execute(statement)
    with op.batch_alter_table("staff_sessions") as batch:
        batch.drop_column("totp_pending")
