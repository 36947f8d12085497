"""SMART Backend Services: discovery, the client-credentials grant with a signed JWT assertion
(RS384 and ES384), every refusal the spec names, access-token lifetime and scopes on FHIR routes;
the audience from INTAKE_BASE_URL only, scopes granted as the registered subset, malformed
assertions answered with OAuth errors, and client names that cannot pose as another kind."""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from sqlalchemy import select

from intake.auth import smart
from intake.core.fhir_time import utcnow
from intake.services import services
from intake.storage import fhir_store
from intake.storage.db import session_scope
from intake.storage.models import AuditRecord
from intake.web.auditing import flush
from tests.conftest import AppFactory
from tests.smart_client import SmartClient, token_endpoint
from tests.web.conftest import csrf, error_summary
from tests.web.flow import signed_in
from tests.web.test_fhir_api import Api, api_app, assert_outcome  # noqa: F401  (fixture)

PUBLIC_BASE = "https://intake.example.org"
EVIL_TOKEN_URL = "http://evil.example/auth/token"


@pytest.fixture
def proxied_app(make_app: AppFactory) -> Flask:
    """Behind one trusted proxy (X-Forwarded-* believed), public at PUBLIC_BASE, no token rate limit."""
    return make_app(INTAKE_BASE_URL=PUBLIC_BASE, INTAKE_TRUSTED_PROXIES=1, INTAKE_TOKEN_RATE_LIMIT="100000 per minute")



@pytest.fixture
def aud(api_app: Flask) -> str:  # noqa: F811
    """The audience assertions name: the configured token endpoint (INTAKE_BASE_URL + /auth/token)."""
    return token_endpoint(api_app)


@pytest.fixture
def ehr(api_app: Flask) -> SmartClient:  # noqa: F811
    client = SmartClient("ehr")
    client.register(api_app, Path(api_app.instance_path), "system/*.read")
    return client


def post_token(app: Flask, form: dict[str, str]) -> Any:
    return app.test_client().post("/auth/token", data=form)


def test_discovery_advertises_the_token_endpoint(api_app: Flask, aud: str) -> None:  # noqa: F811
    for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        config = api_app.test_client().get(path).json
        assert config["token_endpoint"] == aud
        assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
        assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
        assert {"client-confidential-asymmetric", "permission-v1", "permission-v2"} <= set(config["capabilities"])


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_a_signed_assertion_gets_a_five_minute_token_that_reads(
    api_app: Flask, aud: str, tmp_path: Path, alg: str  # noqa: F811
) -> None:
    client = SmartClient(f"lab-{alg}", alg)
    client.register(api_app, tmp_path, "system/*.read")
    response = post_token(api_app, client.token_form(aud))
    body = response.json
    assert response.status_code == 200 and body["token_type"] == "bearer" and body["expires_in"] <= 300
    assert body["scope"] == "system/*.read" and response.headers["Cache-Control"] == "no-store"
    api = Api(api_app.test_client(), body["access_token"])
    assert api.get("/fhir/Patient").status_code == 200


def test_refusals(api_app: Flask, aud: str, ehr: SmartClient, tmp_path: Path) -> None:  # noqa: F811
    def refused(form: dict[str, str], error: str) -> None:
        response = post_token(api_app, form)
        assert response.status_code in (400, 401) and response.json["error"] == error, response.json

    refused({**ehr.token_form(aud), "grant_type": "password"}, "unsupported_grant_type")
    refused({**ehr.token_form(aud), "client_assertion_type": "x"}, "invalid_request")
    refused({**ehr.token_form(aud), "client_assertion": "not-a-jwt"}, "invalid_client")
    refused(ehr.token_form(aud.replace("/auth/token", "/elsewhere")), "invalid_client")  # wrong aud
    refused(ehr.token_form(aud, exp=int(time.time()) - 120), "invalid_client")  # expired
    refused(ehr.token_form(aud, exp=int(time.time()) + 3600), "invalid_client")  # exp > 5 min ahead
    refused(ehr.token_form(aud, sub="someone-else"), "invalid_client")
    replay = ehr.token_form(aud)
    assert post_token(api_app, replay).status_code == 200
    refused(replay, "invalid_client")  # the same jti again
    impostor = SmartClient("ehr")  # same name, a key the server does not know
    refused(impostor.token_form(aud), "invalid_client")
    hs = jwt.encode({"iss": "ehr", "sub": "ehr", "aud": aud, "exp": int(time.time()) + 60, "jti": "x"},
                    "a-shared-secret-the-server-never-accepts-32b", algorithm="HS256")
    refused({**ehr.token_form(aud), "client_assertion": hs}, "invalid_client")  # symmetric alg
    refused(SmartClient("stranger").token_form(aud), "invalid_client")
    refused(ehr.token_form(aud, scope="user/*.read"), "invalid_scope")
    refused(ehr.token_form(aud, scope=""), "invalid_scope")
    result = api_app.test_cli_runner().invoke(args=["intake", "api-client", "ehr", "--revoke"])
    assert result.exit_code == 0 and "revoked" in result.output
    refused(ehr.token_form(aud), "invalid_client")


def test_scopes_are_narrowed_and_checked_on_every_route(api_app: Flask, aud: str, tmp_path: Path) -> None:  # noqa: F811
    client = SmartClient("scores")
    client.register(api_app, tmp_path, "system/Observation.read", "system/Questionnaire.rs")
    wildcard = post_token(api_app, client.token_form(aud, scope="system/*.read"))  # the registered part of *
    assert wildcard.json["scope"] == "system/Observation.read system/Questionnaire.read"
    refused = post_token(api_app, client.token_form(aud, scope="system/Patient.read"))
    assert refused.status_code == 400 and refused.json["error"] == "invalid_scope"
    granted = post_token(api_app, client.token_form(aud, scope="system/Observation.read system/Patient.read"))
    assert granted.json["scope"] == "system/Observation.read"
    api = Api(api_app.test_client(), granted.json["access_token"])
    assert api.get("/fhir/Observation").status_code == 200
    assert_outcome(api.get("/fhir/Patient"), 403, "forbidden")
    assert_outcome(api.get("/fhir/Questionnaire"), 403, "forbidden")
    assert_outcome(api.get("/fhir/QuestionnaireResponse/x/$extract"), 403)  # scopes first: existence not revealed
    assert_outcome(api.get("/fhir/Binary/x"), 403)


def test_expired_and_forged_access_tokens_are_refused(api_app: Flask, aud: str, ehr: SmartClient) -> None:  # noqa: F811
    secret = api_app.config["SECRET_KEY"]
    key = smart._access_key(secret)
    expired = jwt.encode({"iss": aud, "sub": "ehr", "scope": "system/*.read", "exp": int(time.time()) - 1}, key,
                         algorithm="HS256")
    forged = jwt.encode({"iss": aud, "sub": "ehr", "scope": "system/*.read", "exp": int(time.time()) + 60},
                        "a-guessed-key-that-is-not-the-server-key-32b", algorithm="HS256")
    for token in (expired, forged):
        assert_outcome(Api(api_app.test_client(), token).get("/fhir/Patient"), 401, "login")


def test_registration_refuses_private_keys_and_bad_scopes(api_app: Flask, tmp_path: Path) -> None:  # noqa: F811
    client = SmartClient("careless")
    private = jwt.algorithms.RSAAlgorithm.to_jwk(client.key)
    (tmp_path / "private.json").write_text('{"keys": [' + private + "]}")
    result = api_app.test_cli_runner().invoke(
        args=["intake", "api-client", "careless", "--jwks", str(tmp_path / "private.json")]
    )
    assert result.exit_code == 1 and "private key" in result.output
    client.register(api_app, tmp_path)  # a valid one for the next check
    (tmp_path / "careless.jwks.json").write_text('{"keys": []}')
    result = api_app.test_cli_runner().invoke(args=["intake", "api-client", "careless", "--jwks",
                                                    str(tmp_path / "careless.jwks.json")])
    assert result.exit_code == 1
    result = api_app.test_cli_runner().invoke(
        args=["intake", "api-client", "x", "--jwks", str(tmp_path / "private.json"), "--scope", "patient/*.read"]
    )
    assert result.exit_code == 1


def test_the_token_endpoint_is_rate_limited(make_app: AppFactory) -> None:
    app = make_app(INTAKE_TOKEN_RATE_LIMIT="3 per minute")
    statuses = [post_token(app, {"grant_type": "x"}).status_code for _ in range(5)]
    assert statuses == [400, 400, 400, 429, 429]
    assert post_token(app, {"grant_type": "x"}).json["error"] == "invalid_request"


def oauth_error(response: Any) -> str:
    """The error code of an OAuth error answer (RFC 6749 §5.2: JSON, 400 or 401, no-store)."""
    assert response.status_code in (400, 401), (response.status_code, response.text[:300])
    assert response.content_type == "application/json" and response.headers["Cache-Control"] == "no-store"
    return str(response.json["error"])


# --- finding 2: the audience is INTAKE_BASE_URL's token endpoint, whatever the Host header says ---


def test_finding_2_assertion_audience_ignores_host_header(proxied_app: Flask, tmp_path: Path) -> None:
    client = SmartClient("ehr", "ES384")
    client.register(proxied_app, tmp_path, "system/*.read")
    web = proxied_app.test_client()
    by_host = web.post("/auth/token", data=client.token_form(EVIL_TOKEN_URL), base_url="http://evil.example")
    by_proxy = web.post("/auth/token", data=client.token_form(EVIL_TOKEN_URL),
                        headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"})
    for refused in (by_host, by_proxy):
        assert oauth_error(refused) == "invalid_client" and "udience" in refused.json["error_description"]
    for where in ({"base_url": "http://evil.example"}, {"headers": {"X-Forwarded-Host": "evil.example"}}):
        for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
            assert web.get(path, **where).json["token_endpoint"] == f"{PUBLIC_BASE}/auth/token"
    # The configured audience is accepted by whatever host the request came in by.
    granted = web.post("/auth/token", data=client.token_form(f"{PUBLIC_BASE}/auth/token"), base_url="http://evil.example")
    assert granted.status_code == 200, granted.text
    bearer = {"Authorization": f"Bearer {granted.json['access_token']}"}
    assert web.get("/fhir/Patient", headers=bearer, base_url="http://other.example").status_code == 200


def test_finding_2_access_token_issuer_is_the_configured_token_url(proxied_app: Flask) -> None:
    key = smart._access_key(proxied_app.config["SECRET_KEY"])
    claims = {"sub": "ehr", "kind": "client", "scope": "system/*.read", "exp": int(time.time()) + 60}
    web = proxied_app.test_client()
    for issuer, status in ((EVIL_TOKEN_URL, 401), (f"{PUBLIC_BASE}/auth/token", 200)):
        bearer = {"Authorization": f"Bearer {jwt.encode({**claims, 'iss': issuer}, key, algorithm='HS256')}"}
        assert web.get("/fhir/Patient", headers=bearer, base_url="http://evil.example").status_code == status
        assert web.get("/fhir/Patient", headers={**bearer, "X-Forwarded-Host": "evil.example"}).status_code == status


def test_finding_2_default_base_url_fails_closed_and_production_says_so(
        api_app: Flask, make_app: AppFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """Left at the development default, the audience is that default's token endpoint, not the
    host a request names; run the production way (celery), the start-up log says it is unset."""
    client = SmartClient("dev", "ES384")
    client.register(api_app, tmp_path, "system/*.read")
    assert oauth_error(post_token(api_app, client.token_form("http://localhost/auth/token"))) == "invalid_client"
    assert post_token(api_app, client.token_form("http://127.0.0.1:5000/auth/token")).status_code == 200
    settings = {"INTAKE_JOBS": "celery", "INTAKE_AUDIT_KEY": "k" * 40, "INTAKE_CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}
    warned: dict[str, list[str]] = {}
    for folder, extra in (("unset", {}), ("set", {"INTAKE_BASE_URL": PUBLIC_BASE})):
        caplog.clear()
        make_app(**settings, **extra)
        warned[folder] = [r.getMessage() for r in caplog.records if r.name == "intake.web.auth_api"]
    assert len(warned["unset"]) == 1 and "INTAKE_BASE_URL is not set" in warned["unset"][0]
    assert "http://127.0.0.1:5000/auth/token" in warned["unset"][0] and warned["set"] == []


# --- finding 3: a token carries only what the registration allows ---------------------------------

# (registered, requested, granted; None = invalid_scope)
SCOPE_TABLE: list[tuple[str, str, str | None]] = [
    ("system/*.read", "system/*.read", "system/*.read"),
    ("system/*.read", "system/*.cruds", "system/*.rs"),
    ("system/*.read", "system/*.*", "system/*.read"),
    ("system/*.read", "system/*.write", None),
    ("system/*.read", "system/*.cud", None),
    ("system/*.read", "system/*.c", None),
    ("system/*.read", "system/Observation.rs", "system/Observation.rs"),
    ("system/*.read", "system/Observation.cruds", "system/Observation.rs"),
    ("system/*.read", "system/Observation.*", "system/Observation.read"),
    ("system/*.rs", "system/*.read", "system/*.read"),
    ("system/*.r", "system/*.read", "system/*.r"),
    ("system/*.r", "system/*.s", None),
    ("system/Observation.rs", "system/*.read", "system/Observation.read"),
    ("system/Observation.rs", "system/*.rs", "system/Observation.rs"),
    ("system/Observation.rs", "system/Patient.read", None),
    ("system/Observation.read system/Patient.rs", "system/*.cruds", "system/Observation.rs system/Patient.rs"),
    ("system/Observation.read system/Patient.rs", "system/Patient.* system/Flag.read", "system/Patient.read"),
    ("system/*.*", "system/*.write system/*.read", "system/*.write system/*.read"),
    ("system/*.write", "system/*.read", None),
    ("system/*.read", "system/*.read system/*.read system/*.rs", "system/*.read system/*.rs"),
    ("system/*.read", "launch/patient openid fhirUser offline_access system/*.read", "system/*.read"),
    ("system/*.read", "launch/patient openid fhirUser offline_access", None),
    ("system/*.read", "user/*.read patient/*.read system/*.sr online_access", None),
    ("system/*.*", "system/Observation.rs?category=laboratory", None),  # search-parameter filters are not enforced
    ("system/*.read", "system/Observation.rs?category=laboratory system/Flag.rs", "system/Flag.rs"),
]


def test_finding_3_scopes_granted_are_the_registered_subset(api_app: Flask, aud: str, tmp_path: Path) -> None:  # noqa: F811
    wrong = []
    for number, (registered, requested, expected) in enumerate(SCOPE_TABLE):
        client = SmartClient(f"table-{number}", "ES384")
        client.register(api_app, tmp_path, *registered.split())
        response = post_token(api_app, client.token_form(aud, scope=requested))
        if expected is None:
            got = None if response.status_code == 400 and response.json["error"] == "invalid_scope" else response.json
        else:
            got = response.json.get("scope") if response.status_code == 200 else response.json
            claims = (
                jwt.decode(response.json.get("access_token", ""), options={"verify_signature": False}) if got else {}
            )
            if claims.get("scope") != got:
                got = ("token claims", claims)
        if got != expected:
            wrong.append(f"registered {registered!r}, asked {requested!r}: got {got!r}, expected {expected!r}")
    assert not wrong, "\n".join(wrong)


def test_finding_3_the_api_enforces_the_granted_scopes(api_app: Flask, aud: str, tmp_path: Path) -> None:  # noqa: F811
    reader = SmartClient("reader", "ES384")
    reader.register(api_app, tmp_path, "system/Observation.rs")
    response = post_token(api_app, reader.token_form(aud, scope="system/*.cruds system/*.*"))
    assert response.status_code == 200 and response.json["scope"] == "system/Observation.rs system/Observation.read"
    api = Api(api_app.test_client(), response.json["access_token"])
    assert api.get("/fhir/Observation").status_code == 200
    assert_outcome(api.get("/fhir/Patient"), 403, "forbidden")
    assert_outcome(api.get("/fhir/$export?_type=Patient", headers={"Prefer": "respond-async"}), 403, "forbidden")
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    for method, path in (("post", "/fhir/Observation"), ("put", "/fhir/Observation/x"),
                         ("delete", "/fhir/Observation/x"), ("patch", "/fhir/Observation/x"), ("post", "/fhir")):
        attempt = getattr(api.client, method)(path, json=observation, headers=api.headers)
        assert attempt.status_code in (403, 404, 405), (method, path, attempt.status_code)
        assert attempt.json["resourceType"] == "OperationOutcome"
    # What a token grants follows its own scopes, in both syntaxes, per resource type and mode.
    grant = smart.Grant("client", "x", frozenset({"system/Observation.r", "system/*.s", "system/Flag.write"}))
    assert grant.can_read("Observation") and not grant.can_read("Patient") and not grant.can_read("Flag")
    assert grant.allows("Flag", "c") and not grant.allows("Observation", "c") and grant.allows("Patient", "s")
    filtered = smart.Grant("client", "x", frozenset({"system/Observation.rs?category=laboratory"}))
    assert not filtered.can_read("Observation")


# --- finding 7: a malformed assertion is an OAuth error, never a 500 ------------------------------

HOSTILE_VALUES: list[Any] = ["soon", "", "1700000000", 1e300, -1e300, float("nan"), float("inf"), [1], {"n": 1}, None,
                             True, 10**30, -(10**30), 2**63, -1, 1.5, "ehr\x00", "x" * 5000, "\ud800", ["ehr"]]


def _segment(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signed(client: SmartClient, header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWS signed with the client's key whatever its header and claims hold (PyJWT's encoder
    refuses the wrong types these tests send)."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = jwt.get_algorithm_by_name(client.alg).sign(signing_input.encode(), client.key)
    return f"{signing_input}.{_segment(signature)}"


def _malformed(client: SmartClient, aud: str, rng: random.Random) -> Iterator[str]:
    """Assertions wrong in one way each: claims and header values of the wrong type or out of
    range (signed, so they reach the claim checks), unsigned shapes, and random mutations."""
    header = {"alg": client.alg, "typ": "JWT", "kid": client.kid}
    for claim in ("exp", "iat", "nbf", "jti", "iss", "sub", "aud"):
        for value in HOSTILE_VALUES:
            body = {"iss": client.name, "sub": client.name, "aud": aud, "exp": int(time.time()) + 60,
                    "jti": f"{claim}-{len(str(value))}-{rng.random()}"}
            yield _signed(client, header, {**body, claim: value})
    for value in HOSTILE_VALUES:
        body = {
            "iss": client.name,
            "sub": client.name,
            "aud": aud,
            "exp": int(time.time()) + 60,
            "jti": str(rng.random()),
        }
        yield _signed(client, {**header, "kid": value}, body)
        yield _signed(client, {**header, "alg": value}, body)
        yield _signed(client, {**header, "crit": value}, body)
    yield _signed(client, {"alg": client.alg}, {"iss": client.name, "sub": client.name, "aud": aud,
                                                 "exp": int(time.time()) + 60, "jti": "no kid"})  # every key is tried
    valid = client.assertion(aud)
    header, payload, signature = valid.split(".")
    shapes = [
        "", ".", "..", "a.b.c", "a.b.c.d", "é.é.é", "\x00.\x00.\x00", f"{header}.{payload}", f"{header}..{signature}",
        f"{_segment(b'not json')}.{payload}.{signature}", f"{header}.{_segment(b'not json')}.{signature}",
        f"{_segment([1])}.{payload}.{signature}", f"{header}.{_segment([1])}.{signature}",
        f"{_segment(None)}.{payload}.{signature}", f"{header}.{_segment(None)}.{signature}",
        f"{_segment({'alg': 'ES384', 'kid': client.kid, 'b64': False})}.{payload}.{signature}",
        f"{_segment({'alg': 'RS384', 'kid': client.kid})}.{payload}.{signature}",  # alg of another key type
        f"{_segment({'alg': 'none'})}.{payload}.", f"{header}.{payload}.{'A' * 20000}",
        f"{header}.{_segment(b'{' * 5000)}.{signature}", f"{header}.{_segment({'exp': 1e999})}.{signature}",
    ]
    yield from shapes
    alphabet = "A_-.=é\x00 {}\"" + valid[:40]
    for _ in range(150):
        chars = list(valid)
        for _edit in range(rng.randint(1, 4)):
            where = rng.randrange(len(chars))
            kind = rng.random()
            if kind < 0.4:
                chars[where] = rng.choice(alphabet)
            elif kind < 0.7:
                del chars[where]
            else:
                chars.insert(where, rng.choice(alphabet))
        yield "".join(chars)


def test_finding_7_malformed_assertions_get_oauth_error_json(proxied_app: Flask, tmp_path: Path) -> None:
    aud = token_endpoint(proxied_app)
    tried, failures = 0, []
    for alg in ("ES384", "RS384"):
        client = SmartClient(f"fuzz-{alg}", alg)
        client.register(proxied_app, tmp_path, "system/*.read")
        for assertion in _malformed(client, aud, random.Random(15)):
            tried += 1
            form = {**client.token_form(aud), "client_assertion": assertion}
            response = post_token(proxied_app, form)
            ok = response.status_code == 200 and "access_token" in response.json
            if not ok and not (
                response.status_code in (400, 401)
                and response.content_type == "application/json"
                and response.json.get("error") in ("invalid_client", "invalid_grant", "invalid_request")
            ):
                failures.append(f"{response.status_code} {response.text[:120]!r} for {assertion[:200]!r}")
    assert not failures, f"{len(failures)} of {tried}:\n" + "\n".join(failures[:20])
    print(f"\n{tried} malformed assertions, 0 server errors")


# --- finding 8: an API client cannot pose as a staff user -----------------------------------------


def test_finding_8_client_names_that_could_pass_for_another_kind_are_refused(api_app: Flask, tmp_path: Path) -> None:  # noqa: F811
    client = SmartClient("lab", "ES384")
    jwks = json.dumps(client.jwks)
    for name in ("user:clin", "client:ehr", "ehr:prod", "User", " client ", "Intake/x", "user"):
        with (
            pytest.raises(ValueError, match="mistaken") as refused,
            session_scope(services(api_app).sessions) as session,
        ):
            smart.register_client(session, name=name, jwks_text=jwks, scopes="system/*.read", now=utcnow())
        assert "\n" not in str(refused.value)
    admin = signed_in(api_app, "admin")
    page = admin.get("/admin/clients").text
    posted = admin.post("/admin/clients", data={"name": "user:clin", "jwks": jwks, "scopes": "system/*.read",
                                                "csrf_token": csrf(page)})
    assert posted.status_code == 400 and "mistaken" in posted.text and error_summary(posted.text) is not None
    with session_scope(services(api_app).sessions) as session:
        assert fhir_store.active_api_client(session, "user:clin") is None


def test_finding_8_client_requests_are_audited_as_a_client(api_app: Flask, aud: str, tmp_path: Path) -> None:  # noqa: F811
    signed_in(api_app, "clinician", "clin")
    client = SmartClient("clin", "ES384")  # the same name as a staff user: a different kind, a different actor
    client.register(api_app, tmp_path, "system/*.read")
    token = post_token(api_app, client.token_form(aud)).json["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["kind"] == "client"
    assert Api(api_app.test_client(), token).get("/fhir/Patient").status_code == 200
    flush(api_app)
    with services(api_app).sessions() as session:
        last = session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(1)).one()
        assert (last.actor_kind, last.actor, last.action) == ("client", "clin", "search")
    # A client registered under such a name before names were checked gets no token.
    legacy = SmartClient("user:clin", "ES384")
    with session_scope(services(api_app).sessions) as session:
        fhir_store.add_api_client(session, name="user:clin", jwks=json.dumps(legacy.jwks), scopes="system/*.read",
                                  now=utcnow())
    refused = post_token(api_app, legacy.token_form(aud))
    assert oauth_error(refused) == "invalid_client" and "re-register" in refused.json["error_description"]


@pytest.mark.parametrize("text", ["1", "-1", "1e3", "null", '"keys"', "[]", '{"keys": 1}', '{"keys": [1]}',
                                  '{"keys": ["a"]}', '{"nokeys": []}', "{"])
def test_a_jwk_set_of_the_wrong_json_shape_is_a_clear_error(text: str) -> None:
    """The long fuzz run posted JSON numbers as the JWK set and got a 500 (AttributeError)."""
    with pytest.raises(ValueError, match="not a usable JWK set"):
        smart.parse_jwks(text)
