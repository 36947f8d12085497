"""`flask intake score PATH`, through Flask's CLI runner, with responses to the real forms.

Score ids are read from the catalog's Questionnaires (the `score` extension); the stress totals
are also checked against hand-computed published totals, and fail if a form stops declaring them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result as CliResult
from flask import Flask

import intake.cli.score
from intake.core import extensions as ext
from intake.core.answers import build_response
from intake.core.catalog import Catalog
from intake.core.items import Form
from intake.core.scoring import SCORE, Context, score_intake
from intake.services import services
from tests.web.conftest import app, client  # noqa: F401  (fixtures)

SUBJECT = "Patient/p1"
AUTHORED = "2026-11-20T09:30:00Z"


# --- helpers ------------------------------------------------------------------------------------


def catalog(app: Flask) -> Catalog:  # noqa: F811
    return services(app).catalog


def form(app: Flask, key: str) -> Form:  # noqa: F811
    return catalog(app).by_key[key]


def score_ids(form: Form) -> list[str]:
    """The ids of the `score` extensions the Questionnaire declares, in document order."""
    ids = []
    for item in form.walk():
        for extension in ext.find(item.raw, SCORE):
            for sub in extension.get("extension") or []:
                if sub.get("url") == "id":
                    ids.append(str(sub.get("valueCode") or sub.get("valueString")))
    return ids


def fill(form: Form, option: int) -> dict[str, list[dict[str, Any]]]:
    """Answer every question: choices with answerOption[option] (the last one if fewer), booleans
    No, numbers their minimum or 1; calculated (read-only) items are left to the engine."""
    answers: dict[str, list[dict[str, Any]]] = {}
    for item in form.walk():
        if not item.is_question or item.read_only:
            continue
        if item.type == "choice" and item.options:
            answers[item.link_id] = [{"valueCoding": item.options[min(option, len(item.options) - 1)]["valueCoding"]}]
        elif item.type == "boolean":
            answers[item.link_id] = [{"valueBoolean": False}]
        elif item.type in ("integer", "decimal"):
            low = next(iter((item.min_value or {"v": 1}).values()))
            key = "valueInteger" if item.type == "integer" else "valueDecimal"
            answers[item.link_id] = [{key: int(low) if item.type == "integer" else float(low)}]
    return answers


def respond(form: Form, option: int, *, subject: str = SUBJECT, **kw: Any) -> dict[str, Any]:
    return build_response(form, fill(form, option), status="completed", subject=subject, authored=AUTHORED, **kw)


def bundle(*resources: dict[str, Any], type_: str = "collection") -> dict[str, Any]:
    entries = []
    for n, resource in enumerate(resources):
        entry: dict[str, Any] = {"fullUrl": f"urn:uuid:00000000-0000-0000-0000-{n:012d}", "resource": resource}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": type_, "entry": entries}


def patient(birth_date: str, id_: str = "p1") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": id_, "birthDate": birth_date}


def run(app: Flask, document: Any, tmp_path: Path, *args: str) -> CliResult:  # noqa: F811
    path = tmp_path / "input.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    return app.test_cli_runner().invoke(args=["intake", "score", *args, str(path)])


def ok_json(result: CliResult) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return json.loads(result.stdout)


def outcome(result: CliResult) -> dict[str, Any]:
    """The OperationOutcome of a failed run: exit 1, nothing on stdout, JSON on stderr."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit)
    document = json.loads(result.stderr)
    assert document["resourceType"] == "OperationOutcome"
    return document


def one_line_error(result: CliResult) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def expected(pairs: list[tuple[Form, dict[str, Any]]], app: Flask, birth_date: str | None = None) -> dict[str, Any]:  # noqa: F811
    context = Context(birth_date=birth_date, gi_onset_age_threshold=app.config.get("INTAKE_GI_ONSET_AGE", 50))
    return score_intake(pairs, context).as_json()


# --- scoring ------------------------------------------------------------------------------------


def test_stress_response_prints_the_engines_result(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    stress = form(app, "stress")
    response = respond(stress, 2)  # mid-range: PHQ-4 subscales 4 and 4, so PHQ-9 and GAD-7 are on
    links = {i["linkId"] for i in response["item"]}
    assert {"stress-pss10", "stress-phq4", "stress-phq9", "stress-gad7"} <= links

    out = ok_json(run(app, response, tmp_path))

    assert out == expected([(stress, response)], app)
    assert set(out) == {"scores", "flags", "notes", "suppressed", "scoringVersions"}
    assert [s["id"] for s in out["scores"]] == score_ids(stress)
    for s in out["scores"]:
        assert {"id", "total", "band", "complete"} <= set(s)
        assert s["complete"] is True and isinstance(s["total"], int | float), s
    for f in out["flags"]:
        assert {"id", "tier", "because"} <= set(f)
    assert out["scoringVersions"] == {stress.canonical: f"engine-1;{stress.canonical}"}


def test_all_never_stress_response_prints_the_engines_result(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    stress = form(app, "stress")
    response = respond(stress, 0)
    assert not {"stress-phq9", "stress-gad7"} & {i["linkId"] for i in response["item"]}  # no reflex
    out = ok_json(run(app, response, tmp_path))
    assert out == expected([(stress, response)], app)
    # PHQ-9 and GAD-7 were not administered (no reflex), so they have no score row at all.
    assert [s["id"] for s in out["scores"]] == [i for i in score_ids(stress) if i not in ("phq9", "gad7")]


# Hand-computed published totals for every stress-form answer set to one option.
STRESS_TOTALS = {
    0: {"pss10": 16, "phq4": 0, "phq4-anxiety": 0, "phq4-depression": 0},
    2: {"pss10": 20, "phq4": 8, "phq4-anxiety": 4, "phq4-depression": 4, "phq9": 18, "gad7": 14},
}


@pytest.mark.parametrize("option", sorted(STRESS_TOTALS), ids=["all-never", "all-mid"])
def test_stress_totals_match_the_published_instruments(app: Flask, tmp_path: Path, option: int) -> None:  # noqa: F811
    stress = form(app, "stress")
    declared = set(score_ids(stress))
    assert set(STRESS_TOTALS[option]) <= declared  # a form that stops declaring a score fails here
    out = ok_json(run(app, respond(stress, option), tmp_path))
    totals = {s["id"]: (s["total"], s["complete"]) for s in out["scores"]}
    wanted = STRESS_TOTALS[option]
    assert {k: totals.get(k) for k in wanted} == {k: (v, True) for k, v in wanted.items()}
    if option == 0:
        assert "phq9" not in totals or totals["phq9"][1] is False  # the reflex page was never on


def test_bundle_with_two_responses_is_scored_as_one_intake(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    stress, neuropathy = form(app, "stress"), form(app, "neuropathy")
    first, second = respond(stress, 2), respond(neuropathy, 1)
    document = bundle(first, patient("1961-07-15"), second, {"resourceType": "Observation", "status": "final"},
                      type_="document")

    out = ok_json(run(app, document, tmp_path))

    assert out == expected([(stress, first), (neuropathy, second)], app, birth_date="1961-07-15")
    assert set(out["scoringVersions"]) == {stress.canonical, neuropathy.canonical}
    assert [s["id"] for s in out["scores"]] == score_ids(stress) + score_ids(neuropathy)


def test_stdin(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    stress = form(app, "stress")
    response = respond(stress, 1)
    result = app.test_cli_runner().invoke(args=["intake", "score", "-"], input=json.dumps(response))
    assert ok_json(result) == expected([(stress, response)], app)
    assert result.stdout == run(app, response, tmp_path).stdout


def test_output_is_indented_json(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    result = run(app, respond(form(app, "stress"), 0), tmp_path)
    assert result.stdout.startswith('{\n  "scores": ')


@pytest.mark.parametrize("where", ["option", "contained", "bundle", "bundle-relative", "none"])
def test_birth_date_reaches_the_rules(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:  # noqa: F811

    seen: list[Context] = []

    def spy(pairs: list[tuple[Form, dict[str, Any]]], context: Context) -> Any:
        seen.append(context)
        return score_intake(pairs, context)

    monkeypatch.setattr(intake.cli.score, "score_intake", spy)
    app.config["INTAKE_GI_ONSET_AGE"] = 45
    stress = form(app, "stress")
    args: list[str] = []
    if where == "option":
        document: dict[str, Any] = respond(stress, 0)
        args = ["--birth-date", "1955-03-09"]
    elif where == "contained":
        document = respond(stress, 0, subject="#pat")
        document["contained"] = [patient("1955-03-09", "pat")]
    elif where == "bundle":
        document = bundle(respond(stress, 0, subject="urn:uuid:00000000-0000-0000-0000-000000000001"),
                          patient("1955-03-09", "other-id"))
    elif where == "bundle-relative":
        document = bundle(respond(stress, 0, subject="Patient/p9"), patient("1955-03-09", "p9"))
        document["entry"][1]["fullUrl"] = "https://ehr.example.org/fhir/Patient/p9"
    else:
        document = bundle(respond(stress, 0, subject="Patient/elsewhere"), patient("1999-01-01", "p1"))

    ok_json(run(app, document, tmp_path, *args))

    born = None if where == "none" else "1955-03-09"
    assert seen == [Context(birth_date=born, gi_onset_age_threshold=45)]


def test_birth_date_option_overrides_the_patient(app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811

    seen: list[Context] = []
    monkeypatch.setattr(
        intake.cli.score, "score_intake", lambda pairs, context: seen.append(context) or score_intake(pairs, context)
    )
    document = bundle(respond(form(app, "stress"), 0), patient("1999-01-01"))
    ok_json(run(app, document, tmp_path, "--birth-date", "1970-01-31"))
    assert seen[0].birth_date == "1970-01-31"


# --- invalid responses: OperationOutcome on stderr ----------------------------------------------


def tamper(response: dict[str, Any]) -> dict[str, Any]:
    """A copy whose first answer has an option code the Questionnaire does not offer."""
    bad = copy.deepcopy(response)
    bad["item"][0]["item"][0]["answer"][0]["valueCoding"]["code"] = "LA-NOT-AN-OPTION"
    return bad


def test_tampered_option_code_is_an_operation_outcome(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    response = tamper(respond(form(app, "stress"), 0))
    link = response["item"][0]["item"][0]["linkId"]
    issues = outcome(run(app, response, tmp_path))["issue"]
    assert [(i["severity"], i["code"]) for i in issues] == [("error", "code-invalid")]
    assert issues[0]["expression"] == [f"QuestionnaireResponse.repeat(item).where(linkId='{link}')"]
    assert "LA-NOT-AN-OPTION" not in json.dumps(issues)  # answers are never echoed


def test_an_invalid_response_in_a_bundle_fails_the_whole_bundle(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    good, bad = respond(form(app, "neuropathy"), 1), tamper(respond(form(app, "stress"), 0))
    issues = outcome(run(app, bundle(good, bad), tmp_path))["issue"]
    assert len(issues) == 1 and issues[0]["code"] == "code-invalid"
    assert issues[0]["diagnostics"].startswith("Bundle.entry[1].resource: Item '")
    assert issues[0]["expression"][0].startswith("Bundle.entry[1].resource.repeat(item)")


def test_missing_required_answer_is_an_operation_outcome(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    stress = form(app, "stress")
    answers = fill(stress, 0)
    del answers["pss10-1"]
    response = build_response(stress, answers, status="completed", subject=SUBJECT, authored=AUTHORED)
    issues = outcome(run(app, response, tmp_path))["issue"]
    assert ("error", "required") in {(i["severity"], i["code"]) for i in issues}


def test_unknown_questionnaire_is_an_operation_outcome_naming_it(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    response = respond(form(app, "stress"), 0)
    response["questionnaire"] = "https://intake.example.org/fhir/Questionnaire/stress|9.9.9"
    issues = outcome(run(app, response, tmp_path))["issue"]
    assert [(i["severity"], i["code"]) for i in issues] == [("error", "not-found")]
    assert "https://intake.example.org/fhir/Questionnaire/stress|9.9.9" in issues[0]["diagnostics"]


def test_response_without_questionnaire_is_an_operation_outcome(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    response = respond(form(app, "stress"), 0)
    del response["questionnaire"]
    assert outcome(run(app, response, tmp_path))["issue"][0]["code"] == "not-found"


# --- unusable input: one line -------------------------------------------------------------------


def test_malformed_json_is_one_line(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    line = one_line_error(run(app, '{"resourceType": "QuestionnaireResponse",', tmp_path))
    assert "not valid JSON: line 1 column" in line


def test_malformed_json_on_stdin_is_one_line(app: Flask) -> None:  # noqa: F811
    result = app.test_cli_runner().invoke(args=["intake", "score", "-"], input="{nope")
    assert one_line_error(result).startswith("error: stdin: not valid JSON")


@pytest.mark.parametrize(
    "document, message",
    [
        ("", "is empty"),
        ("[1, 2]", "not a QuestionnaireResponse or a Bundle (not a FHIR resource)"),
        ({"resourceType": "Patient"}, "not a QuestionnaireResponse or a Bundle (a Patient)"),
        ({"resourceType": "Bundle", "type": "collection"}, "the Bundle has no QuestionnaireResponse entries"),
        ({"resourceType": "Bundle", "type": "collection", "entry": {"x": 1}}, "Bundle.entry is not a list"),
        ('{"resourceType": "QuestionnaireResponse", "x": NaN}', "NaN is not a JSON number"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_unusable_input_is_one_line(app: Flask, tmp_path: Path, document: Any, message: str) -> None:  # noqa: F811
    assert message in one_line_error(run(app, document, tmp_path))


def test_unreadable_inputs_are_one_line(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    runner = app.test_cli_runner()
    missing = one_line_error(runner.invoke(args=["intake", "score", str(tmp_path / "nope.json")]))
    assert missing == f"error: {tmp_path / 'nope.json'}: cannot be read: No such file or directory"
    assert "cannot be read" in one_line_error(runner.invoke(args=["intake", "score", str(tmp_path)]))
    (tmp_path / "latin1.json").write_bytes(b'{"a": "\xe9"}')
    assert "not UTF-8" in one_line_error(runner.invoke(args=["intake", "score", str(tmp_path / "latin1.json")]))


@pytest.mark.parametrize("value", ["1970", "05/01/1970", "1970-02-30", "2999-01-01"])
def test_bad_birth_date_option_is_one_line(app: Flask, tmp_path: Path, value: str) -> None:  # noqa: F811
    line = one_line_error(run(app, respond(form(app, "stress"), 0), tmp_path, "--birth-date", value))
    assert line.startswith("error: --birth-date ")


def test_partial_patient_birth_date_asks_for_the_option(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    document = bundle(respond(form(app, "stress"), 0), patient("1961"))
    assert "give --birth-date" in one_line_error(run(app, document, tmp_path))
    assert run(app, document, tmp_path, "--birth-date", "1961-06-01").exit_code == 0


def test_one_intake_at_a_time(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    stress = form(app, "stress")
    twice = bundle(respond(stress, 0), respond(stress, 1))
    assert "answer the same questionnaire" in one_line_error(run(app, twice, tmp_path))
    two_patients = bundle(respond(stress, 0), respond(form(app, "neuropathy"), 1, subject="Patient/p2"))
    assert "different subjects" in one_line_error(run(app, two_patients, tmp_path))
