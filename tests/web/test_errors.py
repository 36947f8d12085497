"""intake/web/errors.py: one mapping from errors to responses, by who asks. The same error gives
the same status (and FHIR issue code) on every blueprint: an OperationOutcome under /fhir, an
OAuth error under /auth, the staff error page on staff pages, the patient's error page elsewhere;
a 500 says nothing of what failed, to the client or to the log."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Blueprint, Flask, abort
from flask.testing import FlaskClient

from intake.auth.smart import TokenError
from intake.auth.staff import AccountError, UnknownUser, UserExists
from intake.core.fhir_models import resource_errors
from intake.documents import DocumentError
from intake.errors import IntakeError
from intake.fhir.search import SearchError
from intake.storage.intakes import IntakeClosed, IntakeNotFound
from intake.storage.responses import StaleResponse
from intake.web.fhir_api import FhirError
from intake.web.patient import LinkEnded
from intake.workflow import ConflictError, NotFoundError, WorkflowError
from tests.conftest import AppFactory

FHIR_JSON = "application/fhir+json"
PHI = "Jane Q. Patient, born 1970-01-01, typed: chest pain"
# Where each audience is: a test route under each prefix raises what the test names.
PREFIXES = {"fhir": "/fhir/_errors", "oauth": "/auth/_errors", "staff": "/staff/_errors", "patient": "/_errors"}

# name -> (what the route raises, status, FHIR issue code, OAuth error, message shown)
RAISED: dict[str, tuple[Callable[[], Exception], int, str, str, str]] = {
    "intake-not-found": (lambda: IntakeNotFound("abc"), 404, "not-found", "invalid_request", "Intake/abc is not known"),
    "intake-closed": (lambda: IntakeClosed("abc"), 409, "conflict", "invalid_request",
                      "Intake/abc is completed; its answers can no longer change"),
    "stale-response": (lambda: StaleResponse("abc"), 409, "conflict", "invalid_request",
                       "the answers of Intake/abc changed since they were read; read them again"),
    "workflow": (lambda: WorkflowError("a patient name is required"), 400, "invalid", "invalid_request",
                 "a patient name is required"),
    "workflow-not-found": (lambda: NotFoundError("no such intake"), 404, "not-found", "invalid_request",
                           "no such intake"),
    "workflow-conflict": (lambda: ConflictError("this intake was already submitted"), 409, "conflict",
                          "invalid_request", "this intake was already submitted"),
    "account": (lambda: AccountError("the role must be one of admin"), 400, "invalid", "invalid_request",
                "the role must be one of admin"),
    "account-exists": (lambda: UserExists("there is already a user 'nurse'"), 409, "conflict", "invalid_request",
                       "there is already a user 'nurse'"),
    "account-unknown": (lambda: UnknownUser("no user 'nurse'"), 404, "not-found", "invalid_request",
                        "no user 'nurse'"),
    "document": (lambda: DocumentError("intake abc is not completed and scored"), 409, "conflict", "invalid_request",
                 "intake abc is not completed and scored"),
    "search": (lambda: SearchError("status: unknown code 'x'"), 400, "invalid", "invalid_request",
               "status: unknown code 'x'"),
    "token": (lambda: TokenError("invalid_client", "the client is not registered", 401), 401, "login",
              "invalid_client", "the client is not registered"),
    "fhir": (lambda: FhirError(415, "not-supported", "send application/fhir+json"), 415, "not-supported",
             "invalid_request", "send application/fhir+json"),
    "link-ended": (lambda: LinkEnded("this link no longer works"), 403, "forbidden", "invalid_request",
                   "this link no longer works"),
}
# name -> (status Werkzeug raises, FHIR issue code, OAuth error): abort() anywhere, one table.
ABORTED: dict[str, tuple[int, str, str]] = {
    "bad-request": (400, "invalid", "invalid_request"),
    "unauthorized": (401, "login", "invalid_client"),
    "forbidden": (403, "forbidden", "invalid_request"),
    "not-found": (404, "not-found", "invalid_request"),
    "conflict": (409, "conflict", "invalid_request"),
    "too-many": (429, "throttled", "invalid_request"),
    "unavailable": (503, "exception", "server_error"),
}


def _raiser(name: str) -> Any:
    if name in RAISED:
        raise RAISED[name][0]()
    if name in ABORTED:
        abort(ABORTED[name][0])
    if name == "crash":
        raise RuntimeError(PHI)
    if name == "intake-5xx":
        raise IntakeError(PHI, status=502)
    abort(418)


@pytest.fixture
def errors_app(make_app: AppFactory) -> Flask:
    app = make_app()
    routes = Blueprint("errors_under_test", __name__)
    routes.add_url_rule("/<name>", "raise_", _raiser, methods=["GET", "POST"])
    for audience, prefix in PREFIXES.items():
        app.register_blueprint(routes, url_prefix=prefix, name=f"errors_{audience}")
    return app


def _get(client: FlaskClient, audience: str, name: str) -> Any:
    return client.get(f"{PREFIXES[audience]}/{name}")


def _fhir_issue(response: Any) -> dict[str, Any]:
    assert response.content_type.startswith(FHIR_JSON), response.content_type
    body = json.loads(response.data)
    assert body["resourceType"] == "OperationOutcome" and not resource_errors(body), body
    assert len(body["issue"]) == 1 and body["issue"][0]["severity"] == "error"
    issue: dict[str, Any] = body["issue"][0]
    return issue


def _oauth(response: Any) -> dict[str, Any]:
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = json.loads(response.data)
    assert set(body) == {"error", "error_description"}
    return body


def _page(response: Any, audience: str) -> str:
    assert response.content_type.startswith("text/html")
    text: str = response.get_data(as_text=True)
    staff_page = '<body class="staff">' in text
    assert staff_page == (audience == "staff"), f"not the {audience} error page"
    assert staff_page or 'class="language-switch"' in text  # the patient's page offers the other language
    return text


# --- the same error, the same status and code everywhere --------------------------------------------


@pytest.mark.parametrize("name", sorted(RAISED))
def test_an_intake_error_has_one_status_on_every_blueprint(errors_app: Flask, name: str) -> None:
    _make, status, code, oauth_error, message = RAISED[name]
    client = errors_app.test_client()
    answers = {audience: _get(client, audience, name) for audience in PREFIXES}
    assert {audience: r.status_code for audience, r in answers.items()} == dict.fromkeys(PREFIXES, status)

    issue = _fhir_issue(answers["fhir"])
    assert (issue["code"], issue["diagnostics"]) == (code, message)
    assert _oauth(answers["oauth"]) == {"error": oauth_error, "error_description": message}
    for audience in ("staff", "patient"):
        page = _page(answers[audience], audience)
        assert "error-summary" in page and message.replace("'", "&#39;") in page, audience  # the error summary


@pytest.mark.parametrize("name", sorted(ABORTED))
def test_an_http_error_has_one_status_and_code_on_every_blueprint(errors_app: Flask, name: str) -> None:
    status, code, oauth_error = ABORTED[name]
    client = errors_app.test_client()
    answers = {audience: _get(client, audience, name) for audience in PREFIXES}
    assert {audience: r.status_code for audience, r in answers.items()} == dict.fromkeys(PREFIXES, status)
    assert _fhir_issue(answers["fhir"])["code"] == code
    assert _oauth(answers["oauth"])["error"] == oauth_error
    for audience in ("staff", "patient"):
        assert "error-summary" not in _page(answers[audience], audience)  # Werkzeug's words are not shown


def test_401_is_login_wherever_it_comes_from(errors_app: Flask) -> None:
    """The FHIR API's own check, an abort(401), and a TokenError: one code, with the challenge."""
    client = errors_app.test_client()
    for response in (client.get("/fhir/Patient"), _get(client, "fhir", "unauthorized"), _get(client, "fhir", "token")):
        assert response.status_code == 401 and _fhir_issue(response)["code"] == "login"
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="Intake FHIR API"'


def test_unrouted_requests_answer_in_the_voice_of_their_path(errors_app: Flask) -> None:
    client = errors_app.test_client()
    missing = client.get("/fhir/NoSuchType/1/2/3")
    assert missing.status_code == 404 and _fhir_issue(missing)["code"] == "not-found"
    wrong_method = client.post("/fhir/metadata")
    assert wrong_method.status_code == 405 and _fhir_issue(wrong_method)["code"] == "not-supported"
    assert "GET" in wrong_method.headers["Allow"]  # Werkzeug's Allow header survives the mapping
    nowhere = client.get("/auth/nowhere")
    assert nowhere.status_code == 404 and _oauth(nowhere)["error"] == "invalid_request"
    assert "Page not found" in _page(client.get("/staff/nowhere"), "staff")
    assert "Page not found" in _page(client.get("/nowhere"), "patient")


def test_the_token_endpoint_refuses_through_the_mapping(errors_app: Flask) -> None:
    response = errors_app.test_client().post("/auth/token", data="grant_type=x", content_type="text/plain")
    assert response.status_code == 400
    assert _oauth(response) == {"error": "invalid_request",
                                "error_description": "send application/x-www-form-urlencoded"}


def test_fhir_errors_follow_the_format_asked_for(errors_app: Flask) -> None:
    response = errors_app.test_client().get("/fhir/_errors/intake-not-found?_format=json")
    assert response.status_code == 404 and response.content_type == "application/json; charset=utf-8"
    assert json.loads(response.data)["issue"][0]["code"] == "not-found"


def test_a_patients_error_page_is_in_the_patients_language(errors_app: Flask) -> None:
    client = errors_app.test_client()
    assert client.get("/language/es").status_code == 302
    assert "No se encontró la página" in _page(client.get("/nowhere"), "patient")


# --- a 500 says nothing ----------------------------------------------------------------------------------


def test_under_testing_a_500_raises_so_the_test_sees_where(errors_app: Flask) -> None:
    client = errors_app.test_client()
    with pytest.raises(RuntimeError):
        _get(client, "patient", "crash")
    with pytest.raises(IntakeError):
        _get(client, "fhir", "intake-5xx")


@pytest.mark.parametrize("name", ["crash", "intake-5xx"])
def test_a_500_leaks_nothing_on_any_blueprint(errors_app: Flask, caplog: pytest.LogCaptureFixture, name: str) -> None:
    errors_app.testing = False  # as served: the handler answers instead of raising
    status = 500 if name == "crash" else 502
    client = errors_app.test_client()
    with caplog.at_level(logging.ERROR, logger="intake.web.errors"):
        answers = {audience: _get(client, audience, name) for audience in PREFIXES}
    for audience, response in answers.items():
        text = response.get_data(as_text=True)
        assert response.status_code == status, audience
        for leak in ("Jane", "1970-01-01", "chest pain", "Traceback", "RuntimeError", "IntakeError", ".py", "_raiser"):
            assert leak not in text, (audience, leak)
    issue = _fhir_issue(answers["fhir"])
    assert (issue["code"], issue["diagnostics"]) == ("exception", "internal error; nothing was changed by this request")
    assert _oauth(answers["oauth"])["error"] == "server_error"
    assert "Sorry, there is a problem with the service" in _page(answers["patient"], "patient")
    assert "error-summary" not in _page(answers["staff"], "staff")
    # the log names what and where, for the people who fix it, and none of what the patient typed
    logged = [r.getMessage() for r in caplog.records if r.name == "intake.web.errors"]
    assert len(logged) == len(PREFIXES)
    kind = "RuntimeError" if name == "crash" else "IntakeError"
    assert all(kind in line and "_raiser" in line and PHI not in line and "Jane" not in line for line in logged), logged
