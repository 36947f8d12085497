"""enableWhen / enableBehavior / enableWhenExpression, evaluated on the server.

A disabled item is not shown, not required, and its answers are dropped from the response. The
rules follow R4 (`Questionnaire.item.enableWhen`) and the HL7 validator: a condition on a question
with no answer is false for every operator except `exists`; with several answers, any one that
meets the condition is enough.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from intake.core import fhirpath
from intake.core.item_types import ANSWER_VALUE_KEYS
from intake.core.items import Form, Item

Answers = dict[str, list[dict[str, Any]]]

VALUE_KEYS = ANSWER_VALUE_KEYS


def answer_value(answer: dict[str, Any]) -> tuple[str, Any] | None:
    """(`value[x]` key, value) of one answer, or None."""
    for key in VALUE_KEYS:
        if key in answer:
            return key, answer[key]
    return None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    return Decimal(str(value))


def _order(left: Any, right: Any) -> int:
    return int(left > right) - int(left < right)


def _order_numbers(answer: Any, expected: Any) -> int | None:
    left, right = _number(answer), _number(expected)
    if left is None or right is None:
        return None
    return _order(left, right)


def _order_quantities(answer: Any, expected: Any) -> int | None:
    if not isinstance(answer, dict) or not isinstance(expected, dict):
        return None
    if (answer.get("code"), answer.get("system")) != (expected.get("code"), expected.get("system")):
        return None
    return _order_numbers(answer.get("value"), expected.get("value"))


def _order_strings(answer: Any, expected: Any) -> int | None:
    if not isinstance(answer, str) or not isinstance(expected, str):
        return None
    return _order(answer, expected)


def _order_dates(answer: Any, expected: Any) -> int | None:
    if not isinstance(answer, str) or not isinstance(expected, str):
        return None
    if len(answer) != len(expected):
        return None  # different precision (2024 vs 2024-05): not comparable
    return _order(answer, expected)


def _order_date_times(answer: Any, expected: Any) -> int | None:
    if isinstance(answer, str) and isinstance(expected, str) and "T" in answer and "T" in expected:
        left, right = _instant(answer), _instant(expected)  # 12:00+02:00 is 10:00Z
        if left is None or right is None:
            return None
        return _order(left, right)
    return _order_dates(answer, expected)


def _instant(value: str) -> datetime | None:
    """A dateTime with a time as an aware datetime (FHIR requires the zone), else None."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _same_coding(answer: Any, expected: Any) -> bool:
    if not isinstance(answer, dict) or not isinstance(expected, dict):
        return False
    if answer.get("code") != expected.get("code"):
        return False
    return not expected.get("system") or answer.get("system") == expected.get("system")


def _same_boolean(answer: Any, expected: Any) -> bool:
    return answer is expected


@dataclass(frozen=True)
class Comparison:
    """How an enableWhen answer[x] meets an answer: `equal` for = and !=, `order` (-1/0/1, None
    when not comparable) for the ordered operators; None: the answer[x] cannot be ordered."""

    equal: Callable[[Any, Any], bool] | None
    order: Callable[[Any, Any], int | None] | None


# enableWhen answer[x] -> its comparison. Every answer[x] a supported item type allows
# (item_types.TYPES[...].enable_when) has one (tests/core/test_item_types.py).
COMPARISONS: dict[str, Comparison] = {
    "answerBoolean": Comparison(_same_boolean, None),
    "answerCoding": Comparison(_same_coding, None),
    "answerDecimal": Comparison(None, _order_numbers),
    "answerInteger": Comparison(None, _order_numbers),
    "answerQuantity": Comparison(None, _order_quantities),
    "answerDate": Comparison(None, _order_dates),
    "answerDateTime": Comparison(None, _order_date_times),
    "answerString": Comparison(None, _order_strings),
}


def _compare(kind: str, answer: Any, expected: Any) -> int | None:
    """-1/0/1 ordering of an answer against the condition's value; None when not comparable."""
    comparison = COMPARISONS.get(kind)
    if comparison is None or comparison.order is None:
        return None
    return comparison.order(answer, expected)


def _equal(kind: str, answer: Any, expected: Any) -> bool:
    comparison = COMPARISONS.get(kind)
    if comparison is not None and comparison.equal is not None:
        return comparison.equal(answer, expected)
    return _compare(kind, answer, expected) == 0


def condition_met(condition: dict[str, Any], answers: list[dict[str, Any]]) -> bool:
    """One enableWhen condition against the (enabled) answers of its question."""
    operator = condition.get("operator")
    kind, expected = next(((k, v) for k, v in condition.items() if k.startswith("answer")), ("", None))
    if operator == "exists":
        return bool(answers) == bool(expected)
    values = []
    for answer in answers:
        pair = answer_value(answer)
        if pair is None:
            continue
        key, val = pair
        if kind == "answerCoding" and key == "valueString":
            continue
        values.append(val)
    if not values:
        return False
    for value in values:
        if operator == "=" and _equal(kind, value, expected):
            return True
        if operator == "!=" and not _equal(kind, value, expected):
            return True
        if operator in (">", "<", ">=", "<="):
            order = _compare(kind, value, expected)
            if order is None:
                continue
            if {">": order > 0, "<": order < 0, ">=": order >= 0, "<=": order <= 0}[operator]:
                return True
    return False


def expression_variables(form: Form, response: dict[str, Any]) -> dict[str, Any]:
    """%resource / %questionnaire and the Questionnaire-level `variable`s, for any expression."""
    variables: dict[str, Any] = {"resource": response, "questionnaire": form.resource}
    for name, expression in form.variables:
        try:
            variables[name] = fhirpath.evaluate(expression, response, variables=variables)
        except fhirpath.FhirPathError:
            variables[name] = []
    return variables


def enabled_links(form: Form, answers: Answers, response: dict[str, Any] | None = None) -> set[str]:
    """The linkIds enabled given `answers`, walking in document order.

    The lint guarantees an enableWhen only looks back, so one pass decides every item: a
    condition sees only the answers of questions that are themselves enabled. `response` (with
    weights) is needed only for enableWhenExpression.
    """
    enabled: set[str] = set()
    variables = expression_variables(form, response) if response is not None else None

    def visit(item: Item, parent_enabled: bool) -> None:
        on = parent_enabled and _item_enabled(item, answers, enabled, response, variables)
        if on:
            enabled.add(item.link_id)
        for child in item.children:
            visit(child, on)

    for top in form.items:
        visit(top, True)
    return enabled


def _item_enabled(
    item: Item,
    answers: Answers,
    enabled: set[str],
    response: dict[str, Any] | None,
    variables: dict[str, Any] | None,
) -> bool:
    if item.enable_when:
        results = (
            condition_met(c, answers.get(c.get("question", ""), []) if c.get("question") in enabled else [])
            for c in item.enable_when
        )
        met = any(results) if item.enable_behavior == "any" else all(results)
        if not met:
            return False
    if item.enable_expression and response is not None:
        context = dict(variables or {})
        context["context"] = response
        try:
            result = fhirpath.evaluate(item.enable_expression, response, variables=context)
        except fhirpath.FhirPathError:
            return False
        return result == [True]
    return True
