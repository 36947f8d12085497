"""A patient half-way through when the forms change: their intake keeps the version it pinned.

The intake is created pinned to an archived Questionnaire (forms/archive), answered page by page
through the real patient pages (in English and Spanish), submitted and scored with that
version's rules; `flask intake rescore` then applies the newest version to the same answers.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake.core.items import Form
from intake.services import services
from intake.storage import responses, scores
from intake.storage.models import Intake
from intake.web.forms import field_name
from tests.web.conftest import app, client, csrf, invite_link  # noqa: F401  (fixtures)
from tests.web.flow import continue_after_help, default_value, first_page

OLD = "https://intake.example.org/fhir/Questionnaire/digestive|1.2.0"
NEW = "https://intake.example.org/fhir/Questionnaire/digestive|1.5.0"


def page_answers(form: Form, page_key: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Form data for one page of `form` (the pinned version, not the newest one)."""
    page = next(p for p in form.pages if p.key == page_key)
    data = {}
    for item in page.walk():
        if item.is_question and not item.read_only and not item.hidden:
            data[field_name(item.link_id)] = overrides.get(item.link_id, default_value(item))
    return data


def answer_every_page(client: FlaskClient, form: Form, overrides: dict[str, Any]) -> list[str]:  # noqa: F811
    visited = []
    path = first_page(client)
    while not path.endswith("/intake/review"):
        visited.append(path)
        assert len(visited) < 10, "page loop"
        shown = client.get(path)
        assert shown.status_code == 200, path
        data = page_answers(form, urlsplit(path).path.rsplit("/", 1)[-1], overrides)
        response = client.post(path, data={**data, "csrf_token": csrf(shown.text)})
        assert response.status_code == 302, (path, response.status_code)
        path = response.headers["Location"]
        if urlsplit(path).path == "/intake/help":
            path = continue_after_help(client)
    return visited


def test_an_intake_pinned_to_an_archived_version_is_answered_submitted_and_rescored(
        app: Flask, client: FlaskClient) -> None:  # noqa: F811
    catalog = services(app).catalog
    old = catalog.get(OLD)
    assert old is not None and catalog.by_key["digestive"].canonical == NEW
    assert client.get(invite_link(app, birth_date="1970-05-20", questionnaires=OLD)).status_code == 302

    first = client.get(first_page(client)).text
    assert "blood in or on your stool" in first
    assert field_name("gi-af1-dizzy") not in first  # the pinned page, not the newest one
    client.get("/language/es?next=/intake")
    assert "heces" in client.get(first_page(client)).text  # and its Spanish
    client.get("/language/en?next=/intake")

    # Onset "2020" (year only) for a patient born 1970-05: the old rule read it as January (49).
    pages = answer_every_page(client, old, {"gi-af5": "2020"})
    assert [urlsplit(p).path for p in pages] == [f"/intake/digestive/{p.key}" for p in old.pages]
    review = client.get("/intake/review")
    assert review.status_code == 200
    assert client.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302

    with services(app).sessions() as session:
        intake_id = session.scalars(select(Intake.id)).one()
        stored = [json.loads(r.resource_json) for r in responses.list_responses(session, intake_id)]
        scoring = scores.get_scoring(session, intake_id)
    assert [r["questionnaire"] for r in stored] == [OLD]
    assert scoring is not None and scoring.result["scoringVersions"] == {OLD: f"engine-1;{OLD}"}
    assert "gi-af5" not in [f["id"] for f in scoring.result["flags"]]

    # The newest rules (December for a year-only onset: 50) reach the stored answers on rescore.
    result = app.test_cli_runner().invoke(args=["intake", "rescore", intake_id])
    assert result.exit_code == 0, result.output
    with services(app).sessions() as session:
        rescored = scores.get_scoring(session, intake_id)
    assert rescored is not None and rescored.result["scoringVersions"] == {NEW: f"engine-1;{NEW}"}
    assert "gi-af5" in [f["id"] for f in rescored.result["flags"]]
