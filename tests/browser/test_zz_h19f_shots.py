"""Temporary (not committed): screenshots of the family page and an error page."""
from __future__ import annotations

from typing import Any

import pytest

from tests.browser.support import continue_by_mouse, screenshot


@pytest.mark.parametrize("lang", ["en", "es"])
def test_shots(live: Any, patient_link: str, new_page: Any, lang: str) -> None:
    page = new_page(lang=lang)
    page.goto(patient_link)
    page.goto(live.url + "/intake/autoimmune/autoimmune-family")
    if lang == "es" and page.locator("html").get_attribute("lang") != "es":
        with page.expect_navigation():
            page.locator(".language-switch [lang=es]").click()
    screenshot(page, "h19f-family", lang)
    page.locator("input[name=q-ai-family-coeliac][value$=PRN], input[name=q-ai-family-coeliac]").first.check()
    screenshot(page, "h19f-family-ticked", lang)
    page.goto(live.url + "/intake/digestive/digestive-alarm")
    continue_by_mouse(page)
    screenshot(page, "h19f-error", lang)
    page.goto(live.url + "/intake/diet/diet-medas")
    screenshot(page, "h19f-medas", lang)
