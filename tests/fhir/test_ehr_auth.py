"""SMART Backend Services towards the EHR (intake/fhir/ehr_auth.py): the service signs assertions
with its own key, publishes the public half at /.well-known/jwks.json, and gets access tokens from
a real token endpoint over HTTP — a second instance of this service, whose /auth/token verifies
client assertions exactly as an EHR's does — cached, and renewed once when the EHR answers 401."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from werkzeug.serving import make_server

from intake import close_app, create_app
from intake.auth import smart
from intake.fhir import ehr_auth
from intake.jobs.errors import Permanent
from tests.fhir.test_ehr_push import app_for as make_app
from tests.fhir.test_ehr_push import pushes, receiver, rows_of, submit_short_intake  # noqa: F401
from tests.support.fhir_receiver import FhirReceiver

CLIENT = "intake-at-clinic"


def write_key(path: Path, key: Any) -> str:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return str(path)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def key_file(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> str:
    return write_key(tmp_path / "ehr-client.pem", ec_key)


@pytest.fixture
def ehr(database_url: str, tmp_path: Path) -> Iterator[tuple[Flask, str]]:
    """The token endpoint: this service over HTTP on 127.0.0.1 (its INTAKE_BASE_URL is that address,
    the `aud` assertions must name); yields (app, base URL)."""
    holder: dict[str, Callable[..., Any]] = {}
    server = make_server("127.0.0.1", 0, lambda env, start: holder["app"](env, start), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app = create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "ehr"), "SECRET_KEY": "ehr-s",
                      "TESTING": True, "INTAKE_JOBS": "eager", "INTAKE_BASE_URL": url})
    holder["app"] = app
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, url
    server.shutdown()
    thread.join()
    close_app(app)


def register(ehr_app: Flask, jwks: dict[str, Any], folder: Path, name: str = CLIENT) -> None:
    """Register the pushing service at the EHR with the JWK set it publishes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "jwks.json").write_text(json.dumps(jwks))
    result = ehr_app.test_cli_runner().invoke(args=[
        "intake", "api-client", name, "--jwks", str(folder / "jwks.json"),
        "--scope", "system/Patient.read", "--scope", "system/*.write"])
    assert result.exit_code == 0, result.output


def smart_config(key_file: str, **more: Any) -> dict[str, Any]:
    return {"INTAKE_EHR_AUTH": "smart-backend", "INTAKE_EHR_CLIENT_ID": CLIENT, "INTAKE_EHR_CLIENT_KEY_FILE": key_file,
            "INTAKE_EHR_BEARER_TOKEN": "", "INTAKE_BASE_URL": "https://intake.example.org",
            "INTAKE_EHR_SCOPE": "system/Patient.read system/*.write", **more}


def grant_of(ehr_app: Flask, ehr_url: str, token: str) -> smart.Grant | None:
    return smart.verify_access_token(token, secret=ehr_app.config["SECRET_KEY"], token_url=ehr_url + "/auth/token")


# --- the published key ------------------------------------------------------------------------------


def test_the_jwks_url_publishes_the_public_key_only(database_url: str, tmp_path: Path, key_file: str,
                                                    ec_key: ec.EllipticCurvePrivateKey) -> None:
    app = create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "i"), "SECRET_KEY": "t",
                      "TESTING": True, **smart_config(key_file)})
    try:
        response = app.test_client().get("/.well-known/jwks.json")
    finally:
        close_app(app)
    assert response.status_code == 200 and response.mimetype == "application/jwk-set+json"
    assert "max-age" in response.headers["Cache-Control"]
    [key] = response.json["keys"]  # type: ignore[index]
    assert {k: key[k] for k in ("kty", "crv", "alg", "use")} == {"kty": "EC", "crv": "P-384", "alg": "ES384",
                                                                "use": "sig"}
    assert "d" not in key and key["kid"] == ehr_auth.thumbprint(key)
    signed = jwt.encode({"x": 1}, ec_key, algorithm="ES384")
    assert jwt.decode(signed, jwt.PyJWK(key).key, algorithms=["ES384"]) == {"x": 1}  # the matching public key


def test_without_smart_backend_the_jwks_has_no_keys(database_url: str, tmp_path: Path) -> None:
    app = create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "i"), "SECRET_KEY": "t",
                      "TESTING": True})
    try:
        assert app.test_client().get("/.well-known/jwks.json").json == {"keys": []}
    finally:
        close_app(app)


def test_an_rsa_key_signs_rs384_with_the_configured_kid(tmp_path: Path) -> None:
    path = write_key(tmp_path / "rsa.pem", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    key = ehr_auth.load_signing_key(path, "k-2026")
    assert (key.alg, key.kid, key.public_jwk()["kty"]) == ("RS384", "k-2026", "RSA")


@pytest.mark.parametrize(("config", "message"), [
    ({"INTAKE_EHR_AUTH": "basic"}, "INTAKE_EHR_AUTH must be one of bearer, smart-backend"),
    ({"INTAKE_EHR_AUTH": "smart-backend", "INTAKE_EHR_CLIENT_KEY_FILE": "/x.pem"}, "needs INTAKE_EHR_CLIENT_ID"),
    ({"INTAKE_EHR_AUTH": "smart-backend", "INTAKE_EHR_CLIENT_ID": "c"}, "needs INTAKE_EHR_CLIENT_KEY_FILE"),
    ({"INTAKE_EHR_AUTH": "smart-backend", "INTAKE_EHR_CLIENT_ID": "c", "INTAKE_EHR_CLIENT_KEY_FILE": "/no/such.pem"},
     "cannot read it"),
    ({"INTAKE_EHR_AUTH": "smart-backend", "INTAKE_EHR_CLIENT_ID": "c", "INTAKE_EHR_CLIENT_KEY_FILE": "P256"},
     "EC P-384 key"),
    ({"INTAKE_EHR_AUTH": "smart-backend", "INTAKE_EHR_CLIENT_ID": "c", "INTAKE_EHR_CLIENT_KEY_FILE": "TEXT"},
     "not an unencrypted PEM private key"),
])
def test_settings_that_cannot_work_stop_start_up(database_url: str, tmp_path: Path, config: dict[str, Any],
                                                 message: str) -> None:
    if config.get("INTAKE_EHR_CLIENT_KEY_FILE") == "P256":
        config["INTAKE_EHR_CLIENT_KEY_FILE"] = write_key(tmp_path / "p256.pem", ec.generate_private_key(ec.SECP256R1()))
    if config.get("INTAKE_EHR_CLIENT_KEY_FILE") == "TEXT":
        (tmp_path / "secret.pem").write_text("not-a-key-SECRET-CONTENT")
        config["INTAKE_EHR_CLIENT_KEY_FILE"] = str(tmp_path / "secret.pem")
    with pytest.raises(ehr_auth.ConfigError, match=message) as caught:
        create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "i"), "SECRET_KEY": "t",
                    "TESTING": True, **config})
    assert "SECRET-CONTENT" not in str(caught.value)  # the file is named, its content never shown


# --- tokens from a token endpoint -------------------------------------------------------------------------


def test_the_token_endpoint_is_discovered_and_the_token_cached_until_near_expiry(
        ehr: tuple[Flask, str], key_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ehr_app, ehr_url = ehr
    auth = ehr_auth.EhrAuth(smart_config(key_file, INTAKE_EHR_FHIR_BASE=ehr_url + "/fhir"))
    register(ehr_app, {"keys": [auth.signing_key.public_jwk()]}, tmp_path / "reg")  # type: ignore[union-attr]
    token = auth.token()
    assert auth.token_url() == ehr_url + "/auth/token"  # from {base}/.well-known/smart-configuration
    grant = grant_of(ehr_app, ehr_url, token)
    assert grant is not None and grant.name == CLIENT and grant.allows("Observation", "c")
    assert auth.token() == token and auth.fetched == 1  # cached
    clock = ehr_auth.time.monotonic()
    monkeypatch.setattr(ehr_auth.time, "monotonic", lambda: clock + 300 - 29)  # within 30 s of its 5 minutes
    renewed = auth.token()
    assert auth.fetched == 2 and renewed != token and grant_of(ehr_app, ehr_url, renewed) is not None


def test_a_refused_client_is_a_dead_letter_naming_the_oauth_error_only(
        ehr: tuple[Flask, str], key_file: str) -> None:
    _ehr_app, ehr_url = ehr  # the client is not registered there
    auth = ehr_auth.EhrAuth(smart_config(key_file, INTAKE_EHR_TOKEN_URL=ehr_url + "/auth/token"))
    with pytest.raises(Permanent) as caught:
        auth.token()
    assert str(caught.value) == "EHR token endpoint: HTTP 401 (invalid_client)"


@pytest.fixture
def pushing(database_url: str, tmp_path: Path, receiver: FhirReceiver, ehr: tuple[Flask, str],  # noqa: F811
            key_file: str) -> Iterator[Flask]:
    """The service pushing to the receiver with SMART Backend Services, registered at the EHR with
    the JWK set its own /.well-known/jwks.json serves."""
    ehr_app, ehr_url = ehr
    app = make_app(database_url, tmp_path, receiver,
                   **smart_config(key_file, INTAKE_EHR_TOKEN_URL=ehr_url + "/auth/token"))
    register(ehr_app, app.test_client().get("/.well-known/jwks.json").json, tmp_path / "reg")  # type: ignore[arg-type]
    yield app
    close_app(app)


def test_pushes_carry_a_token_from_the_ehr_fetched_once(pushing: Flask, receiver: FhirReceiver,  # noqa: F811
                                                        ehr: tuple[Flask, str]) -> None:
    ehr_app, ehr_url = ehr
    first, second = submit_short_intake(pushing), submit_short_intake(pushing, name="Second Patient")
    assert {rows_of(pushing, i)["ehr_push"].state for i in (first, second)} == {"done"}
    tokens = {p.headers["authorization"] for p in pushes(receiver)}
    assert len(tokens) == 1 and ehr_auth.of(pushing).fetched == 1
    token = tokens.pop().removeprefix("Bearer ")
    assert grant_of(ehr_app, ehr_url, token) is not None
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"  # the EHR's own token, not our assertion


def test_a_401_gets_a_new_token_and_one_more_try(pushing: Flask, receiver: FhirReceiver) -> None:  # noqa: F811
    submit_short_intake(pushing)
    receiver.fail_next(401)
    intake_id = submit_short_intake(pushing, name="After Rotation")
    assert rows_of(pushing, intake_id)["ehr_push"].state == "done"
    statuses = [(p.status, p.headers["authorization"]) for p in pushes(receiver)]
    assert [s for s, _ in statuses] == [200, 401, 200]
    assert statuses[0][1] == statuses[1][1] != statuses[2][1]  # the refused token was replaced
    assert ehr_auth.of(pushing).fetched == 2


def test_a_second_401_is_a_dead_letter(pushing: Flask, receiver: FhirReceiver) -> None:  # noqa: F811
    receiver.fail_next(401, times=2)
    intake_id = submit_short_intake(pushing)
    push = rows_of(pushing, intake_id)["ehr_push"]
    assert push.state == "dead" and push.last_error.startswith("HTTP 401")
    assert [p.status for p in pushes(receiver)] == [401, 401] and ehr_auth.of(pushing).fetched == 2
