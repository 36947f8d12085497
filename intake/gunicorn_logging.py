"""gunicorn's logger with patient link tokens and query strings kept out of every log line.

A patient link is `/i/<token>`: whoever reads the token can open the patient's intake, so it must
never reach a log. Query strings are dropped whole: FHIR searches carry names and birth dates,
staff sign-in a `next` URL. gunicorn's default access line logs the raw request line with both.

`MaskingLogger.atoms` rewrites every access-log atom that can hold a URL (request line, path,
referer, `Location`, the environ's URI keys) to its path alone, percent-decoded so `/%69/<token>`
is caught too, with the link token replaced by `[redacted]` and then re-quoted (no control
characters reach the log); cookies and credentials are replaced whole. A filter on both of
gunicorn's loggers masks tokens in any message (e.g. "Error handling request /i/<token>").
Used from gunicorn.conf.py: `logger_class = "intake.gunicorn_logging.MaskingLogger"`.
"""

from __future__ import annotations

import logging
import re
from typing import Any, cast
from urllib.parse import quote, unquote

from gunicorn.glogging import Logger

REDACTED = "[redacted]"
# In a decoded path (query already cut off): "/i/" and everything after it.
_LINK_IN_PATH = re.compile(r"/i/.*", re.IGNORECASE | re.DOTALL)
# In free text: "/i/", also percent-encoded (gunicorn decodes %2F and %69 before Flask routes),
# up to the next space or quote.
_LINK_IN_TEXT = re.compile(r"(?:/|%2f)(?:i|%69|%49)(?:/|%2f)[^\s\"'<>]*", re.IGNORECASE)
# In free text: a path's query string (a URL logged in a message, e.g. a failed request's).
_QUERY_IN_TEXT = re.compile(r"(/[^\s?\"'<>]*)\?[^\s\"'<>]*")
_SCHEME_AUTHORITY = re.compile(r"^[a-z][a-z0-9+.-]*://[^/]*", re.IGNORECASE)
# Characters left as they are when a decoded path is quoted again for the log.
_PATH_SAFE = "/:@!$&'()*+,;=-._~[]"
_SECRET_HEADERS = frozenset({"cookie", "set-cookie", "authorization", "proxy-authorization", "x-api-key"})
_URL_HEADERS = frozenset({"referer", "location", "content-location"})
_URL_ENVIRON = frozenset({"raw_uri", "path_info", "request_uri", "script_name", "http_referer"})
_QUERY_ENVIRON = frozenset({"query_string"})
_SECRET_ENVIRON = frozenset({"http_cookie", "http_authorization", "http_proxy_authorization", "http_x_api_key"})


def mask_text(text: str) -> str:
    """`text` with every `/i/<token...>` replaced by `/i/[redacted]`."""
    return _LINK_IN_TEXT.sub("/i/" + REDACTED, text)


def mask_url(url: str) -> str:
    """The path of `url` (no scheme, host, query or fragment), decoded, masked and re-quoted.

    Not `urlsplit`: it reads "//i/<token>" as a host "i" and a path "/<token>".
    """
    if not url or url == "-":
        return url
    path = _SCHEME_AUTHORITY.sub("", re.split(r"[?#]", url, maxsplit=1)[0])
    decoded = unquote(path, errors="replace")
    masked = mask_text(_LINK_IN_PATH.sub("/i/" + REDACTED, decoded))
    return quote(masked, safe=_PATH_SAFE)


def _clean(kind: str, name: str, value: Any) -> Any:
    """One header ("i"/"o") or environ ("e") atom made safe to log."""
    if not isinstance(value, str):
        return value
    if kind == "e":
        if name in _SECRET_ENVIRON:
            return REDACTED
        if name in _QUERY_ENVIRON:
            return "-"
        if name in _URL_ENVIRON:
            return mask_url(value)
        return mask_text(value)
    if name in _SECRET_HEADERS:
        return REDACTED
    if name in _URL_HEADERS:
        return mask_url(value)
    return mask_text(value)


class _MaskFilter(logging.Filter):
    """Masks link tokens, and drops query strings after paths, in the final message of any record
    on the logger it is attached to."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _QUERY_IN_TEXT.sub(r"\1", mask_text(message))
        if masked != message:
            record.msg, record.args = masked, None
        return True


class MaskingLogger(Logger):
    """gunicorn's Logger with link tokens, query strings and credentials masked."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):  # setup runs again on a config reload
            if not any(isinstance(f, _MaskFilter) for f in log.filters):
                log.addFilter(_MaskFilter())

    # The atoms also hold `{name}i`-style header keys, which the stub's TypedDict cannot name.
    def atoms(  # type: ignore[override]
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any
    ) -> dict[str, Any]:
        atoms = cast(dict[str, Any], super().atoms(resp, req, environ, request_time))
        path = mask_url(environ.get("RAW_URI") or environ.get("PATH_INFO") or "")
        atoms["r"] = f"{environ.get('REQUEST_METHOD', '-')} {path} {environ.get('SERVER_PROTOCOL', '-')}"
        atoms["U"] = mask_url(environ.get("PATH_INFO") or "")
        atoms["q"] = "-"
        atoms["u"] = "-"  # a Basic-auth user name would be decoded here; nobody logs in that way
        atoms["f"] = mask_url(atoms.get("f") or "-")
        for key, value in list(atoms.items()):
            if len(key) > 3 and key[0] == "{" and key[-2] == "}":
                atoms[key] = _clean(key[-1], key[1:-2], value)
        return atoms
