"""Hostile input on every page of every questionnaire: a message or a 4xx, never a 500, never a partial write.

The pages are collected from the catalog the app loads (one test set per page), so a page added
to a form is covered without touching this file. For each page the questionnaire's response is
stored once with valid answers first, so "nothing written" is checked against real rows: after a
rejected post every ResponseRecord (version_id, resource_json, ...) and the Intake row must be
byte-identical to before.

Decisions (the issue leaves them open):

* Unknown fields posted *alongside valid answers* are accepted (302) and ignored: a browser
  extension or a proxy may add fields, and refusing a good page for them helps nobody. They are
  never stored; the fields of questions on *other* pages or questionnaires count as unknown too.
* Every wrong value in an enabled question's field is refused with 400 and a message in the
  error summary; the page is shown again. A tampered option code is refused even for a question
  that is switched off, because a browser only ever sends the values it was offered.
* A missing or wrong CSRF token: 400, the page re-shown with a notice and a fresh token.
* A body over MAX_CONTENT_LENGTH (1 MiB), or one multipart field over Flask's
  MAX_FORM_MEMORY_SIZE (500 kB): 413 with the neutral error page. Urlencoded forms have no
  per-field limit, so a 600 kB answer there is refused by validation (400).
* CSRF and 413 responses carry a notice / the error page rather than the field error summary:
  no field is wrong. A session without an intake gets the neutral 403 "session has ended" page.
* A value with several entries for a one-answer field (`a=1&a=2`), or a file, is refused
  ("Give only one answer") rather than silently keeping the first one.
* The five questionnaires have no free-text (string/text) items; escaping is tested through
  invalid numeric and date fields, which are shown again with what was typed, and through
  stored answers that carry markup (defence in depth for data from other sources).

The app runs with TESTING=True, so an unexpected exception is re-raised into the test instead of
becoming a 500 page: any crash fails the test with its traceback.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from intake.config import DEFAULT_QUESTIONNAIRES, PROJECT_ROOT
from intake.core.answers import build_response, flatten
from intake.core.catalog import load_catalog
from intake.core.items import Form, Item, Page
from intake.services import services
from intake.storage import responses
from intake.storage.db import session_scope
from intake.storage.models import Intake, ResponseRecord
from intake.web.forms import field_name, option_key
from tests.web.conftest import csrf, error_summary, invite_link
from tests.web.flow import default_value, fill_page, page_data

# The pages, collected from the same forms folder and questionnaire set the app loads by default;
# test_every_catalog_page_is_covered checks this list against services(app).catalog.
_CATALOG = load_catalog(PROJECT_ROOT / "forms")
# Pages with something to get wrong (the reason for the visit is free text only: anything typed is
# an answer; its bound and escaping are tested in tests/web/test_clinician_summary.py).
_ALL_PAGES = [(key, page) for key in DEFAULT_QUESTIONNAIRES for page in _CATALOG.by_key[key].pages]
PAGES = [(key, page.key) for key, page in _ALL_PAGES
         if any(i.type not in ("string", "text", "group", "display") for i in page.walk())]
TEXT_ONLY_PAGES = [(key, page.key) for key, page in _ALL_PAGES if (key, page.key) not in PAGES]

OPTION_TYPES = ("boolean", "choice", "open-choice")
DATE_TYPES = ("date", "dateTime")
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
KB100 = 100 * 1024
MARKER = "UNKNOWN-FIELD-MARKER"


# --- helpers ----------------------------------------------------------------------------------


def _form_page(app: Flask, form_key: str, page_key: str) -> tuple[Form, Page]:
    form = services(app).catalog.by_key[form_key]
    return form, next(p for p in form.pages if p.key == page_key)


def _questions(page: Page) -> list[Item]:
    """The items of a page that have a form field."""
    return [i for i in page.walk() if i.is_question and not i.read_only and not i.hidden]


def _is_option(item: Item) -> bool:
    return item.type in OPTION_TYPES


def _is_text_like(item: Item) -> bool:
    """Typed into a box that takes only numbers or dates. Free text (the reason for the visit)
    accepts letters and markup as words: its bound and escaping are tested in
    tests/web/test_clinician_summary.py."""
    return not _is_option(item) and item.type not in ("string", "text")


def _keys(item: Item) -> list[str]:
    return ["true", "false"] if item.type == "boolean" else [option_key(o) for o in item.options]


def _enabling(form: Form, page: Page) -> dict[str, Any]:
    """Overrides that switch on every question of the page (each enableWhen `=` satisfied)."""
    overrides: dict[str, Any] = {}
    for item in page.walk():
        for condition in item.enable_when:
            if condition.get("operator") != "=":
                continue
            if "answerCoding" in condition:
                code, question = str(condition["answerCoding"].get("code")), condition["question"]
                if question in overrides and overrides[question] != code:  # check boxes: tick every code that enables
                    earlier = overrides[question]
                    overrides[question] = [*(earlier if isinstance(earlier, list) else [earlier]), code]
                else:
                    overrides[question] = code
            elif "answerBoolean" in condition:
                overrides[condition["question"]] = "true" if condition["answerBoolean"] else "false"
    return overrides


def _highest(page: Page) -> dict[str, Any]:
    """The last (highest-scoring) option of every single-choice question of a page."""
    return {i.link_id: _keys(i)[-1] for i in _questions(page)
            if i.type in ("choice", "open-choice") and not i.repeats}


def _path(form_key: str, page_key: str) -> str:
    return f"/intake/{form_key}/{page_key}"


def _prepare(app: Flask, client: FlaskClient, form_key: str, page_key: str) -> tuple[str, dict[str, Any], str]:
    """Reach the page, store valid answers for it once; returns (path, valid data, CSRF token).

    A reflex page (its group has an enableWhen) is reachable only after the pages before it were
    answered with high scores, as a patient would (see test_reflex_pages_switch_on_and_back_off).
    """
    form, page = _form_page(app, form_key, page_key)
    if page.group is not None and page.group.enable_when:
        for earlier in form.pages[: form.pages.index(page)]:
            if earlier.group is None or not earlier.group.enable_when:
                fill_page(client, app, _path(form_key, earlier.key), _highest(earlier))
    path = _path(form_key, page_key)
    overrides = _enabling(form, page)
    fill_page(client, app, path, overrides)
    stored = _answers(app, form)
    missing = [i.link_id for i in _questions(page) if not stored.get(i.link_id)]
    assert not missing, f"{path}: valid answers not all stored (disabled?): {missing}"
    shown = client.get(path)
    assert shown.status_code == 200
    return path, page_data(app, path, overrides), csrf(shown.text)


def _snapshot(app: Flask) -> list[tuple[Any, ...]]:
    """Every stored row a page post may touch, as raw bytes/values, for a byte-for-byte comparison."""
    with services(app).sessions() as session:
        rows: list[tuple[Any, ...]] = [
            ("response", r.id, r.questionnaire_url, r.status, r.version_id, r.authored, r.updated_at,
             r.resource_json.encode("utf-8"))
            for r in session.scalars(select(ResponseRecord).order_by(ResponseRecord.id))
        ]
        rows += [
            ("intake", i.id, i.status, i.last_page, i.updated_at, i.completed_at)
            for i in session.scalars(select(Intake).order_by(Intake.id))
        ]
    return rows


def _records(app: Flask) -> list[ResponseRecord]:
    with services(app).sessions() as session:
        return list(session.scalars(select(ResponseRecord)))


def _answers(app: Flask, form: Form) -> dict[str, list[dict[str, Any]]]:
    for record in _records(app):
        if record.resource["questionnaire"] == form.canonical:
            return flatten(record.resource)
    return {}


def _no_nul_stored(app: Flask) -> None:
    for record in _records(app):
        assert "\x00" not in record.resource_json and "\\u0000" not in record.resource_json


def _expected_errors(targets: Iterable[Item]) -> set[str]:
    """Field ids that must show an error: the targets, less those switched off because the
    question that enables them was itself given a bad value."""
    targets = list(targets)
    links = {i.link_id for i in targets}
    return {field_name(i.link_id) for i in targets
            if not any(c.get("question") in links for c in i.enable_when)}


def _refused(app: Flask, client: FlaskClient, path: str, data: dict[str, Any], targets: list[Item],
             case: str, message: str | None = None) -> TestResponse:
    """POST `data`; it must be refused with 400, a message for every enabled target (containing
    `message` when given), nothing written."""
    before = _snapshot(app)
    response = client.post(path, data=data)
    assert response.status_code == 400, (case, path, response.status_code)
    summary = error_summary(response.text)
    assert summary, (case, path, "no error summary")
    assert all(message.strip() for _id, message in summary), (case, summary)
    ids = {field_id for field_id, _message in summary}
    missing = _expected_errors(targets) - ids
    assert not missing, (case, path, "no message for", missing, summary)
    if message is not None:
        wrong = [(i, m) for i, m in summary if i in _expected_errors(targets) and message not in m]
        assert not wrong, (case, path, f"expected {message!r}", wrong)
    assert "Error:" in response.text.split("</title>")[0], case
    assert _snapshot(app) == before, (case, path, "stored rows changed")
    return response


def _post(client: FlaskClient, path: str, **kwargs: Any) -> TestResponse:
    """POST and close the response at once. The test client spools a multipart body over 500 kB
    to a temporary file and closes it with the response only on the follow_redirects path (the
    responses here never redirect)."""
    response = client.post(path, follow_redirects=True, **kwargs)
    response.get_data()
    response.close()
    return response


def _batches(items: list[Item], size: int = 8) -> Iterable[list[Item]]:
    """Groups small enough that 100 kB per field stays under the 1 MiB body limit."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _with(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    data = dict(base)
    data.update({field_name(link): value for link, value in values.items()})
    return data


def _insert(value: str, char: str) -> str:
    """`value` with `char` after its first character (so strip() cannot remove it)."""
    return value[:1] + char + value[1:]


def _foreign_code(app: Flask, item: Item) -> str:
    """An option code that belongs to some other item of the catalog, not to `item`."""
    own = set(_keys(item))
    for form in services(app).catalog:
        for other in form.walk():
            for option in other.options:
                if other is not item and option_key(option) not in own:
                    return option_key(option)
    raise AssertionError("no foreign option code in the catalog")


def _single_text(item: Item) -> str:
    value = default_value(item)
    return value[0] if isinstance(value, list) else value


# Wrong values for text-like fields: case -> item -> value.
def _text_cases() -> dict[str, Callable[[Item], Any]]:
    def by_type(number: Any, integer: Any = None, date: Any = None) -> Callable[[Item], Any]:
        def pick(item: Item) -> Any:
            if item.type in DATE_TYPES:
                return date if date is not None else number
            if item.type == "integer" and integer is not None:
                return integer
            return number
        return pick

    return {
        "letters": by_type("twelve", date="yesterday"),
        "digits and letters": by_type("12abc", date="2021-02-30"),
        "impossible date / two decimal points": by_type("1.2.3", date="2021-13"),
        "day-first date / thousands": by_type("1 000", date="30/01/2021"),
        "huge number": by_type("1e400", integer=str(10**40), date="99999-01"),
        "negative huge number": by_type("-" + "9" * 400, integer=str(-(10**40)), date="-2020-01"),
        "infinity": by_type("Infinity", date="Infinity"),
        "not a number": by_type("NaN", date="NaN"),
        "giant exponent": by_type("1e999999999999999999", date="1e999999999999999999"),
        "several values": lambda item: [_single_text(item), _single_text(item)],
        "empty value, then a value": lambda item: ["", _single_text(item)],
        "NUL byte": lambda item: _insert(_single_text(item), "\x00"),
        "lone NUL byte": lambda item: "\x00",
        "escape character": lambda item: _insert(_single_text(item), "\x1b"),
        "bell and DEL": lambda item: _insert(_single_text(item), "\x07\x7f"),
        "markup": lambda item: SCRIPT,
    }


def _option_cases(app: Flask) -> dict[str, Callable[[Item], Any]]:
    def wrap(value: Callable[[Item], str]) -> Callable[[Item], Any]:
        """A single value for radios/drop-downs; a valid box plus the bad one for check boxes."""
        return lambda item: [_keys(item)[0], value(item)] if item.repeats else value(item)

    return {
        "maybe": wrap(lambda item: "maybe"),
        "code not in answerOption": wrap(lambda item: "LA-TAMPERED-0"),
        "code of another item": wrap(lambda item: _foreign_code(app, item)),
        "code with NUL": wrap(lambda item: _keys(item)[0] + "\x00"),
        "code with control characters": wrap(lambda item: "\x1b" + _keys(item)[0] + "\x08"),
        "two codes in one value": wrap(lambda item: _keys(item)[0] + " " + _keys(item)[-1]),
        "markup": wrap(lambda item: SCRIPT),
    }


OWN_SCRIPT = '<script src="/static/intake.js" defer></script>'


def _foreign_markup(text: str) -> str:
    """The page without the service's own script tag: any `<script` left came from input."""
    return text.replace(OWN_SCRIPT, "").lower()


def _assert_escaped(response: TestResponse, case: str) -> None:
    assert SCRIPT not in response.text, (case, "markup re-shown unescaped")
    assert "<script" not in _foreign_markup(response.text), case


# --- every page -------------------------------------------------------------------------------


def test_every_catalog_page_is_covered(app: Flask) -> None:
    catalog = services(app).catalog
    assert sorted(PAGES + TEXT_ONLY_PAGES) == sorted((form.key, page.key) for form in catalog for page in form.pages)
    assert TEXT_ONLY_PAGES == [("digestive", "digestive-reason")]  # the only page left out, and why: above
    assert len({form_key for form_key, _ in PAGES}) == 5


@pytest.mark.parametrize(("form_key", "page_key"), PAGES)
def test_wrong_values_are_refused_with_a_message_and_nothing_written(
    app: Flask, opened: FlaskClient, form_key: str, page_key: str
) -> None:
    path, valid, token = _prepare(app, opened, form_key, page_key)
    _form, page = _form_page(app, form_key, page_key)
    questions = _questions(page)
    texts = [i for i in questions if _is_text_like(i)]
    options = [i for i in questions if _is_option(i)]
    single = [i for i in options if not i.repeats]
    base = dict(valid, csrf_token=token)

    # Text boxes (numbers, dates): every field of the page wrong at once; the options stay valid,
    # so every text field is switched on and must get its own message.
    if texts:
        for case, value in _text_cases().items():
            data = _with(base, {i.link_id: value(i) for i in texts})
            message = "only one answer" if isinstance(data[field_name(texts[0].link_id)], list) else None
            response = _refused(app, opened, path, data, texts, case, message=message)
            if case == "markup":
                _assert_escaped(response, case)
                assert ESCAPED in response.text, "typed value not shown again"
        # 100 kB: digits (a huge number) and letters, a few fields per request.
        for batch in _batches(texts):
            for filler in ("9", "x"):
                data = _with(base, {i.link_id: filler * KB100 for i in batch})
                _refused(app, opened, path, data, batch, f"100 kB of {filler!r}")

    # Radios, drop-downs, check boxes: tampered codes, wrong types, control characters, markup.
    for case, value in _option_cases(app).items():
        data = _with(base, {i.link_id: value(i) for i in options})
        response = _refused(app, opened, path, data, options, case, message="options shown")
        if case == "markup":
            _assert_escaped(response, case)
    if single:
        # Two answers for a one-answer question (both codes valid on their own).
        data = _with(base, {i.link_id: _keys(i)[:2] for i in single})
        _refused(app, opened, path, data, single, "several values", message="only one answer")
        data = _with(base, {i.link_id: ["", _keys(i)[0]] for i in single})
        _refused(app, opened, path, data, single, "empty value, then a value", message="only one answer")
    for batch in _batches(options):
        data = _with(base, {i.link_id: ["x" * KB100] if i.repeats else "x" * KB100 for i in batch})
        _refused(app, opened, path, data, batch, "100 kB option value", message="options shown")

    # One bad field alone: everything else on the page valid, still nothing written.
    for item in questions:
        bad = "LA-TAMPERED-1" if _is_option(item) else "\x00"
        data = _with(base, {item.link_id: [bad] if item.repeats else bad})
        _refused(app, opened, path, data, [item], f"single bad field {item.link_id}")

    _no_nul_stored(app)


@pytest.mark.parametrize(("form_key", "page_key"), PAGES)
def test_csrf_and_oversized_bodies_are_refused_and_nothing_written(
    app: Flask, opened: FlaskClient, form_key: str, page_key: str
) -> None:
    path, valid, token = _prepare(app, opened, form_key, page_key)
    _form, page = _form_page(app, form_key, page_key)
    other = app.test_client()
    assert other.get(invite_link(app, name="Someone Else")).status_code == 302
    foreign_token = csrf(other.get(_path(*PAGES[0])).text)

    # Missing, empty, wrong, another session's token: the page again with a notice, nothing saved.
    for case, data in {
        "missing": dict(valid),
        "empty": dict(valid, csrf_token=""),
        "wrong": dict(valid, csrf_token="stale"),
        "100 kB": dict(valid, csrf_token="x" * KB100),
        "NUL": dict(valid, csrf_token=token[:5] + "\x00" + token[5:]),
        "two tokens": dict(valid, csrf_token=["stale", token]),
        "another session's": dict(valid, csrf_token=foreign_token),
    }.items():
        before = _snapshot(app)
        response = opened.post(path, data=data)
        assert response.status_code == 400, (case, response.status_code)
        assert "not saved yet" in response.text, case
        assert f'action="{path}"' in response.text, (case, "page not shown again")
        assert csrf(response.text) not in (data.get("csrf_token"), foreign_token), case
        assert _snapshot(app) == before, (case, "stored rows changed")

    # Over MAX_CONTENT_LENGTH (1 MiB): 413 and the neutral page, before anything is parsed or saved.
    big = "x" * (1024 * 1024 + 1)
    for case, kwargs in {
        "urlencoded field": {"data": dict(valid, csrf_token=token, padding=big)},
        "answer field": {"data": _with(dict(valid, csrf_token=token), {_questions(page)[0].link_id: big})},
        "multipart file": {"data": dict(valid, csrf_token=token, upload=(io.BytesIO(big.encode()), "a.txt")),
                           "content_type": "multipart/form-data"},
        # Under 1 MiB in all, but one multipart field over Flask's MAX_FORM_MEMORY_SIZE (500 kB).
        "one 600 kB multipart field": {"data": dict(valid, csrf_token=token, padding="x" * 600_000),
                                       "content_type": "multipart/form-data"},
    }.items():
        before = _snapshot(app)
        response = _post(opened, path, **kwargs)
        assert response.status_code == 413, (case, response.status_code)
        assert "That was too much to send" in response.text, case
        assert _snapshot(app) == before, (case, "stored rows changed")
    # Urlencoded has no per-field limit: a 600 kB answer is refused by validation instead.
    first = _questions(page)[0]
    _refused(app, opened, path, _with(dict(valid, csrf_token=token), {first.link_id: "9" * 600_000}),
             [first], "one 600 kB answer")

    # A file where an answer belongs, and a body that is not a form at all.
    before = _snapshot(app)
    response = _post(opened, path, data=dict(valid, csrf_token=token, **{
        field_name(first.link_id): (io.BytesIO(b"1"), "answer.txt")}), content_type="multipart/form-data")
    assert response.status_code == 400, ("file as answer", response.status_code)
    assert field_name(first.link_id) in {i for i, _ in error_summary(response.text)}
    for case, body, content_type in (
        ("json", json.dumps(valid), "application/json"),
        ("broken multipart", "--zz\r\nnot a part", "multipart/form-data; boundary=zz"),
        ("binary", b"\xff\xfe\x00\x01" * 100, "application/x-www-form-urlencoded"),
    ):
        response = opened.post(path, data=body, content_type=content_type)
        assert response.status_code == 400, (case, response.status_code)
    assert _snapshot(app) == before


@pytest.mark.parametrize(("form_key", "page_key"), PAGES)
def test_unknown_fields_beside_valid_answers_are_ignored_and_never_stored(
    app: Flask, opened: FlaskClient, form_key: str, page_key: str
) -> None:
    path, valid, token = _prepare(app, opened, form_key, page_key)
    form, page = _form_page(app, form_key, page_key)
    catalog = services(app).catalog
    # Fields of questions on another page of this form and of another form look real; still unknown.
    same_form = [i for p in form.pages if p is not page for i in _questions(p)]
    other_form = next(f for f in catalog if f is not form)
    foreign = same_form[:3] + _questions(other_form.pages[0])[:3]
    before_foreign = {i.link_id: _answers(app, form).get(i.link_id) for i in same_form[:3]}
    other_before = [r.resource_json for r in _records(app) if r.resource["questionnaire"] != form.canonical]
    version_before = next(r.version_id for r in _records(app) if r.resource["questionnaire"] == form.canonical)

    data = dict(valid, csrf_token=token)
    data.update({
        "evil": MARKER,
        "q-": MARKER,
        "q-not-a-question": MARKER + "\x00",
        field_name(_questions(page)[0].link_id) + "-other": MARKER,
        field_name(_questions(page)[0].link_id) + "-unit": MARKER,
        "__proto__": MARKER,
        "csrf_token_2": MARKER,
        "x" * 1000: MARKER,
        "big": MARKER + "y" * 10_000,
        "many": [MARKER] * 50,
        "<script>": SCRIPT,
    })
    for item in foreign:
        data[field_name(item.link_id)] = _single_text(item) if _is_text_like(item) else default_value(item)
    data.update({f"k{n}": MARKER for n in range(2000)})
    response = opened.post(path, data=data)
    assert response.status_code == 302, response.status_code
    assert "/intake/" in response.headers["Location"]

    record = next(r for r in _records(app) if r.resource["questionnaire"] == form.canonical)
    assert record.version_id > version_before, "the valid answers were not saved"
    assert MARKER not in record.resource_json
    assert "\\u0000" not in record.resource_json and "<script" not in record.resource_json
    stored = flatten(record.resource)
    assert {i.link_id: stored.get(i.link_id) for i in same_form[:3]} == before_foreign
    assert all(stored.get(i.link_id) for i in _questions(page)), "valid answers not stored"
    assert [r.resource_json for r in _records(app) if r.resource["questionnaire"] != form.canonical] == other_before
    assert all(set(item) <= {"linkId", "text", "answer", "item"} for item in _walk(record.resource))


def _walk(resource: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for item in resource.get("item") or []:
        yield item
        yield from _walk(item)
        for answer in item.get("answer") or []:
            yield from _walk(answer)


# --- routing and sessions -----------------------------------------------------------------------


def test_posts_to_pages_that_do_not_exist_are_404_and_write_nothing(app: Flask, opened: FlaskClient) -> None:
    first = _path(*PAGES[0])
    token = csrf(opened.get(first).text)
    fill_page(opened, app, first)
    data = dict(page_data(app, first), csrf_token=token)
    before = _snapshot(app)
    for path in (
        "/intake/nope/" + PAGES[0][1],                 # unknown questionnaire, real page key
        f"/intake/{PAGES[0][0]}/nope",                 # real questionnaire, unknown page key
        f"/intake/{PAGES[0][0]}/{PAGES[-1][1]}",       # a page of another questionnaire
        "/intake/stress/stress-phq9",                  # a reflex page not switched on
        "/intake/stress/stress-gad7",
        "/intake/" + "a" * 5000 + "/b",
        "/intake/%3Cscript%3E/x",
        "/intake/digestive/digestive-alarm/extra",
    ):
        response = opened.post(path, data=data)
        assert response.status_code == 404, (path, response.status_code)
        assert "Page not found" in response.text
        assert "<script" not in _foreign_markup(response.text)
    # A control character in the path is refused by the input guard before any route is chosen.
    refused = opened.post("/intake/%00/%00", data=data)
    assert refused.status_code == 400
    assert _snapshot(app) == before


def test_posts_without_an_intake_in_the_session_are_403_and_write_nothing(app: Flask, opened: FlaskClient) -> None:
    fill_page(opened, app, _path(*PAGES[0]))
    stranger = app.test_client()
    before = _snapshot(app)
    for form_key, page_key in PAGES:
        path = _path(form_key, page_key)
        response = stranger.post(path, data=dict(page_data(app, path), csrf_token="x"))
        assert response.status_code == 403, (path, response.status_code)
        assert "Your session has ended" in response.text
        assert "Step " not in response.text  # neutral: nothing of the questionnaire is shown
    assert stranger.post("/intake/submit", data={"csrf_token": "x"}).status_code in (302, 403)
    assert _snapshot(app) == before


# --- escaping ---------------------------------------------------------------------------------


def test_stored_markup_is_escaped_on_the_page_and_the_review(app: Flask, opened: FlaskClient) -> None:
    """No form here has a free-text item, so markup cannot be typed in and stored; answers with
    markup written by another route (an import, a future API) must still render as text."""
    catalog = services(app).catalog
    form = catalog.by_key["digestive"]
    date_item = next(i for i in form.walk() if i.type == "date")
    choice_item = next(i for i in form.walk() if i.type == "choice" and not i.repeats)
    answers = {
        date_item.link_id: [{"valueDate": SCRIPT}],
        choice_item.link_id: [{"valueCoding": {"code": SCRIPT, "display": "<img src=x onerror=alert(1)>"}}],
    }
    with services(app).sessions() as session:
        intake = session.scalars(select(Intake)).one()
        intake_id, patient_id = intake.id, intake.patient_id
    now = datetime.now(UTC)
    resource = build_response(form, answers, status="in-progress", subject=f"Patient/{patient_id}",
                              authored=now.isoformat(timespec="seconds").replace("+00:00", "Z"))
    with session_scope(services(app).sessions) as session:
        responses.save_draft(session, intake_id=intake_id, questionnaire=form.canonical,
                              resource=resource, page=None, now=now)

    pages = [p for p in form.pages if any(i.link_id in answers for i in p.walk())]
    for page in pages:
        shown = opened.get(_path(form.key, page.key))
        assert shown.status_code == 200
        _assert_escaped(shown, page.key)
        assert "<img src=x" not in shown.text  # the form's own pictures (the Bristol chart) are <img> too
    review = opened.get("/intake/review")
    assert review.status_code == 200
    _assert_escaped(review, "review")
    assert "<img src=x" not in review.text
    assert ESCAPED in review.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in review.text
