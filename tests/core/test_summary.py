"""The summary view model: flags first, score rows with last time and trend, answers by domain."""

from __future__ import annotations

from datetime import UTC, date, datetime

from intake.core.score_scale import ScoreScale
from intake.core.summary import References, build_summary, clinician_flag, score_rows

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


def test_a_flag_headline_leaves_how_soon_to_the_action_line() -> None:
    """"(expedited review)" closes the message; "What to do: Expedited review: ..." follows it."""
    refs = References()
    flag = clinician_flag({"id": "gi-af6", "tier": "urgent", "citation": "old notes",
                           "clinicianCitation": "Lacy BE, Patel NK. J Clin Med 2017;6:99.",
                           "message": "GI alarm feature GI-AF6: told of anaemia or low iron (expedited review)."}, refs)
    assert flag["headline"] == "GI alarm feature: told of anaemia or low iron."
    assert flag["action"].startswith("Expedited review")
    assert refs.texts == ["Lacy BE, Patel NK. J Clin Med 2017;6:99."] and flag["ref"] == 1
    kept = clinician_flag({"id": "ai-rf4", "tier": "urgent", "message": "Headache (possible giant-cell arteritis; "
                           "same-day review)."}, refs)
    assert kept["headline"] == "Headache (possible giant-cell arteritis; same-day review)." and kept["ref"] is None


def test_a_first_result_is_news_only_on_a_follow_up() -> None:
    """On a first intake every score is first: saying so on each line is noise."""
    assert score_rows(result(4), [], T3)[0].since_text == ""
    assert score_rows(result(4), [(T1, result(None))], T3)[0].since_text == "first result"
    assert score_rows(result(6), [(T1, result(4))], T3)[0].since_text == "+2 since 2026-09-01"
