"""Validate a QuestionnaireResponse against its Questionnaire, following the SDC/R4 rules.

Lenient for `in-progress` (a missing required answer is a warning: a draft may be half done),
strict otherwise. Problems are returned as data — OperationOutcome-shaped issues with the linkId —
never raised, so a page can show them next to the fields and the FHIR API can return them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from intake.core.answers import compute, flatten
from intake.core.enablement import answer_value
from intake.core.fhir_models import QuestionnaireResponse, model_errors
from intake.core.items import Form, Item

STATUSES = {"in-progress", "completed", "amended", "entered-in-error", "stopped"}
VALUE_TYPES = {
    "boolean": {"valueBoolean"},
    "decimal": {"valueDecimal"},
    "integer": {"valueInteger"},
    "date": {"valueDate"},
    "dateTime": {"valueDateTime"},
    "string": {"valueString"},
    "text": {"valueString"},
    "quantity": {"valueQuantity"},
    "choice": {"valueCoding", "valueString", "valueInteger", "valueDate", "valueTime"},
    "open-choice": {"valueCoding", "valueString", "valueInteger", "valueDate", "valueTime"},
}
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
INT32 = (-(2**31), 2**31 - 1)
DATE_RE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: severity, code (IssueType), where (linkId) and why."""

    severity: str
    code: str
    link_id: str | None
    message: str

    def as_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": f"Item '{self.link_id}': {self.message}" if self.link_id else self.message,
        }
        if self.link_id:
            issue["expression"] = [f"QuestionnaireResponse.repeat(item).where(linkId='{self.link_id}')"]
        return issue


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome for `issues`; an empty list becomes the 'all OK' information issue."""
    if not issues:
        return {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": "No issues found"}],
        }
    return {"resourceType": "OperationOutcome", "issue": [i.as_fhir() for i in issues]}


def has_errors(issues: list[Issue]) -> bool:
    return any(i.severity in ("error", "fatal") for i in issues)


def validate(form: Form, response: Any) -> list[Issue]:
    """Every problem with `response` against `form`, in document order."""
    if not isinstance(response, dict) or response.get("resourceType") != "QuestionnaireResponse":
        return [Issue("error", "structure", None, "not a QuestionnaireResponse")]
    issues: list[Issue] = []
    status = response.get("status")
    if status not in STATUSES:
        issues.append(Issue("error", "value", None, f"status {status!r} is not a QuestionnaireResponse status"))
    strict = status != "in-progress"
    questionnaire = response.get("questionnaire")
    if questionnaire not in (form.canonical, form.url):
        issues.append(Issue("error", "invalid", None, f"questionnaire {questionnaire!r} is not {form.canonical}"))
    for path, message in model_errors(QuestionnaireResponse, response):
        link_id, element = _locate(response, path)
        issues.append(Issue("error", "structure", link_id, f"{element}: {message}"))
    if issues and any(i.code == "structure" for i in issues):
        return issues  # the tree cannot be trusted enough to walk

    issues += _tree_issues(form, response.get("item") or [], list(form.items), None)
    answers = flatten(response)
    issues += _enablement_issues(form, answers, strict)
    return issues


def _locate(response: dict[str, Any], path: str) -> tuple[str | None, str]:
    """`item.0.item.2.answer.0.valueDate` -> (linkId of that item, 'answer.0.valueDate'), so a
    model error (an impossible date, a dateTime without a zone) can be shown at its field."""
    parts = path.split(".")
    node: Any = response
    link_id, start, i = None, 0, 0
    while i + 1 < len(parts) and parts[i] in ("item", "answer") and parts[i + 1].isdigit():
        try:
            node = node[parts[i]][int(parts[i + 1])]
        except (KeyError, IndexError, TypeError):
            break
        i += 2
        if parts[i - 2] == "item" and isinstance(node, dict) and isinstance(node.get("linkId"), str):
            link_id, start = node["linkId"], i
    if link_id is None:
        return None, path
    return link_id, ".".join(parts[start:]) or path


def _tree_issues(form: Form, nodes: list[dict[str, Any]], allowed: list[Item], parent: str | None) -> list[Issue]:
    """Each response item sits where the Questionnaire has it, in order, with the right answers."""
    issues: list[Issue] = []
    order = {item.link_id: n for n, item in enumerate(allowed)}
    last = -1
    seen: set[str] = set()
    for node in nodes:
        link_id = node.get("linkId")
        item = form.by_link.get(link_id or "")
        if item is None:
            issues.append(Issue("error", "structure", link_id, f"linkId {link_id!r} is not in the Questionnaire"))
            continue
        if link_id not in order:
            where = f"under '{parent}'" if parent else "at the top level"
            issues.append(Issue("error", "structure", link_id, f"item is {where}, which is not where the Questionnaire has it"))
            continue
        if link_id in seen:
            issues.append(Issue("error", "structure", link_id, "item appears more than once"))
            continue
        seen.add(link_id)
        if order[link_id] < last:
            issues.append(Issue("error", "structure", link_id, "item is out of the Questionnaire's order"))
        last = max(last, order[link_id])
        if "text" in node and node["text"] != item.text:
            issues.append(Issue("error", "value", link_id, "item.text differs from the Questionnaire's text"))
        answers = node.get("answer") or []
        if item.type in ("group", "display"):
            if answers:
                issues.append(Issue("error", "structure", link_id, f"a {item.type} item cannot have answers"))
            issues += _tree_issues(form, node.get("item") or [], list(item.children), link_id)
            continue
        if node.get("item"):
            issues.append(Issue("error", "structure", link_id, "children of a question go under answer.item"))
        if len(answers) > 1 and not item.repeats:
            issues.append(Issue("error", "structure", link_id, "more than one answer to a question that does not repeat"))
        for answer in answers:
            issues += _answer_issues(item, answer)
            if answer.get("item"):
                issues += _tree_issues(form, answer["item"], list(item.children), link_id)
    return issues


def _answer_issues(item: Item, answer: dict[str, Any]) -> list[Issue]:
    pair = answer_value(answer)
    link_id = item.link_id
    if pair is None:
        return [Issue("error", "required", link_id, "answer has no value")]
    key, value = pair
    if key not in VALUE_TYPES.get(item.type, set()):
        return [Issue("error", "value", link_id, f"{key} is not an answer to a {item.type} item")]
    if item.type == "choice" and key == "valueString":
        return [Issue("error", "value", link_id, "a choice item takes one of its options, not free text")]
    issues: list[Issue] = []

    def bad(message: str, code: str = "value") -> None:
        issues.append(Issue("error", code, link_id, message))

    if key == "valueString":
        if CONTROL_CHARS.search(value):
            bad("contains control characters")
        if item.max_length is not None and len(value) > item.max_length:
            bad(f"is longer than {item.max_length} characters")
        if item.regex and not re.fullmatch(item.regex, value):
            bad("is not in the expected format")
    free_text = item.type == "open-choice" and key == "valueString"
    if item.options and not free_text:
        if not _in_options(item, key, value):
            bad("is not one of the allowed answers", "code-invalid")
    if key == "valueInteger" and not (INT32[0] <= value <= INT32[1]):
        bad("is outside the 32-bit integer range")
    if key in ("valueDate",) and not (isinstance(value, str) and DATE_RE.match(value) and _real_date(value)):
        bad("is not a valid date")
    if key == "valueDateTime" and not _valid_datetime(value):
        bad("is not a valid date and time with a time zone")
    number = value.get("value") if key == "valueQuantity" and isinstance(value, dict) else value
    for bound, is_min in ((item.min_value, True), (item.max_value, False)):
        if bound:
            limit = next(iter(bound.values()))
            if isinstance(limit, dict):
                limit = limit.get("value")
            if _out_of_bound(number, limit, is_min):
                bad(f"must be {'at least' if is_min else 'at most'} {limit}")
    return issues


def _in_options(item: Item, key: str, value: Any) -> bool:
    for option in item.options:
        if key == "valueCoding" and "valueCoding" in option:
            wanted = option["valueCoding"]
            if wanted.get("code") == value.get("code") and wanted.get("system") == value.get("system"):
                return True
        elif key in option and option[key] == value:
            return True
    return False


def _real_date(value: str) -> bool:
    if len(value) < 10:
        return True
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _valid_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if len(value) <= 10:
        return bool(DATE_RE.match(value)) and _real_date(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _out_of_bound(number: Any, limit: Any, is_min: bool) -> bool:
    if isinstance(number, str) and isinstance(limit, str):
        return number < limit if is_min else number > limit
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not isinstance(limit, (int, float)):
        return False
    left, right = Decimal(str(number)), Decimal(str(limit))
    return left < right if is_min else left > right


def _enablement_issues(form: Form, answers: dict[str, list[dict[str, Any]]], strict: bool) -> list[Issue]:
    """Answers to disabled items; required items (and groups) left unanswered."""
    issues: list[Issue] = []
    kept, enabled = compute(form, answers)
    for link_id in answers:
        if link_id in form.by_link and link_id not in enabled:
            issues.append(Issue("error", "business-rule", link_id, "is answered but not enabled by the earlier answers"))
    severity = "error" if strict else "warning"
    for item in form.walk():
        if not item.required or item.link_id not in enabled or item.read_only:
            continue
        if item.type == "group":
            if not any(d.link_id in kept for d in item.walk()[1:]):
                issues.append(Issue(severity, "required", item.link_id, "required group has no answers"))
        elif item.is_question and not kept.get(item.link_id):
            issues.append(Issue(severity, "required", item.link_id, "an answer is required"))
    return issues
