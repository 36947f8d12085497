"""Which push mode an EHR takes, read from its CapabilityStatement (`flask intake ehr check`).

`/metadata` says what a server does: whether it takes `transaction` Bundles at all (Epic and
athenaOne advertise none), and per resource type whether `create`, `conditionalCreate` and
`conditionalUpdate` exist. It does not say how many entries a transaction may hold, so the
configured INTAKE_EHR_MAX_ENTRIES is reported beside what is known of the software (Medplum: 8
once an entry is conditional). Each finding is one line; the verdict is the mode that fits.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from intake.fhir.ehr_push import FHIR_JSON, USER_AGENT, Target
from intake.fhir.http_json import HttpStatusError, NotJsonError, UnreachableError, call_json

PUSHED_TYPES = ("Patient", "QuestionnaireResponse", "Observation", "Flag", "DocumentReference", "Provenance")
KNOWN_CAPS = {"medplum": 8, "firely": 150, "healthlake": 160, "azure": 500}  # entries per transaction


class CapabilityError(Exception):
    """The EHR could not be reached, or did not answer with a CapabilityStatement."""


@dataclass(frozen=True)
class Verdict:
    mode: str  # the push mode that fits ("transaction" or "sequence")
    findings: list[str]  # one line each, for the operator
    problems: int  # findings that stop a push in the fitting mode


def fetch(target: Target) -> dict[str, Any]:
    """GET `{base}/metadata` (with the configured token)."""
    headers = {"Accept": FHIR_JSON, "User-Agent": USER_AGENT}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    request = urllib.request.Request(f"{target.base}/metadata", headers=headers)
    try:
        statement = call_json(request, target.timeout)
    except HttpStatusError as exc:
        raise CapabilityError(f"{target.base}/metadata answered HTTP {exc.status}") from None
    except UnreachableError as exc:
        raise CapabilityError(f"cannot reach {target.base}: {exc.detail}") from None
    except NotJsonError:
        raise CapabilityError(f"{target.base}/metadata did not answer JSON") from None
    if not isinstance(statement, dict) or statement.get("resourceType") != "CapabilityStatement":
        kind = statement.get("resourceType") if isinstance(statement, dict) else type(statement).__name__
        raise CapabilityError(f"{target.base}/metadata answered a {kind or 'document'}, not a CapabilityStatement")
    return statement


def _server_rest(statement: Mapping[str, Any]) -> Mapping[str, Any]:
    rests = [r for r in statement.get("rest") or [] if isinstance(r, dict)]
    return next((r for r in rests if r.get("mode") == "server"), rests[0] if rests else {})


def judge(statement: Mapping[str, Any], target: Target) -> Verdict:
    """The fitting mode and the findings behind it."""
    rest = _server_rest(statement)
    system = {str(i.get("code")) for i in rest.get("interaction") or [] if isinstance(i, dict)}
    software = str((statement.get("software") or {}).get("name") or "")
    findings = [f"server: {software or 'unnamed'} {(statement.get('software') or {}).get('version') or ''}".rstrip()
                + f", FHIR {statement.get('fhirVersion') or '?'}"]
    mode = "transaction" if "transaction" in system else "sequence"
    if mode == "transaction":
        findings.append("transaction: advertised, so mode 'transaction' fits (dependency-ordered chunks)")
        cap = next((n for name, n in KNOWN_CAPS.items() if name in software.lower()), None)
        if cap is not None and target.max_entries > cap:
            findings.append(f"entry limit: {software} takes at most {cap} entries per transaction with "
                            f"conditional entries; INTAKE_EHR_MAX_ENTRIES is {target.max_entries}: set {cap} or less")
        else:
            known = f"within {software}'s {cap}" if cap else "not advertised: check the server's documentation"
            findings.append(f"entry limit: INTAKE_EHR_MAX_ENTRIES is {target.max_entries} ({known})")
    else:
        batch = "batch is advertised but its order is not guaranteed; " if "batch" in system else ""
        findings.append(f"transaction: not advertised ({batch}no Bundles are sent), so mode 'sequence' fits "
                        "(one request per resource)")
    problems = 0
    resources = {str(r.get("type")): r for r in rest.get("resource") or [] if isinstance(r, dict)}
    for kind in PUSHED_TYPES:
        found = resources.get(kind)
        if found is None:
            findings.append(f"{kind}: not listed: the EHR will refuse it")
            problems += 1
            continue
        interactions = {str(i.get("code")) for i in found.get("interaction") or [] if isinstance(i, dict)}
        if "create" not in interactions:
            findings.append(f"{kind}: no create: the EHR will refuse it")
            problems += 1
        elif found.get("conditionalCreate") is not True:
            findings.append(f"{kind}: create, but conditionalCreate is not advertised: a repeated push may duplicate")
        else:
            findings.append(f"{kind}: create, conditional create")
    if target.mode != mode:
        findings.append(f"setting: INTAKE_EHR_PUSH_MODE is '{target.mode}': set '{mode}'")
        problems += 1
    else:
        findings.append(f"setting: INTAKE_EHR_PUSH_MODE is '{target.mode}', as it should be")
    return Verdict(mode, findings, problems)
