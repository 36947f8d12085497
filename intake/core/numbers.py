"""Whole numbers from untrusted text (query parameters, form fields): the one parser for them.

`str.isdigit()` is true for `²`, `٣` and `３`, and `int()` then fails (`²`) or quietly reads
another script's digits (`٣` is 3), so "digits, then int()" lets both a crash and a surprise
through. Only ASCII digits are numbers here, and every number has a bound (a PostgreSQL
`integer` column overflows above 2**31 - 1: a query with a larger value fails in the database).
"""

from __future__ import annotations

import re

INT32_MAX = 2**31 - 1  # the largest value of a PostgreSQL `integer` column (row ids, sequence numbers)

_ASCII_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def whole_number(raw: str, *, high: int, low: int = 0) -> int:
    """`raw` as an int from `low` to `high`; ValueError for anything else: a sign, spaces, other
    scripts' digits, an empty string, or a value out of bounds (checked on the text's length
    first, so a million digits are never converted)."""
    if not _ASCII_DIGITS.fullmatch(raw) or len(raw.lstrip("0")) > len(str(high)):
        raise ValueError(f"not a whole number from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise ValueError(f"not a whole number from {low} to {high}")
    return value
