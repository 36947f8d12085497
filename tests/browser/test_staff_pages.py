"""Staff pages in Chromium: the front desk's "Copy link" (Clipboard API under the real CSP, by
keyboard, announced in a live region; without JavaScript the read-only box is all there is), and
axe-core on the link, audit report and password pages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from intake.services import services
from intake.storage.models import Intake
from tests.browser.axe import blocking, run_axe
from tests.browser.support import DESKTOP
from tests.web.flow import STAFF, add_staff


def _sign_in(page: Any, url: str, username: str) -> None:
    page.goto(url + "/staff/login")
    page.fill("#username", username)
    page.fill("#password", STAFF[1])
    with page.expect_navigation():
        page.press("#password", "Enter")


def _fresh_link_page(live: Any, page: Any) -> str:
    """As the front desk: make a new link for an intake; the page shows it (once). Its URL."""
    live.invite()
    with services(live.app).sessions() as session:
        intake_id = session.scalars(select(Intake.id)).first()
    page.goto(f"{live.url}/front-desk/intakes/{intake_id}/link")
    with page.expect_navigation():
        page.get_by_role("link", name="Make a new link").click()  # asks first (front_desk.confirm_new_link)
    with page.expect_navigation():
        page.get_by_role("button", name="Yes, make a new link").click()
    return page.url


def test_copy_link_copies_by_keyboard_and_says_so(live: Any, new_page: Any) -> None:
    add_staff(live.app, "frontdesk", "front-desk")
    page = new_page(viewport=DESKTOP)  # the app's CSP applies: staff.js must work under it
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    blocked: list[str] = []
    page.on(
        "console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None
    )
    _sign_in(page, live.url, "frontdesk")
    _fresh_link_page(live, page)
    link = page.input_value("#patient-link")
    assert "/i/" in link
    button = page.get_by_role("button", name="Copy link")
    button.wait_for(state="visible")  # shown by static/staff.js
    button.focus()
    page.keyboard.press("Enter")
    page.locator("#copy-status", has_text="Copied").wait_for()
    assert page.text_content("#copy-status") == "Copied"
    assert page.get_attribute("#copy-status", "role") == "status"
    assert page.evaluate("navigator.clipboard.readText()") == link
    assert not blocked, blocked


def test_without_javascript_the_link_is_there_and_the_button_is_not(live: Any, new_page: Any) -> None:
    add_staff(live.app, "frontdesk", "front-desk")
    page = new_page(viewport=DESKTOP, java_script_enabled=False)
    _sign_in(page, live.url, "frontdesk")
    _fresh_link_page(live, page)
    assert page.locator("#patient-link").is_visible()
    assert page.locator("button[data-copy]").count() == 1 and page.locator("button[data-copy]").is_hidden()


def test_staff_pages_pass_axe(live: Any, new_page: Any) -> None:
    problems: list[str] = []
    add_staff(live.app, "frontdesk", "front-desk")
    add_staff(live.app, "admin", "admin")
    desk = new_page(viewport=DESKTOP, bypass_csp=True)  # axe is injected: CSP forbids it
    _sign_in(desk, live.url, "frontdesk")
    _fresh_link_page(live, desk)
    problems += blocking(run_axe(desk, "staff-link", "en"))
    desk.goto(live.url + "/staff/password")
    problems += blocking(run_axe(desk, "staff-password", "en"))
    with desk.expect_navigation():
        desk.get_by_role("button", name="Change password").click()  # nothing typed: the error summary
    assert desk.locator(".error-summary").count() == 1
    problems += blocking(run_axe(desk, "staff-password-errors", "en"))
    admin = new_page(viewport=DESKTOP, bypass_csp=True)
    _sign_in(admin, live.url, "admin")
    admin.goto(live.url + "/admin/audit?check=1")
    admin.get_by_text("Hash chain intact").wait_for(state="visible")
    problems += blocking(run_axe(admin, "admin-audit", "en"))
    admin.goto(live.url + "/admin/audit?since=2024-02-30")
    problems += blocking(run_axe(admin, "admin-audit-errors", "en"))
    assert not problems, "\n".join(problems)
