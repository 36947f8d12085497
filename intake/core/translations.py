"""The patient's language from the Questionnaire itself: FHIR `translation` extensions.

A Questionnaire carries every language it is offered in. Beside a primitive `text` sits
`_text.extension[translation]` with `lang` and `content` (the same for `_display`, `_title`,
`_valueString`). `localize` turns a resource into a plain copy in one language, so the engine
builds a localized `Form` with the code that builds the base one — nothing downstream needs to
know about translations.

Only rendering uses localized forms. Answers, responses, scoring and everything the clinician or
an EHR sees are built from the base form, so codes and texts stay those of the definition.
"""

from __future__ import annotations

from typing import Any

from intake.core import extensions as ext
from intake.core.extensions import INSTRUMENT, TRANSLATION

# Sub-extensions a patient reads, and the project extensions that carry them (`missing`).
PATIENT_FACING_SUBEXTENSIONS = {"patientGuidance", "title", "human"}
# `questionnaire-constraint`: its `human` text is the message shown beside a refused answer.
PATIENT_FACING_PARENTS = {INSTRUMENT.rsplit("/", 1)[-1], "flag", "questionnaire-constraint"}


def translation(element: dict[str, Any], key: str, lang: str) -> str | None:
    """The `lang` translation of `element[key]`, or None when there is none."""
    shadow = element.get("_" + key)
    if not isinstance(shadow, dict):
        return None
    for extension in shadow.get("extension") or []:
        if extension.get("url") != TRANSLATION:
            continue
        parts = {p.get("url"): p for p in extension.get("extension") or []}
        if (parts.get("lang") or {}).get("valueCode") == lang:
            content = (parts.get("content") or {}).get("valueString")
            if isinstance(content, str) and content:
                return content
    return None


def base_language(resource: dict[str, Any]) -> str:
    """The language the resource's own strings are written in (FHIR `language`; English if unsaid)."""
    language = resource.get("language")
    return language.split("-", 1)[0].lower() if isinstance(language, str) and language else "en"


def localize(resource: Any, lang: str) -> Any:
    """A deep copy with every translated primitive replaced by its `lang` text.

    Strings without a translation keep the base text; the translations in the `_x` shadows are
    dropped, so the copy reads like a Questionnaire written in `lang` (other extensions on a
    primitive, such as the `cqf-expression` of a `minValue`, are kept).
    """
    if isinstance(resource, list):
        return [localize(entry, lang) for entry in resource]
    if not isinstance(resource, dict):
        return resource
    out: dict[str, Any] = {}
    for key, value in resource.items():
        if key.startswith("_"):
            kept = _without_translations(value)
            if kept:  # other extensions on a primitive (a cqf-expression giving a limit) stay
                out[key] = localize(kept, lang)
            continue
        if isinstance(value, str):
            out[key] = translation(resource, key, lang) or value
        else:
            out[key] = localize(value, lang)
    if "language" in resource and isinstance(resource.get("resourceType"), str):
        out["language"] = lang
    return out


def _without_translations(shadow: Any) -> dict[str, Any] | None:
    """A primitive's `_x` shadow without its `translation` extensions; None when nothing is left."""
    if not isinstance(shadow, dict):
        return None
    kept = {k: v for k, v in shadow.items() if k != "extension"}
    others = [e for e in shadow.get("extension") or [] if not (isinstance(e, dict) and e.get("url") == TRANSLATION)]
    if others:
        kept["extension"] = others
    return kept or None


def missing(resource: dict[str, Any], lang: str) -> list[str]:
    """Paths of patient-facing strings with no `lang` translation (empty: fully translated).

    Patient-facing: the title, every item's text, answer option and unit displays, entry
    formats, required-answer messages, a picture's alt text (itemMedia title), flags' patient
    guidance and instruments' titles. Clinician wording (messages,
    citations, band labels) stays in the base language and is not checked.
    """
    out: list[str] = []

    def need(element: dict[str, Any], key: str, path: str) -> None:
        if isinstance(element.get(key), str) and element[key] and translation(element, key, lang) is None:
            out.append(f"{path}.{key}")

    def coding(value: dict[str, Any], path: str) -> None:
        if isinstance(value.get("valueCoding"), dict):
            need(value["valueCoding"], "display", path + ".valueCoding")
        need(value, "valueString", path)

    def extensions(element: dict[str, Any], path: str) -> None:
        for n, extension in enumerate(element.get("extension") or []):
            url = str(extension.get("url") or "")
            here = f"{path}.extension[{n}]"
            name = url.rsplit("/", 1)[-1]
            if name in ("questionnaire-unit", "questionnaire-unitOption"):
                coding(extension, here)
            elif name in ("entryFormat", "requiredMessage"):
                need(extension, "valueString", here)
            elif name == "sdc-questionnaire-itemMedia" and isinstance(extension.get("valueAttachment"), dict):
                need(extension["valueAttachment"], "title", here + ".valueAttachment")  # the alt text
            elif name in PATIENT_FACING_PARENTS:
                for m, sub in enumerate(extension.get("extension") or []):
                    if sub.get("url") in PATIENT_FACING_SUBEXTENSIONS:
                        need(sub, "valueString", f"{here}.extension[{m}]")

    def items(entries: list[dict[str, Any]], path: str) -> None:
        for item in entries:
            here = f"{path}[{item.get('linkId')}]"
            need(item, "text", here)
            extensions(item, here)
            for n, option in enumerate(item.get("answerOption") or []):
                coding(option, f"{here}.answerOption[{n}]")
            items(item.get("item") or [], here + ".item")

    need(resource, "title", "Questionnaire")
    extensions(resource, "Questionnaire")
    items(resource.get("item") or [], "item")
    return out


def flag_guidance(resource: dict[str, Any], flag_id: str) -> str | None:
    """A root `flag` rule's patientGuidance, read from a (localized) Questionnaire."""
    for extension in ext.find(resource, ext.PROJECT_EXT + "flag"):
        subs = ext.sub_values(extension)
        if flag_id in (subs.get("id") or []):
            return next(iter(subs.get("patientGuidance") or []), None)
    return None
