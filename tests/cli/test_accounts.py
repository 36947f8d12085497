"""`flask intake user ...`, `flask intake audit ...` and `flask intake api-client`: one line and a
non-zero exit on errors."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask

from tests.smart_client import SmartClient
from tests.web.conftest import app  # noqa: F401  (fixture)


def test_user_add_list_and_errors(app: Flask) -> None:  # noqa: F811
    runner = app.test_cli_runner()
    result = runner.invoke(args=["intake", "user", "add", "Admin1", "--role", "admin", "--display-name", "First Admin"],
                           input="a long admin password\n" * 2)
    assert result.exit_code == 0 and "user admin1 (admin) added" in result.output
    listing = runner.invoke(args=["intake", "user", "list"])
    assert listing.exit_code == 0 and listing.output.split("\t")[:4] == ["admin1", "admin", "-", "active"]
    again = runner.invoke(args=["intake", "user", "add", "admin1", "--role", "admin"], input="a long admin password\n" * 2)
    assert again.exit_code == 1 and again.output.splitlines()[-1] == "error: there is already a user 'admin1'"
    short = runner.invoke(args=["intake", "user", "add", "other", "--role", "clinician"], input="short\n" * 2)
    assert short.exit_code == 1 and "12 to 256" in short.output
    missing = runner.invoke(args=["intake", "user", "disable", "ghost"])
    assert missing.exit_code == 1 and missing.output.strip() == "error: no user 'ghost'"
    assert runner.invoke(args=["intake", "user", "totp", "admin1"]).exit_code == 1  # needs --clear
    assert "password" not in runner.invoke(args=["intake", "user", "list"]).output


def test_audit_verify_on_an_empty_log_and_export(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    runner = app.test_cli_runner()
    result = runner.invoke(args=["intake", "audit", "verify"])
    assert result.exit_code == 0 and "audit log intact: 0 rows" in result.output
    out = tmp_path / "audit.ndjson"
    assert runner.invoke(args=["intake", "audit", "export", "-o", str(out)]).exit_code == 0
    assert out.read_text() == ""  # the export's own row is written after it
    assert "intact: 1 rows" in runner.invoke(args=["intake", "audit", "verify"]).output
    bad = runner.invoke(args=["intake", "audit", "export", "-o", str(tmp_path / "no" / "such" / "dir" / "x")])
    assert bad.exit_code == 1 and bad.output.startswith("error:")


def test_finding_8_api_client_named_like_a_staff_user_is_refused(app: Flask, tmp_path: Path) -> None:  # noqa: F811
    runner = app.test_cli_runner()
    jwks = tmp_path / "keys.json"
    jwks.write_text(json.dumps(SmartClient("lab", "ES384").jwks))
    for name in ("user:clin", "client:lab", "USER"):
        result = runner.invoke(args=["intake", "api-client", name, "--jwks", str(jwks)])
        assert result.exit_code == 1 and len(result.output.splitlines()) == 1, result.output
        assert result.output.startswith("error: client name") and "mistaken for another kind" in result.output
    result = runner.invoke(args=["intake", "api-client", "clin", "--jwks", str(jwks)])
    assert result.exit_code == 0 and result.output.startswith("client clin: system/*.read")
