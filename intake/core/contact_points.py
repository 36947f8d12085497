"""A patient's e-mail address and mobile number: checked, normalised, and masked for lists.

Both are PHI, like the name: lists show them masked ("j•••@example.org", "•••• 1234"), a full
view is audited, logs never carry them. Pure functions, so the CLI, the front desk and the
tests share one rule.
"""

from __future__ import annotations

import re

EMAIL_MAX = 254
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+")
_PHONE_SEPARATORS = re.compile(r"[ .()\-]")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
DOT = "\u2022"


class ContactError(ValueError):
    """An address or number that cannot be used; the message says how to write it."""


def normalise_email(value: str) -> str:
    """`value` trimmed, its domain lowercased; `ContactError` unless it is one plain address."""
    email = value.strip()
    if len(email) > EMAIL_MAX or not _EMAIL.fullmatch(email):
        raise ContactError("the e-mail address must look like name@example.org")
    local, _, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


def normalise_phone(value: str) -> str:
    """The mobile number in E.164 (`+15551234567`): spaces, dots, dashes and brackets are dropped;
    `ContactError` unless it starts with + and a country code (8 to 15 digits in all)."""
    phone = _PHONE_SEPARATORS.sub("", value.strip())
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    if not _E164.fullmatch(phone):
        raise ContactError("the mobile number must start with + and the country code, like +1 555 123 4567")
    return phone


def mask_email(email: str | None) -> str:
    """`j•••@example.org`: the first character of the name and the domain."""
    if not email:
        return ""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}{DOT * 3}@{domain}"


def mask_phone(phone: str | None) -> str:
    """`•••• 1234`: the last four digits."""
    if not phone:
        return ""
    return f"{DOT * 4} {phone[-4:]}"
