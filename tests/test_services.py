"""intake.services: one typed object per app holds every service, and nothing else is looked up by name."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from flask import Flask
from flask_limiter import Limiter
from sqlalchemy import Engine

from intake.audit.queue import AuditQueue
from intake.core.catalog import Catalog
from intake.jobs import Jobs
from intake.jobs.outbox import Poller
from intake.services import KEY, Services, services
from intake.storage.db import READ_ONLY_OPTION, RELAXED_OPTION
from intake.web.forms.fragments import FragmentCache
from tests.conftest import AppFactory


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


def test_every_service_is_present_after_create_app(app: Flask) -> None:
    found = services(app)
    assert isinstance(found, Services)
    missing = [f.name for f in dataclasses.fields(Services) if not hasattr(found, f.name)]
    assert missing == []
    expected = {"engine": Engine, "catalog": Catalog, "jobs": Jobs, "outbox_poller": Poller,
                "audit_queue": AuditQueue, "limiter": Limiter, "fragments": FragmentCache, "outbox_handlers": dict}
    assert {name: kind for name, kind in expected.items() if not isinstance(getattr(found, name), kind)} == {}
    assert set(found.outbox_handlers) == {"render_pdf", "ehr_push", "notify", "patient_message"}


def test_the_session_factories_share_the_one_engine(app: Flask) -> None:
    found = services(app)
    factories = (found.sessions, found.readers, found.relaxed_writers)
    assert all(factory.kw["bind"].pool is found.engine.pool for factory in factories)  # one pool: one engine
    assert len({id(factory) for factory in factories}) == 3  # three factories, not one under three names
    options = [factory.kw["bind"].get_execution_options() for factory in factories]
    assert [(o.get(READ_ONLY_OPTION, False), o.get(RELAXED_OPTION, False)) for o in options] == [
        (False, False), (True, False), (False, True)]  # each name holds the sessions it says


def test_one_entry_on_the_app_and_no_string_keyed_services(app: Flask) -> None:
    assert app.extensions[KEY] is services(app)
    assert [key for key in app.extensions if key.startswith("intake")] == [KEY]


def test_without_an_app_the_current_one_is_used(app: Flask, tmp_path: Path, database_url: str) -> None:
    with app.app_context():
        assert services() is services(app)
    with pytest.raises(RuntimeError):  # outside any app context there is no current app
        services()


def test_two_apps_have_two_objects(app: Flask, make_app: AppFactory) -> None:
    other = make_app()
    assert services(other) is not services(app)
    assert services(other).catalog is not services(app).catalog
    assert services(other).jobs.app is other
