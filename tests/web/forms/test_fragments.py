"""intake/web/forms/fragments.py called directly: which question states are cached, that a
cached fragment is the one the macro renders, and that what a patient typed never enters the
cache. The app fixture gives the app's own fragment cache; no page is requested."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from intake.core.items import Form
from intake.services import services
from intake.web.forms import Node, page_form_class, render_tree
from intake.web.forms.fragments import FragmentCache, render_question, state_key
from tests.core.factories import FHIR_EXT, UCUM, ext, form, group, option, question

UNIT_OPTION = FHIR_EXT + "questionnaire-unitOption"
PAGE = form(group(
    "page",
    question("radio", "choice", answerOption=[option("a"), option("b")]),
    question("boxes", "choice", repeats=True, answerOption=[option("a"), option("b")]),
    question("yes", "boolean", required=True),
    question("words", "string"),
    question("open", "open-choice", answerOption=[option("a")]),
    question("many", "open-choice", repeats=True, answerOption=[option("a")]),
    question("weight", "quantity", extension=[ext(UNIT_OPTION, valueCoding={"system": UCUM, "code": "kg"}),
                                              ext(UNIT_OPTION, valueCoding={"system": UCUM, "code": "[lb_av]"})]),
    group("inner", question("child", "boolean")),
))


class Macro:
    """Stands in for the template's `question` macro: counts its calls, renders a marker."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, node: Node) -> str:
        self.calls += 1
        return f"<p>{node.item.link_id} {node.field.data if node.field else ''} {self.calls}</p>"


def nodes(built: Form, data: dict[str, Any] | None = None, *, validate: bool = False) -> dict[str, Node]:
    """The render nodes of the page posted `data` (linkId -> value), by linkId."""
    cls = page_form_class(built, built.pages[0])
    formdata: MultiDict[str, Any] = MultiDict()
    for link_id, value in (data or {}).items():
        for v in value if isinstance(value, list) else [value]:
            formdata.add(link_id if link_id.startswith("q-") else "q-" + link_id, v)
    page = cls(formdata if data is not None else None)
    page.enabled = {i.link_id for i in built.walk()}
    if validate:
        page.validate()
    out: dict[str, Node] = {}

    def index(found: list[Node]) -> None:
        for node in found:
            out[node.item.link_id] = node
            index(node.children)

    index(render_tree(built.pages[0], page, None, {}))
    return out


@pytest.fixture
def ctx(app: Flask) -> Iterator[Flask]:
    with app.test_request_context():
        yield app


# --- which states are cached -----------------------------------------------------------------------


@pytest.mark.parametrize(("link_id", "value"), [
    ("radio", None), ("radio", "a"), ("boxes", ["a", "b"]), ("yes", "true"), ("words", None),
])
def test_a_state_from_a_finite_set_has_a_key(link_id: str, value: Any) -> None:
    data = {} if value is None else {link_id: value}
    assert state_key(nodes(PAGE, data)[link_id]) is not None


@pytest.mark.parametrize(("link_id", "value"), [
    ("words", "my own words"),  # typed text
    ("radio", "not-an-option"),  # a tampered code is not from the finite set
    ("boxes", ["a", "zz"]),
    ("open", None),  # an open choice has a box to type in, even while empty
    ("many", ["a"]),
    ("weight", None),  # a quantity with a unit choice
    ("inner", None),  # a group with children
])
def test_typed_or_composite_states_have_no_key(link_id: str, value: Any) -> None:
    data = {} if value is None else {link_id: value}
    assert state_key(nodes(PAGE, data)[link_id]) is None


def test_the_key_tells_answers_and_messages_apart() -> None:
    empty, picked = nodes(PAGE)["radio"], nodes(PAGE, {"radio": "a"})["radio"]
    other = nodes(PAGE, {"radio": "b"})["radio"]
    assert len({state_key(empty), state_key(picked), state_key(other)}) == 3
    missing = nodes(PAGE, {}, validate=True)["yes"]
    assert missing.field is not None and missing.field.errors == ["Select an answer"]
    assert state_key(missing) != state_key(nodes(PAGE)["yes"])
    assert state_key(nodes(PAGE, {"boxes": ["a", "b"]})["boxes"]) != state_key(nodes(PAGE, {"boxes": ["a"]})["boxes"])


def test_the_same_item_of_another_loaded_form_has_another_key() -> None:
    again = form(*PAGE.resource["item"])
    assert state_key(nodes(PAGE)["radio"]) != state_key(nodes(again)["radio"])


# --- render_question ------------------------------------------------------------------------------


def test_a_cached_state_is_rendered_once(ctx: Flask) -> None:
    macro = Macro()
    first = render_question(macro, nodes(PAGE, {"radio": "a"})["radio"])
    again = render_question(macro, nodes(PAGE, {"radio": "a"})["radio"])
    assert macro.calls == 1 and first == again and isinstance(first, Markup)
    render_question(macro, nodes(PAGE, {"radio": "b"})["radio"])
    assert macro.calls == 2


def test_typed_text_is_rendered_every_time_and_never_kept(ctx: Flask) -> None:
    macro = Macro()
    node = nodes(PAGE, {"words": "private words"})["words"]
    assert render_question(macro, node) != render_question(macro, node)
    assert macro.calls == 2
    cache = services(ctx).fragments
    assert not any("private words" in str(value) for value in cache._items.values())


def test_the_real_macro_renders_the_same_html_from_the_cache(ctx: Flask) -> None:
    macro = ctx.jinja_env.get_template("patient/_items.html").module.question  # type: ignore[attr-defined]
    node = nodes(PAGE, {"radio": "b"})["radio"]
    fresh = Markup(macro(node))
    assert render_question(macro, node) == fresh
    assert render_question(macro, nodes(PAGE, {"radio": "b"})["radio"]) == fresh
    assert 'value="b" checked' in fresh and 'value="a" checked' not in fresh
    typed = nodes(PAGE, {"words": "<b>bold</b>"})["words"]
    assert "&lt;b&gt;bold&lt;/b&gt;" in render_question(macro, typed)


# --- the cache itself -----------------------------------------------------------------------------


def test_the_cache_is_a_bounded_lru() -> None:
    cache = FragmentCache(size=2)
    cache.put(("a",), Markup("A"))
    cache.put(("b",), Markup("B"))
    assert cache.get(("a",)) == "A"  # a read makes "a" the most recent
    cache.put(("c",), Markup("C"))
    assert cache.get(("b",)) is None and cache.get(("a",)) == "A" and cache.get(("c",)) == "C"



def test_a_date_with_typed_boxes_is_never_cached() -> None:
    """A wrong date's boxes hold what was typed (its data is None): that must not be a cached state."""
    built = form(group("page", question("when", "date")))
    typed = nodes(built, {"q-when-day": "", "q-when-month": "13", "q-when-year": "2019"}, validate=True)["when"]
    assert typed.field is not None and typed.field.errors and typed.field.data is None
    assert state_key(typed) is None
    assert state_key(nodes(built, {}, validate=False)["when"]) is not None  # empty boxes: cached
