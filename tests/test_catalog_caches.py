"""Caches live on the catalog (and its forms) they depend on: two apps with different catalogs
never see each other's cached state, even where both load different content under the same
Questionnaire url|version (as a test, or a second app in one process, may)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from flask import Flask

from intake.config import PROJECT_ROOT
from intake.core.answers import compute
from intake.core.catalog import Catalog, load_catalog
from intake.fhir.publish import questionnaires
from intake.services import services
from intake.web.forms import page_form_class
from intake.workflow import NO_ANSWERS, enabled_for
from tests.conftest import AppFactory

CHANGED_TEXT = "Changed in the second app's copy"


def _forms(tmp_path: Path, name: str, *, changed: bool) -> Path:
    """A copy of forms/; `changed`: the stress form's first question reworded and its PHQ-9 page
    always shown, under the same url|version."""
    target = tmp_path / name
    shutil.copytree(PROJECT_ROOT / "forms", target)
    if changed:
        path = target / "stress.json"
        resource = json.loads(path.read_text(encoding="utf-8"))
        pss10, phq9 = resource["item"][0], resource["item"][2]
        assert (pss10["item"][1]["linkId"], phq9["linkId"]) == ("pss10-1", "stress-phq9")
        pss10["item"][1]["text"] = CHANGED_TEXT
        del phq9["enableWhen"]
        phq9.pop("enableBehavior", None)
        path.write_text(json.dumps(resource), encoding="utf-8")
    return target


@pytest.fixture
def two_apps(make_app: AppFactory, tmp_path: Path) -> tuple[Flask, Flask]:
    first, second = (make_app(INTAKE_FORMS_DIR=str(_forms(tmp_path, f"forms-{n}", changed=n == 1))) for n in (0, 1))
    return first, second


def _stress(app: Flask) -> tuple[Catalog, object]:
    catalog = services(app).catalog
    return catalog, catalog.by_key["stress"]


def test_two_apps_with_different_catalogs_share_no_cached_state(two_apps: tuple[Flask, Flask]) -> None:
    (first_catalog, first), (second_catalog, second) = (_stress(app) for app in two_apps)
    assert first.canonical == second.canonical  # the same url|version, different content

    # enablement, memoised per form and answers object: the same (shared) empty answers
    shown = [enabled_for(form, NO_ANSWERS) for form in (first, second)]
    assert ["stress-phq9" in links for links in shown] == [False, True]
    assert shown == [frozenset(compute(form, NO_ANSWERS)[1]) for form in (first, second)]  # = uncached

    # the WTForms class of a page, built once per form
    labels = [next(item.text for item in page_form_class(form, form.pages[0]).field_items.values()
                   if item.link_id == "pss10-1") for form in (first, second)]
    assert labels[1] == CHANGED_TEXT != labels[0]
    assert page_form_class(first, first.pages[0]).qform is first

    # the FHIR JSON of every loaded version, built once per catalog
    texts = [questionnaires(catalog) for catalog in (first_catalog, second_catalog)]
    current = f"stress-{first.canonical.rsplit('|', 1)[1]}"  # the loaded version, whichever it is now
    assert [CHANGED_TEXT in texts_[key][0] for texts_ in texts for key in texts_ if key == current] == [
        False,
        True,
    ]


def test_a_view_derived_from_a_catalog_is_built_once_and_kept_on_it(tmp_path: Path) -> None:
    catalogs = [load_catalog(_forms(tmp_path, f"forms-{n}", changed=False)) for n in (0, 1)]
    built: list[Catalog] = []

    def build(catalog: Catalog) -> int:
        built.append(catalog)
        return len(built)

    assert [catalogs[0].derived("count", build), catalogs[0].derived("count", build)] == [1, 1]
    assert catalogs[1].derived("count", build) == 2  # another catalog: built for it, not shared
    assert built == catalogs
