"""How long the intake takes: the start page's "N pages, about M minutes", computed from the
pages the patient is asked and the questions on them, never a number written by hand.

The seconds per question are a documented judgement (docs/decisions.md, "Time estimate"),
not a measurement: reading the question and answering it on a phone, for a patient with
nothing to report. Optional questions that ask for typed words are usually left empty, so
they cost only their reading time. The figure is rounded up to whole minutes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from intake.core import item_types
from intake.core.items import Item, Page

# Seconds to read and answer one question, by what the page shows for it.
SECONDS = {
    "yes-no": 6,  # two radios
    "one-option": 10,  # radios or a drop-down: the options are read
    "check-boxes": 12,  # several boxes read, some ticked
    "number": 10,
    "date": 12,  # two boxes and a moment to remember
    "typed": 20,  # a required short text
    "skipped-text": 4,  # an optional text or text area left empty
}
PAGE_SECONDS = 8  # the heading, scrolling, Continue and the next page loading


def kind(item: Item) -> str:
    """Which row of SECONDS a question is."""
    row = item_types.row(item.type)
    if item.type == "boolean":
        return "yes-no"
    if row.picks:
        return "check-boxes" if item.repeats else "one-option"
    if item.type == "date":
        return "date"
    if row.inputmode in ("numeric", "decimal"):
        return "number"
    return "typed" if item.required else "skipped-text"


def asked(page: Page, enabled: Iterable[str]) -> list[Item]:
    """The questions of `page` the patient answers: enabled, neither read-only nor hidden."""
    on = set(enabled)
    return [i for i in page.walk() if i.is_question and not i.read_only and not i.hidden and i.link_id in on]


@dataclass(frozen=True)
class Estimate:
    pages: int
    questions: int
    seconds: int

    @property
    def minutes(self) -> int:
        """Whole minutes, rounded up, at least one."""
        return max(1, math.ceil(self.seconds / 60))


def estimate(pages: Iterable[tuple[Page, Iterable[str]]]) -> Estimate:
    """The estimate for `pages`, each with the linkIds enabled for the answers so far."""
    count = seconds = questions = 0
    for page, enabled in pages:
        items = asked(page, enabled)
        count += 1
        questions += len(items)
        seconds += PAGE_SECONDS + sum(SECONDS[kind(i)] for i in items)
    return Estimate(pages=count, questions=questions, seconds=seconds)
