"""The deployment's numbers: parsed from settings, dialable links, per language, none by default."""

from __future__ import annotations

from intake.web.contacts import Contact, contacts_for, parse_lines


def test_lines_are_label_and_number_pairs_and_bad_entries_are_left_out() -> None:
    lines = parse_lines(" Samaritans | 116 123 ;NHS 111|111; no number|; |999; Text line|text SHOUT; Broken")
    assert lines == (Contact("Samaritans", "116 123"), Contact("NHS 111", "111"))


def test_links_keep_only_what_a_phone_dials() -> None:
    assert Contact("Clinic", "+44 (0)20 7946-0000").href == "tel:+4402079460000"
    assert Contact("Switchboard", "020 7946 0000 #2").href == "tel:02079460000#2"


def test_nothing_configured_names_no_number() -> None:
    numbers = contacts_for({}, "en")
    assert numbers.emergency is None and numbers.clinic is None and numbers.crisis_lines == ()


def test_a_language_of_its_own_replaces_the_default_crisis_lines() -> None:
    config = {
        "INTAKE_EMERGENCY_NUMBER": "112",
        "INTAKE_CRISIS_LINES": "Line|0800 1",
        "INTAKE_CRISIS_LINES_ES": "Línea|024",
    }
    assert [c.label for c in contacts_for(config, "en").crisis_lines] == ["Line"]
    assert [c.label for c in contacts_for(config, "es").crisis_lines] == ["Línea"]
    assert contacts_for(config, "es").emergency == Contact("emergency", "112")
    # A malformed emergency number is not shown as a link that dials something else.
    assert contacts_for({"INTAKE_EMERGENCY_NUMBER": "call 999"}, "en").emergency is None
