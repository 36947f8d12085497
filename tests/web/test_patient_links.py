"""Patient links (intake.auth, the patient blueprint's /i/<token>): the token leaves the address
bar at once, and unknown, expired, revoked and submitted links answer with the very same page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, update

from intake import workflow
from intake.core.fhir_time import utcnow
from intake.services import services
from intake.storage.db import session_scope
from intake.storage.models import Intake, InviteToken, ResponseRecord
from intake.web import forms as webforms
from intake.web import patient
from tests.web.conftest import csrf, invite_link
from tests.web.flow import fill_all, fill_page, first_page, page_data, signed_in
from intake.auth import links


def token_of(link: str) -> str:
    return link.rsplit("/i/", 1)[1]


def test_the_token_leaves_the_address_bar_and_is_never_sent_on(app: Flask) -> None:
    client = app.test_client()
    link = invite_link(app)
    response = client.get(link)
    assert response.status_code == 302 and response.headers["Location"] == "/intake"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    start = client.get("/intake")
    assert start.status_code == 200 and start.headers["Referrer-Policy"] == "no-referrer"
    assert token_of(link) not in start.text
    with services(app).sessions() as session:  # only the hash is kept
        stored = session.scalars(select(InviteToken.token_hash)).all()
    assert stored == [links.token_hash(token_of(link))] and token_of(link) not in stored
    assert len(token_of(link)) >= 43  # 32 random bytes, base64url


def test_unknown_expired_revoked_and_submitted_links_are_indistinguishable(app: Flask) -> None:
    unknown = app.test_client().get("/i/" + links.new_token())

    expired = invite_link(app)
    with session_scope(services(app).sessions) as session:
        session.execute(update(InviteToken).where(InviteToken.token_hash == links.token_hash(token_of(expired)))
                        .values(expires_at=utcnow() - timedelta(seconds=1)))

    revoked = invite_link(app)
    with session_scope(services(app).sessions) as session:
        intake_id = session.scalars(select(InviteToken.intake_id)
                                    .where(InviteToken.token_hash == links.token_hash(token_of(revoked)))).one()
        workflow.new_link(session, intake_id, ttl=timedelta(days=1))

    submitted = invite_link(app, questionnaires="digestive")
    patient = app.test_client()
    patient.get(submitted)
    fill_all(patient, app, "/intake/digestive/digestive-alarm")
    assert patient.post("/intake/submit", data={"csrf_token": csrf(patient.get("/intake/review").text)}).status_code == 302

    answers = {name: app.test_client().get(link) for name, link in
               (("expired", expired), ("revoked", revoked), ("submitted", submitted))}
    for name, response in answers.items():
        assert response.status_code == unknown.status_code == 404, name
        assert response.data == unknown.data, f"a {name} link can be told from an unknown one"
        assert response.headers.get("Set-Cookie") is None, f"a {name} link opened a session"


# --- finding 1: a link's sessions end with the link ------------------------------------------

ENDED = "This link no longer works"


def _intake_of(app: Flask, link: str) -> str:
    with services(app).sessions() as session:
        return session.scalars(select(InviteToken.intake_id)
                               .where(InviteToken.token_hash == links.token_hash(token_of(link)))).one()


def _stored(app: Flask, intake_id: str) -> tuple[str, list[tuple[str, int]]]:
    """The intake's status and its responses' (status, version): what a refused request must not change."""
    with services(app).sessions() as session:
        status = session.scalars(select(Intake.status).where(Intake.id == intake_id)).one()
        rows = session.execute(select(ResponseRecord.status, ResponseRecord.version_id)
                               .where(ResponseRecord.intake_id == intake_id).order_by(ResponseRecord.id)).all()
    return status, [(row.status, row.version_id) for row in rows]


class OldBrowser:
    """A patient browser that opened a link and saved a page; its cookie can be replayed, so every
    patient route can be tried with the same old session."""

    def __init__(self, app: Flask, link: str) -> None:
        self.app = app
        self.client = app.test_client()
        assert self.client.get(link).status_code == 302
        self.first = first_page(self.client)
        fill_page(self.client, app, self.first)
        self.page = self.client.get(self.first).text
        self.review = self.client.get("/intake/review").text
        cookie = self.client.get_cookie("session")
        assert cookie is not None
        self.cookie = cookie.value

    def requests(self) -> list[tuple[str, str, dict[str, str] | None]]:
        page_post = {**page_data(self.app, self.first), "csrf_token": csrf(self.page)}
        return [
            ("GET", "/intake", None),
            ("GET", self.first, None),
            ("POST", self.first, page_post),
            ("POST", self.first, {**page_post, "language": "es"}),  # the language switch on a page
            ("GET", "/intake/help", None),
            ("GET", "/intake/review", None),
            ("POST", "/intake/submit", {"csrf_token": csrf(self.review)}),
            ("GET", "/intake/done", None),
            ("GET", "/language/es?next=/intake", None),
        ]

    def assert_refused_everywhere(self) -> None:
        intake_id = self.intake_id()
        before = _stored(self.app, intake_id)
        for method, path, data in self.requests():
            self.client.set_cookie("session", self.cookie)
            response = self.client.open(path, method=method, data=data)
            assert response.status_code == 403, (method, path, response.status_code)
            assert ENDED in response.text and "newest link" in response.text, (method, path)
            assert "Your saved answers are safe" in response.text
            left = self.client.get_cookie("session")
            assert left is None or "intake_id" not in _decoded(self.app, left.value), (method, path)
        assert _stored(self.app, intake_id) == before  # nothing written, nothing lost
        assert before[1] and before[1][0] == ("in-progress", 1)  # the page saved earlier is still there

    def intake_id(self) -> str:
        return str(_decoded(self.app, self.cookie)["intake_id"])


def _decoded(app: Flask, cookie: str) -> dict[str, object]:
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return dict(serializer.loads(cookie))


def _keeps_working(app: Flask, link: str) -> None:
    """The newest link's browser carries on where the patient stopped, and submits."""
    client = app.test_client()
    assert client.get(link).status_code == 302
    start = client.get("/intake")
    assert start.status_code == 200 and "Continue" in start.text
    fill_all(client, app, first_page(client))
    assert client.post("/intake/submit", data={"csrf_token": csrf(client.get("/intake/review").text)}).status_code == 302
    assert client.get("/intake/done").status_code == 200


def test_finding_1_a_new_link_from_the_front_desk_ends_the_old_links_sessions(app: Flask) -> None:
    old_link = invite_link(app, questionnaires="digestive")
    old = OldBrowser(app, old_link)
    desk = signed_in(app, "front-desk")
    intake_id = old.intake_id()
    page = desk.get(f"/front-desk/intakes/{intake_id}/link").text
    response = desk.post(f"/front-desk/intakes/{intake_id}/link", data={"csrf_token": csrf(page)})
    assert response.status_code == 302
    shown = desk.get(response.headers["Location"]).text
    match = re.search(r'id="patient-link" type="text" readonly value="[^"]*(/i/[^"]+)"', shown)
    assert match
    old.assert_refused_everywhere()
    _keeps_working(app, match.group(1))


def test_finding_1_a_new_link_from_the_command_line_ends_the_old_links_sessions(app: Flask) -> None:
    old = OldBrowser(app, invite_link(app, questionnaires="digestive"))
    result = app.test_cli_runner().invoke(args=["intake", "invite", "--intake", old.intake_id()])
    assert result.exit_code == 0, result.output
    new_link = "/i/" + result.output.strip().rsplit("/i/", 1)[1]
    old.assert_refused_everywhere()
    _keeps_working(app, new_link)


def test_finding_1_a_revoked_link_ends_its_sessions(app: Flask) -> None:
    link = invite_link(app, questionnaires="digestive")
    old = OldBrowser(app, link)
    with session_scope(services(app).sessions) as session:
        session.execute(update(InviteToken).where(InviteToken.token_hash == links.token_hash(token_of(link)))
                        .values(revoked_at=utcnow()))
    old.assert_refused_everywhere()


def test_finding_1_an_expired_link_ends_its_sessions(app: Flask) -> None:
    link = invite_link(app, questionnaires="digestive")
    old = OldBrowser(app, link)
    with session_scope(services(app).sessions) as session:
        session.execute(update(InviteToken).where(InviteToken.token_hash == links.token_hash(token_of(link)))
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    old.assert_refused_everywhere()


def test_finding_1_a_session_that_records_no_link_is_refused(app: Flask) -> None:
    """A cookie holding only the intake id (as sessions did before the link was recorded)."""
    link = invite_link(app, questionnaires="digestive")
    client = app.test_client()
    client.get(link)
    with client.session_transaction() as session:
        session.pop("link_id")
    response = client.get("/intake")
    assert response.status_code == 403 and ENDED in response.text
    assert client.get(link).status_code == 302 and client.get("/intake").status_code == 200  # the link still opens it


def test_finding_1_a_link_replaced_during_a_save_or_submit_stops_the_write(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """The link is replaced after the request's first check, before its write transaction: the
    write checks again under the intake's lock, so nothing is saved or submitted."""
    old = OldBrowser(app, invite_link(app, questionnaires="digestive"))
    intake_id = old.intake_id()
    before = _stored(app, intake_id)

    def replace_link() -> None:
        with session_scope(services(app).sessions) as session:
            workflow.new_link(session, intake_id, ttl=timedelta(days=1))

    build_form = webforms.page_form_class

    def build_form_then_replace(*args: object, **kwargs: object) -> object:
        replace_link()
        return build_form(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(webforms, "page_form_class", build_form_then_replace)
    method, path, data = old.requests()[2]
    assert (method, path) == ("POST", old.first)
    response = old.client.post(path, data=data)
    assert response.status_code == 403 and ENDED in response.text
    monkeypatch.undo()

    assert _stored(app, intake_id) == before

    link = invite_link(app, questionnaires="digestive")  # every page answered: a submit would be accepted
    client = app.test_client()
    client.get(link)
    fill_all(client, app, first_page(client))
    review = client.get("/intake/review").text
    intake_id = _intake_of(app, link)
    check_csrf = patient.validate_csrf

    def check_csrf_then_replace(token: str) -> None:
        replace_link()
        check_csrf(token)

    monkeypatch.setattr(patient, "validate_csrf", check_csrf_then_replace)
    response = client.post("/intake/submit", data={"csrf_token": csrf(review)})
    assert response.status_code == 403 and ENDED in response.text
    assert _stored(app, intake_id)[0] == "in-progress"
