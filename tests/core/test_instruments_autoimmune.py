"""Autoimmune Questionnaire rules (forms/autoimmune.json 1.4.0): history counts and red flags.

Reference: ../shared/instruments.md 4.2 (checklist: counts, no risk score; autoimmune red flags,
in-house, clinical sign-off required). Responses are built with the real form, scored with the real
engine.
"""

from __future__ import annotations

from typing import Any

import pytest

from intake.core.answers import build_response
from intake.core.catalog import Catalog
from intake.core.items import Form
from intake.core.scoring import Context, Result, Score, score_intake, score_response
from intake.core.translations import flag_guidance

CANONICAL = "https://intake.example.org/fhir/Questionnaire/autoimmune|1.4.0"
AUTHORED = "2024-05-01T10:00:00Z"
CONDITIONS = ["coeliac", "rheumatoid-arthritis", "lupus", "multiple-sclerosis", "hashimoto", "graves",
              "type1-diabetes", "ibd", "psoriasis", "pernicious-anaemia"]
SELF = [f"ai-self-{c}" for c in CONDITIONS]
FAMILY = [f"ai-family-{c}" for c in CONDITIONS]
ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
YES = {"system": "http://loinc.org", "code": "LA33-6", "display": "Yes"}
NO = {"system": "http://loinc.org", "code": "LA32-8", "display": "No"}
UNSURE = {
    "system": "https://intake.example.org/fhir/CodeSystem/intake-answers",
    "code": "unsure",
    "display": "Not sure",
}
NONE = {"system": UNSURE["system"], "code": "none", "display": "None of these"}
RELATIVES = {"PRN": "Parent", "SIB": "Brother or sister", "CHILD": "Child", "GRPRN": "Grandparent", "AUNT": "Aunt",
             "UNCLE": "Uncle", "EXT": "Other blood relative"}
SNOMED = "http://snomed.info/sct"
CONDITION_CODES = {"coeliac": "396331005", "rheumatoid-arthritis": "69896004", "lupus": "55464009",
                   "multiple-sclerosis": "24700007", "hashimoto": "21983002", "graves": "353295004",
                   "type1-diabetes": "46635009", "ibd": "24526004", "psoriasis": "9014002",
                   "pernicious-anaemia": "84027009"}
GATE = "ai-family-conditions"
OLD = "1950-01-01"


@pytest.fixture(scope="module")
def autoimmune(catalog: Catalog) -> Form:
    return catalog.by_key["autoimmune"]


@pytest.fixture(scope="module")
def spanish(catalog: Catalog, autoimmune: Form) -> Form:
    return catalog.localized(autoimmune, "es")


def coded(coding: dict[str, str]) -> list[dict[str, Any]]:
    return [{"valueCoding": dict(coding)}]


def who(*codes: str) -> list[dict[str, Any]]:
    return [{"valueCoding": {"system": ROLE, "code": code, "display": RELATIVES[code]}} for code in codes]


def ticked(*conditions: str) -> list[dict[str, Any]]:
    """The first family question's answer: these conditions ticked."""
    return [{"valueCoding": {"system": SNOMED, "code": CONDITION_CODES[c]}} for c in conditions]


def family(answers: dict[str, list[dict[str, Any]]], relatives: dict[str, list[dict[str, Any]]]
           ) -> dict[str, list[dict[str, Any]]]:
    """Tick each condition of `relatives` in the first question and answer its relatives question."""
    answers[GATE] = ticked(*relatives)
    answers.update({f"ai-family-{c}": value for c, value in relatives.items()})
    return answers


def all_no() -> dict[str, list[dict[str, Any]]]:
    answers = {link: coded(NO) for link in SELF}
    answers[GATE] = coded(NONE)
    answers.update({f"ai-rf{n}": [{"valueBoolean": False}] for n in range(1, 5)})
    return answers


def respond(form: Form, answers: dict[str, list[dict[str, Any]]], authored: str = AUTHORED) -> dict[str, Any]:
    return build_response(form, answers, status="completed", subject="Patient/p1", authored=authored)


def score(form: Form, answers: dict[str, list[dict[str, Any]]], birth: str | None = OLD,
          authored: str = AUTHORED) -> Result:
    return score_response(form, respond(form, answers, authored), Context(birth_date=birth))


def scores(result: Result) -> dict[str, Score]:
    return {s.id: s for s in result.scores}


def totals(result: Result) -> dict[str, float | None]:
    return {s.id: s.value for s in result.scores}


def test_version_is_bumped(autoimmune: Form) -> None:
    assert autoimmune.version == "1.4.0"
    assert autoimmune.canonical == CANONICAL


# --- counts ------------------------------------------------------------------------------------


def test_all_no_gives_zero_counts_complete(autoimmune: Form) -> None:
    result = score(autoimmune, all_no())
    assert totals(result) == {"ai-personal": 0, "ai-family-any": 0, "ai-family-first-degree": 0}
    assert all(s.complete and s.missing == () for s in result.scores)
    assert result.flags == []


def test_personal_count_counts_yes_only(autoimmune: Form) -> None:
    answers = all_no()
    answers.update(
        {
            "ai-self-coeliac": coded(YES),
            "ai-self-lupus": coded(YES),
            "ai-self-pernicious-anaemia": coded(YES),
            "ai-self-graves": coded(UNSURE),
            "ai-self-coeliac-year": [{"valueDate": "2001"}],
        }
    )
    result = score(autoimmune, answers)
    assert totals(result)["ai-personal"] == 3
    assert scores(result)["ai-personal"].complete


def test_personal_count_all_ten(autoimmune: Form) -> None:
    answers = all_no()
    answers.update({link: coded(YES) for link in SELF})
    assert totals(score(autoimmune, answers))["ai-personal"] == 10


def test_family_any_versus_first_degree(autoimmune: Form) -> None:
    answers = family(all_no(), {
        "coeliac": who("GRPRN"),                  # any only
        "lupus": who("PRN"),                      # both
        "psoriasis": who("AUNT", "SIB"),          # both, counted once
        "ibd": who("CHILD"),                      # both
        "graves": who("UNCLE"),                   # any only
        "type1-diabetes": who("UNCLE", "EXT"),    # any only
    })
    assert totals(score(autoimmune, answers)) == {"ai-personal": 0, "ai-family-any": 6, "ai-family-first-degree": 3}


def test_none_of_these_in_the_first_question_counts_zero_complete(autoimmune: Form) -> None:
    result = scores(score(autoimmune, all_no()))
    for score_id in ("ai-family-any", "ai-family-first-degree"):
        assert (result[score_id].complete, result[score_id].value, result[score_id].missing) == (True, 0, ())


@pytest.mark.parametrize("gate", [coded(UNSURE), [*ticked("lupus"), *coded(UNSURE)]])
def test_not_sure_in_the_first_question_leaves_both_counts_unknown(autoimmune: Form,
                                                                   gate: list[dict[str, Any]]) -> None:
    answers = all_no()
    answers[GATE] = gate
    if len(gate) > 1:
        answers["ai-family-lupus"] = who("PRN")
    result = scores(score(autoimmune, answers))
    for score_id in ("ai-family-any", "ai-family-first-degree"):
        assert (result[score_id].complete, result[score_id].value, result[score_id].missing) == (False, None, ())


def test_a_condition_whose_relatives_are_not_sure_counts_for_any_but_leaves_first_degree_unknown(
        autoimmune: Form) -> None:
    answers = family(all_no(), {"hashimoto": coded(UNSURE), "lupus": who("PRN")})
    result = scores(score(autoimmune, answers))
    assert (result["ai-family-any"].complete, result["ai-family-any"].value) == (True, 2)
    assert (result["ai-family-first-degree"].complete, result["ai-family-first-degree"].value) == (False, None)


def test_the_first_question_asks_each_condition_then_not_sure_or_none(autoimmune: Form, spanish: Form) -> None:
    exclusive = "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive"
    gate = autoimmune.by_link[GATE]
    assert gate.required and gate.repeats and gate.control == "check-box"
    assert gate.text == "Has a blood relative been diagnosed with any of these?"
    assert gate.help_text == "Blood relatives are people related to you by birth, not by marriage."
    codes = [(o["valueCoding"]["system"], o["valueCoding"]["code"]) for o in gate.options]
    assert codes == [*((SNOMED, c) for c in CONDITION_CODES.values()), (UNSURE["system"], "unsure"),
                     (UNSURE["system"], "none")]
    flagged = [o["valueCoding"]["code"] for o in gate.options
               if any(e["url"] == exclusive and e["valueBoolean"] for e in o.get("extension", []))]
    assert flagged == ["none"]
    assert "ai-family-note" not in autoimmune.by_link  # the note is now the first question's hint
    assert spanish.by_link[GATE].text.startswith("¿A algún familiar de sangre")
    assert spanish.by_link[GATE].help_text.startswith("Los familiares de sangre")
    required = {e["url"].rsplit("/", 1)[-1]: e for e in gate.raw["extension"]}["requiredMessage"]
    assert "none of these" in required["valueString"]


@pytest.mark.parametrize("condition", CONDITIONS)
def test_each_relatives_question_is_asked_only_for_its_ticked_condition(autoimmune: Form, condition: str) -> None:
    item = autoimmune.by_link[f"ai-family-{condition}"]
    assert item.raw["enableWhen"] == [{"question": GATE, "operator": "=",
                                       "answerCoding": {"system": SNOMED, "code": CONDITION_CODES[condition]}}]
    assert CONDITION_CODES[condition] in [c["code"] for c in item.raw["code"]]
    others = [c for c in CONDITIONS if c != condition]
    stored = respond(autoimmune, family(all_no(), {c: who("PRN") for c in others}))
    links = {i["linkId"] for g in stored["item"] for i in g.get("item", [])}
    assert f"ai-family-{condition}" not in links
    answers = family(all_no(), {condition: who("SIB")})
    links = {i["linkId"] for g in respond(autoimmune, answers)["item"] for i in g.get("item", [])}
    assert f"ai-family-{condition}" in links


def test_a_stale_relatives_answer_is_not_stored_or_counted(autoimmune: Form) -> None:
    """Ticked, answered, then unticked (None of these): the relatives answer no longer counts."""
    answers = all_no()
    answers["ai-family-coeliac"] = who("PRN")
    response = respond(autoimmune, answers)
    assert "ai-family-coeliac" not in {i["linkId"] for g in response["item"] for i in g.get("item", [])}
    assert totals(score(autoimmune, answers))["ai-family-first-degree"] == 0


def test_family_history_is_one_question_per_condition_with_exclusive_answers(autoimmune: Form) -> None:
    """Which relatives, as checkboxes; 'Not sure' cannot be combined with a relative. Cousins are
    'Other blood relative' (RoleCode EXT, the parent concept of COUSN); v3 RoleCode has no single
    aunt-or-uncle code, so Aunt and Uncle stay two options."""
    exclusive = "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive"
    questions = [i for p in autoimmune.pages for i in p.walk() if i.link_id.startswith("ai-family-") and i.is_question
                 and not i.read_only and i.link_id != GATE]
    assert [i.link_id for i in questions if i.repeats] == FAMILY
    assert not [i for i in questions if i.link_id.endswith("-who")]
    for item in questions:
        if not item.repeats:
            assert item.link_id.endswith("-age") and item.enable_behavior == "any"
            continue
        assert item.required and item.control == "check-box"
        codes = [o["valueCoding"]["code"] for o in item.options]
        assert codes == [*RELATIVES, "unsure"]
        flagged = [o["valueCoding"]["code"] for o in item.options
                   if any(e["url"] == exclusive and e["valueBoolean"] for e in o.get("extension", []))]
        assert flagged == ["unsure"]


def test_relatives_age_is_asked_only_once_a_relative_is_named(autoimmune: Form) -> None:
    answers = family(all_no(), {"lupus": coded(UNSURE), "graves": who("EXT")})
    answers.update({"ai-family-lupus-age": [{"valueInteger": 40}], "ai-family-graves-age": [{"valueInteger": 30}]})
    stored = {i["linkId"] for g in respond(autoimmune, answers)["item"] for i in g.get("item", [])}
    assert "ai-family-graves-age" in stored and "ai-family-lupus-age" not in stored


def test_grandparent_only_counts_in_any_but_not_first_degree(autoimmune: Form) -> None:
    answers = family(all_no(), {"coeliac": who("GRPRN")})
    result = score(autoimmune, answers)
    assert totals(result)["ai-family-any"] == 1
    assert totals(result)["ai-family-first-degree"] == 0


def test_counts_are_stored_in_the_response(autoimmune: Form) -> None:
    answers = all_no()
    family(answers, {"ibd": who("SIB")})
    answers["ai-self-ibd"] = coded(YES)
    response = respond(autoimmune, answers)
    stored = {item["linkId"]: item["answer"] for group in response["item"] for item in group["item"]}
    assert stored["ai-personal-count"] == [{"valueInteger": 1}]
    assert stored["ai-family-any-count"] == [{"valueInteger": 1}]
    assert stored["ai-family-first-degree-count"] == [{"valueInteger": 1}]


def test_unanswered_personal_question_makes_the_personal_count_incomplete(autoimmune: Form) -> None:
    answers = all_no()
    answers["ai-self-coeliac"] = coded(YES)
    del answers["ai-self-lupus"]
    result = scores(score(autoimmune, answers))
    assert (result["ai-personal"].complete, result["ai-personal"].value) == (False, None)
    assert result["ai-personal"].missing == ("ai-self-lupus",)
    assert result["ai-family-any"].complete and result["ai-family-first-degree"].complete


def test_unanswered_family_question_makes_both_family_counts_incomplete(autoimmune: Form) -> None:
    """Graves' disease and psoriasis ticked, their relatives not given."""
    answers = family(all_no(), {"graves": [], "psoriasis": [], "lupus": who("PRN")})
    result = scores(score(autoimmune, answers))
    for score_id in ("ai-family-any", "ai-family-first-degree"):
        assert (result[score_id].complete, result[score_id].value) == (False, None)
        assert result[score_id].missing == ("ai-family-graves", "ai-family-psoriasis")
    assert result["ai-personal"].complete


def test_nothing_answered_lists_every_question(autoimmune: Form) -> None:
    result = scores(score(autoimmune, {}))
    assert result["ai-personal"].missing == tuple(SELF)
    assert result["ai-family-any"].missing == (GATE,)
    assert result["ai-family-first-degree"].missing == (GATE,)


def test_counts_are_not_risk_scores(autoimmune: Form) -> None:
    result = score(autoimmune, all_no())
    assert [s.id for s in result.scores] == ["ai-personal", "ai-family-any", "ai-family-first-degree"]
    for s in result.scores:
        assert s.title.endswith("count (not a risk score)")
        assert s.band is None and s.thresholds == ()
        assert (s.minimum, s.maximum) == (0, 10)
        assert s.instrument is not None and s.instrument.validated is False
        assert "instruments.md 4.2" in (s.citation or "")
    assert [s.item for s in result.scores] == ["ai-personal-count", "ai-family-any-count",
                                               "ai-family-first-degree-count"]


# --- red flags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("link", "tier"), [
    ("ai-rf1", "emergency"), ("ai-rf2", "emergency"), ("ai-rf3", "emergency"), ("ai-rf4", "urgent"),
])
def test_each_red_flag_and_its_tier(autoimmune: Form, spanish: Form, link: str, tier: str) -> None:
    answers = all_no()
    answers[link] = [{"valueBoolean": True}]
    result = score(autoimmune, answers)
    assert [(f.id, f.tier) for f in result.flags] == [(link, tier)]
    flag = result.flags[0]
    assert flag.because == (link,)
    assert flag.citation == "in-house, clinical sign-off required"
    assert flag.verification == "unverified"
    assert flag.questionnaire == CANONICAL
    guidance = flag.patient_guidance or ""
    es = flag_guidance(spanish.resource, link) or ""
    assert guidance.startswith("You told us ") and es.startswith("Usted nos dijo que ")
    assert not any(ch.isdigit() for ch in guidance + es)  # no country's phone numbers
    if tier == "emergency":
        assert "Call your local emergency number now" in guidance
        assert "Llame ahora al número de emergencias de su localidad" in es
    else:
        assert "Please contact the clinic today to tell them. Do not wait for your appointment." in guidance
        assert "Por favor, comuníquese hoy con la clínica para contárselo. No espere a su cita." in es
        assert "If you suddenly lose your sight or see double, call your local emergency number now." in guidance


# --- years of diagnosis ------------------------------------------------------------------------


@pytest.mark.parametrize("condition", CONDITIONS)
def test_years_of_diagnosis_are_year_dates_within_the_patients_life(autoimmune: Form, spanish: Form,
                                                                    condition: str) -> None:
    item = autoimmune.by_link[f"ai-self-{condition}-year"]
    assert item.type == "date" and item.entry_format == "YYYY"
    assert spanish.by_link[item.link_id].entry_format == "AAAA"
    limits = {e["url"].rsplit("/", 1)[-1]: e["_valueDate"]["extension"][0]["valueExpression"]["expression"]
              for e in item.raw["extension"] if e["url"].endswith(("/minValue", "/maxValue"))}
    assert limits == {"minValue": "%birthDate", "maxValue": "today()"}


def test_red_flags_are_evaluated_on_an_incomplete_response(autoimmune: Form) -> None:
    response = build_response(autoimmune, {"ai-rf2": [{"valueBoolean": True}]}, status="in-progress",
                              subject="Patient/p1", authored=AUTHORED)
    result = score_response(autoimmune, response, Context(birth_date=OLD))
    assert [(f.id, f.tier) for f in result.flags] == [("ai-rf2", "emergency")]
    assert not any(s.complete for s in result.scores)


def test_all_red_flags_sorted_by_tier_in_an_intake(autoimmune: Form) -> None:
    answers = all_no()
    answers.update({f"ai-rf{n}": [{"valueBoolean": True}] for n in (4, 3, 2, 1)})
    result = score_intake([(autoimmune, respond(autoimmune, answers))], Context(birth_date=OLD))
    assert [(f.id, f.tier) for f in result.flags] == [
        ("ai-rf1", "emergency"), ("ai-rf2", "emergency"), ("ai-rf3", "emergency"), ("ai-rf4", "urgent"),
    ]


@pytest.mark.parametrize(("birth", "authored", "raised"), [
    ("1974-05-01", "2024-05-01T10:00:00Z", True),   # 50th birthday
    ("1974-05-02", "2024-05-01T10:00:00Z", False),  # one day short of 50
    ("1974-04-30", "2024-05-01T10:00:00Z", True),
    ("1974-06-01", "2024-05-31T23:59:00Z", False),
    ("1974-12-31", "2025-01-01T00:00:00Z", True),
    ("1975-01-01", "2024-12-31T00:00:00Z", False),
    ("2000-01-01", "2024-05-01T10:00:00Z", False),
])
def test_ai_rf4_age_boundary_at_authored(autoimmune: Form, birth: str, authored: str, raised: bool) -> None:
    answers = all_no()
    answers["ai-rf4"] = [{"valueBoolean": True}]
    result = score(autoimmune, answers, birth=birth, authored=authored)
    assert [(f.id, f.tier) for f in result.flags] == ([("ai-rf4", "urgent")] if raised else [])


def test_ai_rf4_without_a_birth_date_is_raised(autoimmune: Form) -> None:
    answers = all_no()
    answers["ai-rf4"] = [{"valueBoolean": True}]
    result = score(autoimmune, answers, birth=None)
    assert [(f.id, f.tier) for f in result.flags] == [("ai-rf4", "urgent")]
    assert "giant-cell arteritis" in result.flags[0].message


def test_ai_rf4_no_is_not_raised_at_any_age(autoimmune: Form) -> None:
    assert score(autoimmune, all_no(), birth="1930-01-01").flags == []
    assert score(autoimmune, all_no(), birth=None).flags == []


def test_a_response_given_to_1_3_0_rescored_with_1_4_0_has_unknown_family_counts(catalog: Catalog,
                                                                                 autoimmune: Form) -> None:
    """`flask intake rescore` scores stored answers with the newest version. A 1.3.0 response has no
    answer to 1.4.0's first family question ("Has a blood relative ... any of these?"), so both family
    counts are unknown (listing that question) rather than a wrong 0; scored with 1.3.0 it keeps them."""
    old = catalog.get(CANONICAL.replace("1.4.0", "1.3.0"))
    assert old is not None
    answers = {link: coded(NO) for link in SELF + FAMILY}
    answers.update({f"ai-rf{n}": [{"valueBoolean": False}] for n in range(1, 5)})
    answers.update({"ai-family-coeliac": coded(YES), "ai-family-coeliac-who": who("PRN"),
                    "ai-family-psoriasis": coded(YES), "ai-family-psoriasis-who": who("GRPRN"),
                    "ai-family-lupus": coded(UNSURE)})
    stored = build_response(old, answers, status="completed", subject="Patient/p1", authored=AUTHORED)
    result = score_intake([(autoimmune, stored)], Context(birth_date=OLD))
    assert totals(result) == {"ai-personal": 0, "ai-family-any": None, "ai-family-first-degree": None}
    assert scores(result)["ai-family-any"].missing == (GATE,)
    own = score_intake([(old, stored)], Context(birth_date=OLD))
    assert totals(own) == {"ai-personal": 0, "ai-family-any": 2, "ai-family-first-degree": 1}
