"""The FHIR R4 API: metadata, auth, read, search and paging, errors as OperationOutcome,
$validate, $extract; every resource it returns passes fhir.resources and fhircheck."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake import close_app, create_app
from intake.core.fhir_models import resource_errors
from intake.services import services
from intake.storage.models import FhirResource, Intake, Patient
from tests.conftest import AppFactory, app_config, truncate_all_tables
from tests.fhircheck import fhircheck
from tests.smart_client import SmartClient
from tests.support import snapshot
from tests.web.flow import EMERGENCY, HIGH_PHQ4, STAFF, complete_intake, signed_in

FHIR_JSON = "application/fhir+json"


@pytest.fixture
def api_app(make_app: AppFactory) -> Flask:
    return make_app()


def new_token(app: Flask, name: str = "ehr", scopes: tuple[str, ...] = ("system/*.read",),
              base_url: str = "http://localhost") -> str:
    """Register a SMART Backend Services client NAME and return an access token for it."""
    client = SmartClient(name)
    client.register(app, Path(app.instance_path), *scopes)
    return client.token(app, " ".join(scopes), base_url=base_url)


class Api:
    """A test client that sends the bearer token and parses FHIR JSON answers."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def post(self, path: str, body: Any, content_type: str = FHIR_JSON) -> Any:
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return self.client.post(path, data=data, content_type=content_type, headers=self.headers)

    def json(self, path: str, status: int = 200) -> dict[str, Any]:
        response = self.get(path)
        assert response.status_code == status, response.text
        assert response.content_type.startswith(FHIR_JSON)
        return json.loads(response.data)


@pytest.fixture
def api(api_app: Flask) -> Api:
    return Api(api_app.test_client(), new_token(api_app))


@pytest.fixture(scope="module")
def two_intakes_made(server_database_url: str | None, request: pytest.FixtureRequest,
                     tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[str, str], snapshot.Snapshot]:
    """Two completed intakes made over HTTP once per module (a dozen seconds of requests), as rows."""
    folder = tmp_path_factory.mktemp("two-intakes")
    if server_database_url is None:
        url = f"sqlite:///{folder / 'intake.db'}"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), folder / "intake.db")
    else:
        url = server_database_url
        truncate_all_tables(url)
    # The second intake two seconds later on the app's clock: `authored` has whole seconds, and
    # both intakes are often made within one of them, so the sort tests could not see the order.
    later = [timedelta(0)]
    app = create_app(app_config(url, folder / "i"), clock=lambda: datetime.now(UTC) + later[0])  # module scope
    try:
        _client, flagged = complete_intake(app, {**EMERGENCY, **HIGH_PHQ4})
        later[0] = timedelta(seconds=2)
        _client, plain = complete_intake(app, {}, birth_date="1985-02-03")
        return (flagged, plain), snapshot.take(url)
    finally:
        close_app(app)


@pytest.fixture
def database_url(database_url: str, request: pytest.FixtureRequest) -> str:
    """This test's own database; holding the two intakes when the test asks for `two_intakes`
    (loaded before the app or a token writes anything)."""
    if "two_intakes" in request.fixturenames:
        _ids, rows = request.getfixturevalue("two_intakes_made")
        snapshot.restore(database_url, rows)
    return database_url


@pytest.fixture
def two_intakes(database_url: str, two_intakes_made: tuple[tuple[str, str], snapshot.Snapshot]) -> tuple[str, str]:
    """Two completed intakes: one with an emergency flag and a high PHQ-4, one plain (made once
    per module, their rows loaded into this test's own database by `database_url`)."""
    return two_intakes_made[0]


def patient_of(app: Flask, intake_id: str) -> str:
    with services(app).sessions() as session:
        return session.scalars(select(Intake.patient_id).where(Intake.id == intake_id)).one()


def assert_outcome(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.content_type.startswith(FHIR_JSON)
    body = json.loads(response.data)
    assert body["resourceType"] == "OperationOutcome" and not resource_errors(body)
    if code:
        assert body["issue"][0]["code"] == code
    return body


# --- metadata and access ---------------------------------------------------------------------------


def test_metadata_is_public_and_lists_exactly_what_is_served(api_app: Flask, tmp_path: Path) -> None:
    response = api_app.test_client().get("/fhir/metadata")
    statement = json.loads(response.data)
    assert response.status_code == 200 and statement["fhirVersion"] == "4.0.1"
    assert not resource_errors(statement)
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(resources) == {"Questionnaire", "QuestionnaireResponse", "Patient", "Observation", "Flag",
                              "DocumentReference", "Provenance", "Group", "Binary"}
    assert statement["rest"][0]["operation"][0]["name"] == "export"
    assert resources["Group"]["operation"][0]["definition"].endswith("/group-export")
    assert {p["name"] for p in resources["QuestionnaireResponse"]["searchParam"]} >= {
        "patient", "subject", "status", "authored", "questionnaire", "_lastUpdated"}
    assert {o["name"] for o in resources["QuestionnaireResponse"]["operation"]} == {"validate", "extract"}
    (tmp_path / "metadata.json").write_bytes(response.data)
    fhircheck(tmp_path / "metadata.json")


def test_everything_but_metadata_needs_a_valid_token(api_app: Flask, two_intakes: tuple[str, str]) -> None:
    client = api_app.test_client()
    assert_outcome(client.get("/fhir/Patient"), 401, "login")
    assert_outcome(client.get("/fhir/Patient", headers={"Authorization": "Bearer nope"}), 401, "login")
    assert_outcome(client.get("/fhir/Patient", auth=STAFF), 401, "login")  # HTTP Basic is not a way in
    token = new_token(api_app, "lab")
    assert client.get("/fhir/Patient", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # A signed-in clinician reads the FHIR JSON with their session (GET only); other roles do not.
    clinician = signed_in(api_app, "clinician")
    assert clinician.get("/fhir/Patient").status_code == 200
    assert_outcome(clinician.post("/fhir/Patient/_search", data={"name": "x"}), 401, "login")
    assert_outcome(signed_in(api_app, "front-desk").get("/fhir/Patient"), 401, "login")
    # The host a token was asked for by does not matter: its issuer is INTAKE_BASE_URL's token
    # endpoint (tests/web/test_smart.py: tokens naming another issuer are refused).
    elsewhere = new_token(api_app, "other", base_url="http://elsewhere.example")
    assert client.get("/fhir/Patient", headers={"Authorization": f"Bearer {elsewhere}"}).status_code == 200


# --- read ------------------------------------------------------------------------------------------


def test_read_serves_the_stored_json_with_etag_and_version(
    api_app: Flask, api: Api, two_intakes: tuple[str, str]
) -> None:
    with services(api_app).sessions() as session:
        rows = list(
            session.execute(select(FhirResource.resource_type, FhirResource.resource_id, FhirResource.resource_json))
        )
    assert {t for t, _i, _j in rows} == {"Patient", "QuestionnaireResponse", "Observation", "Flag", "Provenance",
                                        "DocumentReference"}  # the PDF, rendered by the (eager) job
    for rtype, rid, stored in rows:
        response = api.get(f"/fhir/{rtype}/{rid}")
        assert response.status_code == 200 and response.data == stored.encode()
        body = json.loads(response.data)
        assert response.headers["ETag"] == f'W/"{body["meta"]["versionId"]}"' and "Last-Modified" in response.headers
        assert not resource_errors(body), (rtype, resource_errors(body))
        again = api.get(f"/fhir/{rtype}/{rid}", headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304


def test_questionnaires_are_read_and_searched_from_the_loaded_forms(api: Api) -> None:
    stress = "https://intake.example.org/fhir/Questionnaire/stress"
    bundle = api.json(f"/fhir/Questionnaire?url={stress}")
    # Every loaded version: the current one and the earlier ones kept for intakes pinned to them.
    loaded = services(api.client.application).catalog
    archived = {f.version for f in loaded.versions if f.url == stress}
    assert bundle["total"] == len(archived) >= 2
    versions = {e["resource"]["version"]: e["resource"] for e in bundle["entry"]}
    current = loaded.by_key["stress"].version
    assert current in versions and set(versions) == archived
    questionnaire = versions[current]
    assert questionnaire["url"] == stress and questionnaire["id"] == f"stress-{current}"
    assert api.json(f"/fhir/Questionnaire/{questionnaire['id']}")["item"] == questionnaire["item"]
    earlier = min(v for v in versions if v != current)
    assert api.json(f"/fhir/Questionnaire?url={stress}&version={earlier}")["entry"][0]["resource"]["version"] == earlier
    assert api.json("/fhir/Questionnaire?status=active")["total"] == len(loaded.versions) >= 10
    assert api.json("/fhir/Questionnaire?status=retired")["total"] == 0


def test_unknown_ids_types_and_routes_are_404_outcomes(api: Api) -> None:
    assert_outcome(api.get("/fhir/Patient/does-not-exist"), 404, "not-found")
    assert_outcome(api.get("/fhir/Questionnaire/nope"), 404, "not-found")
    assert_outcome(api.get("/fhir/Medication/1"), 404, "not-supported")
    assert_outcome(api.get("/fhir/Patient/1/2/3"), 404)
    assert_outcome(api.get("/fhir/Patient/" + "x" * 500), 404)


# --- search ------------------------------------------------------------------------------------------


def test_search_by_patient_status_authored_and_questionnaire(
    api_app: Flask, api: Api, two_intakes: tuple[str, str]
) -> None:
    flagged, plain = two_intakes
    patient = patient_of(api_app, flagged)
    responses = api.json(f"/fhir/QuestionnaireResponse?patient={patient}")
    assert responses["type"] == "searchset" and responses["total"] == 5
    assert {e["resource"]["subject"]["reference"] for e in responses["entry"]} == {f"Patient/{patient}"}
    assert all(e["fullUrl"].endswith(f"/fhir/QuestionnaireResponse/{e['resource']['id']}") for e in responses["entry"])
    assert api.json(f"/fhir/QuestionnaireResponse?subject=Patient/{patient}")["total"] == 5
    assert api.json("/fhir/QuestionnaireResponse?status=completed")["total"] == 10
    assert api.json("/fhir/QuestionnaireResponse?status=in-progress")["total"] == 0
    stress = "https://intake.example.org/fhir/Questionnaire/stress"
    assert api.json(f"/fhir/QuestionnaireResponse?questionnaire={stress}")["total"] == 2
    version = responses["entry"][0]["resource"]["questionnaire"]
    assert api.json(f"/fhir/QuestionnaireResponse?questionnaire={version}")["total"] == 2
    authored = responses["entry"][0]["resource"]["authored"][:10]
    assert api.json(f"/fhir/QuestionnaireResponse?authored={authored}")["total"] == 10
    assert api.json(f"/fhir/QuestionnaireResponse?authored=lt{authored}")["total"] == 0
    assert api.json(f"/fhir/QuestionnaireResponse?authored=ge{authored}&authored=lt2999")["total"] == 10
    assert api.json(f"/fhir/QuestionnaireResponse?_lastUpdated=ge{authored[:4]}")["total"] == 10
    assert api.json(f"/fhir/QuestionnaireResponse?_lastUpdated=gt{authored[:4]}")["total"] == 0  # after that whole year
    assert api.json(f"/fhir/QuestionnaireResponse?patient={patient},{patient_of(api_app, plain)}")["total"] == 10


def test_search_patients_by_identifier_name_and_birthdate(
    api_app: Flask, api: Api, two_intakes: tuple[str, str]
) -> None:
    flagged, _plain = two_intakes
    patient = patient_of(api_app, flagged)
    system = "https://intake.example.org/fhir/sid/patient"
    assert api.json(f"/fhir/Patient?identifier={system}|{patient}")["total"] == 1
    assert api.json(f"/fhir/Patient?identifier={patient}")["total"] == 1
    assert api.json(f"/fhir/Patient?identifier=urn:other|{patient}")["total"] == 0
    assert api.json("/fhir/Patient?name=test")["total"] == 2  # "Test Patient": any word, case-insensitive prefix
    assert api.json("/fhir/Patient?name=pati")["total"] == 2
    assert api.json("/fhir/Patient?name=atien")["total"] == 0
    assert api.json("/fhir/Patient?name:contains=atien")["total"] == 2
    assert api.json("/fhir/Patient?name:exact=Test Patient")["total"] == 2
    assert api.json("/fhir/Patient?name:exact=test patient")["total"] == 0
    assert api.json("/fhir/Patient?birthdate=1960-05-01")["total"] == 1
    assert api.json("/fhir/Patient?birthdate=1960")["total"] == 1
    assert api.json("/fhir/Patient?birthdate=lt1970")["total"] == 1
    assert api.json("/fhir/Patient?birthdate=ge1970-01-01")["total"] == 1


def test_patient_names_fold_case_and_accents_and_mrn_is_searchable(api_app: Flask, api: Api) -> None:
    result = api_app.test_cli_runner().invoke(args=["intake", "invite", "--name", "José Ñúñez", "--birth-date",
                                                    "1990-01-01", "--mrn", "MRN-0042"])
    assert result.exit_code == 0, result.output
    assert api.json("/fhir/Patient?name=jose")["total"] == 1
    assert api.json("/fhir/Patient?name=NUNEZ")["total"] == 1
    found = api.json("/fhir/Patient?identifier=MRN-0042")
    assert found["total"] == 1
    assert found["entry"][0]["resource"]["identifier"][0]["type"]["coding"][0]["code"] == "MR"
    assert found["entry"][0]["resource"]["identifier"][0]["system"] == api_app.config["INTAKE_MRN_SYSTEM"]


def test_search_observations_by_code_derived_from_and_flags_by_patient(api_app: Flask, api: Api,
                                                                       two_intakes: tuple[str, str]) -> None:
    flagged, plain = two_intakes
    phq4 = api.json("/fhir/Observation?code=http://loinc.org|70272-0")
    assert phq4["total"] == 2
    values = sorted(e["resource"]["valueInteger"] for e in phq4["entry"])
    assert values[-1] == 12  # HIGH_PHQ4: every item "nearly every day"
    severe = next(e["resource"] for e in phq4["entry"] if e["resource"]["valueInteger"] == 12)
    assert severe["category"][0]["coding"][0]["code"] == "survey"
    assert severe["interpretation"][0]["coding"][0]["code"] and "Severe" in severe["interpretation"][0]["text"]
    response_ref = severe["derivedFrom"][0]["reference"]
    derived = api.json(f"/fhir/Observation?derived-from={response_ref}")
    assert {e["resource"]["id"] for e in derived["entry"]} >= {severe["id"]}
    assert api.json("/fhir/Observation?code=70272-0")["total"] == 2
    assert api.json("/fhir/Observation?code=http://snomed.info/sct|70272-0")["total"] == 0
    patient = patient_of(api_app, flagged)
    flags = api.json(f"/fhir/Flag?patient=Patient/{patient}&status=active")
    assert flags["total"] >= 1
    assert any(e["resource"]["code"]["coding"][0]["code"] == "n-rf2" for e in flags["entry"])
    other = api.json(f"/fhir/Flag?patient={patient_of(api_app, plain)}")
    assert all(e["resource"]["code"]["coding"][0]["code"] != "n-rf2" for e in other.get("entry", []))
    date = severe["effectiveDateTime"][:10]
    assert api.json(f"/fhir/Observation?patient={patient}&date={date}")["total"] == len(
        api.json(f"/fhir/Observation?patient={patient}&_count=1000")["entry"])


def test_paging_walks_every_match_once_by_next_links(api: Api, two_intakes: tuple[str, str]) -> None:
    first = api.json("/fhir/Observation?_count=3")
    total, seen = first["total"], []
    page: dict[str, Any] | None = first
    while page is not None:
        assert page["total"] == total
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert links["self"]
        page = api.json(links["next"].split("://", 1)[1].split("/", 1)[1].join(["/", ""])) if "next" in links else None
    assert len(seen) == total == len(set(seen)) and total > 6
    assert "entry" not in api.json("/fhir/Observation?_count=0")


@pytest.mark.parametrize("query, code", [
    ("/fhir/Observation?colour=blue", "invalid"),
    ("/fhir/Observation?date=yesterday", "invalid"),
    ("/fhir/Observation?date=2026-13-40", "invalid"),
    ("/fhir/Observation?date=ap2026", "invalid"),
    ("/fhir/Observation?_count=-1", "invalid"),
    ("/fhir/Observation?_count=100000", "invalid"),
    ("/fhir/Observation?_cursor=abc", "invalid"),
    ("/fhir/Observation?code:text=PHQ", "invalid"),
    ("/fhir/Observation?patient=Group/1", "invalid"),
    ("/fhir/Observation?patient=", "invalid"),
    ("/fhir/QuestionnaireResponse?status=a|b", "invalid"),
    ("/fhir/Patient?_sort=name", "invalid"),
    ("/fhir/Patient?_format=text/html", "invalid"),
])
def test_bad_search_parameters_are_400_outcomes(api: Api, query: str, code: str) -> None:
    assert_outcome(api.get(query), 400, code)


def _entries(bundle: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def _walk(api: Api, path: str) -> list[dict[str, Any]]:
    """Every page of a search by its next links: the bundles in order."""
    pages, url = [], path
    while url:
        page = api.json(url)
        pages.append(page)
        links = {link["relation"]: link["url"] for link in page["link"]}
        url = "/" + links["next"].split("://", 1)[1].split("/", 1)[1] if "next" in links else ""
    return pages


def test_sort_orders_by_a_date_both_ways_across_pages(api: Api, two_intakes: tuple[str, str]) -> None:
    """Finding 8: `_sort` on date parameters and `_lastUpdated`; pages keep the order."""
    for path, element in (("QuestionnaireResponse?_sort={}authored", "authored"),
                          ("Observation?_sort={}date", "effectiveDateTime"),
                          ("Flag?_sort={}date", "period"),
                          ("QuestionnaireResponse?_sort={}_lastUpdated", "meta")):
        for sign in ("", "-"):
            pages = _walk(api, f"/fhir/{path.format(sign)}&_count=3")
            found = [r for page in pages for r in _entries(page, "match")]
            assert len(found) == pages[0]["total"] == len({r["id"] for r in found}) > 1
            keys = [r["meta"]["lastUpdated"] if element == "meta" else
                    r["period"]["start"] if element == "period" else r[element] for r in found]
            assert keys == sorted(keys, reverse=sign == "-"), (path, sign)
    authored = [r["authored"] for r in _entries(api.json("/fhir/QuestionnaireResponse?_sort=-authored"), "match")]
    assert authored[0] > authored[-1]  # the two intakes were made one after the other: the order is visible


@pytest.mark.parametrize("query", [
    "/fhir/QuestionnaireResponse?_sort=status",  # not a date: refused, never silently unsorted
    "/fhir/QuestionnaireResponse?_sort=authored,_lastUpdated",
    "/fhir/QuestionnaireResponse?_sort=authored&_sort=-authored",
    "/fhir/QuestionnaireResponse?_sort:desc=authored",
    "/fhir/Questionnaire?_sort=date",
    "/fhir/QuestionnaireResponse?_include=QuestionnaireResponse:author",
    "/fhir/QuestionnaireResponse?_include=Observation:subject",
    "/fhir/QuestionnaireResponse?_include=*",
    "/fhir/QuestionnaireResponse?_include=QuestionnaireResponse:subject:Group",
    "/fhir/QuestionnaireResponse?_include:iterate=QuestionnaireResponse:subject",
    "/fhir/QuestionnaireResponse?_revinclude=Observation:derived-from",
    "/fhir/Patient?_include=Patient:link",
    "/fhir/Observation?category=survey&category:text=x",
])
def test_unsupported_sorts_and_includes_are_400_outcomes(api: Api, query: str) -> None:
    body = assert_outcome(api.get(query), 400, "invalid")
    assert any(word in body["issue"][0]["diagnostics"] for word in ("_sort", "_include", "_revinclude", "category"))


def test_observations_are_searched_by_category(api: Api, two_intakes: tuple[str, str]) -> None:
    everything = api.json("/fhir/Observation")["total"]
    assert everything > 6
    survey = "http://terminology.hl7.org/CodeSystem/observation-category"
    assert api.json("/fhir/Observation?category=survey")["total"] == everything
    assert api.json(f"/fhir/Observation?category={survey}|survey")["total"] == everything
    assert api.json("/fhir/Observation?category=laboratory")["total"] == 0
    assert api.json("/fhir/Observation?category=http://snomed.info/sct|survey")["total"] == 0


def test_include_adds_the_referenced_resources_once_per_page(
    api_app: Flask, api: Api, two_intakes: tuple[str, str]
) -> None:
    """Finding 8: `_include` of a response's questionnaire and subject (and an Observation's);
    included entries say `search.mode` include and do not count in `total`."""
    flagged, _plain = two_intakes
    patient = patient_of(api_app, flagged)
    bundle = api.json(f"/fhir/QuestionnaireResponse?patient={patient}&_include=QuestionnaireResponse:subject"
                      "&_include=QuestionnaireResponse:questionnaire")
    matches, extra = _entries(bundle, "match"), _entries(bundle, "include")
    assert bundle["total"] == len(matches) == 5
    assert [r["id"] for r in extra if r["resourceType"] == "Patient"] == [patient]
    pinned = {r["questionnaire"] for r in matches}
    assert {f"{q['url']}|{q['version']}" for q in extra if q["resourceType"] == "Questionnaire"} == pinned
    assert len(extra) == 1 + len(pinned)
    assert all(e["fullUrl"].endswith(f"/fhir/{e['resource']['resourceType']}/{e['resource']['id']}")
               for e in bundle["entry"])
    # The next links keep the includes: each page carries what its own matches reference.
    pages = _walk(api, f"/fhir/QuestionnaireResponse?patient={patient}&_count=2"
                       "&_include=QuestionnaireResponse:subject:Patient")
    assert len(pages) == 3 and all([r["id"] for r in _entries(p, "include")] == [patient] for p in pages)
    observations = api.json(f"/fhir/Observation?patient={patient}&_include=Observation:patient"
                            "&_include=Observation:derived-from&_count=3")
    sources = {r["derivedFrom"][0]["reference"] for r in _entries(observations, "match")}
    assert {f"{r['resourceType']}/{r['id']}" for r in _entries(observations, "include")} == {
        f"Patient/{patient}", *sources}
    # An include needs read access to what it includes.
    narrow = Api(api_app.test_client(), new_token(api_app, "qr-only", ("system/QuestionnaireResponse.read",)))
    assert_outcome(narrow.get("/fhir/QuestionnaireResponse?_include=QuestionnaireResponse:subject"), 403)
    assert narrow.get("/fhir/QuestionnaireResponse?_sort=-authored").status_code == 200


def test_metadata_names_the_token_endpoint_includes_and_sorts(api_app: Flask) -> None:
    """Finding 6: the SMART oauth-uris extension in rest.security, as fhirclient reads it."""
    api_app.config["INTAKE_BASE_URL"] = "https://intake.example.org"
    statement = json.loads(api_app.test_client().get("/fhir/metadata").data)
    security = statement["rest"][0]["security"]
    [oauth] = security["extension"]
    assert oauth["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert oauth["extension"] == [{"url": "token", "valueUri": "https://intake.example.org/auth/token"}]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    discovery = api_app.test_client().get("/.well-known/smart-configuration").json
    assert discovery["token_endpoint"] == oauth["extension"][0]["valueUri"]
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert resources["QuestionnaireResponse"]["searchInclude"] == [
        "QuestionnaireResponse:questionnaire", "QuestionnaireResponse:patient", "QuestionnaireResponse:subject"]
    assert "Observation:subject" in resources["Observation"]["searchInclude"]
    assert "searchInclude" not in resources["Patient"]
    observation = {p["name"]: p for p in resources["Observation"]["searchParam"]}
    assert "category" in observation and "_sort=-date" in observation["date"]["documentation"]


def test_questionnaire_reads_are_conditional(api: Api) -> None:
    """Finding 7: ETag (weak, the version), Last-Modified (the Questionnaire's date), and 304 for
    a current copy by If-None-Match or If-Modified-Since."""
    bundle = api.json("/fhir/Questionnaire?_count=1")
    questionnaire = bundle["entry"][0]["resource"]
    path = f"/fhir/Questionnaire/{questionnaire['id']}"
    first = api.get(path)
    assert first.status_code == 200 and first.headers["ETag"] == f'W/"{questionnaire["meta"]["versionId"]}"'
    changed = parsedate_to_datetime(first.headers["Last-Modified"])
    assert changed == datetime.fromisoformat(questionnaire["date"][:10]).replace(tzinfo=UTC)
    for headers in ({"If-None-Match": first.headers["ETag"]}, {"If-None-Match": f'W/"0", {first.headers["ETag"]}'},
                    {"If-None-Match": "*"}, {"If-Modified-Since": first.headers["Last-Modified"]},
                    {"If-Modified-Since": format_datetime(changed + timedelta(days=1), usegmt=True)}):
        again = api.get(path, headers=headers)
        assert again.status_code == 304 and not again.data, headers
        assert again.headers["ETag"] == first.headers["ETag"]
    for headers in ({"If-None-Match": 'W/"0"'}, {"If-Modified-Since": format_datetime(changed - timedelta(seconds=1),
                                                                                     usegmt=True)},
                    {"If-None-Match": 'W/"0"', "If-Modified-Since": first.headers["Last-Modified"]},
                    {"If-Modified-Since": "not a date"}):
        assert api.get(path, headers=headers).status_code == 200, headers


def test_stored_reads_answer_if_modified_since(api: Api, two_intakes: tuple[str, str]) -> None:
    patient = api.json("/fhir/Patient?_count=1")["entry"][0]["resource"]
    first = api.get(f"/fhir/Patient/{patient['id']}")
    modified = first.headers["Last-Modified"]
    assert api.get(f"/fhir/Patient/{patient['id']}", headers={"If-Modified-Since": modified}).status_code == 304
    earlier = format_datetime(parsedate_to_datetime(modified) - timedelta(seconds=1), usegmt=True)
    assert api.get(f"/fhir/Patient/{patient['id']}", headers={"If-Modified-Since": earlier}).status_code == 200


def test_format_is_honoured(api: Api) -> None:
    assert api.get("/fhir/Patient?_format=json").content_type.startswith("application/json")
    assert api.get("/fhir/Patient?_format=application/fhir+json").content_type.startswith(FHIR_JSON)
    assert_outcome(api.get("/fhir/Patient?_format=xml"), 406, "not-supported")
    assert_outcome(api.get("/fhir/Patient", headers={"Accept": "application/fhir+xml"}), 406)


# --- $validate -------------------------------------------------------------------------------------


def test_validate_returns_the_engines_outcome(api: Api, two_intakes: tuple[str, str]) -> None:
    stored = api.json("/fhir/QuestionnaireResponse?_count=1")["entry"][0]["resource"]
    ok = assert_outcome(api.post("/fhir/QuestionnaireResponse/$validate", stored), 200)
    assert ok["issue"][0]["severity"] == "information"
    broken = json.loads(json.dumps(stored))
    broken["item"][0]["linkId"] = "no-such-item"
    bad = assert_outcome(
        api.post(
            "/fhir/QuestionnaireResponse/$validate",
            {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": broken}]},
        ),
        200,
    )
    assert any(i["severity"] == "error" for i in bad["issue"])
    unknown = assert_outcome(
        api.post("/fhir/QuestionnaireResponse/$validate", {**stored, "questionnaire": "urn:x"}), 200
    )
    assert unknown["issue"][0]["code"] == "not-found"
    assert_outcome(api.post("/fhir/QuestionnaireResponse/$validate", "{not json"), 400, "structure")
    assert_outcome(api.post("/fhir/QuestionnaireResponse/$validate", {"resourceType": "Patient"}), 400, "invalid")
    assert_outcome(api.post("/fhir/QuestionnaireResponse/$validate", stored, content_type="text/plain"), 415)
    assert_outcome(api.post("/fhir/QuestionnaireResponse/$validate", "x" * (3 * 1024 * 1024)), 413)


def test_questionnaire_validate_lints(api: Api) -> None:
    questionnaire = api.json("/fhir/Questionnaire?_count=1")["entry"][0]["resource"]
    assert (
        assert_outcome(api.post("/fhir/Questionnaire/$validate", questionnaire), 200)["issue"][0]["severity"]
        == "information"
    )
    questionnaire["item"][0]["type"] = "colour"
    result = assert_outcome(api.post("/fhir/Questionnaire/$validate", questionnaire), 200)
    assert any(i["severity"] == "error" for i in result["issue"])


# --- $extract and the independent checker ------------------------------------------------------------


def test_extract_is_an_idempotent_transaction_bundle(api_app: Flask, api: Api, two_intakes: tuple[str, str]) -> None:
    flagged, _plain = two_intakes
    patient = patient_of(api_app, flagged)
    stress = next(e["resource"] for e in api.json(f"/fhir/QuestionnaireResponse?patient={patient}")["entry"]
                  if "/stress|" in e["resource"]["questionnaire"])
    bundle = api.json(f"/fhir/QuestionnaireResponse/{stress['id']}/$extract")
    assert bundle["type"] == "transaction" and not resource_errors(bundle)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds[:2] == ["Patient", "QuestionnaireResponse"] and "Observation" in kinds and kinds[-1] == "Provenance"
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    assert all(u.startswith("urn:uuid:") for u in full_urls)
    for entry in bundle["entry"]:
        request = entry["request"]
        kind = entry["resource"]["resourceType"]
        if kind == "Provenance":  # no identifier in R4: a conditional create on its stable tag, never a PUT
            assert request["method"] == "POST" and request["ifNoneExist"].startswith("_tag=")
            assert entry["resource"]["meta"]["tag"]
        elif kind == "Patient":  # the EHR's record: created once, never overwritten
            assert request["method"] == "POST" and request["ifNoneExist"].startswith("identifier=")
        else:  # the current version replaces the EHR's
            assert request["method"] == "PUT" and request["url"].startswith(f"{kind}?identifier=")
    references = [r for r in _references(bundle) if r.startswith("urn:uuid:")]
    assert references and set(references) <= full_urls  # every internal reference resolves in the Bundle
    assert not [r for r in _references(bundle) if r.startswith(("Patient/", "QuestionnaireResponse/"))]
    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert {o["code"]["text"] for o in observations} >= {"PHQ-4 total score", "PSS-10 total score"}
    again = api.get(f"/fhir/QuestionnaireResponse/{stress['id']}/$extract")
    assert json.loads(again.data) == bundle  # deterministic: the same data gives the same Bundle
    post = api.client.post(f"/fhir/QuestionnaireResponse/{stress['id']}/$extract", headers=api.headers)
    assert json.loads(post.data) == bundle
    assert_outcome(api.get("/fhir/QuestionnaireResponse/nope/$extract"), 404)
    assert_outcome(api.get(f"/fhir/QuestionnaireResponse/{stress['id']}/$extract?document=maybe"), 400)


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


def test_everything_the_api_returns_passes_fhircheck(api_app: Flask, api: Api, two_intakes: tuple[str, str],
                                                     tmp_path: Path) -> None:
    out = tmp_path / "api"
    out.mkdir()
    for rtype in ("Patient", "QuestionnaireResponse", "Observation", "Flag", "Provenance", "Questionnaire"):
        bundle = api.get(f"/fhir/{rtype}?_count=2")
        (out / f"search-{rtype}.json").write_bytes(bundle.data)
        for entry in json.loads(bundle.data)["entry"]:
            read = api.get(f"/fhir/{rtype}/{entry['resource']['id']}")
            (out / f"read-{rtype}-{entry['resource']['id']}.json").write_bytes(read.data)
    for name, query in (("include-qr", "QuestionnaireResponse?_include=QuestionnaireResponse:subject"
                                        "&_include=QuestionnaireResponse:questionnaire&_sort=-authored&_count=3"),
                        ("include-obs", "Observation?category=survey&_include=Observation:derived-from&_count=2")):
        (out / f"search-{name}.json").write_bytes(api.get(f"/fhir/{query}").data)
    for entry in api.json("/fhir/QuestionnaireResponse?_count=10")["entry"]:
        extracted = api.get(f"/fhir/QuestionnaireResponse/{entry['resource']['id']}/$extract")
        (out / f"extract-{entry['resource']['id']}.json").write_bytes(extracted.data)
    with services(api_app).sessions() as session:
        assert session.scalars(select(Patient)).all()
    report = fhircheck(out)
    assert "0 failed" in report


@pytest.mark.parametrize("path, status", [
    ("/fhir/Patient/%00", 400),  # the input guard: a control character in the path
    ("/fhir/Patient/a%20b", 404),
    ("/fhir/Patient?name=%00", 400),
    ("/fhir/Patient?identifier=a%00b", 400),
    ("/fhir/QuestionnaireResponse?questionnaire=%0a", 400),
    ("/fhir/Observation?code=" + "x" * 5000, 400),
    ("/fhir/Observation?derived-from=QuestionnaireResponse/%00", 400),
    ("/fhir/QuestionnaireResponse/%00/$extract", 400),  # the input guard: a control character in the path
    ("/fhir/Binary/%00", 400),  # the input guard: a control character in the path
    ("/fhir/Group/%00/$export", 400),  # the input guard: a control character in the path
    ("/fhir/$export-status/%00", 400),  # the input guard: a control character in the path
])
def test_hostile_ids_and_values_are_refused_before_any_query(api: Api, path: str, status: int) -> None:
    assert_outcome(api.get(path, headers={"Prefer": "respond-async"}), status)


def test_hostile_search_body_is_refused(api: Api) -> None:
    response = api.client.post("/fhir/Patient/_search", data={"name": "a\x00b"}, headers=api.headers)
    assert_outcome(response, 400, "invalid")
    ok = api.client.post("/fhir/Patient/_search", data={"name": "nobody"}, headers=api.headers)
    assert ok.status_code == 200 and json.loads(ok.data)["total"] == 0


STRESS = "https://intake.example.org/fhir/Questionnaire/stress|1.1.0"
HOSTILE_BODIES: list[Any] = [
    "[" * 100_000 + "]" * 100_000,
    '{"resourceType":"QuestionnaireResponse","questionnaire":' + "[" * 500 + "]" * 500 + "}",
    {"resourceType": "QuestionnaireResponse", "questionnaire": STRESS, "status": "completed", "item": "x"},
    {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": STRESS,
        "status": "completed",
        "item": [{"linkId": 5, "answer": "y"}],
    },
    {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": STRESS,
        "status": "completed",
        "item": [{"linkId": "pss10-1", "answer": [{"valueCoding": "x"}]}],
    },
    {"resourceType": "QuestionnaireResponse", "questionnaire": ["a"]},
    {"resourceType": "Questionnaire", "item": "x"},
    {"resourceType": "Questionnaire", "item": [{"linkId": None, "type": None}]},
    {
        "resourceType": "Questionnaire",
        "item": [{"linkId": "a", "type": "choice", "answerOption": "x", "enableWhen": [{"question": "b"}]}],
    },
    {"resourceType": "Parameters", "parameter": "x"},
    {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": "x"}]},
    None,
    5,
    "text",
    [1, 2],
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
@pytest.mark.parametrize("path", ["/fhir/QuestionnaireResponse/$validate", "/fhir/Questionnaire/$validate"])
def test_hostile_validate_bodies_get_an_outcome_never_a_500(api: Api, path: str, body: Any) -> None:
    data = body if isinstance(body, str) and body[:1] in "[{" else json.dumps(body)
    response = api.post(path, data)
    assert response.status_code in (200, 400), response.text[:300]
    assert json.loads(response.data)["resourceType"] == "OperationOutcome"
