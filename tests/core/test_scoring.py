"""The scoring engine on tiny Questionnaires: rules are data, results follow them exactly."""

from __future__ import annotations

from typing import Any

import pytest

from intake.core.answers import build_response
from intake.core.items import build_form
from intake.core.scoring import Context, RuleError, score_intake, score_response
from tests.core.factories import (
    CALCULATED_EXPRESSION,
    HIDDEN,
    ITEM_WEIGHT,
    ORDINAL_VALUE,
    PROJECT_EXT,
)

YES = {"system": "urn:t", "code": "y", "display": "Yes"}
NO = {"system": "urn:t", "code": "n", "display": "No"}


def sub(url: str, **value: Any) -> dict[str, Any]:
    return {"url": url, **value}


def complex_(url: str, *subs: dict[str, Any]) -> dict[str, Any]:
    return {"url": url, "extension": list(subs)}


def fhirpath(text: str) -> dict[str, Any]:
    return {"language": "text/fhirpath", "expression": text}


def yes_no(link_id: str) -> dict[str, Any]:
    return {
        "linkId": link_id,
        "type": "choice",
        "text": link_id,
        "answerOption": [
            {
                "valueCoding": YES,
                "extension": [{"url": ITEM_WEIGHT, "valueDecimal": 1}, {"url": ORDINAL_VALUE, "valueDecimal": 1}],
            },
            {
                "valueCoding": NO,
                "extension": [{"url": ITEM_WEIGHT, "valueDecimal": 0}, {"url": ORDINAL_VALUE, "valueDecimal": 0}],
            },
        ],
    }


def total_item() -> dict[str, Any]:
    expr = " + ".join(f"%resource.repeat(item).where(linkId='q{n}').answer.value.weight()" for n in (1, 2, 3))
    return {"linkId": "total", "type": "integer", "text": "Total", "readOnly": True,
            "extension": [{"url": HIDDEN, "valueBoolean": True},
                          {"url": CALCULATED_EXPRESSION, "valueExpression": fhirpath(expr)}]}


def score_ext(**overrides: Any) -> dict[str, Any]:
    bands = [complex_("band", sub("min", valueDecimal=0), sub("max", valueDecimal=1), sub("code", valueCode="low"),
                      sub("validated", valueBoolean=False)),
             complex_("band", sub("min", valueDecimal=2), sub("max", valueDecimal=3), sub("code", valueCode="high"))]
    subs = [sub("id", valueCode="t"), sub("title", valueString="Test total"), sub("item", valueString="total"),
            sub("requires", valueString="q1"), sub("requires", valueString="q2"), sub("requires", valueString="q3"),
            sub("min", valueDecimal=0), sub("max", valueDecimal=3), *bands,
            complex_("threshold", sub("id", valueCode="positive"), sub("min", valueDecimal=2))]
    return complex_(PROJECT_EXT + "score", *subs)


def flag(flag_id: str, tier: str, when: str, *because: str, guidance: str | None = None) -> dict[str, Any]:
    subs = [sub("id", valueCode=flag_id), sub("tier", valueCode=tier), sub("when", valueExpression=fhirpath(when)),
            sub("message", valueString=f"message {flag_id}"), *[sub("because", valueString=b) for b in because]]
    if guidance:
        subs.append(sub("patientGuidance", valueString=guidance))
    return complex_(PROJECT_EXT + "flag", *subs)


def make_form(*root_extensions: dict[str, Any], key: str = "test") -> Any:
    resource = {
        "resourceType": "Questionnaire", "id": key, "url": f"https://intake.example.org/fhir/Questionnaire/{key}",
        "version": "2", "status": "active", "extension": list(root_extensions),
        "item": [{"linkId": "g", "type": "group", "text": "G", "extension": [score_ext()],
                  "item": [yes_no("q1"), yes_no("q2"), yes_no("q3"), total_item()]}],
    }
    return build_form(resource, "test")


def answer(form: Any, **codes: str) -> dict[str, Any]:
    answers = {link: [{"valueCoding": YES if value == "y" else NO}] for link, value in codes.items()}
    return build_response(form, answers, status="completed", subject="Patient/p", authored="2026-01-01T00:00:00Z")


def test_total_band_and_threshold_come_from_the_questionnaire() -> None:
    form = make_form()
    score = score_response(form, answer(form, q1="y", q2="y", q3="n")).scores[0]
    assert (score.id, score.value, score.complete, score.missing) == ("t", 2.0, True, ())
    assert (score.band.code, score.band.validated) == ("high", True)
    assert [(t.id, t.met) for t in score.thresholds] == [("positive", True)]
    low = score_response(form, answer(form, q1="y", q2="n", q3="n")).scores[0]
    assert (low.value, low.band.code, low.band.validated, low.thresholds[0].met) == (1.0, "low", False, False)


def test_missing_answer_gives_no_total_and_names_the_item() -> None:
    form = make_form()
    score = score_response(form, answer(form, q1="y", q3="y")).scores[0]
    assert (score.value, score.complete, score.missing, score.band) == (None, False, ("q2",), None)
    assert score.thresholds[0].met is None
    assert score.as_json()["total"] is None


def test_a_stored_calculated_value_is_never_trusted() -> None:
    form = make_form()
    response = answer(form, q1="n", q2="n", q3="n")
    response["item"][0]["item"].append({"linkId": "total", "text": "Total", "answer": [{"valueInteger": 3}]})
    assert score_response(form, response).scores[0].value == 0.0


def test_flags_are_evaluated_even_when_the_total_is_incomplete() -> None:
    form = make_form(flag("f1", "emergency", "%resource.repeat(item).where(linkId='q1').answer.value.code = 'y'", "q1",
                          guidance="Call now"))
    result = score_response(form, answer(form, q1="y"))
    assert not result.scores[0].complete
    assert [(f.id, f.tier, f.because, f.patient_guidance) for f in result.flags] == [
        ("f1", "emergency", ("q1",), "Call now")
    ]
    assert score_response(form, answer(form, q1="n")).flags == []


def test_findings_are_suppressed_by_named_tiers_across_domains() -> None:
    finding = complex_(
        PROJECT_EXT + "finding",
        sub("id", valueCode="pattern"),
        sub("when", valueExpression=fhirpath("%resource.repeat(item).where(linkId='q2').answer.value.code = 'y'")),
        sub("value", valueExpression=fhirpath("'TYPE-' + %resource.repeat(item).where(linkId='q3').answer.value.code")),
        sub("text", valueString="consistent with {value}"),
        sub("suppressedBy", valueCode="urgent"),
    )
    form = make_form(finding)
    other = make_form(
        flag("alarm", "urgent", "%resource.repeat(item).where(linkId='q1').answer.value.code = 'y'", "q1"), key="other"
    )
    calm = score_intake([(form, answer(form, q2="y", q3="n")), (other, answer(other, q1="n"))])
    assert [n.text for n in calm.notes] == ["consistent with TYPE-n"]
    alarmed = score_intake([(form, answer(form, q2="y", q3="n")), (other, answer(other, q1="y"))])
    assert alarmed.notes == [] and [f.id for f in alarmed.flags] == ["alarm"]


def test_cross_domain_notes_see_other_domains_and_complete_scores() -> None:
    note = complex_(
        PROJECT_EXT + "crossDomainNote",
        sub("id", valueCode="both"),
        sub(
            "when",
            valueExpression=fhirpath(
                "%scores.t >= 2 and %other.repeat(item).where(linkId='q1').answer.value.code = 'y'"
            ),
        ),
        sub("text", valueString="both domains say so"),
    )
    form = make_form(note)
    other = make_form(key="other")
    # (both forms define score "t"; the later one wins the %scores map, so both are set to 2 here)
    fired = score_intake([(form, answer(form, q1="y", q2="y", q3="n")), (other, answer(other, q1="y", q2="y", q3="n"))])
    assert [n.id for n in fired.notes] == ["both"]
    quiet = score_intake([(form, answer(form, q1="y", q2="y", q3="n")), (other, answer(other, q1="n", q2="n", q3="n"))])
    assert quiet.notes == []


def test_without_notes_the_same_flags_and_scores_and_no_notes() -> None:
    """The check run on every saved page (notes=False) raises exactly what the full scoring does."""
    note = complex_(PROJECT_EXT + "crossDomainNote", sub("id", valueCode="n"),
                    sub("when", valueExpression=fhirpath("true")), sub("text", valueString="always"))
    form = make_form(
        note, flag("alarm", "urgent", "%resource.repeat(item).where(linkId='q1').answer.value.code = 'y'", "q1")
    )
    pairs = [(form, answer(form, q1="y", q2="y", q3="n"))]
    full, quick = score_intake(pairs), score_intake(pairs, notes=False)
    assert [n.id for n in full.notes] == ["n"] and quick.notes == []
    assert quick.flags == full.flags and quick.scores == full.scores


def test_flags_are_ordered_emergency_urgent_review_and_versioned() -> None:
    form = make_form(flag("r", "review", "true"), flag("e", "emergency", "true"), flag("u", "urgent", "true"))
    result = score_intake([(form, answer(form, q1="n", q2="n", q3="n"))])
    assert [f.tier for f in result.flags] == ["emergency", "urgent", "review"]
    assert result.versions == {form.canonical: f"engine-1;{form.canonical}"}


def test_birth_date_and_threshold_reach_the_rules() -> None:
    form = make_form(flag("age", "review", "%birthDate.substring(0, 4).toInteger() <= 2026 - %giOnsetAgeThreshold"))
    response = answer(form, q1="n")
    assert [f.id for f in score_response(form, response, Context(birth_date="1970-01-01")).flags] == ["age"]
    assert score_response(form, response, Context(birth_date="1990-01-01")).flags == []
    assert [
        f.id for f in score_response(form, response, Context(birth_date="1990-01-01", gi_onset_age_threshold=30)).flags
    ] == ["age"]


def test_a_rule_that_cannot_be_evaluated_is_an_error_naming_it() -> None:
    form = make_form(flag("bad", "urgent", "%nosuchvariable.foo()"))
    with pytest.raises(RuleError, match="flag bad"):
        score_response(form, answer(form, q1="n"))


# --- flags that look across the intake; required questions switched off -------------------------


def test_flags_see_the_other_questionnaires_of_the_intake() -> None:
    """A flag reads `%other` as cross-domain notes do: raised from another domain's answer, quiet
    (not an error) when that questionnaire is not in the intake or the response is scored alone."""
    form = make_form(
        flag(
            "across",
            "review",
            "%resource.repeat(item).where(linkId='q1').answer.value.code = 'y' or "
            "%other.repeat(item).where(linkId='q2').answer.value.weight().exists($this > 0)",
            "q1",
        )
    )
    other = make_form(key="other")
    own = answer(form, q1="n", q2="n", q3="n")
    assert [f.id for f in score_intake([(form, own), (other, answer(other, q2="y"))]).flags] == ["across"]
    assert score_intake([(form, own), (other, answer(other, q2="n"))]).flags == []
    assert score_intake([(form, own)]).flags == []
    assert score_response(form, own).flags == []
    assert [f.id for f in score_response(form, answer(form, q1="y")).flags] == ["across"]


def test_flags_see_the_complete_totals_of_the_intake() -> None:
    form = make_form(flag("high", "review", "%scores.t.exists() and %scores.t >= 2"))
    assert [f.id for f in score_intake([(form, answer(form, q1="y", q2="y", q3="n"))]).flags] == ["high"]
    assert score_intake([(form, answer(form, q1="y", q2="y"))]).flags == []  # incomplete: no total


def conditional_form() -> Any:
    """q2 is asked only after q1 = Yes; the score requires both."""
    score = complex_(PROJECT_EXT + "score", sub("id", valueCode="c"), sub("item", valueString="total"),
                     sub("requires", valueString="q1"), sub("requires", valueString="q2"))
    q2 = yes_no("q2")
    q2["enableWhen"] = [{"question": "q1", "operator": "=", "answerCoding": YES}]
    total = total_item()
    total["extension"][1]["valueExpression"] = fhirpath(
        "%resource.repeat(item).where(linkId='q1').answer.value.weight() + "
        "iif(%resource.repeat(item).where(linkId='q2').answer.exists(), "
        "%resource.repeat(item).where(linkId='q2').answer.value.weight(), 0)")
    resource = {"resourceType": "Questionnaire", "id": "c", "url": "https://intake.example.org/fhir/Questionnaire/c",
                "version": "1", "status": "active",
                "item": [{"linkId": "g", "type": "group", "text": "G", "extension": [score],
                          "item": [yes_no("q1"), q2, total]}]}
    return build_form(resource, "test")


def test_a_required_question_switched_off_is_not_missing() -> None:
    form = conditional_form()
    off = score_response(form, answer(form, q1="n")).scores[0]
    assert (off.complete, off.value, off.missing) == (True, 0.0, ())
    blank = score_response(form, answer(form, q1="y")).scores[0]  # switched on, left blank: unknown
    assert (blank.complete, blank.value, blank.missing) == (False, None, ("q2",))
    full = score_response(form, answer(form, q1="y", q2="y")).scores[0]
    assert (full.complete, full.value) == (True, 2.0)
    assert score_response(form, answer(form)).scores[0].missing == ("q1",)
