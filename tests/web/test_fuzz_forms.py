"""Hypothesis over every page of every form: generated answers, never a 500.

Each page of each questionnaire (collected from the catalog, so a new form or page is covered
without touching this file) gets QUOTA generated POSTs: arbitrary unicode with control
characters, huge and empty strings, numbers out of range and in odd notations, impossible dates,
option codes that are not offered (or belong to another item), a one-answer field sent many
times, check boxes sent hundreds of times, fields left out, unknown fields, multipart bodies,
and missing, wrong, doubled or foreign CSRF tokens. One generated POST is one input; QUOTA x
pages >= 10,000 is asserted, and each page test asserts that it really ran its quota.

The app runs with TESTING=True, so an exception in a view is re-raised into the test (a 500
can never pass silently); every response must also be 302 (saved), 400 (refused, page shown
again) or 413 (too large). After every fourth save the page and the review page are read back,
so what was accepted is also rendered. Finally the intake is submitted, which validates and
scores what the fuzzing left stored; the clinician PDF job is replaced by a no-op there (it
renders for ~1 s and has its own tests) — the submit itself runs in full.

Time: the POSTs themselves are most of it (a refused page is validated and rendered again with
its messages: 4-9 ms each here), so Hypothesis draws little per POST (see `page_post`) and
each example sends BATCH posts. Run with -s to see the count and where the time went.

Runs are deterministic (`derandomize=True`) and keep no example database (`database=None`), so
CI sees the same inputs every time and no .hypothesis folder is written.

Size (marker `sized`, tests/support/sizes.py): the full 10,000 inputs under the `ci` Hypothesis
profile (`make test-long`, CI); 1,400 (100 per page) under the default `dev` profile (`make
test`). The same assertions hold at both sizes.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intake.config import DEFAULT_QUESTIONNAIRES, PROJECT_ROOT
from intake.core.catalog import load_catalog
from intake.core.items import Item
from intake.services import services
from intake.web.forms import field_name, option_key
from tests.support.sizes import full_size
from tests.web.conftest import csrf, invite_link
from tests.web.flow import HIGH_PHQ4, fill_all

pytestmark = pytest.mark.sized

_CATALOG = load_catalog(PROJECT_ROOT / "forms")
PAGES = [(key, page.key) for key in DEFAULT_QUESTIONNAIRES for page in _CATALOG.by_key[key].pages]
FULL_TOTAL = 10_000  # the `ci` profile's figure
TOTAL = FULL_TOTAL if full_size() else 100 * len(PAGES)
BATCH = 5  # POSTs per Hypothesis example: its fixed cost per example is about a POST's


def _examples(total: int) -> int:
    return -(-total // (len(PAGES) * BATCH))  # examples per page, rounded up


EXAMPLES = _examples(TOTAL)
QUOTA = EXAMPLES * BATCH  # generated POSTs per page
ALL_CODES = sorted({option_key(o) for form in _CATALOG for item in form.walk() for o in item.options})
FIRST = "/intake/digestive/digestive-alarm"
SAVED, REFUSED, TOO_LARGE = 302, 400, 413

COUNTS: Counter[str] = Counter()  # inputs and outcomes over the whole run, reported at the end
SECONDS: Counter[str] = Counter()  # time in the app's POSTs and in the whole fuzz (the rest is generation)

FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])


# --- strategies -----------------------------------------------------------------------------

# Any code point a form body can carry (lone surrogates cannot be encoded as UTF-8 at all).
ANY_CHAR = st.characters(exclude_categories=("Cs",))
CONTROLS = ["\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f", "\t", "\r\n", "\u0085",
            "\u2028", "\u202e", "\ufeff", "\ufffd", "\U0001f600", "e\u0301", "\u00a0"]
ODD_NUMBERS = [
    "1e400", "-1e400", "1e-400", "1e999999999999999999", "NaN", "-nan", "Infinity", "-inf", "-0", "0.0", "+5",
    "1,5", "1.5.5", "1 000", "1_000", "0x10", "0b1", "½", "١٢", "３", "⅓", "1e2", " 7 ", "2147483648",
    "-2147483649", "9" * 400, "0." + "0" * 400 + "1", ".5", "5.", "--1", "1-", "e5", "-1", "101", "999999",
]
ODD_DATES = [
    "2021-02-29", "2021-02-30", "2021-13", "2021-00", "0000-01", "9999-12-31", "10000-01", "-2020-01",
    "2020-1", "20-01-01", "01/02/2020", "2020-01-01T10:00", "2020-01-01T25:00", "2020-W01", "today",
    "２０２０-０１", "1900-01", "2999-12",
]
ODD_TEXT = ["", " ", "<script>alert(1)</script>", "' OR 1=1 --", "${7*7}", "{{7*7}}", "../../etc/passwd", "%00",
            "\\", "null", "undefined", "[]", "{}", "true", "false", "yes", "on", "1", "0", "None"]
# One draw picks any of these; with a control character put into one of them in a third of cases.
POOL = st.sampled_from(ODD_NUMBERS + ODD_DATES + ODD_TEXT + ALL_CODES)
TEXT = st.text(ANY_CHAR, max_size=12)
# Hypothesis' own strings and numbers (each character is a draw, so they stay short), and the pool.
ANY_VALUE = st.one_of(TEXT, st.integers(-(10**40), 10**40).map(str), st.floats().map(str),
                      st.decimals(allow_nan=True, allow_infinity=True).map(str), POOL,
                      st.builds(lambda text, char: text[:1] + char + text[1:], POOL, st.sampled_from(CONTROLS)))


_KEYS: dict[str, list[str]] = {}


OPTION_EXCLUSIVE = "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive"


def keys(item: Item) -> list[str]:
    """The values the page offers for `item`: its option codes, or true/false."""
    if item.link_id not in _KEYS:
        _KEYS[item.link_id] = ["true", "false"] if item.type == "boolean" else [option_key(o) for o in item.options]
    return _KEYS[item.link_id]


class Huge(str):
    """`chunk` repeated `times` times, which `_urlencode` quotes as quote(chunk) * times."""

    chunk: str
    times: int

    def __new__(cls, chunk: str, times: int) -> Huge:
        value = super().__new__(cls, chunk * times)
        value.chunk, value.times = chunk, times
        return value

    def __repr__(self) -> str:  # a failing example is printed: keep it readable
        return f"Huge({self.chunk!r}, {self.times})"


def _bound(spec: dict[str, Any] | None, default: int) -> int:
    return int(next(iter(spec.values()))) if spec else default


def valid_values(item: Item, rng: random.Random) -> list[str]:
    """Values a browser showing the page could send for `item`: a subset of check boxes (at least
    one when the question is required; an exclusive box such as "None of these" alone)."""
    if item.repeats:
        picked = rng.sample(keys(item), rng.randint(1 if item.required else 0, min(3, len(keys(item)))))
        exclusive = [key for key, option in zip(keys(item), item.options, strict=True)
                     if any(e.get("url") == OPTION_EXCLUSIVE and e.get("valueBoolean")
                            for e in option.get("extension") or [])]
        alone = [key for key in picked if key in exclusive]
        return alone[:1] or picked
    if item.type in ("boolean", "choice", "open-choice"):
        return [rng.choice(keys(item))]
    if item.type in ("integer", "decimal", "quantity"):
        low = _bound(item.min_value, 0)
        return [str(rng.randint(low, _bound(item.max_value, low + 100)))]
    if item.type == "date":
        return [f"{rng.randint(1950, 2025)}-{rng.randint(1, 12):02d}"]
    return [rng.choice(["fine", "Ärger", "ça va", "暑い"])]


def wrong_value(item: Item, drawn: list[str], rng: random.Random) -> str:
    """A value of the wrong kind, out of range, or not among the options: one Hypothesis drew,
    one from the pool (with a control character put in, now and then), or an option code of
    this item bent out of shape."""
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(drawn)
    if roll < 0.8 or (not item.options and item.type != "boolean"):
        value = rng.choice(POOL_VALUES)
        if rng.random() < 0.3:
            at = rng.randint(0, len(value))
            value = value[:at] + rng.choice(CONTROLS) + value[at:]
        return value
    key = rng.choice(keys(item))
    return rng.choice([key + "\x00", f" {key.lower()} ", key + key, key[:-1], "\u202e" + key])


def mutate(item: Item, drawn: list[str], rng: random.Random) -> list[str] | None:
    """What replaces the values of one field (None leaves it out): a wrong value; two to four
    values; one value repeated up to 150 times; for check boxes every box, or a box sent over
    and over."""
    def some() -> str:
        return rng.choice(keys(item)) if keys(item) and rng.random() < 0.5 else wrong_value(item, drawn, rng)
    shape = rng.choice(["missing", "wrong", "wrong", "several", "repeated"] + (["all"] if item.repeats else []))
    if shape == "missing":
        return None
    if shape == "wrong":
        return [wrong_value(item, drawn, rng)]
    if shape == "several":
        return [some() for _ in range(rng.randint(2, 4))]
    if shape == "repeated":
        return [some()[:20]] * rng.randint(2, 150)
    return keys(item)


POOL_VALUES = ODD_NUMBERS + ODD_DATES + ODD_TEXT + ALL_CODES
HOSTILE = st.lists(ANY_VALUE, min_size=1, max_size=3)
SEEDS = st.integers(0, 2**32)
UNKNOWN_FIELDS = st.dictionaries(st.text(ANY_CHAR, min_size=1, max_size=20), st.lists(TEXT, max_size=3), max_size=5)


@st.composite
def page_post(draw: st.DrawFn, questions: list[Item], token: str, foreign_token: str) -> dict[str, Any]:
    """The fields (the CSRF token among them) and the content type of one POST.

    Hypothesis draws a seed and one to three hostile values. The seed lays the post out: valid
    answers on every field, then none of them changed ("clean", what a browser sends), one to
    three changed, or every one; the CSRF token right, missing, empty, junk, doubled or
    another session's; sometimes unknown fields, a huge answer, a multipart body. Drawing
    each of those choices through Hypothesis (~130 us a draw here) cost more than the POST.
    """
    rng = random.Random(draw(SEEDS))
    drawn = draw(HOSTILE)
    data: dict[str, Any] = {field_name(item.link_id): valid_values(item, rng) for item in questions}
    mode = rng.choice(["clean", "few", "few", "few", "few", "few", "everywhere", "everywhere"])
    if mode != "clean":
        targets = questions if mode == "everywhere" else rng.sample(questions, rng.randint(1, min(3, len(questions))))
        for item in targets:
            data[field_name(item.link_id)] = mutate(item, drawn, rng)
        if rng.random() < 0.1:  # one huge answer: over the 10,000-character cap on free text
            chunk = rng.choice(["x", "9", "é", "\x00", "<b>", "😀"])
            data[field_name(rng.choice(questions).link_id)] = [Huge(chunk, rng.randint(1_000, 12_000))]
    csrf_case = rng.choice(["valid"] * 12 + ["missing", "empty", "junk", "two", "foreign"])
    data["csrf_token"] = {"valid": [token], "missing": None, "empty": [""], "foreign": [foreign_token],
                          "junk": [rng.choice(drawn)], "two": [token, token]}[csrf_case]
    if rng.random() < 0.05:  # unknown fields beside the real ones
        data.update(draw(UNKNOWN_FIELDS))
    fields = {name: values for name, values in data.items() if values is not None}
    content_type = "multipart/form-data" if rng.random() < 0.025 else "application/x-www-form-urlencoded"
    return {"data": fields, "content_type": content_type}


def _urlencode(fields: dict[str, Any]) -> bytes:
    """The form body, each distinct value quoted once (the test client's encoder quoted a value
    repeated 150 times 150 times, and was slower than the view handling it)."""
    parts: list[str] = []
    for name, values in fields.items():
        key = quote_plus(name)
        quoted: dict[str, str] = {}
        for value in values if isinstance(values, list) else [values]:
            if value not in quoted:
                text = quote_plus(value.chunk) * value.times if isinstance(value, Huge) else quote_plus(value)
                quoted[value] = f"{key}={text}"
            parts.append(quoted[value])
    return "&".join(parts).encode()


# --- the app and one intake per page ------------------------------------------------------------


def _questions(form_key: str, page_key: str) -> list[Item]:
    page = next(p for p in _CATALOG.by_key[form_key].pages if p.key == page_key)
    return [i for i in page.walk() if i.is_question and not i.read_only and not i.hidden]


def _started(app: Flask) -> FlaskClient:
    """A patient session with every page answered (PHQ-4 high, so the reflex pages are on).

    The clinician PDF that a submit renders in a job (~1 s, tested in tests/test_pdf.py) is
    replaced by a no-op: the submit at the end of each page's fuzzing runs in full otherwise.
    """
    services(app).outbox_handlers["render_pdf"] = lambda _app, _intake_id: None
    client = app.test_client()
    assert client.get(invite_link(app)).status_code == 302
    fill_all(client, app, FIRST, HIGH_PHQ4)
    return client


def _send(client: FlaskClient, path: str, post: dict[str, Any]) -> int:
    """POST and close; the status of the POST itself.

    The test client spools a multipart body over 500 kB to a temporary file that it closes
    only on its follow_redirects path, so multipart posts take that path (a save's redirect is
    then followed: one more page rendered).
    """
    multipart = post["content_type"] == "multipart/form-data"
    started = time.perf_counter()
    body = post["data"] if multipart else _urlencode(post["data"])
    response = client.post(path, data=body, content_type=post["content_type"], follow_redirects=multipart)
    status = response.history[0].status_code if response.history else response.status_code
    _close(response)
    SECONDS["posts"] += time.perf_counter() - started
    return int(status)


def _close(response: Any) -> int:
    response.get_data()
    response.close()
    return int(response.status_code)


# --- tests ------------------------------------------------------------------------------------


def test_the_quotas_add_up_to_ten_thousand_inputs_over_every_catalog_page() -> None:
    assert _examples(FULL_TOTAL) * BATCH * len(PAGES) >= FULL_TOTAL == 10_000  # what `make test-long` sends
    assert QUOTA * len(PAGES) >= TOTAL
    assert FUZZ.max_examples * BATCH == QUOTA
    assert len({form for form, _page in PAGES}) == len(DEFAULT_QUESTIONNAIRES) == 5


def test_the_pages_fuzzed_are_the_pages_the_app_serves(app: Flask) -> None:
    catalog = services(app).catalog
    assert sorted(PAGES) == sorted((form.key, page.key) for form in catalog for page in form.pages)


@pytest.mark.parametrize(("form_key", "page_key"), PAGES)
def test_generated_answers_never_cause_a_server_error(app: Flask, form_key: str, page_key: str) -> None:
    client = _started(app)
    stranger = app.test_client()
    stranger.get(invite_link(app, name="Someone Else"))
    foreign_token = csrf(stranger.get(FIRST).text)
    path = f"/intake/{form_key}/{page_key}"
    shown = client.get(path)
    assert shown.status_code == 200
    questions = _questions(form_key, page_key)
    outcomes: Counter[int] = Counter()
    saves = 0

    @FUZZ
    @given(posts=st.lists(page_post(questions, csrf(shown.text), foreign_token), min_size=BATCH, max_size=BATCH))
    def post_page(posts: list[dict[str, Any]]) -> None:
        nonlocal saves
        for post in posts:
            status = _send(client, path, post)
            outcomes[status] += 1
            assert status in (SAVED, REFUSED, TOO_LARGE), status
            if status == SAVED:
                saves += 1
                if saves % 4 == 1:  # what was accepted renders again: on its page, and on the review
                    started = time.perf_counter()
                    assert _close(client.get(path)) == 200
                    assert _close(client.get("/intake/review")) == 200
                    SECONDS["gets"] += time.perf_counter() - started

    began = time.perf_counter()
    post_page()
    SECONDS["fuzz"] += time.perf_counter() - began
    runs = sum(outcomes.values())
    COUNTS.update({"inputs": runs, **{str(k): v for k, v in outcomes.items()}})
    assert runs >= QUOTA, f"{path}: only {runs} generated inputs"
    assert outcomes[SAVED] and outcomes[REFUSED], (path, outcomes)  # both the save and the refusal paths ran

    review = client.get("/intake/review")
    assert review.status_code == 200
    submitted = client.post("/intake/submit", data={"csrf_token": csrf(review.text)})
    assert submitted.status_code in (302, 400), submitted.status_code
    if submitted.status_code == 302:
        assert client.get("/intake/done").status_code == 200


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    if COUNTS["inputs"]:
        print(f"\nfuzzed patient pages: {COUNTS['inputs']} generated inputs in {SECONDS['fuzz']:.1f} s "
              f"({SECONDS['posts']:.1f} s in the POSTs, {SECONDS['gets']:.1f} s in GETs after saves); responses "
              + ", ".join(f"{k}: {v}" for k, v in sorted(COUNTS.items()) if k != "inputs"))
