"""Answers -> QuestionnaireResponse, nested exactly as the Questionnaire.

Answers are kept flat, keyed by linkId (the engine has no repeating groups, so a linkId names
one place). Building the response computes calculated items, decides enablement and drops the
answers of disabled items, repeated until nothing changes: a calculated score can switch on a
reflex page, whose answers can feed another expression.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from intake.core import fhirpath
from intake.core.enablement import Answers, enabled_links, expression_variables
from intake.core.items import Form, Item

MAX_PASSES = 10


def nest(form: Form, answers: Answers, enabled: set[str] | None = None) -> list[dict[str, Any]]:
    """QuestionnaireResponse.item for `answers`, keeping only enabled, answered items.

    Groups appear only when something below them is answered (an empty group is invalid FHIR);
    children of a question go under its first answer, as R4 requires.
    """

    def build(item: Item) -> dict[str, Any] | None:
        if enabled is not None and item.link_id not in enabled:
            return None
        kind = item.type
        if kind == "display":
            return None
        values = None
        if kind != "group":
            values = answers.get(item.link_id)
            if not values:
                return None  # (a question's children are only kept under its answer)
        children = [c for c in map(build, item.children) if c] if item.children else []
        if kind == "group" and not children:
            return None
        node: dict[str, Any] = {"linkId": item.link_id}
        if item.text:
            node["text"] = item.text
        if kind == "group":
            node["item"] = children
            return node
        node["answer"] = [dict(v) for v in values or []]
        if children:
            node["answer"][0]["item"] = children
        return node

    return [n for n in (build(item) for item in form.items) if n]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _calculated_integer(value: Any) -> list[dict[str, Any]]:
    if not _is_number(value) or Decimal(str(value)) != Decimal(str(value)).to_integral_value():
        return []  # a fractional result cannot be an integer answer
    return [{"valueInteger": int(value)}]


def _calculated_decimal(value: Any) -> list[dict[str, Any]]:
    return [{"valueDecimal": float(value)}] if _is_number(value) else []


def _calculated_boolean(value: Any) -> list[dict[str, Any]]:
    return [{"valueBoolean": value}] if isinstance(value, bool) else []


def _calculated_string(value: Any) -> list[dict[str, Any]]:
    return [{"valueString": value}] if isinstance(value, str) else []


def _calculated_coding(value: Any) -> list[dict[str, Any]]:
    """A Coding result: another item's answer carried forward (matched to an option below)."""
    if isinstance(value, dict) and isinstance(value.get("code"), str):
        return [{"valueCoding": {key: value[key] for key in ("system", "code") if key in value}}]
    return []


def _not_calculated(value: Any) -> list[dict[str, Any]]:
    """Not filled from an expression: a date or a quantity result is left unanswered."""
    return []


# Item type -> its answer from a calculatedExpression result (one FHIRPath value); empty when
# the result does not fit. Keyed by item_types.QUESTIONS (tests/core/test_item_types.py).
CALCULATED_ANSWER: dict[str, Callable[[Any], list[dict[str, Any]]]] = {
    "boolean": _calculated_boolean,
    "decimal": _calculated_decimal,
    "integer": _calculated_integer,
    "date": _not_calculated,
    "dateTime": _not_calculated,
    "string": _calculated_string,
    "text": _calculated_string,
    "choice": _calculated_coding,
    "open-choice": _calculated_coding,
    "quantity": _not_calculated,
}


def _calculated_answer(item: Item, result: list[Any]) -> list[dict[str, Any]]:
    """Turn an expression result into answers of the item's type; empty when it has no value."""
    values = [v for v in result if v is not None and not isinstance(v, list)]
    if not values:
        return []
    convert = CALCULATED_ANSWER.get(item.type, _not_calculated)
    answers = convert(values[0])
    return _as_own_option(item, answers) if item.options and answers and "valueCoding" in answers[0] else answers


def _as_own_option(item: Item, answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A carried-forward Coding as this item's own answerOption (its display and score weight
    with it), matched on system and code; a code the item does not offer leaves it unanswered."""
    wanted = answers[0]["valueCoding"]
    for option in item.options:
        coding = option.get("valueCoding") or {}
        if coding.get("code") == wanted.get("code") and coding.get("system") == wanted.get("system"):
            return [{"valueCoding": dict(coding)}]
    return []


COMPUTE_MEMO_SIZE = 1024  # answer sets remembered per form (`Form.memo`)


def compute(form: Form, answers: Answers) -> tuple[Answers, set[str]]:
    """Fixed point of calculation and enablement: (answers with calculated values, enabled set).

    One page save needs this for the same answers several times (page enablement, validation,
    building the response, the next page's order), and each pass may run FHIRPath, so results
    are memoised on the form object (`Form.memo`) by the answers' exact content (their pickle:
    equal bytes mean equal answers; unequal orderings only miss). The returned dict and set are
    fresh; the answer lists inside are shared and must not be mutated.
    """
    try:
        key = pickle.dumps(answers, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        kept, enabled = _compute(form, answers)
        return kept, enabled
    memo: OrderedDict[bytes, tuple[Answers, frozenset[str]]] = form.memo.setdefault("compute", OrderedDict())
    hit = memo.get(key)
    if hit is None:
        kept, enabled = _compute(form, answers)
        hit = (kept, frozenset(enabled))
        memo[key] = hit
        if len(memo) > COMPUTE_MEMO_SIZE:
            memo.popitem(last=False)
    else:
        memo.move_to_end(key)
    return dict(hit[0]), set(hit[1])


def _compute(form: Form, answers: Answers) -> tuple[Answers, set[str]]:
    """`compute` without the memo. Forms without calculated items or enableWhenExpression need
    no FHIRPath at all: one pass of enableWhen in document order decides everything."""
    current = {k: list(v) for k, v in answers.items()}
    enabled = enabled_links(form, current)
    if form.calculated or form.has_enable_expressions:
        for _ in range(MAX_PASSES):
            changed = _calculate(form, current, enabled) if form.calculated else False
            weighted = _weighted(form, current, enabled) if form.has_enable_expressions else None
            new_enabled = enabled_links(form, current, weighted)
            if new_enabled != enabled:
                changed = True
                enabled = new_enabled
            elif form.calculations_independent:
                break  # same inputs again would give the same values: no confirming pass needed
            if not changed:
                break
    kept = {k: v for k, v in current.items() if k in enabled and v}
    return kept, enabled


def _weighted(form: Form, current: Answers, enabled: set[str]) -> dict[str, Any]:
    shell = {"resourceType": "QuestionnaireResponse", "item": nest(form, current, enabled)}
    return fhirpath.with_weights(shell, form.weights, fresh=True)


def _calculate(form: Form, current: Answers, enabled: set[str]) -> bool:
    """Evaluate every calculatedExpression once against the current answers; True if any changed."""
    weighted = _weighted(form, current, enabled)
    variables = fhirpath.with_index(expression_variables(form, weighted), weighted)
    changed = False
    for item in form.calculated:
        try:
            result = fhirpath.evaluate(item.calculated_expression or "", weighted, variables=variables)
        except fhirpath.FhirPathError:
            result = []
        new = _calculated_answer(item, result)
        if current.get(item.link_id, []) != new:
            changed = True
            if new:
                current[item.link_id] = new
            else:
                current.pop(item.link_id, None)
    return changed


def build_response(
    form: Form,
    answers: Answers,
    *,
    status: str,
    subject: str,
    authored: str,
    response_id: str | None = None,
    language: str | None = None,
) -> dict[str, Any]:
    """The QuestionnaireResponse for `answers`: pinned to url|version, texts as in the form."""
    kept, enabled = compute(form, answers)
    response: dict[str, Any] = {"resourceType": "QuestionnaireResponse"}
    if response_id:
        response["id"] = response_id
    if language:
        response["language"] = language
    response.update(
        {
            "questionnaire": form.canonical,
            "status": status,
            "subject": {"reference": subject},
            "authored": authored,
        }
    )
    items = nest(form, kept, enabled)
    if items:
        response["item"] = items
    return response


def flatten(response: dict[str, Any]) -> Answers:
    """The inverse of `nest`: linkId -> answers (without nested items), from a stored response."""
    out: Answers = {}

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            answers = item.get("answer") or []
            if answers:
                out.setdefault(item["linkId"], []).extend(
                    {k: v for k, v in a.items() if k != "item"} for a in answers
                )
            walk(item.get("item") or [])
            for answer in answers:
                walk(answer.get("item") or [])

    walk(response.get("item") or [])
    return out
