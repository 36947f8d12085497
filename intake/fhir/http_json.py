"""One JSON request to an outside server, with its three ways of failing told apart.

The EHR's token endpoint, its `.well-known` document and its `/metadata` are all "GET or POST,
expect a JSON object"; callers differ only in what a failure means to them (retry the push,
give up, or tell the operator), so they map these errors and nothing else.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class HttpStatusError(Exception):
    """The server answered with an HTTP error status; `body` is what it said (may quote PHI)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


class UnreachableError(Exception):
    """No answer: refused, name not resolved, timed out. `str()` names the cause's type only (for
    logs); `detail` is the cause's own words (for an operator at a terminal)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(kind)
        self.detail = detail


class NotJsonError(Exception):
    """A 2xx answer whose body is not JSON."""


def call_json(request: urllib.request.Request, timeout: float) -> Any:
    """The parsed JSON body of a 2xx answer to `request` (any JSON value: callers check the shape)."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # configured URL
            body = response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            raise HttpStatusError(exc.code, exc.read()) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        cause = getattr(exc, "reason", exc)
        kind = type(cause).__name__ if isinstance(cause, BaseException) else "URLError"
        raise UnreachableError(kind, str(cause)) from None
    try:
        return json.loads(body)
    except ValueError:
        raise NotJsonError from None
