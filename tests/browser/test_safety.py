"""Danger reported in a real browser at phone size: the interruption comes on the next response,
staff are told once whatever the patient does next, and the three confirmation pages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from intake.services import services
from intake.storage.models import FlagRecord
from tests.browser.axe import blocking, run_axe
from tests.browser.conftest import LiveServer, serving
from tests.browser.support import (
    CONTINUE,
    PHONE,
    answer_by_mouse,
    answer_quickly,
    continue_by_mouse,
    is_question_page,
    page_path,
    screenshot,
)
from tests.conftest import AppFactory
from tests.web.flow import complete_intake

RED_FLAGS = "/intake/neuropathy/neuropathy-red-flags"


@pytest.fixture
def notified_live(browser: Any, make_app: AppFactory,
                  webhook: tuple[str, list[dict[str, Any]]]) -> Iterator[LiveServer]:
    """The app served on a free port, notifying staff through a webhook on 127.0.0.1, with a
    deployment's emergency and clinic numbers."""
    with serving(make_app, INTAKE_NOTIFY_WEBHOOK=webhook[0], INTAKE_EMERGENCY_NUMBER="999",
                 INTAKE_CLINIC_PHONE="020 7946 0000") as server:
        yield server


def _flags(live: LiveServer) -> list[tuple[str, str, bool]]:
    """(rule, source, still raised) of every stored flag."""
    with services(live.app).sessions() as session:
        return [(f.rule_id, f.source, f.cleared_at is None) for f in session.scalars(select(FlagRecord))]


def _to(page: Any, path: str) -> None:
    """Answer question pages (harmless defaults) until the page at `path`."""
    while page_path(page) != path:
        assert is_question_page(page), page.url
        answer_quickly(page)
        continue_by_mouse(page)


def test_emergency_answer_interrupts_on_the_next_response(notified_live: LiveServer, new_page: Any,
                                                          webhook: tuple[str, list[dict[str, Any]]]) -> None:
    received = webhook[1]
    link = notified_live.invite()
    page = new_page(viewport=PHONE, bypass_csp=True)  # axe is injected: CSP forbids it
    page.goto(link)
    with page.expect_navigation():
        page.click("main a.button")
    _to(page, RED_FLAGS)
    assert page.locator(".progress").inner_text().startswith("Step 6 of"), "the red flags are on page 6"
    answer_by_mouse(page, {"n-rf2": "true"})
    continue_by_mouse(page)

    # The very next response is the guidance: what to do now, numbers to tap, a way on.
    assert page_path(page) == "/intake/help"
    card = page.locator(".interruption")
    assert card.count() == 1 and "Get help now" in card.inner_text()
    assert page.locator('.interruption a[href="tel:999"]').count() == 1
    assert page.locator('a[href="tel:02079460000"]').count() == 1
    assert not blocking(run_axe(page, "urgent-help", "en"))
    screenshot(page, "urgent-help", "en")
    assert [r["flag"] for r in received] == ["n-rf2"], "staff are told when the page is saved"
    with page.expect_navigation():
        page.click("text=Continue the questionnaire")
    assert is_question_page(page) and page_path(page) != RED_FLAGS

    # The patient leaves here: one notification, one listed flag, nothing sent.
    page.context.close()
    assert [r["flag"] for r in received] == ["n-rf2"]
    assert _flags(notified_live) == [("n-rf2", "draft", True)]

    # Back later in another browser: the answer is changed to No. The flag stays on record.
    other = new_page(viewport=PHONE)
    other.goto(link)
    other.goto(notified_live.url + RED_FLAGS)
    answer_by_mouse(other, {"n-rf2": "false"})
    continue_by_mouse(other)
    assert page_path(other) != "/intake/help"
    assert _flags(notified_live) == [("n-rf2", "draft", False)]

    # Sending the intake notifies nothing more.
    while is_question_page(other):
        answer_quickly(other)
        continue_by_mouse(other)
    assert page_path(other) == "/intake/review"
    with other.expect_navigation():
        other.click(CONTINUE)
    assert page_path(other) == "/intake/done"
    assert [r["flag"] for r in received] == ["n-rf2"]
    assert _flags(notified_live) == [("n-rf2", "draft", False)]


CONFIRMATIONS = {
    "done-unflagged": {"gi-af5": "2005-01"},  # symptoms began at 44: no GI-AF5 review flag either
    "done-urgent": {"n-rf1": "true"},  # weakness spreading over days: urgent, same day
    "done-emergency": {"n-rf2": "true"},
}


def no_to_every_yes_no_choice(app: Any) -> dict[str, Any]:
    """'No' (LOINC LA32-8) for every Yes/No/Not sure question and 'None of these' for the family
    history's check boxes: no personal or family history."""
    out: dict[str, Any] = {}
    for form in services(app).catalog.forms:
        for item in form.walk():
            codes = [(o.get("valueCoding") or {}).get("code") for o in item.options]
            if "LA32-8" in codes:
                out[item.link_id] = "LA32-8"
            elif item.repeats and "none" in codes and item.link_id.startswith("ai-family-"):
                out[item.link_id] = ["none"]
    return out


@pytest.mark.parametrize("kind", sorted(CONFIRMATIONS))
def test_confirmation_pages(kind: str, notified_live: LiveServer, new_page: Any) -> None:
    """Answered over HTTP (tests.web.flow), shown in Chromium with the same session cookie."""
    answers = {**no_to_every_yes_no_choice(notified_live.app), **CONFIRMATIONS[kind]}
    client, _intake_id = complete_intake(notified_live.app, answers)
    cookie = client.get_cookie("session")
    assert cookie is not None
    page = new_page(viewport=PHONE, bypass_csp=True)
    page.context.add_cookies([{"name": "session", "value": cookie.value, "url": notified_live.url}])
    page.goto(notified_live.url + "/intake/done")
    text = page.locator("main").inner_text()
    assert "Your answers have been sent" in text
    nothing_else = "You do not need to do anything else"
    if kind == "done-unflagged":
        assert nothing_else in text and page.locator(".interruption, .urgent-guidance").count() == 0
    else:
        assert nothing_else not in text
    if kind == "done-urgent":
        assert page.locator(".urgent-guidance").count() == 1 and "Contact your clinic today" in text
        assert page.locator('.urgent-guidance a[href="tel:02079460000"]').count() == 1
    if kind == "done-emergency":
        assert page.locator(".interruption").count() == 1 and "Please act on this now" in text
    assert not blocking(run_axe(page, kind, "en"))
    screenshot(page, kind, "en")


def test_the_interruption_works_without_javascript_in_spanish(notified_live: LiveServer, new_page: Any,
                                                              webhook: tuple[str, list[dict[str, Any]]]) -> None:
    page = new_page(viewport=PHONE, lang="es", java_script_enabled=False)
    page.goto(notified_live.invite(questionnaires=["neuropathy"]))
    assert page.locator("html").get_attribute("lang") == "es"
    with page.expect_navigation():
        page.click("main a.button")
    _to(page, RED_FLAGS)
    answer_by_mouse(page, {"n-rf3": "true"})  # new loss of bladder or bowel control: emergency
    continue_by_mouse(page)
    assert page_path(page) == "/intake/help"
    card = page.locator(".interruption").inner_text()
    assert "Busque ayuda ahora" in card and "Llame al 999" in card
    screenshot(page, "urgent-help", "es")
    with page.expect_navigation():
        page.click("text=Continuar con el cuestionario")
    assert page_path(page) == "/intake/review"
    assert [r["flag"] for r in webhook[1]] == ["n-rf3"]
