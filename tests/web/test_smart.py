"""SMART Backend Services: discovery, the client-credentials grant with a signed JWT assertion
(RS384 and ES384), every refusal the spec names, access-token lifetime and scopes on FHIR routes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask

from intake import smart
from tests.smart_client import SmartClient
from tests.web.test_fhir_api import Api, api_app, assert_outcome  # noqa: F401  (fixture)

TOKEN_URL = "http://localhost/auth/token"


@pytest.fixture
def ehr(api_app: Flask) -> SmartClient:  # noqa: F811
    client = SmartClient("ehr")
    client.register(api_app, Path(api_app.instance_path), "system/*.read")
    return client


def post_token(app: Flask, form: dict[str, str]) -> Any:
    return app.test_client().post("/auth/token", data=form)


def test_discovery_advertises_the_token_endpoint(api_app: Flask) -> None:  # noqa: F811
    for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        config = api_app.test_client().get(path).json
        assert config["token_endpoint"] == TOKEN_URL
        assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
        assert "client-confidential-asymmetric" in config["capabilities"]


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_a_signed_assertion_gets_a_five_minute_token_that_reads(api_app: Flask, tmp_path: Path, alg: str) -> None:  # noqa: F811
    client = SmartClient(f"lab-{alg}", alg)
    client.register(api_app, tmp_path, "system/*.read")
    response = post_token(api_app, client.token_form(TOKEN_URL))
    body = response.json
    assert response.status_code == 200 and body["token_type"] == "bearer" and body["expires_in"] <= 300
    assert body["scope"] == "system/*.read" and response.headers["Cache-Control"] == "no-store"
    api = Api(api_app.test_client(), body["access_token"])
    assert api.get("/fhir/Patient").status_code == 200


def test_refusals(api_app: Flask, ehr: SmartClient, tmp_path: Path) -> None:  # noqa: F811
    def refused(form: dict[str, str], error: str) -> None:
        response = post_token(api_app, form)
        assert response.status_code in (400, 401) and response.json["error"] == error, response.json

    refused({**ehr.token_form(TOKEN_URL), "grant_type": "password"}, "unsupported_grant_type")
    refused({**ehr.token_form(TOKEN_URL), "client_assertion_type": "x"}, "invalid_request")
    refused({**ehr.token_form(TOKEN_URL), "client_assertion": "not-a-jwt"}, "invalid_client")
    refused(ehr.token_form("http://localhost/elsewhere"), "invalid_client")  # wrong aud
    refused(ehr.token_form(TOKEN_URL, exp=int(time.time()) - 120), "invalid_client")  # expired
    refused(ehr.token_form(TOKEN_URL, exp=int(time.time()) + 3600), "invalid_client")  # exp > 5 min ahead
    refused(ehr.token_form(TOKEN_URL, sub="someone-else"), "invalid_client")
    replay = ehr.token_form(TOKEN_URL)
    assert post_token(api_app, replay).status_code == 200
    refused(replay, "invalid_client")  # the same jti again
    impostor = SmartClient("ehr")  # same name, a key the server does not know
    refused(impostor.token_form(TOKEN_URL), "invalid_client")
    hs = jwt.encode({"iss": "ehr", "sub": "ehr", "aud": TOKEN_URL, "exp": int(time.time()) + 60, "jti": "x"},
                    "a-shared-secret-the-server-never-accepts-32b", algorithm="HS256")
    refused({**ehr.token_form(TOKEN_URL), "client_assertion": hs}, "invalid_client")  # symmetric alg
    refused(SmartClient("stranger").token_form(TOKEN_URL), "invalid_client")
    refused(ehr.token_form(TOKEN_URL, scope="user/*.read"), "invalid_scope")
    refused(ehr.token_form(TOKEN_URL, scope=""), "invalid_scope")
    result = api_app.test_cli_runner().invoke(args=["intake", "api-client", "ehr", "--revoke"])
    assert result.exit_code == 0 and "revoked" in result.output
    refused(ehr.token_form(TOKEN_URL), "invalid_client")


def test_scopes_are_narrowed_and_checked_on_every_route(api_app: Flask, tmp_path: Path) -> None:  # noqa: F811
    client = SmartClient("scores")
    client.register(api_app, tmp_path, "system/Observation.read", "system/Questionnaire.rs")
    refused = post_token(api_app, client.token_form(TOKEN_URL, scope="system/*.read"))
    assert refused.status_code == 400 and refused.json["error"] == "invalid_scope"
    granted = post_token(api_app, client.token_form(TOKEN_URL, scope="system/Observation.read system/Patient.read"))
    assert granted.json["scope"] == "system/Observation.read"
    api = Api(api_app.test_client(), granted.json["access_token"])
    assert api.get("/fhir/Observation").status_code == 200
    assert_outcome(api.get("/fhir/Patient"), 403, "forbidden")
    assert_outcome(api.get("/fhir/Questionnaire"), 403, "forbidden")
    assert_outcome(api.get("/fhir/QuestionnaireResponse/x/$extract"), 403)  # scopes first: existence not revealed
    assert_outcome(api.get("/fhir/Binary/x"), 403)


def test_expired_and_forged_access_tokens_are_refused(api_app: Flask, ehr: SmartClient) -> None:  # noqa: F811
    secret = api_app.config["SECRET_KEY"]
    key = smart._access_key(secret)
    expired = jwt.encode({"iss": TOKEN_URL, "sub": "ehr", "scope": "system/*.read", "exp": int(time.time()) - 1}, key,
                         algorithm="HS256")
    forged = jwt.encode({"iss": TOKEN_URL, "sub": "ehr", "scope": "system/*.read", "exp": int(time.time()) + 60},
                        "a-guessed-key-that-is-not-the-server-key-32b", algorithm="HS256")
    for token in (expired, forged):
        assert_outcome(Api(api_app.test_client(), token).get("/fhir/Patient"), 401, "login")


def test_registration_refuses_private_keys_and_bad_scopes(api_app: Flask, tmp_path: Path) -> None:  # noqa: F811
    client = SmartClient("careless")
    private = jwt.algorithms.RSAAlgorithm.to_jwk(client.key)
    (tmp_path / "private.json").write_text('{"keys": [' + private + "]}")
    result = api_app.test_cli_runner().invoke(args=["intake", "api-client", "careless", "--jwks", str(tmp_path / "private.json")])
    assert result.exit_code == 1 and "private key" in result.output
    client.register(api_app, tmp_path)  # a valid one for the next check
    (tmp_path / "careless.jwks.json").write_text('{"keys": []}')
    result = api_app.test_cli_runner().invoke(args=["intake", "api-client", "careless", "--jwks",
                                                    str(tmp_path / "careless.jwks.json")])
    assert result.exit_code == 1
    result = api_app.test_cli_runner().invoke(args=["intake", "api-client", "x", "--jwks", str(tmp_path / "private.json"),
                                                    "--scope", "patient/*.read"])
    assert result.exit_code == 1


def test_the_token_endpoint_is_rate_limited(database_url: str, tmp_path: Path) -> None:
    from intake import close_app, create_app

    app = create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "i"), "SECRET_KEY": "t" * 32,
                      "TESTING": True, "INTAKE_JOBS": "eager", "INTAKE_TOKEN_RATE_LIMIT": "3 per minute"})
    try:
        statuses = [post_token(app, {"grant_type": "x"}).status_code for _ in range(5)]
        assert statuses == [400, 400, 400, 429, 429]
        assert post_token(app, {"grant_type": "x"}).json["error"] == "invalid_request"
    finally:
        close_app(app)
