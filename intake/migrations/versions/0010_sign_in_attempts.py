"""Staff sign-in attempts (reserved for issue 15): no schema change in the end.

The sign-in limits of issue 15 (per address and user name, softly per user name, wrong TOTP codes
per account) count in the rate-limit storage (INTAKE_RATE_LIMIT_STORAGE) with the others, and a
TOTP step is claimed with a conditional UPDATE of users.totp_last_step, which exists. The empty
revision keeps the reserved chain 0009 -> 0010 -> 0011 intact.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
