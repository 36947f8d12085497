"""Score scales read from the Questionnaires: full range, cut-offs, bands, and the better direction."""

from __future__ import annotations

import json

import pytest

from intake.core.catalog import Catalog
from intake.core.lint import lint
from intake.core.score_scale import HIGHER_IS_BETTER, HIGHER_IS_WORSE, score_scales
from tests.core.factories import FORMS


def test_every_score_of_the_forms_has_its_full_range(catalog: Catalog) -> None:
    scales = score_scales(catalog)
    assert {s: (v.minimum, v.maximum) for s, v in scales.items()} == {
        "pss10": (0, 40), "phq4": (0, 12), "phq4-anxiety": (0, 6), "phq4-depression": (0, 6), "phq9": (0, 27),
        "gad7": (0, 21), "mnsi": (0, 13), "medas": (0, 14), "ai-personal": (0, 10),
        "ai-family-first-degree": (0, 10), "ai-family-any": (0, 10)}


def test_the_better_direction_is_data(catalog: Catalog) -> None:
    scales = score_scales(catalog)
    assert scales["medas"].direction == HIGHER_IS_BETTER  # criteria of the Mediterranean diet met
    for worse in ("pss10", "phq4", "phq4-anxiety", "phq4-depression", "phq9", "gad7", "mnsi"):
        assert scales[worse].direction == HIGHER_IS_WORSE, worse
    for count in ("ai-personal", "ai-family-first-degree", "ai-family-any"):
        assert scales[count].direction is None, count  # a history count has no "better"


def test_cut_offs_are_the_questionnaires_own_and_no_others(catalog: Catalog) -> None:
    scales = score_scales(catalog)
    assert [(c.minimum, c.label) for c in scales["mnsi"].cutoffs] == [
        (4, "≥4 possible neuropathy (Herman 2012, sensitive)"), (7, "≥7 traditional threshold")]
    assert [c.minimum for c in scales["phq4-depression"].cutoffs] == [3]
    # PHQ-9 and GAD-7 declare bands, no threshold: the chart draws none
    assert scales["phq9"].cutoffs == () and scales["gad7"].cutoffs == ()
    assert [b.code for b in scales["phq9"].bands] == ["minimal", "mild", "moderate", "moderately severe", "severe"]
    assert scales["phq9"].band_of(15).label == "Moderately severe (15-19)"  # type: ignore[union-attr]
    assert not scales["medas"].bands[0].validated


def test_the_current_version_wins_over_an_archived_one(catalog: Catalog) -> None:
    archived_first = score_scales([*catalog.archived, *catalog.forms])
    assert archived_first["medas"].direction is None  # 1.2.0 declared none
    assert score_scales(catalog.versions)["medas"].direction == HIGHER_IS_BETTER


@pytest.mark.parametrize("value", ["up", "higher-is-good", "Higher-is-better"])
def test_the_lint_refuses_an_unknown_direction(value: str) -> None:
    resource = json.loads((FORMS / "diet.json").read_text(encoding="utf-8"))
    text = json.dumps(resource).replace('"valueCode": "higher-is-better"', json.dumps({"valueCode": value})[1:-1])
    issues = [(i.severity, i.message) for i in lint(json.loads(text))]
    assert ("error", "score 'medas': direction must be one of ['higher-is-better', 'higher-is-worse']") in issues
