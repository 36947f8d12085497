"""intake.web.proxies: behind trusted proxies the client's own address reaches the audit log and
the rate limits, and the scheme and host reach absolute URLs; with none trusted, the headers
are ignored (a client cannot pick the address it is logged under)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake.services import services
from intake.storage.models import AuditRecord
from intake.web.limits import SUSPECT_AFTER
from tests.conftest import AppFactory
from tests.web.flow import add_staff, sign_in

PROXY = "10.0.0.2"  # the address every request arrives from when a proxy is in front
BASE_TOKEN_URL = "http://127.0.0.1:5000/auth/token"  # from the default INTAKE_BASE_URL


def via_proxy(app: Flask, client_address: str) -> FlaskClient:
    """A client whose requests come through the proxy, which names the real client."""
    client = app.test_client()
    client.environ_base.update({"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": client_address,
                                "HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "intake.example.org"})
    return client


def failed_sign_in_source(app: Flask, client: FlaskClient) -> str:
    assert sign_in(client, password="wrong password!").status_code == 401
    with services(app).sessions() as session:
        return session.scalars(select(AuditRecord.source).where(AuditRecord.action == "login-failed")
                               .order_by(AuditRecord.seq.desc())).first() or ""


def test_a_trusted_proxy_names_the_client_in_the_audit_log_and_urls(make_app: AppFactory) -> None:
    app = make_app(INTAKE_TRUSTED_PROXIES=1)
    add_staff(app)
    assert failed_sign_in_source(app, via_proxy(app, "203.0.113.7")) == "203.0.113.7"
    metadata = via_proxy(app, "203.0.113.7").get("/fhir/metadata")
    assert metadata.get_json()["implementation"]["url"] == "https://intake.example.org/fhir"
    assert "Strict-Transport-Security" in metadata.headers  # the client's connection was HTTPS
    found = via_proxy(app, "203.0.113.7").get("/.well-known/smart-configuration").get_json()
    assert found["token_endpoint"] == BASE_TOKEN_URL  # INTAKE_BASE_URL alone (finding 2), whatever the headers


def test_only_the_nearest_proxies_are_believed(make_app: AppFactory) -> None:
    app = make_app(INTAKE_TRUSTED_PROXIES=1)
    add_staff(app)
    # The client wrote its own X-Forwarded-For; the proxy appended the address it really saw.
    assert failed_sign_in_source(app, via_proxy(app, "198.51.100.1, 203.0.113.8")) == "203.0.113.8"


def test_without_trusted_proxies_the_headers_are_ignored(make_app: AppFactory) -> None:
    app = make_app()
    add_staff(app)
    assert failed_sign_in_source(app, via_proxy(app, "203.0.113.7")) == PROXY
    metadata = via_proxy(app, "203.0.113.7").get("/fhir/metadata")
    assert metadata.get_json()["implementation"]["url"] == "http://localhost/fhir"
    assert "Strict-Transport-Security" not in metadata.headers  # an http:// INTAKE_BASE_URL, a plain request


def test_rate_limits_count_each_client_behind_the_proxy(make_app: AppFactory) -> None:
    app = make_app(INTAKE_TRUSTED_PROXIES=1, INTAKE_LOGIN_RATE_LIMIT="2 per minute")
    add_staff(app)
    first = via_proxy(app, "203.0.113.1")
    assert [sign_in(first, password="wrong password!").status_code for _ in range(3)] == [401, 401, 429]
    assert sign_in(via_proxy(app, "203.0.113.2"), password="wrong password!").status_code == 401


def test_behind_the_proxy_failures_for_a_name_do_not_lock_its_owner_out(make_app: AppFactory) -> None:
    """The soft per-name limit tells clients apart by the forwarded address: the failures of
    others do not make the owner's address a suspect (docs/security.md)."""
    app = make_app(INTAKE_TRUSTED_PROXIES=1, INTAKE_LOGIN_USER_RATE_LIMIT="2 per hour")
    add_staff(app)
    failing = [via_proxy(app, f"203.0.113.{n}") for n in range(1, SUSPECT_AFTER + 3)]
    assert [sign_in(client, password="wrong password!").status_code for client in failing] == [401] * len(failing)
    assert sign_in(via_proxy(app, "198.51.100.7")).status_code == 302  # (as seen from the proxy, it would be 429)


def test_a_negative_number_of_proxies_is_refused(make_app: AppFactory) -> None:
    with pytest.raises(ValueError, match="INTAKE_TRUSTED_PROXIES"):
        make_app(INTAKE_TRUSTED_PROXIES=-1)
