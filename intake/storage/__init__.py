"""Storage at the edge of the service: SQLAlchemy 2 and Alembic, SQLite or PostgreSQL.

- `db`: engine and session set-up (SQLite durability pragmas, PostgreSQL via psycopg 3);
- `models`: the tables, as typed declarative models;
- one query module per aggregate, each function taking the caller's session and never
  committing: `patients`, `intakes` (and the patient pages' `IntakeView`), `invites` (patient
  links), `responses`, `scores`, `flags`, `notifications` (of flags), `worklists` (staff lists),
  `accounts`, `audit_log`, `outbox_store`, `fhir_store`;
- `migrate`: Alembic upgrade and current revision, without an ini file.

Nothing here imports Flask: the web tier, the CLI and background jobs share it.
"""
