"""Rows of a test database, taken once and put back into a fresh database for each test.

For fixtures whose data is expensive to make over HTTP (two completed intakes: ~30 requests,
scoring, FHIR publishing) and that many tests start from: the data is made once per module,
and each test still gets a database of its own to change (a module-scoped database would let
one test's writes leak into the next).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData, func, select, text

from intake.storage.db import make_engine

Snapshot = dict[str, list[dict[str, Any]]]


def take(url: str) -> Snapshot:
    """Every row of every table but alembic_version, by table."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            metadata = MetaData()
            metadata.reflect(connection)
            return {table.name: [dict(row._mapping) for row in connection.execute(select(table))]
                    for table in metadata.sorted_tables if table.name != "alembic_version"}
    finally:
        engine.dispose()


def restore(url: str, snapshot: Snapshot) -> None:
    """Load the snapshot's rows into the freshly migrated, otherwise empty database at `url`.

    A row the migrations seeded (the audit chain's head) is updated to the snapshot's values,
    the others inserted; PostgreSQL's sequences are moved past the loaded ids."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            postgresql = connection.dialect.name == "postgresql"
            metadata = MetaData()
            metadata.reflect(connection)
            for table in metadata.sorted_tables:
                rows = snapshot.get(table.name)
                if not rows:
                    continue
                key = [c.name for c in table.primary_key.columns]
                seeded = {tuple(row) for row in connection.execute(select(*table.primary_key.columns))}
                fresh = [row for row in rows if tuple(row[k] for k in key) not in seeded]
                for row in rows:
                    if tuple(row[k] for k in key) in seeded:
                        where = [table.c[k] == row[k] for k in key]
                        connection.execute(table.update().where(*where).values(**row))
                if fresh:
                    connection.execute(table.insert(), fresh)
                if postgresql:
                    _advance_sequences(connection, table)
    finally:
        engine.dispose()


def _advance_sequences(connection: Any, table: Any) -> None:
    for column in table.columns:
        sequence = connection.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                      {"t": table.name, "c": column.name}).scalar()
        if sequence:
            highest = connection.execute(select(func.max(column))).scalar()
            if highest is not None:
                connection.execute(text("SELECT setval(:s, :v)"), {"s": sequence, "v": highest})
