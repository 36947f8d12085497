"""Security headers on every kind of response, and the session cookie's flags over HTTPS."""

from __future__ import annotations

import pytest
from flask import Flask

from intake.web.headers import CONTENT_SECURITY_POLICY, HSTS
from tests.conftest import AppFactory
from tests.web.conftest import invite_link

PATHS = ["/", "/intake", "/no-such-page", "/fhir/metadata", "/fhir/Patient", "/clinician/", "/static/intake.css"]


@pytest.mark.parametrize("path", PATHS)
def test_every_response_carries_the_security_headers(client, path: str) -> None:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY and "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP: no HSTS
    if not path.startswith("/static/"):
        assert response.headers["Cache-Control"] == "no-store"
    response.close()  # a static file's handle


def test_hsts_over_https(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize("base_url, sent", [("https://intake.example.org", True), ("http://127.0.0.1:5000", False)])
def test_hsts_follows_an_https_base_url_behind_a_tls_proxy(make_app: AppFactory, base_url: str, sent: bool) -> None:
    """A TLS-terminating proxy hands the request on over plain HTTP (request.is_secure is false,
    and no X-Forwarded-Proto is trusted by default): the service is still served over HTTPS, as
    INTAKE_BASE_URL says, so HSTS is sent. With an http:// base URL it is not."""
    app = make_app(INTAKE_BASE_URL=base_url)
    for path in ("/", "/staff/login", "/fhir/metadata", "/no-such-page"):
        response = app.test_client().get(path, base_url="http://intake.example.org")
        assert (response.headers.get("Strict-Transport-Security") == HSTS) is sent, (path, response.headers)


def test_pages_need_nothing_inline(app: Flask, client) -> None:  # type: ignore[no-untyped-def]
    client.get(invite_link(app))
    page = client.get("/intake/digestive/digestive-alarm").text
    assert "<script>" not in page and " style=" not in page and "<style" not in page
    assert '<script src="/static/intake.js"' in page


def test_session_cookie_is_secure_and_host_prefixed_over_https(make_app: AppFactory) -> None:
    app = make_app(INTAKE_BASE_URL="https://intake.example.org")
    app.test_cli_runner().invoke(args=["intake", "init-db"])
    link = invite_link(app)
    response = app.test_client().get(link, base_url="https://intake.example.org")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-intake=") and "Secure" in cookie and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie and "Path=/" in cookie and "Domain" not in cookie
