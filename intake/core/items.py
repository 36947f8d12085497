"""A read-only view of a Questionnaire that the engine walks instead of raw JSON.

Built once per Questionnaire version (the catalog caches it), so page building, enablement and
validation never re-parse extensions per request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from intake.core import extensions as ext
from intake.core.fhirpath import weight_table
from intake.core.item_types import is_question
from intake.core.translations import translation

# A calculatedExpression that only copies another item's answer: the question is asked once and
# carried forward (PHQ-4's items into PHQ-9 and GAD-7).
_COPY_EXPRESSION = re.compile(r"%resource\.repeat\(item\)\.where\(linkId='([^']+)'\)\.answer\.value")

# Where an item's picture may come from: this service's own static files, never another site
# (no third-party request from a patient's page, and the CSP allows only 'self' images).
MEDIA_PREFIX = "/static/"
_MEDIA_URL = re.compile(r"/static/[A-Za-z0-9_./-]+")
MEDIA_TYPES = frozenset({"image/svg+xml", "image/png", "image/jpeg", "image/webp"})

# A date's precision, read from its entryFormat's shape (`YYYY`, `YYYY-MM`; `AAAA-MM` in Spanish):
# the boxes a page shows, in the order a patient in the GOV.UK date pattern fills them.
DATE_PARTS = {1: ("year",), 2: ("month", "year")}
FULL_DATE = ("day", "month", "year")


@dataclass(frozen=True)
class Media:
    """An item's picture (SDC `itemMedia`): a same-origin URL, its type and its alt text."""

    url: str
    content_type: str
    alt: str


def media_problem(attachment: Any) -> str | None:
    """Why an itemMedia valueAttachment cannot be shown (None: it can): only an image of ours,
    under /static/, with a title to use as its alt text."""
    if not isinstance(attachment, dict):
        return "itemMedia needs a valueAttachment"
    url, kind, title = attachment.get("url"), attachment.get("contentType"), attachment.get("title")
    if not isinstance(url, str) or not _MEDIA_URL.fullmatch(url) or ".." in url:
        return f"itemMedia url {url!r} is not a file of this service under {MEDIA_PREFIX}"
    if kind not in MEDIA_TYPES:
        return f"itemMedia contentType {kind!r} is not one of {sorted(MEDIA_TYPES)}"
    if not isinstance(title, str) or not title.strip():
        return "itemMedia needs a title: it is the picture's alt text"
    return None


def read_media(raw: dict[str, Any]) -> Media | None:
    """The item's picture when it passes `media_problem`; anything else is never rendered."""
    attachment = ext.value(raw, ext.ITEM_MEDIA)
    if media_problem(attachment) is not None:
        return None
    return Media(url=attachment["url"], content_type=attachment["contentType"], alt=attachment["title"].strip())


def is_exclusive(option: dict[str, Any]) -> bool:
    """An answerOption marked `questionnaire-optionExclusive`: chosen alone or not at all
    ("None of these" beside a list of relatives)."""
    return ext.value(option, ext.OPTION_EXCLUSIVE) is True


@dataclass(frozen=True)
class Item:
    """One Questionnaire item with the extensions the engine understands already read."""

    link_id: str
    type: str
    text: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    prefix: str | None = None
    required: bool = False
    repeats: bool = False
    read_only: bool = False
    hidden: bool = False
    max_length: int | None = None
    control: str | None = None
    options: tuple[dict[str, Any], ...] = ()
    initial: tuple[dict[str, Any], ...] = ()
    enable_when: tuple[dict[str, Any], ...] = ()
    enable_behavior: str = "all"
    enable_expression: str | None = None
    calculated_expression: str | None = None
    variables: tuple[tuple[str, str], ...] = ()
    min_value: dict[str, Any] | None = None
    max_value: dict[str, Any] | None = None
    regex: str | None = None
    entry_format: str | None = None
    unit_options: tuple[dict[str, Any], ...] = ()
    unit: dict[str, Any] | None = None
    scored: bool = False
    score_criterion: str | None = None
    help_text: str | None = None
    required_message: str | None = None
    media: Media | None = None
    children: tuple[Item, ...] = ()
    parent: str | None = None

    @property
    def is_question(self) -> bool:
        """Takes answers: not a group or a display (item_types)."""
        return is_question(self.type)

    @property
    def copied_from(self) -> str | None:
        """The linkId whose answer this item carries forward, when its calculatedExpression only
        copies that answer (the patient changes it where it was asked)."""
        match = _COPY_EXPRESSION.fullmatch(self.calculated_expression or "")
        return match.group(1) if match else None

    def required_message_in(self, lang: str | None) -> str | None:
        """`required_message` in `lang` when the Questionnaire translates it, else as written;
        None when the form gives none (the page then says the generic "Select an answer")."""
        if not self.required_message:
            return None
        for extension in ext.find(self.raw, ext.REQUIRED_MESSAGE):
            return (translation(extension, "valueString", lang) if lang else None) or self.required_message
        return self.required_message

    @property
    def date_parts(self) -> tuple[str, ...]:
        """The boxes of a date answer: year; month and year; or day, month and year (no entryFormat,
        or one with a day). Judged by the format's shape, so a translated `AAAA-MM` reads the same."""
        parts = [p for p in re.split(r"[-/ .]", (self.entry_format or "").strip()) if p]
        return DATE_PARTS.get(len(parts), FULL_DATE) if self.entry_format else FULL_DATE

    @property
    def exclusive_options(self) -> tuple[dict[str, Any], ...]:
        """The options that must be chosen alone (`questionnaire-optionExclusive`)."""
        return tuple(o for o in self.options if is_exclusive(o))

    def walk(self) -> list[Item]:
        """This item and all its descendants in document order."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


@dataclass(frozen=True)
class Page:
    """One patient page: a top-level group, or a run of top-level questions gathered together."""

    key: str
    title: str
    items: tuple[Item, ...]
    group: Item | None

    def walk(self) -> list[Item]:
        out: list[Item] = []
        for item in self.items:
            out.extend(item.walk())
        return out


@dataclass(frozen=True)
class Form:
    """A loaded, linted Questionnaire: the resource plus its item index and pages."""

    resource: dict[str, Any] = field(repr=False)
    source: str
    url: str
    version: str | None
    title: str
    items: tuple[Item, ...]
    by_link: dict[str, Item] = field(repr=False)
    pages: tuple[Page, ...]
    variables: tuple[tuple[str, str], ...] = ()
    calculated: tuple[Item, ...] = ()
    has_enable_expressions: bool = False
    # No calculatedExpression mentions another calculated item, so one pass computes them all.
    calculations_independent: bool = True
    weighted_options: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)
    weights: dict[str, dict[tuple[Any, Any], Any]] = field(default_factory=dict, repr=False)
    # What is derived from this form alone (its constraints, enablement per answers, a page's
    # form class), kept on it so it lives and dies with the catalog that holds the form. Not a
    # process global keyed by id(form) or url|version: two apps may load different content
    # under the same url|version, and an id is reused once its object is gone.
    memo: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def canonical(self) -> str:
        """`url|version` as a QuestionnaireResponse pins it (just `url` when unversioned)."""
        return f"{self.url}|{self.version}" if self.version else self.url

    @property
    def key(self) -> str:
        """The short name used in page URLs: the resource id, else the last url segment."""
        return str(self.resource.get("id") or self.url.rstrip("/").rsplit("/", 1)[-1])

    def options_by_link(self) -> dict[str, list[dict[str, Any]]]:
        return self.weighted_options

    def walk(self) -> list[Item]:
        out: list[Item] = []
        for item in self.items:
            out.extend(item.walk())
        return out


def build_item(raw: dict[str, Any], parent: str | None = None) -> Item:
    """Read one raw item (recursively) into an Item."""
    link_id = raw["linkId"]
    children = tuple(build_item(child, link_id) for child in raw.get("item") or [])
    return Item(
        link_id=link_id,
        type=raw["type"],
        text=raw.get("text") or "",
        raw=raw,
        prefix=raw.get("prefix"),
        required=bool(raw.get("required")),
        repeats=bool(raw.get("repeats")),
        read_only=bool(raw.get("readOnly")),
        hidden=bool(ext.value(raw, ext.HIDDEN)),
        max_length=raw.get("maxLength"),
        control=ext.item_control(raw),
        options=tuple(raw.get("answerOption") or ()),
        initial=tuple(raw.get("initial") or ()),
        enable_when=tuple(raw.get("enableWhen") or ()),
        enable_behavior=raw.get("enableBehavior") or "all",
        enable_expression=ext.expression(raw, ext.ENABLE_WHEN_EXPRESSION),
        calculated_expression=ext.expression(raw, ext.CALCULATED_EXPRESSION),
        variables=ext.variables(raw),
        min_value=ext.typed_value(raw, ext.MIN_VALUE),
        max_value=ext.typed_value(raw, ext.MAX_VALUE),
        regex=ext.value(raw, ext.REGEX),
        entry_format=ext.value(raw, ext.ENTRY_FORMAT),
        unit_options=tuple(ext.values(raw, ext.UNIT_OPTION)),
        unit=ext.value(raw, ext.UNIT),
        scored=bool(ext.value(raw, ext.SCORED)),
        score_criterion=ext.expression(raw, ext.SCORE_CRITERION),
        help_text=_help_text(raw),
        required_message=_required_message(raw),
        media=read_media(raw),
        children=children,
        parent=parent,
    )


def _required_message(raw: dict[str, Any]) -> str | None:
    """The `requiredMessage` extension's text (base language); None when absent or empty."""
    text = ext.value(raw, ext.REQUIRED_MESSAGE)
    return text if isinstance(text, str) and text.strip() else None


def _help_text(raw: dict[str, Any]) -> str | None:
    """SDC help: a display child with itemControl `help` becomes the question's hint."""
    for child in raw.get("item") or []:
        if child.get("type") == "display" and ext.item_control(child) == "help":
            text: str | None = child.get("text")
            return text
    return None


def build_pages(items: tuple[Item, ...]) -> tuple[Page, ...]:
    """One page per top-level group; consecutive top-level questions share one page.

    Questionnaires from the LHC Form Builder often have no top-level groups at all; they become
    one page rather than one page per question.
    """
    pages: list[Page] = []
    loose: list[Item] = []

    def flush() -> None:
        if loose:
            first = loose[0].link_id
            pages.append(Page(key=_page_key(first), title="", items=tuple(loose), group=None))
            loose.clear()

    for item in items:
        if item.type == "group":
            flush()
            pages.append(Page(key=_page_key(item.link_id), title=item.text, items=(item,), group=item))
        else:
            loose.append(item)
    flush()
    return tuple(pages)


def _page_key(link_id: str) -> str:
    """A URL-safe page key derived from the first linkId (LHC linkIds look like `/44250-9`)."""
    safe = "".join(c if c.isalnum() or c in "-." else "-" for c in link_id).strip("-")
    return safe or "page"


def _independent(by_link: dict[str, Item]) -> bool:
    calculated = [i for i in by_link.values() if i.calculated_expression]
    return not any(
        f"'{other.link_id}'" in (item.calculated_expression or "") for item in calculated for other in calculated
        if other is not item
    ) and not any(v for i in by_link.values() for v in i.variables)


def build_form(resource: dict[str, Any], source: str) -> Form:
    """Build the Form view; the resource must already have passed the lint."""
    items = tuple(build_item(raw) for raw in resource.get("item") or [])
    by_link: dict[str, Item] = {}
    for top in items:
        for item in top.walk():
            by_link[item.link_id] = item
    options = {i.link_id: list(i.options) for i in by_link.values() if i.options}
    return Form(
        resource=resource,
        source=source,
        url=resource["url"],
        version=resource.get("version"),
        title=resource.get("title") or resource.get("name") or resource["url"],
        items=items,
        by_link=by_link,
        pages=build_pages(items),
        variables=ext.variables(resource),
        calculated=tuple(i for i in by_link.values() if i.calculated_expression),
        has_enable_expressions=any(i.enable_expression for i in by_link.values()),
        calculations_independent=_independent(by_link),
        weighted_options=options,
        weights=weight_table(options),
    )
