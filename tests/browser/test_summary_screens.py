"""The clinician summary in Chromium at 1280 px and 375 px for three intakes (no flags; flags +
reflexes; a follow-up with changes): full-page screenshots in build/test-output/screenshots/
(summary-<case>-<desktop|phone>.png), no sideways scrolling on a phone, and axe on each."""

from __future__ import annotations

from typing import Any

from tests.browser.axe import blocking, run_axe
from tests.browser.support import DESKTOP, NARROW, PHONE, SCREENSHOTS, reflow_width
from tests.web.flow import STAFF, add_staff
from tests.web.test_clinician_summary import FIRST_VISIT, FLAGS, FOLLOW_UP, NO_FLAGS, complete, follow_up_link


def test_summary_screens_at_desktop_and_phone_width(live: Any, new_page: Any) -> None:
    app = live.app
    cases = {"no-flags": complete(app, NO_FLAGS, name="Nora Noflag", birth_date="1971-01-01"),
             "flags-reflexes": complete(app, FLAGS, name="Fred Flags", birth_date="1960-05-01")}
    first = complete(app, FIRST_VISIT, name="Fay Follow", birth_date="1955-02-02")
    cases["follow-up"] = complete(app, FOLLOW_UP, link=follow_up_link(app, first))
    add_staff(app)
    page = new_page(viewport=DESKTOP, bypass_csp=True)  # axe is injected: CSP forbids it
    page.goto(live.url + "/staff/login")
    page.fill("#username", STAFF[0])
    page.fill("#password", STAFF[1])
    with page.expect_navigation():
        page.press("#password", "Enter")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for name, intake_id in cases.items():
        page.set_viewport_size(DESKTOP)
        page.goto(f"{live.url}/clinician/intakes/{intake_id}")
        assert page.locator("#reason-title").is_visible()
        page.screenshot(path=str(SCREENSHOTS / f"summary-{name}-desktop.png"), full_page=True)
        page.set_viewport_size(PHONE)
        page.screenshot(path=str(SCREENSHOTS / f"summary-{name}-phone.png"), full_page=True)
        assert reflow_width(page) <= NARROW["width"], name
        problems += blocking(run_axe(page, f"clinician-summary-{name}", "en"))
    assert not problems, "\n".join(problems)
