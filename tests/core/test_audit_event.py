"""intake.core.audit_event: audit rows -> valid R4 AuditEvents with the right codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from intake.core.audit_event import CODES, audit_event
from intake.core.fhir_models import resource_errors

AT = datetime(2026, 11, 22, 9, 30, 5, 123000, tzinfo=UTC)


def row(action: str, **changes: object) -> dict[str, object]:
    return {"seq": 7, "at": AT, "actor_kind": "client", "actor": "ehr", "action": action, "outcome": "success",
            "entities": json.dumps(["Patient/p1", "Intake/i1"]), "detail": json.dumps({"status": 200}),
            "source": "10.0.0.5", "hash": "ab" * 32, **changes}


@pytest.mark.parametrize("action", sorted(CODES))
def test_every_action_gives_a_valid_audit_event(action: str) -> None:
    event = audit_event(row(action))
    assert resource_errors(event) == []
    assert event["action"] == CODES[action][2] and event["recorded"] == "2026-11-22T09:30:05.123Z"


def test_fields_map_to_agent_entity_and_outcome() -> None:
    event = audit_event(row("read"))
    assert event["agent"][0]["who"]["identifier"]["value"] == "ehr"
    assert event["agent"][0]["network"] == {"address": "10.0.0.5", "type": "2"}
    assert event["entity"] == [
        {"what": {"reference": "Patient/p1"}},
        {"what": {"identifier": {"system": "https://intake.example.org/fhir/sid/intake", "value": "i1"}}},
    ]
    assert event["outcome"] == "0" and event["extension"][0]["valueString"] == "ab" * 32
    failed = audit_event(
        row("login-failed", outcome="failure", actor_kind="anonymous", actor="", entities="[]", source="")
    )
    assert failed["outcome"] == "4" and "entity" not in failed and "network" not in failed["agent"][0]
    assert resource_errors(failed) == []
