"""EHR push: a completed intake's `$extract` Bundle delivered to the deployment's EHR in requests
that real FHIR servers take.

The Bundle is the one `GET QuestionnaireResponse/{id}/$extract` serves for the whole intake: every
entry is a conditional create (`ifNoneExist` on the resource's identifier; the Provenance on its
stable `meta.tag`) or, for content that changes, a conditional update, so sending it again after a
timeout whose request did arrive creates nothing twice. It is not sent as one transaction: real
servers cap them (Medplum: 8 entries once any entry is conditional; Firely 150, HealthLake 160),
and EHRs such as Epic take no Bundles at all. `INTAKE_EHR_PUSH_MODE` chooses per EHR
(`flask intake ehr check` reads its CapabilityStatement and says which fits):

- ``transaction``: dependency-ordered transactions of at most INTAKE_EHR_MAX_ENTRIES entries and
  INTAKE_EHR_MAX_BYTES bytes, each instrument's response with the Observations derived from it
  in one transaction where they fit;
- ``sequence``: one conditional create/update per request, in dependency order.

A reference to a resource sent in an earlier request is rewritten to the id the server returned
(`Type/id` from the response's `location`, else its body), or, when the server said neither, to a
conditional reference on the identifier. How the EHR answers decides what the outbox does with
the row (`intake.jobs.outbox`):

- 2xx for every request: delivered;
- 408, 429, 5xx, a timeout or a refused connection: tried again later (from the first request:
  all are idempotent), honouring `Retry-After`;
- any other 4xx: the EHR refused the content, and repeating cannot fix it: a dead letter whose
  text names the request and carries the receiver's OperationOutcome text (kept on the row for an
  admin, never logged: it may quote patient data).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn

from flask import Flask

from intake import audit
from intake.audit import Actor
from intake.core.fhir_time import utcnow
from intake.fhir import ehr_auth, patient_match, publish
from intake.jobs.errors import Permanent, Retry
from intake.services import services
from intake.storage.db import session_scope

MODES = ("transaction", "sequence")
RETRIED_STATUSES = frozenset({408, 429})
USER_AGENT = "intake-ehr-push"
MAX_RETRY_AFTER_S = 3600.0
MAX_OUTCOME_CHARS = 120  # of the receiver's text on a dead letter (the row keeps 255 in all)
FHIR_JSON = "application/fhir+json"
_ROOT_TYPES = frozenset({"Patient"})  # everything refers to it: never the anchor of a unit


@dataclass(frozen=True)
class Target:
    """Where and how to push: the EHR's FHIR base and the settings of its push mode."""

    base: str
    token: str = ""
    timeout: float = 30.0
    mode: str = "transaction"
    max_entries: int = 8
    max_bytes: int = 900_000

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"INTAKE_EHR_PUSH_MODE must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.max_entries < 1:
            raise ValueError("INTAKE_EHR_MAX_ENTRIES must be 1 or more")


@dataclass(frozen=True)
class Pushed:
    """What a push did: requests made, and the answers' statuses (entries, in transaction mode)."""

    requests: int
    statuses: Counter[str]


def target_of(app: Flask) -> Target | None:
    """The deployment's EHR, or None when it does not push."""
    base = str(app.config.get("INTAKE_EHR_FHIR_BASE") or "").rstrip("/")
    if not base:
        return None
    return Target(base=base, token=str(app.config.get("INTAKE_EHR_BEARER_TOKEN") or ""),
                  timeout=float(app.config["INTAKE_EHR_TIMEOUT_SECONDS"]),
                  mode=str(app.config.get("INTAKE_EHR_PUSH_MODE") or "transaction"),
                  max_entries=int(app.config.get("INTAKE_EHR_MAX_ENTRIES") or 8),
                  max_bytes=int(app.config.get("INTAKE_EHR_MAX_BYTES") or 900_000))


def push_job(app: Flask, intake_id: str) -> None:
    """The outbox handler: send the intake's Bundle; raises `Retry` or `Permanent` on failure."""
    try:
        target = target_of(app)
    except ValueError as exc:  # a misconfiguration: no request can succeed until it is fixed
        raise Permanent(str(exc)) from None
    if target is None:
        return  # the deployment stopped pushing since the row was written
    with session_scope(services(app).sessions) as session:
        try:
            bundle = publish.extract_bundle(session, intake_id)
        except publish.PublishError as exc:  # not published yet (`flask intake publish` fixes it)
            raise Retry("not published") from exc
        bundle = patient_match.for_push(session, intake_id, bundle,
                                        unmatched=app.config["INTAKE_EHR_UNMATCHED_PATIENT"])
    # Every request goes with the EHR's token; with SMART Backend Services a 401 fetches a fresh
    # token and the whole push is sent once more (its requests are idempotent).
    pushed = ehr_auth.with_token(app, lambda token: push_bundle(replace(target, token=token), bundle))
    with session_scope(services(app).sessions) as session:  # a disclosure of PHI: audited
        audit.record(session, actor=Actor("system", "ehr-push"), action="export", now=utcnow(),
                     entities=[f"Intake/{intake_id}"],
                     detail={"to": target.base, "mode": target.mode, "requests": pushed.requests,
                             "status": dict(pushed.statuses)})


# --- planning: units and chunks ------------------------------------------------------------------


def _references(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _dependencies(entries: list[dict[str, Any]]) -> dict[str, list[str]]:
    """fullUrl -> the fullUrls of the other entries it refers to."""
    urls = {e["fullUrl"] for e in entries}
    return {e["fullUrl"]: [r for r in dict.fromkeys(_references(e["resource"])) if r in urls and r != e["fullUrl"]]
            for e in entries}


def dependency_order(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries with every one after those it refers to (otherwise in Bundle order); a cycle
    (which a FHIR server could not resolve either) is an error."""
    depends = _dependencies(entries)
    done: set[str] = set()
    ordered: list[dict[str, Any]] = []
    pending = list(entries)
    while pending:
        ready = next((e for e in pending if all(d in done for d in depends[e["fullUrl"]])), None)
        if ready is None:
            raise ValueError("the Bundle's references form a cycle")
        pending.remove(ready)
        done.add(ready["fullUrl"])
        ordered.append(ready)
    return ordered


def units(entries: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Dependency-ordered units: an entry that refers to exactly one other entry besides the
    Patient (an Observation derived from its QuestionnaireResponse) joins that entry's unit, so
    an instrument's response and results travel together; everything else is a unit of its own."""
    ordered = dependency_order(entries)
    depends = _dependencies(ordered)
    kinds = {e["fullUrl"]: e["resource"]["resourceType"] for e in ordered}
    unit_of: dict[str, list[dict[str, Any]]] = {}
    out: list[list[dict[str, Any]]] = []
    for entry in ordered:
        anchors = [d for d in depends[entry["fullUrl"]] if kinds[d] not in _ROOT_TYPES]
        if len(anchors) == 1 and kinds[entry["fullUrl"]] not in _ROOT_TYPES:
            unit = unit_of[anchors[0]]
            unit.append(entry)
        else:
            unit = [entry]
            out.append(unit)
        unit_of[entry["fullUrl"]] = unit
    return out


def chunks(entries: list[dict[str, Any]], *, max_entries: int, max_bytes: int) -> list[list[dict[str, Any]]]:
    """Units packed in order into requests of at most `max_entries` entries and about `max_bytes`
    bytes (an entry larger than that goes alone); a unit is split only when it alone is too big."""
    out: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for unit in units(entries):
        sizes = [len(json.dumps(e, ensure_ascii=False).encode()) for e in unit]
        fits = len(current) + len(unit) <= max_entries and size + sum(sizes) <= max_bytes
        if current and not fits:
            out.append(current)
            current, size = [], 0
        for entry, entry_size in zip(unit, sizes, strict=True):
            if current and (len(current) >= max_entries or size + entry_size > max_bytes):
                out.append(current)
                current, size = [], 0
            current.append(entry)
            size += entry_size
    if current:
        out.append(current)
    return out


# --- sending -------------------------------------------------------------------------------------


def push_bundle(target: Target, bundle: Mapping[str, Any]) -> Pushed:
    """Send the Bundle's entries to the EHR in the target's mode; `Retry`/`Permanent` on failure."""
    entries = list(bundle.get("entry") or [])
    try:
        planned = chunks(entries, max_entries=1 if target.mode == "sequence" else target.max_entries,
                         max_bytes=target.max_bytes)
    except ValueError as exc:
        raise Permanent(str(exc)) from None
    located: dict[str, str] = {}  # fullUrl -> the reference the server gave it
    statuses: Counter[str] = Counter()
    for number, chunk in enumerate(planned, start=1):
        step = f"request {number} of {len(planned)} ({_describe(chunk)})"
        if target.mode == "transaction":
            answer = _call(target, "POST", target.base, _transaction(chunk, located), step=step)
            replies = answer.get("entry") if isinstance(answer, dict) else None
            if not isinstance(replies, list) or len(replies) != len(chunk):
                raise Permanent(f"{step}: the answer is not a transaction-response for {len(chunk)} entries")
            for index, (entry, reply) in enumerate(zip(chunk, replies, strict=True), start=1):
                reply = reply if isinstance(reply, dict) else {}
                response: dict[str, Any] = reply["response"] if isinstance(reply.get("response"), dict) else {}
                status = str(response.get("status") or "").split(" ")[0]
                if not status.startswith("2"):  # a server that ran the transaction as a batch
                    _refused(int(status) if status.isdigit() else 500,
                             f"entry {index} of {step}", json.dumps(response.get("outcome") or {}).encode())
                statuses[status] += 1
                located[entry["fullUrl"]] = _location(entry, response.get("location"), reply.get("resource"))
        else:
            [entry] = chunk
            answer = _send_one(target, entry, located, step=step)
            statuses[str(answer.pop("__status__"))] += 1
            located[entry["fullUrl"]] = _location(entry, answer.pop("__location__", None), answer)
    return Pushed(requests=len(planned), statuses=statuses)


def _describe(chunk: list[dict[str, Any]]) -> str:
    """`3: Patient, Observation x2`: what a request held (types only, no data)."""
    counts = Counter(e["resource"]["resourceType"] for e in chunk)
    kinds = ", ".join(k if n == 1 else f"{k} x{n}" for k, n in counts.items())
    return f"{len(chunk)}: {kinds}" if len(chunk) > 1 else kinds


def _rewritten(value: Any, located: Mapping[str, str]) -> Any:
    """A copy of `value` with references to entries sent earlier replaced by their server ids."""
    if isinstance(value, dict):
        return {k: (located.get(v, v) if k == "reference" and isinstance(v, str) else _rewritten(v, located))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_rewritten(v, located) for v in value]
    return value


def _transaction(chunk: list[dict[str, Any]], located: Mapping[str, str]) -> dict[str, Any]:
    entries = [{**e, "resource": _rewritten(e["resource"], located)} for e in chunk]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _send_one(target: Target, entry: dict[str, Any], located: Mapping[str, str], *, step: str) -> dict[str, Any]:
    """One entry as its own REST call: POST with If-None-Exist, or PUT to its (conditional) URL."""
    request = entry.get("request") or {}
    method, url = str(request.get("method") or ""), str(request.get("url") or "")
    headers = {}
    if request.get("ifNoneExist"):
        headers["If-None-Exist"] = str(request["ifNoneExist"])
    if method not in ("POST", "PUT") or not url or url.startswith(("http:", "https:", "/")):
        raise Permanent(f"{step}: cannot send {method or 'no method'} as a single request")
    return _call(target, method, f"{target.base}/{url}", _rewritten(entry["resource"], located),
                 step=step, headers=headers, single=True)


def _location(entry: Mapping[str, Any], location: Any, resource: Any) -> str:
    """`Type/id` where the server stored an entry: its `location` (history part dropped), else the
    returned resource's id, else a conditional reference on the identifier the entry was matched by."""
    kind = entry["resource"]["resourceType"]
    if isinstance(location, str):
        match = re.search(rf"(?:^|/)({re.escape(kind)}/[A-Za-z0-9\-.]{{1,64}})(?:/_history/[^/]+)?/?$", location)
        if match:
            return match.group(1)
    if isinstance(resource, dict) and resource.get("resourceType") == kind and resource.get("id"):
        return f"{kind}/{resource['id']}"
    request = entry.get("request") or {}
    if request.get("ifNoneExist"):
        return f"{kind}?{request['ifNoneExist']}"
    url = str(request.get("url") or "")
    return url if "?" in url else entry["fullUrl"]


def _call(target: Target, method: str, url: str, body: dict[str, Any], *, step: str,
          headers: Mapping[str, str] | None = None, single: bool = False) -> dict[str, Any]:
    """One request; its JSON answer (with `__status__`/`__location__` for a single request),
    else `Retry`/`Permanent` naming the step and carrying the receiver's OperationOutcome text."""
    sent = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, "User-Agent": USER_AGENT, **(headers or {})}
    if target.token:
        sent["Authorization"] = f"Bearer {target.token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=target.timeout) as response:  # configured URL
            status, location, data = int(response.status), response.headers.get("Location"), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            status, retry_after, data = exc.code, exc.headers.get("Retry-After"), exc.read()
        _refused(status, step, data, retry_after=retry_after)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:  # socket.timeout is TimeoutError
        cause = getattr(exc, "reason", exc)
        raise Retry(type(cause).__name__ if isinstance(cause, BaseException) else "URLError") from None
    try:
        answer = json.loads(data) if data.strip() else {}
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    if single:
        answer["__status__"], answer["__location__"] = status, location
    return answer


def _refused(status: int, step: str, data: bytes, *, retry_after: str | None = None) -> NoReturn:
    """Raise what a refusal means: `Retry` for 408, 429 and 5xx, else `Permanent`."""
    codes, text = outcome_summary(data)
    reason = f"HTTP {status}{codes} on {step}"
    if status in RETRIED_STATUSES or status >= 500:
        raise Retry(reason, after=retry_after_seconds(retry_after), detail=text) from None
    if status == 401:  # with SMART Backend Services, a fresh token is fetched and the push sent once more
        raise ehr_auth.Unauthorized(reason, detail=text) from None
    raise Permanent(reason, detail=text) from None


def outcome_summary(body: bytes) -> tuple[str, str]:
    """An OperationOutcome's issue codes (` (invalid, required)`) and its text: each issue's
    diagnostics or details, with the element it names, joined and cut to MAX_OUTCOME_CHARS."""
    try:
        outcome = json.loads(body)
        issues = [i for i in outcome.get("issue", []) if isinstance(i, dict)]
    except (ValueError, AttributeError):
        return "", ""
    codes = list(dict.fromkeys(str(i.get("code")) for i in issues if i.get("code")))[:5]
    texts = []
    for issue in issues:
        details: dict[str, Any] = issue["details"] if isinstance(issue.get("details"), dict) else {}
        text = str(issue.get("diagnostics") or details.get("text") or
                   next((c.get("display") or c.get("code") for c in details.get("coding") or []
                         if isinstance(c, dict)), "") or "")
        where = issue.get("expression") or issue.get("location") or []
        if where and isinstance(where, list):
            text = f"{text} (at {where[0]})" if text else f"at {where[0]}"
        if text and text not in texts:
            texts.append(text)
    joined = " ".join("; ".join(texts).split())
    if len(joined) > MAX_OUTCOME_CHARS:
        joined = joined[: MAX_OUTCOME_CHARS - 1].rstrip() + "…"
    return (f" ({', '.join(codes)})" if codes else ""), joined


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP-date (RFC 9110 10.2.3);
    None when absent or unreadable, capped at an hour (a receiver cannot park our work for days)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - (now or utcnow())).total_seconds()), MAX_RETRY_AFTER_S)
