"""Stored QuestionnaireResponses: drafts, the conditional save of the patient pages, completion.

Functions take the caller's `Session` and never commit (see `intake.storage.intakes`). Writes to
an intake lock its row first (`intake.storage.intakes.lock_intake`), so concurrent saves of one
intake run one after the other and see each other's rows.

Stored QuestionnaireResponses are made consistent with their record on every write:

- ``id`` is the record id. A resource without ``id`` gets it; a different ``id`` is refused.
- ``questionnaire``, ``subject`` and ``authored`` are filled in when absent (the intake's
  canonical, its patient, and ``now``) and refused when they contradict the record.
- ``meta.versionId`` (the record's ``version_id``, 1 on the first write, +1 on each write) and
  ``meta.lastUpdated`` (``now``) are always set here; other ``meta`` keys are kept.

The caller's dict is never modified; the stored form is ``record.resource``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.core.canonical import canonical_json
from intake.core.fhir_time import fhir_instant, parse_fhir_datetime, require_aware
from intake.storage.intakes import (
    IntakeClosed,
    IntakeNotFound,
    LockedIntake,
    StorageError,
    StoredVersion,
    get_intake,
    lock_intake,
    split_canonical,
)
from intake.storage.models import RESPONSE_STATUSES, Intake, ResponseRecord, new_id


class StaleResponse(StorageError):
    """The stored response changed since the caller read it (another tab or a retry saved)."""

    status = 409

    def __init__(self, intake_id: str) -> None:
        super().__init__(f"the answers of Intake/{intake_id} changed since they were read; read them again")
        self.intake_id = intake_id


def list_responses(session: Session, intake_id: str) -> list[ResponseRecord]:
    """The intake's stored responses, in the intake's questionnaire order.

    Records whose url is not (or no longer) listed on the intake come last, by url.
    """
    intake = session.get(Intake, intake_id)
    records = list(
        session.scalars(select(ResponseRecord).where(ResponseRecord.intake_id == intake_id))
    )
    listed = [] if intake is None else [split_canonical(q)[0] for q in intake.questionnaires]
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
    intake = lock_intake(session, intake_id)
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
    touched = connection.execute(_TOUCH_OPEN_INTAKE, {"intake_id": intake_id, "page": page, "updated_at": now}).one_or_none()
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
        result = cast(CursorResult[Any], connection.execute(_UPDATE_RECORD_IF_VERSION, {**values, "owner_intake_id": intake_id, "expected": base.version_id}))
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
    urls = [split_canonical(q)[0] for q in responses]
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
    intake = lock_intake(session, intake_id)
    for questionnaire, resource in responses.items():
        _write_response(session, intake, questionnaire, resource, status="completed", now=now)
    return True


# The write path runs on every saved page, so its statements are built once (constructing a
# select() costs more than running it) and run on the Core path, not through the ORM's unit of
# work. The ORM identity map is expired for the touched rows, so later ORM reads see the writes.
_FIND_RECORD = select(ResponseRecord.id, ResponseRecord.version_id).where(
    ResponseRecord.intake_id == bindparam("intake_id"), ResponseRecord.questionnaire_url == bindparam("url")
)
_TOUCH_INTAKE = (
    update(Intake)
    .where(Intake.id == bindparam("intake_id"))
    .values(status=bindparam("status"), last_page=bindparam("last_page"), updated_at=bindparam("updated_at"))
)
_RECORD_VALUES = dict(
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


def _write_response(
    session: Session,
    intake: LockedIntake,
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
    url, _version = split_canonical(questionnaire)
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
    url, version = split_canonical(questionnaire)
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
