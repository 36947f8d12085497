"""Scoring a full five-domain intake, as a ratio to fhir.resources validation of the same responses.

    cd /work/main && .venv/bin/python bench/scoring.py [--repeat 7] [--number 0] [--strict] [--profile 25]

What it does, in-process, with no database and no app:

1. loads the catalog from `forms/` (`load_catalog`) and builds a realistic completed intake with
   `build_response`: all five questionnaires, every page answered with mid-range answers (choice
   scales at their middle option, so the PHQ-4 subscales are 4 and 4 and the reflex PHQ-9 and
   GAD-7 pages are on; some yes answers with their follow-up questions; numbers mid-range). Each
   response must validate without errors (`validate`) or the run stops with exit 1: a stale
   benchmark after a form change should not measure a half-empty intake;
2. times, timeit-style (best of `--repeat` runs of `--number` loops; 0 = calibrate to ~0.2 s):
   (a) `score_intake(pairs, Context(...))` for the whole intake, and
   (b) `QuestionnaireResponse.model_validate(response)` (fhir.resources R4B, from
       `intake.core.fhir_models`) for each of the five responses once;
3. prints both, per domain too, and the ratios:
   * primary (the target): scoring the intake / validating its five responses once each;
   * secondary: scoring the intake / validating one response (the per-response average);
   PASS when the primary ratio is <= 1.0x.

Exit 0 whether the target is met or not (`--strict`: 2 when missed); 1 when the set-up fails.
`--profile N` also prints cProfile's top N functions of `score_intake` by cumulative and by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from intake.core.answers import build_response
from intake.core.catalog import Catalog, load_catalog
from intake.core.fhir_models import QuestionnaireResponse
from intake.core.items import Form, Item
from intake.core.scoring import Context, Result, score_intake
from intake.core.validation import has_errors, validate

TARGET = 1.0
DOMAINS = ("digestive", "neuropathy", "autoimmune", "diet", "stress")
SUBJECT = "Patient/bench"
AUTHORED = "2026-11-20T09:30:00Z"
BIRTH_DATE = "1968-04-02"
YES, NO = "LA33-6", "LA32-8"

Answers = dict[str, list[dict[str, Any]]]

# Answers that differ from the generic mid-range fill, so yes/no branches and their follow-ups
# are exercised the way a real patient's intake would (linkIds the forms no longer have are ignored).
OVERRIDES: dict[str, Any] = {
    # digestive: no alarm features; weekly pain with an IBS-like pattern; onset date; stool mix
    "ibs-pain-weekly": True, "ibs-pain-defecation": True, "ibs-pain-frequency": True,
    "ibs-pain-form": False, "gi-af5": "2023-06",
    "bsfs-hard-pct": 20, "bsfs-loose-pct": 30,
    # autoimmune: one personal diagnosis with its year, two family histories
    "ai-self-hashimoto": YES, "ai-self-hashimoto-year": "2012",
    "ai-family-coeliac": ["PRN", "SIB"], "ai-family-coeliac-age": 38,
    "ai-family-psoriasis": ["GRPRN"], "ai-family-psoriasis-age": 60,
    "ai-family-lupus": ["unsure"],
    # diet: a middling Mediterranean pattern
    "medas-1": True, "medas-13": True, "medas-2": 2.0, "medas-3": 1.5, "medas-4": 2.0, "medas-5": 1.0,
    "medas-6": 0.5, "medas-7": 1.0, "medas-8": 3, "medas-9": 2, "medas-10": 2, "medas-11": 3,
    "medas-12": 2, "medas-14": 1, "diet-wholegrain": 2, "diet-fermented": 3, "diet-processed": 2,
    "diet-omega3-supplement": False, "diet-b12-risk": ["acid-reducer"],
    "diet-gluten-free": True, "diet-gluten-free-since": "2021-03",
}


def _bound(item: Item, which: str) -> float | None:
    limit = item.min_value if which == "min" else item.max_value
    if not limit:
        return None
    value = next(iter(limit.values()))
    return value.get("value") if isinstance(value, dict) else value


def _option(item: Item, code: str) -> dict[str, Any]:
    for option in item.options:
        coding = option.get("valueCoding") or {}
        if coding.get("code") == code:
            return {"valueCoding": coding}
    raise SystemExit(f"error: bench answer {code!r} is not an option of {item.link_id}; update bench/scoring.py")


def _mid(item: Item) -> list[dict[str, Any]]:
    """A mid-range answer to one question, from its type, options and bounds."""
    if item.options:
        if item.link_id.startswith("mnsi-") and item.link_id[5:].isdigit():  # MNSI: alternate yes / no
            return [_option(item, YES if int(item.link_id[5:]) % 2 else NO)]
        return [{"valueCoding": item.options[len(item.options) // 2]["valueCoding"]}]
    if item.type == "boolean":
        return [{"valueBoolean": False}]
    if item.type in ("integer", "decimal"):
        low, high = _bound(item, "min"), _bound(item, "max")
        value = (low + high) / 2 if low is not None and high is not None else (low or 0) + 2
        return [{"valueInteger": int(value)} if item.type == "integer" else {"valueDecimal": float(value)}]
    if item.type == "date":
        return [{"valueDate": "2023-06" if item.entry_format == "YYYY-MM" else "2023-06-15"}]
    if item.type in ("string", "text"):
        return [{"valueString": "About the same as last year."}]
    return []


def _override(item: Item, value: Any) -> list[dict[str, Any]]:
    values = value if isinstance(value, list) else [value]
    if item.options:
        return [_option(item, str(v)) for v in values]
    key = {"boolean": "valueBoolean", "integer": "valueInteger", "decimal": "valueDecimal",
           "date": "valueDate", "string": "valueString", "text": "valueString"}[item.type]
    return [{key: v} for v in values]


def answers_for(form: Form) -> Answers:
    answers: Answers = {}
    for item in form.walk():
        if not item.is_question or item.read_only:
            continue
        value = _override(item, OVERRIDES[item.link_id]) if item.link_id in OVERRIDES else _mid(item)
        if value:
            answers[item.link_id] = value
    return answers


def build_intake(catalog: Catalog) -> list[tuple[Form, dict[str, Any]]]:
    pairs = []
    for n, key in enumerate(DOMAINS):
        form = catalog.by_key.get(key)
        if form is None:
            raise SystemExit(f"error: the catalog has no {key!r} questionnaire")
        response = build_response(form, answers_for(form), status="completed", subject=SUBJECT,
                                  authored=AUTHORED, response_id=f"bench-{n}")
        issues = validate(form, response)
        if has_errors(issues):
            first = next(i for i in issues if i.severity in ("error", "fatal"))
            raise SystemExit(f"error: the bench {key} response does not validate: {first.as_fhir()['diagnostics']}")
        pairs.append((form, response))
    stress = pairs[DOMAINS.index("stress")][1]
    links = {i["linkId"] for i in stress.get("item") or []}
    if not {"stress-phq9", "stress-gad7"} <= links:
        raise SystemExit("error: the bench stress response does not reach the reflex PHQ-9 / GAD-7 pages")
    return pairs


def best(stmt: Callable[[], Any], repeat: int, number: int) -> tuple[float, int]:
    """Seconds per call (best of `repeat` runs of `number` calls) and the `number` used."""
    timer = timeit.Timer(stmt)
    if number <= 0:
        number, _ = timer.autorange()
        number = max(1, number)
    return min(timer.repeat(repeat=repeat, number=number)) / number, number


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f} ms"


def count(result: Result) -> str:
    return f"{len(result.scores)} scores, {len(result.flags)} flags, {len(result.notes)} notes"


def profile(pairs: list[tuple[Form, dict[str, Any]]], context: Context, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(50):
        score_intake(pairs, context)
    profiler.disable()
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order)
        stats.print_stats(top)
        print(f"\n--- cProfile: score_intake x 50, top {top} by {order} ---")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:20000])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="timing runs; the best is kept (default 7)")
    parser.add_argument("--number", type=int, default=0, help="calls per run (default 0: calibrate to ~0.2 s)")
    parser.add_argument("--strict", action="store_true", help="exit 2 when the target is missed")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print cProfile's top N of score_intake")
    args = parser.parse_args(argv)

    catalog = load_catalog(ROOT / "forms")
    pairs = build_intake(catalog)
    context = Context(birth_date=BIRTH_DATE, gi_onset_age_threshold=50)
    result = score_intake(pairs, context)  # warm-up, and a check that it runs

    answered = sum(1 for _, r in pairs for _ in _answered(r.get("item") or []))
    print(f"intake: {len(pairs)} responses, {answered} answered items; result: {count(result)}")
    print(f"timing: best of {args.repeat} runs (timeit; gc off while timing)\n")

    score_time, score_n = best(lambda: score_intake(pairs, context), args.repeat, args.number)
    responses = [r for _, r in pairs]

    def validate_all() -> None:
        for response in responses:
            QuestionnaireResponse.model_validate(response)

    validate_time, validate_n = best(validate_all, args.repeat, args.number)

    print(f"{'':28} {'score_intake':>12}   {'model_validate':>14}")
    for form, response in pairs:
        one_score, _ = best(lambda f=form, r=response: score_intake([(f, r)], context), args.repeat, args.number)
        one_valid, _ = best(lambda r=response: QuestionnaireResponse.model_validate(r), args.repeat, args.number)
        print(f"  {form.key:<26} {ms(one_score)}   {ms(one_valid):>14}   ({one_score / one_valid:5.1f}x)")
    print(f"  {'whole intake':<26} {ms(score_time)}   {ms(validate_time):>14}   "
          f"(loops per run: {score_n} / {validate_n})")

    primary = score_time / validate_time
    secondary = score_time / (validate_time / len(responses))
    verdict = "PASS" if primary <= TARGET else "FAIL"
    print()
    print(f"ratio, scoring the intake / validating its {len(responses)} responses once each: "
          f"{primary:6.2f}x  (target <= {TARGET:.1f}x)  {verdict}")
    print(f"ratio, scoring the intake / validating one response (average):      {secondary:6.2f}x  (for reference)")

    if args.profile:
        profile(pairs, context, args.profile)
    return 2 if args.strict and verdict == "FAIL" else 0


def _answered(items: list[dict[str, Any]]) -> Any:
    for item in items:
        if item.get("answer"):
            yield item
        yield from _answered(item.get("item") or [])
        for answer in item.get("answer") or []:
            yield from _answered(answer.get("item") or [])


if __name__ == "__main__":
    sys.exit(main())
