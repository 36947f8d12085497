"""intake/fhir/search.py called directly: FHIR search parameters -> store criteria, date ranges,
paging parameters, and what is refused (a `SearchError`, 400, naming the parameter); then the
parsed criteria run against the store, so the ranges hold on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from intake.errors import IntakeError
from intake.fhir import include, search
from intake.fhir.publish import publish_patient
from intake.fhir.search import SearchError, date_range, parse, split_values
from intake.storage import fhir_store, migrate, patients
from intake.storage.db import make_engine, make_session_factory, session_scope
from intake.storage.fhir_store import ColumnTest, Test, TokenTest


def conditions(resource_type: str, *args: tuple[str, str]) -> list[list[list[Test]]]:
    criteria, _count, _after = parse(resource_type, list(args))
    assert criteria.resource_type == resource_type
    return criteria.conditions


def refused(resource_type: str, *args: tuple[str, str]) -> str:
    with pytest.raises(SearchError) as caught:
        parse(resource_type, list(args))
    return str(caught.value)


# --- date values: the precision is the range --------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "start", "end"),
    [
        ("2026", datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        ("2026-11", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12", datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),  # the year rolls over
        ("2026-11-22", datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)),
        ("2026-11-22T09:00Z", datetime(2026, 11, 22, 9, tzinfo=UTC), datetime(2026, 11, 22, 9, 1, tzinfo=UTC)),
        (
            "2026-11-22T09:00:05Z",
            datetime(2026, 11, 22, 9, 0, 5, tzinfo=UTC),
            datetime(2026, 11, 22, 9, 0, 6, tzinfo=UTC),
        ),
        (
            "2026-11-22T09:00:05.25Z",
            datetime(2026, 11, 22, 9, 0, 5, 250000, tzinfo=UTC),
            datetime(2026, 11, 22, 9, 0, 5, 250001, tzinfo=UTC),
        ),
        (
            "2026-11-22T09:00:05.123456789Z",
            datetime(2026, 11, 22, 9, 0, 5, 123456, tzinfo=UTC),
            datetime(2026, 11, 22, 9, 0, 5, 123457, tzinfo=UTC),
        ),  # nanoseconds cut to microseconds
        ("2026-11-22T09:00+02:00", datetime(2026, 11, 22, 7, tzinfo=UTC), datetime(2026, 11, 22, 7, 1, tzinfo=UTC)),
        (
            "2026-11-22T09:00-05:30",
            datetime(2026, 11, 22, 14, 30, tzinfo=UTC),
            datetime(2026, 11, 22, 14, 31, tzinfo=UTC),
        ),
        (
            "2026-11-22T09:00",
            datetime(2026, 11, 22, 9, tzinfo=UTC),
            datetime(2026, 11, 22, 9, 1, tzinfo=UTC),
        ),  # no zone: UTC
    ],
)
def test_a_date_value_is_the_range_of_its_precision_in_utc(raw: str, start: datetime, end: datetime) -> None:
    assert date_range(raw, "date") == ("eq", start, end)


@pytest.mark.parametrize("prefix", ["eq", "ne", "lt", "le", "gt", "ge", "sa", "eb"])
def test_a_prefix_is_read_off_and_the_range_kept(prefix: str) -> None:
    assert date_range(f"{prefix}2026-11", "date") == (
        prefix, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


@pytest.mark.parametrize("raw", [
    "", "yesterday", "26-11-22", "2026/11/22", "2026-1", "2026-11-22T9:00Z", "2026-11-22T09Z",
    "2026-11-22 09:00", "gte2026", "GE2026", "ge 2026", "2026-11-22T09:00+2", "２０２６",  # full-width digits
    "2026-11-22T09:00:05.1234567890Z",
])
def test_what_is_not_a_fhir_date_is_refused_naming_the_parameter(raw: str) -> None:
    with pytest.raises(SearchError, match=r"^birthdate: .* is not a FHIR date"):
        date_range(raw, "birthdate")


@pytest.mark.parametrize("raw", ["2026-02-30", "2026-13", "2026-00", "2026-11-22T25:00Z", "2026-11-22T09:60Z",
                                 "2026-11-22T09:00+24:00"])
def test_an_impossible_date_is_refused(raw: str) -> None:
    with pytest.raises(SearchError, match="is not a real date"):
        date_range(raw, "date")


@pytest.mark.parametrize("raw", ["9999", "9999-12", "9999-12-31", "0001-01-01T00:00+05:00"])
def test_a_range_past_what_a_datetime_holds_is_refused_with_the_searchable_span(raw: str) -> None:
    with pytest.raises(SearchError, match=f"is out of range; dates from {search.FIRST_DAY} to {search.LAST_DAY}"):
        date_range(raw, "date")


@pytest.mark.parametrize("raw", [search.FIRST_DAY, search.LAST_DAY, f"{search.FIRST_DAY}T00:00+14:00",
                                 f"{search.LAST_DAY}T23:59-12:00"])
def test_the_first_and_last_searchable_days_are_accepted_in_any_zone(raw: str) -> None:
    assert date_range(raw, "date")[0] == "eq"


# --- date prefixes -> column tests ------------------------------------------------------------------

DAY, NEXT = datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)


@pytest.mark.parametrize(("value", "alternatives"), [
    ("2026-11-22", [[ColumnTest("date", "ge", DAY), ColumnTest("date", "lt", NEXT)]]),
    ("eq2026-11-22", [[ColumnTest("date", "ge", DAY), ColumnTest("date", "lt", NEXT)]]),
    ("ne2026-11-22", [[ColumnTest("date", "lt", DAY)], [ColumnTest("date", "ge", NEXT)]]),
    ("lt2026-11-22", [[ColumnTest("date", "lt", DAY)]]),
    ("eb2026-11-22", [[ColumnTest("date", "lt", DAY)]]),
    ("le2026-11-22", [[ColumnTest("date", "lt", NEXT)]]),
    ("gt2026-11-22", [[ColumnTest("date", "ge", NEXT)]]),
    ("sa2026-11-22", [[ColumnTest("date", "ge", NEXT)]]),
    ("ge2026-11-22", [[ColumnTest("date", "ge", DAY)]]),
])
def test_each_date_prefix_becomes_bounds_on_the_range(value: str, alternatives: list[list[ColumnTest]]) -> None:
    assert conditions("Observation", ("date", value)) == [alternatives]


def test_last_updated_is_a_date_on_every_type() -> None:
    assert conditions("Flag", ("_lastUpdated", "ge2026")) == [
        [[ColumnTest("lastUpdated", "ge", datetime(2026, 1, 1, tzinfo=UTC))]]]


def test_comma_is_or_and_a_repeated_parameter_is_and() -> None:
    found = conditions("Patient", ("birthdate", "1970,1985"), ("birthdate", "le1990"))
    assert (
        len(found) == 2
        and len(found[0]) == 2
        and found[1] == [[ColumnTest("date", "lt", datetime(1991, 1, 1, tzinfo=UTC))]]
    )


# --- tokens, references, strings --------------------------------------------------------------------


def test_split_values_honours_escapes() -> None:
    assert split_values(r"a,b\,c,d\\,e") == ["a", "b,c", "d\\", "e"]
    assert split_values("") == [""]


@pytest.mark.parametrize(("value", "test"), [
    ("urn:oid:1.2|123", TokenTest("identifier", "123", system="urn:oid:1.2")),
    ("123", TokenTest("identifier", "123", system=None)),  # any system
    ("|123", TokenTest("identifier", "123", system="")),  # no system
    ("urn:oid:1.2|", TokenTest("identifier", "", system="urn:oid:1.2", match="prefix")),  # any code of the system
    pytest.param(r"a\|b|c", TokenTest("identifier", "c", system="a|b")),
])
def test_token_values_split_on_the_first_unescaped_bar(value: str, test: TokenTest) -> None:
    assert conditions("Patient", ("identifier", value)) == [[[test]]]


def test_id_and_status_take_plain_codes() -> None:
    assert conditions("Flag", ("status", "active"), ("_id", "abc")) == [
        [[ColumnTest("status", "eq", "active")]], [[ColumnTest("id", "eq", "abc")]]]
    assert refused("Flag", ("status", "http://hl7.org/fhir/flag-status|active")) == \
        "status: takes a plain code, not system|code"


@pytest.mark.parametrize("value", ["Patient/p-1", "p-1", "https://ehr.example/fhir/Patient/p-1"])
def test_a_patient_reference_is_its_id(value: str) -> None:
    assert conditions("Observation", ("subject", value)) == [[[ColumnTest("patient", "eq", "p-1")]]]


def test_other_references_are_tokens_of_type_and_id() -> None:
    assert conditions("Provenance", ("target", "https://x.example/fhir/Flag/f1")) == [
        [[TokenTest("target", "Flag/f1")]]
    ]
    assert conditions("QuestionnaireResponse", ("questionnaire", "http://q.example/Q|1.0")) == [
        [[TokenTest("questionnaire", "http://q.example/Q|1.0")]]]


@pytest.mark.parametrize(("args", "message"), [
    (("patient", "Group/g1"), "patient: only Patient references are supported, not Group"),
    (("patient", "not a ref"), "patient: 'not a ref' is not a reference (Type/id or id)"),
    (("derived-from", "q1"), "derived-from: 'q1' is not a reference (Type/id or id)"),  # no type to assume
])
def test_bad_references_are_refused(args: tuple[str, str], message: str) -> None:
    assert refused("Observation", args) == message


def test_names_match_folded_prefixes_or_the_exact_text() -> None:
    assert conditions("Patient", ("name", "ZOË")) == [[[TokenTest("name", "zoe", match="prefix")]]]
    assert conditions("Patient", ("name:contains", "Éx")) == [[[TokenTest("name", "ex", match="contains")]]]
    assert conditions("Patient", ("name:exact", "Zoë")) == [[[TokenTest("name:exact", "Zoë")]]]


# --- what is refused ------------------------------------------------------------------------------


def test_an_unknown_parameter_is_refused_listing_the_supported_ones() -> None:
    message = refused("Flag", ("code", "x"))
    assert message.startswith("unknown search parameter 'code' for Flag; supported: _id, _lastUpdated, date,")


@pytest.mark.parametrize(("args", "message"), [
    (("identifier:not", "x"), "identifier: the :not modifier is not supported"),
    (("birthdate:missing", "true"), "birthdate: the :missing modifier is not supported"),
    (("name:missing", "true"), "name: the :missing modifier is not supported"),
    (("_count:exact", "5"), "_count:exact: modifiers are not allowed on _count"),
    (("name", "a,,b"), "name: empty value"),
    (("name", ""), "name: empty value"),
    (("identifier", ",".join(["x"] * (search.MAX_VALUES + 1))), f"identifier: at most {search.MAX_VALUES} values"),
    (("_total", "all"), "_total: one of accurate, estimate, none, not 'all'"),
    (("_summary", "true"), "_summary: one of count, false, not 'true'"),
])
def test_unsupported_searches_are_refused_not_ignored(args: tuple[str, str], message: str) -> None:
    assert refused("Patient", args) == message


def test_the_most_values_allowed_are_accepted() -> None:
    assert len(conditions("Patient", ("identifier", ",".join(["x"] * search.MAX_VALUES)))[0]) == search.MAX_VALUES


def test_a_search_error_is_a_400_intake_error_and_a_value_error() -> None:
    error = SearchError("x: bad")
    assert isinstance(error, IntakeError) and isinstance(error, ValueError)
    assert (error.status, error.code) == (400, "invalid")


# --- paging parameters -----------------------------------------------------------------------------


def paging(*args: tuple[str, str]) -> tuple[int, int | None]:
    _criteria, count, after = parse("Patient", list(args))
    return count, after


def test_paging_defaults_and_values() -> None:
    assert paging() == (search.DEFAULT_COUNT, None)
    assert paging(("_count", "0")) == (0, None)
    assert paging(("_count", str(search.MAX_COUNT)), ("_cursor", "17")) == (search.MAX_COUNT, 17)
    assert paging(("_summary", "count")) == (0, None)
    assert paging(("_total", "accurate"), ("_format", "json"), ("_pretty", "true")) == (search.DEFAULT_COUNT, None)


@pytest.mark.parametrize("raw", [str(search.MAX_COUNT + 1), "-1", "+5", " 5", "5.0", "1e3", "", "٣", "9" * 400])
def test_a_count_outside_0_to_max_is_refused(raw: str) -> None:
    with pytest.raises(SearchError, match=f"^_count: a whole number from 0 to {search.MAX_COUNT}"):
        paging(("_count", raw))


@pytest.mark.parametrize("raw", [str(search.MAX_CURSOR + 1), "-1", "abc", "", "١"])
def test_a_cursor_this_server_could_not_have_issued_is_refused(raw: str) -> None:
    with pytest.raises(SearchError, match=r"^_cursor: not a page token this server issued$"):
        paging(("_cursor", raw))
    assert paging(("_cursor", str(search.MAX_CURSOR))) == (search.DEFAULT_COUNT, search.MAX_CURSOR)


# --- the parsed criteria against the store ----------------------------------------------------------

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
BORN = {"Ann": date(1969, 12, 31), "Bea": date(1970, 1, 1), "Cy": date(1970, 6, 15), "Di": date(1970, 12, 31),
        "Ed": date(1971, 1, 1)}


@pytest.fixture
def people(session: Session) -> dict[str, str]:
    """Five published patients born either side of 1970: name -> id."""
    ids = {}
    for name, born in BORN.items():
        patient = patients.create_patient(session, name=f"{name} Example", birth_date=born)
        publish_patient(session, patient, now=NOW)
        ids[name] = patient.id
    return ids


def found(session: Session, people: dict[str, str], *args: tuple[str, str]) -> list[str]:
    criteria, count, after = parse("Patient", list(args))
    rows, _total, _more = fhir_store.search(session, criteria, after_seq=after, count=count)
    names = {v: k for k, v in people.items()}
    return [names[r.resource_id] for r in rows]


@pytest.mark.parametrize(("value", "names"), [
    ("1970", ["Bea", "Cy", "Di"]),
    ("ne1970", ["Ann", "Ed"]),
    ("lt1970", ["Ann"]),
    ("le1970", ["Ann", "Bea", "Cy", "Di"]),
    ("gt1970", ["Ed"]),
    ("ge1970", ["Bea", "Cy", "Di", "Ed"]),
    ("1970-06", ["Cy"]),
    ("ge1970-06-15", ["Cy", "Di", "Ed"]),
    ("lt1970-06-15", ["Ann", "Bea"]),
    ("1969,1971", ["Ann", "Ed"]),
])
def test_date_prefixes_select_the_right_rows(session: Session, people: dict[str, str], value: str,
                                             names: list[str]) -> None:
    assert found(session, people, ("birthdate", value)) == names


def test_and_of_two_ranges(session: Session, people: dict[str, str]) -> None:
    assert found(session, people, ("birthdate", "gt1969"), ("birthdate", "lt1970-12")) == ["Bea", "Cy"]


def test_pages_follow_the_cursor_to_the_end(session: Session, people: dict[str, str]) -> None:
    criteria, count, after = parse("Patient", [("_count", "2")])
    seen: list[str] = []
    for _ in range(5):
        rows, total, more = fhir_store.search(session, criteria, after_seq=after, count=count)
        seen += [r.resource_id for r in rows]
        assert total == 5 and len(rows) <= 2
        if not more:
            break
        _criteria, count, after = parse("Patient", [("_count", "2"), ("_cursor", str(rows[-1].seq))])
    assert seen == list(people.values()) and len(seen) == 5


def test_name_search_is_folded_on_both_sides(session: Session, people: dict[str, str]) -> None:
    assert found(session, people, ("name", "EXAMP")) == list(BORN)
    assert found(session, people, ("name", "cy")) == ["Cy"]
    assert found(session, people, ("name:exact", "cy example")) == []
    assert found(session, people, ("name:exact", "Cy Example")) == ["Cy"]
    assert found(session, people, ("name:contains", "xampl"), ("birthdate", "1970")) == ["Bea", "Cy", "Di"]


def test_a_last_updated_range_reads_the_store_time(session: Session, people: dict[str, str]) -> None:
    assert found(session, people, ("_lastUpdated", "ge2026-12-07T09:00Z")) == list(BORN)
    assert found(session, people, ("_lastUpdated", "gt2026-12-07T09:00Z")) == []
    assert found(
        session, people, ("_lastUpdated", "lt" + (NOW + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%MZ"))
    ) == list(BORN)


# --- _sort and _include ----------------------------------------------------------------------------


def test_sort_takes_one_date_key_either_way() -> None:
    criteria, _count, _after = parse("QuestionnaireResponse", [("_sort", "-authored")])
    assert criteria.sort == fhir_store.Sort("date", descending=True)
    assert parse("Observation", [("_sort", "_lastUpdated")])[0].sort == fhir_store.Sort("lastUpdated")
    assert parse("Patient", [("_sort", "birthdate")])[0].sort == fhir_store.Sort("date")
    assert parse("Flag", [])[0].sort is None
    assert "one of _lastUpdated, date" in refused("Observation", ("_sort", "code"))
    assert "one sort key" in refused("Observation", ("_sort", "date,-_lastUpdated"))
    assert "one sort key" in refused("Observation", ("_sort", "date"), ("_sort", "-date"))
    assert "one sort key" in refused("Observation", ("_sort:asc", "date"))
    assert search.sort_keys("Questionnaire") == []


def test_include_takes_the_listed_references_only() -> None:
    query = search.parse_query("QuestionnaireResponse", [
        ("_include", "QuestionnaireResponse:subject"), ("_include", "QuestionnaireResponse:questionnaire"),
        ("_include", "QuestionnaireResponse:subject:Patient")])
    assert [i.text for i in query.includes] == ["QuestionnaireResponse:subject", "QuestionnaireResponse:questionnaire"]
    assert query.criteria.conditions == []
    for raw in ("QuestionnaireResponse:author", "Observation:subject", "*", "QuestionnaireResponse",
                "QuestionnaireResponse:subject:Group", "QuestionnaireResponse:subject:Patient:x"):
        assert "_include" in refused("QuestionnaireResponse", ("_include", raw)), raw
    assert "iterative" in refused("Observation", ("_include:iterate", "Observation:subject"))
    assert "none" in refused("Patient", ("_include", "Patient:link"))


def test_include_reads_relative_and_absolute_references() -> None:
    subject = search.INCLUDES["Observation"]["subject"]
    derived = search.INCLUDES["Observation"]["derived-from"]
    observation = {"subject": {"reference": "https://x.example/fhir/Patient/p-1"},
                   "derivedFrom": [{"reference": "QuestionnaireResponse/r.1"}, {"reference": "urn:uuid:1"},
                                   {"reference": "Patient/p-2"}, {"display": "no reference"}]}
    assert include.references(subject, observation) == ["Patient/p-1"]
    assert include.references(derived, observation) == ["QuestionnaireResponse/r.1"]
    canonical = search.INCLUDES["QuestionnaireResponse"]["questionnaire"]
    assert include.references(canonical, {"questionnaire": "https://f.example/Q|1.0"}) == ["https://f.example/Q|1.0"]
    assert include.references(subject, {"subject": "Patient/1"}) == []  # not a Reference: nothing


DATES = {"a": datetime(2026, 1, 2, tzinfo=UTC), "b": None, "c": datetime(2026, 1, 1, tzinfo=UTC),
         "d": datetime(2026, 1, 2, tzinfo=UTC), "e": None, "f": datetime(2026, 1, 3, tzinfo=UTC)}


@pytest.mark.parametrize(("sort", "order"), [
    ("date", ["c", "a", "d", "f", "b", "e"]),  # ties in store order; resources without a date last
    ("-date", ["f", "a", "d", "c", "b", "e"]),
])
@pytest.mark.parametrize("count", [1, 2, 4, 10])
def test_sorted_pages_continue_from_the_last_rows_value(session: Session, sort: str, order: list[str],
                                                        count: int) -> None:
    for name, when in DATES.items():
        fhir_store.put_resource(session, {"resourceType": "Flag", "id": name}, now=NOW, date=when)
    seen: list[str] = []
    args = [("_sort", sort), ("_count", str(count))]
    for _ in range(10):
        criteria, size, after = parse("Flag", args)
        rows, total, more = fhir_store.search(session, criteria, after_seq=after, count=size)
        assert total == 6 and len(rows) <= count
        seen += [r.resource_id for r in rows]
        if not more:
            break
        args = [("_sort", sort), ("_count", str(count)), ("_cursor", str(rows[-1].seq))]
    assert seen == order


def test_a_sorted_page_token_whose_resource_is_gone_is_refused(session: Session) -> None:
    criteria, count, _after = parse("Flag", [("_sort", "date")])
    with pytest.raises(IntakeError, match="_cursor") as caught:
        fhir_store.search(session, criteria, after_seq=999_999, count=count)
    assert caught.value.status == 400


def test_migration_0013_indexes_the_categories_of_stored_observations(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url, "0012")
    engine = make_engine(empty_database_url)
    observation = {"resourceType": "Observation", "id": "o-1", "status": "final", "code": {"text": "x"},
                   "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                             "code": "survey"}]}]}
    try:
        with session_scope(make_session_factory(engine)) as session:
            fhir_store.put_resource(session, observation, now=NOW)  # as the code before 0013 stored it: no tokens
            fhir_store.put_resource(session, {**observation, "id": "o-2", "category": [{"text": "none coded"}]},
                                    now=NOW)
        migrate.upgrade(empty_database_url)
        with session_scope(make_session_factory(engine)) as session:
            criteria, count, after = parse("Observation", [("category", "survey")])
            assert [r.resource_id for r in fhir_store.search(session, criteria, after_seq=after, count=count)[0]] \
                == ["o-1"]
            criteria, count, after = parse(
                "Observation", [("category", "http://terminology.hl7.org/CodeSystem/observation-category|survey")])
            assert fhir_store.search(session, criteria, after_seq=after, count=count)[1] == 1
    finally:
        engine.dispose()
