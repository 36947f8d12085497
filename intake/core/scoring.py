"""Scores, bands, thresholds, flags and findings — read from the Questionnaire, not from Python.

The rules are data (docs/questionnaires.md, "Scoring, flags and findings"): totals are the
calculatedExpression items LHC-Forms would evaluate; bands, cut-offs, red-flag rules and
patterns are project extensions beside the items, each with its citation. Nothing here names an
instrument, so a corrected rule is a Questionnaire edit (a new version) and `flask intake
rescore` applies it to old intakes.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from intake.core import extensions as ext
from intake.core import fhirpath
from intake.core.answers import compute, flatten, nest
from intake.core.clinician_text import with_onset_age
from intake.core.enablement import expression_variables
from intake.core.items import Form, Item

ENGINE_VERSION = "1"
TIERS = ("emergency", "urgent", "review")

SCORE = ext.PROJECT_EXT + "score"
FLAG = ext.PROJECT_EXT + "flag"
FINDING = ext.PROJECT_EXT + "finding"
CROSS_DOMAIN_NOTE = ext.PROJECT_EXT + "crossDomainNote"


def scoring_version(form: Form) -> str:
    """Which rules produced a result: the engine's version and the Questionnaire's url|version."""
    return f"engine-{ENGINE_VERSION};{form.canonical}"


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Band:
    code: str
    label: str
    validated: bool


@dataclass(frozen=True)
class BandSpec:
    """One band as the Questionnaire defines it (the summary ranks a band by its place)."""

    code: str
    label: str
    minimum: float | None
    maximum: float | None


@dataclass(frozen=True)
class Threshold:
    id: str
    label: str
    met: bool | None  # None: the score is incomplete
    citation: str | None = None
    minimum: float | None = None  # the cut-off: met at or over it


@dataclass(frozen=True)
class Instrument:
    """Provenance of the instrument a score belongs to (the group's `instrument` extension)."""

    code: str
    title: str
    version: str | None
    citation: str | None
    licence: str | None
    verification: str | None
    validated: bool
    # The languages in which the wording used is the validated one (`validatedLanguage`).
    validated_languages: tuple[str, ...] = ()
    clinician_citation: str | None = None  # the source as a clinician reads it (`clinicianCitation`)

    def validated_in(self, language: str) -> bool:
        """False when the wording is validated only in other languages (a translation)."""
        return not self.validated_languages or language in self.validated_languages


@dataclass(frozen=True)
class Score:
    id: str
    title: str
    questionnaire: str
    instrument: Instrument | None
    value: float | None
    complete: bool
    missing: tuple[str, ...]
    band: Band | None
    thresholds: tuple[Threshold, ...]
    minimum: float | None
    maximum: float | None
    citation: str | None
    verification: str | None
    item: str
    bands: tuple[BandSpec, ...] = ()  # every band of the score, in the Questionnaire's order
    clinician_citation: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "total": _plain(self.value),
            "band": self.band.code if self.band else None,
            "bandLabel": self.band.label if self.band else None,
            "bandValidated": self.band.validated if self.band else None,
            "complete": self.complete,
            "missing": list(self.missing),
            "thresholds": {t.id: t.met for t in self.thresholds},
            "cutoffs": [{"id": t.id, "label": t.label, "min": _plain(t.minimum), "met": t.met}
                        for t in self.thresholds],
            "bands": [{"code": b.code, "label": b.label, "min": _plain(b.minimum), "max": _plain(b.maximum)}
                      for b in self.bands],
            "range": [_plain(self.minimum), _plain(self.maximum)],
            "instrument": self.instrument.title if self.instrument else None,
            "instrumentVersion": self.instrument.version if self.instrument else None,
            "instrumentCitation": self.instrument.citation if self.instrument else None,
            "instrumentClinicianCitation": self.instrument.clinician_citation if self.instrument else None,
            "citation": self.citation,
            "clinicianCitation": self.clinician_citation,
            "verification": self.verification,
            "questionnaire": self.questionnaire,
            "item": self.item,
        }


@dataclass(frozen=True)
class Flag:
    id: str
    tier: str
    because: tuple[str, ...]
    message: str
    patient_guidance: str | None
    citation: str | None
    verification: str | None
    questionnaire: str
    clinician_citation: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "tier": self.tier,
            "because": list(self.because),
            "message": self.message,
            "citation": self.citation,
            "clinicianCitation": self.clinician_citation,
            "verification": self.verification,
            "questionnaire": self.questionnaire,
        }
        if self.patient_guidance:
            out["patientGuidance"] = self.patient_guidance
        return out


def _suppresses(suppressed_by: tuple[str, ...], flags: list[Flag]) -> bool:
    return any(f.id in suppressed_by or f.tier in suppressed_by for f in flags)


@dataclass(frozen=True)
class Note:
    """A finding ("consistent with ...") or a cross-domain note, with its source."""

    id: str
    kind: str  # "finding" | "cross-domain"
    text: str
    because: tuple[str, ...]
    citation: str | None
    verification: str | None
    questionnaire: str
    suppressed_by: tuple[str, ...] = ()  # flag ids or tiers that hide it (findings)
    clinician_citation: str | None = None

    def suppressed(self, flags: list[Flag]) -> bool:
        return _suppresses(self.suppressed_by, flags)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "text": self.text,
            "because": list(self.because),
            "citation": self.citation,
            "clinicianCitation": self.clinician_citation,
            "verification": self.verification,
            "questionnaire": self.questionnaire,
        }


@dataclass(frozen=True)
class Suppressed:
    """A finding withheld because a flag was raised: the summary says so, and why."""

    id: str
    title: str
    reason: str
    flags: tuple[str, ...]  # the raised flags' ids that withheld it
    questionnaire: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "reason": self.reason, "flags": list(self.flags),
                "questionnaire": self.questionnaire}


def suppressed_finding(form: Form, extension: dict[str, Any], flags: list[Flag]) -> Suppressed | None:
    """The finding `extension` as withheld, when a raised flag suppresses it (whether or not its
    pattern held: with an alarm feature raised, the pattern is not assessed at all)."""
    subs = _subs(extension)
    suppressed_by = tuple(str(v) for v in subs.get("suppressedBy") or [])
    hiding = tuple(f.id for f in flags if f.id in suppressed_by or f.tier in suppressed_by)
    if not hiding:
        return None
    note_id = str(_one(subs, "id"))
    return Suppressed(
        id=note_id,
        title=str(_one(subs, "title") or note_id.replace("-", " ").capitalize()),
        reason=str(_one(subs, "suppressedReason") or "a red flag was raised"),
        flags=hiding,
        questionnaire=form.canonical,
    )


@dataclass(frozen=True)
class Context:
    """What the rules may use besides the answers."""

    birth_date: str | None = None
    gi_onset_age_threshold: int = 50


@dataclass
class Result:
    """Everything the engine concludes for one intake (or one response)."""

    scores: list[Score] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    suppressed: list[Suppressed] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "scores": [s.as_json() for s in self.scores],
            "flags": [f.as_json() for f in self.flags],
            "notes": [n.as_json() for n in self.notes],
            "suppressed": [n.as_json() for n in self.suppressed],
            "scoringVersions": dict(self.versions),
        }


class RuleError(Exception):
    """A scoring rule could not be evaluated (a broken expression in a Questionnaire)."""


# --- evaluation -------------------------------------------------------------------------------


def _plain(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else float(value)


_PARSED: dict[int, tuple[dict[str, Any], dict[str, list[Any]]]] = {}


def _subs(extension: dict[str, Any]) -> dict[str, list[Any]]:
    """`ext.sub_values`, parsed once per rule (the Questionnaires are loaded once and kept)."""
    hit = _PARSED.get(id(extension))
    if hit is None or hit[0] is not extension:
        if len(_PARSED) > 20_000:
            _PARSED.clear()
        hit = _PARSED[id(extension)] = (extension, ext.sub_values(extension))
    return hit[1]


def _one(subs: dict[str, list[Any]], name: str) -> Any:
    values = subs.get(name) or [None]
    return values[0]


def _expression(subs: dict[str, list[Any]], name: str) -> str | None:
    value = _one(subs, name)
    return value.get("expression") if isinstance(value, dict) else None


def instrument_of(item: Item) -> Instrument | None:
    for extension in ext.find(item.raw, ext.INSTRUMENT):
        subs = _subs(extension)
        return Instrument(
            code=str(_one(subs, "code") or item.link_id),
            title=str(_one(subs, "title") or item.text),
            version=_one(subs, "version"),
            citation=_one(subs, "citation"),
            licence=_one(subs, "licence"),
            verification=_one(subs, "verification"),
            validated=_one(subs, "validated") is not False,
            validated_languages=tuple(str(code) for code in subs.get("validatedLanguage") or ()),
            clinician_citation=_one(subs, "clinicianCitation"),
        )
    return None


def _holds(expression: str, response: dict[str, Any], variables: dict[str, Any], where: str) -> bool:
    """A rule's `when`: true only when it evaluates to exactly `true`."""
    try:
        return fhirpath.is_true(expression, response, variables=variables)
    except fhirpath.FhirPathError as exc:
        raise RuleError(f"{where}: {exc}") from exc


def _evaluate(expression: str, response: dict[str, Any], variables: dict[str, Any], where: str) -> list[Any]:
    try:
        return fhirpath.evaluate(expression, response, variables=variables)
    except fhirpath.FhirPathError as exc:
        raise RuleError(f"{where}: {exc}") from exc


def _variables(form: Form, weighted: dict[str, Any], context: Context, extra: dict[str, Any] | None = None,
               built: dict[int, Any] | None = None) -> dict[str, Any]:
    variables = expression_variables(form, weighted)
    variables["birthDate"] = context.birth_date
    variables["birthMonths"], variables["ageAtAuthored"] = _age_variables(context.birth_date, weighted.get("authored"))
    variables["giOnsetAgeThreshold"] = context.gi_onset_age_threshold
    variables.update(extra or {})
    return fhirpath.with_index(variables, weighted, built=built)


def _age_variables(birth_date: str | None, authored: str | None) -> tuple[int | None, int | None]:
    """(year x 12 + month of birth, whole years of age on the day the response was authored).

    Age rules are common and date arithmetic in FHIRPath strings is slow and easy to get wrong,
    so the engine supplies both (None when the birth date is unknown or partial).
    """
    if not birth_date or len(birth_date) < 10:
        return None, None
    try:
        born = date.fromisoformat(birth_date[:10])
    except ValueError:
        return None, None
    age = None
    if authored and len(authored) >= 10:
        try:
            on = date.fromisoformat(authored[:10])
        except ValueError:
            on = None
        if on is not None:
            age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return born.year * 12 + born.month, age


def prepare(form: Form, response: dict[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any], set[str]]:
    """The response's answers with calculated items recomputed, the weighted response, and the
    enabled linkIds.

    Stored calculated values are never trusted: scores are recomputed from the answers.
    """
    answers, enabled = compute(form, flatten(response))
    shell = dict(response)
    shell["item"] = nest(form, answers, enabled)
    return answers, fhirpath.with_weights(shell, form.weights, fresh=True), enabled


def score_response(form: Form, response: dict[str, Any], context: Context | None = None) -> Result:
    """Scores, flags and findings of one QuestionnaireResponse against its Questionnaire."""
    return _score_one(form, response, context or Context())[0]


DOMAINS = ("digestive", "neuropathy", "autoimmune", "diet", "stress")


def flags_reading(forms: list[Form], key: str) -> set[str]:
    """The keys of the questionnaires whose flags can change when the answers of questionnaire
    `key` change: itself, and those whose flag rules read it (`%autoimmune` in a digestive
    flag). The rest keep their flags: their answers and the variables they read did not move."""
    out = {key}
    for form in forms:
        for extension in ext.find(form.resource, FLAG):
            expression = _expression(_subs(extension), "when") or ""
            # %scores holds every questionnaire's totals: such a rule may move with any answer.
            if re.search(rf"%({re.escape(key)}|scores)\b", expression):
                out.add(form.key)
    return out


@dataclass
class _Prepared:
    """One response of an intake, ready for its rules: answers, weighted response, enabled set."""

    form: Form
    answers: dict[str, list[dict[str, Any]]]
    weighted: dict[str, Any]
    enabled: set[str]


def _prepared(form: Form, response: dict[str, Any]) -> _Prepared:
    answers, weighted, enabled = prepare(form, response)
    return _Prepared(form, answers, weighted, enabled)


def _domains(prepared: list[_Prepared], scores: list[Score]) -> dict[str, Any]:
    """The variables that let a rule look across the intake: each questionnaire's (weighted)
    response by key — `%digestive`, `%autoimmune`, … (None when that questionnaire is not in the
    intake, so its lookups find nothing) — and `%scores`, the complete totals by score id."""
    by_key = {p.form.key: p.weighted for p in prepared}
    extra: dict[str, Any] = {key: by_key.get(key) for key in DOMAINS}
    extra.update(by_key)
    extra["scores"] = {s.id: s.value for s in scores if s.complete}
    return extra


def _scores_of(p: _Prepared) -> list[Score]:
    out = []
    for group in p.form.walk():
        if group.link_id not in p.enabled:
            continue  # not administered (a reflex the screen did not switch on): no score at all
        for extension in ext.find(group.raw, SCORE):
            out.append(_score(p.form, group, extension, p.answers, p.enabled))
    return out


def _rules_of(p: _Prepared, scores: list[Score], context: Context, extra: dict[str, Any],
              built: dict[int, Any] | None, *, findings: bool = True,
              tiers: Collection[str] | None = None) -> Result:
    """Flags, then findings, of one response. Flags may read the other questionnaires of the
    intake (`extra`) as cross-domain notes do, so a rule such as GI-AF4 can count a family
    history given in another questionnaire; they are still evaluated when totals are incomplete."""
    form = p.form
    variables = _variables(form, p.weighted, context, extra, built)
    result = Result(scores=scores, versions={form.canonical: scoring_version(form)})
    for extension in ext.find(form.resource, FLAG):
        if tiers is not None and _one(_subs(extension), "tier") not in tiers:
            continue
        flag = _flag(form, extension, p.weighted, variables)
        if flag:
            result.flags.append(flag)
    if not findings:
        return result
    variables["notes"] = raised = []  # ids of the notes raised so far: a rule may build on them
    for extension in ext.find(form.resource, FINDING):
        note = _note(form, extension, p.weighted, variables, "finding", result.flags)
        if note:
            result.notes.append(note)
            raised.append(note.id)
    return result


def _score_one(form: Form, response: dict[str, Any], context: Context,
               built: dict[int, Any] | None = None) -> tuple[Result, dict[str, Any]]:
    """One response on its own: the other questionnaires' variables are empty."""
    p = _prepared(form, response)
    scores = _scores_of(p)
    return _rules_of(p, scores, context, _domains([p], scores), built), p.weighted


def _score(form: Form, group: Item, extension: dict[str, Any], answers: dict[str, list[dict[str, Any]]],
           enabled: set[str]) -> Score:
    subs = _subs(extension)
    score_id = str(_one(subs, "id"))
    holder = str(_one(subs, "item"))
    required = [str(link) for link in subs.get("requires") or []]
    # A required question switched off by an earlier answer (a "Which relatives?" after No) is
    # not missing; switched on and unanswered, it is.
    missing = tuple(link for link in required if not answers.get(link) and link in enabled)
    value: float | None = None
    if not missing:
        for answer in answers.get(holder) or []:
            raw = answer.get("valueInteger", answer.get("valueDecimal"))
            if raw is not None and not isinstance(raw, bool):
                value = float(raw)
    complete = value is not None
    band = None
    if complete:
        for spec in subs.get("band") or []:
            b = _subs(spec)
            low, high = _one(b, "min"), _one(b, "max")
            if (low is None or Decimal(str(value)) >= Decimal(str(low))) and (
                high is None or Decimal(str(value)) <= Decimal(str(high))
            ):
                band = Band(code=str(_one(b, "code")), label=str(_one(b, "label") or _one(b, "code")),
                            validated=_one(b, "validated") is not False)
                break
    thresholds = []
    for spec in subs.get("threshold") or []:
        t = _subs(spec)
        low = _one(t, "min")
        met = None if not complete else Decimal(str(value)) >= Decimal(str(low))
        thresholds.append(Threshold(id=str(_one(t, "id")), label=str(_one(t, "label") or _one(t, "id")),
                                    met=met, citation=_one(t, "citation"), minimum=low))
    bands = tuple(BandSpec(code=str(_one(b, "code")), label=str(_one(b, "label") or _one(b, "code")),
                           minimum=_one(b, "min"), maximum=_one(b, "max"))
                  for b in (_subs(spec) for spec in subs.get("band") or []))
    return Score(
        id=score_id,
        title=str(_one(subs, "title") or score_id),
        questionnaire=form.canonical,
        instrument=instrument_of(group),
        value=value,
        complete=complete,
        missing=missing,
        band=band,
        thresholds=tuple(thresholds),
        minimum=_one(subs, "min"),
        maximum=_one(subs, "max"),
        citation=_one(subs, "citation"),
        verification=_one(subs, "verification"),
        item=holder,
        bands=bands,
        clinician_citation=_one(subs, "clinicianCitation"),
    )


def _flag(form: Form, extension: dict[str, Any], weighted: dict[str, Any], variables: dict[str, Any]) -> Flag | None:
    subs = _subs(extension)
    flag_id = str(_one(subs, "id"))
    expression = _expression(subs, "when")
    if not expression or not _holds(expression, weighted, variables, f"flag {flag_id}"):
        return None
    tier = str(_one(subs, "tier"))
    if tier not in TIERS:
        raise RuleError(f"flag {flag_id}: tier {tier!r} is not one of {TIERS}")
    return Flag(
        id=flag_id,
        tier=tier,
        because=tuple(str(v) for v in subs.get("because") or []),
        message=with_onset_age(str(_one(subs, "message") or flag_id), variables.get("giOnsetAgeThreshold"),
                               birth_date_known=bool(variables.get("birthDate")),
                               age_known=variables.get("ageAtAuthored") is not None),
        patient_guidance=_one(subs, "patientGuidance"),
        citation=_one(subs, "citation"),
        verification=_one(subs, "verification"),
        questionnaire=form.canonical,
        clinician_citation=_one(subs, "clinicianCitation"),
    )


def _note(form: Form, extension: dict[str, Any], weighted: dict[str, Any], variables: dict[str, Any],
          kind: str, flags: list[Flag]) -> Note | None:
    subs = _subs(extension)
    note_id = str(_one(subs, "id"))
    expression = _expression(subs, "when")
    if not expression or not _holds(expression, weighted, variables, f"{kind} {note_id}"):
        return None
    suppressed_by = tuple(str(v) for v in subs.get("suppressedBy") or [])
    if _suppresses(suppressed_by, flags):
        return None
    text = str(_one(subs, "text") or note_id)
    value_expression = _expression(subs, "value")
    if value_expression:
        values = _evaluate(value_expression, weighted, variables, f"{kind} {note_id} value")
        text = text.replace("{value}", str(values[0]) if values else "")
    return Note(
        id=note_id,
        kind=kind,
        text=text,
        because=tuple(str(v) for v in subs.get("because") or []),
        citation=_one(subs, "citation"),
        verification=_one(subs, "verification"),
        questionnaire=form.canonical,
        suppressed_by=suppressed_by,
        clinician_citation=_one(subs, "clinicianCitation"),
    )


def score_intake(pairs: list[tuple[Form, dict[str, Any]]], context: Context | None = None, *,
                 notes: bool = True, flags_of: Collection[str] | None = None,
                 tiers: Collection[str] | None = None) -> Result:
    """Every response of an intake, then the cross-domain notes that look across them.

    Scores first (every response), then each response's flags and findings, which may read the
    other responses and the complete totals (`%autoimmune`, `%scores`, …), then the cross-domain
    notes. Flags from all domains count for suppression (a GI alarm hides the IBS-pattern wording
    even when the rule sits on another questionnaire). With `notes=False` only scores and flags
    are worked out (the check run on every saved page: no finding or note can raise a flag);
    `flags_of` (questionnaire keys) and `tiers` narrow which flags are evaluated at all.
    """
    context = context or Context()
    result = Result()
    built: dict[int, Any] = {}  # each response's linkId index, built once for all its rules
    prepared = [_prepared(form, response) for form, response in pairs]
    scored = [_scores_of(p) for p in prepared]
    extra = _domains(prepared, [s for scores in scored for s in scores])
    for p, scores in zip(prepared, scored, strict=True):
        if flags_of is not None and p.form.key not in flags_of:
            result.scores += scores
            result.versions[p.form.canonical] = scoring_version(p.form)
            continue
        one = _rules_of(p, scores, context, extra, built, findings=notes, tiers=tiers)
        result.scores += one.scores
        result.flags += one.flags
        result.notes += one.notes
        result.versions.update(one.versions)
    # a finding is hidden by the flags of every domain, not only its own; the summary says so
    result.notes = [n for n in result.notes if not n.suppressed(result.flags)]
    for p in prepared if notes else ():
        for extension in ext.find(p.form.resource, FINDING):
            withheld = suppressed_finding(p.form, extension, result.flags)
            if withheld:
                result.suppressed.append(withheld)
    for p in prepared if notes else ():
        form, weighted = p.form, p.weighted
        if not ext.find(form.resource, CROSS_DOMAIN_NOTE):
            continue
        variables = _variables(form, weighted, context, extra, built)
        variables["notes"] = raised = [n.id for n in result.notes]
        for extension in ext.find(form.resource, CROSS_DOMAIN_NOTE):
            note = _note(form, extension, weighted, variables, "cross-domain", result.flags)
            if note:
                result.notes.append(note)
                raised.append(note.id)
    result.flags.sort(key=lambda f: TIERS.index(f.tier))
    return result
