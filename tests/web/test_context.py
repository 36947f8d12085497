"""intake.web.context: the request's read session, fresh read sessions, the write transaction, the catalog."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from flask import Flask, g
from sqlalchemy import func, select

from intake.services import services
from intake.storage import outbox_store
from intake.storage.db import READ_ONLY_OPTION
from intake.storage.models import OutboxRecord
from intake.web.context import catalog, reader, readers, writer

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def _rows(app: Flask, subject: str) -> int:
    with services(app).sessions() as session:
        return session.scalar(select(func.count()).select_from(OutboxRecord).where(OutboxRecord.subject == subject)) or 0


def _read_only(session: object) -> bool:
    return bool(session.get_bind().get_execution_options().get(READ_ONLY_OPTION))  # type: ignore[attr-defined]


def test_reader_is_one_read_only_session_per_request_closed_at_teardown(app: Flask) -> None:
    with app.test_request_context("/"):
        first = reader()
        assert reader() is first  # opened on first use, then the same for the whole request
        assert _read_only(first)
        first.execute(select(1))
        assert first.in_transaction()
    assert not first.in_transaction()  # closed when the request's context ended
    with app.test_request_context("/"):
        assert "reader" not in g  # nothing opened until asked for
        assert reader() is not first


def test_readers_gives_a_fresh_read_only_session_per_block(app: Flask) -> None:
    with app.test_request_context("/"):
        with readers() as one, readers() as two:
            assert one is not two and one is not reader()
            assert _read_only(one) and _read_only(two)
            one.execute(select(1))
        assert not one.in_transaction()  # closed at the end of its block


def test_writer_commits_on_success(app: Flask) -> None:
    with app.test_request_context("/", method="POST"):
        with writer() as db:
            assert not _read_only(db)
            outbox_store.enqueue(db, "probe", "committed", now=NOW)
        assert _rows(app, "committed") == 1


def test_writer_rolls_back_on_error(app: Flask) -> None:
    with app.test_request_context("/", method="POST"):
        with pytest.raises(RuntimeError), writer() as db:
            outbox_store.enqueue(db, "probe", "rolled-back", now=NOW)
            raise RuntimeError("the view failed after writing")
        assert _rows(app, "rolled-back") == 0


def test_a_committed_write_is_seen_by_a_later_read_session(app: Flask) -> None:
    with app.test_request_context("/"):
        with writer() as db:
            outbox_store.enqueue(db, "probe", "seen", now=NOW)
        with readers() as fresh:
            count = select(func.count()).select_from(OutboxRecord).where(OutboxRecord.subject == "seen")
            assert fresh.scalar(count) == 1


def test_catalog_is_the_apps_loaded_catalog(app: Flask) -> None:
    with app.test_request_context("/"):
        assert catalog() is services(app).catalog
        assert catalog().by_key  # the forms/ Questionnaires
