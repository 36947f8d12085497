"""Canonical JSON: the byte-stable text stored versions are compared by."""

from __future__ import annotations

from intake.core.canonical import canonical_json


def test_canonical_json_is_sorted_compact_and_keeps_unicode() -> None:
    assert canonical_json({"b": 1, "a": {"d": "é", "c": [1, 2]}}) == (
        '{"a":{"c":[1,2],"d":"é"},"b":1}'
    )
