"""A SMART Backend Services client for tests and benchmarks: a key pair, its registration, and
signed assertions exchanged for access tokens at /auth/token."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def token_endpoint(app: Flask) -> str:
    """The token URL an assertion must name: the app's INTAKE_BASE_URL + /auth/token, whatever
    host the request reaches it by."""
    return str(app.config["INTAKE_BASE_URL"]).rstrip("/") + "/auth/token"


class SmartClient:
    def __init__(self, name: str, alg: str = "RS384") -> None:
        self.name, self.alg, self.kid = name, alg, f"{name}-key-1"
        if alg == "RS384":
            self.key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        else:
            self.key = ec.generate_private_key(ec.SECP384R1())
            public = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**public, "kid": self.kid, "alg": alg, "use": "sig"}]}

    def register(self, app: Flask, folder: Path, *scopes: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.jwks.json"
        path.write_text(json.dumps(self.jwks))
        args = ["intake", "api-client", self.name, "--jwks", str(path)]
        for scope in scopes:
            args += ["--scope", scope]
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 0, result.output

    def assertion(self, audience: str, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": self.name, "sub": self.name, "aud": audience, "exp": now + 240, "jti": str(uuid.uuid4()),
                **claims}
        return jwt.encode(body, self.key, algorithm=self.alg, headers={"kid": self.kid})

    def token_form(self, audience: str, scope: str = "system/*.read", **claims: Any) -> dict[str, str]:
        return {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(audience, **claims), "scope": scope}

    def token(self, app: Flask, scope: str = "system/*.read", base_url: str = "http://localhost") -> str:
        """An access token from the app's token endpoint, reached at `base_url` (the assertion names
        the configured endpoint, `token_endpoint(app)`)."""
        response = app.test_client().post("/auth/token", data=self.token_form(token_endpoint(app), scope),
                                          base_url=base_url)
        assert response.status_code == 200, response.text
        return str(response.json["access_token"])  # type: ignore[index]
