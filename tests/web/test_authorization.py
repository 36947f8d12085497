"""The authorization matrix: every route of the app (from `app.url_map`: a new route without a row
fails) x every kind of caller, each cell asserted; and patient A's session never shows patient B's
answers.

Callers: anonymous; a patient session (bound to an in-progress intake); staff signed in as admin,
clinician and front desk; a SMART client with `system/*.read`; a SMART client with only
`system/Observation.read`. Staff pages send the signed-out to the sign-in page (302); a signed-in
role without access gets 403. POSTs without a CSRF token are refused (400) before anything changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from intake.services import services
from intake.storage.models import Intake
from tests.web.conftest import csrf, invite_link
from tests.web.flow import EMERGENCY, complete_intake, page_data, signed_in
from tests.web.test_fhir_api import api_app, new_token, patient_of  # noqa: F401  (fixture)

ROLES = ("admin", "clinician", "front-desk")
ACTORS = ("anonymous", "patient", *ROLES, "system", "narrow")
PAGE = "/intake/digestive/digestive-alarm"


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(ACTORS, status)


def patient_only(status: int) -> dict[str, int]:
    return {**everyone(403), "patient": status}


def staff(status: int, *roles: str) -> dict[str, int]:
    """A staff page: `roles` get `status`, other roles 403, everyone else the sign-in redirect."""
    return {**everyone(302), **dict.fromkeys(ROLES, 403), **dict.fromkeys(roles, status)}


def fhir(status: int, narrow: int = 403, clinician: bool = True) -> dict[str, int]:
    """A FHIR route: bearer tokens by scope; a clinician's session only for GET (`clinician`)."""
    return {**everyone(401), "clinician": status if clinician else 401, "system": status, "narrow": narrow}


def own_job(status: int, clinician: int = 404) -> dict[str, int]:
    return {**everyone(401), "clinician": clinician, "narrow": 404, "system": status}


def matrix(ids: dict[str, Any]) -> dict[str, list[tuple[str, str, dict[str, Any], dict[str, int]]]]:
    """endpoint -> [(method, path, request kwargs, expected status per actor)]."""
    qr = json.dumps(ids["qr"])
    fhir_json = {"data": qr, "content_type": "application/fhir+json"}
    job, intake = ids["job"], ids["intake"]
    open_intake = ids["open_intake"]
    return {
        "patient.home": [("GET", "/", {}, everyone(200))],
        "patient.open_link": [("GET", "/i/not-a-link", {}, everyone(404))],
        "patient.start": [("GET", "/intake", {}, patient_only(200))],
        "patient.page": [("GET", PAGE, {}, patient_only(200)), ("POST", PAGE, {}, patient_only(400))],
        "patient.review": [("GET", "/intake/review", {}, patient_only(200))],
        # No emergency answer given in this session: nothing to show, back to the start page.
        "patient.urgent_help": [("GET", "/intake/help", {}, patient_only(302))],
        "patient.submit": [("POST", "/intake/submit", {}, everyone(302))],  # no CSRF token: back to review
        "patient.done": [("GET", "/intake/done", {}, patient_only(302))],  # not submitted: back to start
        # Anyone may choose a language (a session preference); unknown codes are not found.
        "patient.choose_language": [
            ("GET", "/language/es?next=/", {}, everyone(302)),
            ("GET", "/language/xx", {}, everyone(404)),
        ],
        "staff.login": [("GET", "/staff/login", {}, everyone(200)), ("POST", "/staff/login", {}, everyone(400))],
        "staff.login_code": [("GET", "/staff/login/code", {}, everyone(302))],  # no password step pending
        "staff.logout": [("POST", "/staff/logout", {}, everyone(400))],  # no CSRF token
        "staff.two_step": [("GET", "/staff/two-step", {}, staff(200, *ROLES))],
        "staff.password": [
            ("GET", "/staff/password", {}, staff(200, *ROLES)),
            ("POST", "/staff/password", {}, staff(400, *ROLES)),
        ],  # no CSRF token
        "front_desk.day": [("GET", "/front-desk/", {}, staff(200, "front-desk", "clinician"))],
        "front_desk.new_intake": [
            ("GET", "/front-desk/new", {}, staff(200, "front-desk")),
            ("POST", "/front-desk/new", {}, staff(400, "front-desk")),
        ],
        "front_desk.new_link": [("POST", f"/front-desk/intakes/{open_intake}/link", {}, staff(400, "front-desk"))],
        "front_desk.show_link": [("GET", f"/front-desk/intakes/{open_intake}/link", {}, staff(200, "front-desk"))],
        "front_desk.confirm_new_link": [
            ("GET", f"/front-desk/intakes/{open_intake}/new-link", {}, staff(200, "front-desk"))],
        "front_desk.find_patient": [("GET", "/front-desk/patients?q=test", {}, staff(200, "front-desk"))],
        "front_desk.contact_details": [
            ("GET", f"/front-desk/patients/{ids['patient']}/contact", {}, staff(200, "front-desk"))],
        "front_desk.invite_again": [
            ("GET", f"/front-desk/patients/{ids['patient']}/invite", {}, staff(200, "front-desk")),
            ("POST", f"/front-desk/patients/{ids['patient']}/invite", {}, staff(400, "front-desk")),  # no CSRF token
        ],
        "clinician.intakes": [("GET", "/clinician/", {}, staff(200, "clinician"))],
        "clinician.flags": [("GET", "/clinician/flags", {}, staff(200, "clinician"))],
        "clinician.summary": [("GET", f"/clinician/intakes/{intake}", {}, staff(200, "clinician"))],
        "clinician.summary_pdf": [
            ("GET", f"/clinician/intakes/{intake}/screening-summary.pdf", {}, staff(200, "clinician"))
        ],
        "clinician.timeline": [("GET", f"/clinician/patients/{ids['patient']}/timeline", {}, staff(200, "clinician"))],
        "admin.users": [("GET", "/admin/users", {}, staff(200, "admin"))],
        "admin.add_user": [("POST", "/admin/users", {}, staff(400, "admin"))],
        "admin.change_user": [("POST", "/admin/users/doctor/disable", {}, staff(400, "admin"))],
        "admin.clients": [("GET", "/admin/clients", {}, staff(200, "admin"))],
        "admin.add_client": [("POST", "/admin/clients", {}, staff(400, "admin"))],
        "admin.revoke_client": [("POST", "/admin/clients/narrow/revoke", {}, staff(400, "admin"))],
        "admin.audit_log": [("GET", "/admin/audit", {}, staff(200, "admin"))],
        "admin.audit_export": [("GET", "/admin/audit/AuditEvent.ndjson", {}, staff(200, "admin"))],
        "admin.outbox_rows": [("GET", "/admin/outbox", {}, staff(200, "admin"))],
        "admin.outbox_retry": [("POST", "/admin/outbox/retry", {}, staff(400, "admin"))],  # no CSRF token
        "admin.outbox_link": [("POST", "/admin/outbox/link", {}, staff(400, "admin"))],  # no CSRF token
        "auth_api.smart_configuration": [
            ("GET", "/.well-known/smart-configuration", {}, everyone(200)),
            ("GET", "/fhir/.well-known/smart-configuration", {}, everyone(200)),
        ],
        "auth_api.jwks": [("GET", "/.well-known/jwks.json", {}, everyone(200))],  # a public key, for the EHR
        "auth_api.token": [("POST", "/auth/token", {"data": {"grant_type": "client_credentials"}}, everyone(400))],
        "fhir.metadata": [("GET", "/fhir/metadata", {}, everyone(200))],
        "openapi.spec": [("GET", "/openapi.json", {}, everyone(200))],  # the API description is public
        "fhir.read": [
            ("GET", f"/fhir/Patient/{ids['patient']}", {}, fhir(200)),
            ("GET", f"/fhir/Observation/{ids['observation']}", {}, fhir(200, narrow=200)),
        ],
        "fhir.search": [
            ("GET", "/fhir/QuestionnaireResponse", {}, fhir(200)),
            ("GET", "/fhir/Observation", {}, fhir(200, narrow=200)),
        ],
        "fhir.search_post": [("POST", "/fhir/Patient/_search", {"data": {"name": "test"}}, fhir(200, clinician=False))],
        "fhir.binary": [("GET", f"/fhir/Binary/{ids['document']}", {}, fhir(200))],
        "fhir.extract": [("GET", f"/fhir/QuestionnaireResponse/{ids['qr']['id']}/$extract", {}, fhir(200))],
        "fhir.validate_response": [
            ("POST", "/fhir/QuestionnaireResponse/$validate", fhir_json, fhir(200, narrow=200, clinician=False))
        ],
        "fhir.validate_questionnaire": [
            (
                "POST",
                "/fhir/Questionnaire/$validate",
                {"data": json.dumps({"resourceType": "Questionnaire"}), "content_type": "application/fhir+json"},
                fhir(200, narrow=200, clinician=False),
            )
        ],
        "fhir.export_system": [("GET", "/fhir/$export", {}, fhir(202))],
        "fhir.export_patients": [("GET", "/fhir/Patient/$export", {}, fhir(202))],
        "fhir.export_group": [("GET", "/fhir/Group/clinic/$export", {}, fhir(202))],
        "fhir.export_status": [("GET", f"/fhir/$export-status/{job}", {}, own_job(200))],
        "fhir.export_file": [("GET", f"/fhir/$export-file/{job}/Patient.ndjson", {}, own_job(200))],
        "fhir.export_cancel": [("DELETE", f"/fhir/$export-status/{job}", {}, own_job(202, clinician=401))],  # runs last
        "static": [("GET", "/static/intake.css", {}, everyone(200))],
    }


def callers(app: Flask) -> dict[str, Callable[..., Any]]:
    patient = app.test_client()
    assert patient.get(invite_link(app)).status_code == 302
    anonymous, system, narrow = (app.test_client() for _ in range(3))
    system_token, narrow_token = new_token(app, "system"), new_token(app, "narrow", ("system/Observation.read",))

    def with_headers(client: FlaskClient, headers: dict[str, str]) -> Callable[..., Any]:
        def call(method: str, path: str, **kwargs: Any) -> Any:
            return client.open(path, method=method, headers={**headers, "Prefer": "respond-async"}, **kwargs)
        return call

    return {
        "anonymous": with_headers(anonymous, {}),
        "patient": with_headers(patient, {}),
        **{role: with_headers(signed_in(app, role), {}) for role in ROLES},
        "system": with_headers(system, {"Authorization": f"Bearer {system_token}"}),
        "narrow": with_headers(narrow, {"Authorization": f"Bearer {narrow_token}"}),
    }


def test_every_route_for_every_caller(api_app: Flask) -> None:  # noqa: F811
    # The matrix starts more exports than one client may hold; the bound has its own tests.
    api_app.config["INTAKE_BULK_EXPORT_MAX_JOBS_PER_CLIENT"] = 1000
    _client, intake_id = complete_intake(api_app, EMERGENCY)
    patient_id = patient_of(api_app, intake_id)
    assert api_app.test_cli_runner().invoke(args=["intake", "group", "clinic", "--name", "Clinic",
                                                  "--patient", patient_id]).exit_code == 0
    call = callers(api_app)
    kickoff = call["system"]("GET", "/fhir/$export?_type=Patient")
    job = kickoff.headers["Content-Location"].rsplit("/", 1)[1]
    admin = new_token(api_app, "reader")
    read = api_app.test_client()

    def first(path: str) -> dict[str, Any]:
        response = read.get(path, headers={"Authorization": f"Bearer {admin}"})
        return json.loads(response.data)["entry"][0]["resource"]

    with services(api_app).sessions() as session:
        from sqlalchemy import select


        open_intake = session.scalars(select(Intake.id).where(Intake.status != "completed")).first()
    ids = {"intake": intake_id, "patient": patient_id, "job": job, "qr": first("/fhir/QuestionnaireResponse"),
           "observation": first("/fhir/Observation")["id"], "document": first("/fhir/DocumentReference")["id"],
           "open_intake": open_intake}
    rows = matrix(ids)
    endpoints = {rule.endpoint for rule in api_app.url_map.iter_rules()}
    assert endpoints == set(rows), (
        f"routes without a row: {endpoints - set(rows)}; rows without a route: {set(rows) - endpoints}"
    )
    failures = []
    for endpoint, cases in rows.items():
        for method, path, kwargs, expected in cases:
            for actor in sorted(ACTORS, key=lambda a: a == "system"):  # the owner's DELETE goes last
                response = call[actor](method, path, **kwargs)
                status = response.status_code
                response.close()  # file responses (static, NDJSON) hold a handle
                if status != expected[actor]:
                    failures.append(f"{endpoint} {method} {path} as {actor}: {status}, expected {expected[actor]}")
    assert not failures, "\n".join(failures)


def test_a_patient_session_never_shows_another_patients_answers(api_app: Flask) -> None:  # noqa: F811
    a, b = api_app.test_client(), api_app.test_client()
    a.get(invite_link(api_app, name="Patient A"))
    b.get(invite_link(api_app, name="Patient B"))
    answers = page_data(api_app, PAGE, {name: "true" for name in page_data(api_app, PAGE) if name.endswith("rf1")})
    page = a.get(PAGE).text
    assert a.post(PAGE, data={**answers, "csrf_token": csrf(page)}).status_code == 302
    assert a.get(PAGE).text != b.get(PAGE).text  # A's saved answers show on A's page only
    assert a.get("/intake/review").text != b.get("/intake/review").text
