"""Audit log rows -> FHIR R4 AuditEvent resources (for export to a security information system).

Codes follow the R4 AuditEvent value sets: type `rest` with a restful-interaction subtype for
reads, searches, operations and changes; DICOM 110114 "User Authentication" with 110122 Login /
110123 Logout for sign-ins; action C/R/U/D/E; outcome 0 (success) or 4 (minor failure: refused or
not found). The row's sequence number and hash travel as identifier and extension, so a receiver
can check the chain too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from intake.core.extensions import BASE
from intake.core.extract import SID

DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
NETWORK_TYPE = "http://hl7.org/fhir/network-type"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
AUDIT_SYSTEM = SID + "audit"
HASH_EXTENSION = BASE + "/StructureDefinition/audit-chain-hash"

REST = {"system": AUDIT_TYPE, "code": "rest", "display": "RESTful Operation"}
AUTHENTICATION = {"system": DCM, "code": "110114", "display": "User Authentication"}

# action -> (type, subtype, AuditEvent.action)
CODES: dict[str, tuple[dict[str, str], dict[str, str], str]] = {
    "read": (REST, {"system": INTERACTION, "code": "read", "display": "read"}, "R"),
    "pdf": (REST, {"system": INTERACTION, "code": "read", "display": "read"}, "R"),
    "search": (REST, {"system": INTERACTION, "code": "search-type", "display": "search type"}, "E"),
    "export": (REST, {"system": INTERACTION, "code": "operation", "display": "operation"}, "E"),
    "create": (REST, {"system": INTERACTION, "code": "create", "display": "create"}, "C"),
    "update": (REST, {"system": INTERACTION, "code": "update", "display": "update"}, "U"),
    "delete": (REST, {"system": INTERACTION, "code": "delete", "display": "delete"}, "D"),
    "login": (AUTHENTICATION, {"system": DCM, "code": "110122", "display": "Login"}, "E"),
    "login-failed": (AUTHENTICATION, {"system": DCM, "code": "110122", "display": "Login"}, "E"),
    "logout": (AUTHENTICATION, {"system": DCM, "code": "110123", "display": "Logout"}, "E"),
}


# The service's own records (not FHIR resources) travel as identifiers, not references.
LOCAL_RECORDS = {"Intake": "intake", "User": "user", "ApiClient": "api-client"}


def _entity(ref: str) -> dict[str, Any]:
    kind, _, ident = ref.partition("/")
    if kind in LOCAL_RECORDS:
        return {"what": {"identifier": {"system": SID + LOCAL_RECORDS[kind], "value": ident}}}
    return {"what": {"reference": ref}}


def audit_event(row: Mapping[str, Any]) -> dict[str, Any]:
    """One AuditEvent from an audit row (keys: seq, at, actor_kind, actor, action, outcome,
    entities (JSON list of "Type/id"), detail (JSON object), source, hash)."""
    event_type, subtype, action = CODES[row["action"]]
    at: datetime = row["at"]
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {
                    "system": PARTICIPATION,
                    "code": "IRCP" if row["action"] in ("read", "pdf", "search", "export") else "AUT",
                }
            ]
        },
        "who": {
            "identifier": {"system": SID + row["actor_kind"], "value": row["actor"] or "anonymous"},
            "display": f"{row['actor_kind']} {row['actor']}".strip(),
        },
        "requestor": True,
    }
    if row["source"]:
        agent["network"] = {"address": row["source"], "type": "2"}  # 2 = IP address
    detail = json.loads(row["detail"] or "{}")
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"audit-{row['seq']}",
        "extension": [{"url": HASH_EXTENSION, "valueString": row["hash"]}],
        "type": event_type,
        "subtype": [subtype],
        "action": action,
        "recorded": at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "outcome": "0" if row["outcome"] == "success" else "4",
        "agent": [agent],
        "source": {"site": "Intake", "observer": {"display": "Intake screening service"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                             "display": "Application Server"}]},
    }
    if detail:
        event["outcomeDesc"] = " ".join(f"{key}={detail[key]}" for key in sorted(detail))[:1000]
    entities = [_entity(ref) for ref in json.loads(row["entities"] or "[]")]
    if entities:
        event["entity"] = entities
    return event
