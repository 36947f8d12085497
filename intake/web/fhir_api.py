"""The FHIR R4 REST API under /fhir: metadata, read, search, $validate, $extract, Binary.

Reads and searches serve the canonical JSON stored when the data was written (`intake.fhir.publish`)
without parsing it: a search Bundle is assembled around the stored texts. Every error is an
OperationOutcome with a fitting status; nothing here answers with HTML.

Access: an access token from `/auth/token` (SMART Backend Services, `intake.auth.smart`), whose scopes
every route checks (403 without the read scope for what it returns); or, for GET only, a signed-in
clinician's staff session (the summary page links to the FHIR JSON). Each read, search and export
writes an audit row (`intake.web.auditing`).
"""

from __future__ import annotations

import base64
import json
import re
from contextlib import suppress
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, request

from intake.auth import smart
from intake.core.fhir_models import FHIR_VERSION, resource_errors
from intake.core.lint import lint
from intake.core.validation import Issue, operation_outcome, validate
from intake.documents import DocumentError, document_for, extract_bundle_bytes
from intake.errors import IntakeError
from intake.fhir import publish
from intake.fhir.include import included
from intake.fhir.publish import questionnaire_id, questionnaires
from intake.fhir.search import (
    DEFAULT_COUNT,
    INCLUDES,
    RESULT_PARAMETERS,
    SEARCH_PARAMETERS,
    Parameter,
    SearchError,
    date_range,
    parse_query,
    result_parameter,
    sort_keys,
    split_values,
)
from intake.storage import fhir_store, patients
from intake.web.auditing import note
from intake.web.auth_api import token_url
from intake.web.context import catalog, reader, readers, writer
from intake.web.errors import fhir_response as _json_response
from intake.web.errors import outcome, too_large_message
from intake.web.staff import signed_in_role

bp = Blueprint("fhir", __name__, url_prefix="/fhir")

JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}
XML_FORMATS = {"xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir"}
MAX_DEPTH = 64  # FHIR resources nest far less; deeper bodies are refused before any processing


class FhirError(IntakeError):
    """An error the API answers with an OperationOutcome of this status and issue code (the
    answer itself is `intake.web.errors`' job, as for every other error)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, status=status, code=code)


FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
MAX_PARAMETER = 2048


def _refuse_malformed() -> Response | None:
    """Ids that cannot be FHIR ids are unknown (404); control characters or oversized search
    values are refused (400) before they reach a query (PostgreSQL text cannot hold NUL)."""
    for name, value in (request.view_args or {}).items():
        if name.endswith("_id") and not FHIR_ID.fullmatch(str(value)):
            return outcome(404, "not-found", "no resource has that id")
    return _check_parameters(list(request.args.items(multi=True)))


def _check_parameters(items: list[tuple[str, str]]) -> Response | None:
    for key, value in items:
        if len(key) + len(value) > MAX_PARAMETER or any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in key + value):
            return outcome(
                400, "invalid", f"parameter {key[:40]!r}: control characters or over {MAX_PARAMETER} characters"
            )
    return None


@bp.before_request
def _negotiate_and_authenticate() -> Response | None:
    malformed = _refuse_malformed()
    if malformed is not None:
        return malformed
    fmt = request.args.get("_format")
    if fmt is not None and fmt not in JSON_FORMATS:
        if fmt in XML_FORMATS:
            return outcome(406, "not-supported", "this server speaks FHIR JSON only (_format=json)")
        return outcome(400, "invalid", f"_format: unknown format {fmt!r}")
    accept = request.headers.get("Accept", "")
    if fmt is None and accept and all(m.strip().split(";")[0] in XML_FORMATS for m in accept.split(",")):
        return outcome(406, "not-supported", "this server speaks FHIR JSON only (Accept: application/fhir+json)")
    if request.endpoint == "fhir.metadata":
        return None  # the CapabilityStatement is public, as FHIR clients expect
    return _authenticate()


def _authenticate() -> Response | None:
    """Put the caller's `smart.Grant` in `g.grant`, or answer 401."""
    header = request.headers.get("Authorization", "")
    grant = None
    if header.startswith("Bearer "):
        grant = smart.verify_access_token(header[7:].strip(), secret=current_app.config["SECRET_KEY"],
                                          token_url=token_url())
    elif not header and request.method in ("GET", "HEAD"):
        grant = _staff_grant()
    if grant is None:  # the answer carries WWW-Authenticate (intake.web.errors.outcome)
        return outcome(
            401, "login", "authentication required: an access token from /auth/token (SMART Backend Services)"
        )
    g.grant = grant
    return None


def _staff_grant() -> smart.Grant | None:
    """A signed-in clinician reads everything a system/*.read client can (GET only: a cookie is
    sent by the browser on its own, so nothing that changes state may rest on it)."""
    from flask_login import current_user

    if signed_in_role() != "clinician":
        return None
    return smart.Grant("user", current_user.username, frozenset({"system/*.read"}))


def grant() -> smart.Grant:
    current: smart.Grant = g.grant
    return current


def require_read(*resource_types: str) -> None:
    """403 unless the caller's scopes allow reading every one of `resource_types`."""
    missing = [t for t in resource_types if not grant().can_read(t)]
    if missing:
        raise FhirError(
            403, "forbidden", f"the access token has no read scope for {missing[0]} (system/{missing[0]}.read)"
        )


def _body() -> Any:
    """The JSON body of an operation: at most MAX_CONTENT_LENGTH bytes (413), FHIR JSON (415),
    nested at most MAX_DEPTH levels, strings without control characters (400)."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise FhirError(413, "too-costly", too_large_message())
    mime = (request.mimetype or "").lower()
    if mime not in ("application/fhir+json", "application/json", "application/json+fhir"):
        raise FhirError(415, "not-supported", "send application/fhir+json")
    raw = request.get_data(cache=False)  # werkzeug stops at the limit (413) without a Content-Length too
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FhirError(400, "structure", f"the body is not JSON: {str(exc)[:120]}") from exc
    except RecursionError as exc:
        raise FhirError(400, "too-costly", f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    if _depth(body) > MAX_DEPTH:
        raise FhirError(400, "too-costly", f"JSON nested deeper than {MAX_DEPTH} levels")
    where = _bad_string(body)
    if where is not None:
        raise FhirError(400, "invalid", f"{where[:200]}: FHIR strings cannot carry control characters (U+0000-U+001F "
                                        "but tab, CR and LF) or unpaired surrogates")
    where = _null_member(body)
    if where is not None:
        raise FhirError(400, "invalid", f"{where[:200]}: FHIR JSON has no null values; leave the element out")
    return body


# FHIR R4 (datatypes, string): no Unicode code points below 32 but tab, CR and LF. Unpaired
# surrogates (JSON "\ud800") are not characters at all and cannot be written back out as UTF-8.
BAD_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def _bad_string(value: Any) -> str | None:
    """The path of the first string (or key) in `value` with a forbidden character, else None.
    Iterative, like `_depth`; the path names keys and indexes, never the offending text."""
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if BAD_CHARACTERS.search(node):
                return path
        elif isinstance(node, dict):
            for key, child in node.items():
                if BAD_CHARACTERS.search(key):
                    return f"{path} (a key)"
                stack.append((child, f"{path}.{key}"))
        elif isinstance(node, list):
            stack.extend((child, f"{path}[{n}]") for n, child in enumerate(node))
    return None


def _null_member(value: Any) -> str | None:
    """The path of the first object member whose value is null, else None. FHIR JSON allows
    null only inside arrays (to line primitives up with their `_name` extensions); the checks
    after this one may take any member for an object or a string it names."""
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if child is None:
                    return f"{path}.{key}"
                stack.append((child, f"{path}.{key}"))
        elif isinstance(node, list):
            stack.extend((child, f"{path}[{n}]") for n, child in enumerate(node))
    return None


def _depth(value: Any) -> int:
    """How deeply `value` nests (iteratively: a hostile body must not exhaust the stack here)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _base() -> str:
    """The API's base URL as the client reached it (behind a proxy: configure ProxyFix)."""
    return request.host_url + "fhir"


def _http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


# --- capability statement ----------------------------------------------------------------------

READ_TYPES = ("Questionnaire", "QuestionnaireResponse", "Patient", "Observation", "Flag", "DocumentReference",
              "Provenance", "Group")


OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def _search_param(rtype: str, name: str, parameter: Parameter) -> dict[str, Any]:
    documentation = parameter.documentation
    if name in sort_keys(rtype):
        documentation += f" (also a _sort key: _sort={name} or _sort=-{name})"
    return {"name": name, "type": parameter.kind, "documentation": documentation}


def capability_statement(base: str, token_endpoint: str) -> dict[str, Any]:
    """What this server implements, exactly (built from the same tables the API dispatches on).

    `rest.security` carries the SMART `oauth-uris` extension with the token endpoint: SMART
    clients such as fhirclient read it there (not from `.well-known/smart-configuration`). There
    is no `authorize` or `register` URI: clients are registered by `flask intake api-client`
    and authenticate with Backend Services (client credentials and a signed JWT), no user login.
    """
    resources = []
    for rtype in READ_TYPES:
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "versioning": "versioned",
            "readHistory": False,
            "updateCreate": False,
            "conditionalRead": "full-support",
            "searchParam": [_search_param(rtype, name, p) for name, p in sorted(SEARCH_PARAMETERS[rtype].items())],
        }
        if rtype in INCLUDES:
            entry["searchInclude"] = [i.text for i in INCLUDES[rtype].values()]
        if rtype == "QuestionnaireResponse":
            entry["operation"] = [
                {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"},
                {"name": "extract", "definition": "http://hl7.org/fhir/uv/sdc/OperationDefinition/QuestionnaireResponse-extract"},
            ]
        if rtype == "Questionnaire":
            entry["operation"] = [{"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}]
        if rtype in ("Patient", "Group"):
            kind = rtype.lower()
            entry["operation"] = [{"name": "export", "definition": f"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/{kind}-export"}]
        resources.append(entry)
    resources.append({"type": "Binary", "interaction": [{"code": "read"}]})
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-22",
        "publisher": "Intake",
        "kind": "instance",
        "software": {"name": "Intake"},
        "implementation": {
            "description": "Intake pre-appointment screening service (a screening aid, not a diagnosis)",
            "url": base,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        # Only what is implemented: the Bulk Data server capability. SDC's form-manager role
        # (Questionnaire create/update) is not offered, so it is not claimed; $extract is listed
        # as an operation of QuestionnaireResponse instead.
        "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Search results page by an opaque _cursor in the next link; "
                "_sort takes one date parameter or _lastUpdated ('-' for descending), resources "
                "without that date last; _include as listed per type (search.mode include); "
                "unknown parameters and values are refused (400).",
                "security": {
                    "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_endpoint}]}],
                    "cors": False,
                    "service": [{
                        "coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}],
                        "text": "SMART Backend Services: client credentials with a signed JWT assertion "
                                "(an API client registered with flask intake api-client)",
                    }],
                    "description": "Every interaction but metadata needs a bearer access token from the "
                                   "token endpoint; .well-known/smart-configuration says the same.",
                },
                "resource": resources,
                "operation": [
                    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}
                ],
            }
        ],
    }


@bp.get("/metadata")
def metadata() -> Response:
    return _json_response(json.dumps(capability_statement(_base(), token_url()), separators=(",", ":")))


# --- Questionnaires (served from the loaded forms) ---------------------------------------------

def _search_questionnaires(args: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], int, int | None]:
    """In-memory search of the loaded forms: (id, json) matches, count, cursor."""
    loaded = catalog()
    forms = {questionnaire_id(f): f for f in loaded.versions}
    matches = list(forms)
    count, after = DEFAULT_COUNT, None
    supported = SEARCH_PARAMETERS["Questionnaire"]
    for key, raw in args:
        name, _, modifier = key.partition(":")
        if name in RESULT_PARAMETERS:
            count, after = result_parameter(name, raw, count, after)
            continue
        if name not in supported:
            raise SearchError(
                f"unknown search parameter {name!r} for Questionnaire; supported: {', '.join(sorted(supported))}"
            )
        if modifier:
            raise SearchError(f"{name}: the :{modifier} modifier is not supported")
        values = set(split_values(raw))
        field = {"url": lambda f: f.url, "version": lambda f: f.version, "status": lambda f: f.resource.get("status"),
                 "_id": questionnaire_id, "_lastUpdated": None}[name]
        if field is None:
            raise SearchError(
                "_lastUpdated: Questionnaires are files loaded at start-up; not searchable by _lastUpdated"
            )
        matches = [m for m in matches if field(forms[m]) in values]
    texts = questionnaires(loaded)
    ordered = [(position, qid) for position, qid in enumerate(sorted(matches))]
    return [(str(p), texts[qid][0]) for p, qid in ordered], count, after


# --- read and search ---------------------------------------------------------------------------


def _check_type(resource_type: str) -> None:
    if resource_type not in READ_TYPES:
        raise FhirError(404, "not-supported", f"resource type {resource_type!r} is not served here")


@bp.get("/<resource_type>/<resource_id>")
def read(resource_type: str, resource_id: str) -> Response:
    _check_type(resource_type)
    require_read(resource_type)
    if resource_type == "Questionnaire":
        found = questionnaires(catalog()).get(resource_id)
        if found is None:
            raise FhirError(404, "not-found", f"Questionnaire/{resource_id} is not known")
        note(f"Questionnaire/{resource_id}")
        text = found[0]
        version = str((json.loads(text).get("meta") or {}).get("versionId") or "1")
        return _conditional(text, version, _questionnaire_changed(resource_id))
    stored = fhir_store.get_resource(reader(), resource_type, resource_id)
    if stored is None:
        raise FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known")
    note(f"{resource_type}/{resource_id}")
    return _conditional(stored.resource_json, str(stored.version_id), stored.last_updated,
                        f"{_base()}/{resource_type}/{resource_id}/_history/{stored.version_id}")


def _questionnaire_changed(resource_id: str) -> datetime | None:
    """When a served Questionnaire last changed: its `date` ("date last changed", a FHIR dateTime
    that the linter requires), as an instant; None when it has none."""
    form = {questionnaire_id(f): f for f in catalog().versions}.get(resource_id)
    raw = form.resource.get("date") if form is not None else None
    if not isinstance(raw, str):
        return None
    with suppress(SearchError):
        return date_range(raw, "date")[1]
    return None


def _conditional(text: str, version: str, changed: datetime | None, location: str | None = None) -> Response:
    """A read's answer with a weak version ETag and Last-Modified, or 304 Not Modified when the
    client's copy is current: `If-None-Match` (any of its tags, weakly compared; `*`) decides when
    sent, else `If-Modified-Since` (RFC 9110 §13.2.2)."""
    headers = {"ETag": f'W/"{version}"'}
    if changed is not None:
        headers["Last-Modified"] = _http_date(changed)
    if location is not None:
        headers["Content-Location"] = location
    if "If-None-Match" in request.headers:
        if request.if_none_match.contains_weak(version) or request.if_none_match.star_tag:
            return Response(status=304, headers=headers)
    elif changed is not None and request.if_modified_since is not None \
            and changed.replace(microsecond=0) <= request.if_modified_since:
        return Response(status=304, headers=headers)
    return _json_response(text, headers=headers)


@bp.route("/<resource_type>", methods=["GET"])
def search(resource_type: str) -> Response:
    _check_type(resource_type)
    require_read(resource_type)
    return _search(resource_type, list(request.args.items(multi=True)))


@bp.post("/<resource_type>/_search")
def search_post(resource_type: str) -> Response:
    _check_type(resource_type)
    require_read(resource_type)
    if request.mimetype != "application/x-www-form-urlencoded":
        raise FhirError(415, "not-supported", "POST _search takes application/x-www-form-urlencoded")
    posted = list(request.form.items(multi=True))
    return _check_parameters(posted) or _search(resource_type, list(request.args.items(multi=True)) + posted)


def _search(resource_type: str, args: list[tuple[str, str]]) -> Response:
    base = _base()
    extra: list[tuple[str, str, str]] = []  # (type, id, JSON) of the `_include`d resources
    if resource_type == "Questionnaire":
        matches, count, after = _search_questionnaires(args)
        pending = [m for m in matches if after is None or int(m[0]) > after]
        page = [(int(p), text) for p, text in pending[:count]]
        total, more = len(matches), len(pending) > count
        texts = [(f"{base}/Questionnaire/{json.loads(t)['id']}", t, p) for p, t in page]
    else:
        parsed = parse_query(resource_type, args)
        require_read(*(i.target for i in parsed.includes))
        count = parsed.count
        rows, total, more = fhir_store.search(reader(), parsed.criteria, after_seq=parsed.after, count=count)
        texts = [(f"{base}/{r.resource_type}/{r.resource_id}", r.resource_json, r.seq) for r in rows]
        extra = included(reader(), parsed.includes, [r.resource_json for r in rows], questionnaires(catalog()))
        note(*(f"{r.resource_type}/{r.resource_id}" for r in rows), *(f"{t}/{i}" for t, i, _ in extra))
    query = [(k, v) for k, v in args if k != "_cursor"]
    links = [{"relation": "self", "url": f"{base}/{resource_type}" + (f"?{urlencode(args)}" if args else "")}]
    if more and texts:
        links.append(
            {"relation": "next", "url": f"{base}/{resource_type}?{urlencode([*query, ('_cursor', str(texts[-1][2]))])}"}
        )
    entries = ",".join(
        [f'{{"fullUrl":{json.dumps(url)},"resource":{text},"search":{{"mode":"match"}}}}' for url, text, _ in texts]
        + [f'{{"fullUrl":{json.dumps(f"{base}/{t}/{i}")},"resource":{text},"search":{{"mode":"include"}}}}'
           for t, i, text in extra]
    )
    body = (f'{{"resourceType":"Bundle","type":"searchset","total":{total},'
            f'"link":{json.dumps(links, separators=(",", ":"))},"entry":[{entries}]}}')
    if not entries:
        body = body.replace(',"entry":[]', "")
    return _json_response(body)


# --- Binary (the clinician PDFs) -------------------------------------------------------------------


@bp.get("/Binary/<binary_id>")
def binary(binary_id: str) -> Response:
    require_read("DocumentReference")
    intake_id = fhir_store.intake_of(reader(), "DocumentReference", binary_id)
    document = fhir_store.get_document(reader(), intake_id) if intake_id else None
    if document is None:
        raise FhirError(404, "not-found", f"Binary/{binary_id} is not known")
    note(f"Binary/{binary_id}", f"Intake/{intake_id}")
    wants_json = request.args.get("_format") in JSON_FORMATS or any(
        m.strip().split(";")[0] in ("application/fhir+json", "application/json")
        for m in request.headers.get("Accept", "").split(",")
    )
    if wants_json:
        body = {"resourceType": "Binary", "id": binary_id, "contentType": "application/pdf",
                "data": base64.b64encode(document.content).decode()}
        return _json_response(json.dumps(body, separators=(",", ":")))
    return Response(document.content, 200, content_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="screening-summary-{binary_id}.pdf"'})


# --- operations ----------------------------------------------------------------------------------


def _resource_from(body: Any, expected: str) -> dict[str, Any]:
    """The resource of a $validate body: the resource itself, or a Parameters with `resource`."""
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        for parameter in body.get("parameter") or []:
            if isinstance(parameter, dict) and parameter.get("name") == "resource":
                body = parameter.get("resource")
                break
    if not isinstance(body, dict) or body.get("resourceType") != expected:
        raise FhirError(400, "invalid", f"send a {expected} (or a Parameters with a 'resource' parameter)")
    return body


# The response's elements that are JSON strings in FHIR and that the checks read before the
# structure is validated: another type there is refused (400), as a FHIR parser would.
TEXT_ELEMENTS = ("id", "status", "questionnaire", "authored", "language", "implicitRules")


@bp.post("/QuestionnaireResponse/$validate")
def validate_response() -> Response:
    resource = _resource_from(_body(), "QuestionnaireResponse")
    for name in TEXT_ELEMENTS:
        if name in resource and not isinstance(resource[name], str):
            kind = {list: "an array", dict: "an object", bool: "true or false"}.get(type(resource[name]), "a number")
            raise FhirError(400, "invalid", f"$.{name}: must be a JSON string, not {kind}")
    reference = resource.get("questionnaire")
    form = catalog().get(str(reference)) if isinstance(reference, str) else None
    if form is None:
        issues = [
            Issue("error", "not-found", None, f"questionnaire {str(reference)[:200]!r} is not loaded on this server")
        ]
        issues += [
            Issue("error", "structure", None, f"{path}: {message}") for path, message in resource_errors(resource)
        ]
    else:
        issues = validate(form, resource, birth_date=_subject_birth_date(resource))
    return _json_response(json.dumps(operation_outcome(issues)))


def _subject_birth_date(resource: dict[str, Any]) -> date | None:
    """The birth date of the response's subject when it is one of our Patients (it bounds dates
    such as a symptom onset); None otherwise: then there is no lower limit."""
    subject = resource.get("subject")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str) or not reference.startswith("Patient/") or len(reference) > 100 \
            or not reference.isprintable():
        return None
    patient = patients.get_patient(reader(), reference.removeprefix("Patient/"))
    return patient.birth_date if patient else None


@bp.post("/Questionnaire/$validate")
def validate_questionnaire() -> Response:
    resource = _resource_from(_body(), "Questionnaire")
    issues = [Issue(i.severity, "invalid", i.link_id, i.message) for i in lint(resource)]
    return _json_response(json.dumps(operation_outcome(issues)))


@bp.route("/QuestionnaireResponse/<response_id>/$extract", methods=["GET", "POST"])
def extract(response_id: str) -> Response:
    """SDC $extract of a stored response: a transaction Bundle (see `records.extract_bundle`).
    `document=false` leaves out the PDF's DocumentReference (the Bundle embedded in the PDF)."""
    unknown = set(request.args) - {"_format", "_pretty", "document"}
    if unknown:
        raise FhirError(400, "invalid", f"unknown parameter {sorted(unknown)[0]!r} for $extract")
    document = request.args.get("document", "true")
    if document not in ("true", "false"):
        raise FhirError(400, "invalid", "document: true or false")
    require_read("Patient", "QuestionnaireResponse", "Observation", "Flag", "Provenance",
                 *(["DocumentReference"] if document == "true" else []))
    db = reader()
    intake_id = fhir_store.intake_of(db, "QuestionnaireResponse", response_id)
    if intake_id is None:
        raise FhirError(
            404, "not-found", f"QuestionnaireResponse/{response_id} is not known (only completed responses are served)"
        )
    if document == "true" and fhir_store.get_document(db, intake_id) is None:
        # The background render has not run yet (or was lost): do it now; not scored: no PDF.
        with writer() as session, suppress(DocumentError):
            document_for(session, catalog(), intake_id)
    with readers() as fresh:
        bundle = publish.extract_bundle(fresh, intake_id, response_id=response_id, include_document=document == "true")
    note(f"QuestionnaireResponse/{response_id}", f"Intake/{intake_id}")
    return _json_response(extract_bundle_bytes(bundle))
