"""MEDAS (14-item Mediterranean Diet Adherence Screener) scored from forms/diet.json.

One point per criterion met (instruments.md 5.2), with the "less than" criteria strict; bands
<= 7 low, 8-9 medium, >= 10 high (Martínez-González 2012). Expected values are by hand.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pytest

from intake.core import fhirpath
from intake.core.answers import build_response
from intake.core.catalog import load_catalog
from intake.core.items import Form
from intake.core.scoring import Context, Result, Score, score_response
from tests.core.factories import FORMS


@lru_cache(maxsize=1)
def diet() -> Form:
    return load_catalog(FORMS).by_key["diet"]


def boolean(value: bool) -> list[dict[str, Any]]:
    return [{"valueBoolean": value}]


def decimal(value: float) -> list[dict[str, Any]]:
    return [{"valueDecimal": value}]


def integer(value: int) -> list[dict[str, Any]]:
    return [{"valueInteger": value}]


# Every criterion, as (item, an answer that just misses it, an answer that just meets it).
CRITERIA = [
    ("medas-1", boolean(False), boolean(True)),   # olive oil main culinary fat: Yes
    ("medas-2", decimal(3.9), decimal(4)),        # olive oil >= 4 tablespoons a day
    ("medas-3", decimal(1.9), decimal(2)),        # vegetables >= 2 servings a day
    ("medas-4", decimal(2.9), decimal(3)),        # fruit >= 3 a day
    ("medas-5", decimal(1), decimal(0.9)),        # red meat < 1 serving a day (strict)
    ("medas-6", decimal(1), decimal(0.9)),        # butter, margarine, cream < 1 a day (strict)
    ("medas-7", decimal(1), decimal(0.9)),        # sweet or carbonated drinks < 1 a day (strict)
    ("medas-8", integer(6), integer(7)),          # wine >= 7 glasses a week
    ("medas-9", integer(2), integer(3)),          # legumes >= 3 a week
    ("medas-10", integer(2), integer(3)),         # fish or shellfish >= 3 a week
    ("medas-11", integer(3), integer(2)),         # commercial sweets < 3 times a week (strict)
    ("medas-12", integer(2), integer(3)),         # nuts >= 3 a week
    ("medas-13", boolean(False), boolean(True)),  # prefers white meat: Yes
    ("medas-14", integer(1), integer(2)),         # sofrito >= 2 times a week
]


def none_met() -> dict[str, list[dict[str, Any]]]:
    return {link: miss for link, miss, _meet in CRITERIA}


def first_met(count: int) -> dict[str, list[dict[str, Any]]]:
    answers = none_met()
    for link, _miss, meet in CRITERIA[:count]:
        answers[link] = meet
    return answers


def response(answers: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return build_response(diet(), answers, status="completed", subject="Patient/p1", authored="2024-05-01T10:00:00Z")


def result(answers: dict[str, list[dict[str, Any]]]) -> Result:
    return score_response(diet(), response(answers), Context(birth_date="1970-01-01"))


def medas(answers: dict[str, list[dict[str, Any]]]) -> Score:
    [score] = [s for s in result(answers).scores if s.id == "medas"]
    return score


def test_no_criterion_met_is_0_low():
    score = medas(none_met())
    assert (score.value, score.complete, score.band.code) == (0, True, "low")


def test_every_criterion_met_is_14_high():
    score = medas(first_met(14))
    assert (score.value, score.band.code) == (14, "high")


@pytest.mark.parametrize(("link", "miss", "meet"), CRITERIA, ids=[c[0] for c in CRITERIA])
def test_each_criterion_at_its_boundary(link, miss, meet):
    assert medas({**none_met(), link: miss}).value == 0
    assert medas({**none_met(), link: meet}).value == 1


@pytest.mark.parametrize(
    ("link", "answer", "points"),
    [
        ("medas-2", decimal(4.0), 1), ("medas-2", decimal(4.1), 1), ("medas-2", decimal(0), 0),
        ("medas-5", decimal(0), 1), ("medas-5", decimal(0.99), 1), ("medas-5", decimal(1.5), 0),
        ("medas-6", decimal(0), 1), ("medas-7", decimal(0.5), 1),
        ("medas-11", integer(0), 1), ("medas-11", integer(4), 0),
        ("medas-8", integer(14), 1), ("medas-14", integer(0), 0),
    ],
)
def test_criteria_around_the_boundaries(link, answer, points):
    assert medas({**none_met(), link: answer}).value == points


@pytest.mark.parametrize(
    ("met", "band"),
    [(0, "low"), (7, "low"), (8, "medium"), (9, "medium"), (10, "high"), (14, "high")],
)
def test_medas_bands(met, band):
    score = medas(first_met(met))
    assert (score.value, score.band.code) == (met, band)
    assert score.band.validated is False  # study categories (other studies use <= 5 / 6-9 / >= 10)


@pytest.mark.parametrize("k", range(1, 15))
def test_one_item_missing_gives_no_total(k):
    answers = first_met(14)
    del answers[f"medas-{k}"]
    score = medas(answers)
    assert (score.value, score.complete, score.missing, score.band) == (None, False, (f"medas-{k}",), None)


@pytest.mark.parametrize("met", [0, 5, 9, 14])
def test_total_agrees_with_each_items_score_criterion(met):
    """The total's calculatedExpression and the items' own scoreCriterion never drift apart."""
    answers = first_met(met)
    resource = response(answers)
    by_link = {i.link_id: i for i in diet().walk()}
    points = 0
    for group in resource["item"]:
        for node in group.get("item") or []:
            criterion = by_link[node["linkId"]].score_criterion
            if criterion:
                points += fhirpath.evaluate(criterion, node, base="QuestionnaireResponse.item") == [True]
    assert points == met
    assert medas(answers).value == met


def test_diet_raises_no_flags():
    assert result(first_met(0)).flags == []
    assert result(first_met(14)).flags == []
    assert diet().version == "1.4.0"


def test_sugary_drinks_and_pernicious_anaemia_are_asked_once():
    """MEDAS item 7 is the sugary-drinks question; pernicious anaemia is asked in the autoimmune form."""
    form = diet()
    links = {item.link_id for page in form.pages for item in page.walk()}
    assert "medas-7" in links and "diet-sugary" not in links
    b12 = next(item for page in form.pages for item in page.walk() if item.link_id == "diet-b12-risk")
    assert "pernicious-anaemia" not in [o["valueCoding"]["code"] for o in b12.options]


def test_medas_hints_give_household_measures_without_changing_the_validated_wording():
    catalog = load_catalog(FORMS)
    current, spanish = catalog.by_key["diet"], catalog.localized(catalog.by_key["diet"], "es")
    old = catalog.get("https://intake.example.org/fhir/Questionnaire/diet|1.3.0")
    assert old is not None
    for n in range(1, 15):
        link = f"medas-{n}"
        assert current.by_link[link].text == old.by_link[link].text  # MEDAS wording as published
        assert current.by_link[link].raw.get("_text") == old.by_link[link].raw.get("_text")
    assert current.by_link["medas-3"].help_text == ("A serving is 200 g: about 1 cup of cooked vegetables or a large "
                                                    "bowl of salad.")
    assert (spanish.by_link["medas-3"].help_text or "").startswith("Una porción son 200 g")
    assert "not advice to drink" in (current.by_link["medas-8"].help_text or "")
    hinted = [n for n in range(1, 15) if current.by_link[f"medas-{n}"].help_text]
    assert hinted == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
