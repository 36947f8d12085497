"""The screening summary: one view model per intake, for the clinician page, the PDF and exports.

Order is the order a clinician reads in the two minutes before a visit: flags first (emergency,
urgent, review), then one row per score with its band, source and change since last time, then
the cross-domain notes, then every answer by domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from markupsafe import Markup

from intake.core.answers import flatten
from intake.core.display import display_answer, plain_number
from intake.core.items import Form
from intake.core.score_scale import ScoreScale, score_scales
from intake.core.scoring import instrument_of
from intake.core.trend_chart import trend_svg

TIER_ORDER = {"emergency": 0, "urgent": 1, "review": 2}


def top_tier(tiers: list[str]) -> str | None:
    """The most urgent of some flag tiers (None for no flags): what a list row shows."""
    return min(tiers, key=lambda t: TIER_ORDER.get(t, 9)) if tiers else None
DISCLAIMER = ("Screening aid, not a diagnosis. Scores are from patient self-report and name their "
              "instrument and source; bands marked 'not validated' are conventional, not cut-offs.")


@dataclass(frozen=True)
class TrendPoint:
    when: datetime
    value: float


@dataclass
class ScoreRow:
    """One score as the clinician reads it, with where it was last time."""

    score: dict[str, Any]
    previous: float | None = None
    previous_when: datetime | None = None
    change: float | None = None
    trend: list[TrendPoint] = field(default_factory=list)
    sparkline: Markup = field(default_factory=Markup)  # the trend chart (intake.core.trend_chart), an inline SVG

    @property
    def value_text(self) -> str:
        return plain_number(self.score.get("total")) if self.score.get("complete") else "incomplete"

    @property
    def previous_text(self) -> str:
        return plain_number(self.previous)

    @property
    def change_text(self) -> str:
        """"+3", "-8", "no change"; empty when there is nothing to compare."""
        if self.change is None:
            return ""
        if self.change == 0:
            return "no change"
        sign = "+" if self.change > 0 else ""
        return f"{sign}{plain_number(self.change)}"


@dataclass
class AnswerRow:
    question: str
    answer: str
    link_id: str


@dataclass
class DomainAnswers:
    title: str
    questionnaire: str
    rows: list[AnswerRow]


@dataclass
class Summary:
    intake_id: str
    patient_name: str
    birth_date: date | None
    completed_at: datetime | None
    appointment_at: datetime | None
    flags: list[dict[str, Any]]
    scores: list[ScoreRow]
    notes: list[dict[str, Any]]
    domains: list[DomainAnswers]
    scoring_versions: dict[str, str]
    disclaimer: str = DISCLAIMER
    # The language the patient answered in (the responses' `language`), and the instruments
    # whose wording in that language is not the validated one.
    language: str | None = None
    unvalidated_instruments: list[str] = field(default_factory=list)
    # Flags raised while the patient was answering that the sent answers no longer raise (the
    # answer was changed, or its page switched off): id, tier, message, raisedAt, clearedAt and
    # answersNow [(question, answer now)]. Staff were told; the summary says so.
    withdrawn_flags: list[dict[str, Any]] = field(default_factory=list)

    @property
    def language_name(self) -> str:
        return LANGUAGE_NAMES.get(self.language or "", self.language or "not recorded")

    @property
    def age(self) -> int | None:
        if not self.birth_date:
            return None
        on = (self.completed_at or datetime.now()).date()
        years = on.year - self.birth_date.year
        return years - ((on.month, on.day) < (self.birth_date.month, self.birth_date.day))


def score_rows(result: dict[str, Any], history: list[tuple[datetime, dict[str, Any]]],
               completed_at: datetime | None, scales: Mapping[str, ScoreScale] | None = None) -> list[ScoreRow]:
    """Each score with the previous complete value, the change, and the trend over all intakes
    (drawn on the score's full range from `scales`, by score id; no scale, no chart)."""
    rows = []
    for score in result.get("scores") or []:
        row = ScoreRow(score=score)
        for when, past in history:
            for old in past.get("scores") or []:
                if old.get("id") == score.get("id") and old.get("complete") and old.get("total") is not None:
                    row.trend.append(TrendPoint(when, float(old["total"])))
        if row.trend:
            row.previous, row.previous_when = row.trend[-1].value, row.trend[-1].when
        if score.get("complete") and score.get("total") is not None:
            if row.previous is not None:
                row.change = float(score["total"]) - row.previous
            if row.trend and completed_at is not None:
                row.trend.append(TrendPoint(completed_at, float(score["total"])))
        scale = (scales or {}).get(str(score.get("id")))
        if len(row.trend) > 1 and scale is not None:
            row.sparkline = trend_svg(row.trend, scale, title=str(score.get("title") or scale.title))
        rows.append(row)
    return rows


def domain_answers(pairs: list[tuple[Form, dict[str, Any]]]) -> list[DomainAnswers]:
    """Every answered, visible question, in Questionnaire order, grouped by questionnaire."""
    domains = []
    for form, response in pairs:
        answers = flatten(response)
        rows = [
            AnswerRow(question=item.text, answer=display_answer(item, answers[item.link_id]), link_id=item.link_id)
            for item in form.walk()
            if item.is_question and not item.hidden and answers.get(item.link_id)
        ]
        domains.append(DomainAnswers(title=form.title, questionnaire=form.canonical, rows=rows))
    return domains


# Clinician-facing names of the languages patients may answer in (English name, own name).
LANGUAGE_NAMES = {"en": "English", "es": "Spanish (español)"}


def answered_language(pairs: list[tuple[Form, dict[str, Any]]]) -> str | None:
    """The language the responses record (all of one intake are answered in one session)."""
    return next((str(r["language"]) for _form, r in pairs if r.get("language")), None)


def unvalidated_instruments(pairs: list[tuple[Form, dict[str, Any]]], language: str | None) -> list[str]:
    """Instruments answered in a language their validated wording does not include."""
    if not language:
        return []
    out = []
    for form, response in pairs:
        answered = set(flatten(response))
        for item in form.walk():
            if item.type != "group" or not any(i.link_id in answered for i in item.walk()):
                continue
            instrument = instrument_of(item)
            if instrument and not instrument.validated_in(language) and instrument.title not in out:
                out.append(instrument.title)
    return out


def build_summary(
    *,
    intake_id: str,
    patient_name: str,
    birth_date: date | None,
    completed_at: datetime | None,
    appointment_at: datetime | None,
    result: dict[str, Any],
    history: list[tuple[datetime, dict[str, Any]]],
    pairs: list[tuple[Form, dict[str, Any]]],
    withdrawn_flags: list[dict[str, Any]] | None = None,
) -> Summary:
    """The view model; `history` is the patient's earlier results, oldest first."""
    flags = sorted(result.get("flags") or [], key=lambda f: TIER_ORDER.get(f.get("tier", ""), 9))
    return Summary(
        intake_id=intake_id,
        patient_name=patient_name,
        birth_date=birth_date,
        completed_at=completed_at,
        appointment_at=appointment_at,
        flags=flags,
        scores=score_rows(result, history, completed_at, score_scales(form for form, _ in pairs)),
        notes=list(result.get("notes") or []),
        domains=domain_answers(pairs),
        scoring_versions=dict(result.get("scoringVersions") or {}),
        language=(language := answered_language(pairs)),
        unvalidated_instruments=unvalidated_instruments(pairs, language),
        withdrawn_flags=sorted(withdrawn_flags or [], key=lambda f: TIER_ORDER.get(f.get("tier", ""), 9)),
    )
