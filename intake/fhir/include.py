"""`_include` of a search page: the resources its matches reference, as `include` entries.

The references are read from the page's stored JSON (only when a client asks for includes, so
a plain search still parses nothing): `subject` and `derivedFrom` name `Type/id`s in the store;
a QuestionnaireResponse's `questionnaire` is a canonical `url|version`, served from the loaded
forms (`publish.questionnaires`), not from the store. A reference to something this server does
not hold is left out, as FHIR servers do; each included resource appears once per page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from intake.fhir.search import Include
from intake.storage import fhir_store

# `Type/id` at the end of a relative or absolute literal reference (`urn:uuid:` ones name nothing here).
REFERENCE = re.compile(r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})$")


def references(include: Include, resource: Mapping[str, Any]) -> list[str]:
    """The reference (or canonical) values at the include's path of one resource."""
    value = resource.get(include.path)
    values = value if isinstance(value, list) else [value]
    if include.path == "questionnaire":
        return [v for v in values if isinstance(v, str)]
    found = [v.get("reference") for v in values if isinstance(v, dict)]
    matches = (REFERENCE.search(r) for r in found if isinstance(r, str))
    return [f"{m['type']}/{m['id']}" for m in matches if m is not None and m["type"] == include.target]


def included(session: Session, includes: Sequence[Include], page: Sequence[str],
             questionnaires: Mapping[str, tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(type, id, JSON text) of every resource the page's matches (`page`: their JSON texts)
    reference through `includes`, each once, in the order first referenced by type."""
    if not includes or not page:
        return []
    resources = [json.loads(text) for text in page]
    wanted: dict[str, dict[str, None]] = {}
    for include in includes:
        for resource in resources:
            for reference in references(include, resource):
                wanted.setdefault(include.target, {})[reference] = None
    by_canonical = {canonical: qid for qid, (_text, canonical) in questionnaires.items()}
    out: list[tuple[str, str, str]] = []
    for target, refs in wanted.items():
        if target == "Questionnaire":
            forms = dict.fromkeys(by_canonical[c] for c in refs if c in by_canonical)
            out += [("Questionnaire", qid, questionnaires[qid][0]) for qid in forms]
        else:
            ids = [r.split("/", 1)[1] for r in refs]
            out += [(s.resource_type, s.resource_id, s.resource_json)
                    for s in fhir_store.get_resources(session, target, ids)]
    return out
