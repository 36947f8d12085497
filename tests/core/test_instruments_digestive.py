"""Digestive Questionnaire rules (forms/digestive.json 1.2.0): GI alarm flags and the IBS pattern.

Reference: ../shared/instruments.md 2.2 (GI-AF1..10, tiers, age at onset) and 2.3 (BSFS, Rome IV-style
IBS pattern and subtype). Responses are built with the real form, scored with the real engine.
"""

from __future__ import annotations

from typing import Any

import pytest

from intake.core.answers import build_response
from intake.core.catalog import load_catalog
from intake.core.items import Form
from intake.core.scoring import Context, Result, score_intake, score_response
from tests.core.factories import FORMS

CANONICAL = "https://intake.example.org/fhir/Questionnaire/digestive|1.2.0"
AUTHORED = "2024-05-01T10:00:00Z"
BOOLEAN_ALARMS = ["gi-af1", "gi-af2", "gi-af3", "gi-af4", "gi-af6", "gi-af7", "gi-af8", "gi-af9", "gi-af10"]
TIERS = {
    "gi-af1": "urgent", "gi-af2": "urgent", "gi-af3": "urgent", "gi-af4": "review", "gi-af6": "urgent",
    "gi-af7": "review", "gi-af8": "urgent", "gi-af9": "review", "gi-af10": "urgent",
}
TEXT = "Symptom pattern consistent with {} (Rome IV-style criteria, paraphrased; not a diagnosis)"


@pytest.fixture(scope="module")
def digestive() -> Form:
    return load_catalog(FORMS).by_key["digestive"]


def yes(value: bool = True) -> list[dict[str, Any]]:
    return [{"valueBoolean": value}]


def number(value: int) -> list[dict[str, Any]]:
    return [{"valueInteger": value}]


def onset(value: str) -> list[dict[str, Any]]:
    return [{"valueDate": value}]


def no_alarms(**more: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    answers = {link: yes(False) for link in BOOLEAN_ALARMS}
    answers.update({k.replace("_", "-"): v for k, v in more.items()})
    return answers


def ibs(hard: int | None = None, loose: int | None = None, **more: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rome IV-style criteria met: weekly pain, 2 of 3 associated features, onset > 6 months."""
    answers = no_alarms(**more)
    answers.update({
        "ibs-pain-weekly": yes(), "ibs-pain-defecation": yes(), "ibs-pain-frequency": yes(False),
        "ibs-pain-form": yes(), "ibs-onset-6m": yes(),
    })
    if hard is not None:
        answers["bsfs-hard-pct"] = number(hard)
    if loose is not None:
        answers["bsfs-loose-pct"] = number(loose)
    return answers


def score(form: Form, answers: dict[str, list[dict[str, Any]]], context: Context | None = None,
          status: str = "completed") -> Result:
    response = build_response(form, answers, status=status, subject="Patient/p1", authored=AUTHORED)
    return score_response(form, response, context or Context(birth_date="1990-03-15"))


def flags(result: Result) -> list[tuple[str, str]]:
    return [(f.id, f.tier) for f in result.flags]


def test_version_is_bumped(digestive: Form) -> None:
    assert digestive.version == "1.2.0"
    assert score(digestive, no_alarms()).versions == {CANONICAL: f"engine-1;{CANONICAL}"}


def test_no_alarm_no_flag_and_no_numeric_score(digestive: Form) -> None:
    everything = no_alarms(**{"gi-af5": onset("2020-01")})
    everything.update({link: [{"valueCoding": {"system": "https://intake.example.org/fhir/CodeSystem/intake-answers",
                                               "code": "every-day", "display": "Every day"}}]
                       for link in ("sym-pain", "sym-bloating", "sym-reflux", "sym-diarrhoea", "sym-constipation")})
    result = score(digestive, everything)
    assert result.flags == []
    assert result.notes == []
    assert result.scores == []  # symptom frequencies are not a validated score


@pytest.mark.parametrize("link", BOOLEAN_ALARMS)
def test_each_alarm_item_raises_its_flag_and_tier(digestive: Form, link: str) -> None:
    answers = no_alarms()
    answers[link] = yes()
    result = score(digestive, answers)
    assert flags(result) == [(link, TIERS[link])]
    flag = result.flags[0]
    assert flag.because == (link,)
    assert flag.verification == "partly-verified"
    assert flag.questionnaire == CANONICAL
    assert flag.patient_guidance is None
    assert "instruments.md 2.2" in (flag.citation or "")
    assert link.upper() in flag.message


def test_tier_mapping_red_urgent_amber_review(digestive: Form) -> None:
    result = score(digestive, {link: yes() for link in BOOLEAN_ALARMS})
    assert sorted(flags(result)) == sorted(TIERS.items())
    for flag in result.flags:
        expected = "RED, expedited review" if flag.tier == "urgent" else "AMBER, clinician review"
        assert expected in flag.message


def test_flags_are_evaluated_on_an_incomplete_response(digestive: Form) -> None:
    assert flags(score(digestive, {"gi-af1": yes()}, status="in-progress")) == [("gi-af1", "urgent")]


def test_gi_af1_message_asks_about_emergency_features_the_form_does_not_ask(digestive: Form) -> None:
    message = score(digestive, no_alarms(**{"gi-af1": yes()})).flags[0].message
    assert "fainting/dizziness or vomiting blood" in message


# --- GI-AF5: age at onset ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "start", "raised"),
    [
        ("1974-06-15", "2024-05", False),  # 49 years 11 months
        ("1974-06-15", "2024-06", True),   # exactly 50 years (600 months)
        ("1974-06-30", "2024-06", True),   # whole months: the day of birth is ignored
        ("1974-06-01", "2024-05", False),
        ("1960-01-01", "2024-05", True),
        ("1974-06-15", "2024-06-03", True),  # a full date uses its month
        ("1974-06-15", "2024-05-31", False),
        ("1974-01-15", "2024", True),      # year only: January assumed -> 600 months
        ("1974-02-15", "2024", False),     # year only: January assumed -> 599 months
    ],
)
def test_gi_af5_age_boundary_at_default_threshold(digestive: Form, birth: str, start: str, raised: bool) -> None:
    result = score(digestive, no_alarms(**{"gi-af5": onset(start)}), Context(birth_date=birth))
    assert flags(result) == ([("gi-af5", "review")] if raised else [])


@pytest.mark.parametrize(("start", "threshold", "raised"), [
    ("2024-05", 45, False),  # 44 years 11 months
    ("2024-06", 45, True),   # 45 years
    ("2024-06", 50, False),
    ("2029-06", 50, True),
])
def test_gi_af5_threshold_is_configurable(digestive: Form, start: str, threshold: int, raised: bool) -> None:
    context = Context(birth_date="1979-06-20", gi_onset_age_threshold=threshold)
    result = score(digestive, no_alarms(**{"gi-af5": onset(start)}), context)
    assert flags(result) == ([("gi-af5", "review")] if raised else [])


def test_gi_af5_unanswered_raises_nothing(digestive: Form) -> None:
    assert score(digestive, no_alarms(), Context(birth_date="1930-01-01")).flags == []


def test_gi_af5_without_a_birth_date_is_raised_for_a_clinician_to_check(digestive: Form) -> None:
    result = score(digestive, no_alarms(**{"gi-af5": onset("2024-05")}), Context())
    assert flags(result) == [("gi-af5", "review")]
    assert "date of birth is unknown" in result.flags[0].message


def test_gi_af5_documents_the_boundary_and_the_missing_month(digestive: Form) -> None:
    flag = score(digestive, no_alarms(**{"gi-af5": onset("1990-01")}), Context(birth_date="1930-01-01")).flags[0]
    assert flag.because == ("gi-af5",)
    assert flag.verification == "partly-verified"
    assert "(>= 50 vs > 50) is not consistent across sources" in (flag.citation or "")
    assert "January of that year is assumed" in flag.message


# --- IBS pattern ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hard", "loose", "subtype"),
    [
        (26, 24, "IBS-C"),
        (26, 0, "IBS-C"),
        (25, 0, "IBS-U"),   # exactly 25 is not > 25
        (26, 25, "IBS-U"),  # loose must be < 25 for IBS-C
        (24, 26, "IBS-D"),
        (0, 26, "IBS-D"),
        (0, 25, "IBS-U"),
        (25, 26, "IBS-U"),  # hard must be < 25 for IBS-D
        (26, 26, "IBS-M"),
        (25, 25, "IBS-U"),
        (26, 100, "IBS-M"),
        (0, 0, "IBS-U"),
    ],
)
def test_ibs_pattern_subtypes_at_the_25_percent_boundaries(digestive: Form, hard: int, loose: int, subtype: str) -> None:
    result = score(digestive, ibs(hard, loose))
    assert result.flags == []
    assert [(n.id, n.kind, n.text) for n in result.notes] == [("ibs-pattern", "finding", TEXT.format(subtype))]


@pytest.mark.parametrize(("hard", "loose"), [(None, None), (80, None), (None, 80), (None, 0)])
def test_ibs_subtype_is_u_when_a_percentage_is_unanswered(digestive: Form, hard: int | None, loose: int | None) -> None:
    assert [n.text for n in score(digestive, ibs(hard, loose)).notes] == [TEXT.format("IBS-U")]


def test_ibs_finding_carries_its_source(digestive: Form) -> None:
    note = score(digestive, ibs(30, 0)).notes[0]
    assert note.because == ("ibs-pain-weekly", "ibs-pain-defecation", "ibs-pain-frequency", "ibs-pain-form",
                            "ibs-onset-6m", "bsfs-hard-pct", "bsfs-loose-pct")
    assert note.verification == "partly-verified"
    assert "instruments.md 2.3" in (note.citation or "")
    assert "Lacy BE et al., Gastroenterology 2016" in (note.citation or "")
    assert note.questionnaire == CANONICAL


@pytest.mark.parametrize(("defecation", "frequency", "form"), [
    (True, True, False), (True, False, True), (False, True, True), (True, True, True),
])
def test_ibs_two_of_three_features_meet_the_pattern(digestive: Form, defecation: bool, frequency: bool, form: bool) -> None:
    answers = ibs(0, 30)
    answers.update({"ibs-pain-defecation": yes(defecation), "ibs-pain-frequency": yes(frequency),
                    "ibs-pain-form": yes(form)})
    assert [n.text for n in score(digestive, answers).notes] == [TEXT.format("IBS-D")]


@pytest.mark.parametrize("change", [
    {"ibs-pain-defecation": False, "ibs-pain-frequency": False, "ibs-pain-form": True},  # only 1 of 3
    {"ibs-pain-defecation": True, "ibs-pain-frequency": False, "ibs-pain-form": False},
    {"ibs-pain-defecation": False, "ibs-pain-frequency": False, "ibs-pain-form": False},
    {"ibs-onset-6m": False},
])
def test_ibs_pattern_not_met_gives_no_finding(digestive: Form, change: dict[str, bool]) -> None:
    answers = ibs(30, 0)
    answers.update({link: yes(value) for link, value in change.items()})
    assert score(digestive, answers).notes == []


def test_ibs_pattern_needs_weekly_pain(digestive: Form) -> None:
    answers = ibs(30, 0)
    answers["ibs-pain-weekly"] = yes(False)  # the follow-ups are disabled and dropped
    assert score(digestive, answers).notes == []


def test_ibs_one_of_three_with_the_others_unanswered_is_not_met(digestive: Form) -> None:
    answers = ibs(30, 0)
    del answers["ibs-pain-defecation"], answers["ibs-pain-frequency"]
    answers["ibs-pain-form"] = yes()
    assert score(digestive, answers).notes == []


@pytest.mark.parametrize("link", BOOLEAN_ALARMS)
def test_any_alarm_flag_suppresses_the_ibs_pattern(digestive: Form, link: str) -> None:
    answers = ibs(30, 0)
    answers[link] = yes()
    result = score(digestive, answers)
    assert flags(result) == [(link, TIERS[link])]
    assert result.notes == []
    response = build_response(digestive, answers, status="completed", subject="Patient/p1", authored=AUTHORED)
    assert score_intake([(digestive, response)], Context(birth_date="1990-03-15")).notes == []


def test_age_at_onset_flag_suppresses_the_ibs_pattern(digestive: Form) -> None:
    answers = ibs(30, 0, **{"gi-af5": onset("2024-05")})
    assert [n.id for n in score(digestive, answers, Context(birth_date="1990-03-15")).notes] == ["ibs-pattern"]
    result = score(digestive, answers, Context(birth_date="1974-05-15"))
    assert flags(result) == [("gi-af5", "review")]
    assert result.notes == []
