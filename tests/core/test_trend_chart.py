"""The trend chart tells the truth: full range, cut-offs at their value, direction, dated points."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from weasyprint import HTML

from intake.core.catalog import Catalog
from intake.core.score_scale import HIGHER_IS_WORSE, BandRange, Cutoff, ScoreScale, score_scales
from intake.core.trend_chart import COMPACT, LARGE, ChartSize, trend_svg

SVG = "{http://www.w3.org/2000/svg}"
START = datetime(2026, 9, 14, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class P:
    when: datetime | date
    value: float


def points(*values: float, weeks: int = 4) -> list[P]:
    return [P(START + timedelta(weeks=weeks * n), v) for n, v in enumerate(values)]


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def circles(svg: ET.Element) -> list[tuple[float, float]]:
    return [(float(c.get("cx", "")), float(c.get("cy", ""))) for c in svg.iter(SVG + "circle")]


def texts(svg: ET.Element, cls: str | None = None) -> list[str]:
    return [t.text or "" for t in svg.iter(SVG + "text") if cls is None or t.get("class") == cls]


def plot_y(size: ChartSize, scale: ScoreScale, value: float) -> float:
    """Where a value must sit: the plot's bottom is the range's minimum, its top the maximum."""
    bottom, top = size.height - size.bottom, size.top
    return bottom - (value - scale.minimum) / (scale.maximum - scale.minimum) * (bottom - top)


@pytest.fixture(scope="module")
def scales(catalog: Catalog) -> dict[str, ScoreScale]:
    return score_scales(catalog)


def test_the_same_change_draws_in_proportion_to_the_instruments_range(scales: dict[str, ScoreScale]) -> None:
    phq9 = scales["phq9"]
    (_, a3), (_, a4) = circles(parse(trend_svg(points(3, 4), phq9)))
    (_, b2), (_, b10) = circles(parse(trend_svg(points(2, 10), phq9)))
    # the old sparkline drew both as the same full-height diagonal; now 1 point is 1/8 of 8 points
    assert a3 - a4 == pytest.approx((b2 - b10) / 8, abs=0.15)
    assert a3 - a4 == pytest.approx((COMPACT.height - COMPACT.top - COMPACT.bottom) / 27, abs=0.15)
    assert (a3, a4, b2, b10) == pytest.approx([plot_y(COMPACT, phq9, v) for v in (3, 4, 2, 10)], abs=0.05)
    # and 3 -> 4 on a 0-6 subscale climbs 27/6 times as far as on the 0-27 PHQ-9
    (_, c3), (_, c4) = circles(parse(trend_svg(points(3, 4), scales["phq4-depression"])))
    assert c3 - c4 == pytest.approx((a3 - a4) * 27 / 6, abs=0.3)


def test_cut_off_lines_sit_at_their_value_labelled_as_the_questionnaire_words_them(
        scales: dict[str, ScoreScale]) -> None:
    mnsi = scales["mnsi"]
    for size in (COMPACT, LARGE):
        svg = parse(trend_svg(points(2, 5, 8), mnsi, size=size))
        lines = [e for e in svg.iter(SVG + "line") if e.get("class") == "cutoff"]
        assert [e.get("data-value") for e in lines] == ["4", "7"]
        for line, value in zip(lines, (4, 7), strict=True):
            assert float(line.get("y1", "")) == pytest.approx(plot_y(size, mnsi, value), abs=0.05)
            assert line.get("y1") == line.get("y2") and line.get("stroke-dasharray")
        assert {"4", "7"} <= set(texts(svg))  # the values on the axis
    assert texts(parse(trend_svg(points(2, 5), mnsi, size=LARGE)), "cutoff-label") == [
        "Cut-off ≥4 possible neuropathy (Herman 2012, sensitive)", "Cut-off ≥7 traditional threshold"]
    # PHQ-9 declares no threshold (bands only): no line is invented
    phq9 = parse(trend_svg(points(12, 15), scales["phq9"]))
    assert not [e for e in phq9.iter(SVG + "line") if e.get("class") == "cutoff"]
    assert "No cut-off declared for this score." in phq9.get("aria-label", "")
    assert len([e for e in phq9.iter(SVG + "rect") if e.get("class") == "band"]) == 5


def test_direction_is_labelled(scales: dict[str, ScoreScale]) -> None:
    assert texts(parse(trend_svg(points(8, 10), scales["medas"])), "direction") == ["Higher is better"]
    assert texts(parse(trend_svg(points(8, 10), scales["gad7"])), "direction") == ["Higher is worse"]
    assert texts(parse(trend_svg(points(8, 10), scales["phq9"])), "direction") == ["Higher is worse"]
    count = parse(trend_svg(points(1, 2), scales["ai-personal"]))
    assert texts(count, "direction") == [] and "no better direction declared" in count.get("aria-label", "")


def test_the_text_alternative_states_values_dates_range_and_cut_offs(scales: dict[str, ScoreScale]) -> None:
    svg = parse(trend_svg(points(3, 5), scales["mnsi"], title="MNSI Part A"))
    alt = svg.get("aria-label", "")
    assert svg.get("role") == "img" and svg.findtext(SVG + "title") == alt
    assert alt == ("MNSI Part A: 2 results on its full range 0 to 13, higher is worse. 2026-09-14: 3; 2026-10-12: 5. "
                   "Cut-offs: ≥4 possible neuropathy (Herman 2012, sensitive) (at 4); ≥7 traditional threshold (at 7).")
    assert "2026-09-14: 15 (Moderately severe (15-19))" in parse(trend_svg(points(15), scales["phq9"])).get(
        "aria-label", "")


def test_points_are_dated_and_placed_in_time(scales: dict[str, ScoreScale]) -> None:
    when = [START, START + timedelta(weeks=4), START + timedelta(weeks=12)]
    svg = parse(trend_svg([P(t, v) for t, v in zip(when, (3, 4, 5), strict=True)], scales["mnsi"], size=LARGE))
    xs = [x for x, _ in circles(svg)]
    assert xs[2] - xs[1] == pytest.approx(2 * (xs[1] - xs[0]), abs=0.15)  # 8 weeks is twice 4 weeks
    assert texts(svg, "date") == ["14 Sep", "12 Oct", "7 Dec"]
    assert texts(svg, "value") == ["3", "4", "5"]
    across = parse(trend_svg([P(date(2025, 12, 1), 3), P(date(2026, 1, 5), 4)], scales["mnsi"]))
    assert texts(across, "date") == ["1 Dec 2025", "5 Jan 2026"]


def test_crowded_dates_are_thinned_never_overlapping_the_newest_kept(scales: dict[str, ScoreScale]) -> None:
    svg = parse(trend_svg(points(*range(12), weeks=1), scales["pss10"]))
    assert len(circles(svg)) == 12  # every point drawn
    dates = [t for t in svg.iter(SVG + "text") if t.get("class") == "date"]
    assert 1 < len(dates) < 12 and dates[-1].text == "30 Nov"  # the newest is always written
    centres = sorted(float(t.get("x", "")) for t in dates)
    assert all(b - a >= 6 * 0.6 * COMPACT.font for a, b in pairwise(centres))


def test_one_point_sits_mid_chart_and_none_draws_nothing(scales: dict[str, ScoreScale]) -> None:
    [(x, y)] = circles(parse(trend_svg(points(6), scales["gad7"])))
    assert x == pytest.approx((COMPACT.left + COMPACT.width - COMPACT.right) / 2)
    assert y == pytest.approx(plot_y(COMPACT, scales["gad7"], 6), abs=0.05)
    assert trend_svg([], scales["gad7"]) == ""


def test_text_is_escaped_and_values_outside_the_range_are_kept_on_the_chart() -> None:
    scale = ScoreScale(id="x", title="x", minimum=0, maximum=10, direction=HIGHER_IS_WORSE,
                       cutoffs=(Cutoff("c", 5, '<b>"&\''),),
                       bands=(BandRange(0, 10, "<i>", "<i> label", True),))
    markup = trend_svg(points(-3, 12), scale, title='<script>alert("x")</script>', size=LARGE)
    assert "<script" not in markup and "<b>" not in markup and "<i>" not in markup
    svg = parse(markup)  # well-formed: every text escaped
    assert '<script>alert("x")</script>' in svg.get("aria-label", "")
    assert "Cut-off <b>\"&'" in texts(svg, "cutoff-label")
    ys = [y for _, y in circles(svg)]
    assert ys == pytest.approx([plot_y(LARGE, scale, 0), plot_y(LARGE, scale, 10)], abs=0.05)
    assert texts(svg, "value") == ["-3", "12"]  # clamped in place, the true value written


def test_the_chart_is_deterministic(scales: dict[str, ScoreScale]) -> None:
    assert trend_svg(points(3, 9), scales["phq9"]) == trend_svg(points(3, 9), scales["phq9"])


@pytest.mark.pdf
def test_weasyprint_draws_the_chart_with_its_words(scales: dict[str, ScoreScale], tmp_path) -> None:
    page = f"<html><body>{trend_svg(points(3, 5, 8), scales['mnsi'], size=LARGE)}</body></html>"
    pdf = tmp_path / "chart.pdf"
    HTML(string=page).write_pdf(pdf)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for words in ("Higher is worse", "Cut-off ≥4 possible neuropathy", "14 Sep", "9 Nov"):
        assert words in text


def test_a_value_label_never_sits_on_a_cut_off_line(scales: dict[str, ScoreScale]) -> None:
    """2 just under the GAD-2 cut-off of 3: its label goes below the point, off the dashes."""
    anxiety = scales["phq4-anxiety"]
    svg = parse(trend_svg(points(2, 6), anxiety))
    cut = next(float(line.get("y1", "")) for line in svg.iter(SVG + "line") if line.get("class") == "cutoff")
    (_, y2), _ = circles(svg)
    labels = [float(t.get("y", "")) for t in svg.iter(SVG + "text") if t.get("class") == "value"]
    assert labels[0] > y2  # below its point
    for baseline in labels:
        assert not baseline - COMPACT.font <= cut <= baseline + 1
