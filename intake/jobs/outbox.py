"""Background work that must not be lost: PDF rendering, EHR push, staff notifications, patient
invitations and reminders (rows due later than now: a reminder's row waits for its time).

The rows are written by `enqueue` in the caller's transaction, next to the data that caused
them (the use cases in intake/workflow.py: a submit, a re-score, a saved page's flags).
`dispatch` claims due rows and hands each to the job runner (`intake.jobs`: in-process, or
Celery workers in production); `run` is what the runner calls: it counts the attempt, runs the
handler for the row's kind and settles the row:

- done when the handler returns;
- due again after an exponential backoff with jitter when it raises `Retry` (or anything
  unexpected), or at the time a `Retry-After` asked for;
- dead (a dead letter for an admin: `flask intake outbox retry`, /admin/outbox) when it raises
  `Permanent`, or after INTAKE_OUTBOX_MAX_ATTEMPTS;
- held when it raises `Held` (waiting for staff, e.g. to link a patient to the EHR's record:
  /admin/outbox, `flask intake outbox link`), and pending again when they release it.
(`Retry`, `Permanent` and `Held` live in intake/jobs/errors.py, so handlers need not import this module.)

A handed-over row that is not settled within INTAKE_OUTBOX_LEASE_SECONDS (its worker was killed,
the broker lost the message) is handed over again by the next dispatch, so Redis losing its data
loses no work. Handlers must therefore be safe to run twice (renders replace, pushes are
conditional creates, a notification is at least once).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import Flask

from intake.jobs import jobs_of
from intake.jobs.errors import Held, Permanent, Retry
from intake.services import services
from intake.storage import outbox_store
from intake.storage.db import session_scope

log = logging.getLogger(__name__)

Handler = Callable[[Flask, str], None]
RENDER_PDF, EHR_PUSH, NOTIFY = "render_pdf", "ehr_push", "notify"
PATIENT_MESSAGE = "patient_message"  # an invitation or reminder (intake/invitations.py)
DISPATCH_BATCH = 100


def _seconds(app: Flask, name: str) -> timedelta:
    return timedelta(seconds=float(app.config[f"INTAKE_OUTBOX_{name}_SECONDS"]))


def handlers(app: Flask) -> dict[str, Handler]:
    registry: dict[str, Handler] = services(app).outbox_handlers
    return registry


# --- writing rows (in the caller's transaction) -------------------------------------------------


def enqueue(session: Any, kind: str, subject: str, *, now: datetime, after: int | None = None,
            due: datetime | None = None) -> int:
    return outbox_store.enqueue(session, kind, subject, now=now, after=after, due=due)


# --- handing rows over ----------------------------------------------------------------------------


def dispatch(app: Flask, *, now: datetime | None = None) -> int:
    """Hand every due row to the job runner; how many were handed over.

    With Celery each row becomes a task. With an in-process runner (thread, eager) the rows run
    here, one claimed at a time, so a process that is shutting down (a gunicorn worker being
    recycled) finishes the row in hand and leaves the rest to the other processes instead of
    rendering the whole backlog before it may exit.
    """
    jobs = jobs_of(app)
    celery = jobs.mode == "celery"
    lease = _seconds(app, "LEASE")
    total = 0
    while not poller_of(app).stopping:
        with session_scope(services(app).sessions) as session:
            claimed = outbox_store.claim_due(session, now=now or services(app).clock(), lease=lease,
                                             limit=DISPATCH_BATCH if celery else 1)
        for work in claimed:
            if celery:
                jobs.submit("outbox", row_id=work.id)
            else:
                jobs.run("outbox", run, {"row_id": work.id, "now": now})
        total += len(claimed)
        if not claimed or celery:
            break
    return total


def run(app: Flask, row_id: int, *, now: datetime | None = None) -> str | None:
    """Run one handed-over row and settle it; its new state (None: nothing to do, a duplicate)."""
    sessions = services(app).sessions
    with session_scope(sessions) as session:
        work = outbox_store.start(session, row_id, now=now or services(app).clock(), lease=_seconds(app, "LEASE"))
    if work is None:
        return None
    state, error, delay = "done", "", timedelta(0)
    logged = ""  # what the log may say: never a receiver's text (it may quote patient data)
    try:
        handlers(app)[work.kind](app, work.subject)
    except Permanent as exc:
        state, error, logged = "dead", str(exc), exc.reason
    except Held as exc:
        state, error, logged = "held", str(exc), str(exc)
    except Retry as exc:
        state, error, logged = "pending", str(exc), exc.reason
        delay = timedelta(seconds=exc.after) if exc.after is not None else backoff(app, work.attempts)
    except Exception as exc:  # a bug or an outage of something we use: retried, and logged without PHI
        log.error("outbox %s %s failed: %s", work.kind, work.id, type(exc).__name__)
        state, error, delay = "pending", type(exc).__name__, backoff(app, work.attempts)
        logged = error
    if state == "pending" and work.attempts >= int(app.config["INTAKE_OUTBOX_MAX_ATTEMPTS"]):
        state, error = "dead", f"gave up after {work.attempts} attempts: {error}"
        logged = f"gave up after {work.attempts} attempts: {logged}"
    settled_at = now or services(app).clock()
    with session_scope(sessions) as session:
        if state == "done":
            outbox_store.mark_done(session, work.id, now=settled_at)
        elif state == "dead":
            outbox_store.mark_dead(session, work.id, now=settled_at, error=error)
        elif state == "held":
            outbox_store.mark_held(session, work.id, now=settled_at, error=error)
        else:
            outbox_store.mark_retry(session, work.id, now=settled_at, delay=delay, error=error)
    if state == "dead":
        log.warning("outbox %s %s is a dead letter: %s", work.kind, work.id, logged)
    return state


def backoff(app: Flask, attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with "equal jitter": half the step fixed, half random, so retries of
    many rows spread out yet each row's waits still grow (base * 2^(n-1), capped)."""
    base = float(app.config["INTAKE_OUTBOX_BACKOFF_SECONDS"])
    cap = float(app.config["INTAKE_OUTBOX_BACKOFF_MAX_SECONDS"])
    step = min(cap, base * 2 ** max(0, attempts - 1))
    return timedelta(seconds=step / 2 + (rng or random).uniform(0, step / 2))


def redrive(app: Flask, row_ids: list[int] | None) -> int:
    """Dead letters back to pending (all, or those of `row_ids`) and dispatched; how many."""
    with session_scope(services(app).sessions) as session:
        count = outbox_store.redrive(session, row_ids, now=services(app).clock())
    if count:
        kick(app)
    return count


# --- when dispatch runs ------------------------------------------------------------------------------


def kick(app: Flask) -> None:
    """After a transaction that wrote rows has committed: dispatch now rather than at the next
    poll. In-process runners do it on their worker thread (the request does not wait for it); the
    poller that retries rows later runs from start-up in serving processes (intake/jobs/background.py),
    so a command that kicks (`flask intake outbox retry`) starts no thread that outlives it. With
    Celery the rows are handed over here, and `celery beat` polls."""
    jobs = jobs_of(app)
    if jobs.mode == "celery":
        try:
            dispatch(app)
        except Exception as exc:  # the broker is down: the rows stay in the table; beat retries
            log.warning("outbox hand-over failed: %s", type(exc).__name__)
        return
    jobs.submit("outbox_dispatch")


class Poller:
    """The in-process runner's clock: at start and then every INTAKE_OUTBOX_POLL_SECONDS it queues
    a dispatch, so rows left by a previous run, waiting out a backoff or handed over by a process
    that died run without a request; it also queues the jobs registered with `every` (bulk-export
    expiry), at start and then at their own intervals. Started by intake/jobs/background.py."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:  # lazily, and again in a forked child (threads do not survive a fork)
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="intake-outbox", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        jobs = jobs_of(self.app)
        due = dict.fromkeys(jobs.periodic, 0.0)  # monotonic time each periodic job runs next
        while True:
            try:
                jobs.submit("outbox_dispatch")
                now = time.monotonic()
                for name, at in due.items():
                    if at <= now:
                        due[name] = now + jobs.periodic[name]
                        jobs.submit(name)
            except RuntimeError:  # the interpreter is shutting down: its executors take no more work
                return
            if self._stop.wait(float(self.app.config["INTAKE_OUTBOX_POLL_SECONDS"])):
                return

    @property
    def stopping(self) -> bool:
        """Set by `stop` (the process is closing): in-process dispatch takes no more rows."""
        return self._closing.is_set()

    def stop(self) -> None:
        self._closing.set()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def poller_of(app: Flask) -> Poller:
    poller: Poller = services(app).outbox_poller
    return poller
