"""App and client fixtures over the database fixtures of tests/conftest.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AppFactory


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    """The app with the test settings (tests/conftest.py `make_app`): other settings, other apps
    come from `make_app(**overrides)` too."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def invite_link(app: Flask, *, name: str = "Test Patient", birth_date: str = "1970-01-01",
                questionnaires: str | None = None) -> str:
    """Run the real `flask intake invite` command and return the link path."""
    args = ["intake", "invite", "--name", name, "--birth-date", birth_date]
    if questionnaires:
        args += ["--questionnaires", questionnaires]
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    return "/i/" + result.output.strip().rsplit("/i/", 1)[1]


def csrf(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*? value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def error_summary(html: str) -> list[tuple[str, str]]:
    """(field id, message) pairs of the error summary.

    A radio or checkbox group's link goes to its first option (`<field id>-1`, as GOV.UK's error
    summary does), a date's to the box at fault (`<field id>-year`); each is reported here as
    the question's field id (`error_links` gives the targets as they are).
    """
    return [(_field_of(target, html), message) for target, message in error_links(html)]


def error_links(html: str) -> list[tuple[str, str]]:
    """(link target, message) pairs of the error summary, exactly as the page has them."""
    block = re.search(r'<div class="error-summary".*?</div>', html, re.S)
    if not block:
        return []
    return re.findall(r'<li><a href="#?([^"]*)">([^<]+)</a></li>', block.group(0))


def _field_of(target: str, html: str) -> str:
    group = re.fullmatch(r"(.+)-1", target)
    if group and f'<fieldset class="fieldset" id="{group.group(1)}"' in html:
        return group.group(1)
    box = re.fullmatch(r"(.+)-(day|month|year)", target)  # a date's box (GOV.UK date pattern)
    if box and f'<fieldset class="fieldset" role="group" id="{box.group(1)}"' in html:
        return box.group(1)
    return target


@pytest.fixture
def opened(app: Flask, client: FlaskClient) -> FlaskClient:
    """A client whose session is bound to a fresh five-questionnaire intake."""
    response = client.get(invite_link(app))
    assert response.status_code == 302
    return client


@pytest.fixture
def staff_app(make_app: AppFactory, webhook: tuple[str, list[dict[str, Any]]]) -> Flask:
    return make_app(INTAKE_NOTIFY_WEBHOOK=webhook[0])
