"""The audit log: who did what to which records, when and from where; tamper-evident.

Each row's hash is SHA-256 over the previous row's hash and this row's fields (canonical JSON), so
changing a field, deleting a row or reordering rows breaks the chain at that row, and truncating
the end no longer matches the head. `verify` walks the chain (`flask intake audit verify`).
Actions, and who may be the actor:

- read, search, pdf, export: staff users, API clients (reads of FHIR resources, summaries, PDFs);
- login, login-failed, logout: staff users; a patient link being opened is the patient's login;
- create, update, delete: any change (users, API clients, intakes and links, a patient's submit).

The log holds record ids and request parameters, never free text a patient typed; it is as
protected as the records it points to (admins only).
"""

from __future__ import annotations

import getpass
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy.orm import Session

from intake.storage import audit_log
from intake.storage.models import AuditRecord

ACTIONS = ("read", "search", "pdf", "export", "login", "login-failed", "logout", "create", "update", "delete")
ACTOR_KINDS = ("user", "client", "patient-link", "anonymous", "cli", "system")
GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    kind: str
    name: str


def _canonical(seq: int, fields: dict[str, object]) -> bytes:
    values = {**fields, "seq": seq}
    at = values["at"]
    values["at"] = at.isoformat() if isinstance(at, datetime) else at
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(prev_hash: str, seq: int, fields: dict[str, object]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + _canonical(seq, fields)).hexdigest()


def row_fields(*, actor: Actor, action: str, now: datetime, entities: Iterable[str] = (), outcome: str = "success",
               detail: dict[str, object] | None = None, source: str = "") -> dict[str, object]:
    """The stored fields of one row (all but its number and hashes)."""
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
    fields = row_fields(actor=actor, action=action, now=now, entities=entities, outcome=outcome, detail=detail, source=source)
    audit_log.append(session, fields, chain_hash)


def record_many(session: Session, batch: list[dict[str, object]]) -> int:
    """Append rows made by `row_fields`, in order, in the caller's transaction."""
    return audit_log.append_many(session, batch, chain_hash)


def _fields(row: AuditRecord) -> dict[str, object]:
    return {"at": row.at, "actor_kind": row.actor_kind, "actor": row.actor, "action": row.action,
            "outcome": row.outcome, "entities": row.entities, "source": row.source, "detail": row.detail}


def verify(session: Session) -> tuple[int, list[str]]:
    """(rows checked, problems); no problems means the chain is intact from the first row to the head."""
    problems: list[str] = []
    previous, expected_seq, count = GENESIS, 1, 0
    for row in audit_log.records(session):
        count += 1
        if row.seq != expected_seq:
            problems.append(f"row {row.seq}: expected row {expected_seq} (rows missing or renumbered)")
        if row.prev_hash != previous:
            problems.append(f"row {row.seq}: does not follow the row before it")
        if chain_hash(row.prev_hash, row.seq, _fields(row)) != row.hash:
            problems.append(f"row {row.seq}: its contents were changed")
        previous, expected_seq = row.hash, row.seq + 1
    head_seq, head_hash = audit_log.head(session)
    if (head_seq, head_hash) != (expected_seq - 1, previous):
        problems.append(f"the log ends at row {expected_seq - 1} but the head says row {head_seq} (rows removed at the end)")
    return count, problems


def cli_actor() -> Actor:
    """Who ran a `flask intake` command: the operating-system account (the terminal has no login)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Actor("cli", name)


def record_cli(session: Session, action: str, *entities: str, detail: dict[str, object] | None = None) -> None:
    """Audit what a `flask intake` command did, in its transaction."""
    record(session, actor=cli_actor(), action=action, now=datetime.now(timezone.utc), entities=entities,
           detail=detail, source="cli")


def row_dict(row: AuditRecord) -> dict[str, object]:
    """A row as the plain mapping `intake.core.audit_event.audit_event` takes."""
    return {**_fields(row), "seq": row.seq, "hash": row.hash}
