"""Clinician PDF render time: WeasyPrint vs a warm headless Chromium printing the same HTML.

    cd /work/main && .venv/bin/python bench/pdf.py [--repeat 7]

Both engines get the same summary HTML (a five-questionnaire intake with flags, scores, a trend
and every answer; the stylesheet inlined so Chromium needs no file access). Chromium is Debian's
/usr/bin/chromium driven by Playwright (`pip install -e '.[bench]'`; no browser is downloaded),
launched once and warmed up, one page reused: only `set_content` + `pdf()` is timed. WeasyPrint
is timed on `intake.pdf.html_to_pdf` of the same string without attachments (the same document, no PDF/A extras
beyond what the service always does). Prints the medians and the ratio WeasyPrint/Chromium
(target <= 1.0x: report only). Exit 1 when Chromium or Playwright is missing, or on errors.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TARGET = 1.0


def timed(function, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("error: playwright is not installed: .venv/bin/pip install -e '.[bench]'", file=sys.stderr)
        return 1
    if not shutil.which(CHROMIUM):
        print(f"error: {CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 1

    from intake.pdf import html_to_pdf, render_summary_html
    from tests.test_pdf import COMPLETED, IDENTIFIER, make_summary

    summary = make_summary()
    # One HTML for both engines: the stylesheet inlined (Chromium's set_content cannot read file: URLs).
    inline = render_summary_html(summary, patient_identifier=IDENTIFIER, inline_css=True)
    sizes: dict[str, int] = {}

    def weasy() -> None:
        sizes["weasyprint"] = len(html_to_pdf(inline, created=COMPLETED))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()

            def chrome() -> None:
                page.set_content(inline, wait_until="load")
                sizes["chromium"] = len(page.pdf(format="A4", print_background=True, prefer_css_page_size=True))

            timed(chrome, 2)  # warm-up: fonts, the renderer process, the first layout
            timed(weasy, 2)
            chromium_times = timed(chrome, args.repeat)
            weasy_times = timed(weasy, args.repeat)
        finally:
            browser.close()
    weasy_median, chrome_median = statistics.median(weasy_times), statistics.median(chromium_times)
    ratio = weasy_median / chrome_median
    print(f"WeasyPrint       {weasy_median * 1000:8.1f} ms  ({sizes['weasyprint']:,} bytes; runs "
          + ", ".join(f"{t * 1000:.0f}" for t in weasy_times) + ")")
    print(f"Chromium (warm)  {chrome_median * 1000:8.1f} ms  ({sizes['chromium']:,} bytes; runs "
          + ", ".join(f"{t * 1000:.0f}" for t in chromium_times) + ")")
    print(f"ratio WeasyPrint/Chromium {ratio:.2f}x  target <= {TARGET:.1f}x  {'PASS' if ratio <= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
