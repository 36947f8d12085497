"""The whole patient flow through the Flask test client, on SQLite or PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake import workflow
from intake.core.estimate import estimate
from intake.core.fhir_models import QuestionnaireResponse
from intake.core.scoring import score_response
from intake.core.validation import has_errors, validate
from intake.services import services
from intake.storage.models import Intake, ResponseRecord
from tests.conftest import AppFactory
from tests.fhircheck import fhircheck
from tests.web.conftest import csrf, error_links, error_summary, invite_link
from tests.web.flow import fill_all, fill_page, page_data

FORMS = Path(__file__).resolve().parents[2] / "forms"


def _records(app: Flask) -> list[ResponseRecord]:
    with services(app).sessions() as session:
        return list(session.scalars(select(ResponseRecord)))


def _intake(app: Flask) -> Intake:
    with services(app).sessions() as session:
        return session.scalars(select(Intake)).one()


def _first_page(client: FlaskClient) -> str:
    start = client.get("/intake")
    assert start.status_code == 200
    return re.search(r'class="button" href="([^"]+)"', start.text).group(1)


def test_full_flow_validation_back_resume_stale_token_and_double_submit(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    link = invite_link(app)
    assert client.get(link).status_code == 302
    assert _first_page(client) == "/intake/digestive/digestive-reason"  # the reason for the visit, optional
    first = "/intake/digestive/digestive-alarm"

    # A page with validation errors: error summary linking to each field, nothing stored.
    page = client.get(first)
    bad = client.post(first, data={"csrf_token": csrf(page.text), "q-gi-af2-kg": "lots"})
    assert bad.status_code == 400
    summary = error_summary(bad.text)
    # Each question says what is missing in its own words (requiredMessage), so the line needs no
    # question text after it; a generic message would still name its question.
    assert (
        "q-gi-af1",
        "Select yes if you have seen blood in or on your stool, or had black, tarry stools, in the last 3 months",
    ) in summary
    assert len({message for _, message in summary}) == len(summary)  # no two lines alike
    assert "Error:" in bad.text.split("</title>")[0]
    # A radio group's link goes to its first option (GOV.UK error summary pattern).
    assert error_links(bad.text)[0][0] == "q-gi-af1-1" and 'id="q-gi-af1-1"' in bad.text
    assert _records(app) == []

    # Fill the first page, then come Back to it: the answers are still there.
    second = fill_page(client, app, first, {"gi-af3": "true"})
    back = client.get(second)
    assert f'href="{first}"' in back.text
    again = client.get(first)
    assert re.search(r'name="q-gi-af3" value="true" checked', again.text)

    # A stale CSRF token: the page comes back with its answers and a fresh token; nothing saved.
    before = [r.version_id for r in _records(app)]
    data = page_data(app, second, {"bsfs-usual": "6"})
    data["csrf_token"] = "stale"
    stale = client.post(second, data=data)
    assert stale.status_code == 400
    assert "not saved yet" in stale.text
    assert re.search(r'value="6" checked', stale.text)
    assert csrf(stale.text) != "stale"
    assert [r.version_id for r in _records(app)] == before

    # Resume in a new browser session with the same link: continue where they stopped.
    fresh = app.test_client()
    assert fresh.get(link).status_code == 302
    start = fresh.get("/intake")
    assert "Continue where you stopped" in start.text
    assert f'href="{second}"' in start.text

    visited = fill_all(fresh, app, second)
    assert len(visited) + 1 == 12  # 14 pages, less the PHQ-9 and GAD-7 reflexes that stay off
    review = fresh.get("/intake/review")
    assert review.status_code == 200
    assert "Check your answers" in review.text
    # One Change per section (page), not one per answer; every section's answers are folded. The
    # sections: the pages visited, the first (warning signs) and the reason for the visit before it.
    assert review.text.count(">Change<") == len(visited) + 2
    assert review.text.count('<details class="review-section__details">') == len(visited) + 2

    token = csrf(review.text)
    first_submit = fresh.post("/intake/submit", data={"csrf_token": token})
    second_submit = fresh.post("/intake/submit", data={"csrf_token": token})
    assert first_submit.status_code == second_submit.status_code == 302
    assert first_submit.headers["Location"].endswith("/intake/done")
    records = _records(app)
    assert len(records) == 5
    assert {r.status for r in records} == {"completed"}
    assert _intake(app).status == "completed"
    assert "Your answers have been sent" in fresh.get("/intake/done").text
    # A completed intake can no longer be edited through the link.
    assert fresh.get(first).status_code == 302
    edit = fresh.post(first, data=page_data(app, first) | {"csrf_token": token})
    assert edit.headers["Location"].endswith("/intake/done")

    # Every completed response is valid FHIR R4 against its Questionnaire.
    catalog = services(app).catalog
    out = tmp_path / "export"
    out.mkdir()
    for record in records:
        resource = record.resource
        QuestionnaireResponse.model_validate(resource)
        form = catalog.get(resource["questionnaire"])
        assert not has_errors(validate(form, resource)), validate(form, resource)
        (out / f"{record.id}.json").write_text(json.dumps(resource))
    fhircheck(out, strict=False)


def test_reflex_pages_switch_on_and_back_off(app: Flask, opened: FlaskClient) -> None:
    phq4 = "/intake/stress/stress-phq4"
    high = {"phq4-3": "LA6571-9", "phq4-4": "LA6570-1"}  # 3 + 2: depression subscale 5
    # Reach the stress pages by filling everything before them.
    path = _first_page(opened)
    while path != phq4:
        path = fill_page(opened, app, path)
    nxt = fill_page(opened, app, phq4, high)
    assert nxt == "/intake/stress/stress-phq9"
    fill_page(opened, app, nxt, {"phq9-3": "LA6571-9"})
    record = next(r for r in _records(app) if "stress" in r.questionnaire_url)
    assert "phq9-1" in json.dumps(record.resource)  # carried forward from PHQ-4
    # Lower the PHQ-4 answers: PHQ-9 drops out and its answers are dropped from the response.
    after = fill_page(opened, app, phq4 + "?from=review", {"phq4-3": "LA6568-5", "phq4-4": "LA6568-5"})
    assert after == "/intake/review?changed=phq4-3#answer-phq4-3"  # back at the first answer changed
    record = next(r for r in _records(app) if "stress" in r.questionnaire_url)
    assert "phq9-1" not in json.dumps(record.resource)
    assert opened.get("/intake/stress/stress-phq9").status_code == 404
    review = opened.get("/intake/review").text
    assert "More about your mood" not in review


def test_phq4_answers_are_carried_into_phq9_and_gad7_not_asked_again(app: Flask, opened: FlaskClient) -> None:
    """PHQ-4 is PHQ-2 + GAD-2: those four answers fill PHQ-9 items 1-2 and GAD-7 items 1-2 (shown,
    changeable on the PHQ-4 page), so the published totals hold and nobody answers them twice."""
    phq4 = "/intake/stress/stress-phq4"
    path = _first_page(opened)
    while path != phq4:
        path = fill_page(opened, app, path)
    # anxious 3, worry 2, down 3, interest 1: both subscales >= 3, both reflexes on
    answers = {"phq4-1": "LA6571-9", "phq4-2": "LA6570-1", "phq4-3": "LA6571-9", "phq4-4": "LA6569-3"}
    assert fill_page(opened, app, phq4, answers) == "/intake/stress/stress-phq9"
    page = opened.get("/intake/stress/stress-phq9").text
    assert 'name="q-phq9-1"' not in page and 'name="q-phq9-2"' not in page  # not asked again
    assert page.count("You answered this on an earlier page") == 2
    assert f'<a href="{phq4}#q-phq4-4-1">Change' in page  # interest: PHQ-9 item 1
    assert f'<a href="{phq4}#q-phq4-3-1">Change' in page  # down: PHQ-9 item 2
    assert "Several days" in page and "Nearly every day" in page
    fill_page(opened, app, "/intake/stress/stress-phq9", {f"phq9-{n}": "LA6568-5" for n in range(3, 10)})
    gad = opened.get("/intake/stress/stress-gad7").text
    assert 'name="q-gad7-1"' not in gad and gad.count("You answered this on an earlier page") == 2
    fill_page(opened, app, "/intake/stress/stress-gad7", {f"gad7-{n}": "LA6568-5" for n in range(3, 8)})
    record = next(r for r in _records(app) if "stress" in r.questionnaire_url)
    answered = {i["linkId"]: i["answer"][0]["valueCoding"]["code"]
                for i in _walk_response(record.resource["item"]) if "valueCoding" in (i.get("answer") or [{}])[0]}
    assert (answered["phq9-1"], answered["phq9-2"]) == ("LA6569-3", "LA6571-9")
    assert (answered["gad7-1"], answered["gad7-2"]) == ("LA6571-9", "LA6570-1")
    form = services(app).catalog.get(record.questionnaire_url)
    scores = {s.id: s.value for s in score_response(form, record.resource).scores}
    assert scores["phq9"] == 1 + 3 and scores["gad7"] == 3 + 2  # the published sums, items 1-2 included


def _walk_response(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _walk_response(item.get("item", []))
        for answer in item.get("answer", []):
            yield from _walk_response(answer.get("item", []))


def test_unknown_expired_links_are_neutral(app: Flask, client: FlaskClient) -> None:
    assert client.get("/i/not-a-real-token").status_code == 404
    assert client.get("/intake").status_code == 403
    assert client.get("/intake/digestive/digestive-alarm").status_code == 403


def test_same_page_follow_ups_carry_a_live_condition(app: Flask, opened: FlaskClient) -> None:
    """Follow-ups switched by an answer on the same page are marked for the small script; the
    rule is the Questionnaire's enableWhen, in the field values the browser sees."""
    page = opened.get("/intake/digestive/digestive-alarm").text
    rule = (
        "{&#34;all&#34;:true,&#34;when&#34;:[{&#34;f&#34;:&#34;q-gi-af2&#34;,"
        "&#34;op&#34;:&#34;=&#34;,&#34;v&#34;:&#34;true&#34;}]}"
    )
    assert f'<div class="conditional" data-when="{rule}">' in page
    # The weight lost (after gi-af2), and the two bleeding follow-ups (after gi-af1).
    assert page.count('class="conditional"') == 3
    assert '<script src="/static/intake.js" defer></script>' in page
    family = opened.get("/intake/autoimmune/autoimmune-family").text
    # "Has a blood relative ... any of these?" first; each condition ticked there opens its relatives
    # question (10), and a relative named there opens its age question (10)
    assert family.count('class="conditional"') == 20
    gate = "{&#34;all&#34;:true,&#34;when&#34;:[{&#34;f&#34;:&#34;q-ai-family-conditions&#34;,&#34;op&#34;:&#34;=&#34;,"
    assert family.count(gate) == 10
    assert f'{gate}&#34;v&#34;:&#34;396331005&#34;}}]}}">' in family  # coeliac disease (SNOMED CT)
    assert "&#34;all&#34;:false" in family and "&#34;v&#34;:&#34;PRN&#34;" in family


FAMILY_PAGE = "/intake/autoimmune/autoimmune-family"


def _family_post(opened: FlaskClient, app: Flask, overrides: dict[str, Any]) -> Any:
    """POST the family page (as a browser without JavaScript would) with `overrides`; the rest blank."""
    page = opened.get(FAMILY_PAGE)
    data = {k: v for k, v in page_data(app, FAMILY_PAGE, overrides).items()
            if k.removeprefix("q-") in overrides}
    data["csrf_token"] = csrf(page.text)
    return opened.post(FAMILY_PAGE, data=data)


def test_without_javascript_the_family_page_shows_every_relatives_question_and_needs_only_the_ticked(
        app: Flask, opened: FlaskClient) -> None:
    """Without JavaScript nothing hides the relatives questions (the engine shows same-page follow-ups),
    so the page still works: the server asks for the relatives of a ticked condition only, and
    ignores relatives given for a condition not ticked."""
    page = opened.get(FAMILY_PAGE).text
    assert page.index('name="q-ai-family-conditions"') < page.index('name="q-ai-family-coeliac"')
    assert page.count('name="q-ai-family-pernicious-anaemia"') == 8  # Parent ... Other, Not sure
    snomed_coeliac, snomed_ibd = "396331005", "24526004"
    missing = _family_post(opened, app, {"ai-family-conditions": [snomed_coeliac, snomed_ibd],
                                         "ai-family-ibd": ["SIB"]})
    assert missing.status_code == 400  # the page again, with its error summary
    summary = missing.text[missing.text.index('class="error-summary"'):]
    summary = summary[:summary.index("</div>")]
    assert ("Select which of your blood relatives have been diagnosed with coeliac disease, or select not sure"
            in summary)
    assert "Crohn" not in summary and "lupus" not in summary
    nothing = _family_post(opened, app, {"ai-family-conditions": ["none"], "ai-family-coeliac": ["PRN"]})
    assert nothing.status_code == 302
    mixed = _family_post(opened, app, {"ai-family-conditions": [snomed_coeliac, "none"]})
    assert mixed.status_code == 400 and "None of these" in mixed.text


def test_a_submitted_intakes_link_is_as_neutral_as_an_unknown_one(app: Flask) -> None:
    client = app.test_client()
    link = invite_link(app)
    client.get(link)
    fill_all(client, app, "/intake/digestive/digestive-alarm")
    review = client.get("/intake/review")
    assert client.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302
    assert "Your answers have been sent" in client.get("/intake/done").text  # this session still shows it
    reopened = app.test_client().get(link)
    unknown = app.test_client().get("/i/not-a-real-token")
    assert reopened.status_code == unknown.status_code == 404
    assert reopened.data == unknown.data  # nothing tells a used link from a wrong one


def test_link_guessing_is_rate_limited(make_app: AppFactory) -> None:

    app = make_app(INTAKE_LINK_RATE_LIMIT="5 per minute")
    client = app.test_client()
    statuses = [client.get(f"/i/guess-{n}").status_code for n in range(7)]
    assert statuses == [404] * 5 + [429] * 2
    assert "Too many tries" in client.get("/i/guess-x").text
    other = app.test_client().get("/i/guess-y", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 404  # counted per address


def test_a_change_from_the_review_page_that_switches_follow_ups_on_goes_to_them_first(
    app: Flask, opened: FlaskClient
) -> None:
    phq4 = "/intake/stress/stress-phq4"
    path = _first_page(opened)
    while not path.endswith("/intake/review"):
        path = fill_page(opened, app, path)  # all defaults: no follow-ups
    assert "/intake/stress/stress-phq9" not in opened.get("/intake/review").text
    both = {"phq4-1": "LA6571-9", "phq4-2": "LA6571-9", "phq4-3": "LA6571-9", "phq4-4": "LA6571-9"}
    nxt = fill_page(opened, app, phq4 + "?from=review", both)
    assert nxt == "/intake/stress/stress-phq9?from=review"
    nxt = fill_page(opened, app, nxt)
    assert nxt == "/intake/stress/stress-gad7?from=review"
    assert fill_page(opened, app, nxt) == "/intake/review?changed=gad7-3#answer-gad7-3"
    # Nothing is left queued: the next change from the review page goes straight back; saving a
    # page unchanged returns to its section.
    assert fill_page(opened, app, phq4 + "?from=review", both) == "/intake/review#section-stress-stress-phq4"


def test_check_answers_is_by_section_and_a_change_returns_to_the_answer(app: Flask, opened: FlaskClient) -> None:
    path = _first_page(opened)
    while not path.endswith("/intake/review"):
        path = fill_page(opened, app, path)
    review = opened.get("/intake/review").text
    assert review.count("<details") == review.count(">Change<") > 5
    assert "<details class=\"review-section__details\" open>" not in review  # nothing to fix, nothing changed
    phq4 = "/intake/stress/stress-phq4"
    assert f'href="{phq4}?from=review">Change' in review
    back = fill_page(opened, app, phq4 + "?from=review", {"phq4-2": "LA6570-1"})
    assert back == "/intake/review?changed=phq4-2#answer-phq4-2"
    again = opened.get(back.split("#")[0]).text
    section = again[again.index('id="section-stress-stress-phq4"'):]
    section = section[:section.index("</section>")]
    assert "<details class=\"review-section__details\" open>" in section  # only this one is open
    assert again.count(" open>") == 1
    assert '<div class="summary-row summary-row--changed" id="answer-phq4-2" tabindex="-1">' in section


def test_the_start_page_gives_the_real_pages_and_minutes_in_both_languages(app: Flask, opened: FlaskClient) -> None:
    forms = [services(app).catalog.by_key[key] for key in app.config["INTAKE_QUESTIONNAIRES"]]
    steps = workflow.steps(forms, {})
    expected = estimate((s.page, workflow.enabled_for(s.form, workflow.NO_ANSWERS)) for s in steps)
    assert expected.pages == len(steps) and expected.minutes > 5
    english = opened.get("/intake").text
    assert f"There are {len(steps)} pages of questions." in english
    assert f"It takes about {expected.minutes} minutes." in english
    opened.get("/language/es")
    spanish = opened.get("/intake").text
    assert f"Hay {len(steps)} páginas de preguntas." in spanish
    assert f"Se tarda alrededor de {expected.minutes} minutos." in spanish


def test_a_link_reopened_after_submit_says_the_answers_were_sent_and_shows_none(app: Flask) -> None:
    client = app.test_client()
    link = invite_link(app, questionnaires="digestive")
    client.get(link)
    fill_all(client, app, "/intake/digestive/digestive-reason", {"reason-for-visit": "Marker-7781 pains"})
    token = csrf(client.get("/intake/review").text)
    assert client.post("/intake/submit", data={"csrf_token": token}).status_code == 302
    done = client.get("/intake/done").text
    assert "Your answers have been sent" in done and "Marker-7781" not in done
    reopened = app.test_client().get(link)
    assert reopened.status_code == 404
    assert "If you have already sent your answers, your care team has them" in reopened.text
    assert "Marker-7781" not in reopened.text and "Tummy" not in reopened.text
    spanish = app.test_client()
    spanish.get("/language/es")
    assert "Si ya envió sus respuestas" in spanish.get(link).text
