"""Scoring at submit: stored results, the emergency guidance, one staff notification, the
clinician summary (auth, flags first, scores, trends), and the flags/rescore commands."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from intake.core.scoring import Context, score_intake
from intake.services import services
from intake.storage.models import FlagRecord, Intake, ScoringResult
from intake.storage.responses import list_responses
from intake.workflow import stored_pairs
from tests.web.conftest import csrf
from tests.web.flow import (
    EMERGENCY,
    HIGH_PHQ4,
    STAFF,
    complete_intake,
    fill_all,
    sign_in,
    signed_in,
)


def staff_get(app: Flask, path: str) -> Any:
    return signed_in(app).get(path)


def test_emergency_answer_shows_guidance_and_notifies_staff_once(staff_app: Flask, webhook: tuple[str, list]) -> None:
    client, intake_id = complete_intake(staff_app, EMERGENCY)
    done = client.get("/intake/done").text
    assert "Please act on this now" in done
    assert "emergency" in done.lower()
    _url, received = webhook
    assert [r["flag"] for r in received] == ["n-rf2"]
    assert received[0]["tier"] == "emergency" and received[0]["intake"] == intake_id
    assert "Test Patient" not in json.dumps(received)  # no name in the notification
    with services(staff_app).sessions() as session:
        flags = list(session.scalars(select(FlagRecord)))
        assert [(f.rule_id, f.notify_state) for f in flags if f.tier == "emergency"] == [("n-rf2", "sent")]
        assert session.scalars(select(ScoringResult)).one().intake_id == intake_id
    # Sending again (the CLI) does not notify twice.
    result = staff_app.test_cli_runner().invoke(args=["intake", "flags", "--send"])
    assert result.exit_code == 0 and "notifications sent: 0" in result.output
    assert "n-rf2" in result.output
    assert len(received) == 1


def test_no_guidance_without_an_emergency_flag(staff_app: Flask, webhook: tuple[str, list]) -> None:
    client, _intake_id = complete_intake(staff_app, {})
    assert "Please act on this now" not in client.get("/intake/done").text
    assert all(r["tier"] != "emergency" for r in webhook[1])


def test_clinician_pages_need_a_clinician_signed_in(staff_app: Flask) -> None:
    _client, intake_id = complete_intake(staff_app, {})
    client = staff_app.test_client()
    path = f"/clinician/intakes/{intake_id}"
    response = client.get(path)
    assert response.status_code == 302 and response.headers["Location"].startswith("/staff/login?next=")
    assert client.get(path, auth=STAFF).status_code == 302  # HTTP Basic is not a way in
    assert sign_in(client, STAFF[0], "wrong").status_code == 401
    assert signed_in(staff_app).get(path).status_code == 200
    assert signed_in(staff_app, "front-desk").get(path).status_code == 403
    assert signed_in(staff_app, "admin").get(path).status_code == 403


def test_summary_flags_first_then_scores_matching_the_engine(staff_app: Flask) -> None:
    _client, intake_id = complete_intake(staff_app, {**EMERGENCY, **HIGH_PHQ4})
    clinician = signed_in(staff_app)
    page = clinician.get(f"/clinician/intakes/{intake_id}").text
    assert "Screening aid, not a diagnosis" in page
    # The FHIR JSON links open with the clinician's own session: the Patient and one $extract per response.
    links = re.findall(r'href="(/fhir/[^"]+)"', page)
    assert len(links) == 6 and links[0].startswith("/fhir/Patient/")
    for link in links:
        response = clinician.get(link)
        assert response.status_code == 200 and response.content_type.startswith("application/fhir+json"), link
    assert (page.index('id="reason-title"') < page.index('id="flags-title"') < page.index('id="positives-title"')
            < page.index('id="answers-title"') < page.index('id="references-title"'))
    assert page.index("tier-emergency") < page.index("<h2 id=\"positives-title\">")
    # The page's scores are the engine's scores for the stored responses.
    with services(staff_app).sessions() as session:
        stored = json.loads(session.scalars(select(ScoringResult)).one().result_json)
    for score in stored["scores"]:
        assert score["title"] in page
    catalog = services(staff_app).catalog

    with services(staff_app).sessions() as session:
        pairs = stored_pairs(session, catalog, intake_id, latest=False)
    again = score_intake(pairs, Context(birth_date="1960-05-01")).as_json()
    assert [(s["id"], s["total"]) for s in again["scores"]] == [(s["id"], s["total"]) for s in stored["scores"]]
    assert {f["id"] for f in again["flags"]} == {f["id"] for f in stored["flags"]}


def test_summary_shows_change_since_last_time_and_a_trend(staff_app: Flask) -> None:
    complete_intake(staff_app, {})
    with services(staff_app).sessions() as session:
        patient_id = session.scalars(select(Intake.patient_id)).one()
    runner = staff_app.test_cli_runner()
    for answers in (HIGH_PHQ4, {"phq4-1": "LA6570-1", "phq4-2": "LA6570-1"}):
        link = runner.invoke(args=["intake", "invite", "--patient", patient_id]).output.strip()
        client = staff_app.test_client()
        client.get("/i/" + link.rsplit("/i/", 1)[1])
        fill_all(client, staff_app, "/intake/digestive/digestive-alarm", answers)
        review = client.get("/intake/review")
        assert client.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302
    with services(staff_app).sessions() as session:
        latest = session.scalars(select(Intake.id).order_by(Intake.completed_at.desc())).first()
    page = staff_get(staff_app, f"/clinician/intakes/{latest}").text
    # PHQ-4 total: 0 the first time, 12 the second, 4 now (mild, validated: a positive finding):
    # change -8 since last time, three points.
    assert re.search(r'<span class="change">-8 since \d{4}-\d\d-\d\d</span>', page)
    # the trend on PHQ-4's full range 0-12 (intake/core/trend_chart.py), and the way to the timeline
    assert 'role="img"' in page and "PHQ-4 total score: 3 results on its full range 0 to 12, higher is worse" in page
    assert page.count("<polyline") >= 1
    assert f'href="/clinician/patients/{patient_id}/timeline"' in page


def test_rescore_recomputes_and_keeps_one_flag_per_rule(staff_app: Flask) -> None:
    _client, intake_id = complete_intake(staff_app, EMERGENCY)
    runner = staff_app.test_cli_runner()
    result = runner.invoke(args=["intake", "rescore", intake_id])
    assert result.exit_code == 0, result.output
    assert intake_id in result.output and "flags" in result.output
    with services(staff_app).sessions() as session:
        rules = [f.rule_id for f in session.scalars(select(FlagRecord).where(FlagRecord.intake_id == intake_id))]
    assert len(rules) == len(set(rules))
    assert runner.invoke(args=["intake", "rescore"]).exit_code == 1
    assert runner.invoke(args=["intake", "rescore", "no-such-intake"]).exit_code == 1


def test_same_scores_on_the_page_in_the_cli_and_after_a_reload(staff_app: Flask, tmp_path: Path) -> None:
    """One completed intake, three readings: the stored result (a reload from the database),
    `flask intake score` on the stored responses, and the clinician page."""
    _client, intake_id = complete_intake(staff_app, {**HIGH_PHQ4, "mnsi-1": "LA33-6", "mnsi-2": "LA33-6"})
    with services(staff_app).sessions() as session:
        stored = json.loads(session.scalars(select(ScoringResult)).one().result_json)

        bundle = {"resourceType": "Bundle", "type": "collection",
                  "entry": [{"resource": record.resource} for record in list_responses(session, intake_id)]}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    cli = staff_app.test_cli_runner().invoke(args=["intake", "score", str(path), "--birth-date", "1960-05-01"])
    assert cli.exit_code == 0, cli.output
    printed = json.loads(cli.stdout)
    reading = lambda result: [(s["id"], s["total"], s["band"], s["complete"]) for s in result["scores"]]  # noqa: E731
    assert reading(printed) == reading(stored)
    assert sorted(f["id"] for f in printed["flags"]) == sorted(f["id"] for f in stored["flags"])
    assert {"phq9", "gad7", "mnsi", "pss10", "medas"} <= {s["id"] for s in stored["scores"]}
    page = staff_get(staff_app, f"/clinician/intakes/{intake_id}").text
    for score_id, total, band, complete in reading(stored):
        title = next(s["title"] for s in stored["scores"] if s["id"] == score_id)
        found = re.search(rf'<(li|span) class="(?:positive score-line|other)" data-score="{re.escape(score_id)}"'
                          rf'(.*?)</\1>', page, re.S)
        assert found and title in page, score_id
        row = found.group(2)
        expected = "incomplete" if not complete else str(int(total) if float(total).is_integer() else total)
        assert (f">{expected}/" in row or f" {expected}/" in row or (total == 0 and ": none" in row)
                or (expected == "incomplete" and "incomplete" in row)), (score_id, row[:300])
        if band:
            assert band.split()[0] in row.lower(), (score_id, band, row[:300])
