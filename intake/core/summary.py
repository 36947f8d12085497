"""The screening summary: one view model per intake, for the clinician page, the PDF and exports.

Order is the order a clinician reads in the two minutes before a visit (docs/screening.md, "What
the clinician reads"): the patient, the reason for the visit in their own words, red flags
(emergency, urgent, review) each with what to do, the positive findings ranked by clinical
weight, one compact line of everything else, findings withheld and why; then, out of the way,
the answers by instrument and the numbered references.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from markupsafe import Markup

from intake.core.answers import flatten
from intake.core.citations import with_clinician_citations
from intake.core.clinician_text import (
    clinician_message,
    clinician_reference,
    clinician_source,
    first_sentence,
    score_reference,
)
from intake.core.display import display_answer, plain_number
from intake.core.items import Form, Item
from intake.core.score_scale import ScoreScale, score_scales
from intake.core.scoring import instrument_of
from intake.core.trend_chart import trend_svg

TIER_ORDER = {"emergency": 0, "urgent": 1, "review": 2}


def top_tier(tiers: list[str]) -> str | None:
    """The most urgent of some flag tiers (None for no flags): what a list row shows."""
    return min(tiers, key=lambda t: TIER_ORDER.get(t, 9)) if tiers else None


DISCLAIMER = ("Screening aid, not a diagnosis. Scores are from patient self-report; each names its "
              "instrument, with the source in the references. Bands marked 'not a validated cut-off' "
              "are conventional.")
# The free-text question that opens the intake (forms/digestive.json, docs/screening.md).
REASON_LINK_ID = "reason-for-visit"
# What to do, by tier: the local tier policy (docs/safety.md) in one line for the clinician.
TIER_ACTIONS = {
    "emergency": "Contact the patient today: emergency advice was shown to them when they answered.",
    "urgent": "Expedited review: arrange it before or at this visit (same day where stated).",
    "review": "Review at this visit.",
}


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
    ref: int | None = None  # the number of its source in the references appendix
    follow_up: bool = False  # the patient has earlier results (a first result is then news)

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

    @property
    def short_title(self) -> str:
        """"PHQ-9" for "PHQ-9 total score"; the part before a colon of a long title."""
        title = str(self.score.get("title") or self.score.get("id"))
        return title.split(":")[0].replace(" total score", "").strip()

    @property
    def maximum(self) -> Any:
        rng = self.score.get("range") or [None, None]
        return rng[1] if len(rng) > 1 else None

    @property
    def value_of_max(self) -> str:
        """"16/27" (or "incomplete")."""
        if not self.score.get("complete"):
            return "incomplete"
        return f"{self.value_text}/{plain_number(self.maximum)}" if self.maximum is not None else self.value_text

    @property
    def band_text(self) -> str:
        """The band's label with its range as the Questionnaire gives it ("Moderately severe
        (15–19)"), marked when the band is a convention rather than a validated cut-off."""
        label = self.score.get("bandLabel") or self.score.get("band")
        if not label:
            return ""
        label = dash_ranges(str(label))
        if self.score.get("bandValidated") is False and "not a validated" not in label:
            label += " (descriptive band, not a validated cut-off)"
        return label

    @property
    def band_short(self) -> str:
        """"low" from "Low (0-13; descriptive band …)": the compact line's word."""
        label = str(self.score.get("bandLabel") or self.score.get("band") or "")
        return label.split("(")[0].strip().lower()

    @property
    def cutoffs(self) -> list[dict[str, Any]]:
        """The validated cut-offs with whether each is met (stored results before cut-offs
        carried their minimum show the ids only)."""
        if self.score.get("cutoffs") is not None:
            return list(self.score["cutoffs"])
        return [{"id": k, "label": k, "min": None, "met": v} for k, v in (self.score.get("thresholds") or {}).items()]

    @property
    def cutoff_text(self) -> str:
        """"cut-off ≥ 3 met", "cut-offs ≥ 4 met, ≥ 7 not met"; empty without cut-offs."""
        parts = []
        for cut in self.cutoffs:
            at = f"≥ {plain_number(cut['min'])}" if cut.get("min") is not None else str(cut.get("id"))
            met = cut.get("met")
            state = "met" if met is True else ("not met" if met is False else "not assessed")
            parts.append(f"{at} {state}")
        if not parts:
            return ""
        return ("cut-off " if len(parts) == 1 else "cut-offs ") + ", ".join(parts)

    @property
    def since_text(self) -> str:
        """"+4 since 2026-10-01", "no change since …", "first result" (a follow-up's score the
        earlier intakes have no value for); empty on a first intake, where every score is first."""
        if self.change is not None and self.previous_when is not None:
            return f"{self.change_text} since {self.previous_when.strftime('%Y-%m-%d')}"
        return "first result" if self.follow_up and self.score.get("complete") else ""

    @property
    def band_index(self) -> int | None:
        """Where the band sits among the score's bands (0 = the lowest), when known."""
        bands = self.score.get("bands") or []
        codes = [b.get("code") for b in bands]
        return codes.index(self.score.get("band")) if self.score.get("band") in codes else None

    @property
    def positive(self) -> bool:
        """At or over a validated cut-off, or in a validated band above the lowest, or a count
        (no bands, no cut-offs) above its minimum: what page 1 lists as a finding."""
        if not self.score.get("complete"):
            return False
        if any(c.get("met") for c in self.cutoffs):
            return True
        if self.score.get("band"):
            return bool(self.score.get("bandValidated")) and bool(self.band_index)
        if not self.cutoffs:
            low = (self.score.get("range") or [None])[0]
            total = self.score.get("total")
            return total is not None and low is not None and total > low
        return False

    @property
    def weight(self) -> tuple[int, float]:
        """Rank key, smaller first (docs/screening.md, "Ranking"): validated results before
        counts; within them the higher share of the band ladder, else of the range."""
        is_count = not self.score.get("band") and not self.cutoffs
        bands = self.score.get("bands") or []
        if self.band_index is not None and len(bands) > 1:
            share = self.band_index / (len(bands) - 1)
        else:
            low, high = (self.score.get("range") or [0, None])[:2]
            total = self.score.get("total") or 0
            share = (total - (low or 0)) / ((high or 0) - (low or 0)) if high not in (None, low) else 0.0
        return (3 if is_count else 0), -share

    @property
    def compact_text(self) -> str:
        """The score in the compact line: "PSS-10 12/40 low", "Autoimmune …: none"."""
        if not self.score.get("complete"):
            return f"{self.short_title}: incomplete"
        if not self.score.get("band") and not self.cutoffs and not self.score.get("total"):
            return f"{self.short_title}: none"
        return " ".join(p for p in (self.short_title, self.value_of_max, self.band_short) if p)


@dataclass
class AnswerRow:
    question: str
    answer: str
    link_id: str
    positive: bool = False  # named by a raised flag or note, or a Yes: highlighted


@dataclass
class AnswerGroup:
    """The answers of one instrument (one top-level group), under its heading."""

    title: str
    rows: list[AnswerRow]


@dataclass
class Positive:
    """One line of the positive findings: a score row or a finding/cross-domain note."""

    kind: str  # "score" | "finding" | "cross-domain"
    weight: tuple[int, float]
    row: ScoreRow | None = None
    note: dict[str, Any] | None = None


@dataclass
class DomainAnswers:
    title: str
    questionnaire: str
    rows: list[AnswerRow]
    groups: list[AnswerGroup] = field(default_factory=list)


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
    # What the patient most wants help with, in their words (None when not answered).
    reason: str | None = None
    # Findings a raised flag withheld: title, reason, flags.
    suppressed: list[dict[str, Any]] = field(default_factory=list)
    # The numbered references (appendix); flags, notes and score rows carry their number.
    references: list[str] = field(default_factory=list)

    @property
    def positives(self) -> list[Positive]:
        """Scores at or over a cut-off, findings and cross-domain notes, ranked by clinical
        weight (docs/screening.md, "Ranking"); ties keep the Questionnaires' order."""
        items = [Positive("score", row.weight, row=row) for row in self.scores if row.positive]
        for note in self.notes:
            kind = "finding" if note.get("kind") == "finding" else "cross-domain"
            items.append(Positive(kind, (1 if kind == "finding" else 2, 0.0), note=note))
        return sorted(items, key=lambda p: p.weight)

    @property
    def others(self) -> list[ScoreRow]:
        """Every score not among the positive findings: the one compact line."""
        return [row for row in self.scores if not row.positive]

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
        row = ScoreRow(score=score, follow_up=bool(history))
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


def dash_ranges(text: str) -> str:
    """"15-19" -> "15–19" (an en dash between numbers, as a range is printed)."""
    return re.sub(r"(?<=\d)-(?=\d)", "–", text)


def answer_text(item: Item, values: list[dict[str, Any]]) -> str:
    """The answer in plain words with the item's unit ("3 glasses a week", "40 %")."""
    text = display_answer(item, values)
    unit = (item.unit or {}).get("display") or (item.unit or {}).get("code")
    numeric = any(k in v for v in values for k in ("valueInteger", "valueDecimal"))
    return f"{text} {unit}" if unit and numeric and text else text


def _is_positive(item: Item, values: list[dict[str, Any]], named: set[str]) -> bool:
    return item.link_id in named or any(v.get("valueBoolean") is True for v in values)


def domain_answers(pairs: list[tuple[Form, dict[str, Any]]], named: set[str] | None = None) -> list[DomainAnswers]:
    """Every answered, visible question, in Questionnaire order, grouped by questionnaire and,
    within it, by instrument (top-level group). `named`: the items a raised flag or note names
    (highlighted). The reason for the visit opens the summary, so it is not repeated here."""
    named = named or set()
    domains = []
    for form, response in pairs:
        answers = flatten(response)
        groups = []
        for top in form.items:
            instrument = instrument_of(top)
            rows = [
                AnswerRow(question=item.text, answer=answer_text(item, answers[item.link_id]), link_id=item.link_id,
                          positive=_is_positive(item, answers[item.link_id], named))
                for item in top.walk()
                if item.is_question and not item.hidden and answers.get(item.link_id)
                and item.link_id != REASON_LINK_ID
            ]
            if rows:
                groups.append(AnswerGroup(title=instrument.title if instrument else top.text, rows=rows))
        domains.append(DomainAnswers(title=form.title, questionnaire=form.canonical,
                                     rows=[r for g in groups for r in g.rows], groups=groups))
    return domains


def reason_for_visit(pairs: list[tuple[Form, dict[str, Any]]]) -> str | None:
    """The patient's answer to the opening question, stripped (None when not answered)."""
    for _form, response in pairs:
        for value in flatten(response).get(REASON_LINK_ID) or []:
            text = str(value.get("valueString") or "").strip()
            if text:
                return text
    return None


_SAID_BY_ACTION = re.compile(r"shown to the patient|contact the patient today|^(?:Review|Same-day review)\.$",
                             re.IGNORECASE)


class References:
    """Numbered references: each distinct source once, in the order the summary first cites it."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def number(self, text: str) -> int | None:
        """The number of a source as the reference list prints it (None for no source)."""
        if not text:
            return None
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text) + 1


# A message's closing "(expedited review)" / "(clinician review)": the action line says how soon.
_TIER_ASIDE = re.compile(r"\s*\((?:expedited|clinician) review\)(?=\.?$)", re.IGNORECASE)


def clinician_flag(flag: dict[str, Any], refs: References) -> dict[str, Any]:
    """A flag as page 1 shows it: a one-line headline, what to do, any detail, its reference."""
    headline, rest = first_sentence(clinician_message(str(flag.get("message") or flag.get("id"))))
    headline = _TIER_ASIDE.sub("", headline)
    # the tier's action line says what the patient was shown and when to call: not repeated
    detail = " ".join(sentence for sentence in re.split(r"(?<=\.)\s+", clinician_source(rest))
                      if sentence and not _SAID_BY_ACTION.search(sentence))
    source = clinician_reference(flag.get("clinicianCitation"), flag.get("citation"))
    return {**flag, "headline": headline, "detail": detail,
            "action": TIER_ACTIONS.get(str(flag.get("tier")), ""), "ref": refs.number(source)}


def clinician_note(note: dict[str, Any]) -> dict[str, Any]:
    return {**note, "text": clinician_message(str(note.get("text") or ""))}


def number_references(summary: Summary, refs: References) -> None:
    """Number the sources in reading order: flags (done), positive findings, the compact line."""
    for item in summary.positives:
        if item.row is not None:
            item.row.ref = refs.number(score_reference(item.row.score))
        elif item.note is not None:
            item.note["ref"] = refs.number(clinician_reference(item.note.get("clinicianCitation"),
                                                               item.note.get("citation")))
    for row in summary.others:
        row.ref = refs.number(score_reference(row.score))
    summary.references = refs.texts


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
    result = with_clinician_citations(result, {form.canonical: form for form, _ in pairs})
    refs = References()
    flags = [clinician_flag(f, refs)
             for f in sorted(result.get("flags") or [], key=lambda f: TIER_ORDER.get(f.get("tier", ""), 9))]
    rows = score_rows(result, history, completed_at, score_scales(form for form, _ in pairs))
    notes = [clinician_note(n) for n in result.get("notes") or []]
    named = {str(link) for item in [*(result.get("flags") or []), *(result.get("notes") or [])]
             for link in item.get("because") or []}
    summary = Summary(
        intake_id=intake_id,
        patient_name=patient_name,
        birth_date=birth_date,
        completed_at=completed_at,
        appointment_at=appointment_at,
        flags=flags,
        scores=rows,
        notes=notes,
        domains=domain_answers(pairs, named),
        scoring_versions=dict(result.get("scoringVersions") or {}),
        language=(language := answered_language(pairs)),
        unvalidated_instruments=unvalidated_instruments(pairs, language),
        withdrawn_flags=sorted(({**f, "message": clinician_message(str(f.get("message") or ""))}
                                for f in withdrawn_flags or []), key=lambda f: TIER_ORDER.get(f.get("tier", ""), 9)),
        reason=reason_for_visit(pairs),
        suppressed=list(result.get("suppressed") or []),
    )
    number_references(summary, refs)
    return summary
