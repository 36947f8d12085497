"""Queries of the audit log: append (chained to the head under a row lock) and read in order.
What a row's hash is (keyed, since migration 0012) is the caller's `chain`: see `intake.audit`.

Rows are only ever inserted; nothing here updates or deletes one. The head row is locked with
``SELECT ... FOR UPDATE`` (PostgreSQL; SQLite's write transactions are already serial), so
concurrent writers get consecutive numbers and each row is chained to the one before it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from intake.storage.models import AuditHead, AuditRecord

Chain = Callable[[str, int, dict[str, object]], str]

# Core statements built once: appending is on every audited request, and the ORM's per-statement
# work cost ten times the database's (1 ms against 0.1 ms per row on SQLite).
_HEAD_TABLE = cast(Table, AuditHead.__table__)
_LOG_TABLE = cast(Table, AuditRecord.__table__)
_LOCK_HEAD = select(_HEAD_TABLE.c.seq, _HEAD_TABLE.c.hash).where(_HEAD_TABLE.c.id == 1).with_for_update()
_INSERT = insert(_LOG_TABLE)
_MOVE_HEAD = update(_HEAD_TABLE).where(_HEAD_TABLE.c.id == 1)


def append(session: Session, fields: dict[str, object], chain: Chain) -> tuple[int, str]:
    """Insert one row after the head; `chain(prev_hash, seq, fields)` gives its hash. Returns
    the row's (seq, hash)."""
    return append_many(session, [fields], chain)[0]


def append_many(session: Session, batch: list[dict[str, object]], chain: Chain) -> list[tuple[int, str]]:
    """Insert rows in order after the head: one lock, one (multi-row) insert, one head update.
    Returns each row's (seq, hash), in order."""
    if not batch:
        return []
    connection = session.connection()
    seq, previous = connection.execute(_LOCK_HEAD).one()
    values = []
    for fields in batch:
        seq += 1
        digest = chain(previous, seq, fields)
        values.append({**fields, "seq": seq, "prev_hash": previous, "hash": digest})
        previous = digest
    connection.execute(_INSERT, values)
    connection.execute(_MOVE_HEAD, {"seq": seq, "hash": previous})
    return [(row["seq"], row["hash"]) for row in values]


def head(session: Session) -> tuple[int, str]:
    row = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    return row.seq, row.hash


def records(session: Session, *, since: datetime | None = None, until: datetime | None = None,
            action: str | None = None, actor: str | None = None, entity: str | None = None,
            before_seq: int | None = None, limit: int | None = None,
            newest_first: bool = False) -> Iterator[AuditRecord]:
    """Rows in chain order (or newest first), streamed in batches. `entity` ("Intake/abc") keeps
    the rows that name that record; `before_seq` keeps rows numbered below it (keyset paging)."""
    query = select(AuditRecord)
    if since is not None:
        query = query.where(AuditRecord.at >= since)
    if until is not None:
        query = query.where(AuditRecord.at < until)
    if action:
        query = query.where(AuditRecord.action == action)
    if actor:
        query = query.where(AuditRecord.actor == actor)
    if entity:
        # `entities` is a JSON array of strings: match the quoted string, so "Intake/1" is not
        # found inside "Intake/12"
        query = query.where(AuditRecord.entities.contains(json.dumps(entity), autoescape=True))
    if before_seq is not None:
        query = query.where(AuditRecord.seq < before_seq)
    query = query.order_by(AuditRecord.seq.desc() if newest_first else AuditRecord.seq)
    if limit is not None:
        query = query.limit(limit)
    result = session.scalars(query.execution_options(yield_per=1000))
    try:
        yield from result
    finally:  # a reader that stops early (a closed download) must not leave the server-side cursor open
        result.close()
