"""Clinician pages: the patient timeline (content, access, audit, escaping, edge cases) and the
follow-up mark on the intake list. The summary page itself is tested in test_screening.py."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from intake.services import services
from intake.storage import intakes, patients, scores
from intake.storage.db import session_scope
from intake.storage.models import AuditRecord
from intake.web.auditing import flush
from tests.web.flow import signed_in

T0 = datetime(2026, 9, 14, 9, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script> O\'Brien & Co'


def mnsi(total: int | None) -> dict[str, Any]:
    return {"id": "mnsi", "title": "MNSI Part A (patient questionnaire) total score", "total": total,
            "complete": total is not None, "band": None, "bandLabel": None, "range": [0, 13],
            "thresholds": {"screen-positive": total is not None and total >= 4,
                           "traditional": total is not None and total >= 7}}


def medas(total: int) -> dict[str, Any]:
    label = "Low adherence (≤7)" if total <= 7 else "Medium adherence (8-9)" if total <= 9 else "High adherence (≥10)"
    return {"id": "medas", "title": "MEDAS total score", "total": total, "complete": True, "bandLabel": label,
            "range": [0, 14], "thresholds": {}}


def seed(app: Flask, visits: list[tuple[str, list[dict[str, Any]] | None]], name: str = "Ada Example") -> tuple[
        str, list[str]]:
    """A patient with one intake per (status, scores) four weeks apart; (patient id, intake ids)."""
    with session_scope(services(app).sessions) as session:
        patient = patients.create_patient(session, name=name, birth_date=date(1960, 5, 1))
        ids = []
        for n, (status, totals) in enumerate(visits):
            intake = intakes.create_intake(session, patient_id=patient.id, questionnaires=["q|1"])
            intake.created_at = intake.updated_at = T0 + timedelta(weeks=4 * n)
            intake.status = status
            if status == "completed":
                intake.completed_at = intake.created_at + timedelta(hours=2)
            if totals is not None:
                scores.store_scoring(session, intake_id=intake.id, patient_id=patient.id,
                                     now=T0 + timedelta(weeks=4 * n), versions={},
                                     result={"scores": totals, "flags": [], "notes": []})
            ids.append(intake.id)
        return patient.id, ids


def timeline_path(patient_id: str) -> str:
    return f"/clinician/patients/{patient_id}/timeline"


def test_the_timeline_lists_every_intake_with_scores_by_date_and_a_chart_each(app: Flask) -> None:
    patient_id, ids = seed(app, [("completed", [mnsi(3), medas(6)]), ("completed", [mnsi(5), medas(9)]),
                                 ("completed", [mnsi(None)]), ("in-progress", None)])
    page = signed_in(app).get(timeline_path(patient_id))
    assert page.status_code == 200
    html = page.text
    # dates as columns, each a link to that intake's summary
    heads = re.findall(r'<th scope="col"><a href="/clinician/intakes/([^"]+)">([\d-]+)</a></th>', html)
    assert heads == [(ids[0], "2026-09-14"), (ids[1], "2026-10-12"), (ids[2], "2026-11-09")]
    # each instrument's totals with their range, band and cut-offs met; not asked and incomplete said so
    row = html[html.index("MNSI Part A"):html.index("</tr>", html.index("MNSI Part A"))]
    assert re.findall(r'<span class="value">(\d+)</span> <span class="range">/ 13</span>', row) == ["3", "5"]
    assert row.count("at or over cut-off 4") == 1 and "incomplete" in row
    medas_row = html[html.index('<th scope="row">MEDAS'):]
    assert "Low adherence (≤7)" in medas_row and "Medium adherence (8-9)" in medas_row and "not asked" in medas_row
    # a chart per instrument, on its full range, with the direction
    charts = re.findall(r"<figure class=\"chart\">.*?</figure>", html, re.S)
    assert len(charts) == 2
    assert "Higher is worse" in charts[0] and 'class="cutoff"' in charts[0] and "0 to 13" in charts[0]
    assert "Higher is better" in charts[1] and "2026-09-14: 6 (Low adherence (≤7))" in charts[1]
    # every intake listed, the one in progress with its status and no summary link
    assert "in-progress" in html and html.count(f'href="/clinician/intakes/{ids[3]}"') == 0
    assert "Intakes: 4 (completed: 3)" in html


def test_the_timeline_needs_a_clinician_and_an_existing_patient(app: Flask) -> None:
    patient_id, _ids = seed(app, [("completed", [mnsi(3)])])
    path = timeline_path(patient_id)
    anonymous = app.test_client().get(path)
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/staff/login?next=")
    assert signed_in(app, "front-desk").get(path).status_code == 403
    assert signed_in(app, "admin").get(path).status_code == 403
    clinician = signed_in(app)
    assert clinician.get(timeline_path("no-such-patient")).status_code == 404
    assert clinician.get(timeline_path("x" * 65)).status_code == 404
    assert clinician.get(path).status_code == 200


def test_the_timeline_read_is_audited_naming_the_patient_and_intakes(app: Flask) -> None:
    patient_id, ids = seed(app, [("completed", [mnsi(3)]), ("not-started", None)])
    signed_in(app).get(timeline_path(patient_id))
    signed_in(app, "front-desk").get(timeline_path(patient_id))
    flush(app)
    with services(app).sessions() as session:
        found = [(r.action, r.outcome, r.actor, sorted(json.loads(r.entities))) for r in session.scalars(
            select(AuditRecord).where(AuditRecord.detail.contains("/timeline")).order_by(AuditRecord.seq))]
    assert found == [("read", "success", "doctor", sorted([f"Patient/{patient_id}", *(f"Intake/{i}" for i in ids)])),
                     ("read", "failure", "frontdesk", [])]


def test_patient_text_is_escaped(app: Flask) -> None:
    hostile = {**mnsi(3), "title": HOSTILE, "bandLabel": HOSTILE}
    patient_id, _ids = seed(app, [("completed", [hostile]), ("completed", [{**hostile, "total": 5}])], name=HOSTILE)
    html = signed_in(app).get(timeline_path(patient_id)).text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; O&#39;Brien &amp; Co" in html


def test_one_intake_and_no_complete_intake_are_pages_not_errors(app: Flask) -> None:
    clinician = signed_in(app)
    one, _ = seed(app, [("completed", [mnsi(4)])])
    html = clinician.get(timeline_path(one)).text
    assert html.count('<figure class="chart">') == 1 and "2026-09-14: 4." in html
    none, _ = seed(app, [("not-started", None), ("in-progress", None)])
    page = clinician.get(timeline_path(none))
    assert page.status_code == 200 and "No completed intake yet" in page.text
    assert '<figure class="chart">' not in page.text and page.text.count("not-started") == 1
    scored_nothing, _ = seed(app, [("completed", [])])
    assert "The completed intakes have no scores." in clinician.get(timeline_path(scored_nothing)).text
    unscored, _ = seed(app, [("completed", None)])  # completed, its result not stored yet
    assert "No completed intake yet" in clinician.get(timeline_path(unscored)).text


def test_the_intake_list_marks_follow_ups_and_links_each_timeline(app: Flask) -> None:
    patient_id, ids = seed(app, [("completed", [mnsi(3)]), ("completed", [mnsi(5)]), ("in-progress", None)])
    other_id, [first] = seed(app, [("completed", [mnsi(1)])], name="Bo Other")
    html = signed_in(app).get("/clinician/").text
    rows = {intake_id: html[html.index(f"/clinician/intakes/{intake_id}") - 600:] for intake_id in ids[:2]}
    assert "Follow-up" not in rows[ids[0]][:rows[ids[0]].index("</tr>")]
    marks = re.findall(r'<span class="follow-up">([^<]+)</span>', html)
    assert sorted(marks) == ["Follow-up (intake 2; last 2026-09-14)", "Follow-up (intake 3; last 2026-10-12)"]
    assert html.count(f'href="{timeline_path(patient_id)}"') == 3
    assert html.count(f'href="{timeline_path(other_id)}"') == 1
    assert first in html
