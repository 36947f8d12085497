"""Real FHIR client libraries against the running app over HTTP, used as their documentation
shows: fhirclient (SMART's Python client) finds the token endpoint in the CapabilityStatement's
oauth-uris and gets its token with a SMART Backend Services assertion; fhirpy takes a bearer
token its caller got by SMART discovery. Both search (sort, include, category, paging) and read.

fhirclient 4.x offers authorization code (with PKCE, `app_secret` as HTTP Basic for a symmetric
confidential client), refresh tokens, and client credentials with a JWT assertion the caller
signed (`jwt_token`): it never signs one itself. This server offers only the last (asymmetric
client authentication, no user login), so that is what is tested."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fhirclient import client
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from fhirclient.models.questionnaire import Questionnaire
from fhirclient.models.questionnaireresponse import QuestionnaireResponse
from fhirclient.server import FHIRUnauthorizedException
from fhirpy import SyncFHIRClient
from flask import Flask
from werkzeug.serving import make_server

from tests.smart_client import SmartClient
from tests.web.flow import EMERGENCY, HIGH_PHQ4, complete_intake
from tests.web.test_fhir_api import api_app, new_token, patient_of  # noqa: F401  (fixture)


@pytest.fixture
def served(api_app: Flask) -> Iterator[str]:  # noqa: F811
    """The app on a real port, configured with that address as its public one (INTAKE_BASE_URL:
    the token endpoint it advertises is then one a client can reach)."""
    server = make_server("127.0.0.1", 0, api_app, threaded=True)
    api_app.config["INTAKE_BASE_URL"] = f"http://127.0.0.1:{server.server_port}"
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


def registered(app: Flask, name: str) -> SmartClient:
    """An API client NAME with a fresh key pair, registered for system/*.read."""
    client = SmartClient(name)
    client.register(app, Path(app.instance_path), "system/*.read")
    return client


def test_fhirclient_authenticates_by_the_capability_statement_and_searches(
        api_app: Flask, served: str) -> None:  # noqa: F811
    """Finding 6: fhirclient reads the token URL from /metadata's oauth-uris (it never reads
    .well-known); the assertion it sends is the caller's, made for the discovered endpoint."""
    _client, intake_id = complete_intake(api_app, {**EMERGENCY, **HIGH_PHQ4})
    patient_id = patient_of(api_app, intake_id)
    system = registered(api_app, "warehouse")
    endpoint = requests.get(f"{served}/.well-known/smart-configuration", timeout=10).json()["token_endpoint"]
    smart = client.FHIRClient(settings={"app_id": "warehouse", "api_base": served, "scope": "system/*.read",
                                        "jwt_token": system.assertion(endpoint)})
    assert smart.prepare() is False  # the metadata is read: the server is protected, no token yet
    assert smart.state["server"]["auth"]["token_uri"] == endpoint  # found in the CapabilityStatement
    smart.authorize()
    assert smart.ready

    # Searches as the fhirclient README writes them (struct, include, perform_*_iter).
    search = QuestionnaireResponse.where(struct={"subject": f"Patient/{patient_id}", "_sort": "-authored",
                                                 "_count": "2"}).include("subject")
    bundles = list(search.perform_iter(smart.server))
    assert len(bundles) == 3  # five responses, two a page, by the next links
    responses = [e.resource for b in bundles for e in b.entry if e.search.mode == "match"]
    assert len(responses) == 5
    authored = [r.authored.isostring for r in responses]
    assert authored == sorted(authored, reverse=True)
    patients = [e.resource for b in bundles for e in b.entry if e.search.mode == "include"]
    assert {p.id for p in patients} == {patient_id} and isinstance(patients[0], Patient)
    with_forms = QuestionnaireResponse.where(struct={"subject": f"Patient/{patient_id}",
                                                     "_include": "QuestionnaireResponse:questionnaire"})
    forms = [r for r in with_forms.perform_resources_iter(smart.server) if isinstance(r, Questionnaire)]
    assert {f"{q.url}|{q.version}" for q in forms} == {r.questionnaire for r in responses}

    scores = Observation.where(struct={"patient": patient_id, "category": "survey", "_sort": "date"})
    found = list(scores.perform_resources_iter(smart.server))
    assert len(found) >= 8 and all(o.category[0].coding[0].code == "survey" for o in found)
    assert Patient.read(patient_id, smart.server).birthDate.isostring == "1960-05-01"
    form = Questionnaire.read(forms[0].id, smart.server)
    assert form.url == forms[0].url


def test_fhirclient_without_a_valid_assertion_gets_no_token(api_app: Flask, served: str) -> None:  # noqa: F811
    registered(api_app, "stranger")
    endpoint = requests.get(f"{served}/.well-known/smart-configuration", timeout=10).json()["token_endpoint"]
    impostor = SmartClient("stranger")  # the registered name, another key
    smart = client.FHIRClient(settings={"app_id": "stranger", "api_base": served, "scope": "system/*.read",
                                        "jwt_token": impostor.assertion(endpoint)})
    assert smart.prepare() is False
    with pytest.raises(FHIRUnauthorizedException) as caught:
        smart.authorize()
    assert caught.value.response.json()["error"] == "invalid_client"
    assert not smart.ready
    with pytest.raises(FHIRUnauthorizedException):
        Patient.read("anyone", smart.server)


def test_fhirpy_with_a_token_from_smart_discovery_sorts_and_includes(api_app: Flask, served: str) -> None:  # noqa: F811
    _client, intake_id = complete_intake(api_app, {**EMERGENCY, **HIGH_PHQ4})
    patient_id = patient_of(api_app, intake_id)
    system = registered(api_app, "registry")
    endpoint = requests.get(f"{served}/.well-known/smart-configuration", timeout=10).json()["token_endpoint"]
    token = requests.post(endpoint, data=system.token_form(endpoint), timeout=10).json()["access_token"]
    fhir = SyncFHIRClient(served, authorization=f"Bearer {token}")

    responses = fhir.resources("QuestionnaireResponse").search(patient=patient_id).sort("-authored")
    authored = [r["authored"] for r in responses.fetch_all()]
    assert len(authored) == 5 and authored == sorted(authored, reverse=True)
    raw = (fhir.resources("QuestionnaireResponse").search(patient=patient_id)
           .include("QuestionnaireResponse", "subject").include("QuestionnaireResponse", "questionnaire").fetch_raw())
    modes = [(e["search"]["mode"], e["resource"]["resourceType"]) for e in raw["entry"]]
    assert modes.count(("include", "Patient")) == 1 and modes.count(("match", "QuestionnaireResponse")) == 5
    assert modes.count(("include", "Questionnaire")) == 5  # one per form the responses pin
    latest = fhir.resources("Observation").search(patient=patient_id, category="survey").sort("-date").first()
    assert latest["category"][0]["coding"][0]["code"] == "survey"
    assert fhir.resources("Observation").search(category="laboratory").count() == 0
