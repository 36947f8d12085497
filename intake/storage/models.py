"""Tables of the intake service, as typed SQLAlchemy 2 declarative models.

The models carry no relationships on purpose: every query lives in a query module, so no view
can trigger a lazy load (or a query) by walking an attribute. Timestamps are always tz-aware UTC,
on SQLite as well as PostgreSQL. Changes here need a new Alembic revision in
``intake/migrations/versions``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from intake.core.fhir_time import utcnow

INTAKE_STATUSES = ("not-started", "in-progress", "completed")
RESPONSE_STATUSES = ("in-progress", "completed")

ID_LENGTH = 36  # str(uuid4())
URL_LENGTH = 255
VERSION_LENGTH = 64
TOKEN_HASH_LENGTH = 64  # SHA-256 hex digest
LANGUAGE_LENGTH = 8  # a BCP 47 primary tag (`es`), with room for a region (`es-419`)
EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path
PHONE_LENGTH = 16  # E.164: "+" and at most 15 digits

# Deterministic constraint names: Alembic needs names to alter constraints (batch mode on SQLite).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """A random (uuid4) identifier; also used as the FHIR resource id of responses."""
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only accepts and returns tz-aware UTC datetimes.

    SQLite has no time zone storage and returns naive values; PostgreSQL returns values in the
    session time zone. Normalising both to UTC keeps comparisons and FHIR instants uniform, and
    refusing naive datetimes stops local wall-clock times from being stored as if they were UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a tz-aware (UTC) datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            value = value.replace(tzinfo=None)  # stored as UTC text, fixed width, sorts correctly
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base; its metadata is what Alembic migrates to."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Patient(Base):
    """A person who fills in intakes (minimal demographics; the EHR holds the rest)."""

    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    birth_date: Mapped[date] = mapped_column(Date)
    # The health record's number for this person, when staff gave one, and its identifier system
    # (INTAKE_MRN_SYSTEM when it was recorded): the Patient resource is built from these alone.
    mrn: Mapped[str | None] = mapped_column(String(64))
    mrn_system: Mapped[str | None] = mapped_column(String(URL_LENGTH))
    # The EHR's own Patient (`Patient/123` at INTAKE_EHR_FHIR_BASE) when staff named it or linked
    # a held push to it: pushes then reference it instead of sending a Patient (patient_match.py).
    ehr_reference: Mapped[str | None] = mapped_column(String(URL_LENGTH))
    # Where invitations and reminders go (PHI, like the name: never logged, masked in lists, a
    # full view audited). Normalised: a lowercase-domain e-mail address, an E.164 number (+15551234567).
    email: Mapped[str | None] = mapped_column(String(EMAIL_LENGTH))
    phone: Mapped[str | None] = mapped_column(String(PHONE_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Intake(Base):
    """One pre-appointment questionnaire set for a patient, and how far they got with it."""

    __tablename__ = "intakes"
    __table_args__ = (
        CheckConstraint(f"status IN {INTAKE_STATUSES!r}", name="status"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    appointment_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Canonical "url|version" strings in the order the patient answers them. JSON is not
    # mutation-tracked: assign a new list rather than changing it in place.
    questionnaires: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True, default="not-started")
    last_page: Mapped[str | None] = mapped_column(String(255))
    # The language the patient chose (`en`, `es`): a link opened in a new browser continues in it.
    language: Mapped[str | None] = mapped_column(String(LANGUAGE_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InviteToken(Base):
    """A patient link. Only the SHA-256 of the token is kept, so a database leak opens no intake."""

    __tablename__ = "invite_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    intake_id: Mapped[str] = mapped_column(ForeignKey("intakes.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the patient first opened it (the front desk's "opened").
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The raw link sealed (Fernet, a key derived from SECRET_KEY) while messages still have to
    # carry it: set when an invitation is queued, cleared when the intake is sent, the link is
    # revoked or no message is left to send (intake/invitations.py).
    sealed: Mapped[str | None] = mapped_column(Text)


class ShownLink(Base):
    """A new patient link waiting to be shown, once, to the staff member who made it.

    ``sealed`` is the token encrypted with a key kept only in that staff member's session cookie,
    so neither the cookie nor the database alone holds the link. The row is deleted when shown
    and is useless after ``expires_at`` (a few minutes).
    """

    __tablename__ = "shown_links"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    intake_id: Mapped[str] = mapped_column(ForeignKey("intakes.id"), index=True)
    sealed: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


MESSAGE_PURPOSES = ("invitation", "reminder")
MESSAGE_CHANNELS = ("email", "sms")
MESSAGE_STATES = ("scheduled", "sent", "cancelled", "failed")


class PatientMessage(Base):
    """One invitation or reminder to a patient by one channel, carrying one link.

    Scheduled with an outbox row (kind "patient_message", due at ``due_at``); the row's handler
    sends it unless the intake was sent or the link revoked meanwhile. Holds no address or text:
    those are read from the patient and the templates when it is sent.
    """

    __tablename__ = "patient_messages"
    __table_args__ = (
        CheckConstraint(f"purpose IN {MESSAGE_PURPOSES}", name="purpose"),
        CheckConstraint(f"channel IN {MESSAGE_CHANNELS}", name="channel"),
        CheckConstraint(f"state IN {MESSAGE_STATES}", name="state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    intake_id: Mapped[str] = mapped_column(ForeignKey("intakes.id"), index=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("invite_tokens.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(LANGUAGE_LENGTH))
    state: Mapped[str] = mapped_column(String(16), default="scheduled")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(64))  # why cancelled or failed (no PHI)


class ResponseRecord(Base):
    """The stored QuestionnaireResponse of one questionnaire of an intake (draft or completed).

    ``resource_json`` is the canonical JSON of the FHIR resource and the source of truth; the
    other columns are copies of its fields for searching. ``id`` is also the resource id.
    """

    __tablename__ = "response_records"
    __table_args__ = (
        UniqueConstraint("intake_id", "questionnaire_url"),
        CheckConstraint(f"status IN {RESPONSE_STATUSES!r}", name="status"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    intake_id: Mapped[str] = mapped_column(ForeignKey("intakes.id"))
    questionnaire_url: Mapped[str] = mapped_column(String(URL_LENGTH))
    questionnaire_version: Mapped[str] = mapped_column(String(VERSION_LENGTH))
    status: Mapped[str] = mapped_column(String(16), index=True)
    subject_patient_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    authored: Mapped[datetime] = mapped_column(UTCDateTime)
    resource_json: Mapped[str] = mapped_column(Text)
    version_id: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    @property
    def questionnaire(self) -> str:
        """The canonical ``url|version`` this response answers."""
        return f"{self.questionnaire_url}|{self.questionnaire_version}"

    @property
    def resource(self) -> dict[str, Any]:
        """The stored QuestionnaireResponse as a fresh dict (safe to modify)."""
        result: dict[str, Any] = json.loads(self.resource_json)
        return result


FLAG_TIERS = ("emergency", "urgent", "review")
NOTIFY_STATES = ("pending", "sending", "sent", "failed", "not-required")
# Where a flag was first raised: a page saved while answering (the intake may never be sent), or
# the submitted intake (or a re-score of it).
FLAG_SOURCES = ("draft", "submitted")


class ScoringResult(Base):
    """The screening summary's computed part for one completed intake, as the engine gave it.

    ``result_json`` is `intake.core.scoring.Result.as_json()`; ``scoring_versions`` says which
    engine and Questionnaire versions produced it, so `flask intake rescore` can redo it.
    """

    __tablename__ = "scoring_results"

    intake_id: Mapped[str] = mapped_column(ForeignKey("intakes.id"), primary_key=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    scoring_versions: Mapped[dict[str, str]] = mapped_column(JSON)
    result_json: Mapped[str] = mapped_column(Text)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def result(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.result_json)
        return loaded


class FlagRecord(Base):
    """A raised red flag, listed for staff and notified once (unique per intake and rule)."""

    __tablename__ = "flags"
    __table_args__ = (
        UniqueConstraint("intake_id", "rule_id"),
        CheckConstraint(f"tier IN {FLAG_TIERS}", name="tier"),
        CheckConstraint(f"notify_state IN {NOTIFY_STATES}", name="notify_state"),
        CheckConstraint(f"source IN {FLAG_SOURCES}", name="source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    intake_id: Mapped[str] = mapped_column(ForeignKey("intakes.id"), index=True)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id"), index=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    tier: Mapped[str] = mapped_column(String(16), index=True)
    message: Mapped[str] = mapped_column(Text)
    because: Mapped[list[str]] = mapped_column(JSON)
    questionnaire: Mapped[str] = mapped_column(String(URL_LENGTH + VERSION_LENGTH + 1))
    scoring_version: Mapped[str] = mapped_column(String(URL_LENGTH + 64))
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    notify_state: Mapped[str] = mapped_column(String(16), default="pending")
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notify_error: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16), default="submitted", server_default="submitted")
    # When the latest answers stopped raising it (changed, or switched off by enablement); None
    # while they still raise it. The row itself stays: a raised flag is never erased.
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FhirResource(Base):
    """A FHIR resource as the API serves it: canonical JSON written (and validated) once.

    Reads and searches return ``resource_json`` as stored, never a rebuilt model. The other
    columns are copies of its fields for searching; token-like parameters live in `FhirToken`.
    ``seq`` orders results and pages (keyset); it never changes when a resource is updated.
    """

    __tablename__ = "fhir_resources"
    __table_args__ = (
        UniqueConstraint("resource_type", "resource_id"),
        Index("ix_fhir_resources_type_seq", "resource_type", "seq"),
        Index("ix_fhir_resources_type_patient_seq", "resource_type", "patient_id", "seq"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_type: Mapped[str] = mapped_column(String(40))
    resource_id: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(Integer, default=1)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    patient_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    intake_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)
    status: Mapped[str | None] = mapped_column(String(32))
    date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resource_json: Mapped[str] = mapped_column(Text)


class FhirToken(Base):
    """One searchable (parameter, system, value) of a stored resource: codes, identifiers,
    references (``Type/id``), canonicals and normalised name parts."""

    __tablename__ = "fhir_tokens"
    __table_args__ = (Index("ix_fhir_tokens_param_value", "param", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_seq: Mapped[int] = mapped_column(ForeignKey("fhir_resources.seq", ondelete="CASCADE"), index=True)
    param: Mapped[str] = mapped_column(String(32))
    system: Mapped[str | None] = mapped_column(String(URL_LENGTH))
    value: Mapped[str] = mapped_column(String(URL_LENGTH + VERSION_LENGTH + 1))


class DocumentRecord(Base):
    """The rendered clinician PDF of a completed intake; downloads serve these bytes.

    ``source_sha256`` is the hash of what it was rendered from (HTML and attachments), so a
    re-render after re-scoring stores a new version only when the content changed.
    """

    __tablename__ = "documents"

    intake_id: Mapped[str] = mapped_column(ForeignKey("intakes.id"), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    source_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    rendered_at: Mapped[datetime] = mapped_column(UTCDateTime)


EXPORT_STATUSES = ("accepted", "in-progress", "completed", "failed", "cancelled")


class ExportJob(Base):
    """A bulk `$export` request and its progress; the NDJSON files live in the instance folder."""

    __tablename__ = "export_jobs"
    __table_args__ = (CheckConstraint(f"status IN {EXPORT_STATUSES!r}", name="status"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(String(16), default="accepted")
    request_url: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(String(16))  # system | patient | group
    group_id: Mapped[str | None] = mapped_column(String(64))
    types: Mapped[list[str]] = mapped_column(JSON)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    transaction_time: Mapped[datetime] = mapped_column(UTCDateTime)
    progress: Mapped[str | None] = mapped_column(String(255))
    output: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(255))
    requested_by: Mapped[str] = mapped_column(String(255), index=True)  # only this client sees the job
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the job and its files are deleted: INTAKE_BULK_EXPORT_TTL_HOURS after it ended (after
    # the kick-off while it runs, so a job whose worker died does not hold its client's slot forever).
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ApiClient(Base):
    """A system registered for SMART Backend Services: it proves itself with a JWT signed by a key
    of its JWK set (only public keys are kept) and may be granted at most `scopes`."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)  # the OAuth client_id
    jwks: Mapped[str] = mapped_column(Text)
    scopes: Mapped[str] = mapped_column(Text)  # space-separated, e.g. "system/*.read"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UsedAssertion(Base):
    """A client assertion's `jti`, kept until the assertion expires, so a replay is refused."""

    __tablename__ = "used_assertions"
    __table_args__ = (UniqueConstraint("client", "jti"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(String(255))
    jti: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


ROLES = ("admin", "clinician", "front-desk")


class User(Base):
    """A staff account. One role each (admin: users, API clients, audit; clinician: summaries,
    PDFs, FHIR JSON; front-desk: patients, intakes, links). The password is a werkzeug scrypt
    hash (memory-hard); the TOTP secret is set only once the user has confirmed a code."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)  # stored case-folded
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(Integer)  # a code is accepted once
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StaffSession(Base):
    """A signed-in staff session, held server-side so logout and disabling end it at once.

    The cookie carries a random token; only its SHA-256 is kept here (``id``)."""

    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the TOTP secret offered while this session turns on two-step sign-in (not yet proven)
    totp_pending: Mapped[str | None] = mapped_column(String(64))


class AuditRecord(Base):
    """One audited action, append-only and hash-chained: ``hash`` = HMAC-SHA256, under a key kept
    outside the database, of the previous row's hash and this row's fields, so changing, removing
    or reordering a row is detected (`intake.audit`). ``scheme`` says how the hash was made: rows
    from before migration 0012 are "sha256" (unkeyed), later ones "hmac-sha256:<key id>".
    Database triggers (migration 0007) refuse UPDATE, DELETE and TRUNCATE of these rows."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))  # user | client | patient-link | anonymous | system
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # success | failure
    entities: Mapped[str] = mapped_column(Text)  # JSON list of "Type/id"
    detail: Mapped[str] = mapped_column(Text)  # endpoint, method, status, query (no free text)
    source: Mapped[str] = mapped_column(String(64))  # client address
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    scheme: Mapped[str] = mapped_column(String(32), server_default="sha256")


class AuditHead(Base):
    """The chain's head (one row): locked for update by each writer, so rows get consecutive
    numbers and each is chained to the one before, on PostgreSQL as on SQLite."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


# "held": an EHR push waiting for staff to link its patient to the EHR's (INTAKE_EHR_UNMATCHED_PATIENT=hold).
OUTBOX_STATES = ("pending", "queued", "done", "dead", "held")


class OutboxRecord(Base):
    """One piece of background work (render a PDF, push to the EHR, notify staff), written in
    the same transaction as the data that caused it, so a commit never loses its follow-up and a
    rollback never leaves one behind. A dispatcher hands due rows to the job runner; the runner
    marks them done, or due again later (backoff), or dead (a dead letter, re-driven by hand).

    ``due_at`` means: when pending, the earliest time to run; when queued (handed over), when
    the hand-over lapses and the row is handed over again (a worker died or the broker lost it).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(f"state IN {OUTBOX_STATES}", name="state"),
        Index("ix_outbox_state_due_at", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(64), index=True)  # an intake, flag or job id
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    after_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))  # runs once that row is settled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(255))  # a status or type; the EHR's text: never logged
