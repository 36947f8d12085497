"""intake/core/estimate: pages and minutes from the pages asked and their questions."""

from __future__ import annotations

from intake.core.estimate import PAGE_SECONDS, SECONDS, asked, estimate, kind
from tests.core.factories import FHIR_EXT, ext, form, group, option, question, when

ENTRY_FORMAT = FHIR_EXT + "entryFormat"


def test_each_question_costs_its_kind_and_each_page_its_reading():
    built = form(
        group("one", question("yn", "boolean", required=True), question("pick", "choice",
                                                                          answerOption=[option("a"), option("b")]),
              question("boxes", "choice", repeats=True, answerOption=[option("a")]),
              question("n", "integer"), question("d", "date", extension=[ext(ENTRY_FORMAT, valueString="YYYY-MM")]),
              question("why", "text"), question("name", "string", required=True),
              question("carried", "boolean", readOnly=True)),
        group("two", question("more", "boolean"), question("follow", "boolean",
                                                            enableWhen=[when("more", "=", answerBoolean=True)])),
    )
    assert [kind(i) for i in asked(built.pages[0], {i.link_id for i in built.walk()})] == [
        "yes-no", "one-option", "check-boxes", "number", "date", "skipped-text", "typed"]
    enabled = {i.link_id for i in built.walk()} - {"follow"}  # nothing to report: no follow-up
    result = estimate((page, enabled) for page in built.pages)
    first = 6 + 10 + 12 + 10 + 12 + 4 + 20
    assert (SECONDS["yes-no"], SECONDS["date"]) == (6, 12)
    assert result.pages == 2 and result.questions == 8
    assert result.seconds == 2 * PAGE_SECONDS + first + 6
    assert result.minutes == 2  # 110 s, rounded up


def test_an_empty_intake_still_says_a_minute():
    assert estimate([]).minutes == 1
