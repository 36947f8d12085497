"""Issue 19's targets for the length of the intake, measured in Chromium for a patient with
nothing to report (every yes/no "No", the first option elsewhere, nothing typed that is
optional), and the page pieces that shorten it (date boxes, exclusive check boxes).

Printed (run with `-s` to see them; also in build/test-output/intake-length.txt):
- form fields and question pages without JavaScript: a form field is one question's controls (a
  radio group, a set of check boxes, a date's boxes, one input), as `support.questions` reads
  them; without JavaScript every same-page follow-up is shown;
- the questions visible with JavaScript, summed over the pages as the patient leaves them;
- the median question page's height in screens at 375 x 812, and the check-answers page's.

Each target is asserted; one the forms on `main` do not meet yet is an expected failure with
the figure in its reason, so the measurement still runs and a fix turns it into a pass.
Screenshots (phone and desktop, English and Spanish) of a date question, a page with errors and
the check-answers page go to build/test-output/screenshots/length-*.png.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.browser.axe import blocking, run_axe
from tests.browser.conftest import serving
from tests.browser.support import (
    CONTINUE,
    OUTPUT,
    PHONE,
    answer_quickly,
    continue_by_mouse,
    html_lang,
    is_question_page,
    page_path,
    questions,
    screenshot,
)
from tests.conftest import AppFactory

# The targets.
MAX_FIELDS_NO_JS = 90
MAX_PAGES_NO_JS = 12
MAX_VISIBLE_WITH_JS = 60
MAX_MEDIAN_SCREENS = 2.5
MAX_REVIEW_SCREENS = 8

DATE_PAGE = "/intake/digestive/digestive-alarm"  # "When did your bowel symptoms first start?"
DATE_FIELD = "q-gi-af5"


def start_intake(page: Any, link: str, lang: str) -> None:
    """Open the link, in `lang` (the language switch if the browser's language did not give it),
    and press Start now."""
    page.goto(link)
    assert page_path(page) == "/intake"
    if html_lang(page) != lang:
        with page.expect_navigation():
            page.locator(f".language-switch [lang={lang}]").click()
    with page.expect_navigation():
        page.click("main a.button")
    assert is_question_page(page), page.url


# An answer that reports nothing, by the words of its option (English: the measured walk's).
NOTHING = ("no", "never", "not at all", "none of these", "none")

_OPTIONS_JS = """() => [...document.querySelectorAll('main form input[type=radio], main form input[type=checkbox]')]
  .map(el => [el.name, el.value, (document.querySelector('label[for="' + el.id + '"]') || {}).textContent || '',
              el.dataset.behaviour === 'exclusive', el.type])"""


def nothing_to_report(page: Any) -> dict[str, Any]:
    """{linkId: answer} choosing, where a question offers one, the option that reports nothing
    ("No", "Never", "Not at all", an exclusive "None of these"); other questions get
    `answer_quickly`'s defaults (the first option, a number, a month)."""
    best: dict[str, tuple[int, str, str]] = {}  # name -> (rank, value, input type)
    for name, value, label, exclusive, kind in page.evaluate(_OPTIONS_JS):
        words = "none of these" if exclusive else label.strip().lower()
        if words in NOTHING and (name not in best or NOTHING.index(words) < best[name][0]):
            best[name] = (NOTHING.index(words), value, kind)
    return {name.removeprefix("q-"): [value] if kind == "checkbox" else value
            for name, (_rank, value, kind) in best.items()}


def screens(page: Any) -> float:
    """The page's full height in screens of the phone viewport."""
    return page.evaluate("document.documentElement.scrollHeight") / PHONE["height"]


@dataclass
class Walk:
    """What one run through the question pages saw."""

    pages: list[str] = field(default_factory=list)
    fields: int = 0  # questions shown when each page loads
    visible: int = 0  # questions visible as the patient leaves each page
    heights: list[float] = field(default_factory=list)
    review_screens: float = 0.0


def walk(page: Any, link: str, lang: str = "en") -> Walk:
    """From the link to the check-answers page with nothing to report; measures on the way."""
    start_intake(page, link, lang)
    seen = Walk()
    while is_question_page(page):
        seen.pages.append(page_path(page))
        assert len(seen.pages) < 40, seen.pages
        seen.fields += len(questions(page))
        seen.heights.append(screens(page))
        answer_quickly(page, nothing_to_report(page))
        seen.visible += len(questions(page))
        continue_by_mouse(page)
        assert page.locator(".error-summary").count() == 0, page.locator(".error-summary").inner_text()
    assert page_path(page) == "/intake/review", page_path(page)
    seen.review_screens = screens(page)
    return seen


# Targets the forms on `main` did not meet when this test was written (the figures then, main at
# a744529, before issue 19's form changes): each is an expected failure while it stays unmet.
# Every other target is a plain assertion: a page that grows past it fails the test.
NOT_MET_ON_MAIN = {
    "form fields without JavaScript": 138,
    "question pages without JavaScript": 13,
    "visible questions with JavaScript": 100,
    "median question page, screens at 375x812": 3.1,
}


@dataclass(frozen=True)
class Target:
    name: str
    figure: float
    limit: float

    @property
    def met(self) -> bool:
        return self.figure <= self.limit

    def __str__(self) -> str:
        return f"{self.name}: {self.figure:g} (target ≤ {self.limit:g}){'' if self.met else '  NOT MET'}"


def test_the_intake_length_targets(browser: Any, make_app: AppFactory, new_page: Any) -> None:
    with serving(make_app) as live:
        without_js = walk(new_page(viewport=PHONE, java_script_enabled=False), live.invite())
        with_js = walk(new_page(viewport=PHONE), live.invite())
    targets = [
        Target("form fields without JavaScript", without_js.fields, MAX_FIELDS_NO_JS),
        Target("question pages without JavaScript", len(without_js.pages), MAX_PAGES_NO_JS),
        Target("visible questions with JavaScript", with_js.visible, MAX_VISIBLE_WITH_JS),
        Target("median question page, screens at 375x812", round(statistics.median(with_js.heights), 2),
               MAX_MEDIAN_SCREENS),
        Target("check-answers page, screens at 375x812", round(with_js.review_screens, 2), MAX_REVIEW_SCREENS),
    ]
    detail = [f"  {path}: {height:.2f} screens" for path, height in zip(with_js.pages, with_js.heights, strict=True)]
    report = "\n".join(["Intake length, a patient with nothing to report:", *map(str, targets),
                        "Question pages (JavaScript on):", *detail])
    print("\n" + report)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "intake-length.txt").write_text(report + "\n", encoding="utf-8")
    assert without_js.pages == with_js.pages  # the same pages either way for this patient
    failed = [str(t) for t in targets if not t.met and t.name not in NOT_MET_ON_MAIN]
    assert not failed, "\n".join(failed)
    known = [t for t in targets if not t.met]
    if known:
        pytest.xfail("not met by the forms yet: " + "; ".join(f"{t.name} {t.figure:g} > {t.limit:g}" for t in known))


@pytest.mark.parametrize("lang", ["en", "es"])
def test_date_boxes_errors_and_check_answers_as_a_patient_sees_them(browser: Any, make_app: AppFactory,
                                                                    new_page: Any, lang: str) -> None:
    """The date question, its error (the summary link focuses the wrong box, the typed month is
    kept) and the check-answers page, photographed in each language."""
    with serving(make_app) as live:
        page = new_page(viewport=PHONE, lang=lang, bypass_csp=True)  # axe is injected: CSP forbids it
        start_intake(page, live.invite(questionnaires=["digestive"]), lang)
        page.goto(live.url + DATE_PAGE)
        assert html_lang(page) == lang
        assert page.locator(f"#{DATE_FIELD}-month").get_attribute("inputmode") == "numeric"
        assert page.locator(f"#{DATE_FIELD}-month").get_attribute("autocomplete") == "off"
        assert page.locator(f"#{DATE_FIELD}-day").count() == 0
        legend = page.locator(f"fieldset#{DATE_FIELD} legend").inner_text()
        assert legend, "the date's fieldset has a legend"
        assert not blocking(run_axe(page, "length-date-question", lang))
        screenshot(page, "length-date-question", lang)
        answer_quickly(page)
        page.fill(f"#{DATE_FIELD}-month", "6")
        page.fill(f"#{DATE_FIELD}-year", "")
        continue_by_mouse(page)
        summary = page.locator(".error-summary")
        assert summary.count() == 1
        expected = {"en": "Date must include a year", "es": "La fecha debe incluir un año"}[lang]
        assert expected in summary.inner_text()
        assert page.input_value(f"#{DATE_FIELD}-month") == "6"  # what was typed is kept
        assert not blocking(run_axe(page, "length-error", lang))
        screenshot(page, "length-error", lang)
        summary.locator("a").first.click()
        assert page.evaluate("document.activeElement.id") == f"{DATE_FIELD}-year"
        page.fill(f"#{DATE_FIELD}-year", "2019")
        continue_by_mouse(page)
        while is_question_page(page):
            answer_quickly(page)
            continue_by_mouse(page)
        assert page_path(page) == "/intake/review"
        screenshot(page, "length-check-answers", lang)
        with page.expect_navigation():
            page.click(CONTINUE)
        assert page_path(page) == "/intake/done"


# --- exclusive check boxes (with JavaScript) and an item's picture ------------------------------

EXCLUSIVE = "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive"
ITEM_MEDIA = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-itemMedia"


def _relative(code: str, display: str, exclusive: bool = False) -> dict[str, Any]:
    option: dict[str, Any] = {"valueCoding": {"system": "urn:test", "code": code, "display": display}}
    if exclusive:
        option["extension"] = [{"url": EXCLUSIVE, "valueBoolean": True}]
    return option


RELATIVES = {
    "resourceType": "Questionnaire", "id": "relatives", "url": "https://intake.example.org/fhir/Questionnaire/relatives",
    "version": "1", "status": "active", "title": "Family",
    "item": [{"linkId": "page", "type": "group", "text": "Your family", "item": [
        {"linkId": "coeliac", "type": "choice", "repeats": True, "required": True,
         "text": "Which relatives have coeliac disease?",
         "answerOption": [_relative("mother", "Mother"), _relative("father", "Father"),
                          _relative("none", "None of these", exclusive=True)]},
        {"linkId": "stool", "type": "choice", "text": "Which type is most like your stool?",
         "extension": [{"url": ITEM_MEDIA, "valueAttachment": {
             "contentType": "image/svg+xml", "url": "/static/img/bristol-stool-chart.svg",
             "title": "The Bristol stool chart: seven types"}}],
         "answerOption": [_relative("t1", "Type 1"), _relative("t4", "Type 4")]}]}],
}


def test_none_of_these_unticks_the_relatives_and_they_untick_it(browser: Any, make_app: AppFactory,
                                                                 new_page: Any) -> None:
    with serving(make_app, forms={"relatives": RELATIVES}, INTAKE_QUESTIONNAIRES=["relatives"]) as live:
        page = new_page(viewport=PHONE)
        start_intake(page, live.invite(questionnaires=["relatives"]), "en")
        assert page.locator(".checkboxes__divider").inner_text().strip() == "or"
        picture = page.locator("img.item-media")
        assert picture.get_attribute("alt") == "The Bristol stool chart: seven types"
        assert picture.evaluate("img => img.complete && img.naturalWidth > 0"), "the chart did not load"
        assert picture.bounding_box()["width"] <= PHONE["width"] - 30  # inside the page's margins

        def ticked() -> list[str]:
            return page.eval_on_selector_all("input[name=q-coeliac]:checked", "els => els.map(e => e.value)")

        page.check("input[value=mother]")
        page.check("input[value=father]")
        assert ticked() == ["mother", "father"]
        page.check("input[value=none]")
        assert ticked() == ["none"]
        page.check("input[value=father]")
        assert ticked() == ["father"]
        screenshot(page, "length-exclusive-and-picture", "en")
        # The server refuses both together when a script did not untick them.
        page.evaluate("document.querySelector('input[value=none]').checked = true")
        continue_by_mouse(page)
        assert "Select 'None of these' or the other answers, not both" in page.locator(".error-summary").inner_text()
        page.uncheck("input[value=father]")
        page.check("input[value=none]")
        continue_by_mouse(page)
        assert page_path(page) == "/intake/review"


# --- the autoimmune family page: which conditions first, then their relatives ---------------------

FAMILY_PAGE = "/intake/autoimmune/autoimmune-family"
COELIAC = "396331005"  # SNOMED CT, the value of "Coeliac disease" in the first family question


FAMILY_HINT = {"en": "Blood relatives are people related to you by birth, not by marriage.",
               "es": "Los familiares de sangre son las personas emparentadas con usted por nacimiento, "
                     "no por matrimonio."}


@pytest.mark.parametrize("lang", ["en", "es"])
def test_family_page_asks_which_conditions_first_and_opens_their_relatives(browser: Any, make_app: AppFactory,
                                                                           new_page: Any, lang: str) -> None:
    """Nothing to report: one question. A condition ticked opens its relatives question under it, a
    relative named opens the age; unticking the condition hides both again. Photographed (phone and
    desktop) with nothing ticked and with coeliac disease ticked."""
    with serving(make_app) as live:
        page = new_page(viewport=PHONE, lang=lang)
        start_intake(page, live.invite(questionnaires=["autoimmune"]), lang)
        page.goto(live.url + FAMILY_PAGE)
        assert html_lang(page) == lang
        assert [q["name"] for q in questions(page)] == ["q-ai-family-conditions"]
        assert screens(page) <= 2.5
        hint = page.locator("#q-ai-family-conditions-hint").inner_text()
        assert hint == FAMILY_HINT[lang]
        assert page.locator("#q-ai-family-conditions-group .checkboxes__divider").count() == 1  # before None only
        screenshot(page, "family-nothing-ticked", lang)

        def shown() -> list[str]:
            return [q["name"] for q in questions(page)]

        page.check(f"input[name=q-ai-family-conditions][value='{COELIAC}']")
        assert shown() == ["q-ai-family-conditions", "q-ai-family-coeliac"]
        page.check("input[name=q-ai-family-coeliac][value=PRN]")
        assert shown() == ["q-ai-family-conditions", "q-ai-family-coeliac", "q-ai-family-coeliac-age"]
        screenshot(page, "family-coeliac-ticked", lang)
        page.uncheck(f"input[name=q-ai-family-conditions][value='{COELIAC}']")
        assert shown() == ["q-ai-family-conditions"]  # the age hides with its relatives question
        page.check("input[name=q-ai-family-conditions][value=none]")
        continue_by_mouse(page)
        assert page.locator(".error-summary").count() == 0
        assert page_path(page) != FAMILY_PAGE
