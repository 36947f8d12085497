"""Time as the service stores and writes it: tz-aware UTC, and FHIR instants and dateTimes.

Pure (standard library only), so the core, storage, jobs and web share one copy: every "now"
comes from `utcnow`, and a naive datetime is refused (`require_aware`) before it can be taken
for local time.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def utcnow() -> datetime:
    """The current time as a tz-aware UTC datetime."""
    return datetime.now(timezone.utc)


def require_aware(moment: datetime, name: str) -> None:
    """Refuse naive datetimes early, with the argument's name in the message."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a tz-aware datetime")


def fhir_instant(moment: datetime) -> str:
    """A FHIR instant in UTC with microseconds, e.g. ``2024-05-01T09:30:00.000000Z``."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def fhir_instant_seconds(moment: datetime) -> str:
    """A FHIR instant in UTC, seconds precision (stable, and what EHRs display)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass a tz-aware UTC datetime")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_fhir_datetime(value: Any) -> datetime:
    """A FHIR dateTime (full date at least) as UTC; values without a zone are taken as UTC."""
    if not isinstance(value, str):
        raise ValueError(f"authored must be a FHIR dateTime string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"authored is not a full FHIR dateTime: {value!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)
