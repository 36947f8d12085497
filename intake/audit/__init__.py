"""The audit log: who did what to which records, when and from where; tamper-evident.

Each row's hash is an HMAC-SHA256, under the audit key (`INTAKE_AUDIT_KEY`, never stored in the
database), of the previous row's hash and this row's fields (canonical JSON, the row's `scheme`
included), so changing a field, deleting a row or reordering rows breaks the chain at that row, and
truncating the end no longer matches the head. Without the key nobody can compute a valid row, so
whoever can write the database (drop the append-only triggers, delete a row) cannot rebuild the
chain behind it. Rows written before migration 0012 keep their unkeyed SHA-256 (`scheme`
"sha256"); `check` says which range is keyed and refuses an unkeyed row after a keyed one.

The head is also anchored outside the database: after a commit that writes row N x
`INTAKE_AUDIT_ANCHOR_ROWS` (and on each process's first write, and on `flask intake audit anchor`),
an `AUDIT_ANCHOR {"seq": ..., "hash": ...}` line goes to the application log. `check` given those
lines (`flask intake audit verify --anchors FILE`) finds a tail cut off back to before an anchor,
and a history rewritten by someone who holds the key. See docs/security.md for what this does not
guarantee. Actions, and who may be the actor:

- read, search, pdf, export: staff users, API clients (reads of FHIR resources, summaries, PDFs);
- login, login-failed, logout: staff users; a patient link being opened is the patient's login;
- create, update, delete: any change (users, API clients, intakes and links, a patient's submit).

The log holds record ids and request parameter names, never free text a patient typed nor query
values; it is as protected as the records it points to (admins only).
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import unquote_plus

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from intake.core.fhir_time import utcnow
from intake.storage import audit_log
from intake.storage.models import AuditRecord

ACTIONS = ("read", "search", "pdf", "export", "login", "login-failed", "logout", "create", "update", "delete")
ACTOR_KINDS = ("user", "client", "patient-link", "anonymous", "cli", "system")
GENESIS = "0" * 64
UNKEYED = "sha256"  # rows written before migration 0012
KEYED = "hmac-sha256"  # scheme of keyed rows: "hmac-sha256:<key id>"
MIN_KEY_LENGTH = 32
MAX_PROBLEMS = 1000  # a log checked with the wrong key would otherwise name every row

# Where a session finds its key and anchor state (`use_key`): sessions of one app share them.
_INFO = "intake.audit"
_PENDING = "intake.audit.anchors"
anchor_log = logging.getLogger("intake.audit.anchor")
ANCHOR_MARK = "AUDIT_ANCHOR"
_ANCHOR_LINE = re.compile(ANCHOR_MARK + r" (\{[^\n]*?\})")


@dataclass(frozen=True)
class Actor:
    kind: str
    name: str


@dataclass(frozen=True)
class AuditKey:
    """The chain's secret and its public id (a fingerprint: names the key, reveals nothing)."""

    secret: bytes = field(repr=False)
    id: str

    @property
    def scheme(self) -> str:
        return f"{KEYED}:{self.id}"


def audit_key(secret: str) -> AuditKey:
    if len(secret) < MIN_KEY_LENGTH:
        raise ValueError(f"the audit key must be at least {MIN_KEY_LENGTH} characters")
    raw = secret.encode()
    return AuditKey(raw, hmac.new(raw, b"intake audit key id", hashlib.sha256).hexdigest()[:12])


@dataclass
class _Anchoring:
    """Per app (shared by its sessions): the key, how often to anchor, whether this process has."""

    key: AuditKey
    every: int
    unkeyed_rows: int = 0
    pid_anchored: int = 0


def use_key(factories: Iterable[sessionmaker[Session]], key: AuditKey, anchor_every: int, unkeyed_rows: int = 0) -> None:
    """Give the sessions these factories make (one app's) the audit key, and log anchors after
    their commits. `unkeyed_rows`: how many rows were written before the chain was keyed (set
    outside the database, so rewriting keyed rows as unkeyed ones cannot pass for history)."""
    state = _Anchoring(key, max(1, anchor_every), max(0, unkeyed_rows))
    for factory in factories:
        factory.configure(info={_INFO: state})
        event.listen(factory, "after_commit", _log_pending)
        event.listen(factory, "after_soft_rollback", _drop_pending)



def key_of(session: Session) -> AuditKey:
    return _anchoring(session).key


def _anchoring(session: Session) -> _Anchoring:
    state = session.info.get(_INFO)
    if not isinstance(state, _Anchoring):
        raise RuntimeError("this session has no audit key: make it with a factory given to intake.audit.use_key")
    return state


def _canonical(seq: int, fields: dict[str, object]) -> bytes:
    values = {**fields, "seq": seq}
    at = values["at"]
    values["at"] = at.isoformat() if isinstance(at, datetime) else at
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(prev_hash: str, seq: int, fields: dict[str, object]) -> str:
    """The unkeyed hash of rows written before migration 0012 (anyone can compute it)."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + _canonical(seq, fields)).hexdigest()


def keyed_hash(key: AuditKey, prev_hash: str, seq: int, fields: dict[str, object]) -> str:
    """HMAC-SHA256 of what `chain_hash` covers; `fields` include the row's scheme."""
    return hmac.new(key.secret, prev_hash.encode() + b"\n" + _canonical(seq, fields), hashlib.sha256).hexdigest()


def row_fields(*, actor: Actor, action: str, now: datetime, entities: Iterable[str] = (), outcome: str = "success",
               detail: dict[str, object] | None = None, source: str = "") -> dict[str, object]:
    """The stored fields of one row (all but its number, scheme and hashes)."""
    if action not in ACTIONS or actor.kind not in ACTOR_KINDS:
        raise ValueError(f"unknown audit action {action!r} or actor kind {actor.kind!r}")
    return {
        "at": now.astimezone(timezone.utc), "actor_kind": actor.kind, "actor": actor.name[:255], "action": action,
        "outcome": outcome, "entities": json.dumps(sorted(set(entities))), "source": source[:64],
        "detail": json.dumps(detail or {}, sort_keys=True, separators=(",", ":")),
    }


def record(session: Session, *, actor: Actor, action: str, now: datetime, entities: Iterable[str] = (),
           outcome: str = "success", detail: dict[str, object] | None = None, source: str = "") -> None:
    """Append one row in the caller's transaction (so a change and its audit row commit together)."""
    record_many(session, [row_fields(actor=actor, action=action, now=now, entities=entities, outcome=outcome,
                                     detail=detail, source=source)])


def record_many(session: Session, batch: list[dict[str, object]]) -> int:
    """Append rows made by `row_fields`, in order, keyed, in the caller's transaction; the anchors
    they reach are logged once the transaction commits (a rolled-back row must not be anchored)."""
    state = _anchoring(session)
    key = state.key
    written = audit_log.append_many(session, [{**fields, "scheme": key.scheme} for fields in batch],
                                    lambda prev, seq, fields: keyed_hash(key, prev, seq, fields))
    if written:
        pending = session.info.setdefault(_PENDING, {})
        pending.update((seq, digest) for seq, digest in written if seq % state.every == 0)
        last_seq, last_hash = written[-1]
        if state.pid_anchored != os.getpid():
            pending[last_seq] = last_hash  # this process's first write: where it found the log
    return len(written)


def _log_pending(session: Session) -> None:
    pending: dict[int, str] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    state = _anchoring(session)
    state.pid_anchored = os.getpid()
    for seq in sorted(pending):
        log_anchor(seq, pending[seq], state.key)


def _drop_pending(session: Session, _rolled_back: object) -> None:
    """Any rollback, a savepoint's included, drops every pending anchor: a missing anchor only
    weakens the check, an anchor of a row that was never committed would be a false alarm."""
    session.info.pop(_PENDING, None)


def log_anchor(seq: int, digest: str, key: AuditKey) -> str:
    """Write one anchor line to the application log (row number and hash only: no PHI)."""
    payload = json.dumps({"seq": seq, "hash": digest, "key": key.id, "at": utcnow().isoformat(
        timespec="seconds")}, separators=(",", ":"))
    line = f"{ANCHOR_MARK} {payload}"
    anchor_log.info("%s", line)
    return line


def anchor_head(session: Session) -> str:
    """Log (and return) the anchor line of the head as it stands."""
    seq, digest = audit_log.head(session)
    return log_anchor(seq, digest, key_of(session))


def read_anchors(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(seq, hash) of every anchor line in a log, whatever prefix the log's format put before it."""
    for line in lines:
        for found in _ANCHOR_LINE.finditer(line):
            try:
                anchor = json.loads(found.group(1))
                seq, digest = int(anchor["seq"]), str(anchor["hash"])
            except (ValueError, KeyError, TypeError):
                continue
            yield seq, digest


def _fields(row: AuditRecord) -> dict[str, object]:
    fields: dict[str, object] = {
        "at": row.at, "actor_kind": row.actor_kind, "actor": row.actor, "action": row.action, "outcome": row.outcome,
        "entities": row.entities, "source": row.source, "detail": row.detail}
    if row.scheme != UNKEYED:
        fields["scheme"] = row.scheme
    return fields


@dataclass
class Check:
    """What `check` found: rows read, problems, the unkeyed and keyed ranges, anchors compared."""

    count: int = 0
    problems: list[str] = field(default_factory=list)
    unkeyed: tuple[int, int] | None = None
    keyed: tuple[int, int] | None = None
    anchors: int = 0
    last_anchor: int = 0
    key_id: str = ""

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("(more problems not listed)")


def _widen(span: tuple[int, int] | None, seq: int) -> tuple[int, int]:
    return (seq, seq) if span is None else (span[0], seq)


def check(session: Session, anchors: Iterable[tuple[int, str]] = ()) -> Check:
    """Walk the chain from the first row to the head with the session's key; compare each anchored
    (seq, hash) with the row of that number. No problems means intact (see `Check`)."""
    state = _anchoring(session)
    key = state.key
    late_unkeyed: list[int] = []
    anchored: dict[int, set[str]] = {}
    for seq, digest in anchors:
        anchored.setdefault(seq, set()).add(digest)
    result = Check(key_id=key.id)
    previous, expected_seq = GENESIS, 1
    for row in audit_log.records(session):
        result.count += 1
        if row.seq != expected_seq:
            result.problem(f"row {row.seq}: expected row {expected_seq} (rows missing or renumbered)")
        if row.prev_hash != previous:
            result.problem(f"row {row.seq}: does not follow the row before it")
        if row.scheme == UNKEYED:
            if result.keyed is not None:
                result.problem(f"row {row.seq}: unkeyed after keyed rows (rewritten without the key)")
            elif row.seq > state.unkeyed_rows:
                late_unkeyed.append(row.seq)
            elif chain_hash(row.prev_hash, row.seq, _fields(row)) != row.hash:
                result.problem(f"row {row.seq}: its contents were changed")
            result.unkeyed = _widen(result.unkeyed, row.seq)
        else:
            if row.scheme != key.scheme:
                result.problem(f"row {row.seq}: not written with this key (its scheme says {row.scheme[:40]!r}, "
                               f"this key is {key.scheme!r}): another key, or forged")
            elif keyed_hash(key, row.prev_hash, row.seq, _fields(row)) != row.hash:
                result.problem(f"row {row.seq}: its contents were changed")
            result.keyed = _widen(result.keyed, row.seq)
        for digest in anchored.get(row.seq, ()):
            if digest != row.hash:
                result.problem(f"row {row.seq}: differs from the hash anchored in the log (history rewritten)")
            else:
                result.anchors += 1
                result.last_anchor = max(result.last_anchor, row.seq)
        previous, expected_seq = row.hash, row.seq + 1
    if late_unkeyed:
        result.problem(f"rows {late_unkeyed[0]}-{late_unkeyed[-1]} ({len(late_unkeyed)}): unkeyed, but only rows up to "
                       f"{state.unkeyed_rows} were written before the chain was keyed (INTAKE_AUDIT_UNKEYED_ROWS): "
                       "rewritten without the key, or that setting is not yet made after upgrading")
    last = expected_seq - 1
    head_seq, head_hash = audit_log.head(session)
    if (head_seq, head_hash) != (last, previous):
        result.problem(f"the log ends at row {last} but the head says row {head_seq} (rows removed at the end)")
    beyond = [seq for seq in anchored if seq > last]
    if beyond:
        result.problem(f"the log ends at row {last} but the application log anchored row {max(beyond)} "
                       "(rows removed at the end)")
    return result


def verify(session: Session) -> tuple[int, list[str]]:
    """(rows checked, problems); no problems means the chain is intact from the first row to the head."""
    result = check(session)
    return result.count, result.problems


def cli_actor() -> Actor:
    """Who ran a `flask intake` command: the operating-system account (the terminal has no login)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Actor("cli", name)


def record_cli(session: Session, action: str, *entities: str, detail: dict[str, object] | None = None) -> None:
    """Audit what a `flask intake` command did, in its transaction."""
    record(session, actor=cli_actor(), action=action, now=utcnow(), entities=entities,
           detail=detail, source="cli")


def row_dict(row: AuditRecord) -> dict[str, object]:
    """A row as the plain mapping `intake.core.audit_event.audit_event` takes (`detail` as shown:
    see `shown_detail`)."""
    return {**_fields(row), "detail": shown_detail(row.detail), "seq": row.seq, "hash": row.hash}


def shown_detail(detail: str) -> str:
    """A row's detail for display and export. Rows written before query values were left out held
    the raw query string (names, birth dates): only its parameter names are shown."""
    if '"query"' not in detail:
        return detail
    try:
        parsed = json.loads(detail)
    except ValueError:
        return detail
    if not isinstance(parsed, dict) or not isinstance(parsed.get("query"), str):
        return detail
    parsed["query"] = query_names(parsed["query"])
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"))


_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]{0,63}")


def query_names(query: str) -> list[str]:
    """The parameter names of a query string, sorted, without their values (which may be a
    patient's name or birth date). A name that does not look like one is shown as "?"."""
    names = set()
    for part in query.split("&"):
        if not part:
            continue
        name = unquote_plus(part.split("=", 1)[0])
        names.add(name if _PARAM_NAME.fullmatch(name) else "?")
    return sorted(names)[:50]
