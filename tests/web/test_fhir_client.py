"""A real FHIR client library (fhirpy) against the running app over HTTP: search with paging,
read, and the client's own reference resolution."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fhirpy import SyncFHIRClient
from flask import Flask
from werkzeug.serving import make_server

from tests.web.flow import EMERGENCY, HIGH_PHQ4, complete_intake
from tests.web.test_fhir_api import api_app, new_token, patient_of  # noqa: F401  (fixture)


@pytest.fixture
def served(api_app: Flask) -> Iterator[str]:  # noqa: F811
    server = make_server("127.0.0.1", 0, api_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/fhir"
    server.shutdown()
    thread.join()


def test_fhirpy_searches_and_reads_responses_and_observations(api_app: Flask, served: str) -> None:  # noqa: F811
    _client, intake_id = complete_intake(api_app, {**EMERGENCY, **HIGH_PHQ4})
    patient_id = patient_of(api_app, intake_id)
    host = served.rsplit("/fhir", 1)[0]
    client = SyncFHIRClient(served, authorization=f"Bearer {new_token(api_app, base_url=host)}")

    responses = (
        client.resources("QuestionnaireResponse").search(patient=patient_id, status="completed").limit(2).fetch_all()
    )
    assert len(responses) == 5  # fetch_all follows our next links, two at a time
    assert {r["questionnaire"].split("|")[0].rsplit("/", 1)[1] for r in responses} == {
        "digestive", "neuropathy", "autoimmune", "diet", "stress"}
    assert client.resources("QuestionnaireResponse").search(patient=patient_id).count() == 5

    phq4 = (
        client.resources("Observation").search(code="http://loinc.org|70272-0", subject=f"Patient/{patient_id}").fetch()
    )
    assert len(phq4) == 1 and phq4[0]["valueInteger"] == 12
    source = phq4[0]["derivedFrom"][0].to_resource()  # the client resolves the reference by a read
    assert source["resourceType"] == "QuestionnaireResponse" and source["status"] == "completed"
    assert client.reference("Patient", patient_id).to_resource()["birthDate"] == "1960-05-01"
    observations = client.resources("Observation").search(patient=patient_id).fetch_all()
    assert len(observations) >= 8 and all(o["category"][0]["coding"][0]["code"] == "survey" for o in observations)
