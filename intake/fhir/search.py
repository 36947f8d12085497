"""FHIR search parameters -> `fhir_store.Criteria`, or a `SearchError` naming the bad parameter.

What is supported is exactly what `SEARCH_PARAMETERS` lists (the CapabilityStatement is built
from it): reference, token, date and string parameters with FHIR's syntax — comma for OR,
repeated parameter for AND, `system|code` tokens, `eq ne lt le gt ge sa eb` date prefixes with
the value's precision as its range, string `:exact` and `:contains`. Times without a zone are
taken as UTC. `_sort` takes one of the type's date parameters or `_lastUpdated` (`-` for
descending); `_include` takes the references `INCLUDES` lists. Anything else is refused rather
than ignored, so a client never mistakes an unfiltered (or unordered) result for a filtered one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

from intake.core.numbers import INT32_MAX, whole_number
from intake.errors import IntakeError
from intake.fhir.publish import fold
from intake.storage.fhir_store import ColumnTest, Criteria, Sort, Test, TokenTest

Kind = Literal["reference", "token", "date", "string", "uri"]


@dataclass(frozen=True)
class Parameter:
    kind: Kind
    documentation: str
    target: str  # a fhir_store column name ("patient", "status", ...) or a token parameter


COMMON = {
    "_id": Parameter("token", "Logical id of the resource", "id"),
    "_lastUpdated": Parameter("date", "When the resource version last changed", "lastUpdated"),
}
SEARCH_PARAMETERS: dict[str, dict[str, Parameter]] = {
    "Questionnaire": {
        "url": Parameter("uri", "The canonical URL of the questionnaire", "url"),
        "version": Parameter("token", "The business version of the questionnaire", "version"),
        "status": Parameter("token", "draft | active | retired | unknown", "status"),
    },
    "QuestionnaireResponse": {
        "patient": Parameter("reference", "The patient the responses are about", "patient"),
        "subject": Parameter("reference", "The subject of the responses (a Patient)", "patient"),
        "status": Parameter("token", "in-progress | completed | amended | entered-in-error | stopped", "status"),
        "authored": Parameter("date", "When the responses were authored", "date"),
        "questionnaire": Parameter(
            "reference", "The questionnaire answered (canonical url or url|version)", "questionnaire"
        ),
        "identifier": Parameter("token", "The response's business identifier", "identifier"),
    },
    "Patient": {
        "identifier": Parameter("token", "A patient identifier (record number or the service's own)", "identifier"),
        "name": Parameter("string", "A portion of the patient's name", "name"),
        "birthdate": Parameter("date", "The patient's date of birth", "date"),
    },
    "Observation": {
        "patient": Parameter("reference", "The patient the score is about", "patient"),
        "subject": Parameter("reference", "The subject (a Patient)", "patient"),
        "code": Parameter("token", "The score's code (local or LOINC)", "code"),
        "category": Parameter("token", "The observation's category (survey)", "category"),
        "date": Parameter("date", "When the answers scored were given", "date"),
        "derived-from": Parameter("reference", "The QuestionnaireResponse the score was derived from", "derived-from"),
        "status": Parameter("token", "The observation status", "status"),
        "identifier": Parameter("token", "The observation's business identifier", "identifier"),
    },
    "Flag": {
        "patient": Parameter("reference", "The patient the flag is about", "patient"),
        "subject": Parameter("reference", "The subject (a Patient)", "patient"),
        "status": Parameter("token", "active | inactive | entered-in-error", "status"),
        "date": Parameter("date", "When the flag was raised", "date"),
        "identifier": Parameter("token", "The flag's business identifier", "identifier"),
    },
    "DocumentReference": {
        "patient": Parameter("reference", "The patient the document is about", "patient"),
        "subject": Parameter("reference", "The subject (a Patient)", "patient"),
        "status": Parameter("token", "current | superseded | entered-in-error", "status"),
        "date": Parameter("date", "When the document was rendered", "date"),
        "identifier": Parameter("token", "The document's business identifier", "identifier"),
    },
    "Provenance": {
        "patient": Parameter("reference", "The patient of the targets", "patient"),
        "target": Parameter("reference", "The resources the provenance is about", "target"),
    },
    "Group": {
        "member": Parameter("reference", "A patient in the group", "member"),
        "identifier": Parameter("token", "The group's business identifier", "identifier"),
    },
}
for _params in SEARCH_PARAMETERS.values():
    _params.update(COMMON)


@dataclass(frozen=True)
class Include:
    """`_include=Source:param[:Target]`: the resources a page's matches reference through `param`
    (`path`: where the reference is; "questionnaire" is a canonical, "url|version")."""

    source: str
    param: str
    target: str
    path: str

    @property
    def text(self) -> str:
        return f"{self.source}:{self.param}"


def _includes(source: str, *table: tuple[str, str, str]) -> dict[str, Include]:
    return {param: Include(source, param, target, path) for param, target, path in table}


_SUBJECT = (("patient", "Patient", "subject"), ("subject", "Patient", "subject"))
INCLUDES: dict[str, dict[str, Include]] = {
    "QuestionnaireResponse": _includes("QuestionnaireResponse", ("questionnaire", "Questionnaire", "questionnaire"),
                                       *_SUBJECT),
    "Observation": _includes("Observation", *_SUBJECT, ("derived-from", "QuestionnaireResponse", "derivedFrom")),
    "Flag": _includes("Flag", *_SUBJECT),
    "DocumentReference": _includes("DocumentReference", *_SUBJECT),
}
SORT_COLUMNS = {"date": "date", "lastUpdated": "lastUpdated"}


def sort_keys(resource_type: str) -> list[str]:
    """The `_sort` keys a search on `resource_type` takes: its date parameters and `_lastUpdated`
    (none for Questionnaire: those are searched in memory among the loaded forms, unsorted)."""
    if resource_type == "Questionnaire":
        return []
    return sorted(name for name, p in SEARCH_PARAMETERS.get(resource_type, {}).items()
                  if p.kind == "date" and p.target in SORT_COLUMNS)


RESULT_PARAMETERS = {"_count", "_format", "_cursor", "_pretty", "_total", "_totalMethod", "_summary"}
# The total is always counted exactly; these are accepted with the values clients send.
ACCEPTED_VALUES = {"_total": {"none", "estimate", "accurate"}, "_totalMethod": {"count", "estimate", "accurate"},
                   "_summary": {"count", "false"}, "_pretty": {"true", "false"}}
MAX_VALUES = 100
DEFAULT_COUNT, MAX_COUNT = 50, 1000

_DATE = re.compile(
    r"^(?P<prefix>eq|ne|lt|le|gt|ge|sa|eb)?"
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$",
    re.ASCII,  # `\d` would take other scripts' digits too (`２０２６` is a year to int())  # noqa: RUF003
)
_REF = re.compile(r"^(?:.*/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


FIRST_DAY, LAST_DAY = "0001-01-02", "9999-12-30"  # a day inside datetime's range at either end, in any zone


class SearchError(IntakeError, ValueError):
    """A search the service cannot answer as asked (the message names the parameter): 400."""

    status = 400


def split_escaped(raw: str) -> list[str]:
    """Split on commas not escaped with a backslash, keeping every other escape (`\\|` must still
    tell a token's parser which bar is literal)."""
    values, current, escaped = [], [], False
    for char in raw:
        if escaped:
            current.append(char if char == "," else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    values.append("".join(current))
    return values


def unescape(value: str) -> str:
    """Undo the search escapes `\\|` `\\$` `\\\\` (and `\\,`) in one value."""
    out, escaped = [], False
    for char in value:
        if escaped or char != "\\":
            out.append(char)
            escaped = False
        else:
            escaped = True
    if escaped:
        out.append("\\")
    return "".join(out)


def split_values(raw: str) -> list[str]:
    """Split on commas not escaped with a backslash; unescape `\\,` `\\|` `\\$` `\\\\`."""
    return [unescape(value) for value in split_escaped(raw)]


def _split_token(raw: str) -> tuple[str | None, str]:
    """`system|code` -> (system, code); `|code` -> ("", code); `code` -> (None, code); `raw` still
    holds its escapes, so the first bar not escaped separates system from code."""
    escaped, index = False, None
    for i, char in enumerate(raw):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            index = i
            break
    if index is None:
        return None, unescape(raw)
    return unescape(raw[:index]), unescape(raw[index + 1:])


def date_range(raw: str, name: str) -> tuple[str, datetime, datetime]:
    """(prefix, start, end) of a date search value: the value's precision is its range."""
    match = _DATE.match(raw)
    if not match:
        raise SearchError(f"{name}: {raw!r} is not a FHIR date (e.g. 2026-11-22, ge2026-11, lt2026-11-22T09:00Z)")
    g = match.groupdict()
    try:
        zone = UTC
        if g["zone"] and g["zone"] != "Z":
            sign = 1 if g["zone"][0] == "+" else -1
            zone = timezone(sign * timedelta(hours=int(g["zone"][1:3]), minutes=int(g["zone"][4:6])))
        year, month, day = int(g["year"]), int(g["month"] or 1), int(g["day"] or 1)
        # Fractions beyond microseconds (FHIR allows nine digits) are cut: the store keeps microseconds.
        start = datetime(year, month, day, int(g["hour"] or 0), int(g["minute"] or 0), int(g["second"] or 0),
                         int((g["fraction"] or "0")[:6].ljust(6, "0")), tzinfo=zone)
    except (ValueError, OverflowError) as exc:
        raise SearchError(f"{name}: {raw!r} is not a real date") from exc
    try:
        if g["fraction"]:
            end = start + timedelta(microseconds=1)
        elif g["second"]:
            end = start + timedelta(seconds=1)
        elif g["minute"]:
            end = start + timedelta(minutes=1)
        elif g["day"]:
            end = start + timedelta(days=1)
        elif g["month"]:
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
        else:
            end = datetime(year + 1, 1, 1, tzinfo=zone)
        return g["prefix"] or "eq", start.astimezone(UTC), end.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        # The range of `9999`, `9999-12-31` or `0001-01-01T00:00+05:00` runs past what a datetime holds.
        raise SearchError(
            f"{name}: {raw!r} is out of range; dates from {FIRST_DAY} to {LAST_DAY} can be searched"
        ) from exc


def _date_alternative(column: str, raw: str, name: str) -> list[list[Test]]:
    prefix, start, end = date_range(raw, name)
    if prefix == "eq":
        return [[ColumnTest(column, "ge", start), ColumnTest(column, "lt", end)]]
    if prefix == "ne":
        return [[ColumnTest(column, "lt", start)], [ColumnTest(column, "ge", end)]]
    op, bound = {"lt": ("lt", start), "eb": ("lt", start), "le": ("lt", end), "gt": ("ge", end),
                 "sa": ("ge", end), "ge": ("ge", start)}[prefix]
    return [[ColumnTest(column, op, bound)]]  # type: ignore[arg-type]


def _reference_id(raw: str, name: str, expected: str | None) -> tuple[str, str]:
    """(type, id) of a reference value: `Type/id`, an absolute URL ending so, or a bare id."""
    match = _REF.match(raw)
    if match:
        kind, rid = match.group("type"), match.group("id")
    elif _ID.match(raw) and expected:
        kind, rid = expected, raw
    else:
        raise SearchError(f"{name}: {raw!r} is not a reference (Type/id or id)")
    if expected and kind != expected:
        raise SearchError(f"{name}: only {expected} references are supported, not {kind}")
    return kind, rid


@dataclass
class Query:
    """A parsed search: the store criteria (with their order), the page and the includes."""

    criteria: Criteria
    count: int
    after: int | None
    includes: list[Include] = field(default_factory=list)


def parse(resource_type: str, args: list[tuple[str, str]]) -> tuple[Criteria, int, int | None]:
    """(criteria, count, after_seq) for a search on `resource_type` (not Questionnaire)."""
    query = parse_query(resource_type, args)
    return query.criteria, query.count, query.after


def parse_query(resource_type: str, args: list[tuple[str, str]]) -> Query:
    """The whole search on `resource_type` (not Questionnaire), or a SearchError naming what is wrong."""
    supported = SEARCH_PARAMETERS[resource_type]
    criteria = Criteria(resource_type)
    query = Query(criteria, DEFAULT_COUNT, None)
    for key, raw in args:
        name, _, modifier = key.partition(":")
        if name in RESULT_PARAMETERS:
            if modifier:
                raise SearchError(f"{key}: modifiers are not allowed on {name}")
            query.count, query.after = result_parameter(name, raw, query.count, query.after)
            continue
        if name == "_sort":
            if modifier or criteria.sort is not None:
                raise SearchError("_sort: give one sort key, once (e.g. _sort=-date)")
            criteria.sort = _sort(resource_type, raw)
            continue
        if name == "_include":
            if modifier:
                raise SearchError(f"{key}: the :{modifier} modifier is not supported (no iterative includes)")
            include = _include(resource_type, raw)
            if include not in query.includes:
                query.includes.append(include)
            continue
        parameter = supported.get(name)
        if parameter is None:
            raise SearchError(f"unknown search parameter {name!r} for {resource_type}; supported: "
                              f"{', '.join(sorted(supported))}")
        values = split_escaped(raw)  # token values keep `\\|` until the system|code split
        if len(values) > MAX_VALUES:
            raise SearchError(f"{name}: at most {MAX_VALUES} values")
        if any(v == "" for v in values):
            raise SearchError(f"{name}: empty value")
        criteria.conditions.append(_condition(parameter, name, modifier, values))
    return query


def _sort(resource_type: str, raw: str) -> Sort:
    keys = sort_keys(resource_type)
    name = raw.removeprefix("-")
    if "," in raw:
        raise SearchError(f"_sort: one sort key is supported, not {raw[:80]!r} (one of {', '.join(keys)})")
    if name not in keys:
        raise SearchError(f"_sort: {raw[:80]!r} is not a sort key for {resource_type}; "
                          f"one of {', '.join(keys)}, '-' in front for descending")
    return Sort(SORT_COLUMNS[SEARCH_PARAMETERS[resource_type][name].target], descending=raw.startswith("-"))


def _include(resource_type: str, raw: str) -> Include:
    """`Source:param` or `Source:param:Target`, one the type's INCLUDES lists."""
    offered = INCLUDES.get(resource_type, {})
    listing = ", ".join(i.text for i in offered.values()) or "none"
    parts = raw.split(":")
    include = offered.get(parts[1]) if len(parts) in (2, 3) and parts[0] == resource_type else None
    if include is None or (len(parts) == 3 and parts[2] != include.target):
        raise SearchError(f"_include: {raw[:80]!r} is not supported for {resource_type}; supported: {listing}")
    return include


def _condition(parameter: Parameter, name: str, modifier: str, values: list[str]) -> list[list[Test]]:
    if modifier and not (parameter.kind == "string" and modifier in ("exact", "contains")):
        raise SearchError(f"{name}: the :{modifier} modifier is not supported")
    alternatives: list[list[Test]] = []
    for escaped in values:
        value = unescape(escaped)
        if parameter.kind == "date":
            alternatives += _date_alternative(parameter.target, value, name)
        elif parameter.kind == "reference":
            if parameter.target == "patient":
                _kind, rid = _reference_id(value, name, "Patient")
                alternatives.append([ColumnTest("patient", "eq", rid)])
            elif parameter.target == "questionnaire":
                alternatives.append([TokenTest("questionnaire", value)])
            else:
                kind, rid = _reference_id(value, name, None)
                alternatives.append([TokenTest(parameter.target, f"{kind}/{rid}")])
        elif parameter.kind == "string":
            if modifier == "exact":
                alternatives.append([TokenTest(f"{parameter.target}:exact", value)])
            else:
                alternatives.append(
                    [TokenTest(parameter.target, fold(value), match="contains" if modifier else "prefix")]
                )
        elif parameter.target in ("id", "status"):
            system, code = _split_token(escaped)
            if system:
                raise SearchError(f"{name}: takes a plain code, not system|code")
            alternatives.append([ColumnTest(parameter.target, "eq", code)])
        else:
            system, code = _split_token(escaped)
            if code == "" and system:
                alternatives.append([TokenTest(parameter.target, "", system=system, match="prefix")])
            else:
                alternatives.append([TokenTest(parameter.target, code, system=system)])
    return alternatives


def result_parameter(name: str, raw: str, count: int, after: int | None) -> tuple[int, int | None]:
    """Apply one result parameter to (count, cursor); refuse values outside ACCEPTED_VALUES."""
    if name in ACCEPTED_VALUES and raw not in ACCEPTED_VALUES[name]:
        raise SearchError(f"{name}: one of {', '.join(sorted(ACCEPTED_VALUES[name]))}, not {raw!r}")
    if name == "_count":
        return _count(raw), after
    if name == "_cursor":
        return count, _cursor(raw)
    if name == "_summary" and raw == "count":
        return 0, after
    return count, after


def _count(raw: str) -> int:
    try:
        return whole_number(raw, high=MAX_COUNT)
    except ValueError:
        raise SearchError(f"_count: a whole number from 0 to {MAX_COUNT}, not {raw[:40]!r}") from None


MAX_CURSOR = INT32_MAX  # the store's `seq` is a 32-bit integer on PostgreSQL: no token can be larger


def _cursor(raw: str) -> int:
    """A `next` link's page token: a store `seq`. One out of the column's range is refused here;
    PostgreSQL would fail the comparison itself ("integer out of range": a 500)."""
    try:
        return whole_number(raw, high=MAX_CURSOR)
    except ValueError:
        raise SearchError("_cursor: not a page token this server issued") from None
