"""Whole journeys in the browser: stop and continue in another browser, change language half-way,
no JavaScript at all."""

from __future__ import annotations

from typing import Any

from intake.services import services
from tests.browser.support import (
    CONTINUE,
    PHONE,
    PROJECT_ROOT,
    answer_by_mouse,
    answer_quickly,
    continue_by_mouse,
    foreign_strings,
    html_lang,
    is_question_page,
    page_path,
    questions,
    texts,
)


def _start(page: Any, link: str) -> None:
    page.goto(link)
    assert page_path(page) == "/intake"
    with page.expect_navigation():
        page.click("main a.button")
    assert is_question_page(page), page.url


def _open_sections(page: Any) -> None:
    """Open every "Show answers" section of the review page."""
    page.locator("main details").evaluate_all("els => els.forEach(e => e.open = true)")


def _state(page: Any) -> dict[str, Any]:
    """What the page's questions hold: checked options or typed value, by field name."""
    return {q["name"]: q.get("checked", q.get("value")) for q in questions(page)}


def test_leave_half_way_and_continue_in_a_new_browser(live: Any, patient_link: str, new_page: Any) -> None:
    page = new_page()
    _start(page, patient_link)
    saved: dict[str, dict[str, Any]] = {}
    for n in range(3):
        answer_by_mouse(page, {"bsfs-hard-pct": "15"} if n == 1 else {})
        saved[page_path(page)] = _state(page)
        continue_by_mouse(page)
    stopped_at = page_path(page)
    answer_by_mouse(page)  # answered but never sent: the browser is closed here
    page.context.close()

    other = new_page()  # new cookies: nothing of the first session
    other.goto(patient_link)
    assert page_path(other) == "/intake"
    resume = other.locator("main a.button")
    assert resume.inner_text().strip() == "Continue where you stopped"
    with other.expect_navigation():
        resume.click()
    assert page_path(other) == stopped_at, "should continue at the first page not sent"
    assert not any(q["answered"] for q in questions(other)), "a page never sent has no answers"
    for path, state in saved.items():
        other.goto(live.url + path)
        assert _state(other) == state, path


def _catalog_messages() -> set[str]:
    """The English UI messages (msgids) of the Spanish catalog, whole strings only (no placeholders)."""
    from babel.messages.pofile import read_po

    with (PROJECT_ROOT / "intake" / "translations" / "es" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f)
    ids = {m.id for m in catalog if m.id and isinstance(m.id, str) and "%(" not in m.id}
    assert len(ids) > 20, "the Spanish catalog looks empty"
    return ids


def _validated_in_english_pages(app: Any) -> set[str]:
    """The page that says the questions are a translation: the first one, in the intake's order,
    holding a group of an instrument validated in other languages than Spanish (the notice is said
    once per intake, naming every such instrument)."""
    catalog = services(app).catalog
    for key in ("digestive", "neuropathy", "autoimmune", "diet", "stress"):
        form = catalog.by_key[key]
        for page in form.pages:
            for item in page.walk():
                for ext in (item.raw.get("extension") or []) if item.type == "group" else []:
                    languages = [
                        s.get("valueCode") for s in ext.get("extension") or [] if s.get("url") == "validatedLanguage"
                    ]
                    if languages and "es" not in languages:
                        return {f"/intake/{form.key}/{page.key}"}
    return set()


def test_switch_to_spanish_half_way_keeps_answers_and_finishes_in_spanish(live: Any, new_page: Any) -> None:
    # The English reference: every UI message of the catalog, and every string of the same intake's
    # pages rendered in English in another browser (another patient), questionnaire wording included.
    english = _catalog_messages()
    ref = new_page()
    _start(ref, live.invite(name="Reference Patient"))
    while is_question_page(ref):
        english.update(t["text"] for t in texts(ref))
        answer_quickly(ref)
        continue_by_mouse(ref)
    _open_sections(ref)
    english.update(t["text"] for t in texts(ref))  # the review page, every section's answers shown
    assert "Your answers have been sent" in english

    validated = _validated_in_english_pages(live.app)
    assert validated, "no instrument says which language it was validated in"
    link = live.invite()
    page = new_page(lang="en")
    _start(page, link)
    assert html_lang(page) == "en"
    # The first page: the reason for the visit, typed (free text is kept across the switch too).
    first = page_path(page)
    assert first == "/intake/digestive/digestive-reason", first
    answer_by_mouse(page, {"reason-for-visit": "Tummy pain"})
    first_state = _state(page)
    assert "Tummy pain" in first_state.values(), first_state
    continue_by_mouse(page)
    answer_by_mouse(page)  # the alarm features
    continue_by_mouse(page)

    # Half-way through the third page: a choice and a typed number, not sent yet.
    second = page_path(page)
    q = {x["name"]: x for x in questions(page)}
    page.check(f"#{q['q-bsfs-usual']['ids'][3]}")
    page.fill("#q-bsfs-hard-pct", "37")
    typed = _state(page)
    with page.expect_navigation():
        page.locator(".language-switch [lang=es]").click()

    assert page_path(page) == second
    assert html_lang(page) == "es"
    assert page.locator(".error-summary").count() == 0, "switching language judged the page"
    assert _state(page) == typed, "what was typed on the page was lost when switching language"
    problems = {second: foreign_strings(page, "es", english, allowed={"37"})}
    assert (page.locator(".translation-notice").count() > 0) == (second in validated)
    assert page.locator(".language-switch [lang=en]").count() == 1

    # The choice is kept on the intake: the link opened in another browser (English by its
    # Accept-Language) continues in Spanish.
    elsewhere = new_page(lang="en")
    elsewhere.goto(link)
    assert page_path(elsewhere) == "/intake" and html_lang(elsewhere) == "es"
    elsewhere.context.close()

    # The saved page is still answered, and Spanish.
    page.goto(live.url + first)
    assert html_lang(page) == "es"
    assert _state(page) == first_state
    problems[first] = foreign_strings(page, "es", english)
    page.goto(live.url + second)

    # Finish in Spanish.
    answer_by_mouse(page)
    continue_by_mouse(page)
    while is_question_page(page):
        assert html_lang(page) == "es", page.url
        problems[page_path(page)] = foreign_strings(page, "es", english)
        notices = page.locator(".translation-notice")
        if page_path(page) in validated:
            assert notices.count() >= 1, f"{page.url}: no notice that the instrument was validated in English"
            assert "inglés" in notices.first.inner_text(), notices.first.inner_text()
        else:
            assert notices.count() == 0, page.url
        answer_quickly(page)
        continue_by_mouse(page)
    assert page_path(page) == "/intake/review"
    _open_sections(page)  # the answers too, not only the sections' titles
    problems["/intake/review"] = foreign_strings(page, "es", english, allowed={"Tummy pain"})
    with page.expect_navigation():
        page.click(CONTINUE)
    assert page_path(page) == "/intake/done"
    assert html_lang(page) == "es"
    problems["/intake/done"] = foreign_strings(page, "es", english)
    english_left = {path: found for path, found in problems.items() if found}
    assert not english_left, "English strings on Spanish pages:\n" + "\n".join(
        f"{path}: {', '.join(found)}" for path, found in english_left.items())


def test_without_javascript_the_intake_completes(live: Any, patient_link: str, new_page: Any) -> None:
    page = new_page(viewport=PHONE, java_script_enabled=False)
    _start(page, patient_link)
    visited = []
    while is_question_page(page):
        visited.append(page_path(page))
        assert len(visited) < 25, visited
        # Clicks and typing on the first pages (follow-ups are all shown without JavaScript), then
        # the controls are set from a script to keep the run short.
        answer = answer_by_mouse if len(visited) <= 2 else answer_quickly
        answer(page, {"gi-af5": "2018-11", "reason-for-visit": "Tummy pain"})
        continue_by_mouse(page)
        assert page.locator(".error-summary").count() == 0, page.locator(".error-summary").inner_text()
    assert page_path(page) == "/intake/review"
    assert len(visited) >= 10
    # The answers are in closed "Show answers" sections, which open without JavaScript too.
    assert "2018" in (page.locator("main").text_content() or "")
    assert "2018" not in page.locator("main").inner_text(), "the sections' answers start closed"
    summaries = page.locator("main details.review-section__details > summary")
    assert summaries.count() >= 5
    for i in range(summaries.count()):
        summaries.nth(i).click()
    assert page.locator("main details:not([open])").count() == 0
    shown = page.locator("main").inner_text()
    assert "2018" in shown and "Tummy pain" in shown
    with page.expect_navigation():
        page.click(CONTINUE)
    assert page_path(page) == "/intake/done"
