"""Load `forms/*.json`, lint each, and index the result by `url|version`.

A Questionnaire that fails the lint stops start-up (CatalogError names file, linkId and
problem): a half-loaded catalog would show patients a form the engine cannot score.

`forms/archive/*.json` holds earlier versions, kept so that an intake pinned to one (a patient
mid-way when the forms change, a stored response re-read) still resolves, renders and scores.
They are pinned-only: `get("url|version")` finds them, but new intakes, `by_url`, `by_key` and
iteration see only the current forms.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar, cast

from intake.core import extensions as ext
from intake.core.items import Form, build_form
from intake.core.lint import LintIssue, lint
from intake.core.translations import base_language, localize


class CatalogError(Exception):
    """A Questionnaire file could not be loaded; the message names file, linkId and problem."""


ARCHIVE = "archive"
T = TypeVar("T")


@dataclass(frozen=True)
class Catalog:
    """Loaded Questionnaires, indexed by `url|version` and by `url` (latest loaded version).

    `forms` are the current Questionnaires (what new intakes use and what iteration yields);
    `archived` are earlier versions reachable only by their `url|version` (`get`).
    """

    forms: tuple[Form, ...]
    by_canonical: dict[str, Form] = field(repr=False)
    by_url: dict[str, Form] = field(repr=False)
    by_key: dict[str, Form] = field(repr=False)
    archived: tuple[Form, ...] = ()
    # (canonical, language) -> the Form rebuilt from its translations; filled on first use.
    localized_forms: dict[tuple[str, str], Form] = field(default_factory=dict, repr=False, compare=False)
    # name -> a view other layers derive from the whole catalog (`derived`), e.g. the FHIR JSON
    # of every version; per-form results are on each Form (`Form.memo`).
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def derived(self, name: str, build: Callable[[Catalog], T]) -> T:
        """`build(self)`, built on first use and kept on this catalog, so it goes with it.

        Not a process global keyed by `id(catalog)`: a test or a second app with other forms
        must never be served this catalog's view. Two threads may both build it the first time;
        `build` must be pure, so either result will do.
        """
        if name not in self.memo:
            self.memo[name] = build(self)
        return cast(T, self.memo[name])

    def localized(self, form: Form, lang: str) -> Form:
        """`form` as the patient reads it in `lang` (its own language: the form itself).

        Same linkIds, pages and options; only the words differ. Built once per version and
        language, so page views pay nothing for translation.
        """
        if lang == base_language(form.resource):
            return form
        key = (form.canonical, lang)
        hit = self.localized_forms.get(key)
        if hit is None:
            hit = build_form(localize(form.resource, lang), form.source)
            self.localized_forms[key] = hit
        return hit

    def get(self, canonical: str) -> Form | None:
        """Resolve `url|version`, or a bare `url` to the loaded version."""
        if canonical in self.by_canonical:
            return self.by_canonical[canonical]
        url, _, version = canonical.partition("|")
        if not version:
            return self.by_url.get(url)
        return None

    def __iter__(self) -> Iterator[Form]:
        return iter(self.forms)

    @property
    def versions(self) -> tuple[Form, ...]:
        """Every loaded version, current and archived (e.g. to serve each as a FHIR resource)."""
        return self.forms + self.archived


def read_json(path: Path) -> Any:
    return _parse(_read_text(path), path)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot be read: {exc}") from exc


def _parse(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{path}: not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def lint_file(path: Path) -> list[LintIssue]:
    """Lint one file; an unreadable file is a single error issue rather than an exception."""
    try:
        resource = read_json(path)
    except CatalogError as exc:
        return [LintIssue("error", None, str(exc).split(": ", 1)[-1])]
    return lint(resource)


@lru_cache(maxsize=64)
def _lint_errors(text: str) -> tuple[LintIssue, ...]:
    """The lint's errors for a file's exact text.

    Linting is a pure function of the text and four fifths of loading a form (the fhir.resources
    validation): every app a process makes (each test, each CLI command in a test) would pay it
    again for the same files. Keyed by the whole text, so an edited file is linted afresh.
    """
    return tuple(i for i in lint(json.loads(text)) if i.severity == "error")


def load_form(path: Path) -> Form:
    text = _read_text(path)
    resource = _parse(text, path)
    errors = _lint_errors(text)
    if errors:
        raise CatalogError("\n".join(i.format(str(path)) for i in errors))
    return build_form(resource, str(path))


def build_catalog(forms: list[Form], archived: list[Form] | None = None) -> Catalog:
    """Index `forms` (current) and `archived` (earlier versions, pinned-only).

    A score id belongs to one Questionnaire url: versions of the same url may repeat it (they
    are the same score), other Questionnaires may not.
    """
    archived = list(archived or [])
    by_canonical: dict[str, Form] = {}
    by_url: dict[str, Form] = {}
    by_key: dict[str, Form] = {}
    score_ids: dict[str, Form] = {}
    for form in [*forms, *archived]:
        for score_id in _score_ids(form):
            owner = score_ids.setdefault(score_id, form)
            if owner.url != form.url:
                raise CatalogError(f"{form.source}: score id {score_id!r} is already defined in {owner.source}")
        if form.canonical in by_canonical:
            raise CatalogError(
                f"{form.source}: {form.canonical} is already loaded from {by_canonical[form.canonical].source}"
            )
        by_canonical[form.canonical] = form
    for form in forms:
        by_url[form.url] = form
        by_key[form.key] = form
    for old in archived:
        current = by_url.get(old.url)
        if current is not None and _newer(old.version, current.version):
            raise CatalogError(f"{old.source}: archived version {old.version} of {old.url} is newer than the current "
                               f"{current.version} ({current.source})")
    return Catalog(forms=tuple(forms), by_canonical=by_canonical, by_url=by_url, by_key=by_key,
                   archived=tuple(archived))


def _newer(version: str | None, than: str | None) -> bool:
    """`version` > `than` by dotted numeric parts; False when either is not of that shape."""
    try:
        left = tuple(int(part) for part in str(version).split("."))
        right = tuple(int(part) for part in str(than).split("."))
    except ValueError:
        return False
    return left > right


def _score_ids(form: Form) -> list[str]:
    """Score ids are shared by every output (CLI, Observations, summary): one Questionnaire url each."""
    out = []
    for item in form.walk():
        for extension in ext.find(item.raw, ext.PROJECT_EXT + "score"):
            for sub in extension.get("extension") or []:
                if sub.get("url") == "id" and sub.get("valueCode"):
                    out.append(sub["valueCode"])
    return out


def load_catalog(directory: Path) -> Catalog:
    """Every `*.json` in `directory` (current) and in `directory/archive` (earlier versions,
    pinned-only), each sorted by name; all errors of all files in one message."""
    paths = sorted(Path(directory).glob("*.json"))
    if not paths:
        raise CatalogError(f"{directory}: no Questionnaire files (*.json) found")
    archive_paths = sorted((Path(directory) / ARCHIVE).glob("*.json"))
    forms: list[Form] = []
    archived: list[Form] = []
    problems: list[str] = []
    for target, group in ((forms, paths), (archived, archive_paths)):
        for path in group:
            try:
                target.append(load_form(path))
            except CatalogError as exc:
                problems.append(str(exc))
    if problems:
        raise CatalogError("\n".join(problems))
    return build_catalog(forms, archived)
