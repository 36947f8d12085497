"""Issue 15, finding 7: hostile input the independent review turned into 500s, each now a 400 in
the route's own voice (an OperationOutcome under /fhir, OAuth JSON at /auth/token, an error page
elsewhere). tests/web/test_fuzz_routes.py sends the same classes of input to every route."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from intake.core.numbers import INT32_MAX, whole_number
from intake.services import services
from intake.storage.models import AuditRecord, FhirResource, Patient
from intake.web.auditing import flush
from tests.conftest import AppFactory
from tests.smart_client import SmartClient
from tests.web.conftest import csrf
from tests.web.flow import HIGH_PHQ4, complete_intake, signed_in

FHIR_JSON = "application/fhir+json"


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    app = make_app()
    services(app).outbox_handlers["render_pdf"] = lambda _app, _intake_id: None
    return app


@pytest.fixture
def api(app: Flask, tmp_path: Path) -> FlaskClient:
    """A client that sends an access token (system/*.read) with every request."""
    smart = SmartClient("ehr")
    smart.register(app, tmp_path / "keys", "system/*.read")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {smart.token(app)}"
    return client


def outcome(response: Any, status: int = 400) -> str:
    """The diagnostics of a one-issue OperationOutcome answer with `status`, code invalid or value."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.content_type.startswith(FHIR_JSON)
    issue = response.json["issue"][0]
    assert response.json["resourceType"] == "OperationOutcome" and issue["code"] in ("invalid", "value"), issue
    return str(issue["diagnostics"])


# --- dates out of the datetime range --------------------------------------------------------------

OUT_OF_RANGE = ["9999", "9999-12-31", "le9999-12-31", "gt9999-12", "0001-01-01T00:00+05:00",
                "9999-12-31T23:59:59.999999-14:00", "sa9999-12-31"]
NOT_REAL = ["2026-02-30", "2016-12-31T23:59:60Z", "0000-01-01", "99999-01-01", "２０２６-01-01", "2026-1-1"]


def test_finding_7_search_dates_out_of_the_datetime_range_are_400(api: FlaskClient) -> None:
    for value in OUT_OF_RANGE:
        for path in (f"/fhir/Patient?_lastUpdated={value}", f"/fhir/QuestionnaireResponse?authored={value}",
                     f"/fhir/Observation?date={value}", f"/fhir/Patient?birthdate={value}"):
            assert "out of range" in outcome(api.get(path.replace("+", "%2B"))), path
    for value in NOT_REAL:
        assert "date" in outcome(api.get("/fhir/Flag", query_string={"date": value})), value
    # Values inside the range, at either end and with nanoseconds (FHIR allows nine digits), work.
    for value in ("0001", "ge0001-01-02", "lt9999-12-30", "2026-01-01T00:00:00.123456789Z", "ge0001-01-01T00:00-05:00"):
        assert api.get("/fhir/Patient", query_string={"_lastUpdated": value}).status_code == 200, value


def test_finding_7_bulk_since_out_of_the_datetime_range_is_400(api: FlaskClient) -> None:
    prefer = {"Prefer": "respond-async"}
    for value in ["9999", "9999-12-31", "0001-01-01T00:00+05:00", "10000-01-01", "2026-02-30", "٢٠٢٦"]:
        diagnostics = outcome(api.get("/fhir/$export", query_string={"_since": value}, headers=prefer))
        assert diagnostics.startswith("_since"), diagnostics
    assert api.get("/fhir/$export", query_string={"_since": "2026-01-01T00:00:00.123456789Z"},
                   headers=prefer).status_code == 202


# --- numbers: ASCII digits, bounded ---------------------------------------------------------------

BAD_NUMBERS = ["²", "٣", "３", "１０", "𝟗", "99999999999999999999999", "2147483648", "-1", "", " 1", "1.0", "+1"]


def test_finding_7_whole_numbers_are_ascii_digits_within_bounds() -> None:
    assert whole_number("0", high=10) == 0 and whole_number("0010", high=10) == 10
    assert whole_number(str(INT32_MAX), high=INT32_MAX) == INT32_MAX
    for raw in [*BAD_NUMBERS, "11", "9" * 100_000]:
        with pytest.raises(ValueError):
            whole_number(raw, high=10)


def test_finding_7_count_and_cursor_take_only_ascii_digits(api: FlaskClient) -> None:
    for value in BAD_NUMBERS:
        for path in ("/fhir/Patient", "/fhir/Questionnaire"):
            assert outcome(api.get(path, query_string={"_count": value})).startswith("_count"), value
            assert outcome(api.get(path, query_string={"_cursor": value})).startswith("_cursor"), value
    assert api.get("/fhir/Questionnaire", query_string={"_count": "2"}).json["entry"].__len__() == 2


def test_finding_7_audit_row_numbers_take_only_ascii_digits(app: Flask) -> None:
    admin = signed_in(app, "admin")
    for value in [*BAD_NUMBERS[:-4], "9999999999", str(INT32_MAX + 1)]:
        page = admin.get("/admin/audit", query_string={"before": value})
        assert page.status_code == 400, value
        assert "That page of the log does not exist" in page.text
        token = csrf(admin.get("/admin/outbox").text)
        assert admin.post("/admin/outbox/retry", data={"csrf_token": token, "row": value}).status_code == 400, value
    assert admin.get("/admin/audit", query_string={"before": str(INT32_MAX)}).status_code == 200


# --- type-confused JSON ---------------------------------------------------------------------------


def test_finding_7_validate_with_type_confused_json_is_never_a_server_error(app: Flask, api: FlaskClient) -> None:
    complete_intake(app, HIGH_PHQ4)
    with services(app).sessions() as session:
        stored = json.loads(session.scalars(select(FhirResource.resource_json)
                                            .where(FhirResource.resource_type == "QuestionnaireResponse")).first())
    route = "/fhir/QuestionnaireResponse/$validate"
    # A list (an object, a number) where FHIR has a string: 400 naming the element.
    for wrong in (["x"], {"a": 1}, 5, True):
        for name in ("status", "questionnaire", "authored"):
            diagnostics = outcome(api.post(route, data=json.dumps({**stored, name: wrong}), content_type=FHIR_JSON))
            assert diagnostics.startswith(f"$.{name}: must be a JSON string"), diagnostics
    # Deeper in the tree, the engine reports the element (the operation ran).
    deep = json.loads(json.dumps(stored))
    deep["item"][0]["linkId"] = ["x"]
    assert api.post(route, data=json.dumps(deep), content_type=FHIR_JSON).json["issue"][0]["severity"] == "error"
    # null where FHIR JSON has none: 400 naming where.
    answered = next(i for i in stored["item"] if i.get("answer") and "valueCoding" in i["answer"][0]) \
        if any(i.get("answer") and "valueCoding" in i["answer"][0] for i in stored["item"]) else None
    nulled = json.loads(json.dumps(stored))
    (answered and nulled["item"][stored["item"].index(answered)]["answer"][0].update(valueCoding=None)) \
        or nulled.update(status=None)
    assert "null" in outcome(api.post(route, data=json.dumps(nulled), content_type=FHIR_JSON))
    # Not a resource at all, or not JSON text: 400.
    for body in ([stored], '"QuestionnaireResponse"', "5", "null", {"resourceType": ["QuestionnaireResponse"]}):
        outcome(api.post(route, data=body if isinstance(body, str) else json.dumps(body), content_type=FHIR_JSON))
    for body in (b'{"resourceType": "QuestionnaireResponse", "status": "\xff"}', b"[" * 100_000):
        response = api.post(route, data=body, content_type=FHIR_JSON)
        assert response.status_code == 400 and response.json["resourceType"] == "OperationOutcome"


# --- file parts where text belongs ----------------------------------------------------------------


def _file() -> tuple[io.BytesIO, str]:
    return io.BytesIO(b"not a text field"), "field.txt"


def test_finding_7_a_form_field_sent_as_a_file_is_400_on_every_form(app: Flask) -> None:
    anonymous = app.test_client()
    token = csrf(anonymous.get("/staff/login").text)
    response = anonymous.post("/staff/login", data={"csrf_token": token, "username": _file(), "password": "x" * 12},
                              content_type="multipart/form-data")
    assert response.status_code == 400
    assert "sent as a file" in response.text
    forms = {
        "admin": ["/admin/users", "/admin/clients", "/staff/password", "/staff/two-step"],
        "front-desk": ["/front-desk/new"],
    }
    for role, paths in forms.items():
        client = signed_in(app, role)
        for path in paths:
            token = csrf(client.get(path).text)
            for name in ("username", "name", "jwks", "password", "current_password", "code", "display_name"):
                response = client.post(
                    path, data={"csrf_token": token, name: _file()}, content_type="multipart/form-data"
                )
                assert response.status_code == 400, (role, path, name)
                assert "sent as a file" in response.text
    token_reply = anonymous.post("/auth/token", data={"grant_type": _file()}, content_type="multipart/form-data")
    assert token_reply.status_code == 400 and token_reply.json["error"] == "invalid_request"


# --- NUL and other control characters, before the database ---------------------------------------


def test_finding_7_nul_in_any_field_path_or_query_is_400_before_the_database(app: Flask, api: FlaskClient) -> None:
    anonymous = app.test_client()
    token = csrf(anonymous.get("/staff/login").text)
    login = anonymous.post("/staff/login", data={"csrf_token": token, "username": "doc\x00tor", "password": "x" * 12})
    assert login.status_code == 400 and "control characters" in login.text
    desk = signed_in(app, "front-desk")
    token = csrf(desk.get("/front-desk/new").text)
    new = desk.post("/front-desk/new", data={"csrf_token": token, "name": "Ann\x00Smith", "birth_date": "1970-01-01",
                                             "appointment_day": "2026-12-31", "appointment_time": "09:00",
                                             "questionnaires": ["stress"]})
    assert new.status_code == 400 and "control characters" in new.text
    assert desk.post("/front-desk/intakes/a%00b/link", data={"csrf_token": token}).status_code == 400
    assert desk.get("/front-desk/intakes/a%00b/link").status_code == 400
    admin = signed_in(app, "admin")
    for query in ({"actor": "a\x00"}, {"entity": "Patient/\x00"}, {"actor": "\x1b[2J"}):
        assert admin.get("/admin/audit", query_string=query).status_code == 400, query
        export = admin.get("/admin/audit/AuditEvent.ndjson", query_string=query)
        assert export.status_code == 400 and "control characters" in export.text, query
    token = csrf(admin.get("/admin/users").text)
    assert admin.post("/admin/users/a%00b/disable", data={"csrf_token": token}).status_code == 400
    assert admin.post("/admin/clients/a%00b/revoke", data={"csrf_token": token}).status_code == 400
    clinician = signed_in(app, "clinician")
    assert clinician.get("/clinician/intakes/a%00b").status_code == 400
    assert clinician.get("/clinician/intakes/a%00b/screening-summary.pdf").status_code == 400
    for path in ("/fhir/Patient/a%00b", "/fhir/Patient?name=a%00b", "/fhir/$export-status/a%00b",
                 "/fhir/Patient?na%00me=x"):
        assert "control characters" in outcome(api.get(path)), path
    assert "control characters" in outcome(api.post("/fhir/Patient/_search", data={"name": "a\x00b"}))
    oauth = anonymous.post("/auth/token", data={"grant_type": "client_credentials\x00", "client_assertion": "x"})
    assert oauth.status_code == 400 and oauth.json["error"] == "invalid_request"
    flush(app)
    with services(app).sessions() as session:  # nothing hostile was written
        assert session.scalar(select(func.count()).select_from(Patient).where(Patient.name.contains("Ann"))) == 0
        assert session.scalar(select(func.count()).select_from(AuditRecord)) > 0  # refused reads are still audited


def test_finding_7_patient_pages_still_judge_their_own_fields(app: Flask) -> None:
    """The question pages refuse a NUL or a file in an answer at that question (tests/web/
    test_hostile_input.py); the guard leaves their fields to them, but not their address."""
    patient = app.test_client()
    complete = complete_intake(app, HIGH_PHQ4)[0]
    assert complete.get("/intake/review?x=%00").status_code == 400
    assert patient.get("/i/abc%00").status_code == 400
