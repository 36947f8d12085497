"""The timeline view model: columns by completed intake, a line per score, charts; follow-up marks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from intake.core.score_scale import BandRange, Cutoff, ScoreScale
from intake.core.timeline import FollowUp, Visit, build_timeline, follow_up

T0 = datetime(2026, 9, 14, 9, 0, tzinfo=UTC)
MNSI = ScoreScale(id="mnsi", title="MNSI", minimum=0, maximum=13, direction="higher-is-worse",
                  cutoffs=(Cutoff("screen-positive", 4, "≥4 possible neuropathy"), Cutoff("traditional", 7, "≥7")))
MEDAS = ScoreScale(id="medas", title="MEDAS", minimum=0, maximum=14, direction="higher-is-better",
                   bands=(BandRange(0, 7, "low", "Low adherence (≤7)", False),
                          BandRange(8, 14, "high", "Higher adherence (≥8)", False)))
SCALES = {"mnsi": MNSI, "medas": MEDAS}


def visit(n: int, status: str = "completed", scored: bool = True) -> Visit:
    created = T0 + timedelta(weeks=4 * n)
    return Visit(intake_id=f"i{n}", status=status, created_at=created,
                 completed_at=created + timedelta(hours=1) if status == "completed" else None,
                 appointment_at=None, scored=scored)


def result(**totals: Any) -> dict[str, Any]:
    scores = []
    for score_id, total in totals.items():
        score: dict[str, Any] = {"id": score_id, "title": score_id.upper(), "total": total,
                                 "complete": total is not None}
        if score_id == "mnsi":
            score["thresholds"] = {"screen-positive": total is not None and total >= 4,
                                   "traditional": total is not None and total >= 7}
        if score_id == "medas" and total is not None:
            score["bandLabel"] = "Low adherence (≤7)" if total <= 7 else "Higher adherence (≥8)"
        scores.append(score)
    return {"scores": scores, "flags": [], "notes": []}


def test_columns_are_the_completed_intakes_and_each_score_has_a_line() -> None:
    timeline = build_timeline([
        (visit(0), result(mnsi=3, medas=6)),
        (visit(1), result(mnsi=5)),  # MEDAS not asked this time
        (visit(2, "in-progress", scored=False), None),
        (visit(3), result(mnsi=None, medas=9)),  # MNSI incomplete
    ], SCALES)
    assert [v.intake_id for v in timeline.columns] == ["i0", "i1", "i3"]
    assert [v.intake_id for v in timeline.others] == ["i2"]
    assert [v.intake_id for v in timeline.visits] == ["i0", "i1", "i2", "i3"]
    mnsi, medas = timeline.lines
    assert [(c.value_text, c.complete) if c else None for c in mnsi.cells] == [("3", True), ("5", True), ("", False)]
    assert [c.id for c in mnsi.cells[1].met] == ["screen-positive"]  # type: ignore[union-attr]
    assert [c.band if c else None for c in medas.cells] == ["Low adherence (≤7)", None, "Higher adherence (≥8)"]
    assert (mnsi.maximum_text, medas.maximum_text) == ("13", "14")
    # charts from the complete totals only, dated by completion
    assert [(p.when, p.value) for p in mnsi.points] == [(T0 + timedelta(hours=1), 3),
                                                        (T0 + timedelta(weeks=4, hours=1), 5)]
    assert "2026-09-14: 3; 2026-10-12: 5." in mnsi.chart and "Higher is better" in medas.chart


def test_a_score_without_a_scale_is_listed_without_a_chart_and_nothing_completed_is_empty() -> None:
    timeline = build_timeline([(visit(0), result(other=2))], SCALES)
    assert timeline.lines[0].cells[0].value == 2  # type: ignore[union-attr]
    assert timeline.lines[0].chart == "" and timeline.lines[0].maximum is None
    empty = build_timeline([(visit(0, "not-started", scored=False), None)], SCALES)
    assert (empty.columns, empty.lines, [v.intake_id for v in empty.others]) == ([], [], ["i0"])
    assert build_timeline([], SCALES).visits == []


def test_follow_up_counts_the_complete_intakes_before() -> None:
    done = [(T0, "a"), (T0 + timedelta(weeks=4), "b"), (T0 + timedelta(weeks=8), "c")]
    assert follow_up("a", T0, done) is None  # the first
    assert follow_up("b", done[1][0], done) == FollowUp(number=2, last=T0)
    assert follow_up("c", done[2][0], done) == FollowUp(number=3, last=done[1][0])
    # not completed yet: every complete intake of the patient is before it
    assert follow_up("d", None, done) == FollowUp(number=4, last=done[2][0])
    assert follow_up("d", None, []) is None
