"""Patient links (intake.auth, the patient blueprint's /i/<token>): the token leaves the address
bar at once, and unknown, expired, revoked and submitted links answer with the very same page."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select, update

from intake import auth, workflow
from intake.storage.db import session_scope
from intake.storage.models import InviteToken, utcnow
from tests.web.conftest import csrf, invite_link
from tests.web.flow import fill_all


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
    with app.extensions["intake.sessions"]() as session:  # only the hash is kept
        stored = session.scalars(select(InviteToken.token_hash)).all()
    assert stored == [auth.token_hash(token_of(link))] and token_of(link) not in stored
    assert len(token_of(link)) >= 43  # 32 random bytes, base64url


def test_unknown_expired_revoked_and_submitted_links_are_indistinguishable(app: Flask) -> None:
    unknown = app.test_client().get("/i/" + auth.new_token())

    expired = invite_link(app)
    with session_scope(app.extensions["intake.sessions"]) as session:
        session.execute(update(InviteToken).where(InviteToken.token_hash == auth.token_hash(token_of(expired)))
                        .values(expires_at=utcnow() - timedelta(seconds=1)))

    revoked = invite_link(app)
    with session_scope(app.extensions["intake.sessions"]) as session:
        intake_id = session.scalars(select(InviteToken.intake_id)
                                    .where(InviteToken.token_hash == auth.token_hash(token_of(revoked)))).one()
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
