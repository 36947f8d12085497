"""Queries of the audit log: append (chained to the head under a row lock) and read in order.

Rows are only ever inserted; nothing here updates or deletes one. The head row is locked with
``SELECT ... FOR UPDATE`` (PostgreSQL; SQLite's write transactions are already serial), so
concurrent writers get consecutive numbers and each row is chained to the one before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from intake.storage.models import AuditHead, AuditRecord


def append(session: Session, fields: dict[str, object], chain: Callable[[str, int, dict[str, object]], str]) -> AuditRecord:
    """Insert one row after the head; `chain(prev_hash, seq, fields)` gives its hash."""
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()).one()
    seq = head.seq + 1
    digest = chain(head.hash, seq, fields)
    record = AuditRecord(seq=seq, prev_hash=head.hash, hash=digest, **fields)
    session.add(record)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=digest))
    session.flush()
    return record


def head(session: Session) -> tuple[int, str]:
    row = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    return row.seq, row.hash


def records(session: Session, *, since: datetime | None = None, until: datetime | None = None,
            action: str | None = None, actor: str | None = None, limit: int | None = None,
            newest_first: bool = False) -> Iterator[AuditRecord]:
    """Rows in chain order (or newest first), streamed in batches."""
    query = select(AuditRecord)
    if since is not None:
        query = query.where(AuditRecord.at >= since)
    if until is not None:
        query = query.where(AuditRecord.at < until)
    if action:
        query = query.where(AuditRecord.action == action)
    if actor:
        query = query.where(AuditRecord.actor == actor)
    query = query.order_by(AuditRecord.seq.desc() if newest_first else AuditRecord.seq)
    if limit is not None:
        query = query.limit(limit)
    yield from session.scalars(query.execution_options(yield_per=1000))
