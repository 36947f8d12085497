"""The exception tree (intake/errors.py): one status and one FHIR issue code per error, plain
Python that storage and services can import, and every error a caller may be shown is in it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from intake.auth.smart import TokenError
from intake.auth.staff import AccountError, UnknownUser, UserExists
from intake.documents import DocumentError
from intake.errors import ISSUE_CODES, IntakeError, issue_code
from intake.fhir.search import SearchError
from intake.storage.intakes import IntakeClosed, IntakeNotFound, StorageError
from intake.storage.responses import StaleResponse
from intake.web.fhir_api import FhirError
from intake.web.patient import LinkEnded
from intake.workflow import ConflictError, NotFoundError, WorkflowError

ROOT = Path(__file__).resolve().parents[1]

# Exceptions that are not shown to a caller, and why: each stays outside the tree on purpose.
OUTSIDE_THE_TREE = {
    "Retry": "control flow of the outbox runner (try again later), never shown",
    "Permanent": "control flow of the outbox runner (a dead letter), never shown",
    "PublishError": "a bug (stored data that fails FHIR validation): the edge's plain 500",
    "FhirPathError": "core, caught where expressions are evaluated; core imports nothing of the project",
    "RuleError": "core, a broken Questionnaire rule; caught by the workflow and the CLI",
    "CatalogError": "core, stops start-up; never reaches a request",
    "UrlRefused": "the PDF renderer's URL fetcher; WeasyPrint catches it",
    "ScoreInputError": "the `flask intake score` command's input; printed by the command",
    "CommandError": "the command line's failure: click prints it and exits 1",
    "DeliveryError": "base of Retry and Permanent: outbox control flow, never shown",
    "Held": "control flow of the outbox runner (kept for staff to link the patient), never shown",
    "MatchError": "staff input (EHR patient, record number): caught by the form or command that took it",
    "HttpStatusError": "an outside server's answer, mapped at once to Retry/Permanent or CapabilityError",
    "UnreachableError": "no answer from an outside server, mapped at once to Retry or CapabilityError",
    "NotJsonError": "an outside server's body that is not JSON, mapped at once by the caller",
    "CapabilityError": "`flask intake ehr check`'s failure to read the EHR: printed by the command",
    "ConfigError": "EHR auth settings: stops start-up with the setting's name; never reaches a request",
}


@pytest.mark.parametrize(("status", "code"), [
    (400, "invalid"), (401, "login"), (403, "forbidden"), (404, "not-found"), (409, "conflict"),
    (429, "throttled"), (405, "not-supported"), (413, "too-costly"), (418, "invalid"),
    (500, "exception"), (502, "exception"), (503, "exception"),
])
def test_each_status_has_one_fhir_issue_code(status: int, code: str) -> None:
    assert issue_code(status) == code


def test_every_code_in_the_table_is_an_r4_issue_type() -> None:
    r4_issue_types = {  # http://hl7.org/fhir/R4/valueset-issue-type.html
        "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown", "expired",
        "forbidden", "suppressed", "processing", "not-supported", "duplicate", "multiple-matches", "not-found",
        "deleted", "too-long", "code-invalid", "extension", "too-costly", "business-rule", "conflict",
        "transient", "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled", "informational",
    }
    assert set(ISSUE_CODES.values()) <= r4_issue_types
    assert issue_code(500) in r4_issue_types


def test_an_unclassified_error_is_a_500() -> None:
    error = IntakeError("something nobody classified")
    assert (error.status, error.code, error.message) == (500, "exception", "something nobody classified")


def test_one_raise_may_override_status_and_code() -> None:
    assert (IntakeError("x", status=404).status, IntakeError("x", status=404).code) == (404, "not-found")
    overridden = IntakeError("x", status=400, code="structure")
    assert (overridden.status, overridden.code) == (400, "structure")
    # a subclass's status override derives the code from the new status, not the class's
    assert (IntakeNotFound("i").status, IntakeNotFound("i").code) == (404, "not-found")


def test_repr_names_status_and_code_but_not_the_message() -> None:
    assert repr(IntakeError("Jane Doe typed this", status=400)) == "IntakeError(status=400, code='invalid')"


@pytest.mark.parametrize(("error", "status", "code"), [
    (IntakeNotFound("abc"), 404, "not-found"),
    (IntakeClosed("abc"), 409, "conflict"),
    (StaleResponse("abc"), 409, "conflict"),
    (WorkflowError("a patient name is required"), 400, "invalid"),
    (NotFoundError("no such intake"), 404, "not-found"),
    (ConflictError("this intake was already submitted"), 409, "conflict"),
    (AccountError("the role must be one of admin"), 400, "invalid"),
    (UnknownUser("no user 'x'"), 404, "not-found"),
    (UserExists("there is already a user 'x'"), 409, "conflict"),
    (DocumentError("intake abc is not completed and scored"), 409, "conflict"),
    (SearchError("status: unknown value"), 400, "invalid"),
    (TokenError("invalid_request", "send a scope"), 400, "invalid"),
    (TokenError("invalid_client", "unknown client", 401), 401, "login"),
    (FhirError(415, "not-supported", "send application/fhir+json"), 415, "not-supported"),
    (LinkEnded(), 403, "forbidden"),
], ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value))
def test_the_projects_errors_carry_their_status_and_code(error: IntakeError, status: int, code: str) -> None:
    assert isinstance(error, IntakeError)
    assert (error.status, error.code) == (status, code)


def test_storage_errors_share_a_base_and_name_the_intake() -> None:
    for error in (IntakeNotFound("abc"), IntakeClosed("abc"), StaleResponse("abc")):
        assert isinstance(error, StorageError) and error.intake_id == "abc" and "Intake/abc" in error.message


def test_search_errors_stay_value_errors() -> None:
    """Callers that caught ValueError from the search parser still do."""
    assert isinstance(SearchError("x"), ValueError)


def test_token_errors_keep_their_oauth_code() -> None:
    error = TokenError("invalid_client", "unknown client", 401)
    assert (error.error, error.description, error.message) == ("invalid_client", "unknown client", "unknown client")


def test_intake_errors_imports_nothing_of_the_framework_or_the_project() -> None:
    """Storage and services import it: it must not pull Flask (or anything above them) in."""
    probe = ("import sys, json, intake.errors; print(json.dumps(sorted(m for m in sys.modules "
             "if m.split('.')[0] in ('flask', 'werkzeug', 'sqlalchemy', 'flask_babel', 'intake'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                                       check=True).stdout)
    assert loaded == ["intake", "intake.errors"]


def _exception_classes() -> dict[str, str]:
    """Every class in intake/ whose bases include something called ...Error or ...Exception."""
    found = {}
    for path in (ROOT / "intake").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(base) for base in node.bases]
                if any(base.split(".")[-1].endswith(("Error", "Exception")) for base in bases):
                    found[node.name] = f"{path.relative_to(ROOT)}: {', '.join(bases)}"
    return found


def test_every_exception_class_joins_the_tree_or_says_why_not() -> None:
    """A new error class either derives from IntakeError (so the edge knows its status) or is
    listed in OUTSIDE_THE_TREE with the reason it is never shown to a caller."""
    classes = _exception_classes()
    outside = {name: where for name, where in classes.items() if name not in OUTSIDE_THE_TREE}
    tree = {"IntakeError"}
    changed = True
    while changed:  # the classes whose bases reach IntakeError through the tree
        changed = False
        for name, where in outside.items():
            bases = {base.split(".")[-1] for base in where.split(": ", 1)[1].split(", ")}
            if name not in tree and bases & tree:
                tree.add(name)
                changed = True
    assert {name: where for name, where in outside.items() if name not in tree} == {}
    assert {"StorageError", "WorkflowError", "AccountError", "TokenError", "FhirError", "LinkEnded"} <= tree
