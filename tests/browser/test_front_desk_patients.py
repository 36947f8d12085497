"""The front desk by patient in Chromium: a new intake sent by e-mail (a real SMTP server on
127.0.0.1), finding the patient by name, inviting them again from the result, and the
confirmation a new link asks for; axe-core on each page, screenshots at phone and desktop width."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from tests.browser.axe import blocking, run_axe
from tests.browser.conftest import LiveServer, serving
from tests.browser.support import DESKTOP, screenshot
from tests.conftest import AppFactory
from tests.test_notify import Inbox, inbox  # noqa: F401  (fixture)
from tests.web.flow import STAFF, add_staff

TOMORROW = date.today() + timedelta(days=1)


@pytest.fixture
def desk(browser: Any, make_app: AppFactory, inbox: tuple[Inbox, int]) -> Iterator[LiveServer]:  # noqa: F811
    with serving(make_app, INTAKE_SMTP_PORT=inbox[1], INTAKE_QUIET_HOURS="") as server:
        add_staff(server.app, "frontdesk", "front-desk")
        yield server


def _sign_in(page: Any, url: str) -> None:
    page.goto(url + "/staff/login")
    page.fill("#username", "frontdesk")
    page.fill("#password", STAFF[1])
    with page.expect_navigation():
        page.press("#password", "Enter")


def _accessible(page: Any, name: str) -> None:
    found = blocking(run_axe(page, name, "en"))
    assert not found, found


def test_search_invite_again_and_confirm_a_new_link(desk: LiveServer, new_page: Any,
                                                   inbox: tuple[Inbox, int]) -> None:  # noqa: F811
    page = new_page(viewport=DESKTOP, bypass_csp=True)  # axe is injected: CSP forbids it
    _sign_in(page, desk.url)
    page.get_by_role("link", name="New intake").click()
    page.fill("#name", "Rosa Quaxmoor")
    page.fill("#birth_date", "1964-02-29")
    page.fill("#appointment_day", TOMORROW.isoformat())
    page.fill("#appointment_time", "10:15")
    page.select_option("#language", "es")
    page.fill("#email", "rosa@example.org")
    page.get_by_label("E-mail", exact=True).check()
    screenshot(page, "front-desk-new-intake", "en")
    with page.expect_navigation():
        page.get_by_role("button", name="Create intake and link").click()
    page.get_by_role("status").filter(has_text="being sent").wait_for()
    screenshot(page, "front-desk-link-sent", "en")
    assert len(inbox[0].messages) == 1 and inbox[0].messages[0]["To"] == "rosa@example.org"

    page.get_by_role("link", name="Find a patient").click()
    page.fill("#q", "quaxmoor")
    with page.expect_navigation():
        page.press("#q", "Enter")
    result = page.get_by_role("region", name="Intakes of Rosa Quaxmoor")
    assert "sent" in result.inner_text() and "next reminder" in result.inner_text()
    assert "r\u2022\u2022\u2022@example.org" in page.content() and "rosa@example.org" not in page.content()
    _accessible(page, "front-desk-search")
    screenshot(page, "front-desk-search", "en")

    with page.expect_navigation():
        page.get_by_role("link", name="Invite again Rosa Quaxmoor").click()
    assert page.is_checked("#send-0")  # the recorded address is offered
    page.fill("#appointment_day", (TOMORROW + timedelta(days=28)).isoformat())
    page.fill("#appointment_time", "11:00")
    _accessible(page, "front-desk-invite-again")
    with page.expect_navigation():
        page.get_by_role("button", name="Create intake and link").click()
    assert "/i/" in page.input_value("#patient-link")
    assert len(inbox[0].messages) == 2

    page.goto(f"{desk.url}/front-desk/patients?q=1964-02-29")
    assert page.get_by_role("link", name="New link for Rosa Quaxmoor").count() == 2
    with page.expect_navigation():
        page.get_by_role("link", name="New link for Rosa Quaxmoor").first.click()
    assert page.get_by_role("heading", level=1).inner_text() == "Make a new link for Rosa Quaxmoor?"
    assert "stops working" in page.content()
    _accessible(page, "front-desk-confirm-new-link")
    screenshot(page, "front-desk-confirm-new-link", "en")
    with page.expect_navigation():
        page.get_by_role("link", name="No, go back to the day's intakes").click()
    assert "/front-desk/" in page.url and len(inbox[0].messages) == 2  # going back changed nothing
    screenshot(page, "front-desk-day-progress", "en")
