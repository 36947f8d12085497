"""How an outbox handler says a delivery failed: `Retry` (try again later) or `Permanent` (a
dead letter). Their own module, importing nothing of the project, so a handler (notify, EHR push)
can raise them without importing the outbox that runs it.

`reason` is short and free of anything the receiver said (it may be logged); `detail` is the
receiver's own explanation (an OperationOutcome's text), kept on the outbox row for an admin but
never logged: a receiver may quote the patient data back.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """A failed delivery: `str()` is what the row keeps, `reason` what a log may say."""

    def __init__(self, reason: str, *, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Retry(DeliveryError):
    """A transient failure: try again later (after `after` seconds when the other side said so)."""

    def __init__(self, reason: str, *, after: float | None = None, detail: str = "") -> None:
        super().__init__(reason, detail=detail)
        self.after = after


class Permanent(DeliveryError):
    """A failure that repeating cannot fix (the receiver refused the content): a dead letter."""


class Held(Exception):
    """Waiting for a person, not a failure: the row is kept "held" (not retried, not dead) until
    staff act on it (an EHR push whose patient must first be linked to the EHR's record)."""
