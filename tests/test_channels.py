"""E-mail and SMS delivery: what the provider receives, and which failures are retried."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from flask import Flask

from intake import channels
from intake.jobs.errors import Permanent, Retry
from tests.conftest import AppFactory
from tests.support.sms_provider import SmsProvider
from tests.test_notify import free_port


@pytest.fixture
def sms() -> Iterator[SmsProvider]:
    with SmsProvider() as provider:
        yield provider


@pytest.fixture
def app(make_app: AppFactory, sms: SmsProvider) -> Flask:
    return make_app(**sms.settings())


def test_an_sms_is_a_form_post_with_basic_auth(app: Flask, sms: SmsProvider) -> None:
    channels.send_sms(app, to="+15551234567", body="Hola & adiós")
    assert sms.received == [{"To": "+15551234567", "From": "+15550001111", "Body": "Hola & adiós"}]


@pytest.mark.parametrize("status, kind", [(429, Retry), (500, Retry), (503, Retry), (400, Permanent), (404, Permanent)])
def test_provider_answers_are_retried_or_refused(app: Flask, sms: SmsProvider, status: int, kind: type) -> None:
    sms.fail_next(status)
    with pytest.raises(kind) as raised:
        channels.send_sms(app, to="+15551234567", body="text")
    assert str(status) in raised.value.reason and "+1555" not in str(raised.value)


def test_wrong_credentials_are_refused_and_no_provider_is_a_dead_letter(make_app: AppFactory, sms: SmsProvider) -> None:
    wrong = make_app(**{**sms.settings(), "INTAKE_SMS_TOKEN": "wrong"})
    with pytest.raises(Permanent, match="401"):
        channels.send_sms(wrong, to="+15551234567", body="text")
    with pytest.raises(Permanent, match="no SMS provider"):
        channels.send_sms(make_app(), to="+15551234567", body="text")


def test_a_provider_that_is_down_is_retried(make_app: AppFactory) -> None:
    down = make_app(INTAKE_SMS_URL=f"http://127.0.0.1:{free_port()}/x", INTAKE_SMS_FROM="+15550001111")
    with pytest.raises(Retry):
        channels.send_sms(down, to="+15551234567", body="text")


class Refusing:
    async def handle_RCPT(self, server: object, session: object, envelope: object, address: str,
                          options: list[str]) -> str:
        return "550 no such user"


def test_an_address_the_smtp_server_refuses_is_a_dead_letter_and_an_outage_is_retried(make_app: AppFactory) -> None:
    port = free_port()
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with pytest.raises(Permanent, match="refused"):
            channels.send_email(make_app(INTAKE_SMTP_PORT=port), to="a@example.org", subject="s", body="b")
    finally:
        controller.stop()
    with pytest.raises(Retry):
        channels.send_email(make_app(INTAKE_SMTP_PORT=free_port()), to="a@example.org", subject="s", body="b")
