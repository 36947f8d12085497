"""`flask intake ehr check`: the push mode an EHR's CapabilityStatement calls for, from statements
shaped like the servers in ../shared/ehr-targets.md (Medplum, HAPI, an Epic-like EHR without
Bundles), served by the test receiver; and one error line when there is none to read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from intake import close_app, create_app
from intake.fhir import ehr_capability
from intake.fhir.ehr_push import Target
from tests.support.fhir_receiver import FhirReceiver

TYPES = ehr_capability.PUSHED_TYPES


def statement(software: str, *, system: tuple[str, ...] = ("transaction", "batch"), conditional: bool = True,
              types: tuple[str, ...] = TYPES, read_only: tuple[str, ...] = ()) -> dict[str, Any]:
    def resource(kind: str) -> dict[str, Any]:
        codes = ["read", "search-type"] if kind in read_only else ["read", "search-type", "create", "update"]
        return {"type": kind, "interaction": [{"code": c} for c in codes], "conditionalCreate": conditional}
    return {"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1",
            "software": {"name": software, "version": "1"}, "format": ["json"],
            "rest": [{"mode": "server", "interaction": [{"code": c} for c in system],
                      "resource": [resource(t) for t in types]}]}


MEDPLUM = statement("Medplum")
HAPI = statement("HAPI FHIR Server")
EPIC_LIKE = statement("Epic", system=(), conditional=False, read_only=("Flag", "Provenance"))


def test_a_server_with_transactions_takes_chunks_within_its_cap() -> None:
    verdict = ehr_capability.judge(MEDPLUM, Target(base="http://ehr", max_entries=8))
    assert verdict.mode == "transaction" and verdict.problems == 0
    assert "entry limit: INTAKE_EHR_MAX_ENTRIES is 8 (within Medplum's 8)" in verdict.findings
    too_many = ehr_capability.judge(MEDPLUM, Target(base="http://ehr", max_entries=30))
    assert too_many.problems == 0  # a warning line: the cap is not in the statement itself
    assert any(f.startswith("entry limit: Medplum takes at most 8") for f in too_many.findings)
    hapi = ehr_capability.judge(HAPI, Target(base="http://ehr", max_entries=100))
    assert hapi.mode == "transaction" and any("not advertised" in f for f in hapi.findings)


def test_an_ehr_without_bundles_calls_for_a_sequence_and_says_what_it_cannot_take() -> None:
    verdict = ehr_capability.judge(EPIC_LIKE, Target(base="http://ehr"))
    assert verdict.mode == "sequence"
    assert "Flag: no create: the EHR will refuse it" in verdict.findings
    assert "Provenance: no create: the EHR will refuse it" in verdict.findings
    assert any(f.startswith("Observation: create, but conditionalCreate is not advertised") for f in verdict.findings)
    assert "setting: INTAKE_EHR_PUSH_MODE is 'transaction': set 'sequence'" in verdict.findings
    assert verdict.problems == 3
    missing = ehr_capability.judge(statement("X", types=("Patient",)), Target(base="http://ehr"))
    assert "QuestionnaireResponse: not listed: the EHR will refuse it" in missing.findings


@pytest.fixture
def receiver() -> Iterator[FhirReceiver]:
    with FhirReceiver() as server:
        yield server


@pytest.fixture
def app(database_url: str, tmp_path: Path, receiver: FhirReceiver) -> Iterator[Flask]:
    app = create_app({"INSTANCE_PATH": str(tmp_path / "i"), "SECRET_KEY": "t", "TESTING": True,
                      "DATABASE_URL": database_url,
                      "INTAKE_EHR_FHIR_BASE": receiver.base_url, "INTAKE_EHR_BEARER_TOKEN": "s3cret"})
    yield app
    close_app(app)


def check(app: Flask) -> tuple[int, str, str]:
    result = app.test_cli_runner().invoke(args=["intake", "ehr", "check"])
    return result.exit_code, result.stdout, result.stderr


def test_the_command_reads_metadata_with_the_token_and_prints_a_line_per_finding(
        app: Flask, receiver: FhirReceiver) -> None:
    receiver.capability = MEDPLUM
    code, out, err = check(app)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "server: Medplum 1, FHIR 4.0.1" and lines[-1] == "mode: transaction"
    assert "QuestionnaireResponse: create, conditional create" in lines
    [request] = receiver.requests
    assert request.path == "/fhir/metadata" and request.headers["authorization"] == "Bearer s3cret"
    receiver.capability = EPIC_LIKE
    code, out, err = check(app)
    assert code == 1 and out.splitlines()[-1] == "mode: sequence"
    assert err == f"error: 3 finding(s) above stop pushes to {receiver.base_url}\n"


@pytest.mark.parametrize(("served", "message"), [
    (None, "/metadata answered HTTP 404"),
    ({"resourceType": "Bundle", "type": "searchset"}, "/metadata answered a Bundle, not a CapabilityStatement"),
])
def test_no_capability_statement_is_one_error_line(app: Flask, receiver: FhirReceiver, served: Any,
                                                   message: str) -> None:
    receiver.capability = served
    code, out, err = check(app)
    assert (code, out) == (1, "") and err == f"error: {receiver.base_url}{message}\n"


def test_an_unreachable_ehr_or_no_ehr_is_one_error_line(database_url: str, tmp_path: Path) -> None:
    with FhirReceiver() as gone:
        base = gone.base_url
    unset = "error: INTAKE_EHR_FHIR_BASE is not set"
    for configured, message in [(base, f"error: cannot reach {base}: "), ("", unset)]:
        app = create_app({"INSTANCE_PATH": str(tmp_path / "i"), "SECRET_KEY": "t", "TESTING": True,
                          "DATABASE_URL": database_url, "INTAKE_EHR_FHIR_BASE": configured,
                          "INTAKE_EHR_TIMEOUT_SECONDS": 2.0})
        try:
            code, out, err = check(app)
        finally:
            close_app(app)
        assert code == 1 and out == "" and err.startswith(message) and err.count("\n") == 1
