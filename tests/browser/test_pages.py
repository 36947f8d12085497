"""Every page type in English and Spanish: axe-core (WCAG 2.1 A/AA + best practice), reflow at
320 px, screenshots at phone and desktop width; touch target sizes on a question page.

Each page type is visited once per language and every check runs on it there; the problems are
gathered and reported together. Screenshots: build/test-output/screenshots/<type>-<lang>-<size>.png.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from intake.services import services
from intake.storage.models import Intake
from tests.browser.axe import blocking, run_axe
from tests.browser.support import (
    CONTINUE,
    NARROW,
    PHONE,
    answer_quickly,
    continue_by_mouse,
    html_lang,
    is_question_page,
    page_path,
    reflow_width,
    screenshot,
)
from tests.web.flow import STAFF, add_staff

HIGH_DEPRESSION = {"phq4-3": "LA6571-9", "phq4-4": "LA6570-1"}  # PHQ-2 = 5: the PHQ-9 page is asked
SELF_HARM = {"phq9-9": "LA6569-3"}  # "Several days": the emergency guidance


class Checks:
    """Runs every check on the page in front of it; collects what fails."""

    def __init__(self, page: Any, lang: str) -> None:
        self.page = page
        self.lang = lang
        self.problems: list[str] = []
        self.seen: list[str] = []

    def __call__(self, page_type: str, lang: str | None = None, shoot: bool = True) -> None:
        lang = lang or self.lang
        page = self.page
        self.seen.append(page_type)
        if html_lang(page) != lang:
            self.problems.append(f"{page_type} [{lang}]: <html lang={html_lang(page)!r}>")
        self.problems += blocking(run_axe(page, page_type, lang))
        width = reflow_width(page)
        if width > NARROW["width"]:
            self.problems.append(f"{page_type} [{lang}]: scrolls sideways at 320 px (scrollWidth {width})")
        if shoot:
            screenshot(page, page_type, lang)


def _in_language(page: Any, lang: str) -> None:
    """Use the page's language switch if the page is not in `lang` yet."""
    if html_lang(page) != lang:
        with page.expect_navigation():
            page.locator(f".language-switch [lang={lang}]").click()


# Question pages photographed: yes/no radios and a typed month; choices and numbers; check boxes.
PHOTOGRAPHED = {"digestive-alarm", "digestive-bowel", "diet-more"}


def _finish_pages(page: Any, check: Checks | None, answers: dict[str, str] | None = None) -> None:
    while is_question_page(page):
        if check is not None:
            key = page_path(page).rsplit("/", 1)[1]
            check("question-" + key, shoot=key in PHOTOGRAPHED)
        answer_quickly(page, answers)
        continue_by_mouse(page)
        assert page.locator(".error-summary").count() == 0, page.locator(".error-summary").inner_text()


@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_page_type(lang: str, live: Any, new_page: Any) -> None:
    page = new_page(viewport=PHONE, lang=lang, bypass_csp=True)  # axe is injected: CSP forbids it
    check = Checks(page, lang)

    page.goto(live.url + "/")
    _in_language(page, lang)
    check("home")
    page.goto(live.url + "/i/this-is-not-a-valid-link")
    check("invalid-link")
    page.goto(live.url + "/intake")
    check("session-ended")

    page.goto(live.invite())
    _in_language(page, lang)
    check("start")
    with page.expect_navigation():
        page.click("main a.button")
    # The first page: the reason for the visit, free text and optional; left blank, it is no error.
    assert page_path(page) == "/intake/digestive/digestive-reason"
    assert page.locator("main form textarea").count() == 1
    check("question-digestive-reason")
    with page.expect_navigation():
        page.click(CONTINUE)
    assert page.locator(".error-summary").count() == 0, "the reason for the visit may be left blank"
    assert page_path(page) == "/intake/digestive/digestive-alarm"
    with page.expect_navigation():
        page.click(CONTINUE)  # nothing answered
    assert page.locator(".error-summary").count() == 1
    check("question-with-errors")
    page.goto(page.url)  # the same page, fresh
    _finish_pages(page, check)
    assert page_path(page) == "/intake/review"
    check("review")

    # A changed answer turns the PHQ-9 page on after the review: its questions come next. A
    # patient who goes back to the review page instead and sends is told what is missing.
    page.goto(live.url + "/intake/stress/stress-phq4?from=review")
    answer_quickly(page, HIGH_DEPRESSION)
    continue_by_mouse(page)
    assert page_path(page) == "/intake/stress/stress-phq9"
    page.goto(live.url + "/intake/review")
    with page.expect_navigation():
        page.click(CONTINUE)
    assert page.locator(".error-summary").count() == 1, "sending with a page unanswered should list it"
    check("review-with-problems")
    with page.expect_navigation():
        page.locator(".error-summary a").first.click()
    assert "/intake/stress/stress-phq9" in page.url
    check("question-stress-phq9")
    answer_quickly(page, SELF_HARM)
    continue_by_mouse(page)
    # The emergency answer interrupts at once (the GOV.UK interruption card), then carries on.
    assert page_path(page) == "/intake/help"
    check("urgent-help")
    with page.expect_navigation():
        page.click("main a.button")
    assert page_path(page) == "/intake/review"
    with page.expect_navigation():
        page.click(CONTINUE)
    assert page_path(page) == "/intake/done"
    assert page.locator(".interruption").count() == 1, "PHQ-9 item 9 above 'Not at all' shows emergency guidance"
    check("done-emergency")
    with services(live.app).sessions() as session:
        emergency_id = session.scalars(select(Intake.id).where(Intake.status == "completed")).one()

    # Another patient with nothing alarming (and a short intake): the plain confirmation page.
    page.goto(live.invite(name="Calm Patient", questionnaires=["neuropathy"]))
    _in_language(page, lang)
    with page.expect_navigation():
        page.click("main a.button")
    _finish_pages(page, None)
    with page.expect_navigation():
        page.click(CONTINUE)
    assert page_path(page) == "/intake/done"
    assert page.locator(".interruption, .urgent-guidance").count() == 0
    check("done")

    if lang == "en":  # staff pages are English only
        add_staff(live.app)
        page.goto(live.url + "/staff/login")
        check("staff-sign-in")
        page.fill("#username", STAFF[0])
        page.fill("#password", STAFF[1])
        with page.expect_navigation():
            page.click("main form button[type=submit]")
        page.goto(f"{live.url}/clinician/intakes/{emergency_id}")
        assert page.locator("h1").count() == 1
        check("clinician-summary")

    assert not check.problems, "\n".join(check.problems)


def test_touch_targets_are_at_least_44_px(live: Any, patient_link: str, new_page: Any) -> None:
    """Buttons, the language switch and every radio/check box of question pages: 44 x 44 CSS px."""
    page = new_page(viewport=PHONE)
    page.goto(patient_link)
    small = []
    for path in ("/intake", "/intake/digestive/digestive-alarm", "/intake/diet/diet-more",
                 "/intake/autoimmune/autoimmune-family"):
        page.goto(live.url + path)
        if path.endswith("autoimmune-family"):  # a condition ticked shows its relatives' check boxes
            page.locator("input[type=checkbox]").first.check()
        boxes = page.evaluate("""() => [...document.querySelectorAll(
            'button:not([hidden]), .button, .language-switch a, .language-switch button, '
            + 'input[type=radio], input[type=checkbox]')]
          .filter(el => el.checkVisibility())
          .map(el => { const r = el.getBoundingClientRect();
                       return {what: el.outerHTML.slice(0, 90), w: r.width, h: r.height}; })""")
        assert boxes, path
        small += [f"{path}: {b['w']:.0f}x{b['h']:.0f} {b['what']}" for b in boxes if b["w"] < 44 or b["h"] < 44]
    assert not small, "touch targets under 44 x 44 px:\n" + "\n".join(small)
