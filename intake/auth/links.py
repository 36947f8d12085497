"""Patient links: 256-bit random tokens, stored only as SHA-256 hashes.

The raw token exists once, in the link printed for the patient; the database holds its hash, so
a copy of the database does not open anyone's intake.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32  # 256 bits


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
