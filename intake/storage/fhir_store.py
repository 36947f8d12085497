"""Queries of the FHIR store: put, read, search (keyset pages), stream; PDFs and export jobs.

A query module beside those of the intake workflow's tables (`intakes`, `responses`, ...): the
FHIR store is its own aggregate, written by `intake.fhir.publish` and read by the FHIR API and bulk
export. Views never build SQL; they pass `Criteria` built by `intake.fhir.search`.

Stored JSON is the canonical text (`intake.core.canonical`) and is returned untouched, so a
read costs one indexed row fetch and no JSON parsing.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.core.canonical import canonical_json
from intake.core.fhir_time import fhir_instant, require_aware, utcnow
from intake.errors import IntakeError
from intake.storage.models import (
    ApiClient,
    DocumentRecord,
    ExportJob,
    FhirResource,
    FhirToken,
    UsedAssertion,
)

Token = tuple[str, str | None, str]  # (parameter, system or None, value)
Op = Literal["eq", "ne", "lt", "le", "gt", "ge"]
COLUMNS = {
    "id": FhirResource.resource_id,
    "patient": FhirResource.patient_id,
    "status": FhirResource.status,
    "date": FhirResource.date,
    "lastUpdated": FhirResource.last_updated,
}


@dataclass(frozen=True)
class ColumnTest:
    """A comparison on one of the copied columns (see COLUMNS)."""

    column: str
    op: Op
    value: Any


@dataclass(frozen=True)
class TokenTest:
    """A match on an indexed (param, system, value): `system` None matches any system, ""
    only values without one; `match` "exact", "prefix" or "contains" (names)."""

    param: str
    value: str
    system: str | None = None
    match: Literal["exact", "prefix", "contains"] = "exact"


Test = ColumnTest | TokenTest


@dataclass(frozen=True)
class Sort:
    """Order matches by one of the date columns ("date" or "lastUpdated"), resources without a
    value last in either direction; ties (and the rest) in store order."""

    column: str
    descending: bool = False


@dataclass
class Criteria:
    """A search: every condition must hold; a condition holds when any of its alternatives
    does; an alternative is a conjunction of tests (a date range is two). `sort` None: store order."""

    resource_type: str
    conditions: list[list[list[Test]]] = field(default_factory=list)
    sort: Sort | None = None


@dataclass(frozen=True)
class StoredResource:
    resource_type: str
    resource_id: str
    version_id: int
    last_updated: datetime
    resource_json: str
    seq: int


# --- writing -----------------------------------------------------------------------------------


def put_resource(
    session: Session,
    resource: dict[str, Any],
    *,
    now: datetime,
    patient_id: str | None = None,
    intake_id: str | None = None,
    status: str | None = None,
    date: datetime | None = None,
    tokens: Sequence[Token] = (),
) -> StoredResource:
    """Insert or update a resource; a new version only when its content (meta aside) changed.

    Sets `meta.versionId` and `meta.lastUpdated` on the stored text. The caller has validated
    the resource; this stores exactly what it is given.
    """
    require_aware(now, "now")
    rtype, rid = resource["resourceType"], resource["id"]
    body = {k: v for k, v in resource.items() if k != "meta"}
    existing = session.execute(
        select(FhirResource.seq, FhirResource.version_id, FhirResource.last_updated, FhirResource.resource_json)
        .where(FhirResource.resource_type == rtype, FhirResource.resource_id == rid)
    ).one_or_none()
    if existing is not None:
        old = _without_meta(existing.resource_json)
        if old == canonical_json(body):
            return StoredResource(
                rtype, rid, existing.version_id, existing.last_updated, existing.resource_json, existing.seq
            )
    version = 1 if existing is None else existing.version_id + 1
    meta = dict(resource.get("meta") or {})
    meta.update({"versionId": str(version), "lastUpdated": fhir_instant(now)})
    text = canonical_json({**body, "meta": meta})
    values = dict(version_id=version, last_updated=now, patient_id=patient_id, intake_id=intake_id,
                  status=status, date=date, resource_json=text)
    if existing is None:
        seq = session.execute(
            insert(FhirResource).values(resource_type=rtype, resource_id=rid, **values).returning(FhirResource.seq)
        ).scalar_one()
    else:
        seq = existing.seq
        session.execute(update(FhirResource).where(FhirResource.seq == seq).values(**values))
        session.execute(delete(FhirToken).where(FhirToken.resource_seq == seq))
    if tokens:
        session.execute(insert(FhirToken), [
            {"resource_seq": seq, "param": p, "system": s, "value": v[:320]} for p, s, v in dict.fromkeys(tokens)
        ])
    return StoredResource(rtype, rid, version, now, text, seq)


def _without_meta(text: str) -> str:
    loaded = json.loads(text)
    loaded.pop("meta", None)
    return canonical_json(loaded)


# --- reading -----------------------------------------------------------------------------------

_READ = select(FhirResource.seq, FhirResource.resource_type, FhirResource.resource_id, FhirResource.version_id,
               FhirResource.last_updated, FhirResource.resource_json)


def _stored(row: Any) -> StoredResource:
    return StoredResource(
        row.resource_type, row.resource_id, row.version_id, row.last_updated, row.resource_json, row.seq
    )


# Built once: a FHIR read runs this on every request, and building a select() costs more than
# running it (measured: cache-key generation was a third of the read's time).
_GET = _READ.where(FhirResource.resource_type == bindparam("rtype"), FhirResource.resource_id == bindparam("rid"))


def get_resource(session: Session, resource_type: str, resource_id: str) -> StoredResource | None:
    row = session.connection().execute(_GET, {"rtype": resource_type, "rid": resource_id}).one_or_none()
    return None if row is None else _stored(row)


def get_resources(session: Session, resource_type: str, resource_ids: Sequence[str]) -> list[StoredResource]:
    """The stored resources of one type among `resource_ids` (unknown ids left out), in store
    order: one query for a search page's `_include`s."""
    found: list[StoredResource] = []
    unique = list(dict.fromkeys(resource_ids))
    for start in range(0, len(unique), 500):  # bound the IN list (SQLite's parameter limit)
        query = _READ.where(FhirResource.resource_type == resource_type,
                            FhirResource.resource_id.in_(unique[start:start + 500]))
        found += [_stored(r) for r in session.execute(query.order_by(FhirResource.seq))]
    return found


def resources_of_intake(session: Session, intake_id: str, resource_type: str | None = None) -> list[StoredResource]:
    """The stored resources made for one intake, in the order they were first stored."""
    query = _READ.where(FhirResource.intake_id == intake_id)
    if resource_type is not None:
        query = query.where(FhirResource.resource_type == resource_type)
    return [_stored(r) for r in session.execute(query.order_by(FhirResource.seq))]


def intake_of(session: Session, resource_type: str, resource_id: str) -> str | None:
    """The intake a stored resource was made for (None: unknown, or not an intake's)."""
    return session.scalar(select(FhirResource.intake_id).where(
        FhirResource.resource_type == resource_type, FhirResource.resource_id == resource_id))


def _test_clause(test: Test) -> ColumnElement[bool]:
    if isinstance(test, ColumnTest):
        column = COLUMNS[test.column]
        return {
            "eq": column == test.value, "ne": column != test.value, "lt": column < test.value,
            "le": column <= test.value, "gt": column > test.value, "ge": column >= test.value,
        }[test.op]
    clauses = [FhirToken.resource_seq == FhirResource.seq, FhirToken.param == test.param]
    if test.match == "exact":
        clauses.append(FhirToken.value == test.value)
    else:
        pattern = _like_escape(test.value)
        pattern = f"{pattern}%" if test.match == "prefix" else f"%{pattern}%"
        clauses.append(FhirToken.value.like(pattern, escape="\\"))
    if test.system == "":
        clauses.append(FhirToken.system.is_(None))
    elif test.system is not None:
        clauses.append(FhirToken.system == test.system)
    return exists().where(*clauses)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(criteria: Criteria) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = [FhirResource.resource_type == criteria.resource_type]
    for condition in criteria.conditions:
        alternatives = [and_(*(_test_clause(t) for t in alternative)) for alternative in condition]
        clauses.append(or_(*alternatives) if alternatives else not_(and_(True)))
    return clauses


def search(
    session: Session, criteria: Criteria, *, after_seq: int | None, count: int
) -> tuple[list[StoredResource], int, bool]:
    """One page of matches after the match `after_seq` (in the criteria's order, else store
    order): (rows, total matches, more pages?)."""
    clauses = _where(criteria)
    total = session.execute(select(func.count()).select_from(FhirResource).where(*clauses)).scalar_one()
    query = _READ.where(*clauses)
    sort = criteria.sort
    if sort is None:
        if after_seq is not None:
            query = query.where(FhirResource.seq > after_seq)
        order: list[Any] = [FhirResource.seq]
    else:
        column = COLUMNS[sort.column]
        if after_seq is not None:
            query = query.where(_after(session, column, after_seq, sort.descending))
        order = [column.is_(None), column.desc() if sort.descending else column.asc(), FhirResource.seq]
    rows = list(session.execute(query.order_by(*order).limit(count + 1)))
    return [_stored(r) for r in rows[:count]], total, len(rows) > count


def _after(session: Session, column: Any, after_seq: int, descending: bool) -> ColumnElement[bool]:
    """Keyset continuation of a sorted search: the rows that come after the row `after_seq` in
    (value, nulls last; then seq) order. The page token stays the last row's `seq`: its value is
    looked up here, so a token is as opaque (and as small) as for store order."""
    last = session.execute(select(column).where(FhirResource.seq == after_seq)).one_or_none()
    if last is None:
        raise IntakeError("_cursor: not a page token of this search (its resource is gone); search again",
                          status=400)
    value = last[0]
    if value is None:
        return and_(column.is_(None), FhirResource.seq > after_seq)
    beyond = column < value if descending else column > value
    return or_(column.is_(None), beyond, and_(column == value, FhirResource.seq > after_seq))


def stream(session: Session, resource_type: str, *, since: datetime | None, until: datetime | None,
           patient_ids: Sequence[str] | None = None, batch: int = 1000) -> Generator[str, None, None]:
    """Every stored JSON text of a type (optionally of some patients, changed after `since` and
    not after `until`), fetched through a server-side cursor in batches so memory stays flat."""
    query = select(FhirResource.resource_json).where(FhirResource.resource_type == resource_type)
    if since is not None:
        query = query.where(FhirResource.last_updated > since)
    if until is not None:
        query = query.where(FhirResource.last_updated <= until)
    if patient_ids is not None:
        if resource_type == "Patient":
            query = query.where(FhirResource.resource_id.in_(patient_ids))
        else:
            query = query.where(FhirResource.patient_id.in_(patient_ids))
    result = session.execute(
        query.order_by(FhirResource.seq), execution_options={"stream_results": True, "yield_per": batch}
    )
    try:
        for partition in result.partitions():
            for row in partition:
                yield row.resource_json
    finally:
        result.close()  # also when the caller stops early (a cancelled export): frees the server cursor


def patient_ids(session: Session) -> list[str]:
    return list(session.scalars(select(FhirResource.resource_id).where(FhirResource.resource_type == "Patient")))


# --- clinician PDFs ------------------------------------------------------------------------------


def get_document(session: Session, intake_id: str) -> DocumentRecord | None:
    return session.get(DocumentRecord, intake_id)


def store_document(session: Session, *, intake_id: str, content: bytes, sha256: str, source_sha256: str,
                   now: datetime) -> DocumentRecord:
    """Store (or replace) the intake's PDF and the hash of what it was rendered from."""
    require_aware(now, "now")
    record = session.get(DocumentRecord, intake_id)
    if record is None:
        record = DocumentRecord(intake_id=intake_id)
        session.add(record)
    record.content, record.sha256, record.source_sha256 = content, sha256, source_sha256
    record.size, record.rendered_at = len(content), now
    session.flush()
    return record


# --- bulk export jobs ---------------------------------------------------------------------------


def create_export(session: Session, *, request_url: str, scope: str, group_id: str | None, types: list[str],
                  since: datetime | None, now: datetime, requested_by: str, expires_at: datetime) -> ExportJob:
    job = ExportJob(request_url=request_url, scope=scope, group_id=group_id, types=types, since=since,
                    transaction_time=now, status="accepted", created_at=now, updated_at=now, requested_by=requested_by,
                    expires_at=expires_at)
    session.add(job)
    session.flush()
    return job


def get_export(session: Session, job_id: str) -> ExportJob | None:
    return session.get(ExportJob, job_id)


def update_export(session: Session, job_id: str, *, only_if: tuple[str, ...] = ("accepted", "in-progress"),
                  **values: Any) -> bool:
    """Change a job unless it has ended (so a cancelled job is never marked complete)."""
    result = session.execute(
        update(ExportJob).where(ExportJob.id == job_id, ExportJob.status.in_(only_if))
        .values(updated_at=utcnow(), **values),
        execution_options={"synchronize_session": False},
    )
    return bool(getattr(result, "rowcount", 0))


def delete_export(session: Session, job_id: str) -> None:
    session.execute(delete(ExportJob).where(ExportJob.id == job_id))


def live_exports(session: Session, client: str, *, now: datetime) -> list[ExportJob]:
    """The client's jobs that hold a slot (not cancelled, not expired), soonest to expire first.
    Locks the client's registration row first, so concurrent kick-offs count one after another."""
    session.execute(select(ApiClient.id).where(ApiClient.name == client).with_for_update())
    return list(session.scalars(
        select(ExportJob).where(ExportJob.requested_by == client, ExportJob.status != "cancelled",
                                ExportJob.expires_at > now).order_by(ExportJob.expires_at)
    ))


def expired_exports(session: Session, *, now: datetime) -> list[str]:
    """The ids of jobs whose time is up (whatever their state)."""
    return list(session.scalars(select(ExportJob.id).where(ExportJob.expires_at <= now)))


def export_ids(session: Session, ids: Sequence[str]) -> set[str]:
    """Which of `ids` are jobs (the others' folders are leftovers)."""
    return set(session.scalars(select(ExportJob.id).where(ExportJob.id.in_(list(ids))))) if ids else set()


# --- API clients ---------------------------------------------------------------------------------


def add_api_client(session: Session, *, name: str, jwks: str, scopes: str, now: datetime) -> ApiClient:
    """Register a client, or replace the keys and scopes of the one with this name (re-activated)."""
    client = session.scalars(select(ApiClient).where(ApiClient.name == name)).one_or_none()
    if client is None:
        client = ApiClient(name=name, created_at=now)
        session.add(client)
    client.jwks, client.scopes, client.revoked_at = jwks, scopes, None
    session.flush()
    return client


def active_api_client(session: Session, name: str) -> ApiClient | None:
    return session.scalars(
        select(ApiClient).where(ApiClient.name == name, ApiClient.revoked_at.is_(None))
    ).one_or_none()


def revoke_api_client(session: Session, name: str, *, now: datetime) -> int:
    result = session.execute(update(ApiClient).where(ApiClient.name == name, ApiClient.revoked_at.is_(None))
                             .values(revoked_at=now), execution_options={"synchronize_session": False})
    return int(getattr(result, "rowcount", 0))


def use_assertion(session: Session, *, client: str, jti: str, expires_at: datetime, now: datetime) -> bool:
    """Record a client assertion's jti; False when it was used before (a replay)."""
    session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at < now))
    try:
        with session.begin_nested():
            session.execute(insert(UsedAssertion).values(client=client, jti=jti, expires_at=expires_at))
    except IntegrityError:
        return False
    return True


__all__ = [
    "ColumnTest",
    "Criteria",
    "StoredResource",
    "TokenTest",
    "active_api_client",
    "add_api_client",
    "create_export",
    "delete_export",
    "expired_exports",
    "export_ids",
    "get_document",
    "get_export",
    "get_resource",
    "live_exports",
    "patient_ids",
    "put_resource",
    "resources_of_intake",
    "revoke_api_client",
    "search",
    "store_document",
    "stream",
    "update_export",
    "use_assertion",
]
