"""The one table of Questionnaire item types: those the engine supports, and those it refuses.

Each supported type's facts live in its row: what a QuestionnaireResponse answer carries
(`answer[x]`), whether answerOption / initial / minValue / maxValue fit it, which
`enableWhen.answer[x]` can ever match it, and what a page widget needs. Lint, validation,
enablement, answer building and the web forms read these rows instead of keeping their own
lists. Where a type needs code, the consumer keeps a handler map keyed by `QUESTIONS`
(validation.ANSWER_CHECKS, answers.CALCULATED_ANSWER, web.forms.FIELD_BUILDERS, TO_ANSWERS,
FROM_ANSWERS), and enablement.COMPARISONS one keyed by the rows' enableWhen answer[x];
tests/core/test_item_types.py fails, naming the consumer, when a row has no handler there.

Adding a type: add its row here, run the tests, handle it where they say (CONTRIBUTING.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["question", "group", "display"]
# What a page shows for the type: a set of options to pick from (radio buttons, check boxes or
# a drop-down), a one-line input, or a text area; groups and displays show no field.
Widget = Literal["options", "input", "textarea", "none"]

# Every answer.value[x] of R4 the engine recognises in a QuestionnaireResponse, in the order an
# answer is read (`enablement.answer_value`). A key no supported type takes is refused as "not an
# answer to a <type> item" rather than ignored.
ANSWER_VALUE_KEYS = (
    "valueBoolean", "valueDecimal", "valueInteger", "valueDate", "valueDateTime", "valueTime",
    "valueString", "valueUri", "valueCoding", "valueQuantity", "valueReference",
)

# answerOption value[x] of a choice item (R4 Questionnaire.item.answerOption.value[x]).
_CHOICE_OPTIONS = frozenset({"valueCoding", "valueString", "valueInteger", "valueDate", "valueTime"})
_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ItemType:
    """One supported item type.

    `value_key`: the answer value[x] of the type's own value (what the engine writes for a typed
    answer, and what an `initial` carries); None for groups and displays, and for the choice
    types, whose answers are their options' values.
    `option_keys`: the answerOption (and initial) value[x] allowed; None: no answerOption at all.
    `enable_when`: the enableWhen answer[x] that can match an answer of this type.
    `limit_keys`: minValue/maxValue value[x] allowed; `dynamic_limits`: also given by a
    cqf-expression (`today()`, `%birthDate`).
    `needs_options`: answered by picking one of its answerOption (choice types);
    `free_text`: a typed answer besides the options is allowed (open-choice).
    `widget`, `input_type`, `inputmode`, `short`: what the page renders (an HTML input's
    `type`/`inputmode`; `short` for a narrow number box).
    """

    code: str
    role: Role = "question"
    value_key: str | None = None
    option_keys: frozenset[str] | None = None
    enable_when: frozenset[str] = _NONE
    limit_keys: frozenset[str] = _NONE
    dynamic_limits: bool = False
    needs_options: bool = False
    free_text: bool = False
    widget: Widget = "input"
    input_type: str = "text"
    inputmode: str | None = None
    short: bool = False

    @property
    def is_question(self) -> bool:
        """Takes answers (groups hold questions; displays only show text)."""
        return self.role == "question"

    @property
    def answer_keys(self) -> frozenset[str]:
        """The answer value[x] a QuestionnaireResponse may carry for this type."""
        own = frozenset({self.value_key}) if self.value_key else _NONE
        return own | (self.option_keys or _NONE)

    @property
    def picks(self) -> bool:
        """Answered by picking from a short fixed list (yes/no or the options)."""
        return self.widget == "options"


def _rows(*rows: ItemType) -> dict[str, ItemType]:
    return {row.code: row for row in rows}


TYPES: dict[str, ItemType] = _rows(
    ItemType("group", role="group", widget="none"),
    ItemType("display", role="display", widget="none"),
    ItemType("boolean", value_key="valueBoolean", enable_when=frozenset({"answerBoolean"}), widget="options"),
    ItemType("decimal", value_key="valueDecimal", enable_when=frozenset({"answerDecimal", "answerInteger"}),
             limit_keys=frozenset({"valueDecimal", "valueInteger"}), inputmode="decimal", short=True),
    ItemType("integer", value_key="valueInteger", option_keys=frozenset({"valueInteger"}),
             enable_when=frozenset({"answerInteger", "answerDecimal"}), limit_keys=frozenset({"valueInteger"}),
             inputmode="numeric", short=True),
    ItemType("date", value_key="valueDate", option_keys=frozenset({"valueDate"}), enable_when=frozenset({"answerDate"}),
             limit_keys=frozenset({"valueDate"}), dynamic_limits=True, input_type="date"),
    ItemType("dateTime", value_key="valueDateTime", enable_when=frozenset({"answerDateTime", "answerDate"}),
             limit_keys=frozenset({"valueDateTime", "valueDate"}), dynamic_limits=True, input_type="datetime-local"),
    ItemType("string", value_key="valueString", option_keys=frozenset({"valueString"}),
             enable_when=frozenset({"answerString"})),
    ItemType("text", value_key="valueString", enable_when=frozenset({"answerString"}), widget="textarea"),
    ItemType("choice", option_keys=_CHOICE_OPTIONS,
             enable_when=frozenset({"answerCoding", "answerString", "answerInteger", "answerDate"}),
             needs_options=True, widget="options"),
    ItemType("open-choice", option_keys=_CHOICE_OPTIONS, enable_when=frozenset({"answerCoding", "answerString"}),
             needs_options=True, free_text=True, widget="options"),
    ItemType("quantity", value_key="valueQuantity", enable_when=frozenset({"answerQuantity"}),
             limit_keys=frozenset({"valueQuantity"}), inputmode="decimal", short=True),
)

# R4 item types the engine refuses on purpose (the lint stops a form that uses one), and why.
UNSUPPORTED: dict[str, str] = {
    "question": "abstract in R4: an item needs a concrete answer type",
    "time": "no instrument asks for a time of day alone; no page field or check is built for one",
    "url": "no instrument asks for a web address",
    "attachment": "patients do not upload files through the intake pages",
    "reference": "a patient cannot pick a FHIR resource on a page",
    "coding": "R5 only; in R4 a coded question is a choice item",
}

SUPPORTED: frozenset[str] = frozenset(TYPES)
QUESTIONS: frozenset[str] = frozenset(code for code, row in TYPES.items() if row.is_question)


def item_type(code: str | None) -> ItemType | None:
    """The row of a supported type; None for any other code (the lint refuses those)."""
    return TYPES.get(code) if isinstance(code, str) else None


def row(code: str) -> ItemType:
    """The row of a type the lint has already let through (KeyError otherwise: a bug)."""
    return TYPES[code]


def is_question(code: str) -> bool:
    """Whether items of this type take answers; unknown codes do (the engine's old default)."""
    found = TYPES.get(code)
    return found.is_question if found else True
