"""FHIRPath: SDC weight()/ordinal(), strict syntax checks, and the scoring traps of instruments.md."""

from __future__ import annotations

from functools import lru_cache

import fhirpathpy
import pytest

from intake.core import fhirpath
from intake.core.answers import build_response
from intake.core.catalog import load_catalog
from intake.core.fhirpath import (
    ITEM_WEIGHT,
    ORDINAL_VALUE,
    FhirPathError,
    check_syntax,
    evaluate,
    option_weight,
    with_weights,
)
from tests.core.factories import FORMS, option

SYSTEM = "urn:test"


def qr(*items: dict) -> dict:
    return {"resourceType": "QuestionnaireResponse", "item": list(items)}


def answered(link_id: str, code: str, system: str | None = SYSTEM) -> dict:
    value = {"code": code} if system is None else {"system": system, "code": code}
    return {"linkId": link_id, "answer": [{"valueCoding": value}]}


def weights(expression: str, response: dict, options: dict) -> list:
    enriched = with_weights(response, options)
    return evaluate(expression, enriched, variables={"resource": enriched})


# ------------------------------------------------------------------ option_weight / with_weights


@pytest.mark.parametrize(
    ("opt", "expected"),
    [
        (option("a", weight=2, ordinal=7), 2),
        (
            {
                "extension": [{"url": ORDINAL_VALUE, "valueDecimal": 7}, {"url": ITEM_WEIGHT, "valueDecimal": 2}],
                "valueCoding": {"code": "a"},
            },
            2,
        ),
        (option("a", ordinal=7), 7),
        (option("a", weight=0), 0),
        ({"extension": [{"url": ITEM_WEIGHT, "valueInteger": 3}], "valueCoding": {"code": "a"}}, 3),
        (option("a"), None),
        ({"extension": [{"url": "urn:other", "valueDecimal": 9}], "valueCoding": {"code": "a"}}, None),
    ],
)
def test_option_weight_prefers_item_weight(opt, expected):
    assert option_weight(opt) == expected


OPTIONS = {
    "q1": [option("a", system=SYSTEM, weight=1, ordinal=10), option("b", system=SYSTEM, weight=2.5, ordinal=20)],
    "q2": [option("a", system=SYSTEM, ordinal=4), option("b", system=SYSTEM)],
    "q3": [option("a", system=None, weight=5)],
}


def test_with_weights_copies_and_annotates():
    response = qr(answered("q1", "b"), answered("q2", "a"))
    enriched = with_weights(response, OPTIONS)
    assert enriched["item"][0]["answer"][0]["valueCoding"] == {
        "system": SYSTEM,
        "code": "b",
        "extension": [{"url": ITEM_WEIGHT, "valueDecimal": 2.5}],
    }
    assert enriched["item"][1]["answer"][0]["valueCoding"]["extension"] == [{"url": ITEM_WEIGHT, "valueDecimal": 4}]
    assert response == qr(answered("q1", "b"), answered("q2", "a"))  # the original is untouched


@pytest.mark.parametrize("function", ["weight", "ordinal"])
@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([answered("q1", "a")], [1]),  # itemWeight 1 wins over ordinalValue 10
        ([answered("q1", "b")], [2.5]),
        ([answered("q2", "a")], [4]),  # only ordinalValue
        ([answered("q2", "b")], []),  # no weight at all: empty, not 0
        ([answered("q1", "b", system="urn:elsewhere")], []),  # system must match the option's
        ([answered("q3", "a", system=None)], [5]),
        ([answered("q1", "zz")], []),
    ],
)
def test_weight_and_ordinal(function, items, expected):
    assert weights(f"%resource.item.answer.value.{function}()", qr(*items), OPTIONS) == expected


def test_weight_on_nested_answers():
    nested = {
        "linkId": "g",
        "item": [{"linkId": "parent", "answer": [{"valueBoolean": True, "item": [answered("q1", "b")]}]}],
    }
    # children of a question sit under answer.item, which repeat(item) alone does not reach
    assert weights(
        "%resource.repeat(item).answer.item.where(linkId='q1').answer.value.weight()", qr(nested), OPTIONS
    ) == [2.5]
    assert weights("%resource.repeat(item).where(linkId='q1').answer.value.weight()", qr(nested), OPTIONS) == []


def test_weights_of_one_shared_coding_object_follow_each_item():
    # The same Coding object answering two items whose options weigh it differently: each answer
    # gets its own item's weight (deepcopy keeps aliasing; annotating in place made both 5).
    shared = {"system": SYSTEM, "code": "a"}
    options = {"x": [option("a", system=SYSTEM, weight=1)], "y": [option("a", system=SYSTEM, weight=5)]}
    response = qr(
        {"linkId": "x", "answer": [{"valueCoding": shared}]}, {"linkId": "y", "answer": [{"valueCoding": shared}]}
    )
    assert weights("%resource.item.answer.value.weight()", response, options) == [1, 5]
    assert shared == {"system": SYSTEM, "code": "a"}


def test_weight_sum_over_several_items():
    response = qr(answered("q1", "a"), answered("q2", "a"), answered("q3", "a", system=None))
    assert weights("%resource.item.answer.value.weight().sum()", response, OPTIONS) == [10]


def test_weight_of_non_coding_is_empty():
    response = qr({"linkId": "n", "answer": [{"valueInteger": 3}]})
    assert weights("%resource.item.answer.value.weight()", response, OPTIONS) == []


def test_weight_on_a_coding_carrying_both_extensions_prefers_item_weight():
    # A response exported elsewhere may carry the weights on its Codings already (SDC looks there
    # first); whatever their order, itemWeight wins, as in option_weight.
    coding = {
        "system": SYSTEM,
        "code": "x",
        "extension": [{"url": ORDINAL_VALUE, "valueDecimal": 2}, {"url": ITEM_WEIGHT, "valueDecimal": 5}],
    }
    response = qr({"linkId": "other", "answer": [{"valueCoding": coding}]})
    assert weights("%resource.item.answer.value.weight()", response, {}) == [5]
    assert weights("%resource.item.answer.value.ordinal()", response, {}) == [5]


# ------------------------------------------------------------------ syntax


SILENTLY_ACCEPTED = ["a b", "1 +* 2"]


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("answer.value >= ", "column 17: mismatched input '<EOF>'"),
        ("a b", "column 3: extraneous input 'b' expecting <EOF>"),
        ("1 +* 2", "column 4: extraneous input '*'"),
        ("", "column 1: mismatched input '<EOF>'"),
        ("where(linkId = 'a'", "column 19:"),
    ],
)
def test_check_syntax_rejects(expression, fragment):
    reason = check_syntax(expression)
    assert reason is not None
    assert reason.startswith(f"FHIRPath does not parse: {expression!r}: ")
    assert fragment in reason


def test_fhirpathpy_alone_accepts_what_check_syntax_rejects():
    # Why check_syntax exists: fhirpathpy's parser recovers silently, so a typo becomes a wrong score.
    assert fhirpathpy.evaluate({}, "a b") == []
    assert fhirpathpy.evaluate({}, "1 +* 2") == [3]


@pytest.mark.parametrize(
    "expression",
    [
        "1 + 2",
        "%resource.repeat(item).where(linkId='a').answer.value.weight().sum()",
        "answer.value >= 3 and answer.exists()",
        "%resource.item.where(linkId.startsWith('pss10-')).count() = 10",
    ],
)
def test_check_syntax_accepts(expression):
    assert check_syntax(expression) is None


@pytest.mark.parametrize("expression", [*SILENTLY_ACCEPTED, "answer.value >= "])
def test_evaluate_raises_on_syntax_error(expression):
    with pytest.raises(FhirPathError, match="FHIRPath does not parse"):
        evaluate(expression, {})


def test_evaluate_raises_on_runtime_error():
    with pytest.raises(FhirPathError, match=r"FHIRPath failed: '%nope \+ 1': .*nope"):
        evaluate("%nope + 1", {})


def test_evaluate_with_variables():
    assert evaluate("%a + %b", {}, variables={"a": 2, "b": 3}) == [5]


def test_evaluate_with_base_questionnaire_response_item():
    item = {"linkId": "a", "answer": [{"valueInteger": 3}, {"valueInteger": 4}]}
    assert evaluate("answer.value", item, base="QuestionnaireResponse.item") == [3, 4]
    assert evaluate("answer.value.where($this >= 4)", item, base="QuestionnaireResponse.item") == [4]
    # without the base, `value` is not resolved as the choice type value[x]
    assert evaluate("answer.value", item) == []
    assert evaluate("linkId", item, base="QuestionnaireResponse.item") == ["a"]


def test_compile_is_cached_per_base():
    fhirpath.compile_expression.cache_clear()
    evaluate("linkId", {"linkId": "x"})
    evaluate("linkId", {"linkId": "y"})
    evaluate("linkId", {"linkId": "y"}, base="QuestionnaireResponse.item")
    info = fhirpath.compile_expression.cache_info()
    assert (info.hits, info.misses) == (1, 2)


# ------------------------------------------------------------------ scoring traps, real forms


@lru_cache(maxsize=1)
def catalog():
    return load_catalog(FORMS)


def score(key: str, answers: dict, prefix: str) -> list:
    form = catalog().by_key[key]
    response = build_response(form, answers, status="completed", subject="Patient/p1", authored="2024-05-01T10:00:00Z")
    enriched = with_weights(response, form.options_by_link())
    expression = f"%resource.repeat(item).where(linkId.startsWith('{prefix}')).answer.value.weight().sum()"
    return evaluate(expression, enriched, variables={"resource": enriched})


LOINC = "http://loinc.org"
NEVER = {"valueCoding": {"system": LOINC, "code": "LA6270-8", "display": "Never"}}
VERY_OFTEN = {"valueCoding": {"system": LOINC, "code": "LA14985-8", "display": "Very often"}}
YES = {"valueCoding": {"system": LOINC, "code": "LA33-6", "display": "Yes"}}
NO = {"valueCoding": {"system": LOINC, "code": "LA32-8", "display": "No"}}


def pss(answer_for) -> dict:
    return {f"pss10-{n}": [answer_for(n)] for n in range(1, 11)}


def test_pss10_all_never_is_16_reversed_items_counted_once():
    # items 4, 5, 7, 8 are reversed in their weights (Never = 4): 4 x 4 = 16, never 0 nor 24
    assert score("stress", pss(lambda n: NEVER), "pss10-") == [16]


def test_pss10_all_very_often_is_24():
    assert score("stress", pss(lambda n: VERY_OFTEN), "pss10-") == [24]


def test_pss10_worst_case_is_40():
    assert score("stress", pss(lambda n: NEVER if n in (4, 5, 7, 8) else VERY_OFTEN), "pss10-") == [40]
    assert score("stress", pss(lambda n: VERY_OFTEN if n in (4, 5, 7, 8) else NEVER), "pss10-") == [0]


def mnsi(answer_for) -> dict:
    out = {}
    for n in range(1, 16):
        value = answer_for(n)
        if value is not None:
            out[f"mnsi-{n}"] = [value]
    return out


def test_mnsi_all_no_is_2():
    # items 7 and 13 score "No"
    assert score("neuropathy", mnsi(lambda n: NO), "mnsi-") == [2]


def test_mnsi_all_yes_is_11():
    # 13 "Yes"-scored items minus the two reversed (7, 13); items 4 and 10 are not scored
    assert score("neuropathy", mnsi(lambda n: YES), "mnsi-") == [11]


def test_mnsi_yes_to_items_4_and_10_only_is_0():
    # the only answers are "Yes" to the two unscored items: a naive "count the Yes" gives 2
    assert score("neuropathy", mnsi(lambda n: YES if n in (4, 10) else None), "mnsi-") == [0]


def test_mnsi_yes_to_4_and_10_adds_nothing():
    # "No" everywhere else still scores items 7 and 13: 2, exactly as with all "No"
    assert score("neuropathy", mnsi(lambda n: YES if n in (4, 10) else NO), "mnsi-") == [2]
    # and the healthy pattern (able to tell hot/cold and feel the feet) scores 0
    assert score("neuropathy", mnsi(lambda n: YES if n in (4, 7, 10, 13) else NO), "mnsi-") == [0]
