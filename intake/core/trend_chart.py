"""One score's results over time as an inline SVG that tells the truth about the change.

A trend stretched to its own min and max draws 3 -> 4 as steeply as 2 -> 10. Here every chart is
drawn on the instrument's full range (from the Questionnaire, `ScoreScale`), with the cut-off
lines the Questionnaire declares (labelled as it words them; none invented), its bands shaded,
which direction is better written at the top, and each point dated, with its value, on a time
axis (an 8-week gap is twice a 4-week one).

The same SVG goes into the clinician page and the PDF, so it uses only what both WeasyPrint and
browsers draw: presentation attributes (the pages' CSP forbids inline styles), `text`, `line`,
`rect`, `polyline`, `circle`, `polygon`. It is `role="img"` with a text alternative (`aria-label`
and `<title>`) that states every value with its date, the range, the direction and the cut-offs.
Output is deterministic (the PDF is). No Flask: the caller passes plain points and gets Markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from typing import Protocol

from markupsafe import Markup

from intake.core.display import plain_number
from intake.core.score_scale import HIGHER_IS_BETTER, HIGHER_IS_WORSE, ScoreScale

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DIRECTION_WORDS = {HIGHER_IS_BETTER: "higher is better", HIGHER_IS_WORSE: "higher is worse"}
LINE = "#1d4f91"
CUTOFF = "#a3192b"
INK = "#333333"
AXIS = "#6f777b"
BAND_FILLS = ("#eef1f4", "#ffffff")


class Point(Protocol):
    """A dated result (`summary.TrendPoint` is one)."""

    @property
    def when(self) -> datetime | date: ...

    @property
    def value(self) -> float: ...


@dataclass(frozen=True)
class ChartSize:
    """Geometry of one chart size. `full_labels`: band names in a right-hand column and each
    cut-off's label, as the Questionnaire words it, in a legend row under the chart; without,
    the cut-off's value on the axis and a "cut-off" key at the top."""

    width: int
    height: int  # of the plot with its axes; legend rows add to it
    left: int
    right: int
    top: int
    bottom: int
    font: float
    full_labels: bool


COMPACT = ChartSize(width=260, height=104, left=28, right=10, top=20, bottom=18, font=9, full_labels=False)
LARGE = ChartSize(width=640, height=230, left=38, right=130, top=26, bottom=24, font=13, full_labels=True)


def iso_day(when: datetime | date) -> str:
    return when.strftime("%Y-%m-%d")


def short_day(when: datetime | date, with_year: bool) -> str:
    """"12 Oct" (or "12 Oct 2026" when the points span years): English month names, whatever the
    machine's locale, so the SVG is byte-identical everywhere."""
    text = f"{when.day} {MONTHS[when.month - 1]}"
    return f"{text} {when.year}" if with_year else text


def _num(value: float) -> str:
    """A coordinate: one decimal, no "-0.0"."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def _text_width(text: str, font: float) -> float:
    return len(text) * font * 0.6


def description(points: Sequence[Point], scale: ScoreScale, title: str) -> str:
    """The text alternative: what a screen reader says, and what the chart shows, in words."""
    parts = [f"{title}: {len(points)} result{'s' if len(points) != 1 else ''} on its full range "
             f"{plain_number(scale.minimum)} to {plain_number(scale.maximum)}"]
    direction = DIRECTION_WORDS.get(scale.direction or "")
    parts[0] += f", {direction}." if direction else ", no better direction declared."
    readings = []
    for point in points:
        band = scale.band_of(point.value)
        readings.append(f"{iso_day(point.when)}: {plain_number(point.value)}" + (f" ({band.label})" if band else ""))
    if readings:
        parts.append("; ".join(readings) + ".")
    if scale.cutoffs:
        parts.append("Cut-off" + ("s" if len(scale.cutoffs) > 1 else "") + ": "
                     + "; ".join(f"{c.label} (at {plain_number(c.minimum)})" for c in scale.cutoffs) + ".")
    else:
        parts.append("No cut-off declared for this score.")
    return " ".join(parts)


def _labelled(xs: list[float], labels: list[str], size: ChartSize, low: float, high: float) -> list[float | None]:
    """Centre of each date label that fits, or None: the newest is always written, then older ones
    while they do not overlap a written one."""
    centres: list[float | None] = [None] * len(xs)
    taken: list[tuple[float, float]] = []
    for n in range(len(xs) - 1, -1, -1):
        half = _text_width(labels[n], size.font) / 2
        centre = min(max(xs[n], low + half), high - half)
        span = (centre - half - 4, centre + half + 4)
        if all(span[1] <= a or span[0] >= b for a, b in taken):
            centres[n] = centre
            taken.append(span)
    return centres


def _value_baseline(y: float, size: ChartSize, top: float, bottom: float, cut_ys: list[float]) -> float:
    """Where a point's value label sits: above the point, else below it, avoiding cut-off lines."""
    above, below = y - 6, y + size.font + 4

    def clear(baseline: float) -> bool:
        return not any(baseline - size.font <= c <= baseline + 1 for c in cut_ys)

    above_fits = above - size.font >= top - 4
    if above_fits and clear(above):
        return above
    if below <= bottom + size.font and clear(below):
        return below
    return above if above_fits else below


def trend_svg(points: Sequence[Point], scale: ScoreScale, *, title: str | None = None,
              size: ChartSize = COMPACT) -> Markup:
    """The chart of `points` (oldest first) on `scale`; empty Markup when there is no point."""
    if not points:
        return Markup("")
    title = title or scale.title
    w, h = size.width, size.height
    x0, x1 = float(size.left), float(w - size.right)
    y0, y1 = float(size.top), float(h - size.bottom)
    span = scale.maximum - scale.minimum

    def y_of(value: float) -> float:
        clamped = min(max(value, scale.minimum), scale.maximum)
        return y1 - (clamped - scale.minimum) / span * (y1 - y0)

    inset = 10.0  # keeps the first and last points off the axis
    times = [datetime.combine(p.when, datetime.min.time()) if not isinstance(p.when, datetime) else p.when
             for p in points]
    first, last = times[0], times[-1]
    seconds = (last - first).total_seconds()

    def x_of(when: datetime) -> float:
        if seconds <= 0:
            return (x0 + x1) / 2
        return x0 + inset + (when - first).total_seconds() / seconds * (x1 - x0 - 2 * inset)

    alt = description(points, scale, title)
    legend_row = size.font + 7
    total_h = h + (legend_row * len(scale.cutoffs) if size.full_labels else 0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="trend-chart" role="img" width="{w}" height="{total_h}" '
           f'viewBox="0 0 {w} {total_h}" aria-label="{escape(alt)}" font-family="DejaVu Sans, sans-serif" '
           f'font-size="{size.font:g}">',
           f"<title>{escape(alt)}</title>"]
    # bands: shaded stripes, so a point's band shows without reading its number
    for n, band in enumerate(scale.bands):
        top = y_of(band.maximum if band.maximum is not None else scale.maximum)
        bottom = y_of(band.minimum if band.minimum is not None else scale.minimum)
        # whole-number bands (0-4, 5-9) meet half-way between their edges
        if band.maximum is not None and band.maximum < scale.maximum:
            top = y_of(band.maximum + 0.5)
        if band.minimum is not None and band.minimum > scale.minimum:
            bottom = y_of(band.minimum - 0.5)
        out.append(f'<rect class="band" x="{_num(x0)}" y="{_num(top)}" width="{_num(x1 - x0)}" '
                   f'height="{_num(bottom - top)}" fill="{BAND_FILLS[n % 2]}"/>')
        if size.full_labels and band.code and bottom - top >= size.font - 2:
            out.append(f'<text class="band-name" x="{_num(x1 + 6)}" y="{_num((top + bottom) / 2 + size.font / 3)}" '
                       f'fill="{AXIS}" font-size="{size.font - 1:g}">{escape(band.code)}</text>')
    # axes, and the range's ends written on the y axis
    for ax, ay, bx, by in ((x0, y0, x0, y1), (x0, y1, x1, y1)):
        out.append(f'<line x1="{_num(ax)}" y1="{_num(ay)}" x2="{_num(bx)}" y2="{_num(by)}" '
                   f'stroke="{AXIS}" stroke-width="1"/>')
    cut_ys = [y_of(c.minimum) for c in scale.cutoffs]
    for value in (scale.minimum, scale.maximum):
        y = y_of(value)
        if all(abs(y - c) >= size.font for c in cut_ys):
            out.append(f'<text x="{_num(x0 - 4)}" y="{_num(y + size.font / 3)}" text-anchor="end" fill="{INK}">'
                       f"{plain_number(value)}</text>")
    # cut-offs: dashed lines at their value, the value on the axis, the label in the legend
    dash = f'stroke="{CUTOFF}" stroke-width="1.2" stroke-dasharray="5 3"'
    for n, (cutoff, y) in enumerate(zip(scale.cutoffs, cut_ys, strict=True)):
        out.append(f'<line class="cutoff" x1="{_num(x0)}" y1="{_num(y)}" x2="{_num(x1)}" y2="{_num(y)}" {dash} '
                   f'data-value="{plain_number(cutoff.minimum)}"/>')
        out.append(f'<text x="{_num(x0 - 4)}" y="{_num(y + size.font / 3)}" text-anchor="end" fill="{CUTOFF}">'
                   f"{plain_number(cutoff.minimum)}</text>")
        if size.full_labels:
            row_y = h + legend_row * n + size.font
            out.append(f'<line x1="{_num(x0)}" y1="{_num(row_y - size.font / 3)}" x2="{_num(x0 + 22)}" '
                       f'y2="{_num(row_y - size.font / 3)}" {dash}/>')
            out.append(f'<text class="cutoff-label" x="{_num(x0 + 28)}" y="{_num(row_y)}" fill="{CUTOFF}">'
                       f"Cut-off {escape(cutoff.label)}</text>")
    if scale.cutoffs and not size.full_labels:
        key_y = size.font + 2
        out.append(f'<line x1="{_num(x1 - 56)}" y1="{_num(key_y - size.font / 3)}" x2="{_num(x1 - 40)}" '
                   f'y2="{_num(key_y - size.font / 3)}" {dash}/>')
        out.append(f'<text x="{_num(x1)}" y="{_num(key_y)}" text-anchor="end" fill="{CUTOFF}">cut-off</text>')
    direction = DIRECTION_WORDS.get(scale.direction or "")
    if direction:
        out.append(f'<text class="direction" x="{_num(x0)}" y="{_num(size.font + 2)}" fill="{INK}" font-weight="bold">'
                   f"{escape(direction.capitalize())}</text>")
    # the points, joined, each with its value; dates under the axis where they fit
    xs = [x_of(t) for t in times]
    ys = [y_of(p.value) for p in points]
    if len(points) > 1:
        joined = " ".join(f"{_num(x)},{_num(y)}" for x, y in zip(xs, ys, strict=True))
        out.append(f'<polyline points="{joined}" fill="none" stroke="{LINE}" stroke-width="2"/>')
    with_year = first.year != last.year
    labels = [short_day(t, with_year) for t in times]
    for n, centre in enumerate(_labelled(xs, labels, size, 0.0, float(w))):
        out.append(f'<circle cx="{_num(xs[n])}" cy="{_num(ys[n])}" r="3" fill="{LINE}"/>')
        if centre is None:
            continue
        # above the point, unless that would reach the direction line over the plot or sit on a
        # cut-off line (a value drawn through the dashes reads as neither); then below it
        value_y = _value_baseline(ys[n], size, y0, y1, cut_ys)
        out.append(f'<text class="value" x="{_num(xs[n])}" y="{_num(value_y)}" text-anchor="middle" '
                   f'fill="{LINE}" font-weight="bold">{plain_number(points[n].value)}</text>')
        out.append(f'<text class="date" x="{_num(centre)}" y="{_num(h - 5)}" text-anchor="middle" fill="{INK}">'
                   f"{escape(labels[n])}</text>")
    out.append("</svg>")
    return Markup("".join(out))
