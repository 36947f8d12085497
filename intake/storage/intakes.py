"""Intakes: create and read them, the patient pages' one-query view, and the row lock writers take.

Functions take the caller's `Session` and never commit: the caller owns the transaction
(`intake.storage.db.session_scope`), so a view can combine several calls into one unit of work.
Write functions flush, so constraint errors surface here.

Concurrency: writes to an intake first lock its row (`lock_intake`: ``SELECT ... FOR UPDATE`` on
PostgreSQL; on SQLite every write transaction already holds the database write lock from
``BEGIN IMMEDIATE``), so concurrent writes to one intake (responses, links) run one after the other
and see each other's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import CursorResult, bindparam, select, update
from sqlalchemy.orm import Session

from intake.core.fhir_time import require_aware, utcnow
from intake.errors import IntakeError
from intake.storage.models import URL_LENGTH, VERSION_LENGTH, Intake, Patient, ResponseRecord, new_id


class StorageError(IntakeError):
    """Base of the storage errors; each knows its status, so none reaches a view raw."""


class IntakeNotFound(StorageError):
    """The intake id is unknown."""

    status = 404

    def __init__(self, intake_id: str) -> None:
        super().__init__(f"Intake/{intake_id} is not known")
        self.intake_id = intake_id


class IntakeClosed(StorageError):
    """The intake is completed; its answers can no longer change."""

    status = 409

    def __init__(self, intake_id: str) -> None:
        super().__init__(f"Intake/{intake_id} is completed; its answers can no longer change")
        self.intake_id = intake_id


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
    urls = [split_canonical(q)[0] for q in questionnaires]
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


def completed_intake_ids(session: Session) -> list[str]:
    return list(session.scalars(select(Intake.id).where(Intake.status == "completed").order_by(Intake.completed_at)))


def completed_intakes_of_patient(session: Session, patient_id: str) -> list[Intake]:
    """The patient's completed intakes, oldest first (a later one supersedes earlier flags)."""
    return list(session.scalars(
        select(Intake).where(Intake.patient_id == patient_id, Intake.status == "completed",
                             Intake.completed_at.is_not(None)).order_by(Intake.completed_at, Intake.id)))


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
        return self.stored.get(split_canonical(questionnaire)[0])


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
    result = session.execute(
        update(Intake)
        .where(Intake.id == intake_id, Intake.status != "completed")
        .values(language=language)
    )
    return bool(cast(CursorResult[Any], result).rowcount)


# Built once, as the write path's statements are (see `intake.storage.responses`).
_LOCK_INTAKE = (
    select(Intake.id, Intake.patient_id, Intake.status, Intake.last_page)
    .where(Intake.id == bindparam("intake_id"))
    .with_for_update()
)


@dataclass(frozen=True)
class LockedIntake:
    """What `lock_intake` read of the row it locked."""

    id: str
    patient_id: str
    status: str
    last_page: str | None


def lock_intake(session: Session, intake_id: str) -> LockedIntake:
    """Read the intake and lock its row until the transaction ends (serialises writers)."""
    row = session.connection().execute(_LOCK_INTAKE, {"intake_id": intake_id}).one_or_none()
    if row is None:
        raise IntakeNotFound(intake_id)
    stale = session.identity_map.get(session.identity_key(Intake, (intake_id,)))
    if stale is not None:
        session.expire(stale)
    return LockedIntake(row.id, row.patient_id, row.status, row.last_page)


def split_canonical(questionnaire: str) -> tuple[str, str]:
    """``url|version`` -> (url, version); both parts are required."""
    url, sep, version = questionnaire.partition("|")
    if not (url and sep and version):
        raise ValueError(f"questionnaire must be a canonical 'url|version': {questionnaire!r}")
    if len(url) > URL_LENGTH or len(version) > VERSION_LENGTH:
        raise ValueError(f"questionnaire url or version too long: {questionnaire!r}")
    return url, version
