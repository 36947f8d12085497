"""FHIR `translation` extensions: reading them, localizing a Questionnaire, and completeness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intake.core import translations
from intake.core.catalog import load_catalog
from intake.core.fhir_models import Questionnaire, model_errors
from intake.core.items import build_item
from intake.core.lint import lint
from intake.core.scoring import instrument_of

FORMS = Path(__file__).resolve().parents[2] / "forms"
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"


def shadow(lang: str, content: str) -> dict:
    return {"extension": [{"url": TRANSLATION, "extension": [{"url": "lang", "valueCode": lang},
                                                              {"url": "content", "valueString": content}]}]}


def languages(resource: object) -> set[str]:
    """Every language a translation anywhere in the resource is written in."""
    found: set[str] = set()
    if isinstance(resource, list):
        for entry in resource:
            found |= languages(entry)
    elif isinstance(resource, dict):
        if resource.get("url") == TRANSLATION:
            found |= {p["valueCode"] for p in resource.get("extension") or [] if p.get("url") == "lang"}
        for value in resource.values():
            found |= languages(value)
    return found


def questionnaire() -> dict:
    return {
        "resourceType": "Questionnaire", "id": "q", "language": "en", "url": "https://example.org/q", "version": "1",
        "status": "active", "title": "Mood", "_title": shadow("es", "Ánimo"),
        "extension": [{"url": "https://intake.example.org/fhir/StructureDefinition/flag", "extension": [
            {"url": "id", "valueCode": "f1"},
            {"url": "patientGuidance", "valueString": "Call now.", "_valueString": shadow("es", "Llame ahora.")},
        ]}],
        "item": [{
            "linkId": "g", "type": "group", "text": "Feelings", "_text": shadow("es", "Sentimientos"),
            "extension": [{"url": "https://intake.example.org/fhir/StructureDefinition/instrument", "extension": [
                {"url": "title", "valueString": "Scale", "_valueString": shadow("es", "Escala")},
                {"url": "validatedLanguage", "valueCode": "en"},
            ]}],
            "item": [{
                "linkId": "a", "type": "choice", "text": "Down?", "_text": shadow("es", "¿Decaído?"),
                "answerOption": [
                    {"valueCoding": {"system": "http://loinc.org", "code": "LA33-6", "display": "Yes",
                                     "_display": shadow("es", "Sí")}},
                    {"valueString": "Maybe", "_valueString": shadow("fr", "Peut-être")},
                ],
            }],
        }],
    }


def test_translation_reads_the_requested_language_only() -> None:
    q = questionnaire()
    assert languages(q) == {"es", "fr"}
    assert translations.translation(q, "title", "es") == "Ánimo"
    assert translations.translation(q, "title", "fr") is None
    assert translations.translation(q, "status", "es") is None
    assert translations.base_language(q) == "en"
    assert translations.base_language({}) == "en"


def test_localize_replaces_translated_strings_keeps_the_rest_and_drops_shadows() -> None:
    q = questionnaire()
    es = translations.localize(q, "es")
    assert es["title"] == "Ánimo" and es["language"] == "es"
    group = es["item"][0]
    assert group["text"] == "Sentimientos"
    question = group["item"][0]
    assert question["text"] == "¿Decaído?"
    assert question["answerOption"][0]["valueCoding"] == {
        "system": "http://loinc.org",
        "code": "LA33-6",
        "display": "Sí",
    }
    assert question["answerOption"][1] == {"valueString": "Maybe"}  # no Spanish: the base text stays
    assert "_text" not in json.dumps(es) and q["title"] == "Mood"  # the original is untouched
    assert translations.flag_guidance(es, "f1") == "Llame ahora."
    assert translations.flag_guidance(q, "f1") == "Call now."
    assert translations.flag_guidance(q, "nope") is None
    instrument = instrument_of(build_item(q["item"][0]))
    assert instrument is not None and instrument.validated_languages == ("en",)
    assert instrument.validated_in("en") and not instrument.validated_in("es")
    spanish = instrument_of(build_item(es["item"][0]))
    assert spanish is not None and spanish.title == "Escala"


def test_missing_lists_every_untranslated_patient_facing_string() -> None:
    q = questionnaire()
    assert translations.missing(q, "es") == ["item[g].item[a].answerOption[1].valueString"]
    del q["item"][0]["_text"]
    del q["extension"][0]["extension"][1]["_valueString"]
    assert translations.missing(q, "es") == [
        "Questionnaire.extension[0].extension[1].valueString",
        "item[g].text",
        "item[g].item[a].answerOption[1].valueString",
    ]


def test_a_pictures_alt_text_needs_its_translation() -> None:
    q = questionnaire()
    media = {"url": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-itemMedia",
             "valueAttachment": {"contentType": "image/svg+xml", "url": "/static/img/x.svg", "title": "A chart"}}
    q["item"][0]["item"][0].setdefault("extension", []).append(media)
    where = f"item[g].item[a].extension[{len(q['item'][0]['item'][0]['extension']) - 1}].valueAttachment.title"
    assert where in translations.missing(q, "es")
    spanish = [{"url": "lang", "valueCode": "es"}, {"url": "content", "valueString": "Un gráfico"}]
    media["valueAttachment"]["_title"] = {
        "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/translation", "extension": spanish}]}
    assert where not in translations.missing(q, "es")


def test_translations_on_choice_type_values_pass_the_model() -> None:
    """fhir.resources has no field for `_valueString`; the check sets it aside and checks it as an Element."""
    q = questionnaire()
    assert model_errors(Questionnaire, q) == []
    q["extension"][0]["extension"][1]["_valueString"] = {"extension": [{"valueCode": "es"}]}
    errors = model_errors(Questionnaire, q)
    assert errors and errors[0][0].startswith("extension.0.extension.1._valueString.extension.0")


@pytest.mark.parametrize("path", sorted(FORMS.glob("*.json")), ids=lambda p: p.stem)
def test_every_form_carries_spanish_for_everything_a_patient_reads(path: Path) -> None:
    resource = json.loads(path.read_text(encoding="utf-8"))
    assert resource.get("language") == "en"
    assert translations.missing(resource, "es") == []
    assert languages(resource) == {"es"}


def test_the_catalog_builds_a_localized_form_once_with_the_same_structure() -> None:
    catalog = load_catalog(FORMS)
    for form in catalog:
        spanish = catalog.localized(form, "es")
        assert catalog.localized(form, "es") is spanish
        assert catalog.localized(form, "en") is form
        assert [p.key for p in spanish.pages] == [p.key for p in form.pages]
        assert list(spanish.by_link) == list(form.by_link)
        assert spanish.canonical == form.canonical
        assert spanish.title != form.title
        # The localized Questionnaire lints clean: the engine can trust it like the base one.
        assert [i for i in lint(spanish.resource) if i.severity == "error"] == []


def test_published_instruments_say_which_language_their_wording_is_validated_in() -> None:
    catalog = load_catalog(FORMS)
    validated = {}
    for form in catalog:
        for item in form.walk():
            instrument = instrument_of(item)
            if instrument:
                validated[instrument.title] = instrument.validated_languages
    titles = " ".join(t for t, langs in validated.items() if langs == ("en",))
    for name in ("PSS-10", "PHQ-4", "PHQ-9", "GAD-7", "MNSI", "MEDAS"):
        assert name in titles


def test_missing_names_an_untranslated_required_message_and_picture_alt_text() -> None:
    q = questionnaire()
    question = q["item"][0]["item"][0]
    question["extension"] = [
        {"url": "https://intake.example.org/fhir/StructureDefinition/requiredMessage", "valueString": "Select one"},
        {"url": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-itemMedia",
         "valueAttachment": {"contentType": "image/svg+xml", "url": "/static/img/x.svg", "title": "A chart"}},
    ]
    assert translations.missing(q, "es") == [
        "item[g].item[a].extension[0].valueString",
        "item[g].item[a].extension[1].valueAttachment.title",
        "item[g].item[a].answerOption[1].valueString",
    ]
