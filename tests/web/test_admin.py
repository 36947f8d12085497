"""Admin pages: staff accounts (add, disable, enable, new password, remove two-step) and API
clients (register from a JWK set, revoke), each change taking effect at once."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask

from tests.smart_client import SmartClient
from tests.web.conftest import csrf, error_summary
from tests.web.flow import sign_in, signed_in
from tests.web.test_fhir_api import api_app  # noqa: F401  (fixture)


def test_admin_adds_disables_and_resets_users(api_app: Flask) -> None:  # noqa: F811
    admin = signed_in(api_app, "admin")
    page = admin.get("/admin/users").text
    bad = admin.post("/admin/users", data={"username": "n", "password": "short", "role": "clinician", "csrf_token": csrf(page)})
    assert bad.status_code == 400 and "<title>Error:" in bad.text
    added = admin.post("/admin/users", data={"username": "Nurse.Joy", "display_name": "Nurse <Joy>", "role": "front-desk",
                                             "password": "a long enough password", "csrf_token": csrf(page)})
    assert added.status_code == 302
    listing = admin.get("/admin/users").text
    assert "nurse.joy" in listing and "Nurse &lt;Joy&gt;" in listing
    duplicate = admin.post("/admin/users", data={"username": "NURSE.JOY", "role": "clinician",
                                                 "password": "a long enough password", "csrf_token": csrf(listing)})
    assert duplicate.status_code == 400 and "already a user" in duplicate.text
    nurse = signed_in(api_app, "front-desk", username="nurse.joy", password="a long enough password")
    assert nurse.get("/front-desk/").status_code == 200
    token = csrf(admin.get("/admin/users").text)
    assert admin.post("/admin/users/nurse.joy/disable", data={"csrf_token": token}).status_code == 302
    assert nurse.get("/front-desk/").status_code == 302  # signed out at once
    assert "disabled" in admin.get("/admin/users").text
    assert admin.post("/admin/users/nurse.joy/enable", data={"csrf_token": token}).status_code == 302
    short = admin.post("/admin/users/nurse.joy/reset-password", data={"password": "short", "csrf_token": token})
    assert short.status_code == 400 and "12 to 256" in short.text
    assert admin.post("/admin/users/nurse.joy/reset-password", data={"password": "the next long password",
                                                                      "csrf_token": token}).status_code == 302
    assert sign_in(api_app.test_client(), "nurse.joy", "a long enough password").status_code == 401
    assert sign_in(api_app.test_client(), "nurse.joy", "the next long password").status_code == 302
    assert admin.post("/admin/users/nobody/disable", data={"csrf_token": token}).status_code == 400
    assert admin.post("/admin/users/nurse.joy/promote", data={"csrf_token": token}).status_code == 404


def test_admin_registers_and_revokes_api_clients(api_app: Flask, tmp_path: Path) -> None:  # noqa: F811
    admin = signed_in(api_app, "admin")
    page = admin.get("/admin/clients").text
    client = SmartClient("lab-system", "ES384")
    private = {"keys": [{"kty": "EC", "crv": "P-384", "x": "a", "y": "b", "d": "secret"}]}
    refused = admin.post("/admin/clients", data={"name": "lab-system", "jwks": json.dumps(private),
                                                 "scopes": "system/*.read", "csrf_token": csrf(page)})
    assert refused.status_code == 400 and error_summary(refused.text) is not None
    assert admin.post("/admin/clients", data={"name": "lab-system", "jwks": json.dumps(client.jwks),
                                              "scopes": "system/Observation.read", "csrf_token": csrf(page)}).status_code == 302
    assert "system/Observation.read" in admin.get("/admin/clients").text
    token = client.token(api_app, "system/Observation.read")
    assert api_app.test_client().get("/fhir/Observation", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert admin.post("/admin/clients/lab-system/revoke", data={"csrf_token": csrf(page)}).status_code == 302
    assert "revoked" in admin.get("/admin/clients").text
    response = api_app.test_client().post("/auth/token", data=client.token_form("http://localhost/auth/token", "system/Observation.read"))
    assert response.status_code in (400, 401) and json.loads(response.data)["error"] == "invalid_client"
