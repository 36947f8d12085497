"""Staff notification by e-mail through a real SMTP server on 127.0.0.1 (aiosmtpd)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message
from flask import Flask

from intake import notify
from intake.services import services
from intake.storage import flags as flag_store
from intake.storage import intakes, patients, scores
from intake.storage.db import session_scope
from intake.storage.models import FlagRecord
from tests.conftest import AppFactory

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


class Inbox(Message):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Any] = []

    def handle_message(self, message: Any) -> None:
        self.messages.append(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def raise_flags(app: Flask) -> str:
    with session_scope(services(app).sessions) as session:
        patient = patients.create_patient(session, name="Secret Name", birth_date=date(1950, 1, 1))
        intake = intakes.create_intake(session, patient_id=patient.id, questionnaires=["https://x/q|1"])
        flags = [{"id": rule, "tier": tier, "message": f"{rule} message", "because": ["a"], "questionnaire": "https://x/q|1"}
                 for rule, tier in (("e1", "emergency"), ("u1", "urgent"), ("r1", "review"))]
        scores.store_scoring(
            session,
            intake_id=intake.id,
            patient_id=patient.id,
            result={"scores": [], "flags": flags, "notes": []},
            versions={"https://x/q|1": "v"},
            now=NOW,
        )
        return intake.id


def test_email_once_per_emergency_or_urgent_flag(make_app: AppFactory, inbox: tuple[Inbox, int]) -> None:
    handler, port = inbox
    app = make_app(INTAKE_NOTIFY_EMAIL_TO="duty@clinic.example", INTAKE_SMTP_PORT=port)
    intake_id = raise_flags(app)
    assert notify.send_pending(app) == 2
    assert notify.send_pending(app) == 0  # once only
    subjects = sorted(m["Subject"] for m in handler.messages)
    assert subjects == ["[Intake] EMERGENCY flag: e1", "[Intake] URGENT flag: u1"]
    body = handler.messages[0].get_payload()
    assert intake_id in body and "Secret Name" not in body
    # Re-scoring the same intake raises the same flag again: nothing is added or sent.
    with session_scope(services(app).sessions) as session:
        patient_id = intakes.get_intake(session, intake_id).patient_id
        added = scores.store_scoring(
            session, intake_id=intake_id, patient_id=patient_id, versions={}, now=NOW,
            result={"flags": [{"id": "e1", "tier": "emergency", "message": "m", "because": [],
                               "questionnaire": "https://x/q|1"}]})
    assert added == []
    assert notify.send_pending(app) == 0
    assert len(handler.messages) == 2


def test_a_failed_send_is_recorded_and_retried(make_app: AppFactory, inbox: tuple[Inbox, int]) -> None:
    handler, port = inbox
    closed = free_port()  # nothing listens here
    app = make_app(INTAKE_NOTIFY_EMAIL_TO="duty@clinic.example", INTAKE_SMTP_PORT=closed)
    raise_flags(app)
    assert notify.send_pending(app) == 0
    with session_scope(services(app).sessions) as session:
        states = sorted(
            (f.rule_id, f.notify_state)
            for f, _ in flag_store.list_flags(session, tiers=("emergency", "urgent", "review"))
        )
    assert states == [("e1", "failed"), ("r1", "not-required"), ("u1", "failed")]
    app.config["INTAKE_SMTP_PORT"] = port
    result = app.test_cli_runner().invoke(args=["intake", "flags", "--send"])
    assert "notifications sent: 2" in result.output
    assert len(handler.messages) == 2


def test_the_payload_message_reads_as_the_clinician_reads_it(make_app: AppFactory) -> None:
    """No rule codes, and no threshold given only as its default (a message stored earlier)."""
    app = make_app(INTAKE_NOTIFY_WEBHOOK="http://127.0.0.1:9/hook")
    flag = FlagRecord(intake_id="i1", rule_id="gi-af5", tier="review", source="submitted", raised_at=NOW,
                      message="GI alarm feature GI-AF5: bowel symptoms began at or over the onset-age "
                              "threshold (default 50) (clinician review).")
    body = notify.payload(flag, app)
    assert body["message"] == ("GI alarm feature: bowel symptoms began at or over the clinic's onset-age "
                               "threshold (clinician review).")
    assert body["flag"] == "gi-af5"
