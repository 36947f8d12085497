"""Screening results -> FHIR R4 resources a health record can take (SDC "$extract").

Plain dicts in, plain dicts out: the caller stores, validates and serves them. Everything here
is deterministic for the same data — ids are name-based UUIDs of stable keys, times come from
the data — so a re-export creates the same resources and a re-rendered PDF embeds the same
bytes.

What is made, and why this shape:
- one `Observation` per score (category `survey`, code = the score item's codes from the
  Questionnaire: the project's local code and LOINC only where the reference verifies one),
  `derivedFrom` the QuestionnaireResponse, `valueInteger` (or a unitless `valueQuantity` for a
  fractional total), the band in `interpretation` (a local code: bands are not HL7
  interpretation codes), `dataAbsentReason` when the score could not be computed;
- one `Flag` per raised red flag (its tier as the project's extension and as R4
  `flag-priority`), inactive with `period.end` once cleared or superseded by a later intake;
  one `DocumentReference` for the clinician PDF; one `Provenance` naming the engine and the
  responses as sources;
- a transaction `Bundle` whose entries use `urn:uuid` full URLs and references rewritten to
  them: the Patient a conditional create (the EHR owns its record), the Provenance (R4 gives it
  no identifier element) a conditional create on a stable `meta.tag`, everything else a
  conditional update on its stable identifier, so importing the same intake twice creates
  nothing new and a re-score or a new PDF replaces the EHR's current version (the EHR's history
  keeps the earlier ones). No entry is a create-by-PUT. Which version is current is said in the
  data too: an Observation whose result changed is `amended`, a re-rendered PDF's
  DocumentReference is `docStatus` `amended` with a new version-specific `masterIdentifier`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from intake.core.citations import with_clinician_citations
from intake.core.clinician_text import clinician_message, score_reference
from intake.core.extensions import BASE
from intake.core.fhir_time import fhir_instant_seconds
from intake.core.items import Form

# Name-based ids: the same intake and score always give the same Observation id.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, BASE)

SID = BASE + "/sid/"
PATIENT_SYSTEM = SID + "patient"
RESPONSE_SYSTEM = SID + "questionnaire-response"
OBSERVATION_SYSTEM = SID + "observation"
FLAG_SYSTEM = SID + "flag"
DOCUMENT_SYSTEM = SID + "document"
PROVENANCE_TAG_SYSTEM = SID + "provenance"  # meta.tag: Provenance has no identifier in R4
DOCUMENT_VERSION_SYSTEM = SID + "document-version"

SCORE_CODES = BASE + "/CodeSystem/intake-scores"
BAND_CODES = BASE + "/CodeSystem/score-bands"
FLAG_CODES = BASE + "/CodeSystem/red-flags"
DOCUMENT_CODES = BASE + "/CodeSystem/intake-documents"
FLAG_TIER_EXTENSION = BASE + "/StructureDefinition/flag-tier"
SHA256_EXTENSION = BASE + "/StructureDefinition/attachment-sha256"
FLAG_PRIORITY_EXTENSION = "http://hl7.org/fhir/StructureDefinition/flag-priority"
FLAG_PRIORITY_CODES = "http://terminology.hl7.org/CodeSystem/flag-priority-code"
# The project's tiers as R4 flag priorities (PN "No alarm" is never raised: a tier is a reason to look).
TIER_PRIORITY = {
    "emergency": ("PH", "High priority"),
    "urgent": ("PM", "Medium priority"),
    "review": ("PL", "Low priority"),
}

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
PROVENANCE_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
UCUM = "http://unitsofmeasure.org"

ENGINE_NAME = "Intake screening engine"
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


def resource_id(*key: str) -> str:
    """A stable resource id for a key (e.g. ("Observation", intake_id, score_id))."""
    return str(uuid.uuid5(NAMESPACE, "/".join(key)))


def _identifier(system: str, value: str) -> dict[str, str]:
    return {"system": system, "value": value}


# --- Patient -------------------------------------------------------------------------------------


def patient_resource(patient_id: str, *, name: str, birth_date: date | None, mrn: str | None = None,
                     mrn_system: str | None = None) -> dict[str, Any]:
    """The Patient: our own identifier always, the record number (MRN) when staff gave one.

    The name is kept as the single text the patient or staff entered (`HumanName.text`): splitting
    it into given/family names would guess.
    """
    identifiers: list[dict[str, Any]] = []
    if mrn and mrn_system:
        identifiers.append({
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
            "system": mrn_system,
            "value": mrn,
        })
    identifiers.append(_identifier(PATIENT_SYSTEM, patient_id))
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": patient_id,
        "identifier": identifiers,
        "name": [{"text": name}],
    }
    if birth_date is not None:
        resource["birthDate"] = birth_date.isoformat()
    return resource


def response_identifier(response_id: str) -> dict[str, str]:
    """The identifier a completed QuestionnaireResponse carries (for conditional create)."""
    return _identifier(RESPONSE_SYSTEM, response_id)


# --- Observations ----------------------------------------------------------------------------------


def _score_codes(score: Mapping[str, Any], forms: Mapping[str, Form]) -> list[dict[str, Any]]:
    """The score item's own codes (local + LOINC where verified), else a local score code."""
    form = forms.get(str(score.get("questionnaire")))
    item = form.by_link.get(str(score.get("item"))) if form is not None and score.get("item") else None
    codings = [dict(c) for c in (item.raw.get("code") or [])] if item is not None else []
    if not codings:
        codings = [{"system": SCORE_CODES, "code": str(score["id"])}]
    for coding in codings:
        coding.setdefault("display", str(score.get("title") or score["id"]))
    return codings


def _score_value(value: Any) -> dict[str, Any]:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return {"valueInteger": int(value)}
    return {"valueQuantity": {"value": value, "unit": "{score}", "system": UCUM, "code": "{score}"}}


def observations(result: Mapping[str, Any], *, intake_id: str, patient_id: str, responses: Mapping[str, str],
                 effective: datetime, issued: datetime, forms: Mapping[str, Form]) -> list[dict[str, Any]]:
    """One Observation per score of the result: effective when the patient answered, issued
    when the engine scored.

    `responses` maps a Questionnaire canonical (url|version) to the id of the stored response it
    was derived from; `forms` maps canonicals to the loaded Questionnaires (for the item codes).
    """
    out = []
    for score in with_clinician_citations(result, forms)["scores"]:
        key = f"{intake_id}/{score['id']}"
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "id": resource_id("Observation", key),
            "identifier": [_identifier(OBSERVATION_SYSTEM, key)],
            "status": "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}]}],
            "code": {"coding": _score_codes(score, forms), "text": str(score.get("title") or score["id"])},
            "subject": {"reference": f"Patient/{patient_id}"},
            "effectiveDateTime": fhir_instant_seconds(effective),
            "issued": fhir_instant_seconds(issued),
        }
        if score.get("total") is not None:
            observation.update(_score_value(score["total"]))
        else:
            observation["dataAbsentReason"] = {
                "coding": [{"system": DATA_ABSENT, "code": "unknown", "display": "Unknown"}],
                "text": "Not scored: required answers missing",
            }
        if score.get("band"):
            label = str(score.get("bandLabel") or score["band"])
            text = label
            if score.get("bandValidated") is False and "not a validated" not in label:
                text = f"{label} (conventional band, not a validated cut-off)"
            observation["interpretation"] = [
                {"coding": [{"system": BAND_CODES, "code": str(score["band"]), "display": label}], "text": text}
            ]
        notes = [_source_note(score)]
        if score.get("missing"):
            notes.append(f"Missing answers: {', '.join(score['missing'])}")
        observation["note"] = [{"text": n} for n in notes if n]
        response_id = responses.get(str(score.get("questionnaire")))
        if response_id:
            observation["derivedFrom"] = [{"reference": f"QuestionnaireResponse/{response_id}"}]
        out.append(observation)
    return out


def _source_note(score: Mapping[str, Any]) -> str:
    """Instrument, version and published source of a score, as the summary's references give
    them: what an EHR reader needs, without the project's reference sections or verification
    status (those stay in the Questionnaire metadata)."""
    parts = [str(p) for p in (score.get("instrument"), score.get("instrumentVersion")) if p]
    text = " · ".join(parts)
    source = score_reference(score)
    if source:
        text = f"{text}. Source: {source}" if text else f"Source: {source}"
    return text


# --- Flags -----------------------------------------------------------------------------------------


def flag_resource(*, intake_id: str, patient_id: str, rule_id: str, tier: str, message: str,
                  raised: datetime, ended: datetime | None = None) -> dict[str, Any]:
    """A raised red flag as a Flag: active until `ended` (cleared by a changed answer or a
    re-score, or superseded by a later intake), then inactive with that `period.end`.

    The tier is the project's extension (and the code's text) and, for receivers that know only
    R4, the `flag-priority` extension (emergency PH, urgent PM, review PL).
    """
    key = f"{intake_id}/{rule_id}"
    extensions: list[dict[str, Any]] = [{"url": FLAG_TIER_EXTENSION, "valueCode": tier}]
    if tier in TIER_PRIORITY:
        code, display = TIER_PRIORITY[tier]
        extensions.append({"url": FLAG_PRIORITY_EXTENSION, "valueCodeableConcept": {
            "coding": [{"system": FLAG_PRIORITY_CODES, "code": code, "display": display}]}})
    period = {"start": fhir_instant_seconds(raised)}
    if ended is not None:
        period["end"] = fhir_instant_seconds(max(ended, raised))
    return {
        "resourceType": "Flag",
        "id": resource_id("Flag", key),
        "extension": extensions,
        "identifier": [_identifier(FLAG_SYSTEM, key)],
        "status": "active" if ended is None else "inactive",
        "category": [{"coding": [{"system": FLAG_CATEGORY, "code": "clinical", "display": "Clinical"}]}],
        "code": {"coding": [{"system": FLAG_CODES, "code": rule_id}],
                 "text": f"{tier.capitalize()}: {clinician_message(message)}"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "period": period,
    }


# --- DocumentReference and Provenance ----------------------------------------------------------------


def document_reference(*, intake_id: str, patient_id: str, created: datetime, size: int, sha1_b64: str,
                       sha256_hex: str, url: str | None, title: str, responses: Iterable[str],
                       data_b64: str | None = None, doc_status: str = "final") -> dict[str, Any]:
    """The clinician PDF as a DocumentReference: one per intake (`identifier`, stable), each
    rendering a version of it (`masterIdentifier`, the version-specific identifier R4 defines,
    from the PDF's SHA-256); `doc_status` `amended` once a rendering replaced an earlier one.

    R4 `Attachment.hash` is defined as the base64 SHA-1, so it carries that; the SHA-256 the
    service records is an extension on the attachment. `data_b64` inlines the PDF (for a Bundle
    an EHR imports without calling back); reads serve it by `url` instead.
    """
    attachment: dict[str, Any] = {
        "extension": [{"url": SHA256_EXTENSION, "valueString": sha256_hex}],
        "contentType": "application/pdf",
        "language": "en",
        "size": size,
        "hash": sha1_b64,
        "title": title,
        "creation": fhir_instant_seconds(created),
    }
    if url is not None:
        attachment["url"] = url
    if data_b64 is not None:
        attachment["data"] = data_b64
    return {
        "resourceType": "DocumentReference",
        "id": resource_id("DocumentReference", intake_id),
        "masterIdentifier": _identifier(DOCUMENT_VERSION_SYSTEM, f"{intake_id}/{sha256_hex}"),
        "identifier": [_identifier(DOCUMENT_SYSTEM, intake_id)],
        "status": "current",
        "docStatus": doc_status,
        "type": {
            "coding": [{"system": DOCUMENT_CODES, "code": "screening-summary"}],
            "text": "Pre-appointment screening summary",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "date": fhir_instant_seconds(created),
        "description": "Screening aid, not a diagnosis: pre-appointment intake summary for the clinician.",
        "content": [{"attachment": attachment}],
        "context": {"related": [{"reference": f"QuestionnaireResponse/{r}"} for r in responses]},
    }


def provenance(*, intake_id: str, recorded: datetime, targets: Iterable[str], sources: Iterable[str],
               engine_versions: Iterable[str]) -> dict[str, Any]:
    """Who and what produced the derived resources: the engine, from the patient's responses."""
    versions = sorted(set(engine_versions))
    return {
        "resourceType": "Provenance",
        "id": resource_id("Provenance", intake_id),
        "target": [{"reference": t} for t in targets],
        "recorded": fhir_instant_seconds(recorded),
        "agent": [{
            "type": {"coding": [{"system": PROVENANCE_PARTICIPANT, "code": "assembler", "display": "Assembler"}]},
            "who": {"display": f"{ENGINE_NAME} ({'; '.join(versions)})" if versions else ENGINE_NAME},
        }],
        "entity": [{"role": "source", "what": {"reference": s}} for s in sources],
    }


# --- versions ------------------------------------------------------------------------------------

# What a version of a resource says, as opposed to when it was made (`issued`, `date`): a later
# version that says something else amends the earlier one.
_SUBSTANCE = {
    "Observation": ("code", "valueInteger", "valueQuantity", "dataAbsentReason", "interpretation", "note"),
    "DocumentReference": ("masterIdentifier",),
}
_STATUS_ELEMENT = {"Observation": "status", "DocumentReference": "docStatus"}
AMENDED = "amended"


def revised(resource: dict[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """`resource` as the version that follows `previous` (the one published before; None for the
    first): `amended` (Observation.status, DocumentReference.docStatus) once what it says differs
    from a published version, and from then on. A re-publish that changes nothing keeps the
    status, so the same data still gives the same resource."""
    element = _STATUS_ELEMENT.get(resource["resourceType"])
    if previous is None or element is None or resource.get(element) != "final":
        return resource
    changed = any(resource.get(key) != previous.get(key) for key in _SUBSTANCE[resource["resourceType"]])
    if changed or previous.get(element) == AMENDED:
        resource = {**resource, element: AMENDED}
    return resource


# --- the transaction Bundle ------------------------------------------------------------------------


def _first_identifier(resource: Mapping[str, Any]) -> dict[str, Any] | None:
    """The identifier used for conditional create: the MRN for a Patient when present (so an
    import joins the EHR's own patient), else the service's own identifier."""
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):
        identifiers = [identifiers]
    for ident in identifiers or []:
        if ident.get("system") and ident.get("value"):
            found: dict[str, Any] = ident
            return found
    return None


def _rewrite(value: Any, full_urls: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item in full_urls:
                out[key] = full_urls[item]
            else:
                out[key] = _rewrite(item, full_urls)
        return out
    if isinstance(value, list):
        return [_rewrite(v, full_urls) for v in value]
    return value


# Created once and then the receiver's: the EHR owns its patient record (demographics, merges), so
# an intake never overwrites it. Everything else the service derives is updated to its current version.
CREATE_ONLY = frozenset({"Patient"})


def transaction_bundle(resources: Iterable[Mapping[str, Any]], *, timestamp: datetime) -> dict[str, Any]:
    """A transaction Bundle of `resources` (stored form, with ids), ready for an EHR to POST.

    Each entry gets `fullUrl` = urn:uuid of its id, its `id` and `meta` dropped (the receiving
    server assigns its own ids and versions), and references between entries are rewritten to
    those urn:uuids. The request is keyed on the resource's stable identifier: a conditional
    create (`POST` + `ifNoneExist`) for the Patient, a conditional update
    (`PUT Type?identifier=system|value`) for everything else, so a re-score or a new PDF
    replaces the receiver's current version and the receiver's history keeps the earlier ones.
    A Provenance (R4 gives it no identifier element) carries a stable `meta.tag` instead
    (`provenance_tag`) and is conditionally created on it: never a PUT to our id, which real
    servers refuse as create-by-update.
    """
    resources = list(resources)
    full_urls = {f"{r['resourceType']}/{r['id']}": f"urn:uuid:{r['id']}" for r in resources}
    entries = []
    for resource in resources:
        body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
        identifier = _first_identifier(resource)
        kind = resource["resourceType"]
        if identifier is None:  # Provenance: a conditional create on its stable tag
            tag = provenance_tag(resource)
            body = {"resourceType": kind, "meta": {"tag": [tag]},
                    **{k: v for k, v in body.items() if k != "resourceType"}}
            request: dict[str, Any] = {"method": "POST", "url": kind,
                                       "ifNoneExist": conditional_query(tag["system"], tag["code"], parameter="_tag")}
        elif kind in CREATE_ONLY:
            request = {"method": "POST", "url": kind,
                       "ifNoneExist": conditional_query(identifier["system"], identifier["value"])}
        else:
            request = {"method": "PUT", "url": f"{kind}?{conditional_query(identifier['system'], identifier['value'])}"}
        entries.append({
            "fullUrl": full_urls[f"{kind}/{resource['id']}"],
            "resource": _rewrite(body, full_urls),
            "request": request,
        })
    return {"resourceType": "Bundle", "type": "transaction", "timestamp": fhir_instant_seconds(timestamp),
            "entry": entries}


def provenance_tag(resource: Mapping[str, Any]) -> dict[str, str]:
    """The stable key a Provenance is conditionally created on: its (name-based) id and the time
    it records, so a repeat creates nothing while a re-score (a new `recorded`) adds a Provenance
    next to the earlier one, and each Bundle kind (whole intake, one response) has its own id."""
    return {"system": PROVENANCE_TAG_SYSTEM, "code": f"{resource['id']}@{resource.get('recorded', '')}"}


def conditional_query(system: str, value: str, *, parameter: str = "identifier") -> str:
    """`identifier=system|value` for `ifNoneExist` and conditional URLs: the FHIR token escapes
    (`\\ | , $`) first, then percent-encoding of everything but unreserved characters, so a record
    number such as `AB+12&3` or `x#y%z ñ` reaches the server's URL parser as one value."""
    token = f"{_escape_token(system)}|{_escape_token(value)}"
    return f"{parameter}={quote(token, safe='')}"


def _escape_token(text: str) -> str:
    """Escape FHIR search special characters in a token part (`\\`, `|`, `,`, `$`)."""
    for char in ("\\", "|", ",", "$"):
        text = text.replace(char, "\\" + char)
    return text


def is_local_reference(reference: str) -> bool:
    """`Type/id` (a reference this service can resolve), as opposed to a URL or urn."""
    return bool(_REFERENCE.match(reference))
