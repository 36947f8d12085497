"""Questionnaire page -> WTForms form class, and form data <-> FHIR answers.

WTForms parses and validates; Jinja macros render (WTForms widget rendering cost 11 of 16 ms a
page when measured). A form class is built once per Questionnaire version and page, then cached.
Which items are required depends on enablement, which depends on the answers just posted, so
"required" is a validator that asks the form for the enabled set the view computed.

What a page is judged against beyond its fields is given per request, never cached with the
class: the patient's birth date (`%birthDate` date limits), today (read at validation), and
the questionnaire's other answers (for `questionnaire-constraint` rules that look beyond the
page). Each has a safe default: no birth date means no lower limit.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from flask_babel import get_locale
from flask_babel import gettext as _
from wtforms import Field, Form, StringField, TextAreaField
from wtforms.utils import unset_value
from wtforms.validators import StopValidation, ValidationError

from intake.core import item_types
from intake.core.answers import compute, nest
from intake.core.display import display_answer
from intake.core.display import plain_number as _plain_number
from intake.core.enablement import Answers
from intake.core.items import Form as QForm
from intake.core.items import Item, Page
from intake.core.validation import (
    CONTROL_CHARS,
    DATE_RE,
    INT32,
    Constraint,
    Issue,
    Limit,
    _real_date,
    check_constraints,
    constraints,
    current_date,
    date_limits,
    outside,
)

TRUE_FALSE = [("true", "Yes"), ("false", "No")]


# --- fields --------------------------------------------------------------------------------


def _one_value(field: Field, valuelist: list[Any]) -> None:
    """The stripped single string posted for a one-answer field.

    Several values (`a=1&a=2`) or a file are refused with a message (kept by the enablement
    gate while the item is enabled) instead of silently keeping the first one.
    """
    field.raw_data = valuelist
    field.data = valuelist[0].strip() if valuelist and isinstance(valuelist[0], str) else None
    if len(valuelist) > 1:
        raise ValueError(_("Give only one answer"))
    if valuelist and not isinstance(valuelist[0], str):
        raise ValueError(_("Type your answer; files cannot be sent here"))


class TextInput(StringField):
    """A single-line answer; data stays the stripped string the patient typed."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        _one_value(self, valuelist)


class LongText(TextAreaField):
    def process_formdata(self, valuelist: list[Any]) -> None:
        _one_value(self, valuelist)


class ChoiceInput(TextInput):
    """One option out of `choices` (radio buttons or a drop-down); unknown values are refused."""

    def __init__(self, label: str = "", choices: list[tuple[str, str]] | None = None, **kwargs: Any):
        super().__init__(label, **kwargs)
        self.choices = choices or []

    def pre_validate(self, form: Any) -> None:
        # The posted value is kept (not reset to None): the view validates twice, and a reset
        # would let the second pass accept a tampered code as "no answer".
        if self.data and self.data not in {key for key, _ in self.choices}:
            raise StopValidation(_("Select one of the options shown"))


class MultiChoiceInput(Field):
    """Check boxes: a list of option keys; an unknown value is refused rather than dropped.

    `exclusive`: the keys of options that must be ticked alone (`questionnaire-optionExclusive`,
    "None of these"); ticked with another, the page is refused, with or without JavaScript.
    """

    def __init__(self, label: str = "", choices: list[tuple[str, str]] | None = None,
                 exclusive: tuple[str, ...] = (), link_id: str = "", **kwargs: Any):
        super().__init__(label, **kwargs)
        self.choices = choices or []
        self.exclusive = exclusive
        self.link_id = link_id

    def process_data(self, value: Any) -> None:
        self.data = list(value) if isinstance(value, (list, tuple)) else []

    def process_formdata(self, valuelist: list[Any]) -> None:
        if len(valuelist) > len(self.choices):  # nothing kept: a page shows each box once
            self.data = []
            raise ValueError(_("Select at most %(count)s answers: each box once", count=len(self.choices)))
        self.data = [v for v in valuelist if isinstance(v, str)]
        if len(self.data) != len(valuelist):
            raise ValueError(_("Select only the options shown"))  # a file
        if len(set(self.data)) != len(self.data):
            raise ValueError(_("Select each answer only once"))

    def pre_validate(self, form: Any) -> None:
        allowed = {key for key, _ in self.choices or []}
        if any(value not in allowed for value in self.data or []):
            raise StopValidation(_("Select only the options shown"))
        chosen = [value for value in self.data or [] if value in self.exclusive]
        if chosen and len(self.data or []) > 1:
            raise StopValidation(exclusive_message(self._label(form, chosen[0])))

    def _label(self, form: Any, key: str) -> str:
        """The option's words as the patient reads them: from the page's localized form when
        the view gave one (`PageForm.shown_form`), else the Questionnaire's own."""
        shown = getattr(form, "shown_form", None)
        words = option_words(shown, self.link_id, key) if shown is not None else None
        return words or dict(self.choices).get(key, key)


def option_words(qform: QForm, link_id: str, key: str) -> str | None:
    """The label of the option `key` of question `link_id` in `qform` (as localized), if it has one."""
    item = qform.by_link.get(link_id)
    return next((option_label(o) for o in (item.options if item is not None else ()) if option_key(o) == key), None)


def exclusive_message(label: str) -> str:
    """The error for an exclusive option ticked with others, naming the option as shown."""
    return _("Select '%(option)s' or the other answers, not both", option=label)


class DateInput(Field):
    """The GOV.UK date pattern: separate Day, Month and Year boxes (those `parts` the item's
    precision needs), posted as `<name>-day`, `<name>-month`, `<name>-year`.

    `data` is the FHIR date text (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`) or None; `parts` keeps what
    was typed in each box, shown again on an error; `error_part` names the box an error is about
    (the error summary links to it). A client posting the whole date as `<name>` (the FHIR text)
    is read as before.
    """

    def __init__(self, label: str = "", parts: tuple[str, ...] = ("day", "month", "year"), **kwargs: Any):
        super().__init__(label, **kwargs)
        self.part_names = parts
        self.parts: dict[str, str] = {p: "" for p in parts}
        self.error_part: str | None = None
        self.data: str | None = None

    def process(self, formdata: Any, data: Any = unset_value, extra_filters: Any = None) -> None:
        self.parts = {p: "" for p in self.part_names}
        self.error_part = None
        super().process(formdata, data, extra_filters)
        boxes = [f"{self.name}-{p}" for p in self.part_names]
        if formdata is not None and self.name not in formdata and any(b in formdata for b in boxes):
            try:
                self._from_boxes(formdata)
            except ValueError as exc:
                self.data = None
                self.process_errors.append(exc.args[0])

    def process_data(self, value: Any) -> None:
        self.data = value if isinstance(value, str) and value else None
        self._split()

    def process_formdata(self, valuelist: list[Any]) -> None:
        _one_value(self, valuelist)
        self._split()

    def _split(self) -> None:
        """The boxes of a stored (or whole posted) date, months and days without leading zeros.
        Whole text that is no date is kept in the first box, so the page shows it again."""
        if self.data and DATE_RE.match(self.data):
            values = dict(zip(("year", "month", "day"), self.data.split("-"), strict=False))
            self.parts = {p: values.get(p, "").lstrip("0") if p != "year" else values.get(p, "")
                          for p in self.part_names}
        elif self.data:
            self.parts = {p: "" for p in self.part_names} | {self.part_names[0]: self.data}

    def _from_boxes(self, formdata: Any) -> None:
        for part in self.part_names:
            values = formdata.getlist(f"{self.name}-{part}")
            if len(values) > 1:
                self.error_part = part
                raise ValueError(_("Give only one answer"))
            if values and not isinstance(values[0], str):
                self.error_part = part
                raise ValueError(_("Type your answer; files cannot be sent here"))
            self.parts[part] = values[0].strip() if values else ""
        typed = [p for p in self.part_names if self.parts[p]]
        if not typed:
            self.data = None
            return
        missing = [p for p in self.part_names if not self.parts[p]]
        if missing:
            self.error_part = missing[0]
            raise ValueError(_missing_part_message(missing))
        for part in self.part_names:
            if not self.parts[part].isdigit() or not self.parts[part].isascii():
                self.error_part = part
                raise ValueError(_NOT_A_NUMBER[part]())
        year, month, day = self.parts.get("year", ""), self.parts.get("month"), self.parts.get("day")
        if len(year) != 4:
            self.error_part = "year"
            raise ValueError(_("Year must include 4 numbers"))
        if day is not None and not 1 <= int(day) <= 31:
            self.error_part = "day"
            raise ValueError(_("Day must be between 1 and 31"))
        if month is not None and not 1 <= int(month) <= 12:
            self.error_part = "month"
            raise ValueError(_("Month must be between 1 and 12"))
        text = year + (f"-{int(month):02d}" if month is not None else "") + (f"-{int(day):02d}" if day else "")
        if not _real_date(text):
            self.error_part = self.part_names[0]
            raise ValueError(_("Date must be a real date"))
        self.data = text


_NOT_A_NUMBER: dict[str, Callable[[], str]] = {
    "day": lambda: _("Day must be a number"),
    "month": lambda: _("Month must be a number"),
    "year": lambda: _("Year must be a number"),
}


def _missing_part_message(missing: list[str]) -> str:
    """GOV.UK wording: what the date must include, naming the empty boxes."""
    key = tuple(missing)
    if key == ("day",):
        return _("Date must include a day")
    if key == ("month",):
        return _("Date must include a month")
    if key == ("year",):
        return _("Date must include a year")
    if key == ("day", "month"):
        return _("Date must include a day and month")
    if key == ("day", "year"):
        return _("Date must include a day and year")
    return _("Date must include a month and year")


# --- page form ------------------------------------------------------------------------------


class PageForm(Form):
    """Base for generated page forms; `enabled` is set by the view before validate().

    A plain WTForms form: the view checks the CSRF token with Flask-WTF's `validate_csrf`
    once, rather than having every form instance sign a fresh token it will not use.

    Per request (keyword arguments, or attributes set before validate()):
    `birth_date` — the patient's (`date` or `YYYY-MM-DD`; None: unknown, no lower limit);
    `today` — pins `today()` (None: `current_date()`, read at each validation);
    `answers` — the questionnaire's answers so far (other pages' included), which
    `questionnaire-constraint` rules read; without them, this page's answers alone.
    """

    field_items: ClassVar[dict[str, Item]] = {}  # set on each generated subclass (see below)
    other_fields: ClassVar[dict[str, str]] = {}
    unit_fields: ClassVar[dict[str, str]] = {}
    qform: QForm | None = None
    page: Page | None = None
    enabled: set[str]
    birth_date: date | str | None = None
    today: date | None = None
    answers: Answers | None = None
    # The page's Questionnaire in the patient's language (messages that quote an option's words).
    shown_form: QForm | None = None

    def __init__(self, formdata: Any = None, *args: Any, birth_date: date | str | None = None,
                 today: date | None = None, answers: Answers | None = None, **kwargs: Any) -> None:
        super().__init__(formdata, *args, **kwargs)
        self.birth_date, self.today, self.answers = birth_date, today, answers
        self._today: date | None = None

    def question_fields(self) -> list[tuple[Item, Field]]:
        return [(item, self[name]) for name, item in self.field_items.items()]

    def current_today(self) -> date:
        """`today`, or the date read when this validation started (one date for the page)."""
        if self.today is not None:
            return self.today
        if self._today is None:
            self._today = current_date()
        return self._today

    def limits(self, item: Item) -> list[Limit]:
        return date_limits(item, birth_date=self.birth_date, today=self.current_today())

    def validate(self, extra_validators: Any = None) -> bool:
        self._today = None  # "today" is read afresh for each validation, never kept
        valid = super().validate(extra_validators)
        return self._check_constraints() and valid

    # --- questionnaire-constraint ------------------------------------------------------------

    def _check_constraints(self) -> bool:
        """Refuse the page when a constraint of severity `error` that this page can fix is false;
        its `human` text, in the page's language, goes beside the question it names."""
        if self.qform is None:
            return True
        targets = {c: name for c in constraints(self.qform) if c.severity == "error" and (name := self._target(c))}
        if not targets:
            return True
        ok = True
        lang = _language()
        for constraint, holds in check_constraints(self.qform, self._response(), birth_date=self.birth_date,
                                                   only=list(targets)):
            if holds is False:
                ok = False
                errors = self[targets[constraint]].errors
                if not errors:
                    errors.append(constraint.message(lang))
        return ok

    def _target(self, constraint: Constraint) -> str | None:
        """The field a constraint's message goes beside: the first `location` asked on this
        page, else (no location on this page) the first question of its group on this page.
        None when the page cannot fix it (a Questionnaire-level rule about other pages: strict
        validation at submit checks those)."""
        enabled = getattr(self, "enabled", None)
        names = {item.link_id: name for name, item in self.field_items.items()
                 if enabled is None or item.link_id in enabled}
        for location in constraint.locations:
            if location in names:
                return names[location]
        if constraint.context is None or self.qform is None:
            return None
        group = self.qform.by_link.get(constraint.context)
        if group is None:
            return None
        return next((names[i.link_id] for i in group.walk() if i.link_id in names), None)

    def _response(self) -> dict[str, Any]:
        """The questionnaire response as it would be with this page saved (enabled answers only)."""
        assert self.qform is not None
        merged = dict(self.answers or {})
        merged.update(page_answers(self))
        enabled = getattr(self, "enabled", None)
        if self.answers is not None or enabled is None:
            kept, enabled = compute(self.qform, merged)
        else:  # this page's answers only: the view's enabled set knows about the other pages
            kept = {k: v for k, v in merged.items() if k in enabled and v}
        return {"resourceType": "QuestionnaireResponse", "status": "in-progress",
                "item": nest(self.qform, kept, set(enabled))}


def _language() -> str | None:
    """The page's language (Flask-Babel's locale), None outside a request."""
    try:
        locale = get_locale()
    except RuntimeError:
        return None
    return locale.language if locale is not None else None


def field_name(link_id: str) -> str:
    """An HTML-safe field name/id for a linkId (LHC linkIds look like `/44250-9`)."""
    return "q-" + re.sub(r"[^A-Za-z0-9_-]", "_", link_id)


def _message_for(item: Item) -> str:
    """The question's own message when the Questionnaire gives one (in the page's language),
    else the generic one for its kind of answer."""
    own = item.required_message_in(_language())
    if own:
        return own
    if item.type == "date":
        return _("Enter a year") if item.date_parts == ("year",) else _("Enter a date")
    if item_types.row(item.type).picks:
        return _("Select an answer") if not item.repeats else _("Select at least one answer")
    return _("Enter an answer")


class RequiredWhenEnabled:
    """Required only while the item is enabled; a disabled item's input is ignored altogether."""

    def __init__(self, item: Item) -> None:
        self.item = item

    def __call__(self, form: PageForm, field: Field) -> None:
        if self.item.link_id not in getattr(form, "enabled", set()):
            field.errors[:] = []
            raise StopValidation()
        if field.process_errors:
            raise StopValidation()  # keep the message (several values, a file) already in errors
        if self.item.required and not field.data:
            field.errors[:] = []
            raise StopValidation(_message_for(self.item))
        if not field.data:
            field.errors[:] = []
            raise StopValidation()


def _check_text(item: Item) -> Callable[[PageForm, Field], None]:
    def check(form: PageForm, field: Field) -> None:
        value = field.data or ""
        if CONTROL_CHARS.search(value):
            raise ValidationError(_("Remove the special characters from your answer"))
        limit = item.max_length or 10_000
        if len(value) > limit:
            raise ValidationError(_("Answer must be %(limit)s characters or fewer", limit=limit))
        if item.regex and not re.fullmatch(item.regex, value):
            raise ValidationError(_("Enter your answer in the format shown"))

    return check


def _parse_number(item: Item, raw: str) -> Decimal:
    text = raw.replace(",", ".").strip()
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValidationError(
            _("Enter a whole number, like 3") if item.type == "integer" else _("Enter a number, like 2 or 1.5")
        ) from None
    if not number.is_finite():
        raise ValidationError(_("Enter a number, like 2 or 1.5"))
    if item.type == "integer" and number != number.to_integral_value():
        raise ValidationError(_("Enter a whole number, like 3"))
    return number


def _bound(spec: dict[str, Any] | None) -> Any:
    if not spec:
        return None
    value = next(iter(spec.values()))
    return value.get("value") if isinstance(value, dict) else value


def _check_number(item: Item) -> Callable[[PageForm, Field], None]:
    def check(form: PageForm, field: Field) -> None:
        number = _parse_number(item, field.data)
        if item.type == "integer" and not (INT32[0] <= number <= INT32[1]):
            raise ValidationError(_("Enter a smaller number"))
        low, high = _bound(item.min_value), _bound(item.max_value)
        if item.type != "integer" and not math.isfinite(float(number)):
            raise ValidationError(_("Enter a smaller number"))
        if low is not None and number < Decimal(str(low)):
            raise ValidationError(_("Enter a number of %(low)s or more", low=low))
        if high is not None and number > Decimal(str(high)):
            raise ValidationError(_("Enter a number of %(high)s or less", high=high))

    return check


def _limit_message(limit: Limit) -> str:
    """GOV.UK date-pattern wording: what the date must be, in plain words."""
    if limit.source == "today":
        return _("The date must be today or in the past")
    if limit.source == "birthDate":
        return _("The date cannot be before your date of birth")
    if limit.is_min:
        return _("Enter a date on or after %(low)s", low=limit.value)
    return _("Enter a date on or before %(high)s", high=limit.value)


def patient_message(qform: QForm, issue: Issue, lang: str | None = None, shown: QForm | None = None) -> str | None:
    """A strict-validation issue (submit) in the patient's words, when a rule of the
    Questionnaire gives them: a constraint's `human` in `lang`, a date limit's message
    (in the request's language), or an exclusive option given with others (its words from
    `shown`, the form in the patient's language); None for the other issues."""
    rule = issue.rule or ""
    if rule.startswith("exclusive:"):
        key = rule.partition(":")[2]
        return exclusive_message(option_words(shown or qform, issue.link_id or "", key) or key)
    if rule.startswith("constraint:"):
        key = rule.partition(":")[2]
        found = next((c for c in constraints(qform) if c.key == key), None)
        return found.message(lang or _language()) if found else None
    if rule.startswith("limit:"):
        source = rule.partition(":")[2]
        if source in ("today", "birthDate"):
            return _limit_message(Limit("", source == "birthDate", source))
    return None


def _check_limits(form: PageForm, item: Item, value: str) -> None:
    """minValue/maxValue, fixed or given by an expression (`today()`, `%birthDate`), compared at
    the precision of the answer: a year-only answer in the year of birth is not before it."""
    for limit in form.limits(item):
        if outside(value, limit):
            raise ValidationError(_limit_message(limit))


def _date_format_message(item: Item) -> str:
    """What to type, after the item's entry format: a year (`YYYY`), a month (`YYYY-MM`), a date."""
    entry = (item.entry_format or "").strip().upper()
    if entry == "YYYY":
        return _("Enter a year, like 2019")
    if entry:
        return _("Enter a real date, like 2024-05 (year and month)")
    return _("Enter a real date")


def _check_date(item: Item) -> Callable[[PageForm, Field], None]:
    def check(form: PageForm, field: Field) -> None:
        value = field.data
        if not (DATE_RE.match(value) and _real_date(value)):
            raise ValidationError(_date_format_message(item))
        _check_limits(form, item, value)

    return check


def _check_datetime(item: Item) -> Callable[[PageForm, Field], None]:
    def check(form: PageForm, field: Field) -> None:
        value = field.data or ""
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?", value) or not _real_date(value[:10]):
            raise ValidationError(_("Enter a date and time"))
        # The browser sends local time without a zone: the limits are judged on the day.
        _check_limits(form, item, value[:10])

    return check


def option_key(option: dict[str, Any]) -> str:
    """The HTML value of an answerOption: its code, or its literal value."""
    if "valueCoding" in option:
        return str(option["valueCoding"].get("code"))
    for key, value in option.items():
        if key.startswith("value"):
            return str(value)
    return ""


def option_label(option: dict[str, Any]) -> str:
    if "valueCoding" in option:
        coding = option["valueCoding"]
        return str(coding.get("display") or coding.get("code"))
    return option_key(option)


def _choices(item: Item) -> list[tuple[str, str]]:
    return [(option_key(o), option_label(o)) for o in item.options]


def _unit_choices(item: Item) -> list[tuple[str, str]]:
    return [(str(u.get("code")), str(u.get("display") or u.get("code"))) for u in item.unit_options]


# A field builder gives the item's fields as (name suffix, unbound field): "" for the answer
# itself, "-other" for an open-choice's typed answer, "-unit" for a quantity's unit.
FieldBuilder = Callable[[Item, RequiredWhenEnabled], list[tuple[str, Any]]]


def _yes_no_field(item: Item, gate: RequiredWhenEnabled) -> list[tuple[str, Any]]:
    return [("", ChoiceInput(item.text, choices=TRUE_FALSE, validators=[gate]))]


def _choice_field(item: Item, gate: RequiredWhenEnabled) -> list[tuple[str, Any]]:
    if item.repeats:
        exclusive = tuple(option_key(o) for o in item.exclusive_options)
        return [("", MultiChoiceInput(item.text, choices=_choices(item), validators=[gate], exclusive=exclusive,
                                      link_id=item.link_id))]
    return [("", ChoiceInput(item.text, choices=_choices(item), validators=[gate]))]


def _open_choice_fields(item: Item, gate: RequiredWhenEnabled) -> list[tuple[str, Any]]:
    return [*_choice_field(item, gate), ("-other", TextInput("Other", validators=[_check_text(item)]))]


def _number_field(item: Item, gate: RequiredWhenEnabled) -> list[tuple[str, Any]]:
    return [("", TextInput(item.text, validators=[gate, _check_number(item)]))]


def _quantity_fields(item: Item, gate: RequiredWhenEnabled) -> list[tuple[str, Any]]:
    fields = _number_field(item, gate)
    if len(item.unit_options) > 1:
        fields.append(("-unit", ChoiceInput("Unit", choices=_unit_choices(item))))
    return fields


def _date_field(item: Item, gate: RequiredWhenEnabled) -> list[tuple[str, Any]]:
    return [("", DateInput(item.text, parts=item.date_parts, validators=[gate, _check_date(item)]))]


def _date_time_field(item: Item, gate: RequiredWhenEnabled) -> list[tuple[str, Any]]:
    return [("", TextInput(item.text, validators=[gate, _check_datetime(item)]))]


def _string_field(item: Item, gate: RequiredWhenEnabled) -> list[tuple[str, Any]]:
    return [("", TextInput(item.text, validators=[gate, _check_text(item)]))]


def _long_text_field(item: Item, gate: RequiredWhenEnabled) -> list[tuple[str, Any]]:
    return [("", LongText(item.text, validators=[gate, _check_text(item)]))]


# The strategy table, item type -> fields; every answer field starts with the enablement gate.
# Keyed by item_types.QUESTIONS (tests/core/test_item_types.py).
FIELD_BUILDERS: dict[str, FieldBuilder] = {
    "boolean": _yes_no_field,
    "decimal": _number_field,
    "integer": _number_field,
    "date": _date_field,
    "dateTime": _date_time_field,
    "string": _string_field,
    "text": _long_text_field,
    "choice": _choice_field,
    "open-choice": _open_choice_fields,
    "quantity": _quantity_fields,
}


def page_form_class(qform: QForm, page: Page) -> type[PageForm]:
    """The WTForms class for one page of one Questionnaire version (built once, kept on the form:
    not keyed by url|version across apps, whose catalogs may hold different content under it)."""
    key = ("page_form_class", page.key)
    cached: type[PageForm] | None = qform.memo.get(key)
    if cached is not None:
        return cached
    attrs: dict[str, Any] = {}
    items: dict[str, Item] = {}
    others: dict[str, str] = {}
    units: dict[str, str] = {}
    for item in page.walk():
        if not item.is_question or item.read_only or item.hidden:
            continue
        name = field_name(item.link_id)
        items[name] = item
        for suffix, unbound in FIELD_BUILDERS[item.type](item, RequiredWhenEnabled(item)):
            attrs[name + suffix] = unbound
            if suffix == "-other":
                others[name] = name + suffix
            elif suffix == "-unit":
                units[name] = name + suffix
    attrs["field_items"] = items
    attrs["other_fields"] = others
    attrs["unit_fields"] = units
    attrs["qform"] = qform
    attrs["page"] = page
    cls = type(f"Page_{page.key}", (PageForm,), attrs)
    qform.memo[key] = cls
    return cls


# --- answers <-> form data --------------------------------------------------------------------


def _find_option(item: Item, key: str) -> dict[str, Any] | None:
    for option in item.options:
        if option_key(option) == key:
            return option
    return None


def _option_answer(option: dict[str, Any]) -> dict[str, Any]:
    for key, value in option.items():
        if key.startswith("value"):
            return {key: dict(value) if isinstance(value, dict) else value}
    return {}


def _number_value(item: Item, raw: str) -> int | float:
    """Also called on input not validated yet (enablement needs it): ValueError, never a huge
    int (int(Decimal("1e999999999999999999")) exhausts memory), OverflowError or float inf."""
    number = Decimal(raw.replace(",", ".").strip())
    if not number.is_finite():
        raise ValueError("not a finite number")
    if item.type == "integer":
        if not INT32[0] <= number <= INT32[1]:
            raise ValueError("outside the 32-bit integer range")
        return int(number)
    value = float(number)
    if not math.isfinite(value):
        raise ValueError("too large for a decimal")
    return value


def _unit(item: Item, form: PageForm, name: str) -> dict[str, Any] | None:
    if name in form.unit_fields:
        chosen = form[form.unit_fields[name]].data
        for unit in item.unit_options:
            if str(unit.get("code")) == chosen:
                return unit
        return None
    if item.unit_options:
        return item.unit_options[0]
    return item.unit


def page_answers(form: PageForm) -> Answers:
    """The answers a posted page gives, in FHIR answer form, for the fields that parsed cleanly.

    Every question of the page gets an entry (possibly empty), so that clearing an answer on
    a page removes the stored one.
    """
    out: Answers = {}
    for name, item in form.field_items.items():
        field = form[name]
        out[item.link_id] = []
        if field.errors:
            continue
        data = field.data
        try:
            out[item.link_id] = _to_answers(item, form, name, data)
        except (InvalidOperation, ValueError):
            out[item.link_id] = []
    return out


ToAnswers = Callable[[Item, PageForm, str, Any], list[dict[str, Any]]]


def _boolean_answers(item: Item, form: PageForm, name: str, data: Any) -> list[dict[str, Any]]:
    return [{"valueBoolean": data == "true"}] if data in ("true", "false") else []


def _choice_answers(item: Item, form: PageForm, name: str, data: Any) -> list[dict[str, Any]]:
    keys = data if isinstance(data, list) else ([data] if data else [])
    return [_option_answer(o) for o in (_find_option(item, k) for k in keys) if o]


def _open_choice_answers(item: Item, form: PageForm, name: str, data: Any) -> list[dict[str, Any]]:
    answers = _choice_answers(item, form, name, data)
    if name in form.other_fields:
        other = form[form.other_fields[name]].data
        if other:
            answers = answers if item.repeats else []
            answers.append({"valueString": other})
    return answers


def _number_answers(item: Item, form: PageForm, name: str, data: Any) -> list[dict[str, Any]]:
    if not data:
        return []
    return [{item_types.row(item.type).value_key or "valueDecimal": _number_value(item, data)}]


def _quantity_answers(item: Item, form: PageForm, name: str, data: Any) -> list[dict[str, Any]]:
    if not data:
        return []
    quantity: dict[str, Any] = {"value": float(Decimal(data.replace(",", ".")))}
    unit = _unit(item, form, name)
    if unit:
        quantity.update({k: unit[k] for k in ("system", "code") if unit.get(k)})
        quantity["unit"] = unit.get("display") or unit.get("code")
    return [{"valueQuantity": quantity}]


def _date_answers(item: Item, form: PageForm, name: str, data: Any) -> list[dict[str, Any]]:
    return [{"valueDate": data}] if data else []


def _date_time_answers(item: Item, form: PageForm, name: str, data: Any) -> list[dict[str, Any]]:
    if not data:
        return []
    value = data if len(data) > 16 else data + ":00"
    return [{"valueDateTime": value + "Z"}]


def _string_answers(item: Item, form: PageForm, name: str, data: Any) -> list[dict[str, Any]]:
    return [{"valueString": data}] if data else []


# Item type -> the FHIR answers of its posted field data. Keyed by item_types.QUESTIONS.
TO_ANSWERS: dict[str, ToAnswers] = {
    "boolean": _boolean_answers,
    "decimal": _number_answers,
    "integer": _number_answers,
    "date": _date_answers,
    "dateTime": _date_time_answers,
    "string": _string_answers,
    "text": _string_answers,
    "choice": _choice_answers,
    "open-choice": _open_choice_answers,
    "quantity": _quantity_answers,
}


def _to_answers(item: Item, form: PageForm, name: str, data: Any) -> list[dict[str, Any]]:
    return TO_ANSWERS[item.type](item, form, name, data)


def form_data(form_cls: type[PageForm], answers: Answers, *, use_initial: bool) -> dict[str, Any]:
    """Field data for showing a page again: the stored answers, else `initial` on a first visit."""
    data: dict[str, Any] = {}
    for name, item in form_cls.field_items.items():
        values = answers.get(item.link_id)
        if not values and use_initial:
            values = list(item.initial) or [
                _option_answer(o) for o in item.options if o.get("initialSelected")
            ]
        if not values:
            continue
        data.update(_from_answers(form_cls, item, name, values))
    return data


FromAnswers = Callable[[type[PageForm], Item, str, list[dict[str, Any]]], dict[str, Any]]


def _boolean_data(form_cls: type[PageForm], item: Item, name: str, values: list[dict[str, Any]]) -> dict[str, Any]:
    return {name: "true" if values[0].get("valueBoolean") else "false"}


def _choice_data(form_cls: type[PageForm], item: Item, name: str, values: list[dict[str, Any]]) -> dict[str, Any]:
    keys, other = [], None
    free_text = item_types.row(item.type).free_text
    for value in values:
        if "valueString" in value and free_text and not _find_option(item, value["valueString"]):
            other = value["valueString"]
        else:
            keys.append(option_key(value))
    out: dict[str, Any] = {name: keys if item.repeats else (keys[0] if keys else None)}
    if other and name in form_cls.other_fields:
        out[form_cls.other_fields[name]] = other
    return out


def _quantity_data(form_cls: type[PageForm], item: Item, name: str, values: list[dict[str, Any]]) -> dict[str, Any]:
    quantity = values[0].get("valueQuantity") or {}
    out: dict[str, Any] = {name: _plain_number(quantity.get("value"))}
    if name in form_cls.unit_fields:
        out[form_cls.unit_fields[name]] = quantity.get("code")
    return out


def _number_data(form_cls: type[PageForm], item: Item, name: str, values: list[dict[str, Any]]) -> dict[str, Any]:
    first = values[0]
    return {name: _plain_number(first.get("valueInteger", first.get("valueDecimal")))}


def _date_time_data(form_cls: type[PageForm], item: Item, name: str, values: list[dict[str, Any]]) -> dict[str, Any]:
    return {name: str(values[0].get("valueDateTime", ""))[:16]}


def _value_data(form_cls: type[PageForm], item: Item, name: str, values: list[dict[str, Any]]) -> dict[str, Any]:
    for key, value in values[0].items():
        if key.startswith("value"):
            return {name: str(value)}
    return {}


# Item type -> field data showing its stored answers again. Keyed by item_types.QUESTIONS.
FROM_ANSWERS: dict[str, FromAnswers] = {
    "boolean": _boolean_data,
    "decimal": _number_data,
    "integer": _number_data,
    "date": _value_data,
    "dateTime": _date_time_data,
    "string": _value_data,
    "text": _value_data,
    "choice": _choice_data,
    "open-choice": _choice_data,
    "quantity": _quantity_data,
}


def _from_answers(form_cls: type[PageForm], item: Item, name: str, values: list[dict[str, Any]]) -> dict[str, Any]:
    return FROM_ANSWERS[item.type](form_cls, item, name, values)


@dataclass
class Node:
    """What a template needs to render one item: the item, its field (if any), its children."""

    item: Item
    field: Field | None = None
    other: Field | None = None
    unit: Field | None = None
    children: list[Node] = dc_field(default_factory=list)
    value: str = ""
    # Where the patient changes a carried-forward answer (the page that asked it).
    carried_url: str | None = None
    live_condition: str | None = None
    # (value, label) in the language of `item`: the field's own choices carry the base words.
    choices: list[tuple[str, str]] = dc_field(default_factory=list)
    unit_choices: list[tuple[str, str]] = dc_field(default_factory=list)

    @property
    def kind(self) -> item_types.ItemType | None:
        """The item type's row: which widget the template draws (item_types)."""
        return item_types.item_type(self.item.type)

    @property
    def option_group(self) -> bool:
        return is_option_group(self.item)

    @property
    def input_type(self) -> str:
        """The `<input>` type (dates have boxes of their own: `date_boxes`)."""
        return self.kind.input_type if self.kind else "text"

    @property
    def date_boxes(self) -> list[tuple[str, str]]:
        """(part, typed value) of each box of a date answer, in the order shown."""
        parts: dict[str, str] = getattr(self.field, "parts", {}) or {}
        return [(part, parts.get(part, "")) for part in self.item.date_parts]

    @property
    def exclusive_keys(self) -> set[str]:
        """The values of the options ticked alone ("None of these"), shown after an "or"."""
        return {option_key(o) for o in self.item.exclusive_options}


def is_option_group(item: Item) -> bool:
    """Shown as radio buttons or check boxes (a fieldset), rather than one input or a drop-down."""
    return item_types.row(item.type).picks and item.control != "drop-down"


def anchor(item: Item, field: Field | None = None) -> str:
    """Where a link to the question lands (error summaries, Change links): its field, the first
    option of a radio/checkbox group, as the page's template numbers them, or a date's box (the
    one `field`'s error is about, else the first)."""
    name = field_name(item.link_id)
    if item.type == "date":
        part = getattr(field, "error_part", None) if field is not None else None
        return f"{name}-{part or item.date_parts[0]}"
    return f"{name}-1" if is_option_group(item) else name


def yes_no() -> tuple[str, str]:
    """The words for a boolean answer, in the page's language."""
    return _("Yes"), _("No")


def localized_choices(item: Item) -> list[tuple[str, str]]:
    """The item's options as (value, label), labels as the item words them."""
    if item.type == "boolean":
        return list(zip(("true", "false"), yes_no(), strict=True))
    return _choices(item)


# enableWhen answer[x] -> how the browser sees the trigger's value (the field's HTML value).
LIVE_ANSWER_KEYS: dict[str, Callable[[Any], str]] = {
    "answerBoolean": lambda v: "true" if v else "false",
    "answerCoding": lambda v: str(v.get("code")),
    "answerString": str,
    "answerInteger": str,
    "answerDecimal": str,
}


def live_condition(item: Item, on_page: set[str]) -> str | None:
    """The item's enableWhen as JSON for the page's small script, when the browser can decide it.

    Only conditions on questions of the same page, with values the browser sees as field
    values, qualify; everything else is decided by the server alone. Without JavaScript the
    item simply stays visible, and the server ignores its answer when it is not enabled.
    """
    if not item.enable_when or item.enable_expression:
        return None
    conditions = []
    for cond in item.enable_when:
        question = cond.get("question")
        answer = next(((k, v) for k, v in cond.items() if k.startswith("answer")), None)
        if question not in on_page or answer is None or answer[0] not in LIVE_ANSWER_KEYS:
            return None
        conditions.append(
            {"f": field_name(question), "op": cond.get("operator"), "v": LIVE_ANSWER_KEYS[answer[0]](answer[1])}
        )
    return json.dumps({"all": item.enable_behavior != "any", "when": conditions}, separators=(",", ":"))


def render_tree(page: Page, form: PageForm, enabled: set[str] | None, answers: Answers,
                source_url: Callable[[str], str | None] | None = None) -> list[Node]:
    """The page's items as render nodes; disabled items are left out when `enabled` is given.

    `source_url(link_id)` is where a carried-forward answer (`Item.copied_from`) is changed.
    """
    names = {item.link_id: name for name, item in form.field_items.items()}

    on_page = {item.link_id for item in page.walk()}

    def shown(item: Item) -> bool:
        """Enabled, or switched by an answer on this very page (so it works without JavaScript)."""
        if enabled is None or item.link_id in enabled:
            return True
        return bool(item.enable_when) and all(c.get("question") in on_page for c in item.enable_when)

    def build(item: Item) -> Node | None:
        if item.hidden or not shown(item):
            return None
        name = names.get(item.link_id)
        node = Node(item=item)
        if name:
            node.field = form[name]
            if name in form.other_fields:
                node.other = form[form.other_fields[name]]
            if name in form.unit_fields:
                node.unit = form[form.unit_fields[name]]
        elif item.read_only and item.is_question:
            node.value = display_answer(item, answers.get(item.link_id) or [], yes_no=yes_no())
            if item.copied_from and source_url is not None:
                node.carried_url = source_url(item.copied_from)
        node.choices = localized_choices(item) if name else []
        if node.unit is not None:
            node.unit_choices = _unit_choices(item)
        node.children = [n for n in (build(c) for c in item.children) if n]
        node.live_condition = live_condition(item, on_page)
        return node

    return [n for n in (build(item) for item in page.items) if n]
