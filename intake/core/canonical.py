"""Canonical JSON: one byte-stable text per resource, so stored versions compare and hash.

Pure (standard library only): storage, the FHIR store and the benchmarks share it.
"""

from __future__ import annotations

import json
from typing import Any


def canonical_json(resource: dict[str, Any]) -> str:
    """One byte-stable JSON text per resource (sorted keys, no spaces, UTF-8 kept as is).

    Stable text makes stored versions comparable and hashable; control characters (NUL too) are
    escaped by `json.dumps`, so any Python string fits PostgreSQL ``text``.
    """
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
