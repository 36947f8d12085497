"""Hostile input on every route of the URL map: a 4xx in the route's own voice, never a 5xx.

Issue 15, finding 7: a class of inputs, not a list of instances. Each request below carries one
hostile input of one class, on one route, as one principal:

* Unicode digits (`²`, `٣`, `３`: `str.isdigit()` is true) and huge, negative or empty numbers;
* dates out of Python's datetime range, nanoseconds, leap seconds, 30 February;
* NUL and other control characters (PostgreSQL text cannot hold NUL: run this on PostgreSQL too);
* form fields sent as multipart file parts;
* type-confused JSON (a list where a string belongs, null, wrong top level, deep nesting,
  invalid UTF-8) to the operations that read JSON, and JSON to every form route;

in the path (every converter of every rule), in the query string (the parameters the route
reads, and one it does not) and in the form fields (each field of the route's form, the others
valid, with the session's CSRF token so the input reaches the view). Every route is sent them
anonymously, as a patient with an open link, as each staff role and, under /fhir, with an access
token; the principal that can use a route gets every input, the others a sample. A response
under /fhir must be an OperationOutcome, one from /auth/token OAuth error JSON.

The app runs with TESTING=True: an unhandled exception reaches the test instead of becoming a
500 page, and counts as a server error with its type. The default run sends a sample (a fixed
seed, a few seconds); `-m long` sends every combination. `-s` shows the count.
"""

from __future__ import annotations

import io
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake.services import services
from intake.storage.models import FhirResource, Intake
from intake.web.auditing import flush
from tests.conftest import AppFactory
from tests.smart_client import SmartClient
from tests.web.conftest import csrf, invite_link
from tests.web.flow import HIGH_PHQ4, complete_intake, signed_in

# --- the input classes -------------------------------------------------------------------------

CLASSES: dict[str, list[str]] = {
    "unicode digits": ["²", "٣", "３", "１２", "٠٠١", "𝟗", "2²"],
    "numbers out of range": ["99999999999999999999999", "2147483648", "9999999999", "-1", "", " 1", "1e3"],
    "dates out of range": ["9999", "9999-12-31", "0001-01-01T00:00+05:00", "le9999-12-31", "0001", "ge0001-01-01",
                           "2026-01-01T00:00:00.123456789Z", "2016-12-31T23:59:60Z", "2026-02-30", "99999-01-01",
                           "sa9999-12-31T23:59:59.999999-14:00", "０００１-０１-０１", "-0001-01-01", "10000-01-01"],
    "control characters": ["a\x00b", "\x00", "Patient/\x00", "x\x1b[2J", "\x07", "a\x0bb", "\x7f"],
}
HOSTILE = [(kind, value) for kind, values in CLASSES.items() for value in values]
FILE = "multipart file part"
JSON_CLASS = "type-confused JSON"

# Query parameters each GET route reads (one it does not read is added to every route).
QUERY: dict[str, list[str]] = {
    "fhir.search": [
        "_count",
        "_cursor",
        "_lastUpdated",
        "_id",
        "name",
        "birthdate",
        "identifier",
        "patient",
        "authored",
        "date",
        "status",
        "_summary",
        "_format",
    ],
    "fhir.export_system": ["_since", "_type", "_outputFormat"],
    "fhir.export_patients": ["_since", "_type"],
    "fhir.export_group": ["_since", "_type"],
    "fhir.extract": ["document"],
    "fhir.binary": ["_format"],
    "admin.audit_log": ["before", "check", "actor", "entity", "since", "until", "action"],
    "admin.audit_export": ["actor", "entity", "since", "until", "action"],
    "staff.login": ["next"],
    "staff.password": ["changed"],
    "patient.page": ["from"],
    "patient.open_link": ["next"],
    "front_desk.find_patient": ["q"],
    "front_desk.show_link": ["sent"],
}
# The form each POST route reads: field -> a valid value (None: the session's CSRF token).
FORMS: dict[str, dict[str, Any]] = {
    "staff.login": {"csrf_token": None, "username": "nobody", "password": "wrong password here"},
    "staff.login_code": {"csrf_token": None, "code": "123456"},
    "staff.logout": {"csrf_token": None},
    "staff.password": {
        "csrf_token": None,
        "current_password": "wrong password",
        "new_password": "another long passphrase",
        "new_password_again": "another long passphrase",
    },
    "staff.two_step": {"csrf_token": None, "code": "123456"},
    "admin.add_user": {
        "csrf_token": None,
        "username": "fuzzed",
        "display_name": "Fuzzed",
        "role": "clinician",
        "password": "a long enough passphrase",
    },
    "admin.change_user": {"csrf_token": None, "password": "a long enough passphrase"},
    "admin.add_client": {"csrf_token": None, "name": "fuzz-client", "jwks": '{"keys": []}', "scopes": "system/*.read"},
    "admin.revoke_client": {"csrf_token": None},
    "admin.outbox_retry": {"csrf_token": None, "row": "1"},
    "admin.outbox_link": {"csrf_token": None, "row": "1", "reference": "Patient/1"},
    "front_desk.new_intake": {
        "csrf_token": None,
        "name": "Fuzz Patient",
        "birth_date": "1970-01-01",
        "mrn": "",
        "ehr_patient": "",
        "email": "",
        "phone": "",
        "language": "en",
        "appointment_day": "2026-12-31",
        "appointment_time": "09:00",
        "questionnaires": "stress",
    },
    "front_desk.new_link": {"csrf_token": None, "send": "email"},
    "front_desk.invite_again": {
        "csrf_token": None,
        "appointment_day": "2026-12-31",
        "appointment_time": "09:00",
        "questionnaires": "stress",
        "language": "es",
        "email": "fuzz@example.org",
        "phone": "+15551234567",
        "send": "email",
    },
    "patient.page": {"csrf_token": None, "q-stress-1": "x"},
    "patient.submit": {"csrf_token": None},
    "auth_api.token": {
        "grant_type": "client_credentials",
        "scope": "system/*.read",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": "a.b.c",
    },
    "fhir.search_post": {"name": "x", "_count": "1"},
    "fhir.extract": {},
}
OWNER = {"admin": "admin", "staff": "admin", "front_desk": "front-desk", "clinician": "clinician", "patient": "patient",
         "fhir": "api", "auth_api": "anonymous", "openapi": "anonymous", "static": "anonymous"}
PRINCIPALS = ("anonymous", "patient", "admin", "clinician", "front-desk", "api")
SAMPLE = 1  # inputs per (route, principal that does not own it) in the default run
OWNED = 24  # inputs per (route, the principal that owns it) in the default run


@dataclass
class Tally:
    tried: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


@dataclass
class World:
    """The app with one of everything, and a client per principal."""

    app: Flask
    clients: dict[str, FlaskClient]
    tokens: dict[str, str]
    args: dict[str, dict[str, str]]  # endpoint -> valid path arguments
    headers: dict[str, str]
    resources: dict[str, dict[str, Any]]  # endpoint -> a valid body to bend out of shape


# --- the world -----------------------------------------------------------------------------------


@pytest.fixture
def world(make_app: AppFactory, tmp_path: Path) -> World:
    unlimited = "100000 per minute"
    app = make_app(INTAKE_LOGIN_RATE_LIMIT=unlimited, INTAKE_LOGIN_USER_RATE_LIMIT=unlimited,
                   INTAKE_LOGIN_CODE_RATE_LIMIT=unlimited, INTAKE_TOKEN_RATE_LIMIT=unlimited,
                   INTAKE_LINK_RATE_LIMIT=unlimited, INTAKE_BULK_EXPORT_MAX_JOBS_PER_CLIENT=100000)
    services(app).outbox_handlers["render_pdf"] = lambda _app, _intake_id: None
    return _build(app, tmp_path)


def _build(app: Flask, tmp_path: Path) -> World:
    smart = SmartClient("fuzz-ehr")
    smart.register(app, tmp_path / "keys", "system/*.read")
    SmartClient("victim-client").register(app, tmp_path / "keys", "system/*.read")
    headers = {"Authorization": f"Bearer {smart.token(app)}", "Prefer": "respond-async"}
    _, intake_id = complete_intake(app, HIGH_PHQ4)
    patient = app.test_client()
    link = invite_link(app, name="Fuzz Patient")
    assert patient.get(link).status_code == 302
    clients = {"anonymous": app.test_client(), "patient": patient, "api": app.test_client()}
    for role in ("admin", "clinician", "front-desk"):
        clients[role] = signed_in(app, role)
    signed_in(app, "clinician", username="victim")  # the account admin.change_user is pointed at
    tokens = {name: csrf(client.get("/staff/login").text) for name, client in clients.items()}
    with services(app).sessions() as session:
        ids = {
            rtype: session.scalars(select(FhirResource.resource_id).where(FhirResource.resource_type == rtype)).first()
            or "missing"
            for rtype in ("Patient", "QuestionnaireResponse", "DocumentReference", "Group")
        }
        open_intake = session.scalars(select(Intake.id).where(Intake.id != intake_id)).first()
        response = session.scalars(select(FhirResource.resource_json)
                                   .where(FhirResource.resource_type == "QuestionnaireResponse")).first()
    kicked = clients["api"].get("/fhir/$export", headers=headers)
    assert kicked.status_code == 202, kicked.text
    job_id = kicked.headers["Content-Location"].rsplit("/", 1)[1]
    args = {
        "fhir.read": {"resource_type": "Patient", "resource_id": ids["Patient"]},
        "fhir.search": {"resource_type": "Patient"},
        "fhir.search_post": {"resource_type": "Patient"},
        "fhir.binary": {"binary_id": ids["DocumentReference"]},
        "fhir.export_group": {"group_id": ids["Group"]},
        "fhir.export_status": {"job_id": job_id},
        "fhir.export_cancel": {"job_id": "not-this-job"},  # a real cancel would end the job the others read
        "fhir.export_file": {"job_id": job_id, "name": "Patient.ndjson"},
        "fhir.extract": {"response_id": ids["QuestionnaireResponse"]},
        "clinician.summary": {"intake_id": intake_id},
        "clinician.summary_pdf": {"intake_id": intake_id},
        "clinician.timeline": {"patient_id": ids["Patient"]},
        "front_desk.new_link": {"intake_id": intake_id},
        "front_desk.show_link": {"intake_id": intake_id},
        "front_desk.confirm_new_link": {"intake_id": str(open_intake)},
        "front_desk.contact_details": {"patient_id": ids["Patient"]},
        "front_desk.invite_again": {"patient_id": ids["Patient"]},
        "admin.change_user": {"username": "victim", "change": "disable"},
        "admin.revoke_client": {"name": "victim-client"},
        "patient.open_link": {"token": link.rsplit("/", 1)[1]},
        "patient.page": {"form_key": "stress", "page_key": "stress-phq4"},
        "patient.choose_language": {"code": "en"},
        "static": {"filename": "intake.css"},
    }
    assert open_intake is not None
    resources = {"fhir.validate_response": json.loads(response or "{}"),
                 "fhir.validate_questionnaire": services(app).catalog.by_key["stress"].resource}
    return World(app, clients, tokens, args, headers, resources)


# --- the requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    principal: str
    method: str
    rule: str
    endpoint: str
    kind: str
    where: str
    value: Any


def probes(world: World, full: bool) -> list[Probe]:
    """Every (principal, route, method, place, input) the run sends, sampled unless `full`."""
    rng = random.Random(15)
    out: list[Probe] = []
    for rule in sorted(world.app.url_map.iter_rules(), key=lambda r: r.rule):
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            places = [f"path:{name}" for name in sorted(rule.arguments)]
            places += [f"query:{name}" for name in QUERY.get(rule.endpoint, [])] + ["query:unread"]
            if method != "GET":
                places += [f"form:{name}" for name in FORMS.get(rule.endpoint, {})] + ["form:unread"]
            inputs = [(kind, place, value) for place in places for kind, value in HOSTILE]
            if method != "GET":
                inputs += [(FILE, place, None) for place in places if place.startswith("form:")]
                inputs += [(JSON_CLASS, "body", body) for body in JSON_BODIES]
            if rule.endpoint in world.resources:
                inputs += [(JSON_CLASS, "body", body)
                           for body in bent_out_of_shape(world.resources[rule.endpoint], rng, 1000 if full else 20)]
            owner = OWNER[rule.endpoint.partition(".")[0]]
            for principal in PRINCIPALS:
                chosen = inputs if full or principal == owner else rng.sample(inputs, min(SAMPLE, len(inputs)))
                if not full and principal == owner and len(chosen) > OWNED:
                    chosen = rng.sample(chosen, OWNED)
                out += [Probe(principal, method, rule.rule, rule.endpoint, k, p, v) for k, p, v in chosen]
    return out


JSON_BODIES: list[Any] = [["x"], "x", 5, None, {"resourceType": ["QuestionnaireResponse"]}, b'{"a": "\xff"}',
                          b"[" * 10_000, {"a": {"b": None}}]


WRONG_TYPES: list[Any] = [["x"], {"a": 1}, 5, 1.5, None, True, "x", [], {}, [[["x"]]], -1, 10**30, ""]


def bent_out_of_shape(resource: dict[str, Any], rng: random.Random, count: int) -> Iterator[Any]:
    """`count` copies of `resource`, each with one node (any element, at any depth) replaced by a
    value of another JSON type."""
    def walk(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        yield path
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            yield from walk(child, (*path, key))

    pairs = [
        (path, wrong) for path in walk(resource, ()) if path not in ((), ("resourceType",)) for wrong in WRONG_TYPES
    ]
    for path, wrong in rng.sample(pairs, min(count, len(pairs))):
        bent = json.loads(json.dumps(resource))
        node = bent
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = wrong
        yield bent


def _send(world: World, probe: Probe) -> Any:
    client = world.clients[probe.principal]
    args = dict(world.args.get(probe.endpoint, {}))
    query: dict[str, Any] = {}
    headers = dict(world.headers) if probe.principal == "api" else {}
    form = {k: (world.tokens[probe.principal] if v is None else v) for k, v in FORMS.get(probe.endpoint, {}).items()}
    content_type = "application/x-www-form-urlencoded"
    area, _, name = probe.where.partition(":")
    if area == "path":
        args[name] = probe.value
    elif area == "query":
        query["unread-parameter" if name == "unread" else name] = probe.value
    elif area == "form":
        key = "unread-field" if name == "unread" else name
        if probe.kind == FILE:
            form[key] = (io.BytesIO(b"file content"), "upload.txt")
            content_type = "multipart/form-data"
        else:
            form[key] = probe.value
    path = world.app.url_map.bind("localhost").build(probe.endpoint, args, method=probe.method)
    if probe.kind == JSON_CLASS:
        body = probe.value if isinstance(probe.value, bytes) else json.dumps(probe.value).encode()
        return client.open(path, method=probe.method, data=body, content_type="application/fhir+json", headers=headers)
    data = form if probe.method != "GET" else None
    return client.open(path, method=probe.method, query_string=query, data=data,
                       content_type=content_type if data is not None else None, headers=headers)


def _check(probe: Probe, response: Any, tally: Tally) -> None:
    """The response's status, and its voice: FHIR errors are OperationOutcomes, token errors OAuth JSON."""
    body = response.get_data()  # a streamed body (the audit export) runs to its end here
    tally.statuses[response.status_code] += 1
    if response.status_code >= 500:
        tally.errors.append(f"{response.status_code} {probe}")
        return
    path = response.request.path
    fhir_path = path == "/fhir" or path.startswith("/fhir/")
    if response.status_code >= 400 and fhir_path and json.loads(body).get("resourceType") != "OperationOutcome":
        tally.errors.append(f"not an OperationOutcome: {probe}")
    if response.status_code >= 400 and path == "/auth/token" and "error" not in json.loads(body):
        tally.errors.append(f"not OAuth error JSON: {probe}")


def run(world: World, full: bool) -> Tally:
    tally = Tally()
    for probe in probes(world, full):
        tally.tried[probe.kind] += 1
        try:
            response = _send(world, probe)
            _check(probe, response, tally)
            response.close()
        except Exception as exc:  # under TESTING an unhandled exception is a 500
            tally.errors.append(f"{type(exc).__name__}: {str(exc)[:200]!r} {probe}")
    try:
        flush(world.app)  # the audit rows of the refused reads are written too
    except Exception as exc:
        tally.errors.append(f"audit queue: {type(exc).__name__}: {str(exc)[:200]!r}")
    return tally


# --- tests ---------------------------------------------------------------------------------------


def test_every_route_has_an_owner_and_its_path_arguments(world: World) -> None:
    for rule in world.app.url_map.iter_rules():
        assert rule.endpoint.partition(".")[0] in OWNER, rule.endpoint
        assert set(rule.arguments) <= set(world.args.get(rule.endpoint, {})), rule.endpoint


def _report(label: str, tally: Tally, seconds: float) -> None:
    total = sum(tally.tried.values())
    print(f"\n{label}: hostile inputs tried: {total}, server errors: {len(tally.errors)} in {seconds:.1f} s; "
          + ", ".join(f"{kind}: {n}" for kind, n in sorted(tally.tried.items()))
          + "; responses " + ", ".join(f"{code}: {n}" for code, n in sorted(tally.statuses.items())))


def test_finding_7_hostile_input_on_every_route_never_causes_a_server_error(world: World) -> None:
    began = time.perf_counter()
    tally = run(world, full=False)
    _report("every route (sample)", tally, time.perf_counter() - began)
    assert not tally.errors, "\n".join(tally.errors[:40])
    assert sum(tally.tried.values()) >= 1000
    assert set(tally.tried) == {*CLASSES, FILE, JSON_CLASS}


@pytest.mark.long
def test_finding_7_every_hostile_input_on_every_route_as_everyone(world: World) -> None:
    began = time.perf_counter()
    tally = run(world, full=True)
    _report("every route, every input, every principal", tally, time.perf_counter() - began)
    assert not tally.errors, "\n".join(tally.errors[:40])
