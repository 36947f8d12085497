"""FHIR read throughput under gunicorn, as a ratio to a hello-world route in the same run.

    cd /work/main && .venv/bin/python bench/fhir_read.py [--seconds 3] [--clients 4] [--rounds 5]

Same harness as bench/pages.py (gunicorn with 2 sync workers, client processes on fresh
connections, rounds of hello / read / hello, median of the per-round ratios). The read is
`GET /fhir/Patient/{id}` with a SMART Backend Services access token (a signed JWT, checked
without a database read), for patients invited through the real
CLI: the read path (token check, one indexed row, the stored bytes) is the same for every type.
Target: >= 0.5x hello. Exit 0 whether met or not (`--strict`: 2 when missed), 1 on errors.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pages import (  # noqa: E402
    HOST,
    SetupError,
    free_port,
    gunicorn,
    prepare_database,
    run_phase,
)

from intake.services import services

TARGET = 0.5


def prepare_reads(clients: int, port: int) -> list[str]:
    """One "path<TAB>token" per client: a patient to read, and a SMART Backend Services access
    token (valid 5 minutes, issued for http://127.0.0.1:PORT, the address the clients use)."""
    from intake import create_app
    from intake.storage import fhir_store
    from tests.smart_client import SmartClient

    links, _fields = prepare_database(clients)
    app = create_app()
    try:
        client = SmartClient("bench")
        client.register(app, Path(os.environ["INTAKE_BENCH_TMP"]))
        token = client.token(app, base_url=f"http://{HOST}:{port}")
        with services(app).sessions() as session:
            patients = fhir_store.patient_ids(session)
        if len(patients) < clients or not token:
            raise SetupError("could not create patients and an API client")
        return [f"/fhir/Patient/{patients[n]}\t{token}" for n in range(clients)]
    finally:
        services(app).engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp:
        port = free_port()
        env = {"DATABASE_URL": f"sqlite:///{Path(tmp) / 'intake.sqlite3'}", "INTAKE_SECRET_KEY": secrets.token_hex(32),
               "INTAKE_BASE_URL": f"http://{HOST}:{port}", "INTAKE_BENCH_TMP": tmp}
        os.environ.update(env)
        log_path = Path(tmp) / "gunicorn.log"
        rates: dict[str, list[float]] = {"hello": [], "fhir": []}
        try:
            reads = prepare_reads(args.clients, port)
            with gunicorn(port, {**os.environ, **env}, log_path):
                print(f"FHIR read benchmark: gunicorn 2 sync workers, {args.clients} clients, "
                      f"{args.seconds:g} s per phase, {os.cpu_count()} CPUs", flush=True)
                for kind in ["hello"] + ["fhir", "hello"] * args.rounds:
                    rate, bad, errors = run_phase(kind, port, reads if kind == "fhir" else [], {}, args.clients,
                                                  args.warmup, args.seconds)
                    if errors or bad:
                        print(f"error: {kind}: {errors or dict(bad)}", file=sys.stderr)
                        return 1
                    rates[kind].append(rate)
                    print(f"  {kind:<5} {rate:9.1f} req/s", flush=True)
        except SetupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    hellos = rates["hello"]
    ratios = [rate / ((hellos[n] + hellos[n + 1]) / 2) for n, rate in enumerate(rates["fhir"])]
    ratio = statistics.median(ratios)
    print(f"hello GET /bench/hello            {statistics.median(hellos):9.1f} req/s")
    print(f"FHIR  GET /fhir/Patient/{{id}}      {statistics.median(rates['fhir']):9.1f} req/s  ratio {ratio:.3f}x "
          f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)})  target >= {TARGET}x  {'PASS' if ratio >= TARGET else 'FAIL'}")
    return 2 if ratio < TARGET and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
