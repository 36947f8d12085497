"""The OpenAPI 3.1 description of the service's JSON endpoints, served at /openapi.json.

It describes the FHIR API under /fhir, the SMART Backend Services token endpoint and the
discovery documents; the patient and staff pages are HTML for people and are not in it. The
description is a file (`openapi.json` beside this module), public like /fhir/metadata, and kept
true by tests/web/test_openapi.py: every route of those blueprints is in it and everything in it
is a route (search parameters included), and schemathesis checks the answers against it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from flask import Blueprint, Response

bp = Blueprint("openapi", __name__)

SPEC_FILE = Path(__file__).with_name("openapi.json")


@cache
def spec_bytes() -> bytes:
    """The description as served (read once, on first use)."""
    return SPEC_FILE.read_bytes()


@bp.get("/openapi.json")
def spec() -> Response:
    return Response(spec_bytes(), mimetype="application/json")
