"""The linkId index is an optimisation only: every expression in the project's forms gives the
same result with it as fhirpathpy gives walking the response."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from intake.core import fhirpath
from intake.core.answers import build_response
from intake.core.catalog import load_catalog
from intake.core.scoring import Context, _variables, prepare

FORMS = Path(__file__).resolve().parents[2] / "forms"
CATALOG = load_catalog(FORMS)


def expressions(resource: dict[str, Any]) -> list[str]:
    """Every FHIRPath in a Questionnaire: calculated items, rules (when/value), criteria."""
    out: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("language") == "text/fhirpath" and node.get("expression"):
                out.append(node["expression"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(resource)
    return [e for e in out if "%resource" in e or "%" in e]


def answers_for(form: Any, pick: int) -> dict[str, list[dict[str, Any]]]:
    """Deterministic answers: option `pick` (modulo), yes for booleans, numbers around cut-offs."""
    answers: dict[str, list[dict[str, Any]]] = {}
    for item in form.walk():
        if not item.is_question or item.read_only:
            continue
        if item.options:
            option = item.options[pick % len(item.options)]
            key = next(k for k in option if k.startswith("value"))
            answers[item.link_id] = [{key: option[key]}]
        elif item.type == "boolean":
            answers[item.link_id] = [{"valueBoolean": pick % 2 == 0}]
        elif item.type == "integer":
            answers[item.link_id] = [{"valueInteger": 24 + pick}]
        elif item.type == "decimal":
            answers[item.link_id] = [{"valueDecimal": 3.5 + pick}]
        elif item.type == "date":
            answers[item.link_id] = [{"valueDate": "2019-06"}]
    return answers


# How many expressions each form has at least (totals, rules, findings, notes): the test must
# really compare them, not skip them.
MINIMUM = {"stress": 7, "neuropathy": 7, "diet": 1, "digestive": 11, "autoimmune": 10}

CASES = [(form.key, pick) for form in CATALOG for pick in range(4)]


@pytest.mark.parametrize("key, pick", CASES)
def test_indexed_and_plain_evaluation_agree(key: str, pick: int) -> None:
    form = CATALOG.by_key[key]
    response = build_response(form, answers_for(form, pick), status="completed", subject="Patient/p",
                              authored="2026-11-22T10:00:00Z")
    _answers, weighted, _enabled = prepare(form, response)
    domains = {f.key: weighted if f.key == key else None for f in CATALOG}
    plain = _variables(form, weighted, Context(birth_date="1960-05-01"), {**domains, "scores": {"mnsi": 5}})
    plain = {k: v for k, v in plain.items() if k != fhirpath.INDEX_KEY}
    fast = fhirpath.with_index(plain, weighted)
    checked = 0
    for expression in expressions(form.resource):
        try:
            expected = fhirpath.evaluate(expression, weighted, variables=plain)
        except fhirpath.FhirPathError:
            continue  # criteria written for an item context are not resource-level expressions
        assert fhirpath.evaluate(expression, weighted, variables=fast) == expected, expression
        assert fhirpath.is_true(expression, weighted, variables=fast) == (expected == [True]), expression
        checked += 1
    assert checked >= MINIMUM[key]


def test_the_rewrite_covers_the_shapes_used() -> None:
    rewritten, lookups = fhirpath.indexed(
        "%resource.repeat(item).where(linkId='a').answer.value.weight() + "
        "iif(%resource.repeat(item).where(linkId='b').answer.value >= 4, 1, 0) + "
        "%diet.repeat(item).where(linkId in ('c' | 'd')).answer.where(value = true).count()"
    )
    assert "repeat(item)" not in rewritten
    assert [(source, links, kind) for _name, source, links, kind in lookups] == [
        ("resource", ("a",), "weights"), ("resource", ("b",), "values"), ("diet", ("c", "d"), "items")]
