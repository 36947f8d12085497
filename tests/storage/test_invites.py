"""Patient links (invite tokens, links held until shown) on whichever database the run uses."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from intake.storage import invites
from intake.storage.db import session_scope
from intake.storage.models import InviteToken, ShownLink
from tests.storage.factories import (
    NOW,
    make_intake,
    new_intake,
    token_hash,
)


def test_token_lookup_finds_only_live_tokens(session: Session) -> None:
    intake = make_intake(session)
    tomorrow = NOW + timedelta(days=1)
    live = token_hash("live")
    invites.issue_invite(session, intake_id=intake.id, token_hash=live, expires_at=tomorrow)
    found = invites.find_intake_by_token_hash(session, live, now=NOW)
    assert found is not None and found.id == intake.id
    assert invites.find_intake_by_token_hash(session, token_hash("unknown"), now=NOW) is None
    expired = invites.find_intake_by_token_hash(session, live, now=tomorrow)
    assert expired is None  # a link stops working at its expiry instant

    other = make_intake(session)
    for token in ("old", "new"):
        invites.issue_invite(
            session, intake_id=other.id, token_hash=token_hash(token), expires_at=tomorrow
        )
    assert invites.find_intake_by_token_hash(session, token_hash("old"), now=NOW) is None  # revoked
    found = invites.find_intake_by_token_hash(session, token_hash("new"), now=NOW)
    assert found is not None and found.id == other.id


def test_issuing_an_invite_revokes_the_earlier_ones(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    for token in ("first", "second", "third"):
        with session_scope(session_factory) as session:
            invites.issue_invite(
                session, intake_id=intake.id, token_hash=token_hash(token),
                expires_at=NOW + timedelta(days=7),
            )
    with session_scope(session_factory) as session:
        rows = session.scalars(select(InviteToken).order_by(InviteToken.id)).all()
    assert [r.token_hash for r in rows] == [token_hash(t) for t in ("first", "second", "third")]
    assert [r.revoked_at is None for r in rows] == [False, False, True]
    assert all(r.revoked_at is None or r.revoked_at.tzinfo == timezone.utc for r in rows)


def test_raw_tokens_are_refused(session: Session) -> None:
    intake = make_intake(session)
    with pytest.raises(ValueError, match="SHA-256"):
        invites.issue_invite(
            session, intake_id=intake.id, token_hash="raw-secret-token", expires_at=NOW
        )


def test_finding_1_a_link_is_in_force_until_replaced_revoked_or_expired(session: Session) -> None:
    intake, other = make_intake(session), make_intake(session)
    tomorrow = NOW + timedelta(days=1)
    invites.issue_invite(session, intake_id=intake.id, token_hash=token_hash("first"), expires_at=tomorrow)
    found = invites.find_live_link(session, token_hash("first"), now=NOW)
    assert found is not None and found[0].id == intake.id
    first = found[1]
    for lock in (False, True):
        assert invites.link_in_force(session, first, intake.id, now=NOW, lock=lock)
        assert not invites.link_in_force(session, first, intake.id, now=tomorrow, lock=lock)  # expired
        assert not invites.link_in_force(session, first, other.id, now=NOW, lock=lock)  # another intake's
        assert not invites.link_in_force(session, first, "no-such-intake", now=NOW, lock=lock)
    invites.issue_invite(session, intake_id=intake.id, token_hash=token_hash("second"), expires_at=tomorrow)
    second = invites.find_live_link(session, token_hash("second"), now=NOW)
    assert second is not None
    assert not invites.link_in_force(session, first, intake.id, now=NOW)  # replaced
    assert invites.link_in_force(session, second[1], intake.id, now=NOW)
    assert invites.find_live_link(session, token_hash("first"), now=NOW) is None


def test_finding_9_a_held_link_is_taken_once_and_not_after_it_expires(session: Session) -> None:
    intake, other = make_intake(session), make_intake(session)
    soon = NOW + timedelta(minutes=5)
    held = invites.hold_shown_link(session, intake_id=intake.id, sealed="sealed-1", expires_at=soon, now=NOW)
    assert invites.take_shown_link(session, held, intake_id=intake.id, now=NOW) == "sealed-1"
    assert invites.take_shown_link(session, held, intake_id=intake.id, now=NOW) is None  # once
    held = invites.hold_shown_link(session, intake_id=intake.id, sealed="sealed-2", expires_at=soon, now=NOW)
    assert invites.take_shown_link(session, held, intake_id=other.id, now=NOW) is None  # another intake's page
    assert invites.take_shown_link(session, held, intake_id=intake.id, now=NOW) is None  # and it is gone
    held = invites.hold_shown_link(session, intake_id=intake.id, sealed="sealed-3", expires_at=soon, now=NOW)
    assert invites.take_shown_link(session, held, intake_id=intake.id, now=soon) is None  # expired
    invites.hold_shown_link(session, intake_id=intake.id, sealed="stale", expires_at=soon, now=NOW)
    invites.hold_shown_link(session, intake_id=other.id, sealed="fresh", expires_at=soon + timedelta(minutes=5), now=soon)
    assert session.scalars(select(ShownLink.sealed)).all() == ["fresh"]  # held past their time: dropped
