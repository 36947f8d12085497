"""The test FHIR receiver (tests/support/fhir_receiver.py) behaves like a FHIR server for the EHR
push — conditional create, upsert, atomic transactions, reference rewriting — and fails on command,
seen through a plain urllib client as the service would see it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote
from urllib.request import Request, urlopen

import pytest
from flask import Flask

from intake import close_app, create_app
from intake.core import extract
from intake.fhir import publish
from intake.services import services
from tests.support.fhir_receiver import FhirReceiver, outcome
from tests.web.flow import EMERGENCY, complete_intake

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
ODD_VALUE = r"a|b,c$d\e"  # every character ifNoneExist has to escape
KINDS = ("Patient", "QuestionnaireResponse", "Flag", "Provenance")  # of hand_made_bundle, in order


@pytest.fixture
def receiver() -> Iterator[FhirReceiver]:
    with FhirReceiver() as receiver:
        yield receiver


def call(url: str, body: Any = None, *, method: str | None = None, timeout: float = 5.0,
         content_type: str = "application/fhir+json") -> tuple[int, dict[str, str], Any]:
    """(status, headers, parsed JSON) of one request; error answers are returned, not raised."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = Request(url, data=data, method=method,
                      headers={"Content-Type": content_type, "Authorization": "Bearer test-token"})
    try:
        with urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.load(response)
    except HTTPError as error:
        with error:
            return error.code, dict(error.headers), json.load(error)


def hand_made_bundle(patient: str = "p1", name: str = "Ana Diaz") -> dict[str, Any]:
    """Patient, QuestionnaireResponse (an identifier needing every escape), Flag, Provenance."""
    resources = [
        extract.patient_resource(patient, name=name, birth_date=date(1970, 5, 1)),
        {"resourceType": "QuestionnaireResponse", "id": f"qr-{patient}", "status": "completed",
         "identifier": {"system": extract.RESPONSE_SYSTEM, "value": f"{ODD_VALUE}-{patient}"},
         "subject": {"reference": f"Patient/{patient}"}},
        extract.flag_resource(intake_id=f"i-{patient}", patient_id=patient, rule_id="n-rf2", tier="emergency",
                              message="Breathing", raised=NOW),
    ]
    flag = f"Flag/{resources[2]['id']}"
    resources.append(extract.provenance(intake_id=f"i-{patient}", recorded=NOW, targets=[flag],
                                        sources=[f"QuestionnaireResponse/qr-{patient}"], engine_versions=["1"]))
    return extract.transaction_bundle(resources, timestamp=NOW)


def statuses(answer: dict[str, Any]) -> list[str]:
    return [e["response"]["status"] for e in answer["entry"]]


def test_a_transaction_creates_everything_and_rewrites_references(receiver: FhirReceiver) -> None:
    status, _headers, answer = call(receiver.base_url, hand_made_bundle())
    assert status == 200 and answer["type"] == "transaction-response"
    assert statuses(answer) == ["201 Created"] * 4
    locations = [e["response"]["location"] for e in answer["entry"]]
    assert all(re.fullmatch(r"[A-Za-z]+/[^/]+/_history/1", loc) for loc in locations)
    patient, response, flag, provenance = (loc.rsplit("/_history/", 1)[0] for loc in locations)
    assert provenance == f"Provenance/{extract.resource_id('Provenance', 'i-p1')}"  # PUT keeps its id
    assert receiver.resources("Flag")[0]["subject"] == {"reference": patient}
    stored = receiver.resources("Provenance")[0]
    assert stored["target"] == [{"reference": flag}] and stored["entity"][0]["what"] == {"reference": response}
    assert "urn:uuid" not in json.dumps([receiver.resources(t) for t in KINDS])
    status, _headers, read = call(f"{receiver.base_url}/{flag}")
    assert status == 200 and read["meta"]["versionId"] == "1" and read["subject"]["reference"] == patient
    token = f"{extract.RESPONSE_SYSTEM}|" + re.sub(r"([\\|,$])", r"\\\1", f"{ODD_VALUE}-p1")
    status, _headers, found = call(f"{receiver.base_url}/QuestionnaireResponse?identifier={quote(token)}")
    assert status == 200 and found["total"] == 1 and found["entry"][0]["resource"]["id"] == response.split("/")[1]
    assert call(f"{receiver.base_url}/QuestionnaireResponse?identifier={quote(token + 'x')}")[2]["total"] == 0
    assert receiver.requests[0].headers["authorization"] == "Bearer test-token"
    assert receiver.requests[0].bundle == hand_made_bundle()


def test_the_same_bundle_twice_creates_nothing_new(receiver: FhirReceiver) -> None:
    bundle = hand_made_bundle()
    first = call(receiver.base_url, bundle)[2]
    status, _headers, second = call(receiver.base_url + "/", bundle)  # a trailing slash is the same base
    assert status == 200 and statuses(second) == ["200 OK"] * 4
    locations = [e["response"]["location"] for e in second["entry"]]
    assert [loc.rsplit("/_history/", 1)[0] for loc in locations] == [
        e["response"]["location"].rsplit("/_history/", 1)[0] for e in first["entry"]]  # the same resources
    assert locations[0].endswith("/_history/1")  # the Patient is a conditional create: left as it is
    assert all(loc.endswith("/_history/2") for loc in locations[1:])  # the others updated in place
    counts = receiver.created_counts()
    assert counts == {
        ("Patient", f"{extract.PATIENT_SYSTEM}|p1"): 1,
        ("QuestionnaireResponse", f"{extract.RESPONSE_SYSTEM}|{ODD_VALUE}-p1"): 1,
        ("Flag", f"{extract.FLAG_SYSTEM}|i-p1/n-rf2"): 1,
    }
    assert [len(receiver.resources(t)) for t in KINDS] == [1] * 4
    assert receiver.transactions_ok == 2


def test_put_creates_then_updates(receiver: FhirReceiver) -> None:
    def put(name: str) -> dict[str, Any]:
        entry = {"resource": {"resourceType": "Patient", "id": "x1", "name": [{"text": name}]},
                 "request": {"method": "PUT", "url": "Patient/x1"}}
        return call(receiver.base_url, {"resourceType": "Bundle", "type": "transaction", "entry": [entry]})[2]

    assert put("Ana")["entry"][0]["response"]["status"] == "201 Created"
    assert put("Ana")["entry"][0]["response"]["status"] == "200 OK"
    answer = put("Ana Diaz")["entry"][0]["response"]
    assert answer["status"] == "200 OK" and answer["location"] == "Patient/x1/_history/3"
    [stored] = receiver.resources("Patient")
    assert stored["name"] == [{"text": "Ana Diaz"}] and stored["meta"]["versionId"] == "3"
    assert receiver.created_counts() == {}  # no identifier: nothing to count


def test_a_conditional_update_creates_then_updates_the_one_match(receiver: FhirReceiver) -> None:
    def put(text: str, value: str = "k 1+&#%é") -> tuple[int, dict[str, Any]]:
        identifier = {"system": extract.FLAG_SYSTEM, "value": value}
        entry = {"resource": {"resourceType": "Basic", "identifier": [identifier], "code": {"text": text}},
                 "request": {"method": "PUT", "url": f"Basic?{extract.conditional_query(identifier)}"}}
        status, _headers, answer = call(receiver.base_url, {"resourceType": "Bundle", "type": "transaction",
                                                            "entry": [entry]})
        return status, answer

    created = put("one")[1]["entry"][0]["response"]
    assert created["status"] == "201 Created" and created["location"].endswith("/_history/1")
    updated = put("two")[1]["entry"][0]["response"]
    assert updated["status"] == "200 OK" and updated["location"] == created["location"].removesuffix("1") + "2"
    [stored] = receiver.resources("Basic")
    assert stored["code"] == {"text": "two"} and stored["identifier"][0]["value"] == "k 1+&#%é"
    twice = {"resource": {**stored, "id": None}, "request": {"method": "POST", "url": "Basic"}}  # no condition
    call(receiver.base_url, {"resourceType": "Bundle", "type": "transaction", "entry": [twice]})
    status, answer = put("three")  # two resources carry the identifier now
    assert status == 412 and answer["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("spoil", [
    lambda entry: entry["request"].update(method="FETCH"),
    lambda entry: entry["request"].update(url="Provenance/another-id"),
    lambda entry: entry.pop("request"),
    lambda entry: entry["resource"]["target"].append({"reference": "urn:uuid:not-in-the-bundle"}),
], ids=["unknown method", "PUT id differs", "no request", "dangling urn reference"])
def test_a_bad_entry_refuses_the_whole_transaction(receiver: FhirReceiver, spoil: Any) -> None:
    bundle = hand_made_bundle()
    spoil(bundle["entry"][-1])  # the last entry: everything before it was already staged
    status, _headers, answer = call(receiver.base_url, bundle)
    assert status == 400 and answer["resourceType"] == "OperationOutcome"
    assert receiver.created_counts() == {} and receiver.transactions_ok == 0
    assert not any(receiver.resources(t) for t in KINDS)


def test_fail_next_fails_then_the_retry_succeeds(receiver: FhirReceiver) -> None:
    receiver.fail_next(503, times=2)
    receiver.fail_next(500)
    bundle = hand_made_bundle()
    answers = [call(receiver.base_url, bundle) for _ in range(4)]
    assert [a[0] for a in answers] == [503, 503, 500, 200]
    assert answers[0][2]["issue"][0]["code"] == "transient"
    assert statuses(answers[3][2]) == ["201 Created"] * 4  # the failed attempts stored nothing
    assert [r.status for r in receiver.requests] == [503, 503, 500, 200]
    assert all(r.bundle == bundle for r in receiver.requests)


def test_429_carries_retry_after_and_a_custom_body_is_sent(receiver: FhirReceiver) -> None:
    receiver.fail_next(429, retry_after="2")
    status, headers, answer = call(receiver.base_url, hand_made_bundle())
    assert status == 429 and headers["Retry-After"] == "2" and answer["issue"][0]["code"] == "throttled"
    receiver.fail_next(422, body=outcome("business-rule", "the EHR's own rule"))
    status, headers, answer = call(receiver.base_url, hand_made_bundle())
    assert status == 422 and "Retry-After" not in headers and answer["issue"][0]["code"] == "business-rule"


def test_an_outage_refuses_connections_and_recover_serves_on_the_same_port(receiver: FhirReceiver) -> None:
    assert call(receiver.base_url, hand_made_bundle())[0] == 200
    base = receiver.base_url
    receiver.outage()
    with pytest.raises(URLError) as refused:
        call(base, hand_made_bundle())
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    receiver.recover()
    assert receiver.base_url == base
    status, _headers, answer = call(base, hand_made_bundle())
    assert status == 200 and statuses(answer) == ["200 OK"] * 4  # what was stored survived the outage
    assert len(receiver.requests) == 2


def test_an_outage_answering_503(receiver: FhirReceiver) -> None:
    receiver.outage(mode="503")
    assert call(receiver.base_url, hand_made_bundle())[0] == 503
    assert call(f"{receiver.base_url}/Patient")[0] == 503
    receiver.recover()
    assert call(receiver.base_url, hand_made_bundle())[0] == 200


def test_a_delay_times_the_client_out_and_the_late_transaction_still_applies(receiver: FhirReceiver) -> None:
    receiver.delay(0.4)
    with pytest.raises((TimeoutError, URLError)):
        call(receiver.base_url, hand_made_bundle(), timeout=0.1)
    [late] = receiver.wait_for_requests(1, timeout=2)
    assert late.status == 200  # a slow server still commits: a retry must then be a no-op
    receiver.delay(0)
    assert statuses(call(receiver.base_url, hand_made_bundle())[2]) == ["200 OK"] * 4
    assert set(receiver.created_counts().values()) == {1}


def test_reject_when_rejects_one_patients_bundles_every_time(receiver: FhirReceiver) -> None:
    def patient_name(bundle: dict[str, Any]) -> str:
        [patient] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
        return patient["name"][0]["text"]

    receiver.reject_when(lambda bundle: 422 if patient_name(bundle) == "Reject Me" else None)
    rejected = hand_made_bundle("p2", "Reject Me")
    assert [call(receiver.base_url, rejected)[0] for _ in range(2)] == [422, 422]
    assert call(receiver.base_url, hand_made_bundle())[0] == 200
    assert [p["name"][0]["text"] for p in receiver.resources("Patient")] == ["Ana Diaz"]
    receiver.reject_when(lambda bundle: bundle["no such key"])
    assert call(receiver.base_url, rejected)[2]["issue"][0]["diagnostics"] == "receiver error: KeyError"
    receiver.reject_when(None)
    assert call(receiver.base_url, rejected)[0] == 200


@pytest.mark.parametrize(("body", "content_type", "expected"), [
    ({"resourceType": "Bundle", "type": "batch", "entry": []}, "application/fhir+json", 400),
    ({"resourceType": "Patient"}, "application/json", 400),
    (b"{not json", "application/fhir+json", 400),
    (b"[]", "application/fhir+json", 400),
    ({"resourceType": "Bundle", "type": "transaction", "entry": []}, "text/plain", 415),
    ({"resourceType": "Bundle", "type": "transaction", "entry": []}, "application/json; charset=utf-8", 200),
])
def test_only_transaction_bundles_are_taken(receiver: FhirReceiver, body: Any, content_type: str,
                                            expected: int) -> None:
    status, _headers, answer = call(receiver.base_url, body, content_type=content_type)
    assert status == expected
    assert answer["resourceType"] == ("Bundle" if expected == 200 else "OperationOutcome")


def test_reads_of_unknown_things_are_404(receiver: FhirReceiver) -> None:
    assert call(f"{receiver.base_url}/Patient/nobody")[0] == 404
    assert call(f"http://127.0.0.1:{receiver.port}/other", {}, method="POST")[0] == 404
    assert call(f"{receiver.base_url}/Patient?name=Ana")[0] == 400
    assert call(f"{receiver.base_url}/Patient")[2]["total"] == 0


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "i"), "SECRET_KEY": "t",
                      "TESTING": True, "INTAKE_JOBS": "eager"})
    yield app
    close_app(app)


def test_a_real_extract_bundle_round_trips(receiver: FhirReceiver, app: Flask) -> None:
    _client, intake_id = complete_intake(app, EMERGENCY)
    with services(app).sessions() as session:
        bundle = publish.extract_bundle(session, intake_id)
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert {"Patient", "QuestionnaireResponse", "Observation", "Flag", "DocumentReference", "Provenance"} <= kinds
    status, _headers, answer = call(receiver.base_url, bundle)
    assert status == 200 and statuses(answer) == ["201 Created"] * len(bundle["entry"])
    assert call(receiver.base_url, bundle)[0] == 200
    conditional = [e for e in bundle["entry"] if e["request"]["method"] == "POST"]
    counts = receiver.created_counts()
    assert len(counts) >= len(conditional) and set(counts.values()) == {1}
    assert sum(len(receiver.resources(k)) for k in kinds) == len(bundle["entry"])
    flag = receiver.resources("Flag")[0]
    assert flag["subject"]["reference"] == f"Patient/{receiver.resources('Patient')[0]['id']}"
