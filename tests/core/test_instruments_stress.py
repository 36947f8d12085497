"""PSS-10, PHQ-4, PHQ-9 and GAD-7 scored from forms/stress.json by the scoring engine.

Expected totals are worked out by hand from ../shared/instruments.md (sections 1.2, 1.3, 6), never
from the form's own weights: answers are chosen by their LOINC answer codes, whose published
values are PSS Never 0 .. Very often 4 (items 4, 5, 7, 8 reversed) and PHQ/GAD Not at all 0 ..
Nearly every day 3.
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
ITEMS = "https://intake.example.org/fhir/CodeSystem/intake-items"

# PSS frequency list in published order: index = raw frequency value 0..4 (instruments.md 1.2).
PSS = ["LA6270-8", "LA13866-1", "LA10082-8", "LA16644-9", "LA14985-8"]
NEVER, ALMOST_NEVER, SOMETIMES, FAIRLY_OFTEN, VERY_OFTEN = PSS
PSS_REVERSED = (4, 5, 7, 8)  # Cohen lab: the positively stated items
# PHQ/GAD list LL358-3: index = score 0..3.
PHQ = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"]


@lru_cache(maxsize=1)
def stress() -> Form:
    return load_catalog(FORMS).by_key["stress"]


def coded(code: str) -> list[dict[str, Any]]:
    return [{"valueCoding": {"system": LOINC, "code": code}}]


def response(answers: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return build_response(stress(), answers, status="completed", subject="Patient/p1", authored="2024-05-01T10:00:00Z")


def result(answers: dict[str, list[dict[str, Any]]]) -> Result:
    return score_response(stress(), response(answers), Context(birth_date="1980-01-01"))


def scores(answers: dict[str, list[dict[str, Any]]]) -> dict[str, Score]:
    return {s.id: s for s in result(answers).scores}


def item_of(resource: dict[str, Any], link_id: str) -> dict[str, Any] | None:
    def walk(items: list[dict[str, Any]]):
        for it in items:
            if it["linkId"] == link_id:
                return it
            found = walk(it.get("item") or [])
            if found:
                return found
        return None

    return walk(resource.get("item") or [])


# ------------------------------------------------------------------ PSS-10


def pss(codes: dict[int, str]) -> dict[str, list[dict[str, Any]]]:
    return {f"pss10-{n}": coded(codes[n]) for n in range(1, 11)}


def pss_for_total(total: int) -> dict[str, list[dict[str, Any]]]:
    """Answers worth `total`, by hand: a negatively stated item scores its frequency, a reversed
    item 4 - frequency. Negative items are filled first, then the reversed ones."""
    codes: dict[int, str] = {}
    left = total
    for n in (1, 2, 3, 6, 9, 10, 4, 5, 7, 8):
        points = min(4, left)
        left -= points
        codes[n] = PSS[4 - points] if n in PSS_REVERSED else PSS[points]
    assert left == 0
    return pss(codes)


def test_pss10_all_never_is_16_not_0():
    score = scores(pss({n: NEVER for n in range(1, 11)}))["pss10"]
    assert (score.value, score.complete, score.band.code) == (16, True, "moderate")


def test_pss10_all_very_often_is_24():
    score = scores(pss({n: VERY_OFTEN for n in range(1, 11)}))["pss10"]
    assert (score.value, score.band.code) == (24, "moderate")


def test_pss10_mixed_answers_computed_by_hand():
    codes = {
        1: SOMETIMES,     # 2
        2: NEVER,         # 0
        3: FAIRLY_OFTEN,  # 3
        4: ALMOST_NEVER,  # reversed: 3
        5: VERY_OFTEN,    # reversed: 0
        6: SOMETIMES,     # 2
        7: NEVER,         # reversed: 4
        8: FAIRLY_OFTEN,  # reversed: 1
        9: ALMOST_NEVER,  # 1
        10: VERY_OFTEN,   # 4
    }
    score = scores(pss(codes))["pss10"]
    assert (score.value, score.band.code) == (20, "moderate")


def test_pss10_no_double_reversal_max_is_40_min_is_0():
    worst = pss({n: NEVER if n in PSS_REVERSED else VERY_OFTEN for n in range(1, 11)})
    best = pss({n: VERY_OFTEN if n in PSS_REVERSED else NEVER for n in range(1, 11)})
    assert (scores(worst)["pss10"].value, scores(worst)["pss10"].band.code) == (40, "high")
    assert (scores(best)["pss10"].value, scores(best)["pss10"].band.code) == (0, "low")


def test_pss10_every_max_weight_option_gives_40():
    form = stress()
    answers = {}
    for n in range(1, 11):
        options = form.options_by_link()[f"pss10-{n}"]
        top = max(
            options, key=lambda o: next(e["valueDecimal"] for e in o["extension"] if e["url"].endswith("itemWeight"))
        )
        answers[f"pss10-{n}"] = [{"valueCoding": top["valueCoding"]}]
    assert scores(answers)["pss10"].value == 40


@pytest.mark.parametrize(
    ("total", "band"),
    [(0, "low"), (13, "low"), (14, "moderate"), (26, "moderate"), (27, "high"), (40, "high")],
)
def test_pss10_band_boundaries_are_not_validated(total, band):
    score = scores(pss_for_total(total))["pss10"]
    assert (score.value, score.band.code, score.band.validated) == (total, band, False)
    assert "not a validated cut-off" in score.band.label
    assert score.as_json()["bandValidated"] is False


@pytest.mark.parametrize("k", range(1, 11))
def test_pss10_one_item_missing_gives_no_total(k):
    answers = pss({n: SOMETIMES for n in range(1, 11)})
    del answers[f"pss10-{k}"]
    score = scores(answers)["pss10"]
    assert (score.value, score.complete, score.missing, score.band) == (None, False, (f"pss10-{k}",), None)
    assert item_of(response(answers), "pss10-total") is None


def test_pss10_total_is_stored_in_the_response_with_its_codes():
    stored = item_of(response(pss({n: NEVER for n in range(1, 11)})), "pss10-total")
    assert stored["answer"] == [{"valueInteger": 16}]
    raw = next(i for i in stress().walk() if i.link_id == "pss10-total").raw
    assert raw["code"] == [{"system": ITEMS, "code": "PSS10-TOTAL"}, {"system": LOINC, "code": "106860-0"}]
    assert (raw["type"], raw["readOnly"]) == ("integer", True)


def test_a_stale_stored_total_is_recomputed():
    resource = response(pss({n: NEVER for n in range(1, 11)}))
    item_of(resource, "pss10-total")["answer"] = [{"valueInteger": 39}]
    assert {s.id: s for s in score_response(stress(), resource).scores}["pss10"].value == 16


# ------------------------------------------------------------------ PHQ-4


def phq4(one: int, two: int, three: int, four: int) -> dict[str, list[dict[str, Any]]]:
    return {
        "phq4-1": coded(PHQ[one]),
        "phq4-2": coded(PHQ[two]),
        "phq4-3": coded(PHQ[three]),
        "phq4-4": coded(PHQ[four]),
    }


@pytest.mark.parametrize(
    ("items", "total", "band"),
    [
        ((0, 0, 0, 0), 0, "normal"),
        ((1, 0, 1, 0), 2, "normal"),
        ((1, 1, 1, 0), 3, "mild"),
        ((2, 1, 1, 1), 5, "mild"),
        ((2, 1, 2, 1), 6, "moderate"),
        ((3, 1, 3, 1), 8, "moderate"),
        ((3, 2, 3, 1), 9, "severe"),
        ((3, 3, 3, 3), 12, "severe"),
    ],
)
def test_phq4_total_bands(items, total, band):
    s = scores(phq4(*items))
    assert (s["phq4"].value, s["phq4"].band.code, s["phq4"].band.validated) == (total, band, True)
    assert s["phq4-anxiety"].value == items[0] + items[1]
    assert s["phq4-depression"].value == items[2] + items[3]


@pytest.mark.parametrize(
    ("high", "anxiety", "depression"),
    [("phq4-1", 3, 0), ("phq4-2", 3, 0), ("phq4-3", 0, 3), ("phq4-4", 0, 3)],
)
def test_phq4_subscales_follow_item_identity_not_position(high, anxiety, depression):
    order = ["phq4-4", "phq4-2", "phq4-3", "phq4-1"]  # shuffled on purpose
    answers = {link: coded(PHQ[3] if link == high else PHQ[0]) for link in order}
    s = scores(answers)
    assert (s["phq4-anxiety"].value, s["phq4-depression"].value, s["phq4"].value) == (anxiety, depression, 3)
    assert {t.id: t.met for t in s["phq4-anxiety"].thresholds} == {"positive": anxiety >= 3}
    assert {t.id: t.met for t in s["phq4-depression"].thresholds} == {"positive": depression >= 3}


@pytest.mark.parametrize(
    ("items", "anxiety_positive", "depression_positive"),
    [
        ((1, 1, 1, 1), False, False),  # 2 and 2
        ((2, 1, 1, 1), True, False),   # exactly 3 and 2
        ((1, 1, 0, 3), False, True),   # 2 and exactly 3
        ((0, 3, 2, 1), True, True),    # exactly 3 and exactly 3
    ],
)
def test_phq4_positive_threshold_at_exactly_3(items, anxiety_positive, depression_positive):
    s = scores(phq4(*items))
    assert [t.met for t in s["phq4-anxiety"].thresholds] == [anxiety_positive]
    assert [t.met for t in s["phq4-depression"].thresholds] == [depression_positive]


def test_phq4_subscale_missing_an_item_is_incomplete_the_other_is_not():
    answers = phq4(3, 3, 1, 0)
    del answers["phq4-2"]
    s = scores(answers)
    assert (s["phq4-anxiety"].value, s["phq4-anxiety"].missing) == (None, ("phq4-2",))
    assert [t.met for t in s["phq4-anxiety"].thresholds] == [None]
    assert (s["phq4"].value, s["phq4"].missing) == (None, ("phq4-2",))
    assert (s["phq4-depression"].value, s["phq4-depression"].complete) == (1, True)


def test_phq4_codes_only_verified_loinc():
    by_link = {i.link_id: i.raw for i in stress().walk()}
    assert by_link["phq4-total"]["code"] == [
        {"system": ITEMS, "code": "PHQ4-TOTAL"},
        {"system": LOINC, "code": "70272-0"},
    ]
    assert by_link["phq4-depression-score"]["code"] == [{"system": LOINC, "code": "55758-7"}]
    assert "code" not in by_link["phq4-anxiety-score"]  # no GAD-2 total code verified


# ------------------------------------------------------------------ PHQ-9


def phq9_for_total(total: int, item9: int = 0) -> dict[str, list[dict[str, Any]]]:
    """PHQ-9 answers worth `total`, items 1-2 given on PHQ-4 (its items 4 and 3, carried forward).

    PHQ-9 is asked only when PHQ-2 (those two items) is 3 or more, so a total below 3 cannot occur.
    """
    points = []
    left = total - item9
    for _ in range(1, 9):
        points.append(min(3, left))
        left -= points[-1]
    assert left == 0 and points[0] + points[1] >= 3, "PHQ-9 is switched on by PHQ-2 >= 3"
    answers = phq4(0, 0, points[1], points[0])
    for n in range(3, 9):
        answers[f"phq9-{n}"] = coded(PHQ[points[n - 1]])
    answers["phq9-9"] = coded(PHQ[item9])
    return answers


@pytest.mark.parametrize(
    ("total", "item9", "band"),
    [
        (3, 0, "minimal"), (4, 0, "minimal"),  # 0-2 cannot occur: PHQ-9 needs PHQ-2 >= 3
        (5, 0, "mild"), (9, 0, "mild"),
        (10, 0, "moderate"), (14, 0, "moderate"),
        (15, 0, "moderately severe"), (19, 0, "moderately severe"),
        (20, 0, "severe"), (27, 3, "severe"),
    ],
)
def test_phq9_bands_at_every_boundary(total, item9, band):
    score = scores(phq9_for_total(total, item9))["phq9"]
    assert (score.value, score.complete, score.band.code, score.band.validated) == (total, True, band, True)


def test_phq9_minimal_band_label():
    assert scores(phq9_for_total(3))["phq9"].band.label.startswith("None–minimal")


@pytest.mark.parametrize("item9", [1, 2, 3])
def test_phq9_item9_above_zero_is_an_emergency_whatever_the_total(item9):
    out = result(phq9_for_total(3 + item9, item9))  # PHQ-2's 3 points and item 9 only: 4..6
    score = {s.id: s for s in out.scores}["phq9"]
    assert (score.value, score.band.code) == (3 + item9, "minimal" if item9 == 1 else "mild")
    [flag] = out.flags
    assert (flag.id, flag.tier, flag.because) == ("phq9-item9", "emergency", ("phq9-9",))
    assert "call your local emergency number or a crisis line (see the numbers below)" in flag.patient_guidance
    assert not any(ch.isdigit() for ch in flag.patient_guidance)  # no country's numbers (the page lists them)
    assert flag.as_json()["patientGuidance"] == flag.patient_guidance
    assert "in some way" in flag.message and "instruments.md" not in flag.patient_guidance


def test_phq9_item9_guidance_in_spanish_names_no_country():
    spanish = flag_guidance(load_catalog(FORMS).localized(stress(), "es").resource, "phq9-item9") or ""
    assert "llame al número local de emergencias o a una línea de crisis (vea los números más abajo)" in spanish
    assert not any(ch.isdigit() for ch in spanish) and "EE. UU." not in spanish


# ------------------------------------------------------------------ published wording (Pfizer PHQ-9, GAD-7)

PHQ9_STEM = "Over the last 2 weeks, how often have you been bothered by any of the following problems?"
PHQ9_ITEMS = [
    "Little interest or pleasure in doing things",
    "Feeling down, depressed, or hopeless",
    "Trouble falling or staying asleep, or sleeping too much",
    "Feeling tired or having little energy",
    "Poor appetite or overeating",
    "Feeling bad about yourself — or that you are a failure or have let yourself or your family down",
    "Trouble concentrating on things, such as reading the newspaper or watching television",
    ("Moving or speaking so slowly that other people could have noticed? Or the opposite — being so fidgety or "
     "restless that you have been moving around a lot more than usual"),
    "Thoughts that you would be better off dead, or of hurting yourself in some way",
]
GAD7_STEM = "Over the last 2 weeks, how often have you been bothered by the following problems?"
GAD7_ITEMS = [
    "Feeling nervous, anxious, or on edge",
    "Not being able to stop or control worrying",
    "Worrying too much about different things",
    "Trouble relaxing",
    "Being so restless that it is hard to sit still",
    "Becoming easily annoyed or irritable",
    "Feeling afraid, as if something awful might happen",
]


def test_phq9_and_gad7_wording_is_the_published_english():
    by_link = stress().by_link
    assert by_link["phq9-instructions"].text == PHQ9_STEM
    assert [by_link[f"phq9-{n}"].text for n in range(1, 10)] == PHQ9_ITEMS
    assert by_link["gad7-instructions"].text == GAD7_STEM
    assert [by_link[f"gad7-{n}"].text for n in range(1, 8)] == GAD7_ITEMS


def test_phq9_item9_spanish_is_the_published_pfizer_wording():
    spanish = load_catalog(FORMS).localized(stress(), "es")
    assert (
        spanish.by_link["phq9-9"].text == "Pensamientos de que estaría mejor muerto(a) o de lastimarse de alguna manera"
    )
    assert [c["code"] for c in stress().by_link["phq9-9"].raw["code"]] == ["PHQ9-9", "44260-8"]


def test_phq9_item9_zero_raises_nothing_even_with_a_severe_total():
    out = result(phq9_for_total(24, 0))
    assert {s.id: s for s in out.scores}["phq9"].band.code == "severe"
    assert out.flags == []


def test_phq9_incomplete_still_raises_the_item9_flag():
    answers = phq4(0, 0, 3, 0)  # items 1-2 come from PHQ-4; 3-8 unanswered
    answers["phq9-9"] = coded(PHQ[1])
    out = result(answers)
    score = {s.id: s for s in out.scores}["phq9"]
    assert (score.value, score.complete, score.missing) == (None, False, tuple(f"phq9-{n}" for n in range(3, 9)))
    assert [(f.id, f.tier) for f in out.flags] == [("phq9-item9", "emergency")]


def test_phq9_item9_flag_reaches_the_intake_result():
    out = score_intake([(stress(), response(phq9_for_total(4, 1)))], Context())
    assert [(f.id, f.tier) for f in out.flags] == [("phq9-item9", "emergency")]
    assert out.as_json()["flags"][0]["patientGuidance"]


def test_phq9_not_switched_on_is_not_scored():
    answers = phq9_for_total(10)
    answers.update(phq4(0, 0, 1, 1))  # depression subscale 2: PHQ-9 is not asked, its answers are dropped
    assert "phq9" not in scores(answers)  # not administered: no score row at all (not "incomplete")


# ------------------------------------------------------------------ GAD-7


def gad7_for_total(total: int) -> dict[str, list[dict[str, Any]]]:
    """GAD-7 answers worth `total`, items 1-2 given on PHQ-4 (its items 1 and 2, carried forward).

    GAD-7 is asked only when GAD-2 (those two items) is 3 or more, so a total below 3 cannot occur.
    """
    points = []
    left = total
    for _ in range(1, 8):
        points.append(min(3, left))
        left -= points[-1]
    assert left == 0 and points[0] + points[1] >= 3, "GAD-7 is switched on by GAD-2 >= 3"
    answers = phq4(points[0], points[1], 0, 0)
    for n in range(3, 8):
        answers[f"gad7-{n}"] = coded(PHQ[points[n - 1]])
    return answers


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (3, "minimal"),  # 0-2 cannot occur: GAD-7 needs GAD-2 >= 3
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "severe"),
        (21, "severe"),
    ],
)
def test_gad7_bands_at_boundaries(total, band):
    score = scores(gad7_for_total(total))["gad7"]
    assert (score.value, score.complete, score.band.code) == (total, True, band)


def test_gad7_missing_item_is_incomplete():
    answers = gad7_for_total(12)
    del answers["gad7-7"]
    score = scores(answers)["gad7"]
    assert (score.value, score.missing, score.band) == (None, ("gad7-7",), None)


def test_stress_totals_carry_their_verified_loinc_codes():
    by_link = {i.link_id: i.raw for i in stress().walk()}
    assert by_link["phq9-total"]["code"][1] == {"system": LOINC, "code": "44261-6"}
    assert by_link["gad7-total"]["code"][1] == {"system": LOINC, "code": "70274-6"}
    assert stress().version == "1.5.0"
