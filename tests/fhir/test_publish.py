"""intake/fhir/publish.py called directly: the Patient, an intake's resources, the $extract
Bundles and the Questionnaire ids, built from rows written with the storage functions (no app,
no HTTP, no PDF render: a document row holds a few made-up bytes). What is published passes
fhir.resources on the way in, and the independent checker (../shared/fhircheck) here."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from intake.core import extract
from intake.core.answers import build_response
from intake.core.catalog import Catalog, load_catalog
from intake.core.enablement import Answers
from intake.core.fhir_models import resource_errors
from intake.core.fhir_time import fhir_instant, fhir_instant_seconds
from intake.core.items import Form, Item
from intake.core.scoring import Context, score_intake
from intake.core.validation import has_errors, validate
from intake.fhir import publish
from intake.fhir.publish import (
    PublishError,
    extract_bundle,
    publish_intake,
    publish_patient,
)
from intake.fhir.search import parse
from intake.storage import fhir_store, intakes, patients, scores
from intake.storage import responses as response_store
from tests.core.factories import FORMS, question
from tests.core.factories import form as small_form
from tests.fhircheck import fhircheck

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
BORN = date(1970, 1, 1)
EMERGENCY = "phq9-item9"  # stress: PHQ-9 item 9 above "Not at all"
# PHQ-4 answered high switches PHQ-9 on; its item 9 above "Not at all" raises EMERGENCY.
FLAGGED = {"phq4-1": 2, "phq4-2": 2, "phq4-3": 2, "phq4-4": 2, "phq9-9": 1}
PDF = b"%PDF-1.7 not a real render\n"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(FORMS)


def first_answer(item: Item) -> list[dict[str, Any]]:
    """A valid answer for any question: the first option, No, the lowest number, a past date."""
    if item.options:
        value = next((k, v) for k, v in item.options[0].items() if k.startswith("value"))
        return [{value[0]: dict(value[1]) if isinstance(value[1], dict) else value[1]}]
    low = next(iter(item.min_value.values()), 1) if item.min_value else 1
    by_type: dict[str, list[dict[str, Any]]] = {
        "boolean": [{"valueBoolean": False}], "integer": [{"valueInteger": low}], "decimal": [{"valueDecimal": low}],
        "quantity": [{"valueQuantity": {"value": low, **{k: v for k, v in (item.unit_options or ({},))[0].items()
                                                         if k in ("system", "code")}}}],
        "date": [{"valueDate": "2020-01"}], "dateTime": [{"valueDateTime": "2024-01-01T10:00:00Z"}],
    }
    return by_type.get(item.type, [{"valueString": "fine"}])


def answers_for(form: Form, **chosen: int) -> Answers:
    """Every question answered (enablement drops what does not apply); `chosen`: linkId -> option."""
    answers: Answers = {}
    for item in form.walk():
        if item.is_question and not item.read_only:
            answers[item.link_id] = first_answer(item)
    for link_id, index in chosen.items():
        coding = form.by_link[link_id].options[index]["valueCoding"]
        answers[link_id] = [{"valueCoding": dict(coding)}]
    return answers


def completed_intake(session: Session, forms: list[Form], answers: dict[str, Answers] | None = None, *,
                     scored: bool = True, name: str = "Zoë Example", mrn: str | None = None,
                     patient_id: str | None = None, at: datetime = NOW) -> str:
    """A completed intake of `forms` (each answered in full unless `answers` says otherwise),
    scored and its flags stored when `scored`: the rows `workflow.submit` leaves. With
    `patient_id`, a follow-up of that patient (completed `at`)."""
    if patient_id is None:
        patient_id = patients.create_patient(session, name=name, birth_date=BORN, mrn=mrn,
                                             mrn_system="urn:oid:2.16.840.1.113883.19.5" if mrn else None).id
    intake = intakes.create_intake(session, patient_id=patient_id, questionnaires=[f.canonical for f in forms])
    responses = {}
    for form in forms:
        response = build_response(form, (answers or {}).get(form.key) or answers_for(form), status="completed",
                                  subject=f"Patient/{patient_id}",
                                  authored=fhir_instant_seconds(at - timedelta(minutes=30)))
        assert not has_errors(validate(form, response, birth_date=BORN)), form.key
        responses[form.canonical] = response
    assert response_store.complete_intake(session, intake_id=intake.id, responses=responses, now=at)
    if scored:
        result = score_intake([(f, responses[f.canonical]) for f in forms], Context(birth_date=BORN.isoformat()))
        scores.store_scoring(session, intake_id=intake.id, patient_id=patient_id, result=result.as_json(),
                             versions=result.versions, now=at)
    return intake.id


def by_canonical(forms: list[Form]) -> dict[str, Form]:
    return {f.canonical: f for f in forms}


def stored(session: Session, intake_id: str) -> dict[str, list[dict[str, Any]]]:
    """The intake's stored resources by type."""
    out: dict[str, list[dict[str, Any]]] = {}
    for row in fhir_store.resources_of_intake(session, intake_id):
        out.setdefault(row.resource_type, []).append(json.loads(row.resource_json))
    return out


def entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"]]


def kinds(bundle: dict[str, Any]) -> list[str]:
    return [r["resourceType"] for r in entries(bundle)]


# --- Patient --------------------------------------------------------------------------------------


def test_publish_patient_stores_a_valid_patient_found_by_name_and_identifier(session: Session) -> None:
    patient = patients.create_patient(session, name="Zoë  Ñandú", birth_date=BORN, mrn="MRN-7",
                                      mrn_system="urn:oid:1.2.3")
    row = publish_patient(session, patient, now=NOW)
    resource = json.loads(row.resource_json)
    assert not resource_errors(resource)
    assert (row.resource_type, row.resource_id, row.version_id) == ("Patient", patient.id, 1)
    assert resource["name"] == [{"text": "Zoë  Ñandú"}] and resource["birthDate"] == "1970-01-01"
    assert [(i.get("system"), i["value"]) for i in resource["identifier"]] == [
        ("urn:oid:1.2.3", "MRN-7"), (extract.PATIENT_SYSTEM, patient.id)]
    assert resource["meta"] == {"versionId": "1", "lastUpdated": fhir_instant(NOW)}
    for args in ([("name", "nandu")], [("name", "ZOE")], [("name:exact", "Zoë  Ñandú")],
                 [("identifier", "urn:oid:1.2.3|MRN-7")], [("identifier", f"{extract.PATIENT_SYSTEM}|{patient.id}")],
                 [("birthdate", "1970-01-01")]):
        criteria, count, after = parse("Patient", args)
        assert [r.resource_id for r in fhir_store.search(session, criteria, after_seq=after, count=count)[0]] == [
            patient.id], args


def test_a_patient_without_a_record_number_has_only_the_services_identifier(session: Session) -> None:
    patient = patients.create_patient(session, name="Pat", birth_date=BORN)
    resource = json.loads(publish_patient(session, patient, now=NOW).resource_json)
    assert resource["identifier"] == [{"system": extract.PATIENT_SYSTEM, "value": patient.id}]


def test_publishing_again_stores_a_version_only_when_the_patient_changed(session: Session) -> None:
    patient = patients.create_patient(session, name="Pat Example", birth_date=BORN)
    first = publish_patient(session, patient, now=NOW)
    assert publish_patient(session, patient, now=LATER) == first
    patient.name = "Pat Changed"
    changed = publish_patient(session, patient, now=LATER)
    assert (changed.version_id, changed.last_updated, changed.seq) == (2, LATER, first.seq)
    criteria, count, after = parse("Patient", [("name", "example")])
    assert fhir_store.search(session, criteria, after_seq=after, count=count)[0] == []  # the old name's tokens are gone


def test_a_resource_that_fails_validation_is_a_publish_error_naming_it(session: Session,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    patient = patients.create_patient(session, name="Pat", birth_date=BORN)
    monkeypatch.setattr(extract, "patient_resource", lambda pid, **_: {"resourceType": "Patient", "id": pid,
                                                                       "birthDate": "the seventies"})
    with pytest.raises(PublishError, match=rf"^Patient {patient.id}: birthDate"):
        publish_patient(session, patient, now=NOW)
    assert fhir_store.get_resource(session, "Patient", patient.id) is None


@pytest.mark.parametrize(("text", "folded"), [("  Zoë   ÉXAMPLE ", "zoe example"), ("Ñandú", "nandu"),
                                              ("STRASSE", "strasse"), ("ﬁn", "fin")])
def test_fold_is_case_and_accent_insensitive(text: str, folded: str) -> None:
    assert publish.fold(text) == folded


def test_name_tokens_hold_the_whole_each_word_and_the_exact_text() -> None:
    assert publish.name_tokens("Zoë Example") == [("name", None, "zoe example"), ("name", None, "zoe"),
                                                  ("name", None, "example"), ("name:exact", None, "Zoë Example")]
    assert publish.name_tokens("Pat") == [("name", None, "pat"), ("name:exact", None, "Pat")]


# --- an intake's resources ---------------------------------------------------------------------


def test_an_unknown_or_unfinished_intake_is_refused(session: Session, catalog: Catalog) -> None:
    with pytest.raises(PublishError, match=r"^intake nope is not completed$"):
        publish_intake(session, "nope", forms={}, now=NOW)
    patient = patients.create_patient(session, name="Pat", birth_date=BORN)
    stress = catalog.by_key["stress"]
    open_intake = intakes.create_intake(session, patient_id=patient.id, questionnaires=[stress.canonical])
    with pytest.raises(PublishError, match="is not completed"):
        publish_intake(session, open_intake.id, forms=by_canonical([stress]), now=NOW)
    assert fhir_store.resources_of_intake(session, open_intake.id) == []


def test_an_unscored_intake_publishes_its_patient_and_responses_only(session: Session, catalog: Catalog) -> None:
    forms = [catalog.by_key["stress"], catalog.by_key["diet"]]
    intake_id = completed_intake(session, forms, scored=False)
    published = publish_intake(session, intake_id, forms=by_canonical(forms), now=NOW)
    assert published.derived == [] and published.provenance is None
    records = {r.questionnaire: r for r in response_store.list_responses(session, intake_id)}
    assert [r.resource_id for r in published.responses] == [r.id for r in records.values()]
    for row in published.responses:
        resource = json.loads(row.resource_json)
        assert resource["status"] == "completed" and not resource_errors(resource)
        assert resource["identifier"] == {"system": extract.RESPONSE_SYSTEM, "value": row.resource_id}
        assert resource["questionnaire"] in records and resource["meta"]["versionId"] == "1"
    intake = intakes.get_intake(session, intake_id)
    assert intake is not None and fhir_store.get_resource(session, "Patient", intake.patient_id) is not None


def test_a_scored_intake_publishes_observations_flags_and_their_provenance(session: Session, catalog: Catalog) -> None:
    stress = catalog.by_key["stress"]
    intake_id = completed_intake(session, [stress], {"stress": answers_for(stress, **FLAGGED)})
    published = publish_intake(session, intake_id, forms=by_canonical([stress]), now=NOW)
    (response,) = published.responses
    derived = [json.loads(r.resource_json) for r in published.derived]
    assert {r["resourceType"] for r in derived} == {"Observation", "Flag"}
    observations = [r for r in derived if r["resourceType"] == "Observation"]
    assert observations and all(o["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{response.resource_id}"}]
                                for o in observations)
    assert all(o["effectiveDateTime"] == "2026-12-07T09:00:00Z" for o in observations)
    flags = [r for r in derived if r["resourceType"] == "Flag"]
    assert [f["code"]["coding"][0]["code"] for f in flags] == [EMERGENCY]
    assert published.provenance is not None
    provenance = json.loads(published.provenance.resource_json)
    assert [t["reference"] for t in provenance["target"]] == [f"{r['resourceType']}/{r['id']}" for r in derived]
    assert [e["what"]["reference"] for e in provenance["entity"]] == [f"QuestionnaireResponse/{response.resource_id}"]
    assert all(not resource_errors(r) for r in [*derived, provenance])
    criteria, count, after = parse(
        "Flag", [("identifier", f"{extract.FLAG_SYSTEM}|"), ("patient", flags[0]["subject"]["reference"])]
    )
    assert [r.resource_id for r in fhir_store.search(session, criteria, after_seq=after, count=count)[0]] == [
        flags[0]["id"]
    ]


def test_publishing_again_changes_nothing_and_a_new_score_is_a_new_version(session: Session, catalog: Catalog) -> None:
    stress = catalog.by_key["stress"]
    intake_id = completed_intake(session, [stress], {"stress": answers_for(stress, **FLAGGED)})
    first = publish_intake(session, intake_id, forms=by_canonical([stress]), now=NOW)
    again = publish_intake(session, intake_id, forms=by_canonical([stress]), now=LATER)
    assert again == first
    scoring = scores.get_scoring(session, intake_id)
    assert scoring is not None
    result = json.loads(scoring.result_json)
    result["scores"][0]["value"] = (result["scores"][0].get("value") or 0) + 1
    scores.store_scoring(session, intake_id=intake_id, patient_id=scoring.patient_id, result=result,
                         versions=dict(scoring.scoring_versions), now=LATER)
    rescored = publish_intake(session, intake_id, forms=by_canonical([stress]), now=LATER)
    changed = {r.resource_id for r in rescored.derived if r.version_id == 2}
    assert changed and rescored.provenance is not None and rescored.provenance.version_id == 2  # recorded moved
    assert [r.version_id for r in rescored.responses] == [1]


def test_a_rendered_document_is_published_with_its_hashes(session: Session, catalog: Catalog) -> None:
    stress = catalog.by_key["stress"]
    intake_id = completed_intake(session, [stress])
    fhir_store.store_document(session, intake_id=intake_id, content=PDF, sha256=hashlib.sha256(PDF).hexdigest(),
                              source_sha256="0" * 64, now=NOW)
    published = publish_intake(session, intake_id, forms=by_canonical([stress]), now=NOW)
    (document,) = [json.loads(r.resource_json) for r in published.derived if r.resource_type == "DocumentReference"]
    attachment = document["content"][0]["attachment"]
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(PDF).digest()).decode()
    assert attachment["size"] == len(PDF) and "data" not in attachment
    assert attachment["url"] == f"Binary/{document['id']}"
    assert document["context"]["related"] == [{"reference": f"QuestionnaireResponse/{r.resource_id}"}
                                              for r in published.responses]
    provenance = json.loads(published.provenance.resource_json) if published.provenance else {}
    assert {"reference": f"DocumentReference/{document['id']}"} in provenance["target"]
    told = publish_intake(session, intake_id, forms=by_canonical([stress]), now=LATER,
                          document_url="https://intake.example/fhir/Binary/x")
    (row,) = [r for r in told.derived if r.resource_type == "DocumentReference"]
    assert json.loads(row.resource_json)["content"][0]["attachment"]["url"] == "https://intake.example/fhir/Binary/x"


# --- versions and the Flags' lifecycle ---------------------------------------------------------------

NEXT_VISIT = NOW + timedelta(days=30)


def flag_rows(published: list[fhir_store.StoredResource]) -> list[dict[str, Any]]:
    return [json.loads(r.resource_json) for r in published if r.resource_type == "Flag"]


def test_a_follow_up_asking_the_same_questionnaire_ends_the_earlier_flags(session: Session,
                                                                          catalog: Catalog) -> None:
    stress = catalog.by_key["stress"]
    first = completed_intake(session, [stress], {"stress": answers_for(stress, **FLAGGED)})
    (earlier,) = flag_rows(publish_intake(session, first, forms=by_canonical([stress]), now=NOW).derived)
    assert earlier["status"] == "active" and "end" not in earlier["period"]
    intake = intakes.get_intake(session, first)
    assert intake is not None
    follow_up = completed_intake(session, [stress], {"stress": answers_for(stress, **FLAGGED)},
                                 patient_id=intake.patient_id, at=NEXT_VISIT)
    published = publish_intake(session, follow_up, forms=by_canonical([stress]), now=NEXT_VISIT)
    (current,) = flag_rows(published.derived)
    (ended,) = flag_rows(published.superseded)
    assert current["status"] == "active" and current["identifier"] != earlier["identifier"]
    assert ended["id"] == earlier["id"] and ended["status"] == "inactive"
    assert ended["period"] == {"start": earlier["period"]["start"], "end": "2027-01-06T09:00:00Z"}
    assert stored(session, first)["Flag"] == [ended]  # the earlier intake's own reads agree
    provenance = json.loads(published.provenance.resource_json) if published.provenance else {}
    assert {"reference": f"Flag/{ended['id']}"} not in provenance["target"]  # it made only its own
    again = publish_intake(session, follow_up, forms=by_canonical([stress]), now=NEXT_VISIT + timedelta(hours=1))
    assert [r.version_id for r in again.superseded] == [2]  # nothing new the second time

    bundle = extract_bundle(session, follow_up)
    flags = {e["resource"]["identifier"][0]["value"]: e for e in bundle["entry"]
             if e["resource"]["resourceType"] == "Flag"}
    assert set(flags) == {earlier["identifier"][0]["value"], current["identifier"][0]["value"]}
    pushed = flags[earlier["identifier"][0]["value"]]
    assert pushed["resource"]["status"] == "inactive" and pushed["resource"]["period"] == ended["period"]
    assert pushed["request"] == {"method": "PUT",
                                 "url": f"Flag?identifier={extract.FLAG_SYSTEM}|{first}/{EMERGENCY}"}
    assert pushed["resource"]["subject"]["reference"] == bundle["entry"][0]["fullUrl"]  # the one Patient entry
    (response,) = response_store.list_responses(session, follow_up)
    one = extract_bundle(session, follow_up, response_id=response.id)  # $extract of a response: its own only
    assert [e["fullUrl"] for e in one["entry"] if e["resource"]["resourceType"] == "Flag"] == [
        f"urn:uuid:{current['id']}"]
    (earlier_flag,) = [r for r in entries(extract_bundle(session, first)) if r["resourceType"] == "Flag"]
    assert earlier_flag["status"] == "inactive"


def test_a_follow_up_of_other_questionnaires_leaves_the_flags_active(session: Session, catalog: Catalog) -> None:
    stress, diet = catalog.by_key["stress"], catalog.by_key["diet"]
    first = completed_intake(session, [stress], {"stress": answers_for(stress, **FLAGGED)})
    publish_intake(session, first, forms=by_canonical([stress]), now=NOW)
    intake = intakes.get_intake(session, first)
    assert intake is not None
    follow_up = completed_intake(session, [diet], patient_id=intake.patient_id, at=NEXT_VISIT)
    assert publish_intake(session, follow_up, forms=by_canonical([diet]), now=NEXT_VISIT).superseded == []
    assert [f["status"] for f in stored(session, first)["Flag"]] == ["active"]
    assert "Flag" not in kinds(extract_bundle(session, follow_up))


def test_a_flag_the_answers_no_longer_raise_is_published_inactive(session: Session, catalog: Catalog) -> None:
    stress = catalog.by_key["stress"]
    intake_id = completed_intake(session, [stress], {"stress": answers_for(stress, **FLAGGED)})
    publish_intake(session, intake_id, forms=by_canonical([stress]), now=NOW)
    scoring = scores.get_scoring(session, intake_id)
    assert scoring is not None
    result = {**json.loads(scoring.result_json), "flags": []}  # a corrected rule raises nothing
    scores.store_scoring(session, intake_id=intake_id, patient_id=scoring.patient_id, result=result,
                         versions=dict(scoring.scoring_versions), now=LATER)
    (flag,) = flag_rows(publish_intake(session, intake_id, forms=by_canonical([stress]), now=LATER).derived)
    assert flag["status"] == "inactive" and flag["period"]["end"] == "2026-12-07T10:00:00Z"


def test_a_rescore_that_changes_a_result_amends_that_observation(session: Session, catalog: Catalog) -> None:
    stress = catalog.by_key["stress"]
    intake_id = completed_intake(session, [stress], {"stress": answers_for(stress, **FLAGGED)})
    first = {r.resource_id: json.loads(r.resource_json) for r in
             publish_intake(session, intake_id, forms=by_canonical([stress]), now=NOW).derived
             if r.resource_type == "Observation"}
    assert {o["status"] for o in first.values()} == {"final"}
    scoring = scores.get_scoring(session, intake_id)
    assert scoring is not None
    result = json.loads(scoring.result_json)
    changed = next(s for s in result["scores"] if isinstance(s.get("total"), int))
    changed["total"] += 1
    scores.store_scoring(session, intake_id=intake_id, patient_id=scoring.patient_id, result=result,
                         versions=dict(scoring.scoring_versions), now=LATER)
    rescored = publish_intake(session, intake_id, forms=by_canonical([stress]), now=LATER)
    now = {r.resource_id: json.loads(r.resource_json) for r in rescored.derived if r.resource_type == "Observation"}
    assert set(now) == set(first)  # the same Observations, new versions
    amended = [o for o in now.values() if o["status"] == "amended"]
    assert [o["identifier"][0]["value"] for o in amended] == [f"{intake_id}/{changed['id']}"]
    assert amended[0]["valueInteger"] == changed["total"] and amended[0]["issued"] == "2026-12-07T10:00:00Z"
    assert all(o["status"] == "final" for o in now.values() if o is not amended[0])
    again = publish_intake(session, intake_id, forms=by_canonical([stress]), now=LATER + timedelta(hours=1))
    assert [r.version_id for r in again.derived] == [r.version_id for r in rescored.derived]  # still amended


def test_a_re_rendered_pdf_amends_the_one_document_of_the_intake(session: Session, catalog: Catalog) -> None:
    stress = catalog.by_key["stress"]
    intake_id = completed_intake(session, [stress])

    def render(content: bytes, at: datetime) -> dict[str, Any]:
        fhir_store.store_document(session, intake_id=intake_id, content=content,
                                  sha256=hashlib.sha256(content).hexdigest(), source_sha256="0" * 64, now=at)
        published = publish_intake(session, intake_id, forms=by_canonical([stress]), now=at)
        (document,) = [json.loads(r.resource_json) for r in published.derived
                       if r.resource_type == "DocumentReference"]
        return dict(document)

    first = render(PDF, NOW)
    assert first["docStatus"] == "final"
    assert first["masterIdentifier"]["value"] == f"{intake_id}/{hashlib.sha256(PDF).hexdigest()}"
    second = render(PDF + b"re-scored\n", LATER)
    assert second["id"] == first["id"] and second["identifier"] == first["identifier"]
    assert second["docStatus"] == "amended" and second["masterIdentifier"] != first["masterIdentifier"]
    assert second["meta"]["versionId"] == "2" and second["date"] == "2026-12-07T10:00:00Z"
    (pushed,) = [e for e in extract_bundle(session, intake_id)["entry"]
                 if e["resource"]["resourceType"] == "DocumentReference"]
    assert pushed["resource"]["docStatus"] == "amended"
    assert base64.b64decode(pushed["resource"]["content"][0]["attachment"]["data"]) == PDF + b"re-scored\n"
    assert pushed["request"] == {"method": "PUT",
                                 "url": f"DocumentReference?identifier={extract.DOCUMENT_SYSTEM}|{intake_id}"}


# --- $extract Bundles -------------------------------------------------------------------------------


@pytest.fixture
def two_forms(session: Session, catalog: Catalog) -> tuple[str, list[Form]]:
    """A published intake of stress (emergency flag) and diet, with a stored document."""
    forms = [catalog.by_key["stress"], catalog.by_key["diet"]]
    intake_id = completed_intake(session, forms, {"stress": answers_for(forms[0], **FLAGGED)})
    fhir_store.store_document(session, intake_id=intake_id, content=PDF, sha256=hashlib.sha256(PDF).hexdigest(),
                              source_sha256="0" * 64, now=NOW)
    publish_intake(session, intake_id, forms=by_canonical(forms), now=NOW)
    return intake_id, forms


def test_the_intake_bundle_is_a_transaction_of_everything_published(session: Session,
                                                                   two_forms: tuple[str, list[Form]]) -> None:
    intake_id, _forms = two_forms
    bundle = extract_bundle(session, intake_id)
    assert bundle["type"] == "transaction" and not resource_errors(bundle)
    published = stored(session, intake_id)
    assert sorted(kinds(bundle)) == sorted(["Patient", *(r["resourceType"] for rs in published.values() for r in rs)])
    assert kinds(bundle)[0] == "Patient" and kinds(bundle)[-1] == "Provenance"
    (document,) = [r for r in entries(bundle) if r["resourceType"] == "DocumentReference"]
    assert base64.b64decode(document["content"][0]["attachment"]["data"]) == PDF  # inline, for an EHR import
    assert "url" not in document["content"][0]["attachment"]
    assert extract_bundle(session, intake_id) == bundle  # the same data, the same Bundle


def test_the_bundle_embedded_in_the_pdf_leaves_the_document_out(session: Session,
                                                               two_forms: tuple[str, list[Form]]) -> None:
    intake_id, _forms = two_forms
    bundle = extract_bundle(session, intake_id, include_document=False)
    assert "DocumentReference" not in kinds(bundle)
    (provenance,) = [r for r in entries(bundle) if r["resourceType"] == "Provenance"]
    full = {e["fullUrl"] for e in bundle["entry"]}
    assert all(t["reference"] in full for t in provenance["target"])  # no target outside the Bundle


def test_a_one_response_bundle_holds_what_came_from_that_response(session: Session,
                                                                 two_forms: tuple[str, list[Form]]) -> None:
    intake_id, forms = two_forms
    records = {r.questionnaire: r.id for r in response_store.list_responses(session, intake_id)}
    stress_id, diet_id = records[forms[0].canonical], records[forms[1].canonical]
    whole = extract_bundle(session, intake_id)
    stress = extract_bundle(session, intake_id, response_id=stress_id)
    diet = extract_bundle(session, intake_id, response_id=diet_id)
    for bundle, kept in ((stress, stress_id), (diet, diet_id)):
        assert not resource_errors(bundle)
        assert [r["identifier"]["value"] for r in entries(bundle) if r["resourceType"] == "QuestionnaireResponse"] == [
            kept
        ]
        (document,) = [r for r in entries(bundle) if r["resourceType"] == "DocumentReference"]
        assert len(document["context"]["related"]) == 1  # only the response it holds
    assert [r["code"]["coding"][0]["code"] for r in entries(stress) if r["resourceType"] == "Flag"] == [EMERGENCY]
    assert "Flag" not in kinds(diet)
    def observations(bundle: dict[str, Any]) -> list[str]:
        return [r["identifier"][0]["value"] for r in entries(bundle) if r["resourceType"] == "Observation"]

    assert observations(stress) and sorted(observations(stress) + observations(diet)) == sorted(observations(whole))


def test_extract_bundle_refuses_what_was_not_published(session: Session, catalog: Catalog,
                                                       two_forms: tuple[str, list[Form]]) -> None:
    intake_id, _forms = two_forms
    with pytest.raises(PublishError, match=r"^intake nope has no published resources$"):
        extract_bundle(session, "nope")
    unpublished = completed_intake(session, [catalog.by_key["stress"]])
    with pytest.raises(PublishError, match="has no published resources"):
        extract_bundle(session, unpublished)
    other = response_store.list_responses(session, unpublished)[0].id
    with pytest.raises(PublishError, match=f"^response {other} is not part of intake {intake_id}$"):
        extract_bundle(session, intake_id, response_id=other)


def test_everything_published_passes_fhircheck(session: Session, two_forms: tuple[str, list[Form]],
                                              tmp_path: Path) -> None:
    intake_id, forms = two_forms
    out = tmp_path / "published"
    out.mkdir()
    intake = intakes.get_intake(session, intake_id)
    assert intake is not None
    fhir_store.store_document(session, intake_id=intake_id, content=PDF + b"2", source_sha256="1" * 64,
                              sha256=hashlib.sha256(PDF + b"2").hexdigest(), now=LATER)  # re-rendered: amended
    publish_intake(session, intake_id, forms=by_canonical(forms), now=LATER)
    follow_up = completed_intake(session, forms[:1], {"stress": answers_for(forms[0], **FLAGGED)},
                                 patient_id=intake.patient_id, at=NEXT_VISIT)  # ends the first intake's Flag
    publish_intake(session, follow_up, forms=by_canonical(forms[:1]), now=NEXT_VISIT)
    assert [f["status"] for f in stored(session, intake_id)["Flag"]] == ["inactive"]
    rows = [*fhir_store.resources_of_intake(session, intake_id), *fhir_store.resources_of_intake(session, follow_up),
            fhir_store.get_resource(session, "Patient", intake.patient_id)]
    for row in rows:
        assert row is not None
        (out / f"{row.resource_type}-{row.resource_id}.json").write_text(row.resource_json)
    records = response_store.list_responses(session, intake_id)
    bundles = {
        "all": extract_bundle(session, intake_id),
        "follow-up": extract_bundle(session, follow_up),
        "no-pdf": extract_bundle(session, intake_id, include_document=False),
        **{f"one-{r.id}": extract_bundle(session, intake_id, response_id=r.id) for r in records},
    }
    for name, bundle in bundles.items():
        (out / f"bundle-{name}.json").write_text(json.dumps(bundle))
    assert "0 failed" in fhircheck(out)


# --- Questionnaires and Groups ---------------------------------------------------------------------


def test_questionnaire_id_is_the_file_id_and_the_version() -> None:
    assert publish.questionnaire_id(small_form(question("q", "string"), id="phq", version="2.1.0")) == "phq-2.1.0"
    assert publish.questionnaire_id(small_form(question("q", "string"), id="phq", version=None)) == "phq"
    unnamed = small_form(question("q", "string"), url="https://x.example/Questionnaire/gad7", version="1")
    assert publish.questionnaire_id(unnamed) == "gad7-1"  # no id: the form's key, the url's last segment


def test_every_loaded_version_is_served_under_its_own_id(catalog: Catalog) -> None:
    served = publish.questionnaires(catalog)
    assert len(served) == len(catalog.versions) == len({f.canonical for f in catalog.versions})
    for form in catalog.versions:
        text, canonical = served[publish.questionnaire_id(form)]
        body = json.loads(text)
        assert canonical == form.canonical and body["version"] == form.version
        assert body["id"] == publish.questionnaire_id(form) and body["meta"] == {"versionId": "1"}
        assert not resource_errors(body)
    stress = catalog.by_key["stress"]
    assert f"stress-{stress.version}" in served
    assert publish.questionnaires(catalog) is served  # built once per catalog


def test_publish_group_lists_its_members(session: Session) -> None:
    members = [patients.create_patient(session, name=n, birth_date=BORN).id for n in ("A", "B")]
    row = publish.publish_group(session, group_id="cohort-1", name="Monday clinic", patient_ids=members, now=NOW)
    group = json.loads(row.resource_json)
    assert not resource_errors(group) and group["quantity"] == 2
    assert [m["entity"]["reference"] for m in group["member"]] == [f"Patient/{p}" for p in members]
    criteria, count, after = parse("Group", [("member", f"Patient/{members[1]}")])
    assert [r.resource_id for r in fhir_store.search(session, criteria, after_seq=after, count=count)[0]] == [
        "cohort-1"
    ]
