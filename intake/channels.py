"""How a message leaves: SMTP for e-mail, and a provider-neutral HTTP adapter for SMS.

The SMS adapter speaks the shape of Twilio's Messages API, which several providers copy: a POST of
form fields `To`, `From` and `Body` to INTAKE_SMS_URL with HTTP basic authentication
(INTAKE_SMS_ACCOUNT, INTAKE_SMS_TOKEN); 2xx is accepted, 429 and 5xx are worth retrying (with the
provider's Retry-After), any other answer is refused for good. We build the text; the provider
only carries it. Errors raised here carry a status or an exception type, never the address or text.
"""

from __future__ import annotations

import base64
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from email.message import EmailMessage

from flask import Flask

from intake.jobs.errors import Permanent, Retry

TIMEOUT_S = 10


def smtp_send(app: Flask, message: EmailMessage) -> None:
    """Send through the SMTP server of INTAKE_SMTP_* (shared with staff notifications)."""
    host = app.config.get("INTAKE_SMTP_HOST") or "127.0.0.1"
    port = int(app.config.get("INTAKE_SMTP_PORT") or 25)
    with smtplib.SMTP(host, port, timeout=TIMEOUT_S) as smtp:
        if app.config.get("INTAKE_SMTP_STARTTLS"):
            smtp.starttls()
        if app.config.get("INTAKE_SMTP_USER"):
            smtp.login(app.config["INTAKE_SMTP_USER"], app.config.get("INTAKE_SMTP_PASSWORD") or "")
        smtp.send_message(message)


def send_email(app: Flask, *, to: str, subject: str, body: str) -> None:
    """One plain-text e-mail to a patient; `Retry` or `Permanent` (a refused address) on failure."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = app.config.get("INTAKE_SMTP_FROM") or "intake@localhost"
    message["To"] = to
    message.set_content(body)
    try:
        smtp_send(app, message)
    except smtplib.SMTPRecipientsRefused:
        raise Permanent("e-mail address refused by the SMTP server") from None
    except smtplib.SMTPResponseException as exc:
        if 500 <= exc.smtp_code < 600:
            raise Permanent(f"SMTP {exc.smtp_code}") from None
        raise Retry(f"SMTP {exc.smtp_code}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise Retry(type(exc).__name__) from None


def sms_configured(app: Flask) -> bool:
    return bool(app.config.get("INTAKE_SMS_URL") and app.config.get("INTAKE_SMS_FROM"))


def email_configured(app: Flask) -> bool:
    return bool(app.config.get("INTAKE_SMTP_HOST"))


def send_sms(app: Flask, *, to: str, body: str) -> None:
    """One text message through the configured provider; `Retry` or `Permanent` on failure."""
    if not sms_configured(app):
        raise Permanent("no SMS provider configured (INTAKE_SMS_URL, INTAKE_SMS_FROM)")
    data = urllib.parse.urlencode({"To": to, "From": app.config["INTAKE_SMS_FROM"], "Body": body}).encode()
    request = urllib.request.Request(app.config["INTAKE_SMS_URL"], data=data, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "intake-sms"})
    account = app.config.get("INTAKE_SMS_ACCOUNT") or ""
    if account:
        pair = f"{account}:{app.config.get('INTAKE_SMS_TOKEN') or ''}".encode()
        request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode("ascii"))
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # the configured provider URL
            response.read()
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()  # the provider's error body: not read, never logged
        if status == 429 or status >= 500:
            after = exc.headers.get("Retry-After") if exc.headers else None
            raise Retry(f"SMS provider answered {status}",
                        after=float(after) if after and after.isdigit() else None) from None
        raise Permanent(f"SMS provider refused the message: {status}") from None
    except (OSError, urllib.error.URLError) as exc:
        raise Retry(type(exc).__name__) from None
