"""Patient page throughput under gunicorn, as a ratio to a hello-world route in the same run.

    cd /work/main && .venv/bin/python bench/pages.py [--seconds 5] [--clients 4] [--strict]

What it does, all on loopback and in a temporary folder that is removed afterwards:

1. a fresh SQLite database (`flask intake init-db`) and one intake per client and phase
   (`flask intake invite`, all five questionnaires), through the real CLI commands;
2. gunicorn with 2 sync workers serving `bench.pages_app:app` (the real app plus `/bench/hello`);
3. phases, each with `--clients` client processes, a warm-up, then `--seconds` measured: hello
   (`GET /bench/hello`), then `--rounds` rounds of GET of the first patient page, POST of valid
   answers to it (expects 302 to the next page) and hello again; each page phase is compared
   with the mean of the hello runs just before and after it;
4. prints req/s and the median over the rounds of the ratios GET/hello (target >= 0.30) and
   POST/hello (target >= 0.15), with each round's ratio.

Every response status is checked; any unexpected status or connection error fails the run (exit 1).
A missed target exits 0 unless `--strict` (then 2). gunicorn is stopped at the end, also on error.

Clients are processes (not threads, so the GIL does not cap them) speaking minimal HTTP/1.1
over a fresh socket per request (`Connection: close`, as gunicorn's sync worker closes anyway):
the machine may have few cores, and client CPU spent on parsing would depress the hello rate
more than the page rates and flatter the ratios.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.harness import (
    HELLO_PATH,
    HOST,
    ROOT,
    SetupError,
    expect,
    free_port,
    gunicorn,
    http,
    run_clients,
    start_together,
    update_cookies,
)

from intake.services import services

if __package__ in (None, ""):  # run as a script: make `bench` and `intake` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

__all__ = ["HOST", "SetupError", "free_port", "gunicorn", "prepare_database", "run_phase"]

WORKERS = 2
FORM_KEY, PAGE_KEY = "digestive", "digestive-alarm"
PAGE_PATH = f"/intake/{FORM_KEY}/{PAGE_KEY}"
TARGETS = {"get": 0.30, "post": 0.15}

MAX_REQUESTS_PER_CLIENT = 1_000_000  # per phase; time ends a phase long before this

CSRF_RE = re.compile(rb'name="csrf_token" value="([^"]+)"')


# --- client processes --------------------------------------------------------------------------


def _prepare(kind: str, port: int, link: str | None, post_fields: dict[str, str]) -> Any:
    """Per-client setup; returns a zero-argument function doing one request -> (ok, status)."""
    if kind == "hello":
        def hello() -> tuple[bool, str]:
            response = http(port, "GET", HELLO_PATH)
            return response.status == 200 and response.body == b"ok", str(response.status)
        return hello

    assert link is not None
    if kind == "fhir":  # link = "<path>\t<bearer token>" (bench/fhir_read.py)
        path, token = link.split("\t")
        auth = {"Authorization": f"Bearer {token}"}

        def fhir_read() -> tuple[bool, str]:
            response = http(port, "GET", path, headers=auth)
            return response.status == 200 and response.body.startswith(b'{"'), str(response.status)
        return fhir_read

    cookies: dict[str, str] = {}
    response = http(port, "GET", link)
    expect(response, 302, f"GET {link}")
    update_cookies(cookies, response)
    if not cookies:
        raise SetupError("opening the link set no session cookie")
    response = http(port, "GET", PAGE_PATH, cookies)
    expect(response, 200, f"GET {PAGE_PATH}")
    update_cookies(cookies, response)

    if kind == "get":
        def get_page() -> tuple[bool, str]:
            response = http(port, "GET", PAGE_PATH, cookies)
            update_cookies(cookies, response)
            return response.status == 200, str(response.status)
        return get_page

    match = CSRF_RE.search(response.body)
    if not match:
        raise SetupError(f"GET {PAGE_PATH}: no CSRF token in the page")
    body = urlencode({**post_fields, "csrf_token": match.group(1).decode()}).encode()
    response = http(port, "POST", PAGE_PATH, cookies, body)
    expect(response, 302, f"POST {PAGE_PATH}")
    location = response.header("location") or ""
    if not location.startswith("/intake/") or location.rstrip("/").endswith(PAGE_PATH):
        raise SetupError(f"POST {PAGE_PATH}: redirected to {location!r}, not to the next page")
    update_cookies(cookies, response)

    def post_page() -> tuple[bool, str]:
        response = http(port, "POST", PAGE_PATH, cookies, body)
        update_cookies(cookies, response)
        return response.status == 302, str(response.status)
    return post_page


def client(kind: str, port: int, link: str | None, post_fields: dict[str, str], warmup: float,
           seconds: float, barrier: Any, results: Any, index: int) -> None:
    """One client: set up, wait for the others, then request in a loop until the phase ends."""
    try:
        request = _prepare(kind, port, link, post_fields)
    except Exception as exc:  # noqa: BLE001 - reported by the parent, whatever it is
        start_together(barrier, results, index, f"{type(exc).__name__}: {exc}")
        return
    if not start_together(barrier, results, index):
        return
    start = time.monotonic()
    measure_from = start + warmup
    end = measure_from + seconds
    counted = 0
    bad: Counter[str] = Counter()
    for _ in range(MAX_REQUESTS_PER_CLIENT):
        began = time.monotonic()
        if began >= end:
            break
        try:
            ok, status = request()
        except (OSError, ValueError) as exc:
            ok, status = False, type(exc).__name__
        if not ok:
            bad[status] += 1
        elif began >= measure_from and time.monotonic() <= end:
            counted += 1
    results.put((index, {"counted": counted, "bad": dict(bad)}))


def run_phase(kind: str, port: int, links: list[str], post_fields: dict[str, str], clients: int,
              warmup: float, seconds: float) -> tuple[float, Counter[str], list[str]]:
    """Run one phase with `clients` processes; returns (req/s, unexpected statuses, errors)."""
    client_args = [(kind, port, links[n] if links else None, post_fields, warmup, seconds)
                   for n in range(clients)]
    reports, errors = run_clients(kind, client, client_args, warmup + seconds)
    counted = 0
    bad: Counter[str] = Counter()
    for result in reports:
        counted += result["counted"]
        bad.update(result["bad"])
    return counted / seconds, bad, errors


# --- set-up ------------------------------------------------------------------------------------


def prepare_database(intakes: int) -> tuple[list[str], dict[str, str]]:
    """Migrate the database and invite `intakes` patients through the real CLI commands.

    Returns the link paths and the POST fields answering every boolean on the benchmarked page
    with "false" (the page's only other questions are optional or disabled by those answers).
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from intake import create_app
    from intake.web.forms import field_name

    app = create_app()
    try:
        runner = app.test_cli_runner()
        result = runner.invoke(args=["intake", "init-db"])
        if result.exit_code != 0:
            raise SetupError(f"flask intake init-db failed: {result.output.strip()}")
        links = []
        for n in range(intakes):
            result = runner.invoke(args=["intake", "invite", "--name", f"Bench Patient {n}",
                                         "--birth-date", "1970-01-01"])
            if result.exit_code != 0 or "/i/" not in result.output:
                raise SetupError(f"flask intake invite failed: {result.output.strip()}")
            links.append("/i/" + result.output.strip().rsplit("/i/", 1)[1])
        form = services(app).catalog.by_key[FORM_KEY]
        page = next(p for p in form.pages if p.key == PAGE_KEY)
        fields = {field_name(item.link_id): "false" for item in page.walk()
                  if item.is_question and item.type == "boolean" and not item.read_only and not item.hidden}
        if not fields:
            raise SetupError(f"{PAGE_PATH} has no boolean questions to answer")
        return links, fields
    finally:
        services(app).engine.dispose()


# --- main --------------------------------------------------------------------------------------


def run_rounds(args: argparse.Namespace, port: int, links: list[str],
               post_fields: dict[str, str]) -> tuple[dict[str, list[float]], list[str]]:
    """The benchmark's phases against a running server: (req/s per kind, failure messages)."""
    print(f"Intake page benchmark: gunicorn {WORKERS} sync workers on {HOST}:{port}, "
          f"{args.clients} clients, {args.warmup:g} s warm-up + {args.seconds:g} s per phase, "
          f"{os.cpu_count()} CPUs", flush=True)
    # Rounds of hello, GET, POST and a closing hello: each page rate is compared with the
    # hello runs just before and after it, and the median ratio over the rounds is
    # reported, so drift in the machine's speed during a run does not decide the result.
    phases = [("hello", [])]
    for _round in range(args.rounds):
        phases += [("get", links[:args.clients]), ("post", links[args.clients:]), ("hello", [])]
    rates: dict[str, list[float]] = {}
    failures: list[str] = []
    for kind, phase_links in phases:
        rate, bad, errors = run_phase(kind, port, phase_links, post_fields, args.clients,
                                      args.warmup, args.seconds)
        rates.setdefault(kind, []).append(rate)
        failures += errors
        if bad:
            failures.append(f"{kind}: unexpected responses " +
                            ", ".join(f"{status} x{count}" for status, count in sorted(bad.items())))
        if errors:
            print(f"  {kind:<5}    failed", flush=True)
            break
        print(f"  {kind:<5} {rate:9.1f} req/s", flush=True)
    return rates, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per phase (default 3)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per phase (default 1)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client processes (default 4)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of GET and POST phases (default 5)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    args = parser.parse_args(argv)
    if (not 0 < args.seconds <= 600 or not 0 <= args.warmup <= 60 or not 1 <= args.clients <= 64
            or not 1 <= args.rounds <= 20):
        parser.error("need 0 < --seconds <= 600, 0 <= --warmup <= 60, 1 <= --clients <= 64, 1 <= --rounds <= 20")

    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp:
        port = args.port or free_port()
        bench_env = {
            "DATABASE_URL": f"sqlite:///{Path(tmp) / 'intake.sqlite3'}",
            "INTAKE_SECRET_KEY": secrets.token_hex(32),
            "INTAKE_BASE_URL": f"http://{HOST}:{port}",
        }
        os.environ.update(bench_env)  # the in-process set-up reads the same configuration
        log_path = Path(tmp) / "gunicorn.log"
        try:
            links, post_fields = prepare_database(2 * args.clients)
            with gunicorn(port, {**os.environ, **bench_env}, log_path, WORKERS):
                rates, failures = run_rounds(args, port, links, post_fields)
        except SetupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if failures:
        for failure in dict.fromkeys(failures):  # each distinct message once
            print(f"error: {failure}", file=sys.stderr)
        return 1

    hellos = rates["hello"]
    print(f"hello  GET  {HELLO_PATH:<36} {statistics.median(hellos):9.1f} req/s  (median of "
          + ", ".join(f"{r:.1f}" for r in hellos) + ")")
    missed = False
    for kind, label in (("get", "GET "), ("post", "POST")):
        # Round n's page phase sits between hello runs n and n + 1.
        ratios = [rate / ((hellos[n] + hellos[n + 1]) / 2) for n, rate in enumerate(rates[kind])]
        ratio = statistics.median(ratios)
        ok = ratio >= TARGETS[kind]
        missed |= not ok
        print(f"page   {label} {PAGE_PATH:<36} {statistics.median(rates[kind]):9.1f} req/s  "
              f"ratio {ratio:.3f}x (rounds: {', '.join(f'{r:.3f}' for r in ratios)})  "
              f"target >= {TARGETS[kind]:.2f}x  {'PASS' if ok else 'FAIL'}")
    return 2 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
