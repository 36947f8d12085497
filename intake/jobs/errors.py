"""How an outbox handler says a delivery failed: `Retry` (try again later) or `Permanent` (a
dead letter). Their own module, importing nothing of the project, so a handler (notify, EHR push)
can raise them without importing the outbox that runs it."""

from __future__ import annotations


class Retry(Exception):
    """A transient failure: try again later (after `after` seconds when the other side said so)."""

    def __init__(self, reason: str, *, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class Permanent(Exception):
    """A failure that repeating cannot fix (the receiver refused the content): a dead letter."""


class Held(Exception):
    """Waiting for a person, not a failure: the row is kept "held" (not retried, not dead) until
    staff act on it (an EHR push whose patient must first be linked to the EHR's record)."""
