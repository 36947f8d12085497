"""Patient matching for the EHR push: send the EHR's own Patient, not a copy of ours.

An EHR's master patient index owns registration (docs/fhir-api.md, "EHR push"). So a push names
the patient the EHR already holds, by the strongest thing staff gave:

1. the EHR's Patient reference (`Patient/123`, given at the invitation or when linking a held
   push): every reference to the patient becomes that literal reference, and no Patient is sent;
2. else the record number (MRN) in its identifier system: a conditional reference
   `Patient?identifier=<system>|<value>` (each part FHIR-escaped, then percent-encoded), which the
   EHR resolves to its one Patient with that identifier or refuses (a dead letter naming why);
   no Patient is sent;
3. else nothing identifies the EHR's record, and INTAKE_EHR_UNMATCHED_PATIENT decides:
   `create` sends our Patient as before (a conditional create on the service's own identifier),
   `hold` keeps the push "held" in the outbox until staff link the patient (/admin/outbox or
   `flask intake outbox link`), which releases it.

`for_push` is the one entry point: the push calls it on the finished transaction Bundle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session

from intake.jobs.errors import Held
from intake.storage import intakes, outbox_store, patients
from intake.storage.models import Patient

UNMATCHED_MODES = ("create", "hold")
# `Patient/<FHIR id>` (R4 id: 1-64 of A-Z a-z 0-9 - .), the form an EHR's own reference takes here.
_REFERENCE = re.compile(r"Patient/[A-Za-z0-9\-.]{1,64}")
HELD_REASON = "held: the patient is not linked to the EHR's record"


class MatchError(ValueError):
    """A patient reference or identifier given by staff that cannot name an EHR patient."""


def parse_reference(text: str) -> str:
    """`Patient/123` as given (spaces trimmed); MatchError for anything else."""
    reference = text.strip()
    if not _REFERENCE.fullmatch(reference):
        raise MatchError("the EHR patient must be written as Patient/ and its id (letters, digits, - or ., "
                         "up to 64), like Patient/123")
    return reference


def parse_identifier(text: str, default_system: str) -> tuple[str, str]:
    """`SYSTEM|VALUE`, or a bare `VALUE` in `default_system`: (system, value). The first `|`
    separates, so a value holding `|` needs its system written too. MatchError when a part is
    empty, too long or not printable."""
    system, bar, value = text.strip().partition("|")
    if not bar:
        system, value = default_system, system
    system, value = system.strip(), value.strip()
    if not system or len(system) > 255 or not system.isprintable() or " " in system:
        raise MatchError("the record number's system must be a URI of up to 255 characters, like "
                         "urn:oid:1.2.3|12345 or https://hospital.example/mrn|12345")
    if not (0 < len(value) <= 64 and value.isprintable()):
        raise MatchError("the record number must be 1 to 64 printable characters")
    return system, value


def _token_part(text: str) -> str:
    """One part of a FHIR token search value: `\\ | , $` escaped (FHIR search), then percent-encoded
    so that `+ & # % space` and non-ASCII reach the EHR as written."""
    for char in ("\\", "|", ",", "$"):
        text = text.replace(char, "\\" + char)
    return quote(text, safe="")


def conditional_reference(system: str, value: str) -> str:
    """`Patient?identifier=<system>|<value>`, each part escaped and percent-encoded."""
    return f"Patient?identifier={_token_part(system)}|{_token_part(value)}"


@dataclass(frozen=True)
class Match:
    """How a push names the patient: `reference` (literal or conditional), or None (unmatched)."""

    reference: str | None
    how: str  # "ehr-reference", "identifier" or "none"


def match_of(patient: Patient) -> Match:
    """The strongest link to the EHR's record this patient has."""
    if patient.ehr_reference:
        return Match(patient.ehr_reference, "ehr-reference")
    if patient.mrn and patient.mrn_system:
        return Match(conditional_reference(patient.mrn_system, patient.mrn), "identifier")
    return Match(None, "none")


def refer_to(bundle: Mapping[str, Any], patient_id: str, reference: str) -> dict[str, Any]:
    """A copy of the Bundle without our Patient entry and with every reference to it (its fullUrl,
    or `Patient/<our id>`) replaced by `reference`."""
    ours = {f"Patient/{patient_id}", f"urn:uuid:{patient_id}"}
    entries = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "Patient" and (
            entry.get("fullUrl") in ours or resource.get("id") == patient_id
        ):
            ours.add(str(entry.get("fullUrl")))
            continue
        entries.append(entry)
    return {**bundle, "entry": [_rewrite(e, ours, reference) for e in entries]}


def _rewrite(value: Any, ours: set[str], reference: str) -> Any:
    if isinstance(value, dict):
        return {k: reference if k == "reference" and v in ours else _rewrite(v, ours, reference)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, ours, reference) for v in value]
    return value


def for_push(session: Session, intake_id: str, bundle: Mapping[str, Any], *, unmatched: str) -> dict[str, Any]:
    """The Bundle to push for the intake: referring to the EHR's Patient when matched; as built
    when unmatched and `unmatched` is "create"; `Held` when unmatched and it is "hold"."""
    intake = intakes.get_intake(session, intake_id)
    patient = patients.get_patient(session, intake.patient_id) if intake is not None else None
    if patient is None:
        return dict(bundle)
    match = match_of(patient)
    if match.reference is not None:
        return refer_to(bundle, patient.id, match.reference)
    if unmatched == "hold":
        raise Held(HELD_REASON)
    return dict(bundle)


def link_held_push(session: Session, row_id: int, reference: str, *, now: datetime) -> str | None:
    """Link the patient of a held EHR push (outbox row `row_id`) to the EHR's `reference` and
    release the row (pending, due now); the intake's id, or None when the row is not a held push."""
    reference = parse_reference(reference)
    row = outbox_store.release_held(session, row_id, now=now)
    if row is None:
        return None
    intake = intakes.get_intake(session, row.subject)
    if intake is None:
        return None
    patients.link_to_ehr(session, intake.patient_id, reference)
    return intake.id
