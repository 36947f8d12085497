"""Real Celery processes for tests: `celery -A intake.celery_app worker` and `beat`, started as
the Procfile starts them, against the test database and a Redis database of their own, and
killed with SIGKILL (the whole process group: the worker and its pool children) on command."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import redis

CELERY = str(Path(sys.executable).with_name("celery"))


def _worker_redis_db() -> int:
    """Redis database 13, or 13 + n for pytest-xdist worker gw<n> (up to 15): the Celery and
    production tests of two workers flush and fill brokers of their own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    number = int(worker[2:]) if worker[2:].isdigit() else 0
    return 13 + number if 13 + number <= 15 else 13


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_the_test_process() -> None:
    """Run in the child before exec: the kernel SIGKILLs it when the test process dies, however
    it dies. A pytest killed by a timeout or an interrupt never reaches `__exit__`, and a worker
    left behind would go on draining the `intake` queue of the next run (its Celery tests then
    wait for rows that the stray worker took)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


REDIS_URL = os.environ.get("INTAKE_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{_worker_redis_db()}")
PROJECT = Path(__file__).resolve().parents[2]


def redis_available() -> bool:
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        with client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def flush_broker() -> None:
    """Empty the test broker database: queued tasks and unacknowledged ones alike."""
    with redis.Redis.from_url(REDIS_URL) as client:
        client.flushdb()


class CeleryProcesses:
    """A worker (prefork pool) and optionally beat, sharing `env` (settings as environment)."""

    def __init__(self, env: dict[str, str], log_dir: Path, *, concurrency: int = 2, beat: bool = True) -> None:
        self.env = {**os.environ, "INTAKE_JOBS": "celery", "INTAKE_CELERY_BROKER_URL": REDIS_URL, **env}
        self.log_dir, self.concurrency, self.with_beat = log_dir, concurrency, beat
        self.worker: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _spawn(self, role: str, *args: str) -> subprocess.Popen[bytes]:
        self.starts += 1
        log = open(self.log_dir / f"{role}-{self.starts}.log", "wb")  # noqa: SIM115 (closed in _reap)
        process = subprocess.Popen([CELERY, "-A", "intake.celery_app", role, "--loglevel", "INFO", *args],
                                   cwd=PROJECT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=_die_with_the_test_process)
        log.close()  # the child holds its own copy
        return process

    def start_worker(self) -> None:
        self.worker = self._spawn("worker", "--pool", "prefork", "--concurrency", str(self.concurrency),
                                  "-Q", "intake", "--without-gossip", "--without-mingle", "--without-heartbeat")

    def start(self) -> CeleryProcesses:
        self.start_worker()
        if self.with_beat:
            self.beat = self._spawn("beat", "--schedule", str(self.log_dir / "beat-schedule"))
        return self

    def kill_worker(self) -> None:
        """SIGKILL the worker and its pool children at once: no shutdown, no acknowledgements."""
        if self.worker is not None:
            _kill_group(self.worker, signal.SIGKILL)
            self.worker = None

    def stop(self) -> None:
        for process in (self.worker, self.beat):
            if process is not None:
                _kill_group(process, signal.SIGTERM, grace=10)
        self.worker = self.beat = None

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    def __enter__(self) -> CeleryProcesses:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _kill_group(process: subprocess.Popen[bytes], sig: int, grace: float = 0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=grace or 10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # pool children outlive the parent briefly
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
