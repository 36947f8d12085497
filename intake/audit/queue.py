"""Write-behind for the audit rows of reads: the request hands its row to a queue and answers; one
thread per process appends what has queued up, gathering for up to 50 ms, in one transaction
(group commit).

Why: a synchronous audit write (lock the chain head, insert, commit) cost a FHIR read about 2 ms
in-process, three times the read itself. Handed to this queue it costs microseconds, and under
load many rows share one commit. The price, written down: rows still in the queue when the process
is killed (-9) or the machine loses power are lost — at most the last GATHER_SECONDS (50 ms)
plus one commit's worth; a clean shutdown (atexit) writes them. `INTAKE_AUDIT_QUEUE=sync` writes
each row before the response instead. Sign-ins and changes never come here: their rows commit with the change (a
separate transaction per patient page save cost the save a third of its throughput, contending
for SQLite's write lock).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from intake import audit
from intake.storage.db import session_scope

log = logging.getLogger(__name__)

MODES = ("behind", "sync")
MAX_BATCH = 500
GATHER_SECONDS = 0.05


class AuditQueue:
    def __init__(self, sessions: sessionmaker[Session], mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"INTAKE_AUDIT_QUEUE must be one of {', '.join(MODES)}, not {mode!r}")
        self.sessions, self.mode = sessions, mode
        self._queue: queue.Queue[dict[str, object]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def put(self, fields: dict[str, object]) -> None:
        """Queue one row (from `audit.row_fields`); in sync mode, write it now."""
        if self.mode == "sync":
            self._write([fields])
            return
        self._ensure_thread()
        self._queue.put(fields)

    def flush(self) -> None:
        """Block until every queued row is written (tests, and shutdown)."""
        if self._thread is not None and self._pid == os.getpid():
            self._queue.join()

    def _ensure_thread(self) -> None:
        # Started lazily, and again in a forked child: a thread does not survive a pre-forking
        # server's fork, but the queue object does.
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._queue = queue.Queue()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._drain, name="intake-audit", daemon=True)
            self._thread.start()
            atexit.register(self.flush)

    def _drain(self) -> None:
        take: Callable[..., dict[str, object]] = self._queue.get
        while True:
            batch = [take()]
            # Let rows gather for GATHER_SECONDS without waking for each one: under load one
            # commit then carries tens of rows (a transaction per row cost a FHIR read about half
            # its throughput, and a wake-up per row more).
            time.sleep(GATHER_SECONDS)
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            except Exception as exc:  # keep the thread alive; the rows are reported lost, without PHI
                log.error("audit: %d rows could not be written: %s", len(batch), type(exc).__name__)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _write(self, batch: list[dict[str, object]]) -> None:
        with session_scope(self.sessions) as session:
            audit.record_many(session, batch)
