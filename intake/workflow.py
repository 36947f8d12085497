"""The intake workflow shared by the patient pages, the front desk and the CLI: invite, page
order, save, submit, re-score.

Views and commands stay thin: they parse input and render; the steps — which page comes next,
what is stored, when an intake is complete — live here, over the core and the repository. The use
cases at the end (`invite_patient`, `replace_link`, `save_answers`, `submit_intake`,
`rescore_intake`) put a step together with its audit row and its follow-up work (outbox rows) in
the caller's transaction, once, for every caller.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from intake import audit, channels, invitations, notify
from intake.auth.links import new_token, token_hash
from intake.core.answers import build_response, compute, flatten
from intake.core.catalog import Catalog
from intake.core.clinician_text import clinician_message
from intake.core.contact_points import ContactError, normalise_email, normalise_phone
from intake.core.display import display_answer
from intake.core.enablement import Answers
from intake.core.fhir_time import fhir_instant_seconds, utcnow
from intake.core.items import Form, Page
from intake.core.reminders import out_of_quiet, reminder_times
from intake.core.scoring import Context, Result, RuleError, flags_reading, score_intake
from intake.core.summary import Summary, build_summary
from intake.core.validation import Issue, has_errors, validate
from intake.errors import IntakeError
from intake.fhir import publish as fhir_resources  # `publish` below is this module's own step
from intake.jobs import outbox
from intake.services import services
from intake.storage import flags as flag_store
from intake.storage import intakes, invites, messages, notifications, outbox_store, patients, scores
from intake.storage import responses as response_store
from intake.storage.intakes import IntakeView
from intake.storage.models import FlagRecord, Intake, InviteToken

log = logging.getLogger(__name__)


class WorkflowError(IntakeError):
    """A request the workflow refuses (unknown questionnaire, bad invite data): 400."""

    status = 400


class NotFoundError(WorkflowError):
    """The patient or intake the request names does not exist: 404."""

    status = 404


class ConflictError(WorkflowError):
    """The request is fine but the record's state refuses it (already submitted, a record number
    that belongs to someone else): 409."""

    status = 409


@dataclass(frozen=True)
class Step:
    """One patient page in the intake's sequence."""

    form: Form
    page: Page

    @property
    def slug(self) -> tuple[str, str]:
        return (self.form.key, self.page.key)


def resolve_set(catalog: Catalog, keys: list[str]) -> list[Form]:
    forms = []
    for key in keys:
        form = catalog.by_key.get(key) or catalog.get(key)
        if form is None:
            raise WorkflowError(f"unknown questionnaire {key!r}; loaded: {', '.join(sorted(catalog.by_key))}")
        forms.append(form)
    return forms


def invite(
    session: Session,
    catalog: Catalog,
    *,
    name: str,
    birth_date: date,
    questionnaires: list[str],
    appointment_at: datetime | None,
    ttl: timedelta,
    now: datetime | None = None,
    patient_id: str | None = None,
    mrn: str | None = None,
    mrn_system: str | None = None,
    ehr_reference: str | None = None,
) -> tuple[Intake, str]:
    """Create patient + intake + link token; returns the intake and the raw token (shown once).

    With `patient_id`, the intake is for that existing patient (a follow-up visit), so their
    scores show the change since last time; `name`, `birth_date` and `mrn` are then ignored.
    `mrn_system` is the identifier system the record number belongs to (INTAKE_MRN_SYSTEM).
    `ehr_reference` is the EHR's own Patient (`Patient/123`): a patient already linked to it is the
    same person (a follow-up), and pushes to the EHR refer to it (intake/fhir/patient_match.py).
    A new patient is published as a FHIR Patient at once.
    """
    now = now or utcnow()
    forms = resolve_set(catalog, questionnaires)
    if patient_id is not None:
        patient = patients.get_patient(session, patient_id)
        if patient is None:
            raise NotFoundError(f"no patient {patient_id!r}")
    else:
        name = " ".join(name.split())
        if not name:
            raise WorkflowError("a patient name is required")
        if birth_date > now.date():
            raise WorkflowError("the birth date is in the future")
        mrn = mrn.strip() if mrn else None
        if mrn is not None and not (0 < len(mrn) <= 64 and mrn.isprintable()):
            raise WorkflowError("the record number must be 1 to 64 printable characters")
        if mrn is not None and not mrn_system:
            raise WorkflowError("a record number needs its identifier system (INTAKE_MRN_SYSTEM)")
        by_mrn = patients.patient_by_mrn(session, mrn, mrn_system) if mrn and mrn_system else None
        by_ehr = patients.patient_by_ehr_reference(session, ehr_reference) if ehr_reference else None
        if by_mrn is not None and by_ehr is not None and by_mrn.id != by_ehr.id:
            raise WorkflowError("that record number and that EHR patient belong to two different patients")
        if by_mrn is not None and ehr_reference and by_mrn.ehr_reference not in (None, ehr_reference):
            raise WorkflowError("that record number belongs to a patient linked to another EHR patient")
        if by_ehr is not None and mrn and by_ehr.mrn not in (None, mrn):
            raise WorkflowError("that EHR patient is linked to a patient with another record number")
        known = by_mrn or by_ehr
        if known is not None:
            # The same record number is the same person: a follow-up intake, so their scores show
            # the change since last time. The name and birth date must agree with the record.
            if (" ".join(known.name.split()).casefold(), known.birth_date) != (name.casefold(), birth_date):
                raise ConflictError("that record number belongs to a patient with another name or birth date")
            patient = known
            if ehr_reference and known.ehr_reference is None:
                patients.link_to_ehr(session, known.id, ehr_reference)
        else:
            patient = patients.create_patient(session, name=name, birth_date=birth_date, mrn=mrn, mrn_system=mrn_system,
                                              ehr_reference=ehr_reference)
            fhir_resources.publish_patient(session, patient, now=now)
    intake = intakes.create_intake(
        session,
        patient_id=patient.id,
        questionnaires=[f.canonical for f in forms],
        appointment_at=appointment_at,
    )
    token = new_token()
    invites.issue_invite(session, intake_id=intake.id, token_hash=token_hash(token), expires_at=now + ttl)
    return intake, token


def new_link(session: Session, intake_id: str, *, ttl: timedelta, now: datetime | None = None) -> str:
    """A fresh link for an intake not yet submitted; every earlier link stops working."""
    now = now or utcnow()
    intake = intakes.get_intake(session, intake_id)
    if intake is None:
        raise NotFoundError("no such intake")
    if intake.status == "completed":
        raise ConflictError("this intake was already submitted; create a new intake instead")
    token = new_token()
    invites.issue_invite(session, intake_id=intake_id, token_hash=token_hash(token), expires_at=now + ttl)
    return token


def intake_forms(catalog: Catalog, intake: IntakeView) -> list[Form]:
    forms = []
    for canonical in intake.questionnaires:
        form = catalog.get(canonical)
        if form is None:
            raise WorkflowError(f"questionnaire {canonical} of this intake is no longer loaded")
        forms.append(form)
    return forms


# Process-wide on purpose: keyed by the stored text alone, it depends on no catalog or form.
@lru_cache(maxsize=4096)
def _parsed(resource_json: str) -> tuple[str, Answers]:
    """(questionnaire, answers) of a stored response, memoised on its exact stored text.

    Every page view needs the answers of all the intake's questionnaires; the stored text only
    changes when the patient saves, so parsing it once per version keeps page views cheap.
    Callers must not mutate the result.
    """
    resource = json.loads(resource_json)
    return resource["questionnaire"], flatten(resource)


def stored_answers(intake: IntakeView) -> dict[str, Answers]:
    """canonical -> answers, from the stored responses read with the intake."""
    return dict(_parsed(text) for text in intake.responses_json)


NO_ANSWERS: Answers = {}  # shared and never mutated: the memo below recognises it by identity
ENABLED_MEMO_SIZE = 1024  # answers objects remembered per form


def enabled_for(form: Form, answers: Answers) -> frozenset[str]:
    """The enabled linkIds for `answers`, memoised on the form per answers object (bounded).

    Stored answers come from `_parsed`, so the same dict object stands for the same stored
    version across requests; the entry keeps a reference to it, so its id cannot be reused
    while cached. Answers must not be mutated after being passed here.
    """
    memo: dict[int, tuple[Answers, frozenset[str]]] = form.memo.setdefault("enabled_for", {})
    key = id(answers)
    hit = memo.get(key)
    if hit is not None and hit[0] is answers:
        return hit[1]
    if len(memo) > ENABLED_MEMO_SIZE:
        memo.clear()
    enabled = frozenset(compute(form, answers)[1])
    memo[key] = (answers, enabled)
    return enabled


def steps(forms: list[Form], answers: dict[str, Answers]) -> list[Step]:
    """The pages the patient sees now: pages whose group is disabled (a reflex not triggered) drop out."""
    out = []
    for form in forms:
        enabled = enabled_for(form, answers.get(form.canonical, NO_ANSWERS))
        for page in form.pages:
            if page.group is None or page.group.link_id in enabled:
                out.append(Step(form, page))
    return out


def save_page(
    session: Session,
    intake: IntakeView,
    form: Form,
    page: Page,
    merged: Answers,
    *,
    now: datetime | None = None,
    language: str | None = None,
) -> None:
    """Store the whole questionnaire's answers as the in-progress response, at once.

    `language` is the one the patient is answering in; the response records it (texts stay
    the Questionnaire's own, so a receiver can match them to the definition).

    The write is conditional on the stored response still being the version the answers were
    read from (`intake.stored_version`); `response_store.StaleResponse` otherwise, nothing written.
    """
    now = now or utcnow()
    response = build_response(
        form,
        merged,
        status="in-progress",
        subject=f"Patient/{intake.patient_id}",
        authored=fhir_instant_seconds(now),
        language=language,
    )
    response_store.save_draft_if_unchanged(
        session,
        intake_id=intake.id,
        questionnaire=form.canonical,
        resource=response,
        page=f"{form.key}/{page.key}",
        now=now,
        base=intake.stored_version(form.canonical),
    )


def draft_flags(
    session: Session,
    intake: IntakeView,
    forms: list[Form],
    answers: dict[str, Answers],
    *,
    saved: Form,
    birth_date: date | None,
    onset_age: int,
    now: datetime | None = None,
) -> flag_store.FlagChanges:
    """Evaluate the emergency and urgent flags on the answers saved so far, and store them.

    Runs on every saved page, so a danger the patient reports reaches staff (and the patient
    their guidance) whether or not the intake is ever sent. Flags come from the same rules as at
    submit, on in-progress responses; review-tier flags wait for the submitted answers. Only the
    flags the save of `saved` can change are evaluated (its own, and those of questionnaires
    whose rules read it). A rule that fails to evaluate costs nothing of the saved page: it is
    logged (its name only) and the flags are evaluated again at the next save and at submit.
    """
    now = now or utcnow()
    pairs = [
        (form, build_response(form, answers[form.canonical], status="in-progress",
                              subject=f"Patient/{intake.patient_id}", authored=fhir_instant_seconds(now)))
        for form in forms if answers.get(form.canonical)
    ]
    affected = flags_reading(forms, saved.key)
    try:
        result = score_intake(pairs, scoring_context(birth_date, onset_age), notes=False, flags_of=affected,
                              tiers=flag_store.NOTIFIED_TIERS)
    except RuleError as exc:
        log.error("flag evaluation failed for intake %s: %s", intake.id, str(exc).split(":", 1)[0])
        return flag_store.FlagChanges(added=[], reraised=[])
    flags = [flag.as_json() for flag in result.flags]
    return flag_store.record_flags(session, intake_id=intake.id, patient_id=intake.patient_id, flags=flags,
                                   versions=result.versions, now=now, source="draft",
                                   tiers=flag_store.NOTIFIED_TIERS,
                                   questionnaires={form.url for form in forms if form.key in affected})


def completed_responses(
    forms: list[Form], answers: dict[str, Answers], patient_id: str, now: datetime, language: str | None = None,
    birth_date: date | None = None,
) -> tuple[dict[str, dict[str, Any]], list[tuple[Form, Issue]]]:
    """The completed responses, and every strict-validation problem (form, issue) across them
    (`birth_date` bounds dates such as symptom onsets; without it there is no lower limit)."""
    responses: dict[str, dict[str, Any]] = {}
    problems: list[tuple[Form, Issue]] = []
    for form in forms:
        response = build_response(
            form,
            answers.get(form.canonical, {}),
            status="completed",
            subject=f"Patient/{patient_id}",
            authored=fhir_instant_seconds(now),
            language=language,
        )
        issues = validate(form, response, birth_date=birth_date)
        if has_errors(issues):
            problems.extend((form, i) for i in issues if i.severity in ("error", "fatal"))
        responses[form.canonical] = response
    return responses, problems


def submit(session: Session, catalog: Catalog, intake: IntakeView, *, onset_age: int = 50,
           now: datetime | None = None, language: str | None = None) -> tuple[bool, list[tuple[Form, Issue]]]:
    """Validate strictly, complete, and score — in one transaction, so a completed intake always
    has its results and flags. (True, []) when this call completed it; (False, []) when it was
    already complete (a double submit stores nothing new); (False, problems) when invalid."""
    now = now or utcnow()
    forms = intake_forms(catalog, intake)
    responses, problems = completed_responses(forms, stored_answers(intake), intake.patient_id, now,
                                              language or intake.language, intake.birth_date)
    if problems:
        return False, problems
    done = response_store.complete_intake(session, intake_id=intake.id, responses=responses, now=now)
    if done:
        pairs = [(form, responses[form.canonical]) for form in forms]
        try:
            with session.begin_nested():  # a broken rule must not cost the patient their submission
                score_and_store(session, pairs, intake_id=intake.id, patient_id=intake.patient_id,
                                onset_age=onset_age, now=now)
        except RuleError as exc:
            # The rule's name only (never answers); staff see an unscored intake and can
            # `flask intake rescore` it once the Questionnaire is fixed.
            log.error("scoring failed for intake %s: %s", intake.id, str(exc).split(":", 1)[0])
        publish(session, intake.id, [form for form, _ in pairs], now=now)
    return done, []


def publish(session: Session, intake_id: str, forms: list[Form], *, now: datetime) -> bool:
    """Store the intake's FHIR resources; a failure is logged (no PHI) and leaves the intake
    completed and scored (`flask intake publish` retries). True when published."""
    try:
        with session.begin_nested():
            fhir_resources.publish_intake(session, intake_id, forms={f.canonical: f for f in forms}, now=now)
    except fhir_resources.PublishError as exc:
        log.error("publishing FHIR resources failed for intake %s: %s", intake_id, str(exc).split(":", 1)[0])
        return False
    return True


# --- scoring -------------------------------------------------------------------------------------


def scoring_context(birth_date: date | None, onset_age: int) -> Context:
    return Context(birth_date=birth_date.isoformat() if birth_date else None, gi_onset_age_threshold=onset_age)


def score_and_store(
    session: Session,
    pairs: list[tuple[Form, dict[str, Any]]],
    *,
    intake_id: str,
    patient_id: str,
    onset_age: int,
    now: datetime,
) -> Result:
    """Score an intake's completed responses and store the result and its new flags."""
    patient = patients.get_patient(session, patient_id)
    result = score_intake(pairs, scoring_context(patient.birth_date if patient else None, onset_age))
    scores.store_scoring(session, intake_id=intake_id, patient_id=patient_id, result=result.as_json(),
                             versions=result.versions, now=now)
    return result


def stored_pairs(
    session: Session, catalog: Catalog, intake_id: str, *, latest: bool
) -> list[tuple[Form, dict[str, Any]]]:
    """(Questionnaire, stored response) of an intake. With `latest`, each response is scored
    against the newest loaded version of its Questionnaire (a corrected rule is a new version);
    otherwise against the version it pins."""
    pairs = []
    for record in response_store.list_responses(session, intake_id):
        resource = record.resource
        form = catalog.by_url.get(record.questionnaire_url) if latest else catalog.get(resource["questionnaire"])
        if form is None:
            raise WorkflowError(f"questionnaire {resource['questionnaire']} is not loaded")
        pairs.append((form, resource))
    return pairs


def rescore(
    session: Session, catalog: Catalog, intake_id: str, *, onset_age: int, now: datetime | None = None
) -> Result:
    """Recompute a completed intake's scores and flags with the rules loaded now."""
    intake = intakes.get_intake(session, intake_id)
    if intake is None:
        raise NotFoundError(f"no intake {intake_id}")
    if intake.status != "completed":
        raise ConflictError(f"intake {intake_id} is not a completed intake")
    pairs = stored_pairs(session, catalog, intake_id, latest=True)
    now = now or utcnow()
    result = score_and_store(session, pairs, intake_id=intake_id, patient_id=intake.patient_id,
                             onset_age=onset_age, now=now)
    publish(session, intake_id, [form for form, _ in pairs], now=now)
    return result


# --- flags, as staff see them -------------------------------------------------------------------


@dataclass(frozen=True)
class FlagRow:
    """A raised flag for the staff list: where it came from, and what the answers say now."""

    flag: FlagRecord
    patient_name: str
    intake_status: str
    answers_now: list[tuple[str, str]]  # (question, the stored answer now; "" when unanswered)

    @property
    def message(self) -> str:
        """The flag's message as a clinician reads it (no rule codes or reference sections)."""
        return clinician_message(self.flag.message)

    @property
    def from_draft(self) -> bool:
        """Raised while the patient was answering (the intake may never be sent)."""
        return self.flag.source == "draft"


def staff_flags(session: Session, catalog: Catalog, *, tiers: tuple[str, ...] = flag_store.NOTIFIED_TIERS,
                limit: int = 200) -> list[FlagRow]:
    """The raised flags of `tiers`, newest first, each with the answers that raised it as they
    stand now (a changed answer does not erase the flag; staff see both)."""
    rows = []
    views: dict[str, IntakeView | None] = {}
    for flag, name in flag_store.list_flags(session, tiers=tiers, limit=limit):
        if flag.intake_id not in views:
            views[flag.intake_id] = intakes.intake_view(session, flag.intake_id)
        view = views[flag.intake_id]
        rows.append(FlagRow(flag=flag, patient_name=name, intake_status=view.status if view else "",
                            answers_now=answers_now(catalog, flag, stored_answers(view) if view else {})))
    return rows


def answers_now(catalog: Catalog, flag: FlagRecord, answers: dict[str, Answers]) -> list[tuple[str, str]]:
    """(question, answer as stored now) for each item that raised `flag`; "" when unanswered now
    (changed to blank, or dropped because a changed answer switched its page off)."""
    form = catalog.get(flag.questionnaire)
    url = flag.questionnaire.split("|")[0]
    values_now = answers.get(flag.questionnaire) or next(
        (found for canonical, found in answers.items() if canonical.split("|")[0] == url), {})
    out = []
    for link_id in flag.because:
        item = form.by_link.get(link_id) if form else None
        values = values_now.get(link_id) or []
        out.append((item.text if item else link_id, display_answer(item, values) if item and values else ""))
    return out


# --- the screening summary ------------------------------------------------------------------------


def summary_of(session: Session, catalog: Catalog, intake_id: str) -> Summary | None:
    """The Summary view model of a completed, scored intake (None otherwise): what the clinician
    page and the PDF both show."""
    intake = intakes.get_intake(session, intake_id)
    if intake is None or intake.status != "completed":
        return None
    scoring = scores.get_scoring(session, intake_id)
    patient = patients.get_patient(session, intake.patient_id)
    if scoring is None or patient is None:
        return None
    try:
        pairs = stored_pairs(session, catalog, intake_id, latest=False)
    except WorkflowError:
        pairs = stored_pairs(session, catalog, intake_id, latest=True)
    answers = {form.canonical: flatten(resource) for form, resource in pairs}
    withdrawn = [
        {"id": flag.rule_id, "tier": flag.tier, "message": flag.message, "raisedAt": flag.raised_at,
         "clearedAt": flag.cleared_at, "answersNow": answers_now(catalog, flag, answers)}
        for flag in flag_store.flags_of_intake(session, intake_id) if flag.cleared_at is not None
    ]
    return build_summary(
        intake_id=intake.id, patient_name=patient.name, birth_date=patient.birth_date,
        completed_at=intake.completed_at, appointment_at=intake.appointment_at, result=scoring.result,
        history=scores.patient_history(session, patient.id, before=intake.completed_at), pairs=pairs,
        withdrawn_flags=withdrawn,
    )


# --- follow-up work, in the caller's transaction ---------------------------------------------------


def notify_flags(app: Flask, session: Session, flag_ids: list[int], *, now: datetime) -> int:
    """A notification row per flag not queued before, in the caller's transaction; how many.

    A flag raised from a draft is queued when its page is saved; the submit that follows (or a
    re-score) finds it queued already, so staff are told once.
    """
    if not notify.configured(app) or not flag_ids:
        return 0
    subjects = [str(flag_id) for flag_id in flag_ids]
    queued = outbox_store.subjects_queued(session, outbox.NOTIFY, subjects)
    fresh = [subject for subject in subjects if subject not in queued]
    for subject in fresh:
        outbox.enqueue(session, outbox.NOTIFY, subject, now=now)
    return len(fresh)


def after_submit(app: Flask, session: Session, intake_id: str, *, now: datetime) -> None:
    """The follow-up work of a completed (or re-scored) intake, in its transaction: a notification
    per emergency/urgent flag not yet notified (first: staff hear at once), the PDF, then, when
    this deployment pushes to an EHR, the push (after the PDF, so the Bundle carries it; it goes
    even if the render fails for good)."""
    messages.cancel_for_intake(session, intake_id, now=now, reason="intake sent")  # no reminder after a submit
    notify_flags(app, session, notifications.pending_notifications(session, intake_id=intake_id), now=now)
    render = outbox.enqueue(session, outbox.RENDER_PDF, intake_id, now=now)
    if app.config.get("INTAKE_EHR_FHIR_BASE"):
        outbox.enqueue(session, outbox.EHR_PUSH, intake_id, now=now, after=render)


# --- use cases: a step, its audit row and its follow-up work --------------------------------------
#
# Each runs in the caller's transaction (a view's may also hold the patient's link). Outbox rows
# become work once that transaction commits: the caller then calls `outbox.kick(app)` when the use
# case says rows were queued, so nothing is handed over that could still roll back.


@dataclass(frozen=True)
class Caller:
    """Who asks, for the audit row written with the change: the request's actor and address on
    the web, the operating-system account for a `flask intake` command (`Caller.cli()`)."""

    actor: audit.Actor
    source: str

    @classmethod
    def cli(cls) -> Caller:
        return cls(audit.cli_actor(), "cli")

    def record(self, session: Session, action: str, *entities: str, now: datetime,
               detail: dict[str, object] | None = None) -> None:
        audit.record(session, actor=self.actor, action=action, now=now, entities=entities, detail=detail,
                     source=self.source)


def link_ttl(app: Flask) -> timedelta:
    """How long a patient link works (INTAKE_LINK_TTL_HOURS)."""
    return timedelta(hours=float(app.config["INTAKE_LINK_TTL_HOURS"]))


def invite_patient(
    app: Flask,
    session: Session,
    catalog: Catalog,
    *,
    by: Caller,
    name: str,
    birth_date: date,
    questionnaires: list[str],
    appointment_at: datetime | None,
    patient_id: str | None = None,
    mrn: str | None = None,
    now: datetime | None = None,
    mrn_system: str | None = None,
    ehr_reference: str | None = None,
    contact: Contact | None = None,
) -> tuple[Intake, str]:
    """`invite` with this deployment's link lifetime and record-number system (unless `mrn_system`
    names another), audited: the intake and the raw token (shown once). With `contact`, the
    patient's e-mail/mobile are recorded, the intake takes its language, and the invitation (with
    its reminders) is queued by the channels it names: kick the outbox after the commit.
    `WorkflowError` when the request is refused."""
    now = now or services(app).clock()
    contact = contact or Contact()
    contact.check(app)
    intake, token = invite(session, catalog, name=name, birth_date=birth_date, questionnaires=questionnaires,
                           appointment_at=appointment_at, ttl=link_ttl(app), now=now, patient_id=patient_id,
                           mrn=mrn, mrn_system=mrn_system or app.config["INTAKE_MRN_SYSTEM"],
                           ehr_reference=ehr_reference)
    by.record(session, "create", f"Patient/{intake.patient_id}", f"Intake/{intake.id}", now=now)
    contact.apply(app, session, intake, token, by=by, now=now)
    return intake, token


def replace_link(app: Flask, session: Session, intake_id: str, *, by: Caller, now: datetime | None = None,
                 send: list[str] | None = None) -> str:
    """`new_link` with this deployment's link lifetime, audited: the raw token. Every earlier link
    of the intake, and each browser session one opened, stops working; its invitation's reminders
    are cancelled. With `send` (channels), the new link is sent to the patient's recorded address
    and number, with new reminders."""
    now = now or services(app).clock()
    messages.cancel_for_intake(session, intake_id, now=now, reason="link replaced")
    token = new_link(session, intake_id, ttl=link_ttl(app), now=now)
    by.record(session, "update", f"Intake/{intake_id}", now=now, detail={"link": "replaced"})
    if send:
        intake = intakes.get_intake(session, intake_id)
        assert intake is not None  # new_link found it
        Contact(send=list(send), language=intake.language).apply(app, session, intake, token, by=by, now=now)
    return token


def schedule_invitation(app: Flask, session: Session, intake: Intake, link: InviteToken, token: str, *,
                        channels_: list[str], language: str, now: datetime, by: audit.Actor, source: str) -> int:
    """Queue the invitation carrying `token` (the raw link of `link`) by each of `channels_`, and
    its reminders; audited. How many messages were queued (kick the outbox after the commit)."""
    chosen = [c for c in invitations.CHANNELS if c in channels_]
    if not chosen:
        return 0
    quiet = invitations.quiet_hours(app)
    first = out_of_quiet(now, quiet, None)
    hours = [float(h) for h in app.config["INTAKE_REMINDER_HOURS"]]
    times = reminder_times(appointment=intake.appointment_at, hours_before=hours,
                           limit=int(app.config["INTAKE_REMINDER_MAX"]), sent_at=first, quiet=quiet)
    link.sealed = invitations.seal(app, token)
    count = 0
    for channel in chosen:
        for purpose, due in [("invitation", first), *(("reminder", t) for t in times)]:
            message = messages.schedule(session, intake_id=intake.id, link_id=link.id,
                                        purpose=purpose, channel=channel, language=language, due_at=due, now=now)
            outbox.enqueue(session, outbox.PATIENT_MESSAGE, str(message.id), now=now, due=due)
            count += 1
    audit.record(session, actor=by, action="update", now=now, entities=[f"Intake/{intake.id}"],
                 detail={"invitation": "queued", "channels": chosen, "reminders": len(times)}, source=source)
    return count


@dataclass
class Contact:
    """What an invitation says about reaching the patient: the address and mobile number to record
    (None: keep what is recorded), the language of the intake and its messages, and the channels
    to send the link by now (`email`, `sms`; none: staff hand the link over themselves)."""

    email: str | None = None
    phone: str | None = None
    language: str | None = None
    send: list[str] = field(default_factory=list)

    def check(self, app: Flask) -> None:
        """Normalise the address and number; `WorkflowError` naming what is wrong."""
        try:
            self.email = normalise_email(self.email) if self.email and self.email.strip() else None
            self.phone = normalise_phone(self.phone) if self.phone and self.phone.strip() else None
        except ContactError as exc:
            raise WorkflowError(str(exc)) from None
        if self.language is not None and self.language not in invitations.LANGUAGES:
            raise WorkflowError(f"the language must be one of {', '.join(invitations.LANGUAGES)}")
        unknown = [c for c in self.send if c not in invitations.CHANNELS]
        if unknown:
            raise WorkflowError(f"unknown channel {unknown[0]!r}: e-mail or SMS")
        if "sms" in self.send and not channels.sms_configured(app):
            raise WorkflowError("SMS is not set up here (INTAKE_SMS_URL, INTAKE_SMS_FROM): send by e-mail")

    def apply(self, app: Flask, session: Session, intake: Intake, token: str, *, by: Caller, now: datetime) -> int:
        """Record the details on the patient and the language on the intake, and queue the
        invitation; how many messages were queued."""
        patient = patients.get_patient(session, intake.patient_id)
        assert patient is not None  # the intake's
        if self.email or self.phone:
            patient.email = self.email or patient.email
            patient.phone = self.phone or patient.phone
            by.record(session, "update", f"Patient/{patient.id}", now=now, detail={"contact": "recorded"})
        language = self.language or intake.language or "en"
        if self.language:
            intake.language = self.language
        session.flush()
        if not self.send:
            return 0  # staff hand the link over themselves
        if "email" in self.send and not patient.email:
            raise WorkflowError("to send the link by e-mail, give the patient's e-mail address")
        if "sms" in self.send and not patient.phone:
            raise WorkflowError("to send the link by SMS, give the patient's mobile number")
        link = invites.link_by_hash(session, token_hash(token))
        assert link is not None  # just issued
        return schedule_invitation(app, session, intake, link, token, channels_=self.send,
                                  language=language, now=now, by=by.actor, source=by.source)


@dataclass(frozen=True)
class Saved:
    """What a saved page set off: notifications queued (kick the outbox after the commit), and the
    emergency flags its answers raise (the patient sees their guidance before anything else)."""

    queued: int
    emergencies: list[str]


def save_answers(
    app: Flask,
    session: Session,
    intake: IntakeView,
    forms: list[Form],
    answers: dict[str, Answers],
    step: Step,
    merged: Answers,
    *,
    by: Caller,
    language: str | None,
    now: datetime | None = None,
) -> Saved:
    """Store a page's answers (`merged`: its questionnaire's, all of them) in `language`, which the
    intake keeps; audit it; and act on danger reported on it now, not at Submit: its flags are
    stored, listed for staff and queued for notification with the answers that raised them.
    `response_store.StaleResponse` when the stored response changed since `intake` was read."""
    now = now or services(app).clock()
    save_page(session, intake, step.form, step.page, merged, language=language, now=now)
    if language and intake.language != language:  # answering in it: the intake keeps it
        intakes.set_intake_language(session, intake.id, language)
    by.record(session, "update", f"Intake/{intake.id}", now=now, detail={"page": "/".join(step.slug)[:200]})
    flags = draft_flags(session, intake, forms, {**answers, step.form.canonical: merged}, saved=step.form,
                        birth_date=intake.birth_date, onset_age=int(app.config["INTAKE_GI_ONSET_AGE"]), now=now)
    queued = notify_flags(app, session, [flag.id for flag in flags.added], now=now)
    emergencies = [flag.rule_id for flag in (*flags.added, *flags.reraised) if flag.tier == "emergency"]
    return Saved(queued=queued, emergencies=emergencies)


def submit_intake(
    app: Flask,
    session: Session,
    catalog: Catalog,
    intake: IntakeView,
    *,
    by: Caller,
    language: str | None = None,
    now: datetime | None = None,
) -> tuple[bool, list[tuple[Form, Issue]]]:
    """`submit`, and when this call completed the intake: its audit row and its follow-up work
    (notifications, the PDF, the EHR push). The same answer as `submit`; kick the outbox after
    the commit when it is (True, [])."""
    now = now or services(app).clock()
    done, problems = submit(session, catalog, intake, onset_age=int(app.config["INTAKE_GI_ONSET_AGE"]), now=now,
                            language=language)
    if done:
        by.record(session, "create", f"Intake/{intake.id}", now=now, detail={"submitted": True})
        after_submit(app, session, intake.id, now=now)
    return done, problems


def rescore_intake(app: Flask, session: Session, catalog: Catalog, intake_id: str, *, by: Caller,
                   now: datetime | None = None) -> Result:
    """`rescore`, audited, with the follow-up work of a submit: the PDF shows the new scores, new
    flags are notified, the EHR gets the new Bundle. Kick the outbox after the commit."""
    now = now or services(app).clock()
    result = rescore(session, catalog, intake_id, onset_age=int(app.config["INTAKE_GI_ONSET_AGE"]), now=now)
    by.record(session, "update", f"Intake/{intake_id}", now=now, detail={"rescored": True})
    after_submit(app, session, intake_id, now=now)
    return result
