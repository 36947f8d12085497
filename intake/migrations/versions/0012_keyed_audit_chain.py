"""Keyed audit chain (reserved for issue 15; filled in by the change that needs it).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from typing import Sequence, Union

revision: str = "0012"
down_revision: Union[str, Sequence[str], None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
