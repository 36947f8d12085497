"""The OpenAPI description (intake/web/openapi.json) is valid OpenAPI 3.1, matches the routes and
the search tables exactly, is served at /openapi.json, and the API answers as it says.

The last is schemathesis, in-process over WSGI, with a SMART access token, on a database with a
completed intake, a Group and export jobs: for every operation, cases generated to fit the
description (positive), cases generated to break it (negative), and cases aimed at the stored
data (the ids that exist, a real QuestionnaireResponse for $validate). Each answer must not be a
server error and must conform: a documented status, content type and headers, and a body that
fits its schema. The app re-raises exceptions under TESTING, so a crash fails the test too.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from intake.fhir.search import INCLUDES, RESULT_PARAMETERS, SEARCH_PARAMETERS, sort_keys
from intake.web.fhir_api import READ_TYPES
from intake.web.openapi import SPEC_FILE
from tests.conftest import AppFactory
from tests.smart_client import SmartClient, token_endpoint
from tests.support.sizes import full_size
from tests.web.flow import EMERGENCY, HIGH_PHQ4, complete_intake
from tests.web.test_fhir_api import new_token, patient_of

SPEC: dict[str, Any] = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
DESCRIBED_BLUEPRINTS = {"fhir", "auth_api", "openapi"}  # the JSON endpoints; the rest are HTML pages
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # Flask adds them to every rule
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
# Examples per operation: full size under the `ci` Hypothesis profile (`make test-long`, CI), a
# sample under `dev` (`make test`); tests/support/sizes.py.
FULL_EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 12, "known": 6}
EXAMPLES = FULL_EXAMPLES if full_size() else {GenerationMode.POSITIVE: 4, GenerationMode.NEGATIVE: 4, "known": 3}


# --- the description itself ----------------------------------------------------------------------


def test_the_description_is_valid_openapi_3_1() -> None:
    assert SPEC["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(json.loads(json.dumps(SPEC))).validate()  # the OpenAPI 3.1 meta-schema


def test_validation_would_catch_a_broken_description() -> None:
    """The check above can fail: a parameter in a place OpenAPI has no such place for is refused."""
    broken = json.loads(json.dumps(SPEC))
    broken["paths"]["/fhir/metadata"]["get"]["parameters"].append({"name": "x", "in": "body", "schema": {}})
    with pytest.raises(Exception, match="body"):
        schemathesis.openapi.from_dict(broken).validate()


def _described() -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in SPEC["paths"].items() for method in item if method in HTTP_METHODS}


def _routed(app: Flask) -> set[tuple[str, str]]:
    """(OpenAPI path, method) for every rule of the described blueprints: `<x>` becomes `{x}`,
    and `{resource_type}` is spelled out for each type the API serves (what the description
    lists, one path per type, with that type's search parameters)."""
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in DESCRIBED_BLUEPRINTS:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        paths = [path.replace("{resource_type}", t) for t in READ_TYPES] if "{resource_type}" in path else [path]
        routed |= {(p, m) for p in paths for m in (rule.methods or set()) - IGNORED_METHODS}
    return routed


def test_every_api_route_is_described_and_every_described_path_is_a_route(app: Flask) -> None:
    routed, described = _routed(app), _described()
    assert routed == described, (f"routes not described: {sorted(routed - described)}; "
                                 f"described, not routed: {sorted(described - routed)}")
    assert ("/fhir/Patient/{resource_id}", "GET") in routed and ("/auth/token", "POST") in routed


def _parameters(operation: dict[str, Any]) -> set[str]:
    names = set()
    for parameter in operation.get("parameters", []):
        if "$ref" in parameter:
            parameter = SPEC["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
        if parameter["in"] == "query":
            names.add(parameter["name"])
    return names


@pytest.mark.parametrize("resource_type", READ_TYPES)
def test_each_search_lists_exactly_the_parameters_the_server_takes(resource_type: str) -> None:
    table = SEARCH_PARAMETERS[resource_type]
    expected = set(table) | RESULT_PARAMETERS | {f"{name}:{modifier}" for name, p in table.items()
                                                 if p.kind == "string" for modifier in ("exact", "contains")}
    expected |= {"_sort"} if sort_keys(resource_type) else set()
    expected |= {"_include"} if resource_type in INCLUDES else set()
    get = SPEC["paths"][f"/fhir/{resource_type}"]["get"]
    post = SPEC["paths"][f"/fhir/{resource_type}/_search"]["post"]
    form = post["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["properties"]
    assert _parameters(get) == expected
    assert set(form) == expected


def test_the_description_is_served_to_anyone(app: Flask) -> None:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.json == SPEC


# --- schemathesis against the running API ---------------------------------------------------------


@pytest.fixture
def api_app(make_app: AppFactory) -> Flask:
    """The FHIR test app, with a token rate limit high enough for the generated token requests
    to reach the token logic (at the default 60 a minute most would be 429s), and a bulk-export
    bound high enough for the generated kick-offs (the bound's 429 is described and has its own tests)."""
    return make_app(INTAKE_TOKEN_RATE_LIMIT="100000 per minute", INTAKE_BULK_EXPORT_MAX_JOBS_PER_CLIENT=100000)


def _stored(app: Flask) -> dict[str, Any]:
    """Two completed intakes, a Group, two finished export jobs, and a token; the ids to aim at."""
    _client, intake_id = complete_intake(app, {**EMERGENCY, **HIGH_PHQ4})
    complete_intake(app, {}, birth_date="1985-02-03")
    patient_id = patient_of(app, intake_id)
    assert app.test_cli_runner().invoke(args=["intake", "group", "clinic", "--name", "Clinic",
                                              "--patient", patient_id]).exit_code == 0
    token = new_token(app)
    client, headers = app.test_client(), {"Authorization": f"Bearer {token}", "Prefer": "respond-async"}

    def first(resource_type: str) -> dict[str, Any]:
        bundle = client.get(f"/fhir/{resource_type}", headers=headers).json
        return bundle["entry"][0]["resource"]

    jobs = [client.get("/fhir/$export?_type=Patient", headers=headers).headers["Content-Location"].rsplit("/", 1)[1]
            for _ in range(2)]
    return {"token": token, "ids": {t: first(t)["id"] for t in READ_TYPES}, "qr": first("QuestionnaireResponse"),
            "document": first("DocumentReference")["id"], "job": jobs[0], "cancel": jobs[1]}


def _aimed(path: str, method: str, stored: dict[str, Any]) -> dict[str, Any]:
    """as_strategy arguments that point a case at stored data ({} when there is nothing to aim)."""
    ids = stored["ids"]
    match = re.fullmatch(r"/fhir/(\w+)/\{resource_id\}", path)
    if match:
        return {"path_parameters": {"resource_id": ids[match.group(1)]}}
    if path == "/fhir/Binary/{binary_id}":
        return {"path_parameters": {"binary_id": stored["document"]}}
    if path.endswith("{response_id}/$extract"):
        return {"path_parameters": {"response_id": ids["QuestionnaireResponse"]}}
    if path == "/fhir/Group/{group_id}/$export":
        return {"path_parameters": {"group_id": "clinic"}}
    if path == "/fhir/$export-status/{job_id}":
        return {"path_parameters": {"job_id": stored["cancel" if method == "DELETE" else "job"]}}
    if path == "/fhir/$export-file/{job_id}/{name}":
        return {"path_parameters": {"job_id": stored["job"], "name": "Patient.ndjson"}}
    if path == "/fhir/QuestionnaireResponse/$validate":
        return {"body": stored["qr"], "media_type": "application/fhir+json"}
    return {}


class BufferedClient(FlaskClient):
    """A test client that reads each response whole and closes it. Schemathesis' WSGI transport
    (4.32) reads the body but never closes the response, which leaks the file of a send_file
    answer (the NDJSON export files): a ResourceWarning, an error in this suite."""

    def open(self, *args: Any, buffered: bool = False, **kwargs: Any) -> Any:
        return super().open(*args, buffered=True, **kwargs)


# Aimed at stored data, these must get their 2xx at least once (so the token works and reads hit).
MUST_SUCCEED = re.compile(
    r"^/fhir/(\w+/\{resource_id\}|Binary/|QuestionnaireResponse/(\{response_id\}/\$extract|\$validate)"
    r"|Group/\{group_id\}/\$export|\$export-status/|\$export-file/)"
)


@pytest.mark.sized
def test_the_api_answers_as_its_description_says(api_app: Flask) -> None:
    stored = _stored(api_app)
    auth = {"Authorization": f"Bearer {stored['token']}"}
    client = BufferedClient(api_app, api_app.response_class)
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(SPEC)))
    statuses: dict[tuple[str, str, str], Counter[int]] = {}
    started, calls = time.perf_counter(), 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(_described())
    # DELETE cancels the job its aimed cases name: run it after the GETs of that job.
    for operation in sorted(operations, key=lambda o: o.method.upper() == "DELETE"):
        path, method = operation.path, operation.method.upper()
        aimed = _aimed(path, method, stored)
        variants: list[tuple[str, Any, int]] = [
            (
                "positive",
                operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                EXAMPLES[GenerationMode.POSITIVE],
            )
        ]
        described = SPEC["paths"][path][method.lower()]
        if described.get("parameters") or described.get("requestBody"):  # else there is nothing to break
            variants.append(("negative", operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
                             EXAMPLES[GenerationMode.NEGATIVE]))
        if aimed:
            variants.append(("known", operation.as_strategy(generation_mode=GenerationMode.POSITIVE, **aimed),
                             EXAMPLES["known"]))
        for variant, strategy, examples in variants:
            seen = statuses.setdefault((method, path, variant), Counter())

            @settings(max_examples=examples, deadline=None, derandomize=True, database=None, print_blob=False,
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def call(case: schemathesis.Case) -> None:
                response = case.call(app=api_app, session=client, headers=auth)
                seen[response.status_code] += 1  # noqa: B023 (called at once, in this iteration)
                case.validate_response(response, checks=CHECKS, headers=auth)

            call()
            calls += sum(seen.values())
    failures = [
        f"{method} {path} aimed at stored data: {dict(seen)}"
        for (method, path, variant), seen in statuses.items()
        if variant == "known" and MUST_SUCCEED.match(path) and not any(200 <= s < 300 for s in seen)
    ]
    assert not failures, "\n".join(failures)
    print(f"\nschemathesis: {calls} calls over {len(operations)} operations in {time.perf_counter() - started:.1f} s")


def test_a_real_token_request_is_answered_as_described(api_app: Flask) -> None:
    """Generated cases cannot sign an assertion, so the token endpoint's success path gets one
    real request, checked against the description like the rest."""
    client = SmartClient("described")
    client.register(api_app, Path(api_app.instance_path), "system/*.read")
    operation = schemathesis.openapi.from_dict(json.loads(json.dumps(SPEC)))["/auth/token"]["POST"]
    case = operation.Case(body=client.token_form(token_endpoint(api_app)),
                          media_type="application/x-www-form-urlencoded")
    response = case.call(app=api_app, session=BufferedClient(api_app, api_app.response_class))
    assert response.status_code == 200, response.text
    case.validate_response(response, checks=CHECKS)
