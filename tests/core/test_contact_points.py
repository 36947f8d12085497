"""Patient e-mail addresses and mobile numbers: normalised, refused with a reason, masked."""

from __future__ import annotations

import pytest

from intake.core.contact_points import ContactError, mask_email, mask_phone, normalise_email, normalise_phone


def test_addresses_and_numbers_are_normalised() -> None:
    assert normalise_email("  Jo.Doe+clinic@Example.ORG ") == "Jo.Doe+clinic@example.org"
    assert normalise_phone("+1 (555) 123-4567") == "+15551234567"
    assert normalise_phone("0034 612 34 56 78") == "+34612345678"


@pytest.mark.parametrize("value", ["jo", "jo@", "@example.org", "jo@example", "jo doe@example.org",
                                   "jo@example.org\nBcc: x@example.org", "a" * 65 + "@example.org"])
def test_bad_addresses_are_refused(value: str) -> None:
    with pytest.raises(ContactError, match=r"name@example\.org"):
        normalise_email(value)


@pytest.mark.parametrize("value", ["5551234567", "+0123456789", "+1 555", "+1555123456789012", "+1 555 CALL ME"])
def test_bad_numbers_are_refused(value: str) -> None:
    with pytest.raises(ContactError, match="country code"):
        normalise_phone(value)


def test_masks_show_a_hint_only() -> None:
    assert mask_email("jo.doe@example.org") == "j\u2022\u2022\u2022@example.org"
    assert mask_phone("+15551234567") == "\u2022\u2022\u2022\u2022 4567"
    assert mask_email(None) == "" and mask_phone("") == ""
