"""Migration 0014 (EHR patient link, held pushes) up and down on the suite's database (SQLite, or
PostgreSQL with INTAKE_TEST_DATABASE_URL), with rows in the tables it changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from intake.storage import migrate
from intake.storage.db import make_engine
from tests.storage.factories import insert_patient_and_intake

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def _insert_outbox(connection: object, row_id: int, state: str) -> None:
    connection.execute(text(  # type: ignore[attr-defined]
        "INSERT INTO outbox (id, kind, subject, state, attempts, due_at, created_at, updated_at) "
        "VALUES (:id, 'ehr_push', 'intake-1', :state, 1, :now, :now, :now)"),
        {"id": row_id, "state": state, "now": NOW})


def test_0014_adds_the_link_and_held_state_and_downgrades_keeping_the_rows(empty_database_url: str) -> None:
    url = empty_database_url
    migrate.upgrade(url, "0013")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            insert_patient_and_intake(connection, status="completed", now=NOW)
            _insert_outbox(connection, 1, "dead")
        with pytest.raises(IntegrityError), engine.begin() as connection:
            _insert_outbox(connection, 2, "held")  # not a state before 0014
        engine.dispose()

        migrate.upgrade(url, "0014")
        assert migrate.current_revision(url) == "0014"
        with engine.begin() as connection:
            connection.execute(text("UPDATE patients SET ehr_reference = 'Patient/123' WHERE id = 'p1'"))
            _insert_outbox(connection, 2, "held")
        with pytest.raises(IntegrityError), engine.begin() as connection:
            _insert_outbox(connection, 3, "parked")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT ehr_reference FROM patients")).scalar_one() == "Patient/123"
        engine.dispose()

        command.downgrade(migrate.alembic_config(url), "0013")
        assert migrate.current_revision(url) == "0013"
        with engine.connect() as connection:
            assert "ehr_reference" not in {c["name"] for c in inspect(connection).get_columns("patients")}
            states = dict(connection.execute(text("SELECT id, state FROM outbox ORDER BY id")).all())
            assert connection.execute(text("SELECT count(*) FROM intakes")).scalar_one() == 1
        assert states == {1: "dead", 2: "dead"}  # a held push becomes a dead letter the old code knows
        with pytest.raises(IntegrityError), engine.begin() as connection:
            _insert_outbox(connection, 4, "held")
        engine.dispose()
        migrate.upgrade(url, "0014")  # and up again
        assert migrate.current_revision(url) == "0014"
    finally:
        engine.dispose()
