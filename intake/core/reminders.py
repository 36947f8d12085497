"""When invitations and reminders go out: hours before the appointment, never in quiet hours.

Pure time arithmetic (no clock, no database), so the schedule is tested on its own. A moment in
quiet hours moves to the end of them when that is still `MIN_AHEAD` before the appointment, else
back to `MIN_AHEAD` before they began; reminders already past, after the appointment, or too
close to the message before them are dropped; at most `limit` remain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

MIN_AHEAD = timedelta(hours=1)  # a reminder later than this before the appointment is of no use
MIN_GAP = timedelta(hours=2)  # two messages closer than this: the later one is dropped
_WINDOW = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])\s*[-\u2013]\s*([01][0-9]|2[0-3]):([0-5][0-9])")


@dataclass(frozen=True)
class QuietHours:
    """Local wall-clock hours with no messages, e.g. 21:00–08:00 (may run past midnight)."""

    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, zone: str) -> QuietHours:
        """`HH:MM-HH:MM` in time zone `zone`; an empty text means none (start == end)."""
        if not text.strip():
            return cls(time(0), time(0), ZoneInfo(zone))
        found = _WINDOW.fullmatch(text.strip())
        if found is None:
            raise ValueError(f"INTAKE_QUIET_HOURS must be like 21:00-08:00, not {text!r}")
        h1, m1, h2, m2 = (int(part) for part in found.groups())
        return cls(time(h1, m1), time(h2, m2), ZoneInfo(zone))

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone).time()
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def end_after(self, moment: datetime) -> datetime:
        """The first moment at or after `moment` that is not quiet (UTC)."""
        if not self.contains(moment):
            return moment
        local = moment.astimezone(self.zone)
        day = local.date() if local.time() < self.end else local.date() + timedelta(days=1)
        return datetime.combine(day, self.end, self.zone).astimezone(UTC)

    def start_before(self, moment: datetime) -> datetime:
        """When the quiet period holding `moment` began (UTC); `moment` itself when it is not quiet."""
        if not self.contains(moment):
            return moment
        local = moment.astimezone(self.zone)
        day = local.date() if local.time() >= self.start else local.date() - timedelta(days=1)
        return datetime.combine(day, self.start, self.zone).astimezone(UTC)


def out_of_quiet(moment: datetime, quiet: QuietHours, appointment: datetime | None) -> datetime:
    """`moment`, or the nearest time outside quiet hours that is still useful before `appointment`."""
    if not quiet.contains(moment):
        return moment
    later = quiet.end_after(moment)
    if appointment is None or later <= appointment - MIN_AHEAD:
        return later
    return quiet.start_before(moment) - MIN_AHEAD


def reminder_times(*, appointment: datetime | None, hours_before: list[float], limit: int, sent_at: datetime,
                   quiet: QuietHours) -> list[datetime]:
    """The reminders of an invitation sent at `sent_at`, earliest first (none without an appointment)."""
    if appointment is None or limit <= 0:
        return []
    chosen: list[datetime] = []
    for hours in sorted(hours_before, reverse=True):
        moment = out_of_quiet(appointment - timedelta(hours=hours), quiet, appointment)
        if moment <= sent_at + MIN_GAP or moment > appointment - MIN_AHEAD or quiet.contains(moment):
            continue
        if chosen and moment - chosen[-1] < MIN_GAP:
            continue
        chosen.append(moment)
    return chosen[:limit]
