"""What a score's number means on a chart: its full range, cut-offs, bands and better direction.

Read from the Questionnaire's `score` extension (docs/questionnaires.md), never from Python: a
trend drawn on the instrument's own range, with the cut-offs the Questionnaire declares (and no
other), says the same thing for every instrument. `direction` is data too — MEDAS counts
criteria met (higher is better), PHQ-9 counts symptoms (higher is worse); a count with no
"better" (autoimmune history) declares none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from intake.core import extensions as ext
from intake.core.display import plain_number
from intake.core.items import Form

SCORE = ext.PROJECT_EXT + "score"
HIGHER_IS_BETTER = "higher-is-better"
HIGHER_IS_WORSE = "higher-is-worse"
DIRECTIONS = (HIGHER_IS_BETTER, HIGHER_IS_WORSE)


@dataclass(frozen=True)
class Cutoff:
    """A threshold: met when the score is at or above `minimum`; `label` as the Questionnaire words it."""

    id: str
    minimum: float
    label: str

    @property
    def value_text(self) -> str:
        return plain_number(self.minimum)


@dataclass(frozen=True)
class BandRange:
    minimum: float | None
    maximum: float | None
    code: str  # a short lower-case word ("moderate"): what a chart writes beside the band
    label: str
    validated: bool


@dataclass(frozen=True)
class ScoreScale:
    id: str
    title: str
    minimum: float
    maximum: float
    cutoffs: tuple[Cutoff, ...] = ()
    bands: tuple[BandRange, ...] = ()
    direction: str | None = None  # HIGHER_IS_BETTER, HIGHER_IS_WORSE, or None (no better direction)

    def band_of(self, value: float) -> BandRange | None:
        return next((b for b in self.bands if (b.minimum is None or value >= b.minimum)
                     and (b.maximum is None or value <= b.maximum)), None)


def _first(subs: dict[str, list[Any]], name: str) -> Any:
    values = subs.get(name) or [None]
    return values[0]


def _number(value: Any) -> float | None:
    return None if value is None or isinstance(value, bool) else float(value)


def scale_of(extension: dict[str, Any]) -> ScoreScale | None:
    """One `score` extension as a scale; None when it declares no full range (nothing to draw on)."""
    subs = ext.sub_values(extension)
    low, high = _number(_first(subs, "min")), _number(_first(subs, "max"))
    score_id = _first(subs, "id")
    if score_id is None or low is None or high is None or high <= low:
        return None
    cutoffs = []
    for spec in subs.get("threshold") or []:
        t = ext.sub_values(spec)
        at = _number(_first(t, "min"))
        if at is not None:
            label = str(_first(t, "label") or _first(t, "id"))
            cutoffs.append(Cutoff(id=str(_first(t, "id")), minimum=at, label=label))
    bands = []
    for spec in subs.get("band") or []:
        b = ext.sub_values(spec)
        bands.append(BandRange(minimum=_number(_first(b, "min")), maximum=_number(_first(b, "max")),
                               code=str(_first(b, "code") or ""), label=str(_first(b, "label") or _first(b, "code")),
                               validated=_first(b, "validated") is not False))
    direction = _first(subs, "direction")
    return ScoreScale(id=str(score_id), title=str(_first(subs, "title") or score_id), minimum=low, maximum=high,
                      cutoffs=tuple(cutoffs), bands=tuple(bands),
                      direction=direction if direction in DIRECTIONS else None)


def score_scales(forms: Iterable[Form]) -> dict[str, ScoreScale]:
    """Score id -> scale, over `forms` in order; the first form declaring an id wins (pass the
    current versions before archived ones)."""
    out: dict[str, ScoreScale] = {}
    for form in forms:
        for item in form.walk():
            for extension in ext.find(item.raw, SCORE):
                scale = scale_of(extension)
                if scale is not None and scale.id not in out:
                    out[scale.id] = scale
    return out
