"""`flask intake score PATH`: scores, flags and findings of QuestionnaireResponses, as JSON.

PATH is one QuestionnaireResponse, a Bundle of them (any Bundle type; entries that are not
QuestionnaireResponses are skipped, except Patients, which may supply the birth date), or `-` for
stdin. Every response is validated against its Questionnaire from the app's catalog first:

* unreadable input, bad JSON, not a QuestionnaireResponse or Bundle, responses of different
  subjects or two responses to one Questionnaire: one line `error: ...` on stderr, exit 1;
* an unknown Questionnaire or any validation error: the OperationOutcome (JSON) on stderr, nothing
  on stdout, exit 1;
* otherwise all responses are scored together as one intake (`score_intake`, so cross-domain
  notes see every domain) and `Result.as_json()` is printed to stdout, exit 0.

The birth date (`%birthDate` in the rules) is `--birth-date`, else the birthDate of the Patient
the responses' `subject` references, found among the response's `contained` resources (`#id`) or
the Bundle's entries (by fullUrl or `Patient/id`). Messages never echo answers.

Self-contained on purpose: `intake.cli` registers it; of the other command modules it imports only
`intake.cli.failure` (how a command refuses).
"""

from __future__ import annotations

import json
import re
import sys
from datetime import date
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from intake.cli.failure import CommandError
from intake.core.catalog import Catalog
from intake.core.items import Form
from intake.core.scoring import Context, RuleError, score_intake
from intake.core.validation import Issue, has_errors, validate
from intake.services import services

FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
RESOURCE_TYPE = re.compile(r"^[A-Za-z]{1,64}$")


class ScoreInputError(Exception):
    """Input that cannot be scored; the message is the one line printed after `error: `."""


# --- reading ------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _stdin_bytes() -> bytes:
    buffer = getattr(sys.stdin, "buffer", None)
    return buffer.read() if buffer is not None else sys.stdin.read().encode("utf-8")


def read_input(path: str) -> tuple[str, Any]:
    """(label for messages, parsed JSON) of `path`, or of stdin for `-`."""
    label = "stdin" if path == "-" else path
    try:
        data = _stdin_bytes() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise ScoreInputError(f"{label}: cannot be read: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScoreInputError(f"{label}: not UTF-8 text (byte {exc.start})") from exc
    if not text.strip():
        raise ScoreInputError(f"{label}: is empty")
    try:
        return label, json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ScoreInputError(f"{label}: not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except ValueError as exc:  # NaN / Infinity
        raise ScoreInputError(f"{label}: not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ScoreInputError(f"{label}: not valid JSON: nested too deeply") from exc


def _kind(resource: Any) -> str:
    kind = resource.get("resourceType") if isinstance(resource, dict) else None
    return f"a {kind}" if isinstance(kind, str) and RESOURCE_TYPE.match(kind) else "not a FHIR resource"


class Source:
    """The responses to score, where each sits (a FHIRPath prefix), and Patients that may be referenced."""

    def __init__(self, label: str, document: Any) -> None:
        self.label = label
        self.responses: list[tuple[str, dict[str, Any]]] = []
        self.patients: dict[str, tuple[str, dict[str, Any]]] = {}  # reference -> (identity, Patient)
        kind = document.get("resourceType") if isinstance(document, dict) else None
        if kind == "QuestionnaireResponse":
            self.responses.append(("QuestionnaireResponse", document))
        elif kind == "Bundle":
            self._read_bundle(document)
        else:
            raise ScoreInputError(f"{label}: not a QuestionnaireResponse or a Bundle ({_kind(document)})")

    def _read_bundle(self, bundle: dict[str, Any]) -> None:
        entries = bundle.get("entry", [])
        if not isinstance(entries, list):
            raise ScoreInputError(f"{self.label}: Bundle.entry is not a list")
        for n, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            kind = resource.get("resourceType")
            if kind == "QuestionnaireResponse":
                self.responses.append((f"Bundle.entry[{n}].resource", resource))
            elif kind == "Patient":
                identity = f"Bundle.entry[{n}]"
                full_url = entry.get("fullUrl")
                if isinstance(full_url, str) and full_url:
                    self.patients[full_url] = (identity, resource)
                if isinstance(resource.get("id"), str) and resource["id"]:
                    self.patients[f"Patient/{resource['id']}"] = (identity, resource)
        if not self.responses:
            raise ScoreInputError(f"{self.label}: the Bundle has no QuestionnaireResponse entries")

    def subject(self, where: str, response: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        """(identity of the subject, its Patient resource when present) for one response."""
        subject = response.get("subject")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        if not isinstance(reference, str) or not reference:
            return None, None
        if reference.startswith("#"):
            for contained in response.get("contained") or []:
                if (isinstance(contained, dict) and contained.get("resourceType") == "Patient"
                        and contained.get("id") == reference[1:]):
                    return f"{where}.contained", contained
            return reference, None
        if reference in self.patients:
            return self.patients[reference]
        for full_url, (identity, patient) in self.patients.items():
            if full_url.endswith("/" + reference):  # a relative reference against an absolute fullUrl
                return identity, patient
        return reference, None


# --- validating ---------------------------------------------------------------------------------


def _located(issue: Issue, where: str) -> dict[str, Any]:
    """The issue as FHIR, its diagnostics and expression pointing into a Bundle entry when needed."""
    out = issue.as_fhir()
    if where == "QuestionnaireResponse":
        return out
    out["diagnostics"] = f"{where}: {out['diagnostics']}"
    out["expression"] = [e.replace("QuestionnaireResponse.", f"{where}.", 1) for e in out.get("expression", [])] or [where]
    return out


def check(catalog: Catalog, source: Source) -> tuple[list[tuple[Form, dict[str, Any]]], dict[str, Any] | None]:
    """(form, response) pairs, and an OperationOutcome when any response has an error."""
    pairs: list[tuple[Form, dict[str, Any]]] = []
    issues: list[dict[str, Any]] = []
    failed = False
    for where, response in source.responses:
        canonical = response.get("questionnaire")
        form = catalog.get(canonical) if isinstance(canonical, str) and canonical else None
        if form is None:
            message = (f"questionnaire {canonical!r} is not in the catalog" if isinstance(canonical, str) and canonical
                       else "the response names no questionnaire")
            issues.append(_located(Issue("error", "not-found", None, message), where))
            failed = True
            continue
        found = validate(form, response)
        issues += [_located(issue, where) for issue in found]
        failed = failed or has_errors(found)
        pairs.append((form, response))
    if not failed:
        return pairs, None
    return pairs, {"resourceType": "OperationOutcome", "issue": issues}


def one_intake(source: Source, pairs: list[tuple[Form, dict[str, Any]]]) -> None:
    """Scoring several responses together is only meaningful for one patient's intake."""
    seen: dict[str, str] = {}
    for (where, _response), (form, _) in zip(source.responses, pairs, strict=True):
        if form.url in seen:
            raise ScoreInputError(f"{source.label}: {seen[form.url]} and {where} answer the same questionnaire "
                                  f"({form.url}); score one intake at a time")
        seen[form.url] = where
    subjects = {source.subject(where, response)[0] for where, response in source.responses}
    if len(subjects) > 1:
        raise ScoreInputError(f"{source.label}: the responses have different subjects; score one intake at a time")


# --- context ------------------------------------------------------------------------------------


def parse_birth_date(value: str, what: str) -> str:
    try:
        born = date.fromisoformat(value) if FULL_DATE.match(value) else None
    except ValueError:
        born = None
    if born is None:
        raise ScoreInputError(f"{what} must be a date like 1970-01-31, not {value!r}")
    if born > date.today():
        raise ScoreInputError(f"{what} is in the future")
    return born.isoformat()


def birth_date_of(source: Source) -> str | None:
    """The birthDate of the Patient the responses' subject references, when there is one."""
    found: set[str] = set()
    for where, response in source.responses:
        identity, patient = source.subject(where, response)
        value = patient.get("birthDate") if patient else None
        if value is None:
            continue
        if not isinstance(value, str):
            raise ScoreInputError(f"{source.label}: {identity} Patient.birthDate is not a date; give --birth-date")
        found.add(parse_birth_date(value, f"{source.label}: {identity} Patient.birthDate (or give --birth-date)"))
    if len(found) > 1:
        raise ScoreInputError(f"{source.label}: the responses' Patients have different birth dates; give --birth-date")
    return found.pop() if found else None


def onset_age() -> int:
    value = current_app.config.get("INTAKE_GI_ONSET_AGE", 50)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ScoreInputError(f"setting INTAKE_GI_ONSET_AGE must be a whole number of years, not {value!r}")


# --- the command --------------------------------------------------------------------------------


@click.command("score")
@click.argument("path")
@click.option("--birth-date", default=None, metavar="YYYY-MM-DD",
              help="The patient's birth date (default: the birthDate of the Patient the subject references).")
@with_appcontext
def score(path: str, birth_date: str | None) -> None:
    """Score QuestionnaireResponses: PATH is a response, a Bundle of them, or - for stdin.

    Prints scores, flags and findings as JSON. Exit 1 with an OperationOutcome on stderr when a
    response does not validate against its Questionnaire.
    """
    try:
        born = parse_birth_date(birth_date, "--birth-date") if birth_date is not None else None
        source = Source(*read_input(path))
        pairs, outcome = check(services().catalog, source)
        if outcome is not None:
            click.echo(json.dumps(outcome, indent=2, ensure_ascii=False), err=True)
            sys.exit(1)
        one_intake(source, pairs)
        context = Context(birth_date=born or birth_date_of(source), gi_onset_age_threshold=onset_age())
        result = score_intake(pairs, context)
    except ScoreInputError as exc:
        raise CommandError(str(exc)) from None
    except RuleError as exc:
        raise CommandError(f"a scoring rule in the Questionnaire could not be evaluated: {exc}") from None
    except RecursionError:
        raise CommandError(f"{'stdin' if path == '-' else path}: nested too deeply to score") from None
    click.echo(json.dumps(result.as_json(), indent=2, ensure_ascii=False))
