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

import copy
import json
import re
from datetime import date, datetime, timezone
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from intake.storage.models import (
    RESPONSE_STATUSES,
    URL_LENGTH,
    VERSION_LENGTH,
    Intake,
    InviteToken,
    Patient,
    ResponseRecord,
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


def canonical_json(resource: dict[str, Any]) -> str:
    """One byte-stable JSON text per resource (sorted keys, no spaces, UTF-8 kept as is).

    Stable text makes stored versions comparable and hashable; control characters (NUL too) are
    escaped by `json.dumps`, so any Python string fits PostgreSQL ``text``.
    """
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --- patients and intakes -------------------------------------------------------------------


def create_patient(session: Session, *, name: str, birth_date: date) -> Patient:
    """Add a patient."""
    patient = Patient(id=new_id(), name=name, birth_date=birth_date, created_at=utcnow())
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
        _require_aware(appointment_at, "appointment_at")
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
    _require_aware(expires_at, "expires_at")
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


def find_intake_by_token_hash(session: Session, token_hash: str, *, now: datetime) -> Intake | None:
    """The intake a patient link opens: None when the link is unknown, expired or revoked."""
    _require_aware(now, "now")
    return session.scalars(
        select(Intake)
        .join(InviteToken, InviteToken.intake_id == Intake.id)
        .where(
            InviteToken.token_hash == token_hash,
            InviteToken.revoked_at.is_(None),
            InviteToken.expires_at > now,
        )
    ).one_or_none()


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
    _require_aware(now, "now")
    intake = _lock_intake(session, intake_id)
    if intake.status == "completed":
        raise IntakeClosed(intake_id)
    status = resource.get("status", "in-progress")
    record = _write_response(session, intake, questionnaire, resource, status=status, now=now)
    if intake.status == "not-started":
        intake.status = "in-progress"
    if page is not None:
        intake.last_page = page
    intake.updated_at = now
    session.flush()
    return record


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
    _require_aware(now, "now")
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
    intake = session.get(Intake, intake_id, populate_existing=True)
    assert intake is not None  # the UPDATE just matched it
    for questionnaire, resource in responses.items():
        _write_response(session, intake, questionnaire, resource, status="completed", now=now)
    session.flush()
    return True


# --- helpers --------------------------------------------------------------------------------


def _lock_intake(session: Session, intake_id: str) -> Intake:
    """Load the intake fresh and lock its row until the transaction ends (serialises writers)."""
    intake = session.scalars(
        select(Intake)
        .where(Intake.id == intake_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if intake is None:
        raise IntakeNotFound(intake_id)
    return intake


def _write_response(
    session: Session,
    intake: Intake,
    questionnaire: str,
    resource: dict[str, Any],
    *,
    status: str,
    now: datetime,
) -> ResponseRecord:
    """Insert or update the (intake, url) record; the intake row must already be locked."""
    url, version = _split_canonical(questionnaire)
    if status not in RESPONSE_STATUSES:
        raise ValueError(f"response status must be one of {RESPONSE_STATUSES}, not {status!r}")
    record = session.scalars(
        select(ResponseRecord)
        .where(ResponseRecord.intake_id == intake.id, ResponseRecord.questionnaire_url == url)
        .execution_options(populate_existing=True)
    ).one_or_none()
    record_id = new_id() if record is None else record.id
    version_id = 1 if record is None else record.version_id + 1

    body = copy.deepcopy(resource)
    if body.setdefault("resourceType", "QuestionnaireResponse") != "QuestionnaireResponse":
        raise ValueError(f"not a QuestionnaireResponse: {body['resourceType']!r}")
    _fill_or_check(body, "id", record_id)
    _fill_or_check(body, "questionnaire", questionnaire)
    body.setdefault("subject", {"reference": f"Patient/{intake.patient_id}"})
    subject = _patient_id_of(body["subject"])
    if subject != intake.patient_id:
        raise ValueError("the response's subject is not the intake's patient")
    body.setdefault("authored", _fhir_instant(now))
    authored = _parse_fhir_datetime(body["authored"])
    body["status"] = status
    body["meta"] = {
        **(body.get("meta") or {}),
        "versionId": str(version_id),
        "lastUpdated": _fhir_instant(now),
    }

    if record is None:
        record = ResponseRecord(id=record_id, intake_id=intake.id, questionnaire_url=url)
        session.add(record)
    record.questionnaire_version = version
    record.status = status
    record.subject_patient_id = subject
    record.authored = authored
    record.resource_json = canonical_json(body)
    record.version_id = version_id
    record.updated_at = now
    return record


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


def _parse_fhir_datetime(value: Any) -> datetime:
    """A FHIR dateTime (full date at least) as UTC; values without a zone are taken as UTC."""
    if not isinstance(value, str):
        raise ValueError(f"authored must be a FHIR dateTime string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"authored is not a full FHIR dateTime: {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _fhir_instant(moment: datetime) -> str:
    """A FHIR instant in UTC with microseconds, e.g. ``2024-05-01T09:30:00.000000Z``."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _require_aware(moment: datetime, name: str) -> None:
    """Refuse naive datetimes early, with the argument's name in the message."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a tz-aware datetime")
