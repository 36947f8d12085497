"""The catalog keeps earlier Questionnaire versions (forms/archive) for intakes pinned to them.

A patient who is half-way through when the forms change keeps the version their intake pinned:
it still resolves, renders its pages (in both languages) and scores. New intakes, `by_url`,
`by_key` and iteration see only the current forms; `rescore` scores against the newest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from intake.core.answers import build_response
from intake.core.catalog import Catalog, CatalogError, load_catalog
from intake.core.items import Form
from intake.core.scoring import Context, score_intake
from intake.core.validation import has_errors, validate
from tests.core.factories import FORMS

BASE = "https://intake.example.org/fhir/Questionnaire/"
# (id, version) of every archived form; stress 1.2.0 asked PHQ-4's items again in PHQ-9 and GAD-7.
# stress 1.3.0 and neuropathy, diet 1.2.0 had no `direction` on their scores (issue 17).
ARCHIVED = [("digestive", "1.2.0"), ("digestive", "1.3.0"), ("autoimmune", "1.2.0"), ("neuropathy", "1.1.0"),
            ("neuropathy", "1.2.0"), ("diet", "1.1.0"), ("diet", "1.2.0"), ("stress", "1.1.0"), ("stress", "1.2.0"),
            ("stress", "1.3.0"), ("digestive", "1.4.0"), ("diet", "1.3.0"), ("autoimmune", "1.3.0"),
            ("neuropathy", "1.3.0"), ("stress", "1.4.0")]
CURRENT = {"digestive": "1.5.0", "autoimmune": "1.4.0", "neuropathy": "1.4.0", "diet": "1.4.0", "stress": "1.5.0"}
AUTHORED = "2024-05-01T10:00:00Z"


def test_current_forms_are_the_newest_and_the_archive_is_pinned_only(catalog: Catalog) -> None:
    assert {f.key: f.version for f in catalog} == CURRENT
    assert {key: catalog.by_key[key].version for key in CURRENT} == CURRENT
    assert {key: catalog.by_url[BASE + key].version for key in CURRENT} == CURRENT
    assert {key: catalog.get(BASE + key).version for key in CURRENT} == CURRENT  # a bare url: the newest
    assert sorted(f.canonical for f in catalog.archived) == sorted(f"{BASE}{k}|{v}" for k, v in ARCHIVED)
    for key, version in ARCHIVED:
        old = catalog.get(f"{BASE}{key}|{version}")
        assert old is not None and old.version == version and old is not catalog.by_key[key]
        assert old.key == key  # same id, same page URLs
    assert [f.canonical for f in catalog.versions] == [f.canonical for f in (*catalog.forms, *catalog.archived)]
    assert len(catalog.versions) == len(CURRENT) + len(ARCHIVED)


@pytest.mark.parametrize("path", sorted((FORMS / "archive").glob("*.json")), ids=lambda p: p.stem)
def test_archive_files_are_named_id_dash_version(path: Path) -> None:
    resource = json.loads(path.read_text(encoding="utf-8"))
    assert path.stem == f"{resource['id']}-{resource['version']}"
    assert (resource["id"], resource["version"]) in ARCHIVED


def default_answers(form: Form) -> dict[str, list[dict[str, Any]]]:
    """An answer to every question of every page: 'No', the first option, the minimum, a past date."""
    answers: dict[str, list[dict[str, Any]]] = {}
    for item in form.walk():
        if not item.is_question or item.read_only or item.hidden:
            continue
        if item.type == "boolean":
            answers[item.link_id] = [{"valueBoolean": False}]
        elif item.type == "choice":
            answers[item.link_id] = [{key: value for key, value in item.options[-1].items() if key.startswith("value")}]
        elif item.type == "integer":
            low = next(iter(item.min_value.values())) if item.min_value else 1
            answers[item.link_id] = [{"valueInteger": int(low)}]
        elif item.type == "decimal":
            answers[item.link_id] = [{"valueDecimal": 1.0}]
        elif item.type == "date":
            answers[item.link_id] = [{"valueDate": "2001"}]
        elif item.type in ("string", "text"):
            answers[item.link_id] = [{"valueString": "fine"}]
    return answers


@pytest.mark.parametrize(("key", "version"), ARCHIVED, ids="-".join)
def test_an_intake_pinned_to_an_archived_version_resolves_renders_and_scores(
    catalog: Catalog, key: str, version: str
) -> None:
    canonical = f"{BASE}{key}|{version}"
    old = catalog.get(canonical)
    assert old is not None
    # renders: the same pages as it had, in English and in Spanish
    spanish = catalog.localized(old, "es")
    assert [p.key for p in old.pages] and [p.key for p in spanish.pages] == [p.key for p in old.pages]
    assert list(spanish.by_link) == list(old.by_link) and spanish.canonical == canonical
    # a response pinned to it validates against it and scores with its rules, versions stored
    response = build_response(old, default_answers(old), status="completed", subject="Patient/p1", authored=AUTHORED)
    assert response["questionnaire"] == canonical
    assert not has_errors(validate(old, response))
    pinned = score_intake([(old, response)], Context(birth_date="1960-01-01"))
    assert pinned.versions == {canonical: f"engine-1;{canonical}"}
    # `rescore` applies the newest rules to the same stored response (workflow.stored_pairs(latest=True))
    newest = catalog.by_url[old.url]
    latest = score_intake([(newest, response)], Context(birth_date="1960-01-01"))
    assert latest.versions == {newest.canonical: f"engine-1;{newest.canonical}"}
    assert [s.id for s in latest.scores] == [s.id for s in pinned.scores]  # the same score ids in both versions


def test_rescoring_an_old_digestive_response_applies_the_fixed_onset_rule(catalog: Catalog) -> None:
    """Birth 1970-05, onset '2020' (year only): 1.2.0 read it as January (not raised); 1.3.0 flags it."""
    old = catalog.get(f"{BASE}digestive|1.2.0")
    assert old is not None
    answers = default_answers(old)
    answers["gi-af5"] = [{"valueDate": "2020"}]
    response = build_response(old, answers, status="completed", subject="Patient/p1", authored=AUTHORED)
    context = Context(birth_date="1970-05-20")
    assert "gi-af5" not in [f.id for f in score_intake([(old, response)], context).flags]
    assert "gi-af5" in [f.id for f in score_intake([(catalog.by_key["digestive"], response)], context).flags]


# --- loading rules ----------------------------------------------------------------------------


def form_json(version: str, *, url: str = BASE + "t", score_id: str | None = None, id_: str = "t") -> dict[str, Any]:
    group: dict[str, Any] = {"linkId": "g", "type": "group", "text": "G", "item": [
        {"linkId": "q", "type": "integer", "text": "Q"},
        {"linkId": "total", "type": "integer", "text": "Total", "readOnly": True, "extension": [{
            "url": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression",
            "valueExpression": {"language": "text/fhirpath",
                                "expression": "%resource.repeat(item).where(linkId='q').answer.value"}}]},
    ]}
    if score_id:
        group["extension"] = [{"url": "https://intake.example.org/fhir/StructureDefinition/score", "extension": [
            {"url": "id", "valueCode": score_id}, {"url": "item", "valueString": "total"},
            {"url": "requires", "valueString": "q"}]}]
    return {"resourceType": "Questionnaire", "id": id_, "url": url, "version": version, "status": "active",
            "item": [group]}


def write(folder: Path, name: str, resource: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(resource), encoding="utf-8")


def test_versions_of_one_url_may_repeat_a_score_id_other_questionnaires_may_not(tmp_path: Path) -> None:
    write(tmp_path, "t.json", form_json("2.0.0", score_id="s"))
    write(tmp_path / "archive", "t-1.0.0.json", form_json("1.0.0", score_id="s"))
    catalog = load_catalog(tmp_path)
    assert [f.version for f in catalog] == ["2.0.0"] and [f.version for f in catalog.archived] == ["1.0.0"]
    write(tmp_path, "u.json", form_json("1.0.0", url=BASE + "u", score_id="s", id_="u"))
    with pytest.raises(CatalogError, match="score id 's' is already defined in"):
        load_catalog(tmp_path)


def test_an_archived_version_newer_than_the_current_one_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "t.json", form_json("1.2.0"))
    write(tmp_path / "archive", "t-1.10.0.json", form_json("1.10.0"))
    with pytest.raises(CatalogError, match=r"archived version 1\.10\.0 of .* is newer than the current 1\.2\.0"):
        load_catalog(tmp_path)


def test_the_same_version_current_and_archived_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "t.json", form_json("1.0.0"))
    write(tmp_path / "archive", "t-1.0.0.json", form_json("1.0.0"))
    with pytest.raises(CatalogError, match=r"\|1\.0\.0 is already loaded from"):
        load_catalog(tmp_path)


def test_an_archived_questionnaire_without_a_current_one_is_reachable_only_by_its_pin(tmp_path: Path) -> None:
    write(tmp_path, "t.json", form_json("1.0.0"))
    write(tmp_path / "archive", "gone-3.0.0.json", form_json("3.0.0", url=BASE + "gone", id_="gone"))
    catalog = load_catalog(tmp_path)
    assert catalog.get(BASE + "gone|3.0.0") is not None
    assert catalog.get(BASE + "gone") is None and "gone" not in catalog.by_key


def test_a_broken_archived_file_stops_loading_like_a_current_one(tmp_path: Path) -> None:
    write(tmp_path, "t.json", form_json("1.0.0"))
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "t-0.9.0.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"t-0\.9\.0\.json: not valid JSON"):
        load_catalog(tmp_path)
