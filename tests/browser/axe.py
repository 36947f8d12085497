"""axe-core (node_modules/axe-core, pinned in package.json) run inside the page, and its report.

The app's Content-Security-Policy allows no inline script, so pages checked with axe come from a
context made with bypass_csp=True.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tests.browser.support import AXE_JS, AXE_RESULTS, OUTPUT

TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
IMPACTS = ["critical", "serious", "moderate", "minor"]
BLOCKING = {"critical", "serious"}

_RUN = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), html: n.html.slice(0, 300),
                              summary: (n.failureSummary || '').slice(0, 500)}))
  }));
}"""


def run_axe(page: Any, page_type: str, lang: str) -> dict[str, Any]:
    """Inject axe into the page, run the WCAG 2.1 A/AA + best-practice rules, record the result."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_JS))
    violations = page.evaluate(_RUN, TAGS)
    entry = {
        "page": page_type,
        "lang": lang,
        "url": page.url.split("?")[0],
        "html_lang": page.evaluate("document.documentElement.lang"),
        "counts": {impact: sum(len(v["nodes"]) for v in violations if v["impact"] == impact) for impact in IMPACTS},
        "rules": {impact: sorted({v["id"] for v in violations if v["impact"] == impact}) for impact in IMPACTS},
        "violations": violations,
    }
    AXE_RESULTS.append(entry)
    return entry


def blocking(entry: dict[str, Any]) -> list[str]:
    """Readable lines for each serious or critical violation of one page."""
    out = []
    for v in entry["violations"]:
        if v["impact"] in BLOCKING:
            for node in v["nodes"]:
                out.append(f"{entry['page']} [{entry['lang']}] {v['impact']} {v['id']}: {node['target']} "
                           f"{node['html'][:120]!r} -- {node['summary'][:200]}")
    return out


def summary_text(results: list[dict[str, Any]]) -> str:
    rows = [f"{'page':<34} {'lang':<4} {'crit':>4} {'ser':>4} {'mod':>4} {'min':>4}  rules (moderate/minor)"]
    for e in results:
        c = e["counts"]
        rules = sorted(
            set(e["rules"]["critical"] + e["rules"]["serious"] + e["rules"]["moderate"] + e["rules"]["minor"])
        )
        rows.append(f"{e['page']:<34} {e['lang']:<4} {c['critical']:>4} {c['serious']:>4} {c['moderate']:>4} "
                    f"{c['minor']:>4}  {', '.join(rules) or '-'}")
    totals: Counter[str] = Counter()
    for e in results:
        totals.update(e["counts"])
    rows.append(f"{len(results)} page checks; nodes by impact: "
                + ", ".join(f"{impact} {totals[impact]}" for impact in IMPACTS))
    return "\n".join(rows) + "\n"


def write_report(results: list[dict[str, Any]]) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "axe-report.json").write_text(json.dumps(
        {"tags": TAGS, "pages": results}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (OUTPUT / "axe-summary.txt").write_text(summary_text(results), encoding="utf-8")


def write_part(results: list[dict[str, Any]], worker: str) -> None:
    """One xdist worker's axe results, for `join_parts` in the controller."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / f"axe-part-{worker}.json").write_text(json.dumps(results, ensure_ascii=False), encoding="utf-8")


def join_parts(since: float) -> list[dict[str, Any]]:
    """The results the workers wrote since `since` (each part is removed once read)."""
    results: list[dict[str, Any]] = []
    for part in sorted(OUTPUT.glob("axe-part-*.json")):
        if part.stat().st_mtime >= since:
            results += json.loads(part.read_text(encoding="utf-8"))
        part.unlink(missing_ok=True)
    return results
