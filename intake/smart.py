"""SMART Backend Services for the FHIR API: client-credentials grant with a signed JWT assertion.

A registered client (`flask intake api-client NAME --jwks FILE --scope ...`) posts to
`/auth/token` a JWT it signed with one of its keys (RS384 or ES384; `iss` = `sub` = its name,
`aud` = the token URL, `exp` at most 5 minutes ahead, a `jti` never used before). It gets an access
token valid for 5 minutes carrying the requested scopes it is allowed (`system/*.read`,
`system/Observation.read`, or the SMART v2 `system/Observation.rs`). The access token is a JWT
signed (HS256) with a key derived from the app's secret, so checking it needs no database read;
revoking a client stops new tokens at once and old ones within their 5 minutes.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
from jwt import PyJWKSet
from sqlalchemy.orm import Session

from intake.storage import fhir_store
from intake.storage.models import ApiClient

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS384", "ES384")
ACCESS_ALGORITHM = "HS256"
TOKEN_LIFETIME = timedelta(minutes=5)
MAX_ASSERTION_LIFETIME = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=30)
SCOPE = re.compile(r"^system/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<mode>read|\*|[cruds]+)$")
READ_MODES = {"read", "*"}


class TokenError(Exception):
    """An OAuth error for the token endpoint (RFC 6749 §5.2): `error` code and a description."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


@dataclass(frozen=True)
class Grant:
    """Who an access token was issued to, and what it may read."""

    client: str
    scopes: frozenset[str]

    def can_read(self, resource_type: str) -> bool:
        for scope in self.scopes:
            match = SCOPE.match(scope)
            if match and match["type"] in ("*", resource_type) and (
                    match["mode"] in READ_MODES or ("r" in match["mode"] and "s" in match["mode"])):
                return True
        return False


def valid_scopes(text: str) -> list[str]:
    """The scopes of a space-separated list; ValueError naming the first that is not a system scope."""
    scopes = text.split()
    for scope in scopes:
        if not SCOPE.match(scope):
            raise ValueError(f"not a system scope: {scope!r} (e.g. system/*.read, system/Observation.rs)")
    return scopes


def parse_jwks(text: str) -> str:
    """Check a JWK set holds public RS384/ES384-capable keys only; return it as compact JSON."""
    try:
        document = json.loads(text)
        keys = PyJWKSet.from_dict(document).keys
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise ValueError(f"not a usable JWK set: {exc}") from exc
    for key in document["keys"]:
        if any(private in key for private in ("d", "p", "q")):
            raise ValueError("the JWK set holds a private key: register public keys only")
        if key.get("kty") not in ("RSA", "EC"):
            raise ValueError(f"key type {key.get('kty')!r}: use RSA (RS384) or EC P-384 (ES384)")
    if not keys:
        raise ValueError("the JWK set has no keys")
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def register_client(session: Session, *, name: str, jwks_text: str, scopes: str, now: datetime) -> ApiClient:
    """Register (or update) a client from its public JWK set and the scopes it may be granted;
    ValueError with a message fit to show when any part is unusable."""
    name = " ".join(name.split())
    if not name or len(name) > 255 or not name.isprintable():
        raise ValueError("a client name of 1 to 255 printable characters is required")
    jwks = parse_jwks(jwks_text)
    allowed = valid_scopes(scopes)
    return fhir_store.add_api_client(session, name=name, jwks=jwks, scopes=" ".join(allowed), now=now)


def _access_key(secret: str) -> bytes:
    return hashlib.sha256(b"intake smart access token\0" + secret.encode()).digest()


def issue_token(session: Session, form: dict[str, str], *, token_url: str, secret: str, now: datetime) -> dict[str, Any]:
    """Check a client-credentials request and return the token response (or raise TokenError)."""
    if form.get("grant_type") != "client_credentials":
        raise TokenError("unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise TokenError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = form.get("client_assertion") or ""
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TokenError("invalid_client", "client_assertion is not a JWT", 401) from exc
    if header.get("alg") not in ASSERTION_ALGORITHMS:
        raise TokenError("invalid_client", f"assertion alg must be one of {', '.join(ASSERTION_ALGORITHMS)}", 401)
    name = unverified.get("iss")
    client = fhir_store.active_api_client(session, name) if isinstance(name, str) and len(name) <= 255 else None
    if client is None:
        raise TokenError("invalid_client", "unknown or revoked client", 401)
    claims = _verified(assertion, header, client.jwks, name, token_url, now)
    expires = datetime.fromtimestamp(claims["exp"], tz=timezone.utc)
    if expires - now > MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
        raise TokenError("invalid_client", "assertion exp is more than 5 minutes ahead", 401)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= 255:
        raise TokenError("invalid_client", "assertion needs a jti", 401)
    if not fhir_store.use_assertion(session, client=name, jti=jti, expires_at=expires + CLOCK_SKEW, now=now):
        raise TokenError("invalid_client", "assertion jti was used before (replay)", 401)
    try:
        requested = valid_scopes(form.get("scope") or "")
    except ValueError as exc:
        raise TokenError("invalid_scope", str(exc)) from exc
    allowed = set(client.scopes.split())
    granted = [s for s in requested if s in allowed or _covered(s, allowed)]
    if not granted:
        raise TokenError("invalid_scope", "none of the requested scopes is allowed for this client")
    expiry = now + TOKEN_LIFETIME
    token = jwt.encode({"iss": token_url, "sub": name, "scope": " ".join(granted), "iat": int(now.timestamp()),
                        "exp": int(expiry.timestamp()), "jti": str(uuid.uuid4())},
                       _access_key(secret), algorithm=ACCESS_ALGORITHM)
    return {"access_token": token, "token_type": "bearer", "expires_in": int(TOKEN_LIFETIME.total_seconds()),
            "scope": " ".join(granted)}


def _covered(scope: str, allowed: set[str]) -> bool:
    """A narrower read scope is granted when the client may read more (system/*.read covers all)."""
    match = SCOPE.match(scope)
    wanted = match["type"] if match else None
    return wanted is not None and Grant("", frozenset(allowed)).can_read(wanted) and Grant("", frozenset([scope])).can_read(wanted)


def _verified(assertion: str, header: dict[str, Any], jwks: str, name: str, token_url: str, now: datetime) -> dict[str, Any]:
    keys = [k for k in PyJWKSet.from_dict(json.loads(jwks)).keys if header.get("kid") in (None, k.key_id)]
    for key in keys:
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion, key.key, algorithms=[header["alg"]], audience=token_url, issuer=name,
                leeway=CLOCK_SKEW, options={"require": ["iss", "sub", "aud", "exp", "jti"]})
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise TokenError("invalid_client", f"assertion rejected: {exc}", 401) from exc
        if claims["sub"] != name:
            raise TokenError("invalid_client", "assertion sub must equal iss (the client id)", 401)
        return claims
    raise TokenError("invalid_client", "assertion signature does not match a registered key", 401)


_VERIFIED: dict[tuple[str, str, str], tuple[Grant, float]] = {}
VERIFIED_CACHE_SIZE = 1024


def verify_access_token(token: str, *, secret: str, token_url: str) -> Grant | None:
    """The grant of a valid, unexpired access token issued here; None otherwise.

    A verified token is remembered until its `exp` (a client reuses its token for many calls;
    a dict lookup is cheaper than an HMAC check and JSON decoding on every FHIR read).
    """
    key = (token, secret, token_url)
    hit = _VERIFIED.get(key)
    if hit is not None and time.time() < hit[1]:
        return hit[0]
    try:
        claims = jwt.decode(token, _access_key(secret), algorithms=[ACCESS_ALGORITHM], issuer=token_url,
                            options={"require": ["sub", "scope", "exp"]})
    except jwt.PyJWTError:
        _VERIFIED.pop(key, None)
        return None
    grant = Grant(str(claims["sub"]), frozenset(str(claims["scope"]).split()))
    if len(_VERIFIED) >= VERIFIED_CACHE_SIZE:
        _VERIFIED.clear()
    _VERIFIED[key] = (grant, float(claims["exp"]))
    return grant
