"""Storage at the edge of the service: SQLAlchemy 2 and Alembic, SQLite or PostgreSQL.

- `db`: engine and session set-up (SQLite durability pragmas, PostgreSQL via psycopg 3);
- `models`: the tables, as typed declarative models;
- `repository`: every query, each function taking the caller's session;
- `migrate`: Alembic upgrade and current revision, without an ini file.

Nothing here imports Flask: the web tier, the CLI and background jobs share it.
"""
