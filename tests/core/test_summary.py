"""The summary view model: flags first, score rows with last time and trend, answers by domain."""

from __future__ import annotations

from datetime import UTC, date, datetime

from intake.core.score_scale import ScoreScale
from intake.core.summary import build_summary, score_rows

T1 = datetime(2026, 9, 1, tzinfo=UTC)
T2 = datetime(2026, 10, 1, tzinfo=UTC)
T3 = datetime(2026, 11, 1, tzinfo=UTC)


def result(total: float | None, *flags: dict) -> dict:
    return {"scores": [{"id": "mnsi", "title": "MNSI", "total": total, "complete": total is not None}],
            "flags": list(flags), "notes": [], "scoringVersions": {"q": "engine-1;q"}}


def test_rows_carry_previous_value_change_and_trend() -> None:
    mnsi = ScoreScale(id="mnsi", title="MNSI", minimum=0, maximum=13)
    rows = score_rows(result(7), [(T1, result(3)), (T2, result(5))], T3, {"mnsi": mnsi})
    row = rows[0]
    assert (row.previous, row.previous_when, row.change, row.change_text) == (5.0, T2, 2.0, "+2")
    assert [p.value for p in row.trend] == [3.0, 5.0, 7.0]
    # the trend chart (tests/core/test_trend_chart.py): three dated points on 0-13
    assert row.sparkline.startswith("<svg") and row.sparkline.count("<circle") == 3
    assert "2026-09-01: 3; 2026-10-01: 5; 2026-11-01: 7" in row.sparkline
    # no scale for the score (its Questionnaire declares no range): no chart rather than a guessed one
    assert score_rows(result(7), [(T1, result(3))], T3)[0].sparkline == ""


def test_incomplete_scores_are_skipped_in_history_and_get_no_change() -> None:
    rows = score_rows(result(None), [(T1, result(4)), (T2, result(None))], T3)
    assert (rows[0].previous, rows[0].change, rows[0].value_text) == (4.0, None, "incomplete")
    assert score_rows(result(4), [(T1, result(4))], T3)[0].change_text == "no change"
    assert score_rows(result(4), [], T3)[0].previous is None


def test_flags_come_first_by_tier() -> None:
    flags = [{"id": "r", "tier": "review"}, {"id": "e", "tier": "emergency"}, {"id": "u", "tier": "urgent"}]
    summary = build_summary(intake_id="i", patient_name="P", birth_date=date(1960, 5, 2), completed_at=T3,
                            appointment_at=None, result=result(1, *flags), history=[], pairs=[])
    assert [f["id"] for f in summary.flags] == ["e", "u", "r"]
    assert summary.age == 66
    assert "not a diagnosis" in summary.disclaimer
