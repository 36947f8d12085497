"""A whole intake with the keyboard only, on a phone-sized screen; the error summary by keyboard."""

from __future__ import annotations

from typing import Any

from tests.browser.support import (
    CONTINUE,
    PHONE,
    active,
    answer_by_keyboard,
    continue_by_keyboard,
    is_focused,
    is_question_page,
    page_path,
    tab_to,
)

# The legend (radios, check boxes) or label of input `id` is on screen.
LABEL_IN_VIEW = """(id) => {
  const input = document.getElementById(id);
  const fieldset = input.closest('fieldset');
  const title = fieldset ? fieldset.querySelector('legend') : document.querySelector('label[for="' + id + '"]');
  const r = title.getBoundingClientRect();
  return r.top > -2 && r.bottom < window.innerHeight;
}"""

# Answers typed on optional questions (MEDAS: on required ones); the reason for the visit, in the
# first page's text area, is optional too.
TYPED = {"reason-for-visit": "Tummy pain", "gi-af5": "2019-06", "bsfs-hard-pct": "37"}


def test_whole_intake_with_the_keyboard_only(live: Any, patient_link: str, new_page: Any) -> None:
    page = new_page(viewport=PHONE)
    page.goto(patient_link)
    assert page_path(page) == "/intake"
    tab_to(page, "main a.button")  # Start now
    with page.expect_navigation():
        page.keyboard.press("Enter")

    visited = []
    while is_question_page(page):
        path = page_path(page)
        assert path not in visited, f"{path} shown again (it had errors?)"
        visited.append(path)
        assert not page.title().startswith("Error"), path
        answered = answer_by_keyboard(page, TYPED)
        assert answered, f"nothing to answer on {path}"
        if path.endswith("/diet-medas"):
            # Enter in a text box sends the page as Continue does (not the language switch,
            # which is also a submit button of the page's form, and comes first).
            assert is_focused(page, "input.input"), active(page)
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page_path(page) != path and is_question_page(page), page.url
            continue
        continue_by_keyboard(page)
        assert page.locator(".error-summary").count() == 0, (path, page.locator(".error-summary").inner_text())
    assert page_path(page) == "/intake/review", page.url
    assert len(visited) >= 10, visited

    assert visited[0] == "/intake/digestive/digestive-reason", visited

    # The typed answers are on the review page (inside each section's closed "Show answers").
    review = page.locator("main").text_content() or ""
    assert "Tummy pain" in review and "2019" in review and "37" in review

    # Send my answers, past one Change link and one "Show answers" per section.
    tab_to(page, CONTINUE, max_presses=120)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page_path(page) == "/intake/done"
    assert page.locator(".panel h1, .panel h2").count() == 1


def test_error_summary_is_focused_and_its_links_focus_the_fields(live: Any, patient_link: str, new_page: Any) -> None:
    page = new_page(viewport=PHONE)
    page.goto(patient_link)
    tab_to(page, "main a.button")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    # The reason for the visit comes first: optional, so sending it blank is no error.
    assert page_path(page) == "/intake/digestive/digestive-reason"
    continue_by_keyboard(page)
    assert page.locator(".error-summary").count() == 0, "the reason for the visit may be left blank"
    first = page_path(page)
    assert first == "/intake/digestive/digestive-alarm", first

    # Answer only the first question, then send the page: every other required one is missing.
    tab_to(page, "input[type=radio]")
    page.keyboard.press("Space")
    continue_by_keyboard(page)

    assert page_path(page) == first
    summary = page.locator(".error-summary")
    summary.wait_for()
    assert page.title().startswith("Error:"), page.title()
    page.wait_for_function("document.activeElement && document.activeElement.classList.contains('error-summary')")

    links = summary.locator("a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    assert len(hrefs) >= 2, hrefs
    for href in hrefs:
        tab_to(page, f".error-summary a[href='{href}']")
        page.keyboard.press("Enter")
        target_id = href.lstrip("#")
        expected = page.evaluate("""(id) => {
          const t = document.getElementById(id);
          const input = t.matches('input, select, textarea') ? t : t.querySelector('input, select, textarea');
          return input.id;
        }""", target_id)
        assert is_focused(page, f"#{expected}"), f"{href}: focus is on {active(page)}, not #{expected}"
        # Its question is in view, legend or label included.
        in_view = page.evaluate(LABEL_IN_VIEW, expected)
        assert in_view, f"{href}: the question's label is not in view"

    # The review page's Change links open a page at a question: it starts there, focused, in view.
    for target in ("q-gi-af8-1", "q-gi-af5-month"):  # a radio group's first radio; a date's first box
        page.goto(f"{live.url}/intake")  # a new document each time, as from the review page
        page.goto(f"{live.url}{first}?from=review#{target}")
        page.wait_for_load_state("load")
        try:
            page.wait_for_function(f"(id) => document.activeElement && document.activeElement.id === id"
                                   f" && ({LABEL_IN_VIEW})(id)", arg=target, timeout=3000)
        except Exception:
            raise AssertionError(f"#{target}: focus on {active(page)}, label in view: "
                                 f"{page.evaluate(LABEL_IN_VIEW, target)}") from None
