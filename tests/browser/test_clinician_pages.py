"""The clinician's follow-up pages in Chromium: a patient monitored over 8 weeks (three intakes),
their timeline and their summaries with trends beside the positive findings, at desktop and phone width, with axe.

Screenshots: build/test-output/screenshots/clinician-timeline-en-*.png,
clinician-summary-trend-en-*.png and clinician-intakes-en-*.png (look at them after a change).
"""

from __future__ import annotations

import struct
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select, update

from intake import workflow
from intake.core.fhir_time import utcnow
from intake.pdf import render_summary_pdf
from intake.services import services
from intake.storage.db import session_scope
from intake.storage.models import Intake, ScoringResult
from tests.browser.axe import blocking, run_axe
from tests.browser.support import DESKTOP, PHONE, SCREENSHOTS, screenshot
from tests.web.conftest import csrf
from tests.web.flow import HIGH_PHQ4, STAFF, add_staff, fill_all

YES, NO = "LA33-6", "LA32-8"
REVERSED = (7, 13)  # MNSI items where "No" scores


def mnsi(*yes: int) -> dict[str, str]:
    """MNSI answers scoring one point per item in `yes` (items 4 and 10 are not scored)."""
    return {f"mnsi-{n}": (NO if n in yes else YES) if n in REVERSED else (YES if n in yes else NO)
            for n in range(1, 16)}


def no_autoimmune_history(app: Flask) -> dict[str, Any]:
    """'No' to every autoimmune condition of one's own, 'None of these' for the family conditions (the forms'
    default is the first option: Yes, coeliac disease in a parent)."""
    form = services(app).catalog.by_key["autoimmune"]
    out: dict[str, Any] = {}
    for item in form.walk():
        codes = [o.get("valueCoding", {}).get("code") for o in item.options]
        if item.type == "choice" and NO in codes:
            out[item.link_id] = NO
        elif item.repeats and "none" in codes:
            out[item.link_id] = ["none"]
    return out


# Neuropathy symptoms easing over 8 weeks (MNSI 7 -> 5 -> 2), mood settling (PHQ-4 12 -> 4 -> 0).
VISITS = [
    {**HIGH_PHQ4, **mnsi(1, 2, 3, 5, 6, 8, 9)},
    {"phq4-1": "LA6569-3", "phq4-2": "LA6569-3", "phq4-3": "LA6569-3", "phq4-4": "LA6569-3", **mnsi(1, 2, 3, 5, 6)},
    mnsi(1, 2),
]


def _answer(app: Flask, link_path: str, answers: dict[str, Any]) -> None:
    client = app.test_client()
    client.get(link_path)
    fill_all(client, app, "/intake/digestive/digestive-alarm", answers)
    review = client.get("/intake/review")
    assert client.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302


def monitored_patient(app: Flask) -> tuple[str, list[str]]:
    """Three completed intakes of one patient, dated 8 and 4 weeks ago and today; (patient id, intake ids)."""
    runner = app.test_cli_runner()
    first = runner.invoke(args=["intake", "invite", "--name", "Maria O'Neil", "--birth-date", "1961-04-02"])
    history = no_autoimmune_history(app)
    _answer(app, "/i/" + first.output.strip().rsplit("/i/", 1)[1], {**history, **VISITS[0]})
    with services(app).sessions() as session:
        patient_id = session.scalars(select(Intake.patient_id)).one()
    for answers in VISITS[1:]:
        link = runner.invoke(args=["intake", "invite", "--patient", patient_id]).output.strip()
        _answer(app, "/i/" + link.rsplit("/i/", 1)[1], {**history, **answers})
    now = utcnow()
    with session_scope(services(app).sessions) as session:
        ids = list(session.scalars(select(Intake.id).where(Intake.patient_id == patient_id)
                                   .order_by(Intake.completed_at)))
        for weeks_ago, intake_id in zip((8, 4, 0), ids, strict=True):
            when = now - timedelta(weeks=weeks_ago)
            session.execute(update(Intake).where(Intake.id == intake_id)
                            .values(created_at=when - timedelta(hours=1), completed_at=when, updated_at=when))
            session.execute(update(ScoringResult).where(ScoringResult.intake_id == intake_id).values(computed_at=when))
    return patient_id, ids


def _sign_in(page: Any, url: str) -> None:
    page.goto(url + "/staff/login")
    page.fill("#username", STAFF[0])
    page.fill("#password", STAFF[1])
    with page.expect_navigation():
        page.press("#password", "Enter")


def _png_width(path: Path) -> int:
    return int(struct.unpack(">I", path.read_bytes()[16:20])[0])


def _shots(page: Any, page_type: str) -> None:
    """The screenshots, the phone one no wider than the phone (a full-page shot grows with the page)."""
    phone, _desktop = screenshot(page, page_type, "en")
    assert _png_width(phone) == PHONE["width"], f"{page_type} is wider than a phone"


def _too_wide(page: Any) -> list[str]:
    """What sticks out sideways (outside the scrollable table regions): empty when the page fits."""
    return list(page.evaluate("""() => document.documentElement.scrollWidth <= window.innerWidth ? [] :
      [...document.querySelectorAll('body *')].filter(e => !e.closest('.table-scroll')
        && e.getBoundingClientRect().right > window.innerWidth + 1)
        .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""))


def test_timeline_and_summary_with_trends(live: Any, new_page: Any) -> None:
    patient_id, ids = monitored_patient(live.app)
    live.invite(name="New Patient", questionnaires=["neuropathy"])  # a first intake: no follow-up mark
    add_staff(live.app)
    page = new_page(viewport=DESKTOP, bypass_csp=True)  # axe is injected: CSP forbids it
    _sign_in(page, live.url)
    problems: list[str] = []

    page.goto(f"{live.url}/clinician/")
    assert page.locator(".follow-up").count() == 2
    assert page.locator(".follow-up").last.inner_text().startswith("Follow-up (intake 2; last ")
    _shots(page, "clinician-intakes")

    page.goto(f"{live.url}/clinician/patients/{patient_id}/timeline")
    assert page.locator("h1").inner_text() == "Timeline: Maria O'Neil"
    assert page.locator("table.timeline thead th").count() == 4  # the score column and three dates
    charts = page.locator("figure.chart svg[role=img]")
    assert charts.count() >= 4  # MNSI, PSS-10, PHQ-4, MEDAS at least
    figure = page.locator("figure.chart", has_text="MNSI")
    large, small = figure.locator(".chart-large svg"), figure.locator(".chart-small svg")
    alt = large.get_attribute("aria-label") or ""
    assert "3 results on its full range 0 to 13, higher is worse" in alt and ": 7; " in alt and ": 2." in alt
    assert large.locator("line.cutoff").count() == 2 and large.bounding_box()["width"] > 400
    assert small.is_hidden()
    problems += blocking(run_axe(page, "clinician-timeline", "en"))
    _shots(page, "clinician-timeline")
    page.set_viewport_size(PHONE)
    assert _too_wide(page) == [], "the timeline scrolls sideways at 375 px"
    assert large.is_hidden() and 300 < small.bounding_box()["width"] <= PHONE["width"]  # the compact chart, scaled up
    page.set_viewport_size(DESKTOP)

    # The trends sit with the positive findings on page 1; scores within limits have theirs on the
    # timeline only. Today's intake has no positive finding (MNSI 2, PHQ-4 0): no trend on page 1.
    trend_selector = ".positives li.positive .trend svg[role=img]"
    page.goto(f"{live.url}/clinician/intakes/{ids[-1]}")
    assert page.locator(trend_selector).count() == 0
    assert page.get_by_role("link", name="All intakes of this patient: timeline").count() == 1
    # Four weeks ago PHQ-4 was 4 (mild: a positive finding), with the visit before it.
    page.goto(f"{live.url}/clinician/intakes/{ids[1]}")
    trend = page.locator(trend_selector)
    assert trend.count() >= 1, page.locator(".positives-section").inner_text()
    labels = [trend.nth(i).get_attribute("aria-label") or "" for i in range(trend.count())]
    assert all("results on its full range" in a for a in labels), labels
    assert any(a.startswith("PHQ-4") for a in labels), labels
    assert trend.first.bounding_box()["width"] > 0
    with page.expect_navigation():
        page.get_by_role("link", name="All intakes of this patient: timeline").click()
    assert page.url.endswith(f"/clinician/patients/{patient_id}/timeline")
    page.go_back()
    problems += blocking(run_axe(page, "clinician-summary-trend", "en"))
    _shots(page, "clinician-summary-trend")
    assert not problems, "\n".join(problems)

    # the same trends in the PDF (WeasyPrint draws the same SVG): its first pages as PNGs to look at
    with services(live.app).sessions() as session:
        summary = workflow.summary_of(session, services(live.app).catalog, ids[1])
    assert summary is not None
    document = SCREENSHOTS / "clinician-summary-trend-pdf.pdf"
    document.write_bytes(render_summary_pdf(summary, patient_identifier=None))
    subprocess.run(["pdftoppm", "-r", "80", "-png", "-f", "1", "-l", "2", str(document),
                    str(SCREENSHOTS / "clinician-summary-trend-pdf")], check=True)
    text = subprocess.run(["pdftotext", str(document), "-"], capture_output=True, text=True, check=True).stdout
    assert "Higher is worse" in text and "cut-off" in text
