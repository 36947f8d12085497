"""MNSI Part A and the neuropathy red flags scored from forms/neuropathy.json by the scoring engine.

Expected totals follow the official Michigan scoring (instruments.md 3.2), worked out by hand:
"Yes" to items 1-3, 5-6, 8-9, 11-12, 14-15 and "No" to items 7 and 13 score 1; items 4 and 10 are
never scored. Red-flag tiers follow instruments.md 3.3.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pytest

from intake.core.answers import build_response
from intake.core.catalog import load_catalog
from intake.core.items import Form
from intake.core.scoring import Context, Result, Score, score_intake, score_response
from intake.core.translations import flag_guidance
from tests.core.factories import FORMS

LOINC = "http://loinc.org"
YES = [{"valueCoding": {"system": LOINC, "code": "LA33-6", "display": "Yes"}}]
NO = [{"valueCoding": {"system": LOINC, "code": "LA32-8", "display": "No"}}]
YES_SCORES = (1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15)
NO_SCORES = (7, 13)
UNSCORED = (4, 10)
SCORED = tuple(sorted(YES_SCORES + NO_SCORES))


@lru_cache(maxsize=1)
def neuropathy() -> Form:
    return load_catalog(FORMS).by_key["neuropathy"]


def response(answers: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return build_response(
        neuropathy(), answers, status="completed", subject="Patient/p1", authored="2024-05-01T10:00:00Z"
    )


def result(answers: dict[str, list[dict[str, Any]]]) -> Result:
    return score_response(neuropathy(), response(answers), Context(birth_date="1960-01-01"))


def mnsi_score(answers: dict[str, list[dict[str, Any]]]) -> Score:
    [score] = [s for s in result(answers).scores if s.id == "mnsi"]
    return score


def mnsi(answer_for) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for n in range(1, 16):
        value = answer_for(n)
        if value is not None:
            out[f"mnsi-{n}"] = value
    return out


def healthy(n: int) -> list[dict[str, Any]]:
    """The answer that scores 0: No, except Yes on 7 (can tell hot from cold) and 13 (can feel the feet)."""
    return YES if n in NO_SCORES else NO


def with_points(points: int, *, four_and_ten=NO) -> dict[str, list[dict[str, Any]]]:
    """Healthy answers plus `points` abnormal ones, reversed items (7, 13) first."""
    abnormal = list(NO_SCORES + YES_SCORES)[:points]
    return mnsi(
        lambda n: four_and_ten if n in UNSCORED else (YES if n in YES_SCORES else NO) if n in abnormal else healthy(n)
    )


def test_mnsi_all_no_is_2():
    score = mnsi_score(mnsi(lambda n: NO))
    assert (score.value, score.complete) == (2, True)


def test_mnsi_healthy_with_yes_on_4_and_10_is_0():
    # a naive "count the Yes" would give 4 (items 4, 7, 10, 13)
    score = mnsi_score(mnsi(lambda n: YES if n in UNSCORED else healthy(n)))
    assert (score.value, score.complete) == (0, True)
    assert [t.met for t in score.thresholds] == [False, False]


def test_mnsi_items_4_and_10_never_change_the_total():
    assert mnsi_score(with_points(5, four_and_ten=YES)).value == 5
    assert mnsi_score(with_points(5, four_and_ten=NO)).value == 5


def test_mnsi_all_yes_is_11():
    assert mnsi_score(mnsi(lambda n: YES)).value == 11


def test_mnsi_maximum_is_13():
    score = mnsi_score(mnsi(lambda n: NO if n in NO_SCORES else YES))
    assert (score.value, [t.met for t in score.thresholds]) == (13, [True, True])


@pytest.mark.parametrize(
    ("points", "screen_positive", "traditional"),
    [(0, False, False), (3, False, False), (4, True, False), (6, True, False), (7, True, True), (13, True, True)],
)
def test_mnsi_thresholds(points, screen_positive, traditional):
    score = mnsi_score(with_points(points))
    assert score.value == points
    assert {t.id: t.met for t in score.thresholds} == {"screen-positive": screen_positive, "traditional": traditional}
    assert score.band is None  # cut-offs, not bands


def test_mnsi_threshold_labels():
    labels = {t.id: t.label for t in mnsi_score(with_points(0)).thresholds}
    assert labels == {
        "screen-positive": "≥4 possible neuropathy (Herman 2012, sensitive)",
        "traditional": "≥7 traditional threshold",
    }


def test_mnsi_items_4_and_10_unanswered_is_still_complete():
    score = mnsi_score(mnsi(lambda n: None if n in UNSCORED else YES))
    assert (score.value, score.complete, score.missing) == (11, True, ())


@pytest.mark.parametrize("k", SCORED)
def test_mnsi_a_scored_item_unanswered_is_incomplete(k):
    score = mnsi_score(mnsi(lambda n: None if n == k else YES))
    assert (score.value, score.complete, score.missing) == (None, False, (f"mnsi-{k}",))
    assert [t.met for t in score.thresholds] == [None, None]


def test_mnsi_requires_the_13_scored_items_only():
    group = next(i for i in neuropathy().walk() if i.link_id == "neuropathy-mnsi").raw
    [spec] = [e for e in group["extension"] if e["url"].endswith("/score")]
    requires = [s["valueString"] for s in spec["extension"] if s["url"] == "requires"]
    assert requires == [f"mnsi-{n}" for n in SCORED]


# ------------------------------------------------------------------ red flags

TIERS = {
    "n-rf1": "urgent",
    "n-rf2": "emergency",
    "n-rf3": "emergency",
    "n-rf4": "urgent",
    "n-rf5": "review",
    "n-rf6": "review",
}


def red_flags(true: set[str]) -> dict[str, list[dict[str, Any]]]:
    return {link: [{"valueBoolean": link in true}] for link in TIERS}


def test_no_red_flag_answered_yes_raises_nothing():
    assert result({**mnsi(lambda n: YES), **red_flags(set())}).flags == []
    assert result(mnsi(lambda n: YES)).flags == []  # unanswered raises nothing either


@pytest.mark.parametrize("link", sorted(TIERS))
def test_each_red_flag_has_its_tier(link):
    [flag] = result({**mnsi(healthy), **red_flags({link})}).flags
    assert (flag.id, flag.tier, flag.because, flag.verification) == (link, TIERS[link], (link,), "unverified")
    assert "3.3" in flag.citation
    if TIERS[link] == "emergency":
        assert "emergency number" in flag.patient_guidance
        assert "shown to the patient at once" in flag.message
    elif TIERS[link] == "urgent":
        assert flag.patient_guidance.startswith("You told us ")
        assert (
            "Please contact the clinic today to tell them. Do not wait for your appointment." in flag.patient_guidance
        )
    else:
        assert flag.patient_guidance is None
    if flag.patient_guidance:
        spanish = flag_guidance(load_catalog(FORMS).localized(neuropathy(), "es").resource, link) or ""
        assert spanish.startswith("Usted nos dijo que ")
        assert not any(ch.isdigit() for ch in flag.patient_guidance + spanish)  # no country's phone numbers


def test_n_rf1_guidance_names_the_signs_that_need_an_emergency_call():
    [flag] = result(red_flags({"n-rf1"})).flags
    assert flag.patient_guidance.endswith(
        "If you have any difficulty breathing, swallowing or speaking, call your local emergency number now.")


def test_n_rf2_is_an_emergency_with_guidance_even_without_mnsi_answers():
    out = result(red_flags({"n-rf2"}))
    [flag] = out.flags
    assert (flag.id, flag.tier) == ("n-rf2", "emergency")
    assert flag.patient_guidance.startswith("You told us you have difficulty breathing, swallowing or speaking")
    assert "Call your local emergency number now" in flag.patient_guidance
    assert [s.complete for s in out.scores if s.id == "mnsi"] == [False]


def test_intake_result_sorts_emergencies_first():
    out = score_intake([(neuropathy(), response({**mnsi(healthy), **red_flags({"n-rf5", "n-rf1", "n-rf2"})}))])
    assert [(f.id, f.tier) for f in out.flags] == [("n-rf2", "emergency"), ("n-rf1", "urgent"), ("n-rf5", "review")]
    assert neuropathy().version == "1.4.0"
