"""Patient matching for the EHR push (intake/fhir/patient_match.py): the pushed Bundle refers to the
EHR's own Patient (a known reference, or a conditional reference on the record number), and an
unmatched patient is created (as before) or held for staff to link and release."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from flask import Flask

from intake import close_app
from intake.core import extract
from intake.fhir import patient_match
from intake.services import services
from intake.storage import outbox_store
from intake.storage.models import Intake, Patient
from tests.fhir.test_ehr_push import app_for as make_app
from tests.fhir.test_ehr_push import pushes, receiver, rows_of  # noqa: F401  (fixture)
from tests.support.fhir_receiver import FhirReceiver
from tests.web.conftest import csrf
from tests.web.flow import fill_all, first_page, signed_in

# --- parsing and encoding -------------------------------------------------------------------------


def test_references_are_patient_and_a_fhir_id() -> None:
    assert patient_match.parse_reference("  Patient/eAB3.x-9 ") == "Patient/eAB3.x-9"
    for bad in ("123", "Patient/", "Patient/a b", "Observation/1", "Patient/1/_history/2",
                "https://ehr.example/Patient/1", "Patient/" + "x" * 65, "Patient?identifier=a|b"):
        with pytest.raises(patient_match.MatchError):
            patient_match.parse_reference(bad)


def test_identifiers_take_their_system_or_the_default() -> None:
    assert patient_match.parse_identifier("12345", "urn:default") == ("urn:default", "12345")
    assert patient_match.parse_identifier("urn:oid:1.2.3|AB|7", "urn:default") == ("urn:oid:1.2.3", "AB|7")
    for bad in ("|123", "urn:oid:1|", "x" * 65, "urn:oid:1|a\tb", "a system|1"):
        with pytest.raises(patient_match.MatchError):
            patient_match.parse_identifier(bad, "urn:default")


def _decoded(reference: str) -> tuple[str, str]:
    """What a FHIR server reads from a conditional reference: percent-decoding, then the token's
    unescaped `|` splits system from value, then FHIR escapes are undone."""
    query = reference.removeprefix("Patient?identifier=")
    assert "&" not in query and "#" not in query and " " not in query and "+" not in query
    parts = re.split(r"(?<!\\)\|", unquote(query))
    assert len(parts) == 2
    system, value = (re.sub(r"\\(.)", r"\1", p) for p in parts)
    return system, value


@pytest.mark.parametrize("value", ["AB+12&3", "a#b", "50%", "two words", "Ñandú-7", "x|y,z$\\w"])
def test_conditional_references_are_escaped_and_percent_encoded(value: str) -> None:
    reference = patient_match.conditional_reference("https://hospital.example/mrn?site=a&b", value)
    assert reference.startswith("Patient?identifier=https%3A%2F%2Fhospital.example%2Fmrn%3Fsite%3Da%26b%7C")
    assert _decoded(reference) == ("https://hospital.example/mrn?site=a&b", value)


def test_refer_to_drops_our_patient_and_rewrites_every_reference() -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "name": [{"text": "A"}]}},
        {"fullUrl": "urn:uuid:o1", "resource": {"resourceType": "Observation", "subject": {"reference": "urn:uuid:p1"},
                                                "focus": [{"reference": "Patient/p1"}, {"reference": "urn:uuid:q1"}]}},
    ]}
    out = patient_match.refer_to(bundle, "p1", "Patient/ehr-9")
    assert [e["resource"]["resourceType"] for e in out["entry"]] == ["Observation"]
    observation = out["entry"][0]["resource"]
    assert observation["subject"] == {"reference": "Patient/ehr-9"}
    assert observation["focus"] == [{"reference": "Patient/ehr-9"}, {"reference": "urn:uuid:q1"}]
    assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"  # the input is left as it was


# --- pushes -------------------------------------------------------------------------------------------


@pytest.fixture
def hold_app(database_url: str, tmp_path: Path, receiver: FhirReceiver) -> Iterator[Flask]:  # noqa: F811
    app = make_app(database_url, tmp_path, receiver, INTAKE_EHR_UNMATCHED_PATIENT="hold")
    yield app
    close_app(app)


@pytest.fixture
def create_app_(database_url: str, tmp_path: Path, receiver: FhirReceiver) -> Iterator[Flask]:  # noqa: F811
    app = make_app(database_url, tmp_path, receiver)
    yield app
    close_app(app)


def submit(app: Flask, *invite: str, name: str = "Test Patient") -> str:
    """Invite with `flask intake invite --name ... *invite`, answer the stress questionnaire over
    the web pages and submit; the intake's id."""
    result = app.test_cli_runner().invoke(args=["intake", "invite", "--name", name, "--birth-date", "1970-01-01",
                                                "--questionnaires", "stress", *invite])
    assert result.exit_code == 0, result.output
    client = app.test_client()
    assert client.get("/i/" + result.output.strip().rsplit("/i/", 1)[1]).status_code == 302
    fill_all(client, app, first_page(client))
    review = client.get("/intake/review")
    assert client.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302
    with services(app).sessions() as session:
        return str(session.query(Intake.id).order_by(Intake.created_at.desc()).first()[0])


def references(bundle: dict[str, Any]) -> set[str]:
    return set(re.findall(r'"reference": "(Patient[^"]*)"', json.dumps(bundle)))


def patient_of(app: Flask, intake_id: str) -> Patient:
    with services(app).sessions() as session:
        intake = session.get(Intake, intake_id)
        assert intake is not None
        patient = session.get(Patient, intake.patient_id)
        assert patient is not None
        session.expunge(patient)
        return patient


def test_a_known_ehr_patient_is_referred_to_and_not_sent(create_app_: Flask, receiver: FhirReceiver) -> None:  # noqa: F811
    intake_id = submit(create_app_, "--ehr-patient", "Patient/ehr-42")
    assert rows_of(create_app_, intake_id)["ehr_push"].state == "done"
    [push] = pushes(receiver)
    kinds = {e["resource"]["resourceType"] for e in push.bundle["entry"]}
    assert "Patient" not in kinds and {"QuestionnaireResponse", "Observation"} <= kinds
    assert references(push.bundle) == {"Patient/ehr-42"}
    ours = patient_of(create_app_, intake_id).id
    assert ours not in json.dumps(push.bundle)  # no reference to our own Patient is left
    assert receiver.resources("Patient") == []


def test_a_record_number_with_create_matches_or_registers_by_it(create_app_: Flask, receiver: FhirReceiver) -> None:  # noqa: F811
    """`create`: the Patient is a conditional create on the record number, so the EHR's own record
    is joined when it has one and the patient registered when it has none."""
    intake_id = submit(create_app_, "--mrn", "urn:oid:1.2.3|AB+12&3 #é")
    [push] = pushes(receiver)
    [patient] = [e for e in push.bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert patient["request"]["ifNoneExist"] == extract.conditional_query("urn:oid:1.2.3", "AB+12&3 #é")
    assert rows_of(create_app_, intake_id)["ehr_push"].state == "done"


def test_a_record_number_with_hold_becomes_a_conditional_reference(hold_app: Flask, receiver: FhirReceiver) -> None:  # noqa: F811
    """`hold`: the service never registers a patient; the EHR resolves the conditional reference."""
    app = hold_app
    intake_id = submit(app, "--mrn", "urn:oid:1.2.3|AB+12&3 #é")
    patient = patient_of(app, intake_id)
    assert (patient.mrn_system, patient.mrn, patient.ehr_reference) == ("urn:oid:1.2.3", "AB+12&3 #é", None)
    [push] = pushes(receiver)
    assert "Patient" not in {e["resource"]["resourceType"] for e in push.bundle["entry"]}
    [reference] = references(push.bundle)
    assert reference == patient_match.conditional_reference("urn:oid:1.2.3", "AB+12&3 #é")
    assert _decoded(reference) == ("urn:oid:1.2.3", "AB+12&3 #é")


def test_unmatched_with_create_sends_our_patient_as_before(create_app_: Flask, receiver: FhirReceiver) -> None:  # noqa: F811
    intake_id = submit(create_app_)
    assert rows_of(create_app_, intake_id)["ehr_push"].state == "done"
    [push] = pushes(receiver)
    [entry] = [e for e in push.bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert entry["request"]["method"] == "POST" and entry["request"]["ifNoneExist"].startswith("identifier=")
    assert len(receiver.resources("Patient")) == 1


def test_unmatched_with_hold_waits_for_staff_to_link_then_sends(hold_app: Flask, receiver: FhirReceiver) -> None:  # noqa: F811
    intake_id = submit(hold_app, name="Held Person")
    push = rows_of(hold_app, intake_id)["ehr_push"]
    assert (push.state, push.last_error) == ("held", patient_match.HELD_REASON)
    assert pushes(receiver) == []
    from_cli = hold_app.test_cli_runner().invoke(args=["intake", "outbox", "dispatch"])
    assert from_cli.exit_code == 0 and rows_of(hold_app, intake_id)["ehr_push"].state == "held"  # never due

    admin = signed_in(hold_app, "admin")
    page = admin.get("/admin/outbox").text
    assert "Held for a patient link" in page and intake_id in page and "held 1" in page
    bad = admin.post("/admin/outbox/link", data={"row": push.id, "reference": "123", "csrf_token": csrf(page)})
    assert bad.status_code == 400 and "There is a problem" in bad.text and f"Row {push.id}:" in bad.text
    assert rows_of(hold_app, intake_id)["ehr_push"].state == "held"
    assert admin.post("/admin/outbox/link", data={"row": push.id, "reference": "Patient/77"}).status_code == 400  # CSRF

    done = admin.post("/admin/outbox/link", data={"row": push.id, "reference": " Patient/77 ",
                                                  "csrf_token": csrf(page)})
    assert done.status_code == 302
    assert rows_of(hold_app, intake_id)["ehr_push"].state == "done"
    [sent] = pushes(receiver)
    assert references(sent.bundle) == {"Patient/77"}
    assert patient_of(hold_app, intake_id).ehr_reference == "Patient/77"
    again = admin.post("/admin/outbox/link", data={"row": push.id, "reference": "Patient/78", "csrf_token": csrf(page)})
    assert again.status_code == 400 and "no longer held" in again.text


def test_a_held_push_is_released_from_the_command_line(hold_app: Flask, receiver: FhirReceiver) -> None:  # noqa: F811
    intake_id = submit(hold_app)
    row = rows_of(hold_app, intake_id)["ehr_push"]
    runner = hold_app.test_cli_runner()
    listed = runner.invoke(args=["intake", "outbox", "list"])
    assert f"{row.id:>8}  held" in listed.output and "held 1" in listed.output
    for args, message in ((["999999", "Patient/1"], "row 999999 is not a held EHR push"),
                          ([str(row.id), "1"], "Patient/ and its id")):
        result = runner.invoke(args=["intake", "outbox", "link", *args])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    result = runner.invoke(args=["intake", "outbox", "link", str(row.id), "Patient/abc"])
    assert result.exit_code == 0, result.output
    assert rows_of(hold_app, intake_id)["ehr_push"].state == "done"
    assert references(pushes(receiver)[0].bundle) == {"Patient/abc"}
    with services(hold_app).sessions() as session:
        assert outbox_store.counts(session)["held"] == 0
