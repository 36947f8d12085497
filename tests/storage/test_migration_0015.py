"""Migration 0015 (contact details, link opened/sealed, patient messages) up and down on the
suite's database, with rows in the tables it changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from intake.storage import migrate
from intake.storage.db import make_engine
from tests.storage.factories import insert_patient_and_intake

NOW = datetime(2026, 12, 8, 12, tzinfo=UTC)


def _message(connection: object, message_id: int, state: str) -> None:
    connection.execute(text(  # type: ignore[attr-defined]
        "INSERT INTO patient_messages (id, intake_id, link_id, purpose, channel, language, state, due_at, "
        "created_at) VALUES (:id, 'i1', 1, 'reminder', 'sms', 'es', :state, :now, :now)"),
        {"id": message_id, "state": state, "now": NOW})


def test_0015_adds_contacts_and_messages_and_downgrades_keeping_the_rows(empty_database_url: str) -> None:
    url = empty_database_url
    migrate.upgrade(url, "0014")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            insert_patient_and_intake(connection, status="not-started", now=NOW)
            connection.execute(text("INSERT INTO invite_tokens (id, intake_id, token_hash, created_at, expires_at) "
                                    "VALUES (1, 'i1', :hash, :now, :now)"), {"hash": "a" * 64, "now": NOW})
        engine.dispose()
        migrate.upgrade(url, "0015")
        with engine.begin() as connection:
            connection.execute(text("UPDATE patients SET email = 'ana@example.org', phone = '+15551234567'"))
            connection.execute(text("UPDATE invite_tokens SET sealed = 'gAAAA', opened_at = :now"), {"now": NOW})
            _message(connection, 1, "scheduled")
        with pytest.raises(IntegrityError), engine.begin() as connection:
            _message(connection, 2, "lost")
        engine.dispose()
        command.downgrade(migrate.alembic_config(url), "0014")
        with engine.connect() as connection:
            assert not {"email", "phone"} & {c["name"] for c in inspect(connection).get_columns("patients")}
            assert not {"sealed", "opened_at"} & {c["name"] for c in inspect(connection).get_columns("invite_tokens")}
            assert "patient_messages" not in inspect(connection).get_table_names()
            assert connection.execute(text("SELECT count(*) FROM invite_tokens")).scalar_one() == 1
        engine.dispose()
        migrate.upgrade(url)
        assert migrate.current_revision(url) == "0015"
    finally:
        engine.dispose()
