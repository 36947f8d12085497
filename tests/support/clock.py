"""A clock that moves only when the test moves it, for `create_app(clock=...)`.

The outbox's due times and retry backoff (intake/jobs/outbox.py) and the use cases' timestamps
(intake/workflow.py) read the app's clock; with this one a test runs a minute-long EHR outage in
a second, and the gaps between attempts are exact instead of the loaded machine's.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class ManualClock:
    """Tz-aware UTC "now" that stands still until `advance`; callable like `utcnow`."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or datetime.now(UTC)
        self._now = self.start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        """Move on by `seconds` (not backwards); the new now."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    @property
    def elapsed(self) -> float:
        """Seconds advanced since the start."""
        return (self() - self.start).total_seconds()
