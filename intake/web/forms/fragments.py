"""Rendered question fragments, cached by Questionnaire version, item and answer state.

Rendering a page is mostly re-rendering the same radio groups: a question's HTML depends only on
its Questionnaire item and on a small answer state (which option is ticked, which message shows).
When that state comes from a finite set — options, yes/no, our own error messages, an empty box —
the fragment is cached. Anything a patient typed is never part of a cache key or a cached
fragment: such questions are rendered fresh every time.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from markupsafe import Markup

from intake.core import item_types
from intake.services import services
from intake.web.forms import Node

MAX_FRAGMENTS = 20_000


class FragmentCache:
    """A bounded LRU of rendered question fragments."""

    def __init__(self, size: int = MAX_FRAGMENTS) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], Markup] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> Markup | None:
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
        return hit

    def put(self, key: tuple[Any, ...], value: Markup) -> None:
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)


def state_key(node: Node) -> tuple[Any, ...] | None:
    """The cache key of a question's state, or None when the state holds typed text."""
    item, field = node.item, node.field
    if node.children or field is None or node.other is not None or node.unit is not None:
        return None
    if any(getattr(field, "parts", {}).values()):
        return None  # a date's boxes hold what the patient typed (kept on an error)
    data = field.data
    kind = item_types.row(item.type)
    # A picked answer is one of a finite set. (An open-choice, the one type with typed text besides
    # its options, never gets here: its text is a field of its own, `node.other`, refused above.)
    if kind.picks:
        allowed = {key for key, _ in getattr(field, "choices", [])}
        values = tuple(data) if isinstance(data, list) else (data,)
        if any(v not in allowed and v not in (None, "") for v in values):
            return None
    elif data not in (None, "", []):
        return None
    data_key = tuple(data) if isinstance(data, list) else data
    return (id(item), item.link_id, data_key, tuple(field.errors))


def render_question(macro: Any, node: Node) -> Markup:
    """`macro(node)`, served from the cache when the state allows it."""
    key = state_key(node)
    if key is None:
        return Markup(macro(node))
    cache: FragmentCache = services().fragments
    hit = cache.get(key)
    if hit is None:
        hit = Markup(macro(node))
        cache.put(key, hit)
    return hit
