"""SMART Backend Services for the FHIR API: client-credentials grant with a signed JWT assertion.

A registered client (`flask intake api-client NAME --jwks FILE --scope ...`) posts to
`/auth/token` a JWT it signed with one of its keys (RS384 or ES384; `iss` = `sub` = its name,
`aud` = the token URL, `exp` at most 5 minutes ahead, a `jti` never used before). The token URL is
INTAKE_BASE_URL + `/auth/token`, never the Host header a request arrived with: an assertion made
for another server is refused whatever host or proxy header names that server.

It gets an access token valid for 5 minutes carrying what its registration allows of the scopes
it asked for, per resource type and per permission, in SMART v1 (`system/*.read`, `.write`, `.*`)
or v2 syntax (`system/Observation.rs`, `.cruds`): asking for more grants the allowed part (the
token response's `scope` says exactly what), scopes this server does not support (`launch/patient`,
`openid`, `offline_access`, `user/...`, v2 search-parameter filters `?category=...`, which the API
cannot enforce) are left out, and `invalid_scope` only when nothing asked for is allowed.

The access token is a JWT signed (HS256) with a key derived from the app's secret, so checking it
needs no database read; revoking a client stops new tokens at once and old ones within their 5
minutes. It names the kind of principal (`kind`: "client") beside its name: a client is never
taken for a staff user, whatever it is called.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
from jwt import PyJWKSet
from sqlalchemy.orm import Session

from intake.errors import IntakeError
from intake.storage import fhir_store
from intake.storage.models import ApiClient

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS384", "ES384")
ACCESS_ALGORITHM = "HS256"
TOKEN_LIFETIME = timedelta(minutes=5)
MAX_ASSERTION_LIFETIME = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=30)
# system/<type or *>.<v1 read|write|* or v2 permissions in the order c r u d s>[?search filter]
SCOPE = re.compile(r"^system/(?P<type>\*|[A-Z][A-Za-z]{0,63})\.(?P<mode>read|write|\*|(?=[cruds])c?r?u?d?s?)"
                   r"(?:\?(?P<query>\S*))?$")
PERMISSIONS = "cruds"
V1_MODES = {"read": "rs", "write": "cud", "*": "cruds"}
# Client names may hold neither the separator of `kind:name` keys nor of `Type/id` references, nor
# be a kind prefix itself (`user` was one: a client called `user:clin` was once logged as that user).
RESERVED_NAMES = frozenset({"user", "client"})
# Seconds since the epoch a NumericDate claim may hold: up to 9999-12-31 (datetime's range).
MAX_NUMERIC_DATE = 253_402_300_799


class TokenError(IntakeError):
    """An OAuth error for the token endpoint (RFC 6749 §5.2): `error` code, a description and the
    status (400, or 401 "login" for a client that did not authenticate)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description, status=status)
        self.error, self.description = error, description


@dataclass(frozen=True)
class Scope:
    """One parsed system scope: a resource type (or "*"), its permissions (letters of "cruds"),
    the v2 search filter if any, and whether it was written in v1 syntax."""

    resource_type: str
    permissions: frozenset[str]
    query: str | None
    v1: bool


def parse_scope(text: str) -> Scope | None:
    """The system scope `text` names, in v1 or v2 syntax; None for anything else."""
    match = SCOPE.match(text)
    if match is None:
        return None
    mode = match["mode"]
    letters = V1_MODES.get(mode, mode)
    return Scope(match["type"], frozenset(letters), match["query"], mode in V1_MODES)


def scope_text(resource_type: str, permissions: frozenset[str], v1: bool) -> str:
    """A scope for these permissions, in v1 syntax when asked and one v1 word says it exactly."""
    letters = "".join(p for p in PERMISSIONS if p in permissions)
    if v1:
        for word, word_letters in V1_MODES.items():
            if letters == word_letters:
                return f"system/{resource_type}.{word}"
    return f"system/{resource_type}.{letters}"


@dataclass(frozen=True)
class Grant:
    """Who is asking through the FHIR API — an API client with an access token (`kind` "client")
    or a signed-in staff member (`kind` "user") — and the scopes that bound what it may do."""

    kind: str
    name: str
    scopes: frozenset[str]

    @property
    def client(self) -> str:
        """The principal's key, unique across kinds, for what it owns (its bulk-export jobs): a
        client's name (client names never hold ':'), or `user:NAME` for a staff member."""
        return self.name if self.kind == "client" else f"{self.kind}:{self.name}"

    def allows(self, resource_type: str, permission: str) -> bool:
        """Whether a scope without a search filter gives `permission` (one of c r u d s) on the type
        (filters are never granted: the API could not keep to them)."""
        for text in self.scopes:
            scope = parse_scope(text)
            if (scope is not None and scope.query is None and scope.resource_type in ("*", resource_type)
                    and permission in scope.permissions):
                return True
        return False

    def can_read(self, resource_type: str) -> bool:
        """Read and search, which every read route of the API needs (v1 `.read`, v2 `.rs`)."""
        return self.allows(resource_type, "r") and self.allows(resource_type, "s")


def valid_scopes(text: str) -> list[str]:
    """The scopes of a space-separated list a client may be registered for; ValueError naming the
    first that is not a system scope, or has a search filter (the API could not enforce it)."""
    scopes = text.split()
    for text_scope in scopes:
        scope = parse_scope(text_scope)
        if scope is None:
            raise ValueError(f"not a system scope: {text_scope!r} (e.g. system/*.read, system/Observation.rs)")
        if scope.query is not None:
            raise ValueError(f"{text_scope!r}: search-parameter filters in scopes are not supported; "
                             "register the scope without '?...'")
    return scopes


def granted_scopes(requested: Iterable[str], registered: Iterable[str]) -> list[str]:
    """What a client registered for `registered` gets when it asks for `requested`: for each scope
    asked, the permissions the registration gives on that resource type (for "*", on each type
    the registration names), written as asked when granted whole; unsupported scopes give nothing."""
    allowed = [s for s in map(parse_scope, registered) if s is not None and s.query is None]
    granted: dict[str, None] = {}
    for text in requested:
        wanted = parse_scope(text)
        if wanted is None or wanted.query is not None:
            continue
        by_type: dict[str, set[str]] = {}
        for scope in allowed:
            if wanted.resource_type == "*":
                by_type.setdefault(scope.resource_type, set()).update(scope.permissions & wanted.permissions)
            elif scope.resource_type in ("*", wanted.resource_type):
                by_type.setdefault(wanted.resource_type, set()).update(scope.permissions & wanted.permissions)
        for resource_type, permissions in by_type.items():
            if not permissions:
                continue
            whole = resource_type == wanted.resource_type and permissions == wanted.permissions
            granted[text if whole else scope_text(resource_type, frozenset(permissions), wanted.v1)] = None
    return list(granted)


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a client's name, or None: it must not pass for another kind of actor
    in the audit log or anywhere a kind prefix is written (`user:NAME`)."""
    if not name or len(name) > 255 or not name.isprintable():
        return "a client name of 1 to 255 printable characters is required"
    if ":" in name or "/" in name or name.casefold() in RESERVED_NAMES:
        return (f"client name {name!r} could be mistaken for another kind of actor: use no ':' or '/', "
                f"and none of {', '.join(sorted(RESERVED_NAMES))}")
    return None


def parse_jwks(text: str) -> str:
    """Check a JWK set holds public RS384/ES384-capable keys only; return it as compact JSON."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not a usable JWK set: {exc}") from exc
    if not (isinstance(document, dict) and isinstance(document.get("keys"), list)
            and all(isinstance(key, dict) for key in document["keys"])):
        raise ValueError('not a usable JWK set: expected a JSON object {"keys": [ {...}, ... ]}')
    try:
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
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    jwks = parse_jwks(jwks_text)
    allowed = valid_scopes(scopes)
    return fhir_store.add_api_client(session, name=name, jwks=jwks, scopes=" ".join(allowed), now=now)


def _access_key(secret: str) -> bytes:
    return hashlib.sha256(b"intake smart access token\0" + secret.encode()).digest()


def token_url(base_url: str) -> str:
    """The token endpoint of the service at `base_url` (INTAKE_BASE_URL): the `aud` an assertion must
    name and the `iss` of the access tokens issued there."""
    return base_url.rstrip("/") + "/auth/token"


def issue_token(session: Session, form: dict[str, str], *, token_url: str, secret: str, now: datetime) -> dict[str, Any]:
    """Check a client-credentials request and return the token response (or raise TokenError)."""
    if form.get("grant_type") != "client_credentials":
        raise TokenError("unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise TokenError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
    header, unverified = _unverified(form.get("client_assertion") or "")
    name = unverified["iss"]
    client = fhir_store.active_api_client(session, name)
    if client is None:
        raise TokenError("invalid_client", "unknown or revoked client", 401)
    if name_problem(name) is not None:
        raise TokenError("invalid_client", f"client name {name!r} could be mistaken for another kind of actor: "
                                           "re-register the client under a name without ':' or '/'", 401)
    claims = _verified(form["client_assertion"], header, client.jwks, name, token_url, now)
    expires = datetime.fromtimestamp(claims["exp"], tz=timezone.utc)
    if expires - now > MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
        raise TokenError("invalid_client", "assertion exp is more than 5 minutes ahead", 401)
    if not fhir_store.use_assertion(session, client=name, jti=claims["jti"], expires_at=expires + CLOCK_SKEW, now=now):
        raise TokenError("invalid_client", "assertion jti was used before (replay)", 401)
    granted = granted_scopes((form.get("scope") or "").split(), client.scopes.split())
    if not granted:
        raise TokenError("invalid_scope", f"none of the requested scopes is allowed for this client "
                                          f"(it may be granted: {client.scopes})")
    expiry = now + TOKEN_LIFETIME
    token = jwt.encode({"iss": token_url, "sub": name, "kind": "client", "scope": " ".join(granted),
                        "iat": int(now.timestamp()), "exp": int(expiry.timestamp()), "jti": str(uuid.uuid4())},
                       _access_key(secret), algorithm=ACCESS_ALGORITHM)
    return {"access_token": token, "token_type": "bearer", "expires_in": int(TOKEN_LIFETIME.total_seconds()),
            "scope": " ".join(granted)}


def _bad_client(description: str) -> TokenError:
    return TokenError("invalid_client", description, 401)


def _unverified(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and claims of an assertion before its signature is checked, each of the shape
    the checks after rely on (TokenError otherwise): hostile values never reach the database,
    `datetime` or PyJWT's claim checks, which raise more than PyJWTError on some of them."""
    try:
        header = jwt.get_unverified_header(assertion)
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError) as exc:
        raise _bad_client("client_assertion is not a JWT") from exc
    if header.get("alg") not in ASSERTION_ALGORITHMS:
        raise _bad_client(f"assertion alg must be one of {', '.join(ASSERTION_ALGORITHMS)}")
    if "kid" in header and not _fit_string(header["kid"]):
        raise _bad_client("assertion kid must be a string")
    for claim in ("iss", "sub", "jti"):
        if not _fit_string(claims.get(claim)):
            raise _bad_client(f"assertion {claim} must be a string of 1 to 255 printable characters")
    for claim in ("exp", "iat", "nbf"):
        if (claim == "exp" or claim in claims) and not _numeric_date(claims.get(claim)):
            raise _bad_client(f"assertion {claim} must be a NumericDate (seconds since 1970, up to year 9999)")
    return header, claims


def _fit_string(value: Any) -> bool:
    """A string the database and the audit log take as it is: printable, 1-255 characters, UTF-8."""
    return (isinstance(value, str) and 0 < len(value) <= 255 and value.isprintable()
            and not any(0xD800 <= ord(c) <= 0xDFFF for c in value))


def _numeric_date(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 <= value <= MAX_NUMERIC_DATE)


def _verified(assertion: str, header: dict[str, Any], jwks: str, name: str, token_url: str, now: datetime) -> dict[str, Any]:
    """The claims once the signature of one of the client's keys of the header's algorithm matches
    and `aud`, `iss`, `exp`, `nbf` and `iat` hold; TokenError otherwise."""
    key_type = "RSA" if header["alg"].startswith("RS") else "EC"
    keys = [k for k in PyJWKSet.from_dict(json.loads(jwks)).keys
            if k.key_type == key_type and header.get("kid") in (None, k.key_id)]
    for key in keys:
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion, key.key, algorithms=[header["alg"]], audience=token_url, issuer=name,
                leeway=CLOCK_SKEW, options={"require": ["iss", "sub", "aud", "exp", "jti"]})
        except jwt.InvalidSignatureError:
            continue
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise _bad_client(f"assertion rejected: {exc}") from exc
        if claims["sub"] != name:
            raise _bad_client("assertion sub must equal iss (the client id)")
        return claims
    raise _bad_client("assertion signature does not match a registered key")


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
                            options={"require": ["sub", "kind", "scope", "exp"]})
    except (jwt.PyJWTError, ValueError, TypeError):
        _VERIFIED.pop(key, None)
        return None
    if claims["kind"] != "client":  # only clients are issued tokens (tokens from before `kind` expired long ago)
        return None
    grant = Grant("client", str(claims["sub"]), frozenset(str(claims["scope"]).split()))
    if len(_VERIFIED) >= VERIFIED_CACHE_SIZE:
        _VERIFIED.clear()
    _VERIFIED[key] = (grant, float(claims["exp"]))
    return grant
