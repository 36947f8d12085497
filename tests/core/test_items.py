"""intake/core/items: what an Item reads from its raw JSON for the pages (date boxes, an
exclusive option, a picture)."""

from __future__ import annotations

import pytest

from intake.core.catalog import load_catalog
from intake.core.items import Media, build_item
from intake.core.translations import localize
from tests.core.factories import FHIR_EXT, FORMS, ext, option, question

ENTRY_FORMAT = FHIR_EXT + "entryFormat"
EXCLUSIVE = FHIR_EXT + "questionnaire-optionExclusive"
ITEM_MEDIA = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-itemMedia"


@pytest.mark.parametrize(
    ("entry_format", "parts"),
    [("YYYY", ("year",)), ("YYYY-MM", ("month", "year")), ("AAAA-MM", ("month", "year")),
     ("YYYY-MM-DD", ("day", "month", "year")), ("DD/MM/YYYY", ("day", "month", "year")),
     (None, ("day", "month", "year"))],
)
def test_a_date_asks_for_the_parts_its_entry_format_has(entry_format, parts):
    extension = [ext(ENTRY_FORMAT, valueString=entry_format)] if entry_format else []
    assert build_item(question("d", "date", extension=extension)).date_parts == parts


def test_the_forms_dates_are_month_and_year_or_a_year():
    """What the pages show for the intake's own forms: no date asks for a day today."""
    catalog = load_catalog(FORMS)
    shapes = {i.date_parts for f in catalog for i in f.walk() if i.type == "date"}
    assert shapes and shapes <= {("year",), ("month", "year")}


def test_exclusive_options_are_read():
    none = option("none")
    none["extension"] = [{"url": EXCLUSIVE, "valueBoolean": True}]
    not_really = option("b")
    not_really["extension"] = [{"url": EXCLUSIVE, "valueBoolean": False}]
    item = build_item(question("rel", "choice", repeats=True, answerOption=[option("a"), not_really, none]))
    assert item.exclusive_options == (none,)


def test_a_picture_is_read_with_its_alt_text_in_each_language():
    title_es = {"extension": [{"url": FHIR_EXT + "translation", "extension": [
        {"url": "lang", "valueCode": "es"}, {"url": "content", "valueString": "La escala"}]}]}
    raw = question("q", "boolean", extension=[{"url": ITEM_MEDIA, "valueAttachment": {
        "contentType": "image/svg+xml", "url": "/static/img/chart.svg", "title": " The chart ", "_title": title_es}}])
    assert build_item(raw).media == Media("/static/img/chart.svg", "image/svg+xml", "The chart")
    assert build_item(localize(raw, "es")).media == Media("/static/img/chart.svg", "image/svg+xml", "La escala")


def test_a_picture_from_another_site_is_not_read():
    raw = question("q", "boolean", extension=[{"url": ITEM_MEDIA, "valueAttachment": {
        "contentType": "image/svg+xml", "url": "https://example.com/x.svg", "title": "x"}}])
    assert build_item(raw).media is None


def test_a_picture_may_have_a_spanish_file_of_its_own():
    """The chart's words are in the picture: a translation on `_url` gives Spanish readers theirs
    (static/img/bristol-stool-chart-es.svg), checked like the base url."""
    def spanish(text):
        return {"extension": [{"url": FHIR_EXT + "translation", "extension": [
            {"url": "lang", "valueCode": "es"}, {"url": "content", "valueString": text}]}]}

    raw = question("q", "boolean", extension=[{"url": ITEM_MEDIA, "valueAttachment": {
        "contentType": "image/svg+xml", "url": "/static/img/bristol-stool-chart.svg",
        "_url": spanish("/static/img/bristol-stool-chart-es.svg"),
        "title": "The chart", "_title": spanish("La escala")}}])
    assert build_item(localize(raw, "es")).media == Media("/static/img/bristol-stool-chart-es.svg", "image/svg+xml",
                                                          "La escala")
    raw["extension"][0]["valueAttachment"]["_url"] = spanish("https://example.com/x.svg")
    assert build_item(localize(raw, "es")).media is None  # a translation cannot lead elsewhere


def test_both_charts_are_in_static():
    for name in ("bristol-stool-chart.svg", "bristol-stool-chart-es.svg"):
        text = (FORMS.parent / "static" / "img" / name).read_text(encoding="utf-8")
        assert text.count("<text") == 14 and "<script" not in text  # seven numbers, seven labels
