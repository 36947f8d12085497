"""The real production server for tests: `gunicorn -c gunicorn.conf.py wsgi:app` as a subprocess.

Why a subprocess and the real config: what these tests guard (preload + fork, worker death and
replacement, the access log's masking) only exists in gunicorn's own processes.

The listening socket is bound here, on a free 127.0.0.1 port, and handed to gunicorn as
`INTAKE_BIND=fd://N` (no race for the port between choosing and binding it). The child's
environment is this process's minus every `INTAKE_*`/`DATABASE_URL` (the caller's settings
only). stdout (access log) and stderr (error log, app logs) go to files for grepping. Worker pids
are read from /proc (the master's children). `stop()` sends SIGTERM, then SIGKILL to the master
and any worker left; it always reaps, so no ResourceWarning is left behind.

    with gunicorn_server({"DATABASE_URL": url, "INTAKE_SECRET_KEY": key}, tmp_path) as server:
        client = HttpClient(server.port)
        assert client.get("/").status == 200
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 40.0  # gunicorn.conf.py's graceful_timeout (30 s) and some
REQUEST_TIMEOUT = 30.0


class ServerError(Exception):
    """gunicorn did not start, or a wait on it ran out of time (the message has the log tail)."""


# --- processes ----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Live (not zombie) child processes of `pid`, from /proc."""
    found: set[int] = set()
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with suppress(OSError):  # the thread ended, or no CONFIG_PROC_CHILDREN: scan below
                found.update(int(p) for p in (task / "children").read_text().split())
    except OSError:
        return []
    if not found:
        found = {p for p in _all_pids() if _stat(p)[1] == pid}
    return sorted(p for p in found if _stat(p)[0] not in ("Z", "X", ""))


def _all_pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def _stat(pid: int) -> tuple[str, int]:
    """(state letter, parent pid) of `pid`; ("", 0) if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "", 0
    fields = text.rsplit(")", 1)[1].split()  # the name in parentheses may contain spaces
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    return _stat(pid)[0] not in ("Z", "X", "")


# --- the server ---------------------------------------------------------------------------------


@dataclass
class GunicornServer:
    process: subprocess.Popen[bytes]
    port: int
    workers: int
    stdout_path: Path
    stderr_path: Path
    stop_seconds: float = 0.0  # how long `stop` took (graceful: in-flight requests and queued jobs)
    _known_workers: set[int] = field(default_factory=set)

    @property
    def master_pid(self) -> int:
        return self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def worker_pids(self) -> list[int]:
        pids = children(self.master_pid)
        self._known_workers.update(pids)
        return pids

    def wait_for_workers(self, *, gone: Iterable[int] = (), timeout: float = 30.0) -> list[int]:
        """Wait until the master runs `workers` live workers, none of them in `gone`."""
        gone = set(gone)
        deadline = time.monotonic() + timeout
        while True:
            self._check_running()
            pids = self.worker_pids()
            if len(pids) == self.workers and not gone & set(pids):
                return pids
            if time.monotonic() > deadline:
                raise ServerError(f"expected {self.workers} workers (not {sorted(gone)}), have {pids}:\n{self.tail()}")
            time.sleep(0.05)

    def access_log(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def error_log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.error_log().splitlines()[-lines:])

    def _check_running(self) -> None:
        if self.process.poll() is not None:
            raise ServerError(f"gunicorn exited with {self.process.returncode}:\n{self.tail()}")

    def wait_ready(self, path: str = "/", timeout: float = START_TIMEOUT) -> None:
        """Until `path` answers 200 and every worker has booted."""
        deadline = time.monotonic() + timeout
        client = HttpClient(self.port, timeout=5.0)
        while True:
            self._check_running()
            try:
                if client.get(path).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"gunicorn did not answer {path} within {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.1)
        self.wait_for_workers(timeout=max(1.0, deadline - time.monotonic()))

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM (graceful), then SIGKILL to the master and any worker it left; returns the exit code."""
        workers = self._known_workers | set(self.worker_pids())
        began = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for pid in workers:  # orphans exit on their own within a second; do not wait for that
            if alive(pid) and _stat(pid)[1] in (self.master_pid, 1):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.stop_seconds = time.monotonic() - began
        return self.process.returncode


def free_socket() -> socket.socket:
    """A listening TCP socket on a free 127.0.0.1 port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(512)
    return sock


def child_environment(env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any intake setting, plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_") and k != "DATABASE_URL"}
    return {**base, **env}


def start(env: Mapping[str, str], log_dir: Path, *, workers: int = 2, ready_path: str = "/",
          timeout: float = START_TIMEOUT) -> GunicornServer:
    """Start gunicorn with the project's config; returns once it answers and all workers run."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = log_dir / "gunicorn.out.log", log_dir / "gunicorn.err.log"
    sock = free_socket()
    try:
        port = sock.getsockname()[1]
        child_env = child_environment({**env, "INTAKE_BIND": f"fd://{sock.fileno()}",
                                       "INTAKE_WEB_WORKERS": str(workers)})
        cmd = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"]
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            process = subprocess.Popen(cmd, cwd=ROOT, env=child_env, stdout=out, stderr=err,
                                       stdin=subprocess.DEVNULL, pass_fds=(sock.fileno(),))
    finally:
        sock.close()  # gunicorn holds its own copy
    server = GunicornServer(process, port, workers, stdout_path, stderr_path)
    try:
        server.wait_ready(ready_path, timeout)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def gunicorn_server(env: Mapping[str, str], log_dir: Path, *, workers: int = 2,
                    ready_path: str = "/") -> Iterator[GunicornServer]:
    """`start`, and always `stop` afterwards."""
    server = start(env, log_dir, workers=workers, ready_path=ready_path)
    try:
        yield server
    finally:
        server.stop()


# --- a small HTTP client ------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def location(self) -> str:
        return self.header("location") or ""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class HttpClient:
    """One browser: a cookie jar and one connection per request (sync workers close it anyway).

    Redirects are not followed (tests check where they point). Connection errors (a killed
    worker) raise OSError or http.client.HTTPException; the jar is only updated by answers.
    """

    def __init__(self, port: int, *, timeout: float = REQUEST_TIMEOUT) -> None:
        self.port, self.timeout = port, timeout
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: Mapping[str, object] | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        sent = {"Connection": "close", **(headers or {})}
        body = None
        if form is not None:
            body = urlencode(form, doseq=True).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            response = Response(answer.status, answer.getheaders(), answer.read())
        finally:
            connection.close()
        for name, value in response.headers:
            if name.lower() == "set-cookie":
                for key, morsel in SimpleCookie(value).items():
                    if morsel.get("max-age") == "0" or not morsel.value:
                        self.cookies.pop(key, None)
                    else:
                        self.cookies[key] = morsel.coded_value
        return response

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, form: Mapping[str, object]) -> Response:
        return self.request("POST", path, form)
