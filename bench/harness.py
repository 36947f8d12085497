"""What the gunicorn benchmarks share: a minimal HTTP client, client processes, and the server.

bench/pages.py, bench/fhir_read.py and bench/load.py measure the real app under gunicorn from
client processes on loopback and divide by a hello-world route measured in the same run. The
pieces here are the ones whose behaviour must be the same for every benchmark, so their ratios
stay comparable:

- `http`: one request per fresh connection (`Connection: close`, as gunicorn's sync worker
  closes anyway), read to EOF; cheap on purpose, because client CPU spent on parsing would
  depress the hello rate more than the page rates and flatter the ratios;
- `run_clients`: client *processes* (not threads, so the GIL does not cap them), started
  together behind a barrier, each reporting one result dict;
- `gunicorn`: the server started, waited for, and always stopped afterwards, also on error.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

HOST = "127.0.0.1"
HELLO_PATH = "/bench/hello"
BENCH_APP = "bench.pages_app:app"

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
REQUEST_TIMEOUT = 10.0
SERVER_START_TIMEOUT = 30.0
CLIENT_SETUP_TIMEOUT = 60.0
STOP_GRACE_SECONDS = 5  # gunicorn's graceful timeout: queued background work is not waited for


class SetupError(Exception):
    """The benchmark could not be set up or run; the message says why (exit 1)."""


# --- HTTP client -------------------------------------------------------------------------------


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)


def http(port: int, method: str, path: str, cookies: dict[str, str] | None = None,
         body: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
    """One request on a fresh connection; reads to EOF (bounded by size and socket timeout)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if cookies:
        lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()))
    if body is not None:
        lines.append("Content-Type: application/x-www-form-urlencoded")
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
    chunks: list[bytes] = []
    size = 0
    with socket.create_connection((HOST, port), timeout=REQUEST_TIMEOUT) as sock:
        sock.sendall(raw)
        while size <= MAX_RESPONSE_BYTES:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    data = b"".join(chunks)
    head, _, payload = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ConnectionError(f"bad status line {status_line[:80]!r}")
    headers = []
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return Response(int(parts[1]), headers, payload)


def update_cookies(cookies: dict[str, str], response: Response) -> None:
    """Keep the cookies a response sets, as a browser would (name=value only)."""
    for name, value in response.headers:
        if name == "set-cookie":
            key, _, rest = value.partition("=")
            cookies[key.strip()] = rest.split(";", 1)[0]


def expect(response: Response, status: int, what: str) -> None:
    if response.status != status:
        raise SetupError(f"{what}: expected {status}, got {response.status}")


# --- client processes --------------------------------------------------------------------------


def start_together(barrier: Any, results: Any, index: int, setup_error: str | None = None) -> bool:
    """Report a failed set-up (and release the others), or wait for every client to be ready.

    False means this client must stop: its error has been reported.
    """
    if setup_error is not None:
        barrier.abort()  # the others must not wait for us
        results.put((index, {"error": f"client setup failed: {setup_error}"}))
        return False
    try:
        barrier.wait(timeout=CLIENT_SETUP_TIMEOUT)
    except threading.BrokenBarrierError:
        results.put((index, {"error": "another client failed to set up"}))
        return False
    return True


def run_clients(label: str, target: Callable[..., None], client_args: Sequence[tuple[Any, ...]],
                phase_seconds: float, during: Callable[[], None] | None = None,
                ) -> tuple[list[dict[str, Any]], list[str]]:
    """Run `target(*args, barrier, results, index)` in one forked process per entry of
    `client_args`; returns their result dicts and error messages (prefixed with `label`).

    Each client must call `start_together` and then put exactly one `(index, dict)` on `results`;
    a dict with "error" is reported as an error. `phase_seconds` bounds how long they may take
    after set-up before they count as hung. `during` runs in this process once the clients have
    started (e.g. to sample CPU use while they run).
    """
    ctx = mp.get_context("fork")
    clients = len(client_args)
    barrier = ctx.Barrier(clients)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, daemon=True, args=(*args, barrier, results, n))
             for n, args in enumerate(client_args)]
    for proc in procs:
        proc.start()
    reports: list[dict[str, Any]] = []
    errors: list[str] = []
    deadline = time.monotonic() + CLIENT_SETUP_TIMEOUT + phase_seconds + 2 * REQUEST_TIMEOUT
    try:
        if during is not None:
            during()
        for _ in range(clients):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                errors.append(f"{label}: a client did not report in time")
                break
            try:
                _index, result = results.get(timeout=remaining)
            except queue.Empty:
                errors.append(f"{label}: a client did not report in time")
                break
            if "error" in result:
                errors.append(f"{label}: {result['error']}")
            else:
                reports.append(result)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    return reports, errors


# --- server ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server(port: int, env: dict[str, str], log_path: Path, workers: int = 2, *,
                 config: Path | None = None) -> subprocess.Popen[bytes]:
    """gunicorn serving the bench app: from flags (2 sync workers, no preload: bench/pages.py)
    or from a configuration file, given its workers and bind address through the environment
    (INTAKE_WEB_WORKERS, INTAKE_BIND: the production gunicorn.conf.py)."""
    if config is None:
        cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "sync",
               "-b", f"{HOST}:{port}", "--chdir", str(ROOT), "--graceful-timeout", str(STOP_GRACE_SECONDS),
               "--log-level", "warning", BENCH_APP]
    else:
        env = {**env, "INTAKE_WEB_WORKERS": str(workers), "INTAKE_BIND": f"{HOST}:{port}"}
        # Command-line settings win over the file's: a quick stop (queued background work is
        # dropped, not waited for) and the bench app instead of wsgi:app; all else is the file's.
        cmd = [sys.executable, "-m", "gunicorn", "-c", str(config), "--chdir", str(ROOT),
               "--graceful-timeout", str(STOP_GRACE_SECONDS), BENCH_APP]
    with log_path.open("ab") as log:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(server: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SetupError(f"gunicorn exited with {server.returncode}:\n{tail(log_path)}")
        try:
            if http(port, "GET", HELLO_PATH).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SetupError(f"gunicorn did not answer within {SERVER_START_TIMEOUT:.0f} s:\n{tail(log_path)}")


@contextmanager
def gunicorn(port: int, env: dict[str, str], log_path: Path, workers: int = 2, *,
             config: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """gunicorn started and answering; always stopped afterwards (a warning on an unclean exit)."""
    server = start_server(port, env, log_path, workers, config=config)
    try:
        wait_ready(server, port, log_path)
        yield server
    finally:
        stop_server(server)
        if server.returncode not in (0, -signal.SIGTERM):
            print(f"warning: gunicorn exited with {server.returncode}:\n{tail(log_path)}", file=sys.stderr)


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
