"""Who a patient who reports danger is told to call: the deployment's numbers, as tap-to-call links.

The numbers are settings, not wording in the Questionnaires, because they depend on where the
service runs (a clinic in Spain and one in Texas share the forms, not the numbers). Without them
the pages name no country's numbers: "call your local emergency number".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import Flask

from intake.web import language

_DIALLED = re.compile(r"[^0-9+*#]")


@dataclass(frozen=True)
class Contact:
    """One number to call: what it is, how it is written, and its `tel:` link."""

    label: str
    number: str

    @property
    def href(self) -> str:
        return "tel:" + _DIALLED.sub("", self.number)


@dataclass(frozen=True)
class Contacts:
    """The numbers shown with urgent guidance, in one language."""

    emergency: Contact | None
    crisis_lines: tuple[Contact, ...]
    clinic: Contact | None


def _number(raw: str) -> str | None:
    """A number a phone can dial (digits, spaces, + * # - . and brackets), or None."""
    number = " ".join(raw.split())
    return number if number and _DIALLED.sub("", number) and re.fullmatch(r"[0-9+*#()\-. ]+", number) else None


def parse_lines(raw: str) -> tuple[Contact, ...]:
    """`Label|number; Label|number` -> contacts (entries without a dialable number are skipped,
    so a mistyped setting shows fewer links rather than a broken one)."""
    out = []
    for entry in raw.split(";"):
        label, _sep, number = entry.partition("|")
        dialable = _number(number)
        if label.strip() and dialable:
            out.append(Contact(" ".join(label.split()), dialable))
    return tuple(out)


def contacts_for(config: dict[str, Any], language: str) -> Contacts:
    """The numbers for a page in `language` (`INTAKE_CRISIS_LINES_<LANG>` replaces the default list)."""
    emergency = _number(str(config.get("INTAKE_EMERGENCY_NUMBER") or ""))
    clinic = _number(str(config.get("INTAKE_CLINIC_PHONE") or ""))
    lines = str(config.get(f"INTAKE_CRISIS_LINES_{language.upper()}") or config.get("INTAKE_CRISIS_LINES") or "")
    return Contacts(
        emergency=Contact("emergency", emergency) if emergency else None,
        crisis_lines=parse_lines(lines),
        clinic=Contact("clinic", clinic) if clinic else None,
    )


def register(app: Flask) -> None:
    """`contacts()` in every template: the numbers for the page's language."""

    @app.context_processor
    def numbers() -> dict[str, object]:
        return {"contacts": lambda: contacts_for(app.config, language.current())}
