"""intake/core/extract.py: what an EHR receives — Flags with their priority and their end, versions
marked amended, and the transaction Bundle's conditional requests (percent-encoded)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from intake.core import extract
from intake.core.fhir_models import resource_errors

RAISED = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
LATER = RAISED + timedelta(days=30)


def flag(tier: str = "emergency", ended: datetime | None = None) -> dict[str, Any]:
    return extract.flag_resource(intake_id="i1", patient_id="p1", rule_id="phq9-item9", tier=tier,
                                 message="Thoughts of self-harm", raised=RAISED, ended=ended)


@pytest.mark.parametrize(("tier", "code", "display"), [
    ("emergency", "PH", "High priority"), ("urgent", "PM", "Medium priority"), ("review", "PL", "Low priority")])
def test_a_flag_carries_its_tier_and_the_r4_flag_priority(tier: str, code: str, display: str) -> None:
    resource = flag(tier)
    extensions = {e["url"]: e for e in resource["extension"]}
    assert extensions[extract.FLAG_TIER_EXTENSION]["valueCode"] == tier
    priority = extensions["http://hl7.org/fhir/StructureDefinition/flag-priority"]["valueCodeableConcept"]
    assert priority["coding"] == [{"system": "http://terminology.hl7.org/CodeSystem/flag-priority-code",
                                   "code": code, "display": display}]
    assert not resource_errors(resource)


def test_a_flag_is_active_until_it_ends_then_inactive_with_the_end_of_its_period() -> None:
    active, ended = flag(), flag(ended=LATER)
    assert active["status"] == "active" and active["period"] == {"start": "2026-12-07T09:00:00Z"}
    assert ended["status"] == "inactive"
    assert ended["period"] == {"start": "2026-12-07T09:00:00Z", "end": "2027-01-06T09:00:00Z"}
    assert ended["id"] == active["id"] and ended["identifier"] == active["identifier"]  # the same Flag, updated
    assert flag(ended=RAISED - timedelta(hours=1))["period"]["end"] == "2026-12-07T09:00:00Z"  # never before start
    assert not resource_errors(ended)


def observation(value: int, status: str = "final", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": "o1", "status": status, "code": {"text": "PHQ-4"},
            "valueInteger": value, "issued": "2026-12-07T09:00:00Z", **extra}


def test_a_changed_result_is_amended_and_stays_so_and_an_unchanged_one_stays_final() -> None:
    assert extract.revised(observation(3), None)["status"] == "final"  # the first version
    assert extract.revised(observation(3, issued="2027-01-01T00:00:00Z"), observation(3))["status"] == "final"
    amended = extract.revised(observation(5), observation(3))
    assert amended["status"] == "amended" and amended["valueInteger"] == 5
    assert extract.revised(observation(5), amended)["status"] == "amended"  # published again: still amended
    banded = observation(3, interpretation=[{"text": "moderate"}])
    assert extract.revised(banded, observation(3))["status"] == "amended"  # the band said something new
    assert extract.revised(observation(3, status="preliminary"), observation(2))["status"] == "preliminary"


def document(sha256: str, doc_status: str = "final") -> dict[str, Any]:
    return extract.document_reference(intake_id="i1", patient_id="p1", created=RAISED, size=3, sha1_b64="AAAA",
                                      sha256_hex=sha256, url="Binary/x", title="t", responses=["r1"],
                                      doc_status=doc_status)


def test_a_re_rendered_pdf_is_a_new_version_of_the_same_document() -> None:
    first, second = document("a" * 64), document("b" * 64)
    assert first["identifier"] == second["identifier"] == [{"system": extract.DOCUMENT_SYSTEM, "value": "i1"}]
    assert first["masterIdentifier"] == {"system": extract.DOCUMENT_VERSION_SYSTEM, "value": "i1/" + "a" * 64}
    assert second["masterIdentifier"]["value"] == "i1/" + "b" * 64
    assert extract.revised(first, None)["docStatus"] == "final"
    assert extract.revised(document("a" * 64), first)["docStatus"] == "final"
    replaced = extract.revised(second, first)
    assert replaced["docStatus"] == "amended" and not resource_errors(replaced)


ODD = "AB+12&3 #4%5 ünï|,$\\"


def test_conditional_queries_are_escaped_then_percent_encoded() -> None:
    query = extract.conditional_query({"system": "urn:oid:1.2.3", "value": ODD})
    assert query == "identifier=urn:oid:1.2.3|AB%2B12%263%20%234%255%20%C3%BCn%C3%AF%5C%7C%5C%2C%5C%24%5C%5C"
    assert query.isascii() and not set("+&# ") & set(query.partition("=")[2])
    [(name, value)] = parse_qsl(query)  # a server splits the query, then undoes the encoding
    assert name == "identifier" and value == "urn:oid:1.2.3|AB+12&3 #4%5 ünï\\|\\,\\$\\\\"


def resources() -> list[dict[str, Any]]:
    patient = extract.patient_resource("p1", name="Ana", birth_date=date(1970, 1, 1), mrn=ODD,
                                       mrn_system="urn:oid:1.2.3")
    response = {"resourceType": "QuestionnaireResponse", "id": "r1", "status": "completed",
                "identifier": extract.response_identifier("r1"), "subject": {"reference": "Patient/p1"}}
    provenance = extract.provenance(intake_id="i1", recorded=RAISED, targets=["Flag/" + flag()["id"]],
                                    sources=["QuestionnaireResponse/r1"], engine_versions=["1"])
    return [patient, response, flag(), document("a" * 64), provenance]


def test_the_bundle_creates_the_patient_and_updates_the_rest_by_identifier() -> None:
    bundle = extract.transaction_bundle(resources(), timestamp=RAISED)
    assert not resource_errors(bundle)
    requests = [e["request"] for e in bundle["entry"]]
    patient, response, flag_entry, document_entry, provenance = requests
    assert patient["method"] == "POST" and patient["url"] == "Patient"
    assert unquote(patient["ifNoneExist"]) == "identifier=urn:oid:1.2.3|AB+12&3 #4%5 ünï\\|\\,\\$\\\\"  # the MRN
    assert response == {"method": "PUT", "url": "QuestionnaireResponse?identifier="
                        f"{extract.RESPONSE_SYSTEM}|r1"}
    assert flag_entry == {"method": "PUT", "url": f"Flag?identifier={extract.FLAG_SYSTEM}|i1/phq9-item9"}
    assert document_entry["method"] == "PUT"
    assert dict(parse_qsl(urlsplit(document_entry["url"]).query)) == {"identifier": f"{extract.DOCUMENT_SYSTEM}|i1"}
    assert provenance["method"] == "PUT" and provenance["url"].startswith("Provenance/")
    conditional = [e["resource"] for e in bundle["entry"]
                   if "?" in e["request"]["url"] or "ifNoneExist" in e["request"]]
    assert conditional and all("id" not in r and "meta" not in r for r in conditional)  # the receiver's ids
    assert bundle["entry"][2]["resource"]["subject"] == {"reference": "urn:uuid:p1"}
