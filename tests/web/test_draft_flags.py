"""Danger acted on when the patient reports it: the interruption page, staff told before Submit
(once), flags that survive changed answers and enablement, and the deployment's numbers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select

from intake.core.translations import flag_guidance
from intake.services import services
from intake.storage.models import FlagRecord, OutboxRecord
from tests.conftest import AppFactory
from tests.web.conftest import csrf, invite_link
from tests.web.flow import (
    HIGH_PHQ4,
    continue_after_help,
    fill_all,
    page_data,
    signed_in,
)

RED_FLAGS = "/intake/neuropathy/neuropathy-red-flags"
PHQ4 = "/intake/stress/stress-phq4"
PHQ9 = "/intake/stress/stress-phq9"


@pytest.fixture
def hooked_app(make_app: AppFactory, webhook: tuple[str, list[dict[str, Any]]]) -> Flask:
    return make_app(INTAKE_NOTIFY_WEBHOOK=webhook[0])


def post_page(client: FlaskClient, app: Flask, path: str, overrides: dict[str, Any]) -> Any:
    """Answer the page at `path` (defaults + `overrides`) and post it; the response, not followed."""
    page = client.get(path)
    assert page.status_code == 200, path
    data = page_data(app, path, overrides)
    data["csrf_token"] = csrf(page.text)
    return client.post(path, data=data)


def flags(app: Flask) -> list[FlagRecord]:
    with services(app).sessions() as session:
        return list(session.scalars(select(FlagRecord).order_by(FlagRecord.id)))


def notify_rows(app: Flask) -> list[str]:
    with services(app).sessions() as session:
        return list(session.scalars(select(OutboxRecord.subject).where(OutboxRecord.kind == "notify")))


def opened(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.get(invite_link(app))
    return client


def test_an_emergency_answer_interrupts_at_once_and_staff_are_told_before_submit(
        hooked_app: Flask, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    client = opened(hooked_app)
    response = post_page(client, hooked_app, RED_FLAGS, {"n-rf2": "true"})
    # The next response the patient sees is the guidance, not the next page.
    assert response.status_code == 302 and response.headers["Location"] == "/intake/help"
    help_page = client.get("/intake/help")
    assert help_page.status_code == 200
    text = help_page.text
    assert 'class="interruption"' in text and 'role="alert"' in text
    neuropathy = services(hooked_app).catalog.by_key["neuropathy"]
    assert flag_text_in(text, neuropathy.resource, "n-rf2")
    assert "Call your local emergency number." in text and "988" not in text
    assert "we have told your care team" in text
    # Continuing goes where the saved page would have gone.
    next_url = continue_after_help(client)
    assert next_url.startswith("/intake/") and next_url != RED_FLAGS
    assert client.get(next_url).status_code == 200

    # Staff: one flag, raised from the draft, notified once, listed as not sent.
    [flag] = [f for f in flags(hooked_app) if f.rule_id == "n-rf2"]
    assert (flag.source, flag.tier, flag.notify_state, flag.cleared_at) == ("draft", "emergency", "sent", None)
    _url, received = webhook
    assert [r["flag"] for r in received] == ["n-rf2"]
    listed = signed_in(hooked_app).get("/clinician/flags").text
    assert "not sent yet" in listed and "Still raised." in listed
    cli = hooked_app.test_cli_runner().invoke(args=["intake", "flags"])
    assert cli.exit_code == 0 and "n-rf2" in cli.output and "from draft (not sent)" in cli.output

    # The patient changes the answer: the flag stays on record, marked cleared, nothing is sent.
    response = post_page(client, hooked_app, RED_FLAGS, {"n-rf2": "false"})
    assert response.status_code == 302 and response.headers["Location"] != "/intake/help"
    [flag] = [f for f in flags(hooked_app) if f.rule_id == "n-rf2"]
    assert flag.cleared_at is not None and flag.notify_state == "sent"
    listed = signed_in(hooked_app).get("/clinician/flags").text
    assert "Answer changed" in listed and re.search(r"breathing[^<]*: No", listed)
    assert len(received) == 1

    # Back to yes: the guidance again (the patient must see it), still one notification.
    response = post_page(client, hooked_app, RED_FLAGS, {"n-rf2": "true"})
    assert response.headers["Location"] == "/intake/help"
    [flag] = [f for f in flags(hooked_app) if f.rule_id == "n-rf2"]
    assert flag.cleared_at is None
    assert len(received) == 1

    # Sending the intake notifies nothing more, and queues no second notification.
    fill_all(client, hooked_app, "/intake/digestive/digestive-alarm", {"n-rf2": "true"})
    review = client.get("/intake/review")
    assert client.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302
    assert [r["flag"] for r in received] == ["n-rf2"]
    assert len(notify_rows(hooked_app)) == len(set(notify_rows(hooked_app)))
    [flag] = [f for f in flags(hooked_app) if f.rule_id == "n-rf2"]
    assert (flag.source, flag.cleared_at) == ("draft", None)


def test_a_flag_answered_away_before_sending_is_on_the_summary(hooked_app: Flask,
                                                                webhook: tuple[str, list[dict[str, Any]]]) -> None:
    client = opened(hooked_app)
    assert post_page(client, hooked_app, RED_FLAGS, {"n-rf2": "true"}).headers["Location"] == "/intake/help"
    fill_all(client, hooked_app, "/intake/digestive/digestive-alarm", {"n-rf2": "false"})
    review = client.get("/intake/review")
    assert client.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302
    [flag] = [f for f in flags(hooked_app) if f.rule_id == "n-rf2"]
    assert flag.cleared_at is not None
    summary = signed_in(hooked_app).get(f"/clinician/intakes/{flag.intake_id}").text
    section = summary.split("Raised while answering, then changed before sending")[1].split("</div>")[0]
    assert flag.message in section.replace("&#39;", "'") and re.search(r"breathing[^<]*— No", section)
    assert [r["flag"] for r in webhook[1]] == ["n-rf2"]


def flag_text_in(html: str, resource: dict[str, Any], flag_id: str) -> bool:
    """The flag's patient guidance (as the Questionnaire words it, HTML-escaped) is on the page."""
    text = flag_guidance(resource, flag_id)
    return bool(text) and str(escape(text)) in html


def test_leaving_after_the_interruption_still_leaves_one_notification(
        hooked_app: Flask, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    client = opened(hooked_app)
    assert post_page(client, hooked_app, RED_FLAGS, {"n-rf3": "true"}).headers["Location"] == "/intake/help"
    # The patient closes the phone here: nothing is ever submitted.
    assert [r["flag"] for r in webhook[1]] == ["n-rf3"]
    assert [(f.rule_id, f.source) for f in flags(hooked_app)] == [("n-rf3", "draft")]


def test_phq9_item9_stays_on_record_when_a_lower_phq4_switches_phq9_off(
    hooked_app: Flask, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    client = opened(hooked_app)
    assert post_page(client, hooked_app, PHQ4, HIGH_PHQ4).status_code == 302
    response = post_page(client, hooked_app, PHQ9, {"phq9-9": "LA6569-3"})
    assert response.headers["Location"] == "/intake/help"
    # Lowering PHQ-4 switches PHQ-9 off, and so drops its answers: the flag stays, cleared.
    low = dict.fromkeys(HIGH_PHQ4, "LA6568-5")
    assert post_page(client, hooked_app, PHQ4, low).status_code == 302
    assert client.get(PHQ9).status_code == 404
    [flag] = [f for f in flags(hooked_app) if f.rule_id == "phq9-item9"]
    assert flag.cleared_at is not None and flag.tier == "emergency"
    listed = signed_in(hooked_app).get("/clinician/flags").text
    assert "Answer changed" in listed and "not answered now" in listed
    assert [r["flag"] for r in webhook[1]] == ["phq9-item9"]


def test_urgent_flags_are_stored_and_notified_from_drafts_without_interrupting(
        hooked_app: Flask, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    client = opened(hooked_app)
    response = post_page(client, hooked_app, RED_FLAGS, {"n-rf1": "true"})
    assert response.status_code == 302 and response.headers["Location"] != "/intake/help"
    assert [(f.rule_id, f.tier, f.source) for f in flags(hooked_app)] == [("n-rf1", "urgent", "draft")]
    assert [r["flag"] for r in webhook[1]] == ["n-rf1"]
    # Review-tier rules wait for the submitted answers.
    assert post_page(client, hooked_app, RED_FLAGS, {"n-rf1": "true", "n-rf5": "true"}).status_code == 302
    assert [f.rule_id for f in flags(hooked_app)] == ["n-rf1"]


def test_without_a_notification_channel_the_flag_is_still_listed(make_app: AppFactory) -> None:
    app = make_app()
    client = opened(app)
    assert post_page(client, app, RED_FLAGS, {"n-rf2": "true"}).headers["Location"] == "/intake/help"
    help_page = client.get("/intake/help").text
    assert "Your care team can see it now" in help_page  # no claim that someone was told
    assert [(f.rule_id, f.notify_state) for f in flags(app)] == [("n-rf2", "pending")]
    assert "n-rf2" not in "".join(notify_rows(app))
    assert "not sent yet" in signed_in(app).get("/clinician/flags").text


def test_the_help_page_without_a_reported_danger_goes_back_to_the_start(client: FlaskClient, app: Flask) -> None:
    client.get(invite_link(app))
    response = client.get("/intake/help")
    assert response.status_code == 302 and response.headers["Location"] == "/intake"


def test_the_deployments_numbers_are_tap_to_call_links_in_each_language(make_app: AppFactory) -> None:
    app = make_app(INTAKE_EMERGENCY_NUMBER="112", INTAKE_CLINIC_PHONE="+34 910 000 000",
                   INTAKE_CRISIS_LINES="Crisis line|0800 123 456; broken entry", INTAKE_CRISIS_LINES_ES="Línea 024|024")
    client = opened(app)
    assert post_page(client, app, RED_FLAGS, {"n-rf2": "true"}).status_code == 302
    page = client.get("/intake/help").text
    assert '<a class="contact-link" href="tel:112">Call 112</a>' in page
    assert 'href="tel:0800123456"' in page and "Crisis line" in page and "broken entry" not in page
    assert 'href="tel:+34910000000"' in page
    assert "<li>Call your local emergency number.</li>" not in page  # the fallback gives way to the number
    client.get("/language/es?next=/intake/help")
    spanish = client.get("/intake/help").text
    assert "Línea 024" in spanish and 'href="tel:024"' in spanish and "Crisis line" not in spanish
    assert 'lang="es"' in spanish and "Llame al 112" in spanish
