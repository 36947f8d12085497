"""The reminder schedule: hours before the appointment, quiet hours, at most N."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from intake.core.reminders import QuietHours, out_of_quiet, reminder_times

QUIET = QuietHours.parse("21:00-08:00", "America/New_York")  # UTC-5 in December
SENT = datetime(2026, 12, 1, 15, tzinfo=UTC)  # 10:00 in New York


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """New York wall-clock time in December 2026, as UTC."""
    return datetime(2026, 12, day, hour, minute, tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)


def test_48_and_4_hours_before_by_default() -> None:
    appointment = at(5, 15)
    assert reminder_times(appointment=appointment, hours_before=[48, 4], limit=2, sent_at=SENT, quiet=QUIET) == [
        at(3, 15), at(5, 11)]


def test_at_most_n_and_none_without_an_appointment() -> None:
    assert reminder_times(appointment=at(5, 15), hours_before=[4, 48], limit=1, sent_at=SENT, quiet=QUIET) == [
        at(3, 15)]
    assert reminder_times(appointment=None, hours_before=[48, 4], limit=2, sent_at=SENT, quiet=QUIET) == []
    assert reminder_times(appointment=at(5, 15), hours_before=[48, 4], limit=0, sent_at=SENT, quiet=QUIET) == []


def test_quiet_hours_move_a_reminder_to_the_morning_or_back_to_the_evening() -> None:
    # 4 h before 11:00 is 07:00 (quiet): 08:00 is still 3 h before.
    assert reminder_times(appointment=at(5, 11), hours_before=[4], limit=2, sent_at=SENT, quiet=QUIET) == [at(5, 8)]
    # 4 h before 08:30 is 04:30: 08:00 is too close, so the evening before, an hour before quiet hours.
    assert reminder_times(appointment=at(5, 8, 30), hours_before=[4], limit=2, sent_at=SENT, quiet=QUIET) == [
        at(4, 20)]
    for moment in reminder_times(appointment=at(9, 7), hours_before=[72, 48, 24, 4, 2], limit=9, sent_at=SENT,
                                 quiet=QUIET):
        assert not QUIET.contains(moment)


def test_past_late_and_crowded_reminders_are_dropped() -> None:
    appointment = SENT + timedelta(hours=5)  # 15:00 New York the same day
    assert reminder_times(appointment=appointment, hours_before=[48, 4], limit=2, sent_at=SENT, quiet=QUIET) == []
    assert reminder_times(appointment=at(5, 15), hours_before=[5, 4], limit=2, sent_at=SENT, quiet=QUIET) == [
        at(5, 10)]


def test_quiet_hours_across_midnight_within_a_day_and_none() -> None:
    assert QUIET.contains(at(1, 21)) and QUIET.contains(at(2, 7, 59)) and not QUIET.contains(at(2, 8))
    lunch = QuietHours.parse("12:00-13:00", "UTC")
    assert lunch.contains(datetime(2026, 1, 1, 12, 30, tzinfo=UTC))
    assert not QuietHours.parse("", "UTC").contains(datetime(2026, 1, 1, 3, tzinfo=UTC))
    assert out_of_quiet(at(1, 23), QUIET, None) == at(2, 8)


@pytest.mark.parametrize("text", ["21-08", "25:00-08:00", "21:00", "nine to five"])
def test_a_wrong_window_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="INTAKE_QUIET_HOURS"):
        QuietHours.parse(text, "UTC")
