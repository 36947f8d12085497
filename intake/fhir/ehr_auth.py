"""How the EHR push authenticates: a static bearer token, or SMART Backend Services.

`INTAKE_EHR_AUTH=bearer` (the default) sends INTAKE_EHR_BEARER_TOKEN as it is (or nothing).

`INTAKE_EHR_AUTH=smart-backend` is the SMART Backend Services client-credentials grant towards
the EHR (https://hl7.org/fhir/smart-app-launch/backend-services.html), the way this service's own
`/auth/token` expects its clients to come (intake/auth/smart.py, whose algorithms and assertion
type are reused here):

- the service's private key (RSA of 2048 bits or more → RS384, EC P-384 → ES384) is read from
  the PEM file INTAKE_EHR_CLIENT_KEY_FILE: never from the database, never logged; its public half
  is served at `/.well-known/jwks.json` (`public_jwks`), the JWKS URL to register at the EHR
  (Epic requires one), and named in each assertion's `jku` header;
- an assertion (`iss` = `sub` = INTAKE_EHR_CLIENT_ID, `aud` = the token URL, `exp` 4 minutes
  ahead, a fresh `jti`) is exchanged at the EHR's token endpoint — INTAKE_EHR_TOKEN_URL, or the
  `token_endpoint` of `{INTAKE_EHR_FHIR_BASE}/.well-known/smart-configuration` — for an access
  token with INTAKE_EHR_SCOPE;
- the token is kept (per app, in memory) until shortly before it expires, and when the EHR
  answers 401 to a push it is dropped and a new one is fetched once (`with_token`).

Token endpoint failures: 5xx, 429 and network errors are retried later (`Retry`); a 4xx is a dead
letter naming the OAuth `error` code only (`Permanent`): its description may echo what we sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from intake.auth.smart import ASSERTION_ALGORITHMS, ASSERTION_TYPE
from intake.fhir.http_json import HttpStatusError, NotJsonError, UnreachableError, call_json
from intake.jobs.errors import Permanent, Retry

AUTH_MODES = ("bearer", "smart-backend")
JWKS_PATH = "/.well-known/jwks.json"
ASSERTION_LIFETIME_S = 240  # under the 5 minutes SMART allows, with room for clock skew
EXPIRY_MARGIN_S = 30.0  # a token is renewed this long before it expires (or at half its life)
DEFAULT_LIFETIME_S = 300.0  # when the token response has no expires_in
EXTENSION = "intake.ehr_auth"
USER_AGENT = "intake-ehr-push"
T = TypeVar("T")


class ConfigError(ValueError):
    """The EHR auth settings cannot work (raised at start-up: the deployment must fix them)."""


class Unauthorized(Permanent):
    """The EHR answered 401: a dead letter unless a fresh token fixes it (`with_token`)."""


@dataclass(frozen=True)
class SigningKey:
    """The service's private key, the algorithm it signs with and its key id."""

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    alg: str
    kid: str

    def public_jwk(self) -> dict[str, Any]:
        public = self.key.public_key()
        encoded = (RSAAlgorithm.to_jwk(public) if isinstance(public, rsa.RSAPublicKey)
                   else ECAlgorithm.to_jwk(public))
        return {**json.loads(encoded), "kid": self.kid, "alg": self.alg, "use": "sig"}


def load_signing_key(path: str, kid: str = "") -> SigningKey:
    """The PEM private key at `path` (unencrypted PKCS#8 or traditional): RS384 for RSA of 2048
    bits or more, ES384 for EC P-384. `kid` defaults to the key's RFC 7638 thumbprint.
    ConfigError naming the file, never its content."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"INTAKE_EHR_CLIENT_KEY_FILE {path}: cannot read it ({type(exc).__name__})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"INTAKE_EHR_CLIENT_KEY_FILE {path}: not an unencrypted PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        alg = "RS384"
    elif isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        alg = "ES384"
    else:
        raise ConfigError(f"INTAKE_EHR_CLIENT_KEY_FILE {path}: use an RSA key of 2048 bits or more (RS384) "
                          "or an EC P-384 key (ES384)")
    assert alg in ASSERTION_ALGORITHMS  # the algorithms SMART Backend Services requires servers to take
    signing = SigningKey(key, alg, kid)
    return signing if kid else SigningKey(key, alg, thumbprint(signing.public_jwk()))


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a stable key id for the published key."""
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def check_config(config: Mapping[str, Any]) -> None:
    """Refuse settings that cannot work, at start-up rather than at the first push."""
    mode = config.get("INTAKE_EHR_AUTH", "bearer")
    if mode not in AUTH_MODES:
        raise ConfigError(f"INTAKE_EHR_AUTH must be one of {', '.join(AUTH_MODES)}, not {mode!r}")
    if mode == "smart-backend":
        if not config.get("INTAKE_EHR_CLIENT_ID"):
            raise ConfigError("INTAKE_EHR_AUTH=smart-backend needs INTAKE_EHR_CLIENT_ID (the client id the EHR gave)")
        if not config.get("INTAKE_EHR_CLIENT_KEY_FILE"):
            raise ConfigError("INTAKE_EHR_AUTH=smart-backend needs INTAKE_EHR_CLIENT_KEY_FILE (a PEM private key)")
        load_signing_key(config["INTAKE_EHR_CLIENT_KEY_FILE"], config.get("INTAKE_EHR_CLIENT_KEY_ID", ""))


class EhrAuth:
    """One app's EHR credentials: the bearer token, or the signing key and the cached access token."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.mode = str(config.get("INTAKE_EHR_AUTH") or "bearer")
        self.bearer = str(config.get("INTAKE_EHR_BEARER_TOKEN") or "")
        self.base = str(config.get("INTAKE_EHR_FHIR_BASE") or "").rstrip("/")
        self.client_id = str(config.get("INTAKE_EHR_CLIENT_ID") or "")
        self.scope = str(config.get("INTAKE_EHR_SCOPE") or "")
        self.timeout = float(config.get("INTAKE_EHR_TIMEOUT_SECONDS") or 30.0)
        self.jku = str(config.get("INTAKE_BASE_URL") or "").rstrip("/") + JWKS_PATH
        self._token_url = str(config.get("INTAKE_EHR_TOKEN_URL") or "")
        self._key = (load_signing_key(config["INTAKE_EHR_CLIENT_KEY_FILE"], config.get("INTAKE_EHR_CLIENT_KEY_ID", ""))
                     if self.mode == "smart-backend" else None)
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None  # (access token, monotonic time to renew at)
        self.fetched = 0  # tokens fetched from the EHR (for the admin's and the tests' eyes)

    @property
    def refreshable(self) -> bool:
        return self._key is not None

    @property
    def signing_key(self) -> SigningKey | None:
        return self._key

    def token(self) -> str:
        """The token to send: the bearer token, or a cached access token (fetched when missing or
        about to expire)."""
        if self._key is None:
            return self.bearer
        with self._lock:
            if self._token is None or time.monotonic() >= self._token[1]:
                self._token = self._fetch(self._key)
            return self._token[0]

    def forget(self, token: str) -> None:
        """Drop `token` (the EHR refused it); a token fetched meanwhile by another thread stays."""
        with self._lock:
            if self._token is not None and self._token[0] == token:
                self._token = None

    def token_url(self) -> str:
        """INTAKE_EHR_TOKEN_URL, or the EHR's advertised `token_endpoint` (looked up once)."""
        if not self._token_url:
            config = _get_json(f"{self.base}/.well-known/smart-configuration", self.timeout, "smart-configuration")
            endpoint = config.get("token_endpoint")
            if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
                raise Permanent("EHR smart-configuration has no token_endpoint URL")
            self._token_url = endpoint
        return self._token_url

    def assertion(self, key: SigningKey, token_url: str) -> str:
        """A client assertion for `token_url`, signed with the service's key."""
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": token_url, "iat": now,
                  "exp": now + ASSERTION_LIFETIME_S, "jti": str(uuid.uuid4())}
        headers = {"kid": key.kid, "typ": "JWT", "jku": self.jku}
        return jwt.encode(claims, key.key, algorithm=key.alg, headers=headers)

    def _fetch(self, key: SigningKey) -> tuple[str, float]:
        url = self.token_url()
        form = {"grant_type": "client_credentials", "scope": self.scope, "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(key, url)}
        body = _post_form(url, form, self.timeout)
        token, lifetime = body.get("access_token"), body.get("expires_in", DEFAULT_LIFETIME_S)
        if not isinstance(token, str) or not token:
            raise Permanent("EHR token endpoint: no access_token in its answer")
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime <= 0:
            lifetime = DEFAULT_LIFETIME_S
        self.fetched += 1
        return token, time.monotonic() + float(lifetime) - min(EXPIRY_MARGIN_S, float(lifetime) / 2)


def of(app: Flask) -> EhrAuth:
    """The app's `EhrAuth`, made on first use (one per app, so its token cache is shared by threads)."""
    found = app.extensions.get(EXTENSION)
    if found is None:
        found = app.extensions.setdefault(EXTENSION, EhrAuth(app.config))
    auth: EhrAuth = found
    return auth


def with_token(app: Flask, call: Callable[[str], T]) -> T:
    """`call(token)`; when it raises `Unauthorized` and tokens come from the EHR's token endpoint,
    once more with a freshly fetched token (the EHR may have revoked or rotated the first)."""
    auth = of(app)
    token = auth.token()
    try:
        return call(token)
    except Unauthorized:
        if not auth.refreshable:
            raise
        auth.forget(token)
        return call(auth.token())


def public_jwks(app: Flask) -> dict[str, Any]:
    """The JWK set to register at the EHR: the service's public key, or no keys without one."""
    key = of(app).signing_key
    return {"keys": [key.public_jwk()] if key is not None else []}


# --- HTTP (the token endpoint speaks OAuth JSON, not FHIR) ------------------------------------------


def _post_form(url: str, form: Mapping[str, str], timeout: float) -> dict[str, Any]:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json", "User-Agent": USER_AGENT})
    return _json_call(request, timeout, "token endpoint")


def _get_json(url: str, timeout: float, what: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": USER_AGENT})
    return _json_call(request, timeout, what)


def _json_call(request: urllib.request.Request, timeout: float, what: str) -> dict[str, Any]:
    """A JSON object from the EHR; a failure is a Retry (it may pass) or Permanent (it will not)."""
    try:
        document = call_json(request, timeout)
    except HttpStatusError as exc:
        reason = f"EHR {what}: HTTP {exc.status}{_oauth_error(exc.body)}"
        if exc.status in (408, 429) or exc.status >= 500:
            raise Retry(reason) from None
        raise Permanent(reason) from None
    except UnreachableError as exc:
        raise Retry(f"EHR {what}: {exc}") from None
    except NotJsonError:
        document = None
    if not isinstance(document, dict):
        raise Permanent(f"EHR {what}: the answer is not a JSON object")
    return document


def _oauth_error(body: bytes) -> str:
    """The OAuth `error` code (RFC 6749 5.2), when it is one: ` (invalid_client)`."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    return f" ({error})" if isinstance(error, str) and error.replace("_", "").isalnum() and len(error) < 64 else ""
