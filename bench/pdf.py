"""Clinician PDF render time: WeasyPrint vs a warm headless Chromium printing the same HTML.

    cd /work/main && .venv/bin/python bench/pdf.py [--repeat 7] [--profile] [--extra-css CSS]

Both engines get the same summary (a five-questionnaire intake with flags, scores, a trend and
every answer) and the same stylesheet. Chromium is Debian's /usr/bin/chromium driven by Playwright
(`pip install -e '.[bench]'`; no browser is downloaded), launched once and warmed up, one page
reused: only `set_content` + `pdf()` is timed, on the HTML with `static/pdf.css` inlined
(set_content cannot read file: URLs). WeasyPrint is timed as the service renders: `html_to_pdf`
of `render_summary_html` (no <style>: `intake.pdf` applies the stylesheet it parsed at start-up),
tagged PDF/A-3b, without attachments. The runs alternate between the engines, so load from other
processes on the machine falls on both. Prints the medians and the ratio WeasyPrint/Chromium
(target <= 2.0x, issue 17: report only). `--profile` then profiles the WeasyPrint renders
(cProfile) and prints the share of each phase. `--extra-css` adds rules for both engines, e.g.
`'.answers, h3 { display: none }'` to see what part of the document costs what (docs/benchmarks.md).
Exit 1 when Chromium or Playwright is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import intake.pdf  # noqa: E402 (the project root is on the path only from the line above)
from intake.pdf import html_to_pdf, render_summary_html  # noqa: E402
from tests.test_pdf import COMPLETED, IDENTIFIER, make_summary  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TARGET = 2.0
#: WeasyPrint's phases, as (label, module path suffix, function) in cProfile's cumulative times.
PHASES = [
    ("parse the HTML (tinyhtml5)", "tinyhtml5/parser.py", "parse"),
    ("CSS cascade", "weasyprint/css/__init__.py", "get_all_computed_styles"),
    ("build the boxes", "weasyprint/formatting_structure/build.py", "build_formatting_structure"),
    ("layout (pages, tables, lines)", "weasyprint/layout/__init__.py", "layout_document"),
    ("  of which page margin boxes", "weasyprint/layout/page.py", "make_margin_boxes"),
    ("  of which line breaking (Pango)", "weasyprint/text/line_break.py", "split_first_line"),
    ("draw the pages", "weasyprint/document.py", "paint"),
    ("  of which text", "weasyprint/draw/text.py", "draw_text"),
    ("PDF tags (structure tree)", "weasyprint/pdf/tags.py", "add_tags"),
    ("serialise + compress (pydyf)", "pydyf/__init__.py", "write"),
]


def alternate(*functions: Callable[[], None], repeat: int) -> list[list[float]]:
    """Time each function `repeat` times, rotating which goes first in each round (load from other
    processes falls on all of them)."""
    times: list[list[float]] = [[] for _ in functions]
    for n in range(repeat):
        for k in range(len(functions)):
            index = (n + k) % len(functions)
            began = time.perf_counter()
            functions[index]()
            times[index].append(time.perf_counter() - began)
    return times


def profile(function: Callable[[], None], repeat: int) -> None:
    """Print each phase's share of `repeat` profiled renders (profiling inflates Python-heavy phases)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeat):
        function()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(row[3] for key, row in stats.items() if key[2] == "html_to_pdf")
    print(f"profile of {repeat} WeasyPrint renders (cProfile, cumulative; {total / repeat * 1000:.0f} ms each "
          "under the profiler):")
    for label, path, name in PHASES:
        # The outermost of same-named functions (tinyhtml5 has a `parse` that calls `HTMLParser.parse`).
        cumulative = max((row[3] for key, row in stats.items() if key[0].endswith(path) and key[2] == name), default=0)
        print(f"  {label:34s} {cumulative / total:6.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="profile the WeasyPrint renders afterwards")
    parser.add_argument("--extra-css", default="", help="CSS added for both engines (after the stylesheet)")
    parser.add_argument("--compare-gc", action="store_true",
                        help="also time WeasyPrint with the garbage collector running during the render (as "
                             "before intake.pdf.gc_paused), in the same rounds")
    args = parser.parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("error: playwright is not installed: .venv/bin/pip install -e '.[bench]'", file=sys.stderr)
        return 1
    if not shutil.which(CHROMIUM):
        print(f"error: {CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 1

    summary = make_summary()
    extra = f"<style>{args.extra_css}</style></head>" if args.extra_css else "</head>"
    served = render_summary_html(summary, patient_identifier=IDENTIFIER).replace("</head>", extra, 1)
    inline = render_summary_html(summary, patient_identifier=IDENTIFIER, inline_css=True).replace("</head>", extra, 1)
    sizes: dict[str, int] = {}

    def weasy() -> None:
        sizes["weasyprint"] = len(html_to_pdf(served, created=COMPLETED))

    def weasy_collecting() -> None:
        paused, intake.pdf.gc_paused = intake.pdf.gc_paused, contextlib.nullcontext  # type: ignore[assignment]
        try:
            sizes["weasyprint-gc"] = len(html_to_pdf(served, created=COMPLETED))
        finally:
            intake.pdf.gc_paused = paused

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()

            def chrome() -> None:
                page.set_content(inline, wait_until="load")
                sizes["chromium"] = len(page.pdf(format="A4", print_background=True, prefer_css_page_size=True))

            engines = [chrome, weasy, weasy_collecting] if args.compare_gc else [chrome, weasy]
            alternate(*engines, repeat=2)  # warm-up: fonts, the renderer process, the first layout, the stylesheet
            chromium_times, weasy_times, *collecting = alternate(*engines, repeat=args.repeat)
        finally:
            browser.close()
    weasy_median, chrome_median = statistics.median(weasy_times), statistics.median(chromium_times)
    ratio = weasy_median / chrome_median
    print(f"WeasyPrint       {weasy_median * 1000:8.1f} ms  ({sizes['weasyprint']:,} bytes; runs "
          + ", ".join(f"{t * 1000:.0f}" for t in weasy_times) + ")")
    print(f"Chromium (warm)  {chrome_median * 1000:8.1f} ms  ({sizes['chromium']:,} bytes; runs "
          + ", ".join(f"{t * 1000:.0f}" for t in chromium_times) + ")")
    print(f"ratio WeasyPrint/Chromium {ratio:.2f}x  target <= {TARGET:.1f}x  {'PASS' if ratio <= TARGET else 'MISSED'}")
    if collecting:
        before = statistics.median(collecting[0])
        print(f"WeasyPrint, collector running (before gc_paused) {before * 1000:8.1f} ms, ratio "
              f"{before / chrome_median:.2f}x; paused/running {weasy_median / before:.2f}; runs "
              + ", ".join(f"{t * 1000:.0f}" for t in collecting[0]))
    if args.profile:
        profile(weasy, 3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
