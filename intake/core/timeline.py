"""A patient's scores over time, and which intakes are follow-ups: the view models of the clinician's
timeline page and of the follow-up mark on the intake list.

The seeds' use case is monitoring gut and neuropathy symptoms over 8-12 weeks: a clinician wants
each instrument's totals side by side by date, with their bands, and one chart per instrument on
its full range (`intake.core.trend_chart`). Columns are the completed, scored intakes, oldest
first; the others (not started, in progress) are listed with their status, never as zeros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from markupsafe import Markup

from intake.core.display import plain_number
from intake.core.score_scale import Cutoff, ScoreScale
from intake.core.trend_chart import COMPACT, LARGE, trend_svg


@dataclass(frozen=True)
class FollowUp:
    """This intake is the patient's `number`-th; their last complete one was on `last`."""

    number: int
    last: datetime


def follow_up(intake_id: str, completed_at: datetime | None,
              completed: Sequence[tuple[datetime, str]]) -> FollowUp | None:
    """The follow-up mark of an intake, from the patient's completed intakes (completed_at, id):
    None when there is no complete intake before it (before its completion; for an intake not
    completed, any)."""
    earlier = [when for when, other in completed
               if other != intake_id and (completed_at is None or when < completed_at)]
    return FollowUp(number=len(earlier) + 1, last=max(earlier)) if earlier else None


@dataclass(frozen=True)
class Visit:
    """One intake as the timeline lists it."""

    intake_id: str
    status: str
    created_at: datetime
    completed_at: datetime | None
    appointment_at: datetime | None
    scored: bool


@dataclass(frozen=True)
class Cell:
    """One score at one visit: its total (None when incomplete), band, and the cut-offs it meets."""

    value: float | None
    complete: bool
    band: str | None
    met: tuple[Cutoff, ...] = ()

    @property
    def value_text(self) -> str:
        return plain_number(self.value)


@dataclass(frozen=True)
class TrendPoint:
    when: datetime
    value: float


@dataclass
class ScoreLine:
    """One score across the visits: a cell per column (None: not administered that time)."""

    id: str
    title: str
    maximum: float | None
    cells: list[Cell | None]
    points: list[TrendPoint] = field(default_factory=list)
    chart: Markup = field(default_factory=Markup)  # LARGE, with the cut-offs' and bands' words
    small_chart: Markup = field(default_factory=Markup)  # COMPACT, for a phone's width

    @property
    def maximum_text(self) -> str:
        return plain_number(self.maximum)


@dataclass
class Timeline:
    columns: list[Visit]  # completed and scored, oldest first
    lines: list[ScoreLine]
    others: list[Visit]  # not completed (or not yet scored), oldest first

    @property
    def visits(self) -> list[Visit]:
        """Every intake, oldest first."""
        return sorted(self.columns + self.others, key=lambda v: (v.completed_at or v.created_at, v.intake_id))


def _cell(score: dict[str, Any], scale: ScoreScale | None) -> Cell:
    complete = bool(score.get("complete")) and score.get("total") is not None
    thresholds = score.get("thresholds") or {}
    met = tuple(c for c in (scale.cutoffs if scale else ()) if thresholds.get(c.id) is True)
    return Cell(value=float(score["total"]) if complete else None, complete=complete,
                band=score.get("bandLabel") if complete else None, met=met)


def build_timeline(visits: Sequence[tuple[Visit, dict[str, Any] | None]],
                   scales: Mapping[str, ScoreScale]) -> Timeline:
    """The timeline of a patient's intakes (oldest first), each with its stored result or None."""
    columns = [(v, r) for v, r in visits if v.status == "completed" and v.completed_at is not None and r is not None]
    others = [v for v, r in visits if (v, r) not in columns]
    lines: dict[str, ScoreLine] = {}
    for n, (visit, result) in enumerate(columns):
        for score in (result or {}).get("scores") or []:
            score_id = str(score.get("id"))
            scale = scales.get(score_id)
            line = lines.get(score_id)
            if line is None:
                line = lines[score_id] = ScoreLine(
                    id=score_id, title=str(score.get("title") or score_id),
                    maximum=scale.maximum if scale else None, cells=[None] * len(columns))
            cell = line.cells[n] = _cell(score, scale)
            line.title = str(score.get("title") or line.title)  # the newest wording
            if cell.value is not None and visit.completed_at is not None:
                line.points.append(TrendPoint(visit.completed_at, cell.value))
    for line in lines.values():
        scale = scales.get(line.id)
        if scale is not None:
            line.chart = trend_svg(line.points, scale, title=line.title, size=LARGE)
            line.small_chart = trend_svg(line.points, scale, title=line.title, size=COMPACT)
    return Timeline(columns=[v for v, _ in columns], lines=list(lines.values()), others=others)
