"""The `flask intake` commands, through Flask's CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from tests.web.conftest import app, client  # noqa: F401  (fixtures)

LHC = Path(__file__).resolve().parents[3] / "shared" / "fhircheck" / "fixtures" / "lhc-forms"


def test_invite_prints_a_link_with_a_256_bit_token(app: Flask) -> None:  # noqa: F811
    result = app.test_cli_runner().invoke(args=["intake", "invite", "--name", "Ana Diaz", "--birth-date", "1970-05-01"])
    assert result.exit_code == 0
    link = result.output.strip()
    assert link.startswith("http://127.0.0.1:5000/i/")
    assert len(link.rsplit("/", 1)[1]) >= 43  # 32 random bytes, base64url


@pytest.mark.parametrize(
    "args, message",
    [
        (["--name", "A", "--birth-date", "05/01/1970"], "--birth-date must be a date"),
        (["--name", "A", "--birth-date", "2999-01-01"], "birth date is in the future"),
        (["--name", "   ", "--birth-date", "1970-01-01"], "patient name is required"),
        (["--name", "A", "--birth-date", "1970-01-01", "--questionnaires", "nope"], "unknown questionnaire 'nope'"),
        (["--name", "A", "--birth-date", "1970-01-01", "--appointment", "soon"], "--appointment must be"),
    ],
)
def test_invite_rejects_bad_input_with_one_line(app: Flask, args: list[str], message: str) -> None:  # noqa: F811
    result = app.test_cli_runner().invoke(args=["intake", "invite", *args])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_lint_forms_passes_the_project_forms(app: Flask) -> None:  # noqa: F811
    result = app.test_cli_runner().invoke(args=["intake", "lint-forms"])
    assert result.exit_code == 0, result.output
    assert "11 ok, 0 failed" in result.output  # five forms and their six earlier versions (forms/archive)


def test_lint_forms_on_lhc_form_builder_exports(app: Flask) -> None:  # noqa: F811
    if not LHC.exists():
        pytest.skip("../shared/fhircheck/fixtures/lhc-forms is not beside this clone")
    result = app.test_cli_runner().invoke(args=["intake", "lint-forms", str(LHC)])
    assert result.exit_code == 1
    assert "ok   " + str(LHC / "hunger-vital-signs.json") in result.output
    assert "ok   " + str(LHC / "weight-height-questionnaire.json") in result.output
    assert "FAIL " + str(LHC / "phq9.json") in result.output
    assert "linkId '/44261-6' error: extension.3.valueExpression.name" in result.output
    assert "vital-sign-questionnaire.json: error: has no url" in result.output
    assert "2 ok, 2 failed" in result.output


def test_lint_forms_missing_path_fails_with_one_line(app: Flask) -> None:  # noqa: F811
    result = app.test_cli_runner().invoke(args=["intake", "lint-forms", "/no/such/file.json"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: /no/such/file.json: no such file or folder"


def test_demo_and_init_db(app: Flask) -> None:  # noqa: F811
    runner = app.test_cli_runner()
    assert runner.invoke(args=["intake", "init-db"]).output.strip() == "database is up to date"
    demo = runner.invoke(args=["intake", "demo"])
    assert demo.exit_code == 0 and "Demo patient link: http://127.0.0.1:5000/i/" in demo.output
