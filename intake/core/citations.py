"""Clinician citations for stored results scored before rules carried them.

`clinicianCitation` was added to the current Questionnaire versions without a version bump (it
changes no rule), so a result stored earlier names the same `url|version` whose rules now carry
one. Filling it in from the loaded Questionnaire means existing summaries, PDFs and Observation
notes read the written citation at once, without a re-score; a result of an archived version
without one keeps the pattern-cleaned fallback (`intake.core.clinician_text.clinician_reference`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from intake.core import extensions as ext
from intake.core.items import Form
from intake.core.scoring import CROSS_DOMAIN_NOTE, FINDING, FLAG, SCORE, instrument_of


def _of_form(form: Form) -> dict[tuple[str, str], str]:
    """(kind, id) -> clinicianCitation: kinds "flag", "note" (findings and cross-domain notes),
    "score" and "instrument" (the instrument of the score with that id). Worked out once per
    loaded Questionnaire, kept on it (`Form.memo`), so it goes with the form."""
    hit: dict[tuple[str, str], str] | None = form.memo.get("clinician_citations")
    if hit is not None:
        return hit
    out: dict[tuple[str, str], str] = {}
    for url, kind in ((FLAG, "flag"), (FINDING, "note"), (CROSS_DOMAIN_NOTE, "note")):
        for extension in ext.find(form.resource, url):
            subs = ext.sub_values(extension)
            written = (subs.get("clinicianCitation") or [None])[0]
            if written and subs.get("id"):
                out[(kind, str(subs["id"][0]))] = str(written)
    for group in form.walk():
        for extension in ext.find(group.raw, SCORE):
            subs = ext.sub_values(extension)
            score_id = str((subs.get("id") or [""])[0])
            written = (subs.get("clinicianCitation") or [None])[0]
            if written:
                out[("score", score_id)] = str(written)
            instrument = instrument_of(group)
            if instrument is not None and instrument.clinician_citation:
                out[("instrument", score_id)] = instrument.clinician_citation
    form.memo["clinician_citations"] = out
    return out


def _filled(entry: Mapping[str, Any], forms: Mapping[str, Form], pairs: tuple[tuple[str, str, str], ...]
            ) -> dict[str, Any]:
    form = forms.get(str(entry.get("questionnaire")))
    out = dict(entry)
    if form is None:
        return out
    found = _of_form(form)
    for key, kind, id_key in pairs:
        if not out.get(key) and (kind, str(entry.get(id_key))) in found:
            out[key] = found[(kind, str(entry.get(id_key)))]
    return out


def with_clinician_citations(result: Mapping[str, Any], forms: Mapping[str, Form]) -> dict[str, Any]:
    """`result` (a stored `Result.as_json`) with every missing clinician citation taken from the
    Questionnaire version (`forms`: canonical url|version -> Form) that produced it."""
    out = dict(result)
    out["flags"] = [_filled(f, forms, (("clinicianCitation", "flag", "id"),)) for f in result.get("flags") or []]
    out["notes"] = [_filled(n, forms, (("clinicianCitation", "note", "id"),)) for n in result.get("notes") or []]
    out["scores"] = [_filled(s, forms, (("clinicianCitation", "score", "id"),
                                        ("instrumentClinicianCitation", "instrument", "id")))
                     for s in result.get("scores") or []]
    return out
