"""Validate a QuestionnaireResponse against its Questionnaire, following the SDC/R4 rules.

Lenient for `in-progress` (a missing required answer is a warning: a draft may be half done),
strict otherwise. Problems are returned as data — OperationOutcome-shaped issues with the linkId —
never raised, so a page can show them next to the fields and the FHIR API can return them.

Besides the item rules, two standard extensions refuse impossible answers:

- `minValue` / `maxValue` given by a `cqf-expression` on the primitive (`_valueDate`), evaluated
  when the answer is checked: `today()` (no date in the future) and `%birthDate` (nothing before
  the patient was born; no lower limit while the birth date is unknown). Dates are compared at
  the precision of the less precise of the two, as FHIR partial dates mean: a year-only `1970`
  is not before a birth on 1970-05-01, and `2026` is not after today in 2026.
- `questionnaire-constraint` on a group or the Questionnaire: a FHIRPath rule on the response
  that must not be false (empty — an answer it needs is missing — is not a failure), with the
  patient-facing `human` text shown beside the item named by `location`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from intake.core import extensions as ext
from intake.core import fhirpath, item_types
from intake.core.answers import compute, flatten
from intake.core.enablement import answer_value, expression_variables
from intake.core.fhir_models import QuestionnaireResponse, model_errors
from intake.core.items import Form, Item
from intake.core.translations import translation

STATUSES = {"in-progress", "completed", "amended", "entered-in-error", "stopped"}
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
    # Which rule refused the answer, for wording it to the patient: `constraint:<key>`,
    # `limit:today`, `limit:birthDate` (None for the item rules).
    rule: str | None = field(default=None, compare=False)

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


# --- date limits ---------------------------------------------------------------------------------

# The latest calendar date anywhere on Earth is in UTC+14 (Kiribati).
LATEST_ZONE = timezone(timedelta(hours=14))
TODAY_CALL = re.compile(r"\btoday\(\s*\)")
BIRTH_DATE = "%birthDate"


def current_date() -> date:
    """"Today" for `today()` limits, read afresh at every call (never cached).

    The patient's time zone is unknown, so it is the latest date in use anywhere (UTC+14): a
    patient is never told that their own today is in the future. The price: for part of the
    day, the date of tomorrow where the patient is (at most one day ahead) is accepted.
    """
    return datetime.now(LATEST_ZONE).date()


@dataclass(frozen=True)
class Limit:
    """One bound on a date answer: its value (`YYYY[-MM[-DD]]`, or a dateTime) and where it comes
    from: `today` (an expression `today()`), `birthDate` (`%birthDate`), or `value` (a fixed
    value, or any other expression's result)."""

    value: str
    is_min: bool
    source: str = "value"


def as_date_text(value: Any) -> str | None:
    """`date`, `datetime` or `YYYY-MM-DD...` text as FHIR date text; None for anything else."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and DATE_RE.match(value[:10]):
        return value
    return None


def limit_expression(item: Item, url: str) -> str | None:
    """The FHIRPath of a `cqf-expression` giving the item's minValue/maxValue, if any."""
    for extension in ext.find(item.raw, url):
        found = ext.shadow_expression(extension)
        if found and isinstance(found[1], dict) and isinstance(found[1].get("expression"), str):
            expression: str = found[1]["expression"]
            return expression
    return None


def evaluate_limit(expression: str, *, birth_date: Any = None, today: date | None = None) -> str | None:
    """A limit expression's value as date text; None when it has none (an unknown birth date).

    `today()` is evaluated as `today` (default `current_date()`), so a page and a test can pin
    it; `%birthDate` is the patient's birth date, `YYYY-MM-DD`.
    """
    day = today or current_date()
    birth = as_date_text(birth_date)
    if expression.strip() == BIRTH_DATE:
        return birth  # the common case, without a FHIRPath round trip
    pinned = TODAY_CALL.sub("@" + day.isoformat(), expression)
    try:
        result = fhirpath.evaluate(pinned, {}, variables={"birthDate": birth, "resource": {}})
    except fhirpath.FhirPathError:
        return None
    values = [str(v) for v in result if v is not None and not isinstance(v, (bool, dict, list))]
    return as_date_text(values[0]) if len(values) == 1 else None


def date_limits(item: Item, *, birth_date: Any = None, today: date | None = None) -> list[Limit]:
    """The bounds of a date or dateTime item: fixed `valueDate`/`valueDateTime`, or given by an
    expression (which wins when it has a value; the fixed value, if any, applies otherwise)."""
    out: list[Limit] = []
    for url, static, is_min in ((ext.MIN_VALUE, item.min_value, True), (ext.MAX_VALUE, item.max_value, False)):
        expression = limit_expression(item, url)
        value = evaluate_limit(expression, birth_date=birth_date, today=today) if expression else None
        if value is not None:
            text = expression.strip() if expression else ""
            source = "today" if TODAY_CALL.fullmatch(text) else "birthDate" if text == BIRTH_DATE else "value"
            out.append(Limit(value, is_min, source))
        elif static and isinstance(next(iter(static.values())), str):
            out.append(Limit(next(iter(static.values())), is_min))
    return out


def compare_dates(answer: str, limit: str) -> int:
    """-1/0/1: `answer` against `limit`, at the precision of the less precise of the two.

    `1970` against `1970-05-01` is 0 (the same year), `1970-04` is -1. Two dateTimes with times
    are compared as instants when both carry a zone.
    """
    left_day, _, left_time = answer.partition("T")
    right_day, _, right_time = limit.partition("T")
    if left_time and right_time:
        left, right = _instant(answer), _instant(limit)
        if left is not None and right is not None:
            return (left > right) - (left < right)
    n = min(len(left_day), len(right_day))
    a, b = left_day[:n], right_day[:n]
    return (a > b) - (a < b)


def outside(answer: str, limit: Limit) -> bool:
    order = compare_dates(answer, limit.value)
    return order < 0 if limit.is_min else order > 0


def _instant(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11 reads a trailing "Z" too
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def limit_message(limit: Limit) -> str:
    """The diagnostics (English, for OperationOutcome) of an answer outside `limit`."""
    if limit.source == "today":
        return f"is in the future: must be today ({limit.value}) or earlier"
    if limit.source == "birthDate":
        return "is before the patient's date of birth"
    return f"must be {'at least' if limit.is_min else 'at most'} {limit.value}"


# --- questionnaire-constraint ------------------------------------------------------------------


@dataclass(frozen=True)
class Constraint:
    """One `questionnaire-constraint`: on a group (`context` = its linkId) or the Questionnaire
    (`context` None). `human` is the base-language text; `message(lang)` the patient's."""

    key: str
    severity: str
    expression: str
    human: str
    locations: tuple[str, ...] = ()
    context: str | None = None
    human_element: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def message(self, lang: str | None = None) -> str:
        """`human` in `lang` when the Questionnaire carries that translation, else as written."""
        if lang:
            return translation(self.human_element, "valueString", lang) or self.human
        return self.human


def read_constraint(extension: dict[str, Any], context: str | None) -> Constraint | None:
    """A `questionnaire-constraint` extension as a Constraint; None when it lacks what the engine
    needs (key, expression, human: the lint reports those)."""
    parts: dict[str, list[dict[str, Any]]] = {}
    for sub in extension.get("extension") or []:
        if isinstance(sub, dict):
            parts.setdefault(str(sub.get("url")), []).append(sub)

    def one(name: str, key: str) -> Any:
        found = parts.get(name) or [{}]
        return found[0].get(key)

    key, expression, human = one("key", "valueId"), one("expression", "valueString"), one("human", "valueString")
    if not (isinstance(key, str) and isinstance(expression, str) and isinstance(human, str)):
        return None
    locations = tuple(p["valueString"] for p in parts.get("location") or [] if isinstance(p.get("valueString"), str))
    return Constraint(
        key=key, severity=str(one("severity", "valueCode") or "error"), expression=expression, human=human,
        locations=locations, context=context, human_element=(parts.get("human") or [{}])[0],
    )


def constraints(form: Form) -> tuple[Constraint, ...]:
    """The form's constraints, the Questionnaire's first, then the groups' in document order
    (read once per form object, kept on it)."""
    hit: tuple[Constraint, ...] | None = form.memo.get("constraints")
    if hit is not None:
        return hit
    found = [read_constraint(e, None) for e in ext.find(form.resource, ext.CONSTRAINT)]
    for item in form.walk():
        if item.type == "group":
            found += [read_constraint(e, item.link_id) for e in ext.find(item.raw, ext.CONSTRAINT)]
    result = tuple(c for c in found if c is not None)
    form.memo["constraints"] = result
    return result


def _response_nodes(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for node in items:
        if isinstance(node, dict):
            out.setdefault(str(node.get("linkId")), node)
            out.update({k: v for k, v in _response_nodes(node.get("item") or []).items() if k not in out})
            for answer in node.get("answer") or []:
                if isinstance(answer, dict):
                    out.update({k: v for k, v in _response_nodes(answer.get("item") or []).items() if k not in out})
    return out


def check_constraints(
    form: Form, response: dict[str, Any], *, birth_date: Any = None, only: list[Constraint] | None = None,
) -> list[tuple[Constraint, bool | None]]:
    """Each constraint that applies, with True (holds), False (fails) or None (the expression
    failed to evaluate). A group's constraint applies when the group is in the response (its
    response item is the context); the Questionnaire's always. `only` limits the check to those.
    """
    chosen = list(constraints(form) if only is None else only)
    if not chosen:
        return []
    weighted = fhirpath.with_weights(response, form.weights)
    variables = expression_variables(form, weighted)
    variables["birthDate"] = as_date_text(birth_date)
    variables = fhirpath.with_index(variables, weighted)
    nodes = _response_nodes(weighted.get("item") or [])
    out: list[tuple[Constraint, bool | None]] = []
    for constraint in chosen:
        target = weighted if constraint.context is None else nodes.get(constraint.context)
        if target is None:
            continue
        try:
            if constraint.context is None:
                result = fhirpath.evaluate(constraint.expression, target, variables=variables)
            else:
                result = fhirpath.evaluate(constraint.expression, target, variables={**variables, "context": target},
                                           base="QuestionnaireResponse.item")
        except fhirpath.FhirPathError:
            out.append((constraint, None))
            continue
        out.append((constraint, result != [False]))
    return out


def _constraint_issues(form: Form, response: dict[str, Any], birth_date: Any) -> list[Issue]:
    issues: list[Issue] = []
    for constraint, holds in check_constraints(form, response, birth_date=birth_date):
        where = next(iter(constraint.locations), constraint.context)
        rule = f"constraint:{constraint.key}"
        if holds is None:
            issues.append(
                Issue("warning", "exception", where, f"constraint '{constraint.key}' could not be evaluated", rule)
            )
        elif not holds:
            severity = "error" if constraint.severity == "error" else "warning"
            issues.append(
                Issue(severity, "invariant", where, f"{constraint.human} (constraint '{constraint.key}')", rule)
            )
    return issues


# --- validation ----------------------------------------------------------------------------------


def validate(form: Form, response: Any, *, birth_date: Any = None, today: date | None = None) -> list[Issue]:
    """Every problem with `response` against `form`, in document order, then the constraints'.

    `birth_date` (a `date` or `YYYY-MM-DD`; None when unknown) is `%birthDate` for limits and
    constraints; `today` pins `today()` (default: `current_date()`, read at each call).
    """
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

    context = _Context(birth_date, today or current_date())
    issues += _tree_issues(form, response.get("item") or [], list(form.items), None, context)
    answers = flatten(response)
    issues += _enablement_issues(form, answers, strict)
    if not any(i.code == "structure" for i in issues):
        issues += _constraint_issues(form, response, birth_date)
    return issues


@dataclass(frozen=True)
class _Context:
    """What the answer checks need besides the Questionnaire: the patient's birth date, today."""

    birth_date: Any
    today: date


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


def _tree_issues(form: Form, nodes: list[dict[str, Any]], allowed: list[Item], parent: str | None,
                 context: _Context) -> list[Issue]:
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
            issues.append(
                Issue("error", "structure", link_id, f"item is {where}, which is not where the Questionnaire has it")
            )
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
        if not item.is_question:
            if answers:
                issues.append(Issue("error", "structure", link_id, f"a {item.type} item cannot have answers"))
            issues += _tree_issues(form, node.get("item") or [], list(item.children), link_id, context)
            continue
        if node.get("item"):
            issues.append(Issue("error", "structure", link_id, "children of a question go under answer.item"))
        if len(answers) > 1 and not item.repeats:
            issues.append(
                Issue("error", "structure", link_id, "more than one answer to a question that does not repeat")
            )
        issues += exclusive_issues(item, answers)
        for answer in answers:
            issues += _answer_issues(item, answer, context)
            if answer.get("item"):
                issues += _tree_issues(form, answer["item"], list(item.children), link_id, context)
    return issues


def exclusive_issues(item: Item, answers: list[dict[str, Any]]) -> list[Issue]:
    """An option marked `questionnaire-optionExclusive` ("None of these") given with any other
    answer: refused, whatever a browser's script did or did not untick."""
    if len(answers) < 2 or not item.exclusive_options:
        return []
    for option in item.exclusive_options:
        if any(_same_option(option, answer) for answer in answers):
            coding = option.get("valueCoding")
            key = coding.get("code") if isinstance(coding, dict) else option_display(option)
            return [Issue("error", "business-rule", item.link_id,
                          f"the answer '{option_display(option)}' cannot be given together with other answers",
                          f"exclusive:{key}")]
    return []


def option_display(option: dict[str, Any]) -> str:
    """What an answerOption shows: its coding's display (or code), else its value."""
    coding = option.get("valueCoding")
    if isinstance(coding, dict):
        return str(coding.get("display") or coding.get("code"))
    return str(next((v for k, v in option.items() if k.startswith("value")), ""))


def _same_option(option: dict[str, Any], answer: dict[str, Any]) -> bool:
    pair = answer_value(answer)
    if pair is None:
        return False
    key, value = pair
    if key == "valueCoding" and isinstance(option.get("valueCoding"), dict) and isinstance(value, dict):
        wanted = option["valueCoding"]
        return bool(wanted.get("code") == value.get("code") and wanted.get("system") == value.get("system"))
    return key in option and option[key] == value


def _answer_issues(item: Item, answer: dict[str, Any], context: _Context) -> list[Issue]:
    pair = answer_value(answer)
    link_id = item.link_id
    if pair is None:
        return [Issue("error", "required", link_id, "answer has no value")]
    key, value = pair
    spec = item_types.item_type(item.type)
    if spec is None or key not in spec.answer_keys:
        return [Issue("error", "value", link_id, f"{key} is not an answer to a {item.type} item")]
    return ANSWER_CHECKS[spec.code](item, key, value, context)


def _value_issues(item: Item, key: str, value: Any) -> tuple[list[Issue], bool]:
    """The checks of the answer's own value[x] (text, options, integer range, a real date),
    and whether it parsed well enough (a real date) for its limits to be checked."""
    issues: list[Issue] = []

    def bad(message: str, code: str = "value") -> None:
        issues.append(Issue("error", code, item.link_id, message))

    if key == "valueString":
        if CONTROL_CHARS.search(value):
            bad("contains control characters")
        if item.max_length is not None and len(value) > item.max_length:
            bad(f"is longer than {item.max_length} characters")
        if item.regex and not re.fullmatch(item.regex, value):
            bad("is not in the expected format")
    free_text = item_types.row(item.type).free_text and key == "valueString"
    if item.options and not free_text and not _in_options(item, key, value):
        bad("is not one of the allowed answers", "code-invalid")
    if key == "valueInteger" and not (INT32[0] <= value <= INT32[1]):
        bad("is outside the 32-bit integer range")
    if key in ("valueDate",) and not (isinstance(value, str) and DATE_RE.match(value) and _real_date(value)):
        bad("is not a valid date")
        return issues, False
    if key == "valueDateTime" and not _valid_datetime(value):
        bad("is not a valid date and time with a time zone")
        return issues, False
    return issues, True


def _bound_issues(item: Item, key: str, value: Any) -> list[Issue]:
    """minValue/maxValue given as fixed values (numbers, and a quantity's value)."""
    issues: list[Issue] = []
    number = value.get("value") if key == "valueQuantity" and isinstance(value, dict) else value
    for bound, is_min in ((item.min_value, True), (item.max_value, False)):
        if bound:
            limit = next(iter(bound.values()))
            if isinstance(limit, dict):
                limit = limit.get("value")
            if _out_of_bound(number, limit, is_min):
                message = f"must be {'at least' if is_min else 'at most'} {limit}"
                issues.append(Issue("error", "value", item.link_id, message))
    return issues


def _check_value(item: Item, key: str, value: Any, context: _Context) -> list[Issue]:
    """A typed answer: its value's own checks, then fixed minValue/maxValue."""
    issues, parsed = _value_issues(item, key, value)
    return issues + _bound_issues(item, key, value) if parsed else issues


def _check_date(item: Item, key: str, value: Any, context: _Context) -> list[Issue]:
    """A date or dateTime: a real one, within its limits (fixed, `today()`, `%birthDate`)."""
    issues, parsed = _value_issues(item, key, value)
    if not parsed:
        return issues
    for limit in date_limits(item, birth_date=context.birth_date, today=context.today):
        if outside(value, limit):
            issues.append(Issue("error", "value", item.link_id, limit_message(limit), f"limit:{limit.source}"))
    return issues


def _check_choice(item: Item, key: str, value: Any, context: _Context) -> list[Issue]:
    """One of the options; typed text is only for an open-choice."""
    if key == "valueString":
        return [Issue("error", "value", item.link_id, "a choice item takes one of its options, not free text")]
    return _check_value(item, key, value, context)


AnswerCheck = Callable[[Item, str, Any, _Context], list[Issue]]

# Item type -> how one answer of it is checked, after its value[x] was found to fit the type
# (item_types: answer_keys). Keyed by item_types.QUESTIONS (tests/core/test_item_types.py).
ANSWER_CHECKS: dict[str, AnswerCheck] = {
    "boolean": _check_value,
    "decimal": _check_value,
    "integer": _check_value,
    "quantity": _check_value,
    "date": _check_date,
    "dateTime": _check_date,
    "string": _check_value,
    "text": _check_value,
    "choice": _check_choice,
    "open-choice": _check_value,
}


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
    return _instant(value) is not None


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
            issues.append(
                Issue("error", "business-rule", link_id, "is answered but not enabled by the earlier answers")
            )
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
