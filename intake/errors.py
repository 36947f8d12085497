"""The one exception tree: every error a caller may be shown is an `IntakeError` that knows its
HTTP status and its FHIR issue code (OperationOutcome `issue.code`, an R4 IssueType).

Plain Python that imports nothing (no Flask, no SQLAlchemy, nothing of the project), so storage,
the services and the command line can raise these without reaching up a layer. Turning them
into responses is `intake.web.errors`' one job (an HTML page, an OperationOutcome or an OAuth
error, by blueprint); the command line prints the message.

The message of an error with a status below 500 is written for the person or client who made
the request and is safe to show them (no PHI beyond what they sent, no internals). A 5xx
message is for the log reader only: the edge never shows it.
"""

from __future__ import annotations

# The FHIR R4 IssueType for an HTTP status when the error has nothing more specific to say.
# https://hl7.org/fhir/R4/valueset-issue-type.html; 401 is "login" (authentication needed), as
# the FHIR HTTP page pairs them, not "invalid" (the request content is wrong).
ISSUE_CODES: dict[int, str] = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    414: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    431: "too-costly",
}


def issue_code(status: int) -> str:
    """The FHIR issue code for `status`: the table above, "invalid" for any other client error,
    "exception" for every server error (and anything that is not an error status)."""
    if 400 <= status < 500:
        return ISSUE_CODES.get(status, "invalid")
    return "exception"


class IntakeError(Exception):
    """Base of the errors a caller can be shown. Subclasses set `status` (and `code` when the
    status's usual code in `ISSUE_CODES` is not the right one); one raise may override both.

    Unsubclassed and without a status it is a 500: an error nobody classified is a bug.
    """

    status: int = 500
    code: str = ""  # empty: issue_code(status)

    def __init__(self, message: str = "", *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.code = code or (type(self).code if status is None else "") or issue_code(self.status)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r})"

