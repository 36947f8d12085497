"""The health-record face of an intake: build its FHIR resources, validate once, store.

Everything the FHIR API, bulk export and the CLI serve is written here, at the moment the data
it comes from is written (a patient created, an intake submitted or re-scored, a PDF rendered),
validated once with fhir.resources, and stored as canonical JSON; reads never rebuild models.
`publish_intake` is idempotent: re-running it stores new versions only of what changed.

Versions, as an EHR receives them (docs/fhir-api.md, "Updates"): an Observation whose result a
re-score changed is `amended`, a re-rendered PDF's DocumentReference `docStatus` `amended`; a
Flag is inactive, with `period.end`, once its answers no longer raise it or a later intake of
the same patient asked its questionnaire again (publishing that intake updates the earlier
Flags, and its Bundle carries them to the EHR).
"""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from intake.core import extract
from intake.core.canonical import canonical_json
from intake.core.fhir_models import resource_errors
from intake.core.fhir_time import parse_fhir_datetime
from intake.core.items import Form
from intake.storage import fhir_store, flags, intakes, patients, scores
from intake.storage import responses as response_store
from intake.storage.fhir_store import StoredResource, Token
from intake.storage.models import FlagRecord, Intake, Patient


class PublishError(Exception):
    """A resource built from stored data failed FHIR validation (a bug, never patient input)."""


def _checked(resource: dict[str, Any]) -> dict[str, Any]:
    errors = resource_errors(resource)
    if errors:
        path, message = errors[0]
        raise PublishError(f"{resource.get('resourceType')} {resource.get('id')}: {path}: {message}")
    return resource


def _identifier_tokens(resource: Mapping[str, Any]) -> list[Token]:
    return [
        ("identifier", i.get("system"), str(i["value"])) for i in resource.get("identifier") or [] if i.get("value")
    ]


def _instant(text: str) -> datetime:
    return parse_fhir_datetime(text)


# --- Patient -------------------------------------------------------------------------------------


def name_tokens(name: str) -> list[Token]:
    """String-search index of a name: each word and the whole, case- and accent-folded, plus the
    exact text (for `name:exact`)."""
    folded = fold(name)
    tokens: list[Token] = [("name", None, folded)]
    tokens += [("name", None, word) for word in folded.split() if word != folded]
    tokens.append(("name:exact", None, name))
    return tokens


def fold(text: str) -> str:
    """FHIR string search is case- and accent-insensitive: compare NFKD, marks removed, casefolded."""
    decomposed = unicodedata.normalize("NFKD", text)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).casefold().split())


def publish_patient(session: Session, patient: Patient, *, now: datetime) -> StoredResource:
    resource = _checked(extract.patient_resource(patient.id, name=patient.name, birth_date=patient.birth_date,
                                                 mrn=patient.mrn, mrn_system=patient.mrn_system))
    birth = datetime(patient.birth_date.year, patient.birth_date.month, patient.birth_date.day,
                     tzinfo=UTC) if patient.birth_date else None  # searched as a range
    return fhir_store.put_resource(session, resource, now=now, patient_id=patient.id, date=birth,
                                   tokens=_identifier_tokens(resource) + name_tokens(patient.name))


# --- an intake's resources -------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    responses: list[StoredResource]
    derived: list[StoredResource]  # Observations, Flags, DocumentReference
    provenance: StoredResource | None
    superseded: list[StoredResource] = field(default_factory=list)  # earlier intakes' Flags it ended


def _previous(session: Session, resource: Mapping[str, Any]) -> dict[str, Any] | None:
    stored = fhir_store.get_resource(session, resource["resourceType"], resource["id"])
    return None if stored is None else dict(json.loads(stored.resource_json))


def publish_intake(session: Session, intake_id: str, *, forms: Mapping[str, Form], now: datetime,
                   document_url: str | None = None) -> Published:
    """Store the FHIR resources of a completed intake: its patient, completed responses, and —
    once scored — an Observation per score, a Flag per raised flag, the PDF's DocumentReference
    (once rendered) and a Provenance; and the Flags of the patient's earlier intakes that this
    one supersedes, now inactive. `forms` maps Questionnaire canonicals (url|version) to the
    loaded forms, for the score codes."""
    intake = intakes.get_intake(session, intake_id)
    if intake is None or intake.status != "completed" or intake.completed_at is None:
        raise PublishError(f"intake {intake_id} is not completed")
    patient = patients.get_patient(session, intake.patient_id)
    if patient is None:
        raise PublishError(f"intake {intake_id} has no patient")
    publish_patient(session, patient, now=now)

    responses: list[StoredResource] = []
    response_ids: dict[str, str] = {}
    for record in response_store.list_responses(session, intake_id):
        if record.status != "completed":
            continue
        resource = record.resource
        resource.pop("meta", None)
        resource["identifier"] = extract.response_identifier(record.id)
        tokens: list[Token] = _identifier_tokens({"identifier": [resource["identifier"]]})
        tokens += [("questionnaire", None, record.questionnaire), ("questionnaire", None, record.questionnaire_url),
                   ("subject", None, f"Patient/{patient.id}")]
        responses.append(fhir_store.put_resource(
            session, _checked(resource), now=now, patient_id=patient.id, intake_id=intake_id,
            status=record.status, date=record.authored, tokens=tokens))
        response_ids[record.questionnaire] = record.id

    scoring = scores.get_scoring(session, intake_id)
    if scoring is None:
        return Published(responses, [], None)
    derived: list[StoredResource] = []
    for observation in extract.observations(scoring.result, intake_id=intake_id, patient_id=patient.id,
                                            responses=response_ids, effective=intake.completed_at,
                                            issued=scoring.computed_at, forms=forms):
        observation = extract.revised(observation, _previous(session, observation))
        tokens = _identifier_tokens(observation)
        tokens += [("code", c.get("system"), c["code"]) for c in observation["code"]["coding"]]
        tokens += [("derived-from", None, d["reference"]) for d in observation.get("derivedFrom") or []]
        derived.append(fhir_store.put_resource(
            session, _checked(observation), now=now, patient_id=patient.id, intake_id=intake_id,
            status=observation["status"], date=_instant(observation["effectiveDateTime"]), tokens=tokens))
    history = intakes.completed_intakes_of_patient(session, patient.id)
    derived += [_publish_flag(session, intake, flag, history, now=now)
                for flag in flags.flags_of_intake(session, intake_id)]
    document = fhir_store.get_document(session, intake_id)
    if document is not None:
        resource = document_resource(intake_id=intake_id, patient_id=patient.id, document=document,
                                     responses=[r.resource_id for r in responses], url=document_url)
        resource = extract.revised(resource, _previous(session, resource))
        derived.append(fhir_store.put_resource(
            session, _checked(resource), now=now, patient_id=patient.id, intake_id=intake_id,
            status=resource["status"], date=document.rendered_at, tokens=_identifier_tokens(resource)))
    versions = list((scoring.scoring_versions or {}).values())
    provenance = extract.provenance(
        intake_id=intake_id, recorded=scoring.computed_at,
        targets=[f"{d.resource_type}/{d.resource_id}" for d in derived],
        sources=[f"QuestionnaireResponse/{r.resource_id}" for r in responses], engine_versions=versions)
    stored_provenance = fhir_store.put_resource(
        session, _checked(provenance), now=now, patient_id=patient.id, intake_id=intake_id,
        date=scoring.computed_at, tokens=[("target", None, t["reference"]) for t in provenance["target"]])
    superseded = [_publish_flag(session, earlier, flag, history, now=now)
                  for earlier, flag in ended_by(session, intake, history)
                  if fhir_store.get_resource(session, "Flag", _flag_id(earlier, flag)) is not None]
    return Published(responses, derived, stored_provenance, superseded)


# --- Flags and their lifecycle ------------------------------------------------------------------------


def _before(earlier: Intake, later: Intake) -> bool:
    """Completed strictly earlier (two intakes completed in the same second supersede neither)."""
    return earlier.completed_at is not None and later.completed_at is not None and (
        earlier.completed_at < later.completed_at)


def superseding_intake(flag: FlagRecord, intake: Intake, history: list[Intake]) -> Intake | None:
    """The patient's first intake completed after `intake` that asked the flag's questionnaire
    again (any version): its answers are the current ones, so the flag of `intake` has ended."""
    url = flag.questionnaire.split("|")[0]
    for later in history:  # oldest first
        if _before(intake, later) and any(q.split("|")[0] == url for q in later.questionnaires):
            return later
    return None


def _flag_end(flag: FlagRecord, intake: Intake, history: list[Intake]) -> datetime | None:
    """When the flag stopped being current: cleared by the answers, or superseded; None: active."""
    later = superseding_intake(flag, intake, history)
    ends = [t for t in (flag.cleared_at, later.completed_at if later else None) if t is not None]
    return min(ends) if ends else None


def ended_by(session: Session, intake: Intake, history: list[Intake]) -> list[tuple[Intake, FlagRecord]]:
    """(earlier intake, flag) of each flag of the patient's earlier intakes that `intake` ended."""
    return [(earlier, flag) for earlier in history if _before(earlier, intake)
            for flag in flags.flags_of_intake(session, earlier.id)
            if getattr(superseding_intake(flag, earlier, history), "id", None) == intake.id]


def _publish_flag(session: Session, intake: Intake, flag: FlagRecord, history: list[Intake], *,
                  now: datetime) -> StoredResource:
    resource = extract.flag_resource(intake_id=intake.id, patient_id=intake.patient_id, rule_id=flag.rule_id,
                                     tier=flag.tier, message=flag.message, raised=flag.raised_at,
                                     ended=_flag_end(flag, intake, history))
    return fhir_store.put_resource(
        session, _checked(resource), now=now, patient_id=intake.patient_id, intake_id=intake.id,
        status=resource["status"], date=flag.raised_at,
        tokens=[*_identifier_tokens(resource), ("code", extract.FLAG_CODES, flag.rule_id)])


def document_resource(*, intake_id: str, patient_id: str, document: Any, responses: list[str],
                      url: str | None, inline: bool = False, doc_status: str = "final") -> dict[str, Any]:
    """The DocumentReference of a stored PDF (`inline`: the bytes in the attachment)."""
    content: bytes = document.content
    return extract.document_reference(
        intake_id=intake_id, patient_id=patient_id, created=document.rendered_at, size=document.size,
        sha1_b64=base64.b64encode(hashlib.sha1(content).digest()).decode(), sha256_hex=document.sha256,
        url=None if inline else (url or f"Binary/{extract.resource_id('DocumentReference', intake_id)}"),
        title=f"Screening summary {document.rendered_at:%Y-%m-%d}", responses=responses,
        data_b64=base64.b64encode(content).decode() if inline else None, doc_status=doc_status)


# --- $extract ------------------------------------------------------------------------------------


def extract_bundle(session: Session, intake_id: str, *, response_id: str | None = None,
                   include_document: bool = True) -> dict[str, Any]:
    """The transaction Bundle of an intake (or of one of its responses) from the stored resources.

    With `response_id`, only that response, the Observations derived from it and the Flags its
    Questionnaire raised go in (with the patient, PDF and Provenance). Without it (the Bundle the
    EHR push sends), the Flags of earlier intakes this one ended go in too, inactive. The PDF's
    DocumentReference carries the PDF inline. `include_document=False` leaves it out: that is
    the Bundle embedded in the PDF itself (a document cannot contain its own hash).
    """
    stored = fhir_store.resources_of_intake(session, intake_id)
    intake = intakes.get_intake(session, intake_id)
    if intake is None or not stored:
        raise PublishError(f"intake {intake_id} has no published resources")
    superseded = superseded_flags(session, intake) if response_id is None else []
    resources = [json.loads(s.resource_json) for s in stored]
    patient = fhir_store.get_resource(session, "Patient", intake.patient_id)
    chosen: list[dict[str, Any]] = [json.loads(patient.resource_json)] if patient else []
    wanted_questionnaire = None
    for resource in resources:
        if resource["resourceType"] == "QuestionnaireResponse" and (
            response_id is None or resource["id"] == response_id
        ):
            chosen.append(resource)
            wanted_questionnaire = resource["questionnaire"] if response_id else None
    if response_id is not None and wanted_questionnaire is None:
        raise PublishError(f"response {response_id} is not part of intake {intake_id}")
    flag_rules = _flag_rules_of(session, intake_id, wanted_questionnaire)
    for resource in resources:
        kind = resource["resourceType"]
        if kind == "Observation":
            derived = {d["reference"] for d in resource.get("derivedFrom") or []}
            if response_id is None or f"QuestionnaireResponse/{response_id}" in derived:
                chosen.append(resource)
        elif kind == "Flag":
            if flag_rules is None or resource["code"]["coding"][0]["code"] in flag_rules:
                chosen.append(resource)
        elif kind == "DocumentReference" and include_document:
            document = fhir_store.get_document(session, intake_id)
            if document is not None:
                inline = document_resource(
                    intake_id=intake_id,
                    patient_id=intake.patient_id,
                    document=document,
                    responses=[r["id"] for r in resources if r["resourceType"] == "QuestionnaireResponse"],
                    url=None,
                    inline=True,
                    doc_status=str(resource.get("docStatus") or "final"),
                )
                chosen.append(_checked(inline))
    chosen += superseded  # after this intake's own: the updates it makes to earlier intakes
    present = {f"{r['resourceType']}/{r['id']}" for r in chosen}
    for resource in chosen:  # the PDF covers the whole intake; a one-response Bundle links what it holds
        if resource["resourceType"] == "DocumentReference":
            resource["context"]["related"] = [r for r in resource["context"]["related"] if r["reference"] in present]
    provenance = next((r for r in resources if r["resourceType"] == "Provenance"), None)
    if provenance is not None:
        provenance = dict(provenance)
        provenance["target"] = [t for t in provenance["target"] if t["reference"] in present]
        provenance["entity"] = [e for e in provenance["entity"] if e["what"]["reference"] in present]
        if provenance["target"]:
            chosen.append(provenance)
    timestamp = _instant(provenance["recorded"]) if provenance else intake.completed_at or intake.updated_at
    return _checked(extract.transaction_bundle(chosen, timestamp=timestamp))


def superseded_flags(session: Session, intake: Intake) -> list[dict[str, Any]]:
    """The stored Flags of the patient's earlier intakes that `intake` ended (inactive since it
    was completed): the whole-intake Bundle carries them, so the EHR ends them too."""
    history = intakes.completed_intakes_of_patient(session, intake.patient_id)
    rows = [fhir_store.get_resource(session, "Flag", _flag_id(earlier, flag))
            for earlier, flag in ended_by(session, intake, history)]
    return [json.loads(row.resource_json) for row in rows if row is not None]


def _flag_id(intake: Intake, flag: FlagRecord) -> str:
    return extract.resource_id("Flag", f"{intake.id}/{flag.rule_id}")


def _flag_rules_of(session: Session, intake_id: str, questionnaire: str | None) -> set[str] | None:
    if questionnaire is None:
        return None
    return {f.rule_id for f in flags.flags_of_intake(session, intake_id) if f.questionnaire == questionnaire}


# --- Questionnaires (served from the loaded forms, not stored) ------------------------------------

def questionnaire_id(form: Form) -> str:
    """Each loaded version is its own resource: `<file id>-<version>` (FHIR ids allow dots)."""
    base_id = str(form.resource.get("id") or form.key)
    return f"{base_id}-{form.version}" if form.version else base_id


def questionnaires(loaded: Any) -> dict[str, tuple[str, str]]:
    """id -> (canonical JSON, canonical url|version) of every loaded Questionnaire version (the
    earlier ones too: a response pinned to one must resolve where it is read), built once per
    catalog (and kept on it): the files are the source of truth, so they are served, not copied to the store."""
    texts: dict[str, tuple[str, str]] = loaded.derived("fhir.questionnaires", _questionnaire_texts)
    return texts


def _questionnaire_texts(loaded: Any) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for form in loaded.versions:
        body = dict(form.resource)
        body["id"] = questionnaire_id(form)
        body["meta"] = {"versionId": "1"}
        out[body["id"]] = (canonical_json(body), form.canonical)
    return out


# --- Groups (cohorts for Group-level bulk export) ----------------------------------------------------


def publish_group(
    session: Session, *, group_id: str, name: str, patient_ids: list[str], now: datetime
) -> StoredResource:
    """A Group of patients (type person, actual): what `Group/{id}/$export` exports."""
    resource = _checked({
        "resourceType": "Group",
        "id": group_id,
        "identifier": [{"system": extract.SID + "group", "value": group_id}],
        "type": "person",
        "actual": True,
        "name": name,
        "quantity": len(patient_ids),
        "member": [{"entity": {"reference": f"Patient/{p}"}} for p in patient_ids],
    })
    return fhir_store.put_resource(session, resource, now=now, tokens=_identifier_tokens(resource) + [
        ("member", None, f"Patient/{p}") for p in patient_ids])
