"""The one place the FHIR release is chosen.

The wire format is FHIR R4 (4.0.1). fhir.resources 8 defaults to R5; its R4B models are
structurally R4 for the resources used here, so everything else imports them from this module.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.group import Group
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

if TYPE_CHECKING:
    from pydantic import BaseModel

FHIR_VERSION = "4.0.1"
CHOICE_SHADOW = re.compile(r"^_value[A-Z][A-Za-z]*$")  # `_valueDate`: the shadow of a value[x] primitive

MODELS: dict[str, type] = {
    model.__name__: model
    for model in (
        AuditEvent,
        Bundle,
        CapabilityStatement,
        DocumentReference,
        Flag,
        Group,
        Observation,
        OperationOutcome,
        Patient,
        Provenance,
        Questionnaire,
        QuestionnaireResponse,
    )
}

__all__ = [
    "FHIR_VERSION",
    "MODELS",
    "AuditEvent",
    "Bundle",
    "CapabilityStatement",
    "DocumentReference",
    "Flag",
    "Group",
    "Observation",
    "OperationOutcome",
    "Patient",
    "Provenance",
    "Questionnaire",
    "QuestionnaireResponse",
    "model_errors",
]


def model_errors(model: type[BaseModel], resource: dict[str, Any]) -> list[tuple[str, str]]:
    """Validate `resource` with a fhir.resources model; return (path, message) pairs, empty if valid.

    Pydantic's error list is flattened to FHIR-ish dotted paths so callers can name the element.
    """
    from fhir.resources.R4B.element import Element
    from pydantic import ValidationError

    shadows: list[tuple[str, Any]] = []
    try:
        model.model_validate(_without_choice_shadows(resource, "", shadows))
    except ValidationError as exc:
        errors = [(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
    else:
        errors = []
    for path, shadow in shadows:
        parent, _, key = path.rpartition(".")
        empty = not isinstance(shadow, dict) or not (shadow.get("extension") or shadow.get("id"))
        if empty and key[1:] not in _at(resource, parent):
            errors.append((path, "a value with neither a value nor extensions (ele-1)"))
            continue
        try:
            Element.model_validate(shadow)
        except ValidationError as exc:
            errors += [(path + "." + ".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
    return errors


def _at(resource: Any, path: str) -> Any:
    """The node at a dotted path (`item.0.extension.2`); {} when the path leads nowhere."""
    node = resource
    for part in path.split(".") if path else []:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return {}
    return node if isinstance(node, dict) else {}


def _without_choice_shadows(node: Any, path: str, shadows: list[tuple[str, Any]]) -> Any:
    """A copy without the `_value[x]` shadows of choice-type primitives, which are set aside.

    FHIR R4 lets `valueString` carry extensions in `_valueString` (a `translation` on an
    extension's text, say), but fhir.resources models no shadow for choice types and calls
    it an extra input; each shadow is checked as an Element on its own instead. On an
    extension the shadow may also stand alone: a primitive with extensions and no value, as
    SDC writes a value given by an expression (`"_valueDate": {"extension": [cqf-expression]}`).
    """
    if isinstance(node, list):
        return [
            _without_choice_shadows(entry, f"{path}.{n}" if path else str(n), shadows) for n, entry in enumerate(node)
        ]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        here = f"{path}.{key}" if path else key
        if key.startswith("_value") and (key[1:] in node or ("url" in node and CHOICE_SHADOW.match(key))):
            shadows.append((here, value))
            continue
        out[key] = _without_choice_shadows(value, here, shadows)
    return out


def resource_errors(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """`model_errors` with the model chosen by ``resourceType`` (unknown types are an error)."""
    model = MODELS.get(str(resource.get("resourceType")))
    if model is None:
        return [("resourceType", f"not a resource type this service handles: {resource.get('resourceType')!r}")]
    return model_errors(model, resource)
