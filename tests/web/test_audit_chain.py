"""The keyed audit chain and its anchors (issue 15, finding 4): whoever can write the database but
lacks INTAKE_AUDIT_KEY cannot rebuild the chain behind a change; anchors in the application log
catch a tail cut off, or a history rewritten even with the key, back to the last anchor."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from intake import audit
from intake.config import load_config
from intake.services import services
from intake.storage import audit_log, migrate
from intake.storage.db import make_engine, make_session_factory, session_scope
from intake.storage.models import AuditHead, AuditRecord
from tests.conftest import AppFactory
from tests.web.test_auditing import guards_off, guards_on

KEY = "k" * 16 + "the audit key of these tests"
OTHER_KEY = "another key, also 32 characters long"
FIELDS = ("at", "actor_kind", "actor", "action", "outcome", "entities", "source", "detail")


def keyed(engine: Engine, key: str = KEY, *, every: int = 10, unkeyed_rows: int = 0) -> sessionmaker[Session]:
    factory = make_session_factory(engine)
    audit.use_key([factory], audit.audit_key(key), every, unkeyed_rows)
    return factory


def write(factory: sessionmaker[Session], count: int, start: int = 0) -> None:
    with session_scope(factory) as session:
        audit.record_many(session, [
            audit.row_fields(actor=audit.Actor("client", f"c{n}"), action="read", now=datetime.now(UTC),
                             entities=[f"Patient/{n}"], source="127.0.0.1") for n in range(start, start + count)])


def check(factory: sessionmaker[Session], anchors: list[tuple[int, str]] | None = None) -> audit.Check:
    with factory() as session:
        return audit.check(session, anchors or [])


def anchors_logged(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return list(audit.read_anchors(r.getMessage() for r in caplog.records if r.name == "intake.audit.anchor"))


def rebuild(factory: sessionmaker[Session], chain: Callable[[str, int, dict[str, object]], str], *,
            drop: int | None = None, scheme: str | None = None, change: int | None = None) -> None:
    """What the finding describes: with the triggers off, remove (or change) a row, then renumber
    and recompute every hash with `chain`, and move the head to match."""
    with session_scope(factory) as session:
        guards_off(session)
        rows = session.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()
        kept = [({name: getattr(row, name) for name in FIELDS}, row.scheme) for row in rows if row.seq != drop]
        session.execute(delete(AuditRecord))
        previous = audit.GENESIS
        for seq, (fields, row_scheme) in enumerate(kept, 1):
            if seq == change:
                fields["actor"] = "someone-else"
            row_scheme = scheme or row_scheme
            hashed = fields if row_scheme == audit.UNKEYED else {**fields, "scheme": row_scheme}
            digest = chain(previous, seq, hashed)
            session.execute(insert(AuditRecord.__table__), [{**fields, "scheme": row_scheme, "seq": seq,
                                                             "prev_hash": previous, "hash": digest}])
            previous = digest
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=len(kept), hash=previous))
        guards_on(session)


def truncate(factory: sessionmaker[Session], keep: int) -> None:
    """Cut the log back to its first `keep` rows and move the head back with it (triggers off)."""
    with session_scope(factory) as session:
        guards_off(session)
        last = session.scalars(select(AuditRecord.hash).where(AuditRecord.seq == keep)).one()
        session.execute(delete(AuditRecord).where(AuditRecord.seq > keep))
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=keep, hash=last))
        guards_on(session)


def test_finding_4_a_clean_keyed_chain_passes(engine: Engine) -> None:
    factory = keyed(engine)
    write(factory, 5)
    write(factory, 3, start=5)
    result = check(factory)
    assert (result.count, result.problems, result.keyed, result.unkeyed) == (8, [], (1, 8), None)
    with factory() as session:
        schemes = set(session.scalars(select(AuditRecord.scheme)))
    assert schemes == {f"hmac-sha256:{audit.audit_key(KEY).id}"}


@pytest.mark.parametrize("attack", ["unkeyed-hash", "relabelled-as-unkeyed", "guessed-key", "changed-row"])
def test_finding_4_a_chain_rebuilt_without_the_key_fails_verify(engine: Engine, attack: str) -> None:
    factory = keyed(engine)
    write(factory, 6)
    guessed = audit.audit_key(OTHER_KEY)
    if attack == "unkeyed-hash":  # the finding, word for word: delete a row, recompute with chain_hash
        rebuild(factory, audit.chain_hash, drop=3)
    elif attack == "relabelled-as-unkeyed":  # pass every row off as written before the chain was keyed
        rebuild(factory, audit.chain_hash, drop=3, scheme=audit.UNKEYED)
    elif attack == "guessed-key":  # the right scheme label, any key but the real one
        rebuild(factory, lambda p, s, f: audit.keyed_hash(guessed, p, s, f), drop=3)
    else:
        rebuild(factory, audit.chain_hash, change=2)
    with factory() as session:
        count, problems = audit.verify(session)
    assert count == (6 if attack == "changed-row" else 5) and problems, problems


def test_finding_4_the_wrong_key_fails_verify(engine: Engine) -> None:
    write(keyed(engine), 4)
    assert check(keyed(engine)).problems == []
    problems = check(keyed(engine, OTHER_KEY)).problems
    assert len(problems) == 4 and all("not written with this key" in p for p in problems)
    with pytest.raises(ValueError, match="at least 32"):
        audit.audit_key("short")


def test_finding_4_truncation_after_an_anchor_is_detected_by_the_anchors(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="intake.audit.anchor")
    factory = keyed(engine, every=10)
    for start in range(0, 25, 5):
        write(factory, 5, start)
    anchors = anchors_logged(caplog)
    assert {10, 20} <= {seq for seq, _ in anchors} and max(seq for seq, _ in anchors) <= 25
    truncate(factory, 14)
    assert check(factory).problems == []  # the chain alone cannot see a cut tail: that is what anchors are for
    problems = check(factory, anchors).problems
    assert problems and "anchored row 20" in problems[-1]
    assert check(factory, [a for a in anchors if a[0] <= 14]).problems == []  # only up to the last anchor


def test_finding_4_history_rewritten_with_the_key_contradicts_the_anchors(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="intake.audit.anchor")
    factory = keyed(engine, every=10)
    write(factory, 12)
    anchors = anchors_logged(caplog)
    key = audit.audit_key(KEY)
    rebuild(factory, lambda p, s, f: audit.keyed_hash(key, p, s, f), change=5)
    assert check(factory).problems == []  # whoever holds the key and the database can rewrite the chain...
    problems = check(factory, anchors).problems
    assert any("row 10: differs from the hash anchored" in p for p in problems)  # ...but not the anchored rows


def test_finding_4_anchors_are_logged_after_commit_only(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="intake.audit.anchor")
    factory = keyed(engine, every=2)
    with factory() as session, session.begin():
        audit.record_many(session, [audit.row_fields(actor=audit.Actor("cli", "t"), action="read",
                                                     now=datetime.now(UTC)) for _ in range(4)])
        assert anchors_logged(caplog) == []
        session.rollback()
    assert anchors_logged(caplog) == []  # a rolled-back row is never anchored: its number is reused
    with factory() as session, session.begin(), pytest.raises(RuntimeError), session.begin_nested():
        audit.record_many(session, [audit.row_fields(actor=audit.Actor("cli", "t"), action="read",
                                                     now=datetime.now(UTC)) for _ in range(2)])
        raise RuntimeError("a savepoint rolled back")
    assert anchors_logged(caplog) == []  # nor one from a savepoint that was rolled back
    write(factory, 4)
    with factory() as session:
        rows = {seq: digest for seq, digest in session.execute(select(AuditRecord.seq, AuditRecord.hash))}
    assert sorted(set(anchors_logged(caplog))) == [(2, rows[2]), (4, rows[4])]


def test_finding_4_unkeyed_rows_from_before_the_upgrade_pass_only_up_to_the_setting(engine: Engine) -> None:
    legacy = make_session_factory(engine)
    with session_scope(legacy) as session:  # rows as the code before migration 0012 wrote them
        for n in range(3):
            audit_log.append(session, audit.row_fields(actor=audit.Actor("cli", f"old{n}"), action="create",
                                                       now=datetime.now(UTC)), audit.chain_hash)
    write(keyed(engine, unkeyed_rows=3), 2)
    result = check(keyed(engine, unkeyed_rows=3))
    assert (result.problems, result.unkeyed, result.keyed) == ([], (1, 3), (4, 5))
    problems = check(keyed(engine, unkeyed_rows=0)).problems
    assert len(problems) == 1 and "rows 1-3 (3): unkeyed" in problems[0]


def test_finding_4_migration_0012_keeps_old_rows_verifiable_and_announces_them(
        empty_database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    migrate.upgrade(empty_database_url, "0011")
    engine = make_engine(empty_database_url)
    try:
        with session_scope(make_session_factory(engine)) as session:  # the log as the code before 0012 wrote it
            for n in range(3):
                audit_log.append(session, audit.row_fields(actor=audit.Actor("cli", f"old{n}"), action="create",
                                                           now=datetime.now(UTC)), audit.chain_hash)
            head = audit_log.head(session)
        caplog.set_level(logging.INFO, logger="intake.audit.anchor")
        migrate.upgrade(empty_database_url)
        announced = [r.getMessage() for r in caplog.records if r.name == "intake.audit.anchor"]
        assert len(announced) == 1 and "INTAKE_AUDIT_UNKEYED_ROWS=3" in announced[0]
        assert list(audit.read_anchors(announced)) == [head]
        factory = keyed(engine, unkeyed_rows=3)
        write(factory, 2)
        result = check(factory, [head])
        assert (result.problems, result.unkeyed, result.keyed, result.anchors) == ([], (1, 3), (4, 5), 1)
        with factory() as session, pytest.raises(DBAPIError, match="append-only"), session.begin():
            session.execute(delete(AuditRecord).where(AuditRecord.seq == 1))  # the triggers survived the migration
    finally:
        engine.dispose()


def test_finding_4_production_requires_the_audit_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTAKE_AUDIT_KEY", raising=False)
    with pytest.raises(ValueError, match="INTAKE_AUDIT_KEY must be set in production"):
        load_config(tmp_path, {"INTAKE_JOBS": "celery"})
    assert load_config(tmp_path, {"INTAKE_JOBS": "celery", "INTAKE_AUDIT_KEY": KEY})["INTAKE_AUDIT_KEY"] == KEY
    monkeypatch.setenv("INTAKE_AUDIT_KEY", KEY)
    assert load_config(tmp_path, {"INTAKE_JOBS": "celery"})["INTAKE_AUDIT_KEY"] == KEY
    monkeypatch.delenv("INTAKE_AUDIT_KEY")
    embedded = load_config(tmp_path / "embedded")["INTAKE_AUDIT_KEY"]  # the embedded default: a key of its own
    assert len(embedded) == 64 and load_config(tmp_path / "embedded")["INTAKE_AUDIT_KEY"] == embedded
    assert os.stat(tmp_path / "embedded" / "audit_key").st_mode & 0o077 == 0


@pytest.fixture
def keyed_app(make_app: AppFactory) -> Flask:
    return make_app(INTAKE_AUDIT_KEY=KEY, INTAKE_AUDIT_ANCHOR_ROWS=5, INTAKE_AUDIT_QUEUE="sync")


def test_finding_4_cli_verify_checks_the_key_and_the_anchors_of_a_log_file(
        keyed_app: Flask, make_app: AppFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="intake.audit.anchor")
    runner = keyed_app.test_cli_runner()
    write(services(keyed_app).sessions, 12)
    anchored = runner.invoke(args=["intake", "audit", "anchor"])  # the head, for cron
    assert anchored.exit_code == 0 and anchored.output.startswith("AUDIT_ANCHOR {\"seq\":12,")
    log = tmp_path / "app.log"
    log.write_text("".join(f"2026-12-07 12:00:00 INFO intake.audit.anchor {r.getMessage()}\n" for r in caplog.records
                           if r.name == "intake.audit.anchor"), encoding="utf-8")
    ok = runner.invoke(args=["intake", "audit", "verify", "--anchors", str(log)])
    assert ok.exit_code == 0, ok.output
    assert "rows 1-12: keyed" in ok.output and "the latest at row 12" in ok.output and "intact: 12 rows" in ok.output

    truncate(services(keyed_app).sessions, 11)
    assert runner.invoke(args=["intake", "audit", "verify"]).exit_code == 0  # the chain alone: consistent
    cut = runner.invoke(args=["intake", "audit", "verify", "--anchors", str(log)])
    assert cut.exit_code == 1 and "TAMPERED" in cut.output and "anchored row 12" in cut.output
    (tmp_path / "empty.log").write_text("no anchors here\n", encoding="utf-8")
    assert runner.invoke(args=["intake", "audit", "verify", "--anchors", str(tmp_path / "empty.log")]).exit_code == 1

    other = make_app(INTAKE_AUDIT_KEY=OTHER_KEY)  # the same database
    wrong = other.test_cli_runner().invoke(args=["intake", "audit", "verify"])
    assert wrong.exit_code == 1 and "not written with this key" in wrong.output
