"""The `flask intake` commands, through Flask's CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from intake.services import services
from intake.storage.models import Intake, Patient
from tests.web.conftest import app, client  # noqa: F401  (fixtures)

LHC = Path(__file__).resolve().parents[3] / "shared" / "fhircheck" / "fixtures" / "lhc-forms"


def test_invite_prints_the_patient_id_and_a_link_with_a_256_bit_token(app: Flask) -> None:  # noqa: F811
    runner = app.test_cli_runner()
    result = runner.invoke(args=["intake", "invite", "--name", "Ana Diaz", "--birth-date", "1970-05-01"])
    assert result.exit_code == 0
    word, patient_id, said, link = result.output.strip().split(" ")
    assert (word, said, patient_id) == ("patient", "link", _patients(app)[0].id)
    assert link.startswith("http://127.0.0.1:5000/i/")
    assert len(link.rsplit("/i/", 1)[1]) >= 43  # 32 random bytes, base64url
    # The printed id makes a follow-up intake, and a new link for an intake names the patient too.
    again = runner.invoke(args=["intake", "invite", "--patient", patient_id])
    assert again.exit_code == 0 and again.output.startswith(f"patient {patient_id} link http://")
    with services(app).sessions() as session:
        intake_id = session.scalars(select(Intake.id).order_by(Intake.created_at)).first()
    replaced = runner.invoke(args=["intake", "invite", "--intake", intake_id])
    assert replaced.exit_code == 0 and replaced.output.startswith(f"patient {patient_id} link http://")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--name", "A", "--birth-date", "05/01/1970"], "--birth-date must be a date"),
        (["--name", "A", "--birth-date", "2999-01-01"], "birth date is in the future"),
        (["--name", "   ", "--birth-date", "1970-01-01"], "patient name is required"),
        (["--name", "A", "--birth-date", "1970-01-01", "--questionnaires", "nope"], "unknown questionnaire 'nope'"),
        (["--name", "A", "--birth-date", "1970-01-01", "--appointment", "soon"], "--appointment must be"),
        (["--name", "A", "--birth-date", "1970-01-01", "--ehr-patient", "123"], "--ehr-patient: the EHR patient must"),
        (["--name", "A", "--birth-date", "1970-01-01", "--ehr-patient", "Patient/a b"], "like Patient/123"),
        (["--name", "A", "--birth-date", "1970-01-01", "--mrn", "urn:oid:1|"], "--mrn: the record number must"),
        (["--name", "A", "--birth-date", "1970-01-01", "--mrn", "|123"], "--mrn: the record number's system"),
        (["--patient", "p1", "--mrn", "7"], "with --patient, leave them out"),
        (["--intake", "i1", "--ehr-patient", "Patient/1"], "--intake takes no other option"),
        (["--intake", "i1", "--email", "a@example.org"], "--intake takes no other option"),
        (["--name", "A", "--birth-date", "1970-01-01", "--email", "not an address"], "e-mail address must look like"),
        (["--name", "A", "--birth-date", "1970-01-01", "--phone", "5551234"], "mobile number must start with +"),
        (["--name", "A", "--birth-date", "1970-01-01", "--phone", "+15551234567"], "SMS is not set up here"),
    ],
)
def test_invite_rejects_bad_input_with_one_line(app: Flask, args: list[str], message: str) -> None:  # noqa: F811
    result = app.test_cli_runner().invoke(args=["intake", "invite", *args])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def _patients(flask_app: Flask) -> list[Patient]:
    with services(flask_app).sessions() as session:
        found = list(session.scalars(select(Patient).order_by(Patient.created_at)))
        session.expunge_all()
        return found


def test_invite_for_an_ehr_patient_by_reference_or_record_number(app: Flask) -> None:  # noqa: F811
    runner = app.test_cli_runner()
    base = ["intake", "invite", "--name", "Ana Diaz", "--birth-date", "1970-05-01"]
    assert runner.invoke(args=[*base, "--ehr-patient", " Patient/ehr-1 "]).exit_code == 0
    assert runner.invoke(args=[*base, "--ehr-patient", "Patient/ehr-1"]).exit_code == 0  # a follow-up
    assert runner.invoke(args=[*base, "--mrn", "https://hospital.example/mrn|AB+12&3"]).exit_code == 0
    assert runner.invoke(args=[*base, "--mrn", "AB+12&3"]).exit_code == 0  # INTAKE_MRN_SYSTEM: another record
    found = [(p.ehr_reference, p.mrn_system, p.mrn) for p in _patients(app)]
    assert found == [("Patient/ehr-1", None, None), (None, "https://hospital.example/mrn", "AB+12&3"),
                     (None, app.config["INTAKE_MRN_SYSTEM"], "AB+12&3")]
    # Both at once: the record number's patient gets the link; a contradiction is refused in one line.
    result = runner.invoke(args=[*base, "--mrn", "AB+12&3", "--ehr-patient", "Patient/ehr-2"])
    assert result.exit_code == 0, result.output
    assert _patients(app)[2].ehr_reference == "Patient/ehr-2"
    result = runner.invoke(args=[*base, "--mrn", "AB+12&3", "--ehr-patient", "Patient/ehr-1"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and "two different patients" in lines[0]
    assert len(_patients(app)) == 3


def test_lint_forms_passes_the_project_forms(app: Flask) -> None:  # noqa: F811
    result = app.test_cli_runner().invoke(args=["intake", "lint-forms"])
    assert result.exit_code == 0, result.output
    assert "20 ok, 0 failed" in result.output  # five forms and their fifteen earlier versions (forms/archive)


def test_lint_forms_on_lhc_form_builder_exports(app: Flask) -> None:  # noqa: F811
    if not LHC.exists():
        pytest.skip("../shared/fhircheck/fixtures/lhc-forms is not beside this clone")
    result = app.test_cli_runner().invoke(args=["intake", "lint-forms", str(LHC)])
    assert result.exit_code == 1
    assert "ok   " + str(LHC / "hunger-vital-signs.json") in result.output
    assert "ok   " + str(LHC / "weight-height-questionnaire.json") in result.output
    assert "FAIL " + str(LHC / "phq9.json") in result.output
    assert "linkId '/44261-6' error: extension.3.valueExpression.name" in result.output
    assert "vital-sign-questionnaire.json: error: has no url" in result.output
    assert "2 ok, 2 failed" in result.output


def test_lint_forms_missing_path_fails_with_one_line(app: Flask) -> None:  # noqa: F811
    result = app.test_cli_runner().invoke(args=["intake", "lint-forms", "/no/such/file.json"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: /no/such/file.json: no such file or folder"


def test_demo_and_init_db(app: Flask) -> None:  # noqa: F811
    runner = app.test_cli_runner()
    assert runner.invoke(args=["intake", "init-db"]).output.strip() == "database is up to date"
    demo = runner.invoke(args=["intake", "demo"])
    assert demo.exit_code == 0 and "Demo patient link: http://127.0.0.1:5000/i/" in demo.output
    assert f"Demo patient id: {_patients(app)[0].id}\n" in demo.output
