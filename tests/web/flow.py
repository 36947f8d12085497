"""Drive the patient pages like a person would, with answers chosen from the Questionnaires."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

import intake.auth.staff
from intake.core.fhir_time import utcnow
from intake.core.items import Item
from intake.services import services
from intake.storage.db import session_scope
from intake.storage.models import Intake
from intake.web.forms import field_name, option_key
from tests.web.conftest import csrf, invite_link


def default_value(item: Item) -> Any:
    """A valid answer for any item type: the first option, 'No', the minimum, a past date."""
    if item.type == "boolean":
        return "false"
    if item.type in ("choice", "open-choice"):
        key = option_key(item.options[0])
        return [key] if item.repeats else key
    if item.type in ("integer", "decimal", "quantity"):
        low = next(iter(item.min_value.values())) if item.min_value else 1
        return str(max(low, 1) if not item.max_value else low)
    if item.type == "date":
        return "2020-01"
    if item.type == "dateTime":
        return "2024-01-01T10:00"
    return "fine"


def page_data(app: Flask, path: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Form data answering every question of the page at `path` (/intake/<form>/<page>)."""
    _, _, form_key, page_key = urlsplit(path).path.split("/")
    form = services(app).catalog.by_key[form_key]
    page = next(p for p in form.pages if p.key == page_key)
    data: dict[str, Any] = {}
    for item in page.walk():
        if not item.is_question or item.read_only or item.hidden:
            continue
        value = (overrides or {}).get(item.link_id, default_value(item))
        if value is not None:
            data[field_name(item.link_id)] = value
    return data


def fill_page(client: FlaskClient, app: Flask, path: str, overrides: dict[str, Any] | None = None) -> str:
    """GET the page, POST valid answers, return where it redirects."""
    page = client.get(path)
    assert page.status_code == 200, path
    data = page_data(app, path, overrides)
    data["csrf_token"] = csrf(page.text)
    response = client.post(path, data=data)
    assert response.status_code == 302, (path, response.status_code)
    location = response.headers["Location"]
    if urlsplit(location).path == "/intake/help":
        return continue_after_help(client)
    return location


def continue_after_help(client: FlaskClient) -> str:
    """The interruption shown after an emergency answer: read it, then take its Continue link."""
    page = client.get("/intake/help")
    assert page.status_code == 200 and 'class="interruption"' in page.text, page.status_code
    match = re.search(r'<a class="button button--secondary" href="([^"]+)"', page.text)
    assert match, "the interruption has no way to continue"
    return match.group(1).replace("&amp;", "&")


def first_page(client: FlaskClient) -> str:
    """The first questionnaire page linked from the start page of the client's intake."""
    match = re.search(r'href="(/intake/[^"]+)"', client.get("/intake").text)
    assert match, "the start page links to no questionnaire page"
    return match.group(1)


def fill_all(client: FlaskClient, app: Flask, first: str, overrides: dict[str, Any] | None = None) -> list[str]:
    """Fill pages from `first` until the review page; returns the page paths visited."""
    visited = []
    path = first
    while not path.endswith("/intake/review"):
        visited.append(path)
        assert len(visited) < 40, "page loop"
        path = fill_page(client, app, path, overrides)
    return visited


STAFF = ("doctor", "correct horse battery staple")  # a clinician account (see `signed_in`)


def add_staff(app: Flask, username: str = STAFF[0], role: str = "clinician", password: str = STAFF[1]) -> None:
    """Create a staff account unless it exists (the same function `flask intake user add` uses)."""

    with session_scope(services(app).sessions) as session:
        if intake.auth.staff.store.user_named(session, username) is None:
            intake.auth.staff.add_user(session, username=username, display_name=username.title(), role=role,
                              password=password, now=utcnow())


def sign_in(
    client: FlaskClient, username: str = STAFF[0], password: str = STAFF[1], next_url: str | None = None
) -> Any:
    """Post the sign-in form as a browser would; returns the response."""
    path = "/staff/login" + (f"?next={next_url}" if next_url else "")
    token = csrf(client.get(path).text)
    return client.post(path, data={"username": username, "password": password, "csrf_token": token})


def signed_in(
    app: Flask, role: str = "clinician", username: str | None = None, password: str = STAFF[1]
) -> FlaskClient:
    """A client signed in as a staff member with `role` (the account is made if missing)."""
    username = username or (STAFF[0] if role == "clinician" else role.replace("-", ""))
    add_staff(app, username, role, password)
    client = app.test_client()
    response = sign_in(client, username, password)
    assert response.status_code == 302, response.text
    return client
EMERGENCY = {"n-rf2": "true"}  # difficulty breathing/swallowing/speaking: emergency tier
HIGH_PHQ4 = {"phq4-1": "LA6571-9", "phq4-2": "LA6571-9", "phq4-3": "LA6571-9", "phq4-4": "LA6571-9"}


def complete_intake(
    app: Flask, overrides: dict[str, Any], *, birth_date: str = "1960-05-01"
) -> tuple[FlaskClient, str]:
    """Invite, answer every page (defaults + `overrides`), submit twice; (client, intake id)."""
    client = app.test_client()
    client.get(invite_link(app, birth_date=birth_date))
    first = "/intake/digestive/digestive-alarm"
    fill_all(client, app, first, overrides)
    review = client.get("/intake/review")
    for _ in range(2):  # a double submit
        assert client.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302
    with services(app).sessions() as session:
        intake_id = session.scalars(select(Intake.id).order_by(Intake.completed_at.desc())).first()
    return client, intake_id
