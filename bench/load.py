"""The whole patient flow under gunicorn on PostgreSQL, as ratios to a hello-world route in the same run.

    cd /work/main && .venv/bin/python bench/load.py [--workers 1,2] [--seconds 10] [--clients 4]

Why: bench/pages.py times one page in isolation; this measures what a clinic's evening of
patients costs the web tier: every request of a real intake, on the production database and the
production gunicorn configuration, with 1 and then 2 workers to show how throughput grows.

What it does, all on loopback:

1. a fresh PostgreSQL database `intake_bench` (dropped and created again with `dropdb`/`createdb`,
   migrated with `flask intake init-db`; `--database-url` for another `intake_bench*` database,
   or `sqlite` for a fresh SQLite file, to compare);
2. for each worker count: gunicorn started with the repository's `gunicorn.conf.py` (sync workers,
   preload; INTAKE_WEB_WORKERS, INTAKE_BIND) serving `bench.pages_app:app` (the app plus
   `/bench/hello`); one flow run by this process as a check; hello for `--seconds`; then as many
   intakes as the clients could possibly use (`flask intake invite`, one per flow); the flow
   phase; hello again. Every phase has `--warmup` seconds first that are not counted;
3. a simulated patient is one client process going through one intake: GET /i/<token> (302), the
   start page, every questionnaire page (GET, then POST of valid answers for the fields the page
   shows, with its CSRF token, 302 to the next), the review page, POST /intake/submit (302) and
   the done page; then the next intake. Answers are the ones tests/web/flow.py gives (the first
   option, "No", the minimum, a past date);
4. prints flows/s, requests/s, per-request p50/p95 (all requests and per step), hello req/s and
   p50/p95 (mean of the runs before and after), the ratios to hello, and throughput(n)/throughput(1);
   with each phase, where the CPUs went (machine, gunicorn, the database's backends, the clients)
   and gunicorn's CPU per request (what a request costs the server, waits left out).

Background work after a submit (the PDF) runs in Celery workers in production, so by default
(`--jobs celery`) rows are handed to a broker database no worker reads (Redis db 15, emptied before
and after) and only the web tier is measured; `--jobs thread` renders in the web workers instead.

Every response status is checked; an unexpected status or a connection error fails the run
(exit 1), and gunicorn is stopped at the end, also on error. No target is set: the figures are
printed. `--strict` exits 2 when a check in `report` fails (too few flows, hello drifted, fewer
flows/s with more workers).

The clients, gunicorn and the database share the machine's CPUs; on a 2-core machine the clients
take CPU from the server, so absolute rates and the 1 -> 2 worker scaling understate a server with
its own cores (the output says so).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

if __package__ in (None, ""):  # run as a script: make `bench`, `intake` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    HELLO_PATH,
    HOST,
    ROOT,
    Response,
    SetupError,
    free_port,
    gunicorn,
    http,
    run_clients,
    start_together,
    update_cookies,
)

from intake.services import services

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/intake_bench"
BENCH_DATABASE_PREFIX = "intake_bench"  # the only PostgreSQL databases this script drops
BENCH_BROKER_URL = "redis://127.0.0.1:6379/15"  # Celery's queue for the run; no worker reads it
GUNICORN_CONFIG = ROOT / "gunicorn.conf.py"
JOB_MODES = ("celery", "thread")
# All simulated patients come from 127.0.0.1: the per-address limit on opening links
# (INTAKE_LINK_RATE_LIMIT, 20 a minute) would refuse all but the first few.
LINK_RATE_LIMIT = "1000000 per minute"

MAX_PAGES = 40  # a flow with more pages is going round in circles
MIN_FLOWS = 20  # fewer measured flows than this per phase: too few for a p95 per step
MAX_HELLO_DRIFT = 0.25  # hello before and after a flow phase differ by more: the machine was busy
INTAKE_HEADROOM = 0.5  # flow req/s / hello req/s can not reach this (measured ~0.1): invite for it

FIRST_PAGE_RE = re.compile(rb'href="(/intake/[^"/]+/[^"]+)"')
CSRF_RE = re.compile(rb'name="csrf_token"[^>]*? value="([^"]+)"')
FIELD_RE = re.compile(rb'<(?:input|select|textarea)\b[^>]*?\bname="([^"]+)"')

# Step kinds, in flow order, with the label printed for each.
STEPS = {
    "link": "GET  /i/<token>        302",
    "start": "GET  /intake            200",
    "page GET": "GET  questionnaire page 200",
    "page POST": "POST questionnaire page 302",
    "review": "GET  /intake/review     200",
    "submit": "POST /intake/submit     302",
    "done": "GET  /intake/done       200",
}
HELLO = "hello"

Answers = dict[str, dict[str, Any]]  # page path -> field name -> value(s)


# --- one simulated patient ---------------------------------------------------------------------


class FlowBroken(Exception):
    """An unexpected response ended this patient's flow (counted; the run will exit 1)."""


class PhaseOver(Exception):
    """The measured window has ended: no new request is started."""


class Recorder:
    """Sends requests, checks their status, and keeps the latency of those inside the window."""

    def __init__(self, port: int, measure_from: float, end: float) -> None:
        self.port, self.measure_from, self.end = port, measure_from, end
        self.latencies: dict[str, list[float]] = {}
        self.bad: Counter[str] = Counter()
        self.flows = 0
        self.cpu: list[float] = []  # this process's CPU seconds when the window opened and closed

    def request(self, step: str, method: str, path: str, cookies: dict[str, str] | None,
                status: int, body: bytes | None = None) -> Response:
        began = time.monotonic()
        if began >= self.end:
            if len(self.cpu) == 1:
                self.cpu.append(time.process_time())
            raise PhaseOver
        if not self.cpu and began >= self.measure_from:
            self.cpu.append(time.process_time())
        try:
            response = http(self.port, method, path, cookies, body)
        except (OSError, ValueError) as exc:
            self.bad[f"{step}: {type(exc).__name__}"] += 1
            raise FlowBroken from exc
        ended = time.monotonic()
        if response.status != status:
            self.bad[f"{step}: {response.status} (expected {status})"] += 1
            raise FlowBroken
        if began >= self.measure_from and ended <= self.end:
            self.latencies.setdefault(step, []).append((ended - began) * 1000)
        if cookies is not None:
            update_cookies(cookies, response)
        return response

    def broken(self, step: str, what: str) -> FlowBroken:
        self.bad[f"{step}: {what}"] += 1
        return FlowBroken(what)

    def report(self) -> dict[str, Any]:
        cpu = self.cpu[1] - self.cpu[0] if len(self.cpu) == 2 else 0.0
        return {"latencies": self.latencies, "bad": dict(self.bad), "flows": self.flows, "cpu": cpu}


def _location(rec: Recorder, step: str, response: Response) -> str:
    location = response.header("location")
    if not location:
        raise rec.broken(step, "redirect without a Location")
    return urlsplit(location).path  # Flask may send an absolute URL


def _csrf(rec: Recorder, step: str, response: Response) -> str:
    match = CSRF_RE.search(response.body)
    if not match:
        raise rec.broken(step, "no CSRF token in the page")
    return match.group(1).decode()


def run_flow(rec: Recorder, link: str, answers: Answers) -> float:
    """One patient from the link to the done page, as a browser without JavaScript would;
    returns when it finished. Raises FlowBroken on any unexpected response."""
    cookies: dict[str, str] = {}
    response = rec.request("link", "GET", link, cookies, 302)
    if _location(rec, "link", response) != "/intake" or not cookies:
        raise rec.broken("link", "not sent to /intake with a session cookie")
    response = rec.request("start", "GET", "/intake", cookies, 200)
    match = FIRST_PAGE_RE.search(response.body)
    if not match:
        raise rec.broken("start", "no link to a questionnaire page")
    path = match.group(1).decode()
    pages = 0
    while path != "/intake/review":
        pages += 1
        if pages > MAX_PAGES or path not in answers:
            raise rec.broken("page POST", f"sent to an unexpected page {path!r}")
        response = rec.request("page GET", "GET", path, cookies, 200)
        shown = {name.decode() for name in FIELD_RE.findall(response.body)}
        fields = [(name, value) for name, value in answers[path].items() if name in shown]
        body = urlencode([*fields, ("csrf_token", _csrf(rec, "page GET", response))], doseq=True).encode()
        response = rec.request("page POST", "POST", path, cookies, 302, body)
        path = _location(rec, "page POST", response)
    response = rec.request("review", "GET", "/intake/review", cookies, 200)
    body = urlencode({"csrf_token": _csrf(rec, "review", response)}).encode()
    response = rec.request("submit", "POST", "/intake/submit", cookies, 302, body)
    if _location(rec, "submit", response) != "/intake/done":
        raise rec.broken("submit", "not sent to /intake/done")
    rec.request("done", "GET", "/intake/done", cookies, 200)
    return time.monotonic()


def client(kind: str, port: int, links: list[str], answers: Answers, warmup: float, seconds: float,
           stagger: float, barrier: Any, results: Any, index: int) -> None:
    """One client process: hello in a loop, or patients one after the other, until time is up.

    Client n starts n x `stagger` seconds after the others (within the warm-up): started
    together, identical flows would move in lockstep through one FIFO server, every patient
    submitting in the same round and waiting behind the others' submits.
    """
    if not start_together(barrier, results, index):
        return
    measure_from = time.monotonic() + warmup
    time.sleep(index * stagger)
    rec = Recorder(port, measure_from, measure_from + seconds)
    try:
        if kind == HELLO:
            while True:
                response = rec.request(HELLO, "GET", HELLO_PATH, None, 200)
                if response.body != b"ok":
                    rec.bad[f"{HELLO}: unexpected body"] += 1
        for link in links:
            try:
                finished = run_flow(rec, link, answers)
            except FlowBroken:
                continue
            if measure_from <= finished <= rec.end:
                rec.flows += 1
        if time.monotonic() < rec.end and not rec.bad:  # every intake used, none failed
            results.put((index, {"error": f"ran out of intakes after {len(links)} "
                                          "(the sizing in `invite_for_phase` is too tight)"}))
            return
    except (PhaseOver, FlowBroken):
        pass
    except Exception as exc:  # noqa: BLE001 - a bug here must be reported, not hang the parent
        results.put((index, {"error": f"{type(exc).__name__}: {exc}"}))
        return
    results.put((index, rec.report()))


# --- phases and figures ------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p95 is a latency that happened)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan


@dataclass
class Phase:
    """What the clients of one phase measured together."""

    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    flows: int = 0
    bad: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds in the window, per CPU_GROUPS

    def all(self) -> list[float]:
        return [ms for values in self.latencies.values() for ms in values]

    @property
    def rate(self) -> float:
        return len(self.all()) / self.seconds

    @property
    def flow_rate(self) -> float:
        return self.flows / self.seconds

    def p(self, q: float, step: str | None = None) -> float:
        return percentile(self.latencies.get(step, []) if step else self.all(), q)

    def server_ms(self) -> float:
        """gunicorn's CPU per request in the window (ms): what a request costs the server, apart
        from the time it waits for the database or for a CPU."""
        requests = len(self.all())
        return self.cpu.get("gunicorn", math.nan) * 1000 / requests if requests else math.nan


# --- CPU accounting (Linux /proc) ------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CPU_GROUPS = ("machine", "gunicorn", "database", "clients")


def _stat(pid: str) -> list[str]:
    """/proc/PID/stat fields after "(comm)": [0] state, [1] ppid, [11..14] utime stime cutime cstime."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cpu_now(master_pid: int, database: str | None) -> tuple[dict[str, float], dict[str, float]]:
    """CPU seconds used so far: ({"machine": all CPUs busy, "gunicorn": the master, its workers and
    the workers it has reaped}, {pid: seconds} of each PostgreSQL backend connected to `database`)."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in stat.readline().split()[1:9])
    machine, gunicorn_ticks = user + nice + system + irq + softirq + steal, 0
    backends: dict[str, float] = {}
    master = str(master_pid)
    backend = f" {database} " if database else None
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat(entry.name)
        if len(fields) < 15:
            continue
        if entry.name == master:
            gunicorn_ticks += sum(int(v) for v in fields[11:15])
        elif fields[1] == master:
            gunicorn_ticks += int(fields[11]) + int(fields[12])
        elif backend and fields[0] != "Z":
            cmdline = _cmdline(entry.name)
            if cmdline.startswith("postgres:") and backend in cmdline:
                backends[entry.name] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return {"machine": machine / CLOCK_TICKS, "gunicorn": gunicorn_ticks / CLOCK_TICKS}, backends


def wait_idle(master_pid: int, timeout: float = 15.0) -> None:
    """Until gunicorn has stopped using CPU (work a request left behind, like the check flow's PDF
    with `--jobs thread`), so it is not counted in the next phase."""
    deadline = time.monotonic() + timeout
    last = cpu_now(master_pid, None)[0]["gunicorn"]
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_now(master_pid, None)[0]["gunicorn"]
        if now - last < 0.25 * 0.1:  # under a tenth of a CPU
            return
        last = now


def cpu_sampler(master_pid: int, database: str | None, warmup: float, seconds: float,
                into: dict[str, float]) -> Any:
    """A `during` hook for run_clients: CPU used between the window's opening and closing.

    A backend that disconnects in the window (a worker recycled) takes its time with it, so the
    database figure is a lower bound."""
    def sample() -> None:
        opens = time.monotonic() + warmup  # the clients pass their barrier within milliseconds
        time.sleep(max(0.0, opens - time.monotonic()))
        before, backends_before = cpu_now(master_pid, database)
        time.sleep(seconds)
        after, backends_after = cpu_now(master_pid, database)
        into.update({name: after[name] - before[name] for name in after})
        into["database"] = sum(used - backends_before.get(pid, 0.0) for pid, used in backends_after.items())
    return sample


def run_phase(kind: str, port: int, links: list[str], answers: Answers, args: argparse.Namespace,
              server: Any, flow_seconds: float = 0.0) -> Phase:
    """`args.clients` client processes for `args.warmup` + `args.seconds`; failures raise.

    Flow clients start spread over one flow's time alone (`flow_seconds`), at most half the warm-up.
    CPU use in the window is taken for gunicorn (`server`), the database and the clients.
    """
    share = math.ceil(len(links) / args.clients) if links else 0
    stagger = min(flow_seconds, args.warmup / 2) / args.clients
    client_args = [(kind, port, links[n * share:(n + 1) * share], answers, args.warmup, args.seconds, stagger)
                   for n in range(args.clients)]
    cpu: dict[str, float] = {}
    sampler = cpu_sampler(server.pid, args.database_name, args.warmup, args.seconds, cpu)
    reports, errors = run_clients(kind, client, client_args, args.warmup + args.seconds, sampler)
    if errors:
        raise SetupError("; ".join(dict.fromkeys(errors)))
    phase = Phase(args.seconds, cpu=cpu)
    cpu["clients"] = sum(report["cpu"] for report in reports)
    for report in reports:
        for step, values in report["latencies"].items():
            phase.latencies.setdefault(step, []).extend(values)
        phase.flows += report["flows"]
        phase.bad.update(report["bad"])
    if phase.bad:
        raise SetupError(f"{kind}: unexpected responses: " +
                         ", ".join(f"{what} x{count}" for what, count in sorted(phase.bad.items())))
    return phase


@dataclass
class Result:
    """One worker count: hello before and after, and the flow phase between them."""

    workers: int
    hello: list[Phase]
    flow: Phase
    boots: int  # worker processes started (workers + restarts after max_requests)

    @property
    def hello_rate(self) -> float:
        return statistics.mean(h.rate for h in self.hello)

    def hello_p(self, q: float) -> float:
        return statistics.mean(h.p(q) for h in self.hello)

    @property
    def hello_server_ms(self) -> float:
        return statistics.mean(h.server_ms() for h in self.hello)

    @property
    def drift(self) -> float:
        before, after = (h.rate for h in self.hello)
        return abs(before - after) / max(before, after)


@dataclass
class Setup:
    """What every worker count is run with."""

    env: dict[str, str]
    answers: Answers
    tmp: Path
    app: Any  # the in-process app that runs the CLI commands (init-db, invite)
    forms: list[str]
    invited: int = 0


def invite(setup: Setup, count: int) -> list[str]:
    """`count` new intakes through the real `flask intake invite`; their link paths."""
    runner = setup.app.test_cli_runner()
    links = []
    for _ in range(count):
        setup.invited += 1
        result = runner.invoke(args=["intake", "invite", "--name", f"Bench Patient {setup.invited}",
                                     "--birth-date", "1970-01-01", "--questionnaires", ",".join(setup.forms)])
        if result.exit_code != 0 or "/i/" not in result.output:
            raise SetupError(f"flask intake invite failed: {result.output.strip()}")
        links.append("/i/" + result.output.strip().rsplit("/i/", 1)[1])
    return links


def invite_for_phase(setup: Setup, hello_rate: float, requests_per_flow: int,
                     args: argparse.Namespace) -> list[str]:
    """Enough intakes that no client runs out, assuming flow requests run at most half as fast
    as hello (they measure about a tenth); a client that still runs out fails the run."""
    bound = hello_rate * INTAKE_HEADROOM * (args.warmup + args.seconds) / requests_per_flow
    return invite(setup, math.ceil(bound) + 2 * args.clients)


def check_flow(port: int, setup: Setup) -> tuple[int, int, float]:
    """One flow before anything is timed (answers valid, pages as expected), alone on the fresh
    server; (requests, questionnaire pages, seconds)."""
    rec = Recorder(port, 0.0, math.inf)
    link = invite(setup, 1)[0]
    began = time.monotonic()
    try:
        run_flow(rec, link, setup.answers)
    except FlowBroken as exc:
        raise SetupError(f"the check flow failed: {', '.join(rec.bad) or exc}") from exc
    return sum(len(v) for v in rec.latencies.values()), len(rec.latencies["page GET"]), time.monotonic() - began


def run_workers(workers: int, setup: Setup, args: argparse.Namespace) -> Result:
    print(f"\n{workers_text(workers)}", flush=True)
    port = args.port or free_port()
    env = {**setup.env, "INTAKE_BASE_URL": f"http://{HOST}:{port}"}
    logs: list[Path] = []

    @contextmanager
    def server() -> Iterator[Any]:
        logs.append(setup.tmp / f"gunicorn-{workers}-{len(logs)}.log")
        with gunicorn(port, env, logs[-1], workers, config=GUNICORN_CONFIG) as process:
            yield process

    hello: list[Phase] = []
    with server() as process:
        requests_per_flow, pages, alone = check_flow(port, setup)
        print(f"  check flow: {requests_per_flow} requests, {pages} questionnaire pages, "
              f"{alone * 1000:.0f} ms alone (the first flow on a fresh server)", flush=True)
        wait_idle(process.pid)
        hello.append(run_phase(HELLO, port, [], {}, args, process))
        print_hello("hello before", hello[-1])
        links = invite_for_phase(setup, hello[-1].rate, requests_per_flow, args)
        print(f"  {len(links)} intakes invited for the flow phase", flush=True)
        flow = run_phase("flow", port, links, setup.answers, args, process, alone)
        print_flow(flow)
        if setup.env["INTAKE_JOBS"] == "celery":
            hello.append(run_phase(HELLO, port, [], {}, args, process))
    if setup.env["INTAKE_JOBS"] != "celery":
        # The workers' job threads would still be rendering PDFs: a fresh server for the baseline.
        with server() as process:
            hello.append(run_phase(HELLO, port, [], {}, args, process))
    print_hello("hello after ", hello[-1])
    boots = sum(log.read_text(errors="replace").count("Booting worker") for log in logs)
    return Result(workers, hello, flow, boots)


# --- output ------------------------------------------------------------------------------------


def print_hello(label: str, phase: Phase) -> None:
    print(f"  {label} {phase.rate:9.1f} req/s   p50 {phase.p(50):6.2f} ms  p95 {phase.p(95):6.2f} ms",
          flush=True)
    print_cpu(phase)


def print_cpu(phase: Phase) -> None:
    """Where the CPUs went in the window: a full machine explains a worker that adds nothing."""
    share = {name: phase.cpu.get(name, math.nan) / phase.seconds * 100 for name in CPU_GROUPS}
    cores = os.cpu_count() or 1
    database = f", database {share['database']:.0f}%" if phase.cpu.get("database") else ""
    print(f"    CPU busy: machine {share['machine']:.0f}% of {cores * 100}% (gunicorn {share['gunicorn']:.0f}%"
          f"{database}, clients {share['clients']:.0f}%, the rest other processes); "
          f"gunicorn {phase.server_ms():.2f} ms per request", flush=True)


def print_flow(phase: Phase) -> None:
    print(f"  flow        {phase.rate:9.1f} req/s   p50 {phase.p(50):6.2f} ms  p95 {phase.p(95):6.2f} ms"
          f"   {phase.flow_rate:.2f} flows/s ({phase.flows} flows)", flush=True)
    for step, label in STEPS.items():
        values = phase.latencies.get(step, [])
        print(f"    {label}  {len(values) / phase.seconds:8.1f} req/s   p50 {phase.p(50, step):6.2f} ms  "
              f"p95 {phase.p(95, step):6.2f} ms", flush=True)
    print_cpu(phase)


def workers_text(count: int) -> str:
    return f"{count} worker{'s' if count != 1 else ''}"


def report(results: list[Result]) -> list[str]:
    """The summary table and scaling lines; returns the checks that failed."""
    print("\nsummary (ratios: flow / hello, both measured in this run with the same workers)")
    print("  workers | hello req/s  p50 ms  p95 ms | flows/s  flow req/s   ratio | p50 ms  ratio | p95 ms  ratio")
    for r in results:
        f = r.flow
        print(f"  {r.workers:7d} | {r.hello_rate:11.1f} {r.hello_p(50):7.2f} {r.hello_p(95):7.2f} | "
              f"{f.flow_rate:7.2f} {f.rate:11.1f} {f.rate / r.hello_rate:6.3f}x | "
              f"{f.p(50):6.2f} {f.p(50) / r.hello_p(50):5.2f}x | {f.p(95):6.2f} {f.p(95) / r.hello_p(95):5.2f}x")
    print("gunicorn CPU per request: " + "; ".join(
        f"{workers_text(r.workers)}: flow {r.flow.server_ms():.2f} ms / hello {r.hello_server_ms:.2f} ms = "
        f"{r.flow.server_ms() / r.hello_server_ms:.1f}x" for r in results))
    failed = []
    base = results[0]
    for r in results[1:]:
        hello_scale, flow_scale = r.hello_rate / base.hello_rate, r.flow.flow_rate / base.flow.flow_rate
        print(f"scaling {base.workers} -> {r.workers} workers: hello {hello_scale:.2f}x, "
              f"flow {flow_scale:.2f}x (throughput({r.workers}) / throughput({base.workers}))")
        if r.workers > base.workers and flow_scale < 1.0:
            failed.append(f"flow throughput fell from {base.workers} to {r.workers} workers")
    for r in results:
        if r.flow.flows < MIN_FLOWS:
            failed.append(f"{workers_text(r.workers)}: only {r.flow.flows} flows measured (raise --seconds)")
        if r.drift > MAX_HELLO_DRIFT:
            failed.append(f"{workers_text(r.workers)}: hello before and after differ by {r.drift:.0%} "
                          "(the machine was busy with something else)")
    print("worker processes started (incl. restarts after max_requests in gunicorn.conf.py): " +
          ", ".join(f"{r.boots} with {r.workers}" for r in results))
    for message in failed:
        print(f"check failed: {message}")
    return failed


# --- set-up ------------------------------------------------------------------------------------


def prepare_database(url: str, tmp: Path) -> str:
    """A fresh, empty database for this run; the URL to give the app."""
    from sqlalchemy.engine import make_url

    if url == "sqlite":
        return f"sqlite:///{tmp / 'intake.sqlite3'}"
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or Path(parsed.database).exists():
            raise SetupError(f"{url}: give a SQLite file that does not exist yet (or `sqlite`)")
        return url
    if parsed.get_backend_name() != "postgresql":
        raise SetupError(f"{url}: only PostgreSQL and SQLite are supported")
    name = parsed.database or ""
    if not name.startswith(BENCH_DATABASE_PREFIX):
        raise SetupError(f"{url}: the database is dropped and created again, so its name must "
                         f"start with {BENCH_DATABASE_PREFIX!r}")
    for tool in ("dropdb", "createdb"):
        if shutil.which(tool) is None:
            raise SetupError(f"{tool} (PostgreSQL client tools) is not installed")
    where = ["-h", parsed.host or HOST, "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres",
             "--no-password"]
    for cmd in (["dropdb", *where, "--if-exists", "--force", name], ["createdb", *where, name]):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SetupError(f"{' '.join(cmd)}: {done.stderr.strip()}")
    return url


def database_name(url: str) -> str | None:
    """The PostgreSQL database whose backends' CPU is counted (None for SQLite: in-process)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.database if parsed.get_backend_name() == "postgresql" else None


def page_answers(app: Any, forms: list[str]) -> Answers:
    """Valid answers for every page of the forms, made as the tests make them."""
    from tests.web.flow import page_data

    catalog = services(app).catalog
    unknown = [key for key in forms if key not in catalog.by_key]
    if unknown:
        raise SetupError(f"unknown questionnaire(s) {', '.join(unknown)}; there are {', '.join(catalog.by_key)}")
    answers: Answers = {}
    for key in forms:
        for page in catalog.by_key[key].pages:
            path = f"/intake/{key}/{page.key}"
            answers[path] = page_data(app, path)
    return answers


@contextmanager
def broker(url: str, queue: str) -> Iterator[None]:
    """The bench's own Celery broker database: emptied before, and after (tasks nobody will run)."""
    import redis

    connection = redis.Redis.from_url(url)
    try:
        connection.flushdb()
    except redis.RedisError as exc:
        raise SetupError(f"Redis at {url}: {exc}") from exc
    try:
        yield
    finally:
        try:
            queued = connection.llen(queue)
            connection.flushdb()
            print(f"broker: {queued} tasks were waiting in queue {queue!r} for a Celery worker "
                  "(none runs); emptied")
        except redis.RedisError as exc:
            print(f"warning: could not empty the broker {url}: {exc}", file=sys.stderr)
        connection.close()


def parse_workers(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or any(not 1 <= n <= 12 for n in counts):
        raise ValueError(text)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2", help="gunicorn worker counts, run in turn (default 1,2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="uncounted seconds before each phase (default 2)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client processes (default 4)")
    parser.add_argument("--forms", default=None,
                        help="questionnaires of each intake, comma-separated (default: INTAKE_QUESTIONNAIRES, the five)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help=f"default {DEFAULT_DATABASE_URL} (dropped and created again); `sqlite` for a fresh SQLite file")
    parser.add_argument("--jobs", choices=JOB_MODES, default="celery",
                        help="celery (default): background work handed to a broker no worker reads, "
                             "the web tier alone is measured; thread: PDFs rendered in the web workers")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 2 when a check fails (too few flows, hello drifted, no gain from more workers)")
    args = parser.parse_args(argv)
    try:
        args.worker_counts = parse_workers(args.workers)
    except ValueError:
        parser.error("--workers: comma-separated counts from 1 to 12, e.g. 1,2")
    if not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 60 or not 1 <= args.clients <= 64:
        parser.error("need 0 < --seconds <= 600, 0 <= --warmup <= 60, 1 <= --clients <= 64")

    began = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="intake-load-") as tmp:
            results = run(args, Path(tmp))
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    failed = report(results)
    print(f"took {time.monotonic() - began:.0f} s; load average after: {os.getloadavg()[0]:.2f} (1 min)")
    return 2 if failed and args.strict else 0


def run(args: argparse.Namespace, tmp: Path) -> list[Result]:
    """Set up once, then every worker count in turn."""
    database_url = prepare_database(args.database_url, tmp)
    args.database_name = database_name(database_url)
    env = {
        "DATABASE_URL": database_url,
        "INTAKE_SECRET_KEY": secrets.token_hex(32),
        "INTAKE_LINK_RATE_LIMIT": LINK_RATE_LIMIT,
        "INTAKE_JOBS": args.jobs,
    }
    if args.jobs == "celery":
        env["INTAKE_CELERY_BROKER_URL"] = BENCH_BROKER_URL
    os.environ.update(env)  # the in-process CLI commands read the same configuration
    from sqlalchemy.engine import make_url

    from intake import close_app, create_app

    app = create_app()
    try:
        result = app.test_cli_runner().invoke(args=["intake", "init-db"])
        if result.exit_code != 0:
            raise SetupError(f"flask intake init-db failed: {result.output.strip()}")
        forms = ([k.strip() for k in args.forms.split(",") if k.strip()] if args.forms
                 else list(app.config["INTAKE_QUESTIONNAIRES"]))
        setup = Setup({**os.environ, **env}, page_answers(app, forms), tmp, app, forms)
        safe_url = make_url(database_url).render_as_string(hide_password=True)
        print(f"Intake load benchmark: the whole patient flow ({', '.join(forms)}) under gunicorn "
              f"(gunicorn.conf.py: sync workers, preload) on {safe_url}")
        print(f"  {args.clients} client processes, {args.warmup:g} s warm-up + {args.seconds:g} s per phase; "
              f"workers {', '.join(map(str, args.worker_counts))}; one intake per flow")
        if args.jobs == "celery":
            print(f"  jobs: celery, broker {BENCH_BROKER_URL} and no Celery worker: each submit's outbox rows "
                  "are handed over and wait there; the web tier alone is measured")
        else:
            print("  jobs: thread: each submit's PDF is rendered in the web worker that took it, "
                  "competing with requests (gunicorn is restarted before the closing hello)")
        print(f"  note: {os.cpu_count()} CPUs shared by gunicorn, the database and the {args.clients} client "
              "processes: clients take CPU from the server, so rates and the worker scaling understate "
              "a server with cores of its own")
        print(f"  load average before: {os.getloadavg()[0]:.2f} (1 min; other work on the machine moves the figures)")
        with broker(BENCH_BROKER_URL, celery_queue(app)) if args.jobs == "celery" else _nothing():
            return [run_workers(workers, setup, args) for workers in args.worker_counts]
    finally:
        close_app(app)


def celery_queue(app: Any) -> str:
    """The queue the app's Celery tasks go to (intake/jobs/celery.py)."""
    from intake.jobs import jobs_of

    celery = jobs_of(app).celery
    return str(celery.conf.task_default_queue) if celery is not None else "celery"


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    sys.exit(main())
