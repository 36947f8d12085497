"""The one copy of the service's time helpers: UTC now, naive datetimes refused, FHIR instants."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from intake.core.fhir_time import fhir_instant, fhir_instant_seconds, parse_fhir_datetime, require_aware, utcnow

PARIS = timezone(timedelta(hours=2))


def test_utcnow_is_aware_and_in_utc() -> None:
    before = datetime.now(timezone.utc)
    now = utcnow()
    assert now.tzinfo == timezone.utc
    assert before <= now <= datetime.now(timezone.utc)


def test_naive_datetimes_are_refused_by_name() -> None:
    require_aware(datetime(2025, 1, 1, tzinfo=timezone.utc), "now")
    with pytest.raises(ValueError, match="expires_at must be a tz-aware datetime"):
        require_aware(datetime(2025, 1, 1), "expires_at")
    with pytest.raises(ValueError, match="naive"):
        fhir_instant_seconds(datetime(2025, 1, 1))


def test_instants_are_written_in_utc_at_their_precision() -> None:
    moment = datetime(2025, 3, 14, 11, 30, 5, 123456, tzinfo=PARIS)
    assert fhir_instant(moment) == "2025-03-14T09:30:05.123456Z"
    assert fhir_instant_seconds(moment) == "2025-03-14T09:30:05Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-14T11:30:00+02:00", datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)),
        ("2025-03-14T09:30:00Z", datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)),
        ("2025-03-14T09:30:00", datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)),  # no zone: taken as UTC
        ("2025-03-14", datetime(2025, 3, 14, tzinfo=timezone.utc)),
    ],
)
def test_fhir_datetimes_are_read_as_utc(text: str, expected: datetime) -> None:
    parsed = parse_fhir_datetime(text)
    assert parsed == expected and parsed.tzinfo == timezone.utc


@pytest.mark.parametrize("value", ["2025-03", "2025", "not a date", 20250314, None])
def test_partial_or_non_text_datetimes_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_fhir_datetime(value)
