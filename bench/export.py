"""Bulk NDJSON export: resources written per second, and memory at 20,000 vs 1,000 resources.

    cd /work/main && .venv/bin/python bench/export.py [--database-url URL] [--small 1000] [--large 20000]

For each size, a fresh database gets that many Observations (copies of a real published one with
distinct ids, inserted directly: the set-up is not timed), then a child process runs the real
export writer (`intake.fhir.bulk_export.write_ndjson`, the code the `$export` job runs) over them and
reports its wall time, its peak RSS, and the peak of Python allocations during the export
(tracemalloc, in a second, untimed pass). Targets: >= 20,000 resources/s at the large size;
peak memory at the large size <= 1.5x the small size. Exit 0 whether met or not (`--strict`: 2),
1 on errors. With `--database-url postgresql+psycopg://...` the rows stream through a
PostgreSQL server-side cursor (the database is emptied first: use a scratch database).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any
from intake.core.fhir_time import utcnow
from intake.services import services
import intake.fhir.bulk_export

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RATE_TARGET = 20_000
MEMORY_TARGET = 1.5

OBSERVATION = {
    "resourceType": "Observation", "status": "final",
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey",
                              "display": "Survey"}]}],
    "code": {"coding": [{"system": "https://intake.example.org/fhir/CodeSystem/intake-items", "code": "PHQ4-TOTAL",
                         "display": "PHQ-4 total score"}, {"system": "http://loinc.org", "code": "70272-0",
                                                           "display": "PHQ-4 total score"}], "text": "PHQ-4 total score"},
    "effectiveDateTime": "2026-11-22T09:00:00Z", "issued": "2026-11-22T09:00:00Z", "valueInteger": 7,
    "interpretation": [{"coding": [{"system": "https://intake.example.org/fhir/CodeSystem/score-bands", "code": "moderate",
                                    "display": "Moderate (6-8)"}], "text": "Moderate (6-8)"}],
    "note": [{"text": "Patient Health Questionnaire-4 (PHQ-4) · PHQ-4 (Kroenke, Spitzer, Williams & Löwe 2009). "
                      "Source: Kroenke K, Spitzer RL, Williams JBW, Löwe B. Psychosomatics 2009;50:613-21."}],
}


def fill(database_url: str, count: int) -> None:
    """Empty the FHIR store and insert `count` Observations (batched, untimed)."""
    from sqlalchemy import delete, insert

    from intake.storage.db import make_engine
    from intake.storage.migrate import upgrade
    from intake.storage.models import FhirResource, FhirToken
    from intake.core.canonical import canonical_json

    upgrade(database_url)
    engine = make_engine(database_url)
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(delete(FhirToken))
        connection.execute(delete(FhirResource))
        for start in range(0, count, 5000):
            rows = []
            for n in range(start, min(count, start + 5000)):
                rid = str(uuid.uuid4())
                body = {**OBSERVATION, "id": rid, "subject": {"reference": f"Patient/p{n % 500}"},
                        "meta": {"versionId": "1", "lastUpdated": now.isoformat().replace("+00:00", "Z")}}
                rows.append({"resource_type": "Observation", "resource_id": rid, "version_id": 1, "last_updated": now,
                             "patient_id": f"p{n % 500}", "resource_json": canonical_json(body)})
            connection.execute(insert(FhirResource), rows)
    engine.dispose()


def export_child(database_url: str, folder: str, traced: bool, results: Any) -> None:
    """Run the export writer once in this fresh process; report time, peak RSS and traced peak."""
    try:
        from intake import create_app
        from intake.fhir import bulk_export

        app = create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": folder, "SECRET_KEY": "bench"})

        if traced:
            tracemalloc.start()
        began = time.perf_counter()
        counts = intake.fhir.bulk_export.write_ndjson(app, Path(folder) / "out", types=["Observation"], since=None)
        elapsed = time.perf_counter() - began
        traced_peak = tracemalloc.get_traced_memory()[1] if traced else 0
        rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        lines = sum(1 for _ in (Path(folder) / "out" / "Observation.ndjson").open(encoding="utf-8"))
        results.put({"count": (counts or {}).get("Observation", 0), "lines": lines, "seconds": elapsed,
                     "rss_mib": rss_kib / 1024, "traced_mib": traced_peak / 2**20})
        services(app).engine.dispose()
    except Exception as exc:  # reported by the parent
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def measure(database_url: str, count: int, traced: bool) -> dict[str, Any]:
    ctx = mp.get_context("spawn")  # a fresh interpreter: peak RSS is this export's alone
    results = ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="intake-export-") as folder:
        child = ctx.Process(target=export_child, args=(database_url, folder, traced, results))
        child.start()
        result = results.get(timeout=600)
        child.join(timeout=60)
    if "error" in result:
        raise RuntimeError(result["error"])
    if result["count"] != count or result["lines"] != count:
        raise RuntimeError(f"exported {result['count']} ({result['lines']} lines), expected {count}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=20_000)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="intake-export-db-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'export.sqlite3'}"
        measured: dict[int, dict[str, Any]] = {}
        try:
            for size in (args.small, args.large):
                fill(url, size)
                timed = measure(url, size, traced=False)
                traced = measure(url, size, traced=True)
                measured[size] = {**timed, "traced_mib": traced["traced_mib"]}
                print(f"  {size:>7} resources: {size / timed['seconds']:>9,.0f} resources/s, peak RSS "
                      f"{timed['rss_mib']:.1f} MiB, Python allocations peak {traced['traced_mib']:.2f} MiB", flush=True)
        except (RuntimeError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    large, small = measured[args.large], measured[args.small]
    rate = args.large / large["seconds"]
    rss_ratio = large["rss_mib"] / small["rss_mib"]
    traced_ratio = large["traced_mib"] / small["traced_mib"] if small["traced_mib"] else float("inf")
    ok_rate, ok_memory = rate >= RATE_TARGET, rss_ratio <= MEMORY_TARGET
    print(f"NDJSON export ({'SQLite' if args.database_url is None else url.split(':', 1)[0]}): {rate:,.0f} resources/s "
          f"at {args.large:,} (target >= {RATE_TARGET:,})  {'PASS' if ok_rate else 'FAIL'}")
    print(f"memory {args.large:,} vs {args.small:,}: peak RSS {rss_ratio:.2f}x (target <= {MEMORY_TARGET}x)  "
          f"{'PASS' if ok_memory else 'FAIL'}; Python allocations during the export {traced_ratio:.2f}x")
    return 2 if args.strict and not (ok_rate and ok_memory) else 0


if __name__ == "__main__":
    sys.exit(main())
