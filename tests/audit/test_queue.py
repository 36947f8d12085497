"""intake.audit.queue: read rows written behind the request, in order, chained; or at once (sync)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from intake import audit
from intake.audit.queue import AuditQueue
from intake.storage.db import make_session_factory
from intake.storage.models import AuditRecord


def fields(n: int) -> dict[str, object]:
    return audit.row_fields(actor=audit.Actor("client", f"c{n}"), action="read", now=datetime.now(timezone.utc),
                            entities=[f"Patient/{n}"], source="127.0.0.1")


def keyed(engine: Engine) -> sessionmaker[Session]:
    """Relaxed-commit sessions that carry an audit key, as the app's are (intake.web.auditing)."""
    factory = make_session_factory(engine, relaxed=True)
    audit.use_key([factory], audit.audit_key("the audit key of the queue tests, 32+"), 100)
    return factory


def stored(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(AuditRecord.actor).order_by(AuditRecord.seq)))


def test_rows_from_many_threads_are_all_written_and_the_chain_holds(engine: Engine) -> None:
    relaxed = keyed(engine)
    writes = AuditQueue(relaxed, "behind")

    def put_many(start: int) -> None:
        for n in range(start, start + 100):
            writes.put(fields(n))

    threads = [threading.Thread(target=put_many, args=(k * 100,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writes.flush()
    actors = stored(relaxed)
    assert sorted(actors) == sorted(f"c{n}" for n in range(400))
    with relaxed() as session:
        count, problems = audit.verify(session)
    assert (count, problems) == (400, [])
    assert writes._thread is not None and writes._thread.name == "intake-audit"


def test_sync_mode_writes_before_returning(engine: Engine) -> None:
    factory = keyed(engine)
    writes = AuditQueue(factory, "sync")
    writes.put(fields(1))
    assert stored(factory) == ["c1"] and writes._thread is None
    with pytest.raises(ValueError, match="INTAKE_AUDIT_QUEUE"):
        AuditQueue(factory, "later")
