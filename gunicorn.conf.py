"""gunicorn settings for production: `.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app`.

Environment: INTAKE_BIND (default 127.0.0.1:8000; also `unix:PATH` or `fd://N`, several comma-
separated), INTAKE_WEB_WORKERS (default 2 x cores + 1, at most 12), INTAKE_WEB_MAX_REQUESTS (2000),
INTAKE_LOG_LEVEL (info), INTAKE_CONTROL_SOCKET (off), plus everything the app reads
(DATABASE_URL, INTAKE_SECRET_KEY, ...; see docs/configuration.md).

Sync workers are meant to sit behind a reverse proxy (nginx, a cloud load balancer) that buffers
slow clients; facing the internet directly, a few slow connections could hold every worker.
"""

from __future__ import annotations

import os
from typing import Any

from intake import close_app
from intake.jobs import background
from intake.services import services

# --- what to serve -------------------------------------------------------------------------------

# The app factory's instance (also given on the command line, which wins).
wsgi_app = "wsgi:app"
# Load the app once in the master, then fork: workers start in milliseconds, share the catalog's
# memory copy-on-write, and a broken configuration fails at start instead of in each worker.
# What the app opened in the master is reset after the fork (see `post_fork`).
preload_app = True
# A forked process keeps no threads, and the master must run none: the outbox poller (the clock of
# outbox dispatch and bulk-export expiry, intake/jobs/background.py) starts in each worker, in
# `post_worker_init` below, rather than when the master creates the app. Unless it is turned off.
if os.environ.get("INTAKE_OUTBOX_POLLER", "on") == "on":
    os.environ["INTAKE_OUTBOX_POLLER"] = "worker"
# Where to listen. The default is loopback only: a proxy in front terminates TLS.
bind = [part.strip() for part in os.environ.get("INTAKE_BIND", "127.0.0.1:8000").split(",") if part.strip()]


def _default_workers() -> int:
    """2 x usable cores + 1 (gunicorn's rule of thumb), capped: past a dozen processes the
    database, not the web tier, is the limit (SQLite has one writer; PostgreSQL pays per connection,
    each worker holding up to 15 through SQLAlchemy's pool)."""
    try:
        cores = len(os.sched_getaffinity(0))  # the CPUs this container/cgroup may use
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(2 * cores + 1, 12)


# Worker processes; INTAKE_WEB_WORKERS overrides (at least 1).
workers = max(1, int(os.environ.get("INTAKE_WEB_WORKERS") or _default_workers()))
# One request per process at a time: the views are CPU-bound (forms, scoring) and hold a
# database transaction; threads would only share one GIL.
worker_class = "sync"

# --- timeouts ------------------------------------------------------------------------------------

# A worker silent for this long (seconds) is killed and replaced. Longer than SQLite's 30 s busy
# timeout (intake/storage/db.py), so a request waiting for the write lock ends with its own logged
# error rather than a silent kill; pages answer in milliseconds and a submit in well under a second.
timeout = 60
# On SIGTERM/HUP or a max_requests restart, a worker gets this long to finish its request, the
# queued background jobs (PDF rendering) and audit rows its atexit handlers write, then is killed.
graceful_timeout = 30
# Seconds an idle keep-alive connection stays open. Sync workers close every connection after its
# response anyway; this only applies if worker_class changes (keep it below the proxy's idle timeout).
keepalive = 2

# --- recycling -----------------------------------------------------------------------------------

# Restart a worker after this many requests (INTAKE_WEB_MAX_REQUESTS; 0 = never), bounding the
# growth of per-process caches and memory fragmentation; the jitter (10 %) spreads restarts so
# workers do not all restart at once.
max_requests = int(os.environ.get("INTAKE_WEB_MAX_REQUESTS") or 2000)
max_requests_jitter = max_requests // 10

# --- logging -------------------------------------------------------------------------------------

# Access log to stdout, error log to stderr (the process manager or container collects both).
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("INTAKE_LOG_LEVEL", "info")
# Masks patient link tokens (/i/[redacted]), drops query strings and credentials (see the module).
logger_class = "intake.gunicorn_logging.MaskingLogger"
# Client, time, request line (path only), status, bytes, duration in ms, worker pid, referer path,
# user agent. Never `%(q)s` or `{...}i` cookie/authorization atoms (the logger masks them anyway).
access_log_format = '%(h)s - %(t)s "%(r)s" %(s)s %(b)s %(M)sms %(p)s "%(f)s" "%(a)s"'

# --- processes -----------------------------------------------------------------------------------

# The name in ps/top.
proc_name = "intake"
# gunicorn >= 25.1 opens a control socket (worker counts, reload, shutdown) at one path per user,
# $XDG_RUNTIME_DIR or ~/.gunicorn/gunicorn.ctl: a second instance on the host takes it over from
# the first. Off unless INTAKE_CONTROL_SOCKET names a path of this instance's own.
control_socket_disable = not os.environ.get("INTAKE_CONTROL_SOCKET")
if os.environ.get("INTAKE_CONTROL_SOCKET"):
    control_socket = os.environ["INTAKE_CONTROL_SOCKET"]
# Workers' heartbeat files live in memory: a disk-backed /tmp can stall a heartbeat and get a
# healthy worker killed (containers often have a slow overlay /tmp).
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"


def post_fork(server: Any, worker: Any) -> None:
    """In each new worker: drop the connection pool the preloaded app inherited from the master
    (without closing the master's connections), so no two processes ever share a socket.

    The app's other background pieces need nothing here: the audit write-behind thread
    (intake/audit/queue.py) starts on a worker's first queued row and again when its pid differs,
    and the job executor (intake/jobs/__init__.py) is created on the first job; the master serves no
    requests, so neither exists before the fork."""
    app = server.app.wsgi()
    services(app).engine.dispose(close=False)


def post_worker_init(worker: Any) -> None:
    """In each worker, once it runs: start the outbox poller (not in celery mode, nor when
    INTAKE_OUTBOX_POLLER=off), so rows left by a previous run or a dead worker go out without a
    request. Every worker polls; claiming a row is atomic, so each row runs once."""
    background.start_in_worker(worker.app.wsgi())


def worker_exit(server: Any, worker: Any) -> None:
    """A worker leaving (stop, reload, max_requests): write its queued audit rows, stop the
    outbox poller, finish queued jobs and close its connections, in that order (`close_app`),
    before the interpreter shuts down under them (a poller thread left running fired into the
    job executor after its shutdown: a traceback at every exit). gunicorn also calls this hook in
    the master when it reaps a worker; there it does nothing."""
    if os.getpid() != worker.pid:
        return
    close_app(server.app.wsgi())
