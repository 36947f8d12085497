"""Every query of the service. Functions take the caller's `Session` and never commit.

The caller owns the transaction (`intake.storage.db.session_scope`), so a view can combine
several calls into one unit of work. Write functions flush, so constraint errors surface here.

Stored QuestionnaireResponses are made consistent with their record on every write:

- ``id`` is the record id. A resource without ``id`` gets it; a different ``id`` is refused.
- ``questionnaire``, ``subject`` and ``authored`` are filled in when absent (the intake's
  canonical, its patient, and ``now``) and refused when they contradict the record.
- ``meta.versionId`` (the record's ``version_id``, 1 on the first write, +1 on each write) and
  ``meta.lastUpdated`` (``now``) are always set by the repository; other ``meta`` keys are kept.

The caller's dict is never modified; the stored form is ``record.resource``.

Concurrency: writes to an intake first lock its row (``SELECT ... FOR UPDATE`` on PostgreSQL; on
SQLite every write transaction already holds the database write lock from ``BEGIN IMMEDIATE``),
so concurrent saves of one intake run one after the other and see each other's rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import CursorResult, bindparam, case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.storage.models import (
    FLAG_TIERS,
    RESPONSE_STATUSES,
    URL_LENGTH,
    VERSION_LENGTH,
    FlagRecord,
    Intake,
    InviteToken,
    Patient,
    ResponseRecord,
    ScoringResult,
    ShownLink,
    new_id,
    utcnow,
)

_TOKEN_HASH = re.compile(r"[0-9a-f]{64}")


class StorageError(Exception):
    """Base of the storage errors the web edge turns into responses."""


class IntakeNotFound(StorageError):
    """The intake id is unknown."""


class IntakeClosed(StorageError):
    """The intake is completed; its answers can no longer change."""


class StaleResponse(StorageError):
    """The stored response changed since the caller read it (another tab or a retry saved)."""




def canonical_json(resource: dict[str, Any]) -> str:
    """One byte-stable JSON text per resource (sorted keys, no spaces, UTF-8 kept as is).

    Stable text makes stored versions comparable and hashable; control characters (NUL too) are
    escaped by `json.dumps`, so any Python string fits PostgreSQL ``text``.
    """
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- patients and intakes -------------------------------------------------------------------


def create_patient(session: Session, *, name: str, birth_date: date, mrn: str | None = None,
                   mrn_system: str | None = None) -> Patient:
    """Add a patient (`mrn`: the health record's number for them, when known, in `mrn_system`)."""
    patient = Patient(id=new_id(), name=name, birth_date=birth_date, mrn=mrn, mrn_system=mrn_system if mrn else None,
                      created_at=utcnow())
    session.add(patient)
    session.flush()
    return patient


def get_patient(session: Session, patient_id: str) -> Patient | None:
    """The patient, or None."""
    return session.get(Patient, patient_id)


def create_intake(
    session: Session,
    *,
    patient_id: str,
    questionnaires: list[str],
    appointment_at: datetime | None = None,
) -> Intake:
    """Add a not-started intake of `questionnaires` (canonical ``url|version``, in page order).

    A questionnaire url may appear only once: responses are keyed by (intake, url).
    """
    urls = [_split_canonical(q)[0] for q in questionnaires]
    if len(set(urls)) != len(urls):
        raise ValueError("an intake cannot list the same questionnaire url twice")
    if appointment_at is not None:
        require_aware(appointment_at, "appointment_at")
    now = utcnow()
    intake = Intake(
        id=new_id(),
        patient_id=patient_id,
        questionnaires=list(questionnaires),
        appointment_at=appointment_at,
        status="not-started",
        created_at=now,
        updated_at=now,
    )
    session.add(intake)
    session.flush()
    return intake


def get_intake(session: Session, intake_id: str) -> Intake | None:
    """The intake, or None."""
    return session.get(Intake, intake_id)


# --- invite tokens --------------------------------------------------------------------------


def issue_invite(
    session: Session, *, intake_id: str, token_hash: str, expires_at: datetime
) -> InviteToken:
    """Store a new patient link for the intake and revoke all its earlier links.

    Only one link per intake works at a time, so re-sending a link disables a forwarded or
    mistyped one. `token_hash` must be a lowercase SHA-256 hex digest: this refuses raw tokens.
    """
    if not _TOKEN_HASH.fullmatch(token_hash):
        raise ValueError("token_hash must be a lowercase SHA-256 hex digest")
    require_aware(expires_at, "expires_at")
    _lock_intake(session, intake_id)
    now = utcnow()
    session.execute(
        update(InviteToken)
        .where(InviteToken.intake_id == intake_id, InviteToken.revoked_at.is_(None))
        .values(revoked_at=now),
        execution_options={"synchronize_session": "fetch"},
    )
    token = InviteToken(
        intake_id=intake_id, token_hash=token_hash, created_at=now, expires_at=expires_at
    )
    session.add(token)
    session.flush()
    return token


def find_live_link(session: Session, token_hash: str, *, now: datetime) -> tuple[Intake, int] | None:
    """The intake a patient link opens and the link's id (the session it opens records it):
    None when the link is unknown, expired or revoked."""
    require_aware(now, "now")
    row = session.execute(
        select(Intake, InviteToken.id)
        .join(InviteToken, InviteToken.intake_id == Intake.id)
        .where(
            InviteToken.token_hash == token_hash,
            InviteToken.revoked_at.is_(None),
            InviteToken.expires_at > now,
        )
    ).one_or_none()
    return (row[0], row[1]) if row is not None else None


def find_intake_by_token_hash(session: Session, token_hash: str, *, now: datetime) -> Intake | None:
    """The intake a patient link opens: None when the link is unknown, expired or revoked."""
    found = find_live_link(session, token_hash, now=now)
    return found[0] if found is not None else None


def link_in_force(session: Session, link_id: int, intake_id: str, *, now: datetime, lock: bool = False) -> bool:
    """Whether the link that opened a patient's session still works: it is this intake's, not
    revoked (a newer link revokes it) and not expired.

    With `lock`, the intake row is locked first, as `issue_invite` locks it before revoking, so a
    write in the caller's transaction and a new link take turns: the write either commits before
    the revocation or sees it.
    """
    require_aware(now, "now")
    if lock:
        try:
            _lock_intake(session, intake_id)
        except IntakeNotFound:
            return False
    return session.scalar(
        select(InviteToken.id).where(
            InviteToken.id == link_id,
            InviteToken.intake_id == intake_id,
            InviteToken.revoked_at.is_(None),
            InviteToken.expires_at > now,
        )
    ) is not None


def hold_shown_link(session: Session, *, intake_id: str, sealed: str, expires_at: datetime, now: datetime) -> str:
    """Keep a new link, sealed, until it is shown once (`take_shown_link`); returns the id to ask
    for it by. Links held past their time, never shown, are deleted here."""
    require_aware(expires_at, "expires_at")
    require_aware(now, "now")
    session.execute(delete(ShownLink).where(ShownLink.expires_at <= now))
    held = ShownLink(intake_id=intake_id, sealed=sealed, expires_at=expires_at)
    session.add(held)
    session.flush()
    return held.id


def take_shown_link(session: Session, shown_id: str, *, intake_id: str, now: datetime) -> str | None:
    """The sealed link held under `shown_id` for this intake, deleted as it is read, so a reload
    (or a copy of the cookie) finds nothing: None when it was taken, has expired or is another
    intake's."""
    require_aware(now, "now")
    row = session.execute(
        delete(ShownLink).where(ShownLink.id == shown_id)
        .returning(ShownLink.intake_id, ShownLink.sealed, ShownLink.expires_at)
    ).one_or_none()
    if row is None or row.intake_id != intake_id or row.expires_at <= now:
        return None
    return str(row.sealed)


class StoredVersion(NamedTuple):
    """Which stored record, at which version, a caller's answers were read from."""

    record_id: str
    version_id: int


@dataclass(frozen=True)
class IntakeView:
    """What the patient pages need of an intake and its stored responses, read in one query.

    Every patient page needs the intake's status and all its stored answers (for the page
    order and the progress count); one joined query instead of three ORM loads keeps page views
    cheap. `responses_json` are the stored canonical JSON texts, in no particular order.
    """

    id: str
    patient_id: str
    status: str
    questionnaires: list[str]
    last_page: str | None
    responses_json: tuple[str, ...]
    stored: dict[str, StoredVersion] = field(default_factory=dict)
    language: str | None = None
    # The patient's: it bounds dates such as a symptom onset, and age rules use it.
    birth_date: date | None = None

    def stored_version(self, questionnaire: str) -> StoredVersion | None:
        """The stored record and version of the response to `questionnaire` (url|version)."""
        return self.stored.get(_split_canonical(questionnaire)[0])


# Built once: constructing a select() costs three times more than running it (measured on the
# page path), and this one runs on every patient page view.
_INTAKE_VIEW = (
    select(
        Intake.id, Intake.patient_id, Intake.status, Intake.questionnaires, Intake.last_page, Intake.language,
        Patient.birth_date,
        ResponseRecord.resource_json, ResponseRecord.questionnaire_url, ResponseRecord.id.label("record_id"),
        ResponseRecord.version_id,
    )
    .join(Patient, Patient.id == Intake.patient_id)
    .outerjoin(ResponseRecord, ResponseRecord.intake_id == Intake.id)
    .where(Intake.id == bindparam("intake_id"))
)


def intake_view(session: Session, intake_id: str) -> IntakeView | None:
    """The intake with its responses' JSON, or None (plain columns: run on the Core path)."""
    rows = session.connection().execute(_INTAKE_VIEW, {"intake_id": intake_id}).all()
    if not rows:
        return None
    first = rows[0]
    return IntakeView(
        id=first.id,
        patient_id=first.patient_id,
        status=first.status,
        questionnaires=list(first.questionnaires),
        last_page=first.last_page,
        responses_json=tuple(r.resource_json for r in rows if r.resource_json is not None),
        stored={
            r.questionnaire_url: StoredVersion(r.record_id, r.version_id) for r in rows if r.resource_json is not None
        },
        language=first.language,
        birth_date=first.birth_date,
    )


def set_intake_language(session: Session, intake_id: str, language: str) -> bool:
    """Remember the patient's language on an open intake; False when it is unknown or completed."""
    result = cast(
        CursorResult[Any],
        session.execute(
            update(Intake).where(Intake.id == intake_id, Intake.status != "completed").values(language=language)
        ),
    )
    return bool(result.rowcount)


# --- responses ------------------------------------------------------------------------------


def list_responses(session: Session, intake_id: str) -> list[ResponseRecord]:
    """The intake's stored responses, in the intake's questionnaire order.

    Records whose url is not (or no longer) listed on the intake come last, by url.
    """
    intake = session.get(Intake, intake_id)
    records = list(
        session.scalars(select(ResponseRecord).where(ResponseRecord.intake_id == intake_id))
    )
    listed = [] if intake is None else [_split_canonical(q)[0] for q in intake.questionnaires]
    order = {url: position for position, url in enumerate(listed)}
    records.sort(key=lambda r: (order.get(r.questionnaire_url, len(order)), r.questionnaire_url))
    return records


def save_draft(
    session: Session,
    *,
    intake_id: str,
    questionnaire: str,
    resource: dict[str, Any],
    page: str | None,
    now: datetime,
) -> ResponseRecord:
    """Store the patient's answers so far for one questionnaire (insert or replace).

    The record's status comes from ``resource["status"]`` ("in-progress" when absent). The
    intake moves from not-started to in-progress and remembers `page` for resume; ``page=None``
    keeps the previously remembered page. Raises `IntakeClosed`, writing nothing, once the
    intake is completed, and `IntakeNotFound` for an unknown intake.
    """
    require_aware(now, "now")
    intake = _lock_intake(session, intake_id)
    if intake.status == "completed":
        raise IntakeClosed(intake_id)
    status = resource.get("status", "in-progress")
    record = _write_response(session, intake, questionnaire, resource, status=status, now=now)
    session.connection().execute(
        _TOUCH_INTAKE,
        {
            "intake_id": intake_id,
            "status": "in-progress" if intake.status == "not-started" else intake.status,
            "last_page": page if page is not None else intake.last_page,
            "updated_at": now,
        },
    )
    return record


def save_draft_if_unchanged(
    session: Session,
    *,
    intake_id: str,
    questionnaire: str,
    resource: dict[str, Any],
    page: str,
    now: datetime,
    base: StoredVersion | None,
) -> None:
    """`save_draft`, conditional on the stored response still being `base` (None: no record yet).

    For callers that read and validate outside the write transaction (the patient pages), so
    the write lock is held only for two statements. Raises `StaleResponse` when another request
    saved this questionnaire since `base` was read, `IntakeClosed` once the intake is completed,
    `IntakeNotFound` for an unknown intake; then the caller's transaction must roll back.
    """
    require_aware(now, "now")
    connection = session.connection()
    touched = connection.execute(
        _TOUCH_OPEN_INTAKE, {"intake_id": intake_id, "page": page, "updated_at": now}
    ).one_or_none()
    if touched is None:
        if get_intake(session, intake_id) is None:
            raise IntakeNotFound(intake_id)
        raise IntakeClosed(intake_id)
    record_id, version_id = (new_id(), 1) if base is None else (base.record_id, base.version_id + 1)
    values = _record_values(
        intake_id, touched.patient_id, questionnaire, resource,
        record_id=record_id, version_id=version_id, status=resource.get("status", "in-progress"), now=now,
    )
    if base is None:
        try:
            with connection.begin_nested():
                connection.execute(_INSERT_RECORD, values)
        except IntegrityError as exc:  # another request inserted this questionnaire's record first
            raise StaleResponse(intake_id) from exc
    else:
        result = cast(
            CursorResult[Any],
            connection.execute(
                _UPDATE_RECORD_IF_VERSION, {**values, "owner_intake_id": intake_id, "expected": base.version_id}
            ),
        )
        if result.rowcount != 1:
            raise StaleResponse(intake_id)
    for model, key in ((Intake, intake_id), (ResponseRecord, record_id)):
        stale = session.identity_map.get(session.identity_key(model, (key,)))
        if stale is not None:
            session.expire(stale)


def complete_intake(
    session: Session, *, intake_id: str, responses: dict[str, dict[str, Any]], now: datetime
) -> bool:
    """Complete the intake and store its final responses, once.

    `responses` maps canonical ``url|version`` to QuestionnaireResponse; each is stored with
    status "completed" (set on the resource too). Questionnaires not in `responses` keep what
    is stored. The status change is a conditional UPDATE, so of two concurrent or repeated
    submits exactly one returns True and stores its responses; the other returns False and
    writes nothing. Raises `IntakeNotFound` for an unknown intake, and ValueError for a
    malformed resource (after the status change: the caller's transaction must roll back, as
    `session_scope` does).
    """
    require_aware(now, "now")
    urls = [_split_canonical(q)[0] for q in responses]
    if len(set(urls)) != len(urls):
        raise ValueError("responses name the same questionnaire url twice")
    result = cast(
        CursorResult[Any],
        session.execute(
            update(Intake)
            .where(Intake.id == intake_id, Intake.status != "completed")
            .values(status="completed", completed_at=now, updated_at=now),
            execution_options={"synchronize_session": False},
        ),
    )
    if result.rowcount == 0:
        if session.get(Intake, intake_id) is None:
            raise IntakeNotFound(intake_id)
        return False
    intake = _lock_intake(session, intake_id)
    for questionnaire, resource in responses.items():
        _write_response(session, intake, questionnaire, resource, status="completed", now=now)
    return True


# --- helpers --------------------------------------------------------------------------------


# The write path runs on every saved page, so its statements are built once (constructing a
# select() costs more than running it) and run on the Core path, not through the ORM's unit of
# work. The ORM identity map is expired for the touched rows, so later ORM reads see the writes.
_LOCK_INTAKE = (
    select(Intake.id, Intake.patient_id, Intake.status, Intake.last_page)
    .where(Intake.id == bindparam("intake_id"))
    .with_for_update()
)
_FIND_RECORD = select(ResponseRecord.id, ResponseRecord.version_id).where(
    ResponseRecord.intake_id == bindparam("intake_id"), ResponseRecord.questionnaire_url == bindparam("url")
)
_TOUCH_INTAKE = (
    update(Intake)
    .where(Intake.id == bindparam("intake_id"))
    .values(status=bindparam("status"), last_page=bindparam("last_page"), updated_at=bindparam("updated_at"))
)
_RECORD_VALUES: dict[str, Any] = dict(
    questionnaire_version=bindparam("questionnaire_version"),
    status=bindparam("status"),
    subject_patient_id=bindparam("subject_patient_id"),
    authored=bindparam("authored"),
    resource_json=bindparam("resource_json"),
    version_id=bindparam("version_id"),
    updated_at=bindparam("updated_at"),
)
_INSERT_RECORD = insert(ResponseRecord).values(
    id=bindparam("record_id"), intake_id=bindparam("intake_id"), questionnaire_url=bindparam("url"), **_RECORD_VALUES
)
_UPDATE_RECORD = update(ResponseRecord).where(ResponseRecord.id == bindparam("record_id")).values(**_RECORD_VALUES)
_UPDATE_RECORD_IF_VERSION = (
    update(ResponseRecord)
    .where(
        ResponseRecord.id == bindparam("record_id"),
        ResponseRecord.intake_id == bindparam("owner_intake_id"),
        ResponseRecord.version_id == bindparam("expected"),
    )
    .values(**_RECORD_VALUES)
)
_TOUCH_OPEN_INTAKE = (
    update(Intake)
    .where(Intake.id == bindparam("intake_id"), Intake.status != "completed")
    .values(
        status=case((Intake.status == "not-started", "in-progress"), else_=Intake.status),
        last_page=bindparam("page"),
        updated_at=bindparam("updated_at"),
    )
    .returning(Intake.patient_id)
)


@dataclass(frozen=True)
class _LockedIntake:
    id: str
    patient_id: str
    status: str
    last_page: str | None


def _lock_intake(session: Session, intake_id: str) -> _LockedIntake:
    """Read the intake and lock its row until the transaction ends (serialises writers)."""
    row = session.connection().execute(_LOCK_INTAKE, {"intake_id": intake_id}).one_or_none()
    if row is None:
        raise IntakeNotFound(intake_id)
    stale = session.identity_map.get(session.identity_key(Intake, (intake_id,)))
    if stale is not None:
        session.expire(stale)
    return _LockedIntake(row.id, row.patient_id, row.status, row.last_page)


def _write_response(
    session: Session,
    intake: _LockedIntake,
    questionnaire: str,
    resource: dict[str, Any],
    *,
    status: str,
    now: datetime,
) -> ResponseRecord:
    """Insert or update the (intake, url) record; the intake row must already be locked.

    Returns a detached ResponseRecord holding what was written (callers read its attributes;
    the session's own copy, if it had one, is expired so it reloads).
    """
    url, _version = _split_canonical(questionnaire)
    connection = session.connection()
    existing = connection.execute(_FIND_RECORD, {"intake_id": intake.id, "url": url}).one_or_none()
    record_id = new_id() if existing is None else existing.id
    version_id = 1 if existing is None else existing.version_id + 1
    values = _record_values(
        intake.id, intake.patient_id, questionnaire, resource,
        record_id=record_id, version_id=version_id, status=status, now=now,
    )
    connection.execute(_INSERT_RECORD if existing is None else _UPDATE_RECORD, values)
    stale = session.identity_map.get(session.identity_key(ResponseRecord, (record_id,)))
    if stale is not None:
        session.expire(stale)
    return ResponseRecord(
        id=record_id, intake_id=intake.id, questionnaire_url=url, questionnaire_version=values["questionnaire_version"],
        status=status, subject_patient_id=values["subject_patient_id"], authored=values["authored"],
        resource_json=values["resource_json"], version_id=version_id, updated_at=now,
    )


def _record_values(
    intake_id: str,
    patient_id: str,
    questionnaire: str,
    resource: dict[str, Any],
    *,
    record_id: str,
    version_id: int,
    status: str,
    now: datetime,
) -> dict[str, Any]:
    """The stored form of `resource` (see the module doc) as the record's column values."""
    url, version = _split_canonical(questionnaire)
    if status not in RESPONSE_STATUSES:
        raise ValueError(f"response status must be one of {RESPONSE_STATUSES}, not {status!r}")
    body = dict(resource)  # only top-level keys are set below; nested values are never modified
    if body.setdefault("resourceType", "QuestionnaireResponse") != "QuestionnaireResponse":
        raise ValueError(f"not a QuestionnaireResponse: {body['resourceType']!r}")
    _fill_or_check(body, "id", record_id)
    _fill_or_check(body, "questionnaire", questionnaire)
    body.setdefault("subject", {"reference": f"Patient/{patient_id}"})
    subject = _patient_id_of(body["subject"])
    if subject != patient_id:
        raise ValueError("the response's subject is not the intake's patient")
    body.setdefault("authored", fhir_instant(now))
    authored = parse_fhir_datetime(body["authored"])
    body["status"] = status
    body["meta"] = {
        **(body.get("meta") or {}),
        "versionId": str(version_id),
        "lastUpdated": fhir_instant(now),
    }
    return {
        "record_id": record_id,
        "intake_id": intake_id,
        "url": url,
        "questionnaire_version": version,
        "status": status,
        "subject_patient_id": subject,
        "authored": authored,
        "resource_json": canonical_json(body),
        "version_id": version_id,
        "updated_at": now,
    }


def _split_canonical(questionnaire: str) -> tuple[str, str]:
    """``url|version`` -> (url, version); both parts are required."""
    url, sep, version = questionnaire.partition("|")
    if not (url and sep and version):
        raise ValueError(f"questionnaire must be a canonical 'url|version': {questionnaire!r}")
    if len(url) > URL_LENGTH or len(version) > VERSION_LENGTH:
        raise ValueError(f"questionnaire url or version too long: {questionnaire!r}")
    return url, version


def _fill_or_check(body: dict[str, Any], key: str, value: str) -> None:
    """Set ``body[key]`` when absent; refuse a different value."""
    if body.setdefault(key, value) != value:
        raise ValueError(f"resource {key} {body[key]!r} does not match the stored {value!r}")


def _patient_id_of(subject: Any) -> str:
    """The id in a ``Patient/<id>`` reference (relative, absolute or versioned)."""
    reference = subject.get("reference") if isinstance(subject, dict) else None
    parts = reference.split("/") if isinstance(reference, str) else []
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) < 2 or parts[-2] != "Patient" or not parts[-1]:
        raise ValueError(f"subject must reference a Patient: {subject!r}")
    return parts[-1]


def parse_fhir_datetime(value: Any) -> datetime:
    """A FHIR dateTime (full date at least) as UTC; values without a zone are taken as UTC."""
    if not isinstance(value, str):
        raise ValueError(f"authored must be a FHIR dateTime string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"authored is not a full FHIR dateTime: {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def fhir_instant(moment: datetime) -> str:
    """A FHIR instant in UTC with microseconds, e.g. ``2024-05-01T09:30:00.000000Z``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def require_aware(moment: datetime, name: str) -> None:
    """Refuse naive datetimes early, with the argument's name in the message."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a tz-aware datetime")


# --- scoring results and flags --------------------------------------------------------------

NOTIFIED_TIERS = ("emergency", "urgent")


def store_scoring(
    session: Session,
    *,
    intake_id: str,
    patient_id: str,
    result: dict[str, Any],
    versions: dict[str, str],
    now: datetime,
) -> list[FlagRecord]:
    """Store (or replace) an intake's computed results and add the flags not raised before.

    A flag is unique per intake and rule, so re-scoring never raises or notifies one twice; a
    flag a corrected rule (or a changed answer) no longer raises stays listed, marked cleared (it
    was raised, and maybe notified). Emergency and urgent flags start as notification "pending",
    review flags as "not-required". Returns the flags added.
    """
    require_aware(now, "now")
    existing = session.get(ScoringResult, intake_id)
    if existing is None:
        session.add(ScoringResult(intake_id=intake_id, patient_id=patient_id, scoring_versions=versions,
                                  result_json=canonical_json(result), computed_at=now))
    elif existing.result_json != canonical_json(result) or existing.scoring_versions != dict(versions):
        # An unchanged result keeps its time: it is when these results were first computed, and
        # what the PDF and the Provenance show (so a no-op re-score changes no bytes).
        existing.scoring_versions = dict(versions)
        existing.result_json = canonical_json(result)
        existing.computed_at = now
    return record_flags(session, intake_id=intake_id, patient_id=patient_id, flags=result.get("flags") or [],
                        versions=versions, now=now, source="submitted").added


@dataclass(frozen=True)
class FlagChanges:
    """What one evaluation of an intake's answers did to its flags."""

    added: list[FlagRecord]  # raised for the first time in this intake: notified once
    reraised: list[FlagRecord]  # raised before, cleared by a changed answer, raised again now


def record_flags(
    session: Session,
    *,
    intake_id: str,
    patient_id: str,
    flags: list[dict[str, Any]],
    versions: dict[str, str],
    now: datetime,
    source: str,
    tiers: tuple[str, ...] = FLAG_TIERS,
    questionnaires: Collection[str] | None = None,
) -> FlagChanges:
    """Add the flags (of `tiers`) the answers raise for the first time, and mark each stored flag
    of those tiers as raised by the current answers or cleared since `now`. With
    `questionnaires` (urls), only the flags of those were evaluated: the others are left as
    they are.

    Rows are never deleted or re-notified: a flag raised from a draft and then answered away (or
    switched off by enablement) stays listed for staff, with the time it was cleared.
    """
    require_aware(now, "now")
    raised = {flag["id"]: flag for flag in flags if flag["tier"] in tiers}
    # Plain rows (this runs on every saved page); ORM objects only for the rows that change.
    known = {row.rule_id: row for row in session.execute(_KNOWN_FLAGS, {"intake_id": intake_id})}
    reraised, cleared = [], []
    for rule_id, row in known.items():
        if row.tier not in tiers:
            continue
        if questionnaires is not None and row.questionnaire.split("|")[0] not in questionnaires:
            continue
        if rule_id in raised and row.cleared_at is not None:
            reraised.append(row.id)
        elif rule_id not in raised and row.cleared_at is None:
            cleared.append(row.id)
    if cleared:
        session.execute(update(FlagRecord).where(FlagRecord.id.in_(cleared)).values(cleared_at=now),
                        execution_options={"synchronize_session": False})
    if reraised:
        session.execute(update(FlagRecord).where(FlagRecord.id.in_(reraised)).values(cleared_at=None),
                        execution_options={"synchronize_session": False})
    added = []
    for rule_id, flag in raised.items():
        if rule_id in known:
            continue
        record = FlagRecord(
            intake_id=intake_id, patient_id=patient_id, rule_id=rule_id, tier=flag["tier"],
            message=flag["message"], because=list(flag.get("because") or []), questionnaire=flag["questionnaire"],
            scoring_version=versions.get(flag["questionnaire"], ""), raised_at=now, source=source,
            notify_state="pending" if flag["tier"] in NOTIFIED_TIERS else "not-required",
        )
        session.add(record)
        added.append(record)
    session.flush()
    again = [session.get(FlagRecord, flag_id, populate_existing=True) for flag_id in reraised]
    for flag_id in cleared:  # loaded earlier in this session: read the new time on next access
        stale = session.identity_map.get(session.identity_key(FlagRecord, (flag_id,)))
        if stale is not None:
            session.expire(stale)
    return FlagChanges(added=added, reraised=[record for record in again if record is not None])


_KNOWN_FLAGS = select(FlagRecord.id, FlagRecord.rule_id, FlagRecord.tier, FlagRecord.questionnaire,
                      FlagRecord.cleared_at).where(FlagRecord.intake_id == bindparam("intake_id"))


def get_scoring(session: Session, intake_id: str) -> ScoringResult | None:
    return session.get(ScoringResult, intake_id)


def patient_history(
    session: Session, patient_id: str, *, before: datetime | None
) -> list[tuple[datetime, dict[str, Any]]]:
    """(completed_at, result) of the patient's scored intakes completed before `before`, oldest first."""
    query = (
        select(Intake.completed_at, ScoringResult.result_json)
        .join(ScoringResult, ScoringResult.intake_id == Intake.id)
        .where(Intake.patient_id == patient_id, Intake.completed_at.is_not(None))
        .order_by(Intake.completed_at)
    )
    if before is not None:
        query = query.where(Intake.completed_at < before)
    return [(row.completed_at, json.loads(row.result_json)) for row in session.execute(query)]


def flags_of_intake(session: Session, intake_id: str) -> list[FlagRecord]:
    """The flags raised for one intake, in the order they were raised."""
    return list(session.scalars(select(FlagRecord).where(FlagRecord.intake_id == intake_id).order_by(FlagRecord.id)))


def list_flags(
    session: Session, *, tiers: tuple[str, ...] = NOTIFIED_TIERS, limit: int = 200
) -> list[tuple[FlagRecord, str]]:
    """Raised flags of the given tiers with the patient's name, newest first."""
    rows = session.execute(
        select(FlagRecord, Patient.name)
        .join(Patient, Patient.id == FlagRecord.patient_id)
        .where(FlagRecord.tier.in_(tiers))
        .order_by(FlagRecord.raised_at.desc(), FlagRecord.id.desc())
        .limit(limit)
    ).all()
    return [(row[0], row[1]) for row in rows]


def pending_notifications(session: Session, *, intake_id: str | None = None) -> list[int]:
    query = select(FlagRecord.id).where(FlagRecord.notify_state == "pending").order_by(FlagRecord.id)
    if intake_id is not None:
        query = query.where(FlagRecord.intake_id == intake_id)
    return list(session.scalars(query))


def claim_notification(session: Session, flag_id: int, *, states: tuple[str, ...] = ("pending",)) -> FlagRecord | None:
    """Move one flag from one of `states` to sending; None if it is in none of them (another
    worker claimed it first, or it was sent)."""
    result = cast(CursorResult[Any], session.execute(
        update(FlagRecord).where(FlagRecord.id == flag_id, FlagRecord.notify_state.in_(states))
        .values(notify_state="sending"),
        execution_options={"synchronize_session": False},
    ))
    if result.rowcount != 1:
        return None
    return session.get(FlagRecord, flag_id, populate_existing=True)


def finish_notification(session: Session, flag_id: int, *, ok: bool, now: datetime, error: str | None = None) -> None:
    session.execute(
        update(FlagRecord).where(FlagRecord.id == flag_id)
        .values(notify_state="sent" if ok else "failed", notified_at=now if ok else None,
                notify_error=None if ok else (error or "failed")[:255]),
        execution_options={"synchronize_session": False},
    )


def retry_failed_notifications(session: Session) -> int:
    result = cast(CursorResult[Any], session.execute(
        update(FlagRecord).where(FlagRecord.notify_state == "failed").values(notify_state="pending"),
        execution_options={"synchronize_session": False},
    ))
    return result.rowcount


def completed_intake_ids(session: Session) -> list[str]:
    return list(session.scalars(select(Intake.id).where(Intake.status == "completed").order_by(Intake.completed_at)))


def list_intakes(session: Session, *, limit: int = 200) -> list[tuple[Intake, str, list[str]]]:
    """Recent intakes with the patient's name and the tiers of their raised flags."""
    rows = session.execute(
        select(Intake, Patient.name).join(Patient, Patient.id == Intake.patient_id)
        .order_by(Intake.updated_at.desc()).limit(limit)
    ).all()
    tiers = _flag_tiers(session, [row[0].id for row in rows])
    return [(row[0], row[1], tiers.get(row[0].id, [])) for row in rows]


def _flag_tiers(session: Session, intake_ids: list[str]) -> dict[str, list[str]]:
    """intake id -> the tiers of its raised flags (one query for the whole list)."""
    tiers: dict[str, list[str]] = {}
    if intake_ids:
        query = select(FlagRecord.intake_id, FlagRecord.tier).where(FlagRecord.intake_id.in_(intake_ids))
        for intake_id, tier in session.execute(query):
            tiers.setdefault(intake_id, []).append(tier)
    return tiers


def intakes_between(session: Session, start: datetime, end: datetime) -> list[tuple[Intake, Patient, list[str]]]:
    """Intakes with an appointment in [start, end) — or, without one, created then — with their
    patient and the tiers of their raised flags, in appointment order."""
    require_aware(start, "start")
    require_aware(end, "end")
    when = case((Intake.appointment_at.is_(None), Intake.created_at), else_=Intake.appointment_at)
    rows = session.execute(
        select(Intake, Patient).join(Patient, Patient.id == Intake.patient_id)
        .where(when >= start, when < end).order_by(when, Patient.name)
    ).all()
    tiers = _flag_tiers(session, [row[0].id for row in rows])
    return [(row[0], row[1], tiers.get(row[0].id, [])) for row in rows]


def patient_by_mrn(session: Session, mrn: str, system: str) -> Patient | None:
    """The patient already recorded with this record number (a follow-up visit), or None."""
    return session.scalars(select(Patient).where(Patient.mrn == mrn, Patient.mrn_system == system)
                           .order_by(Patient.created_at).limit(1)).one_or_none()
