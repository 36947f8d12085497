"""The layering rule (DESIGN.md, "The one-way flow"): intake.core imports no web, DB or PDF library.

The libraries are the `pure-core` import-linter contract's (pyproject.toml), which `make lint`
checks statically for every layer; this probe adds what a static check cannot see: a library
loaded through a third-party import. It runs in a fresh interpreter, because this test process
has long since imported Flask and SQLAlchemy through tests/conftest.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "intake" / "core"
CORE_MODULES = sorted(p.stem for p in CORE.glob("*.py") if p.stem != "__init__")
# What the probe imports: every core module, and the exception tree, which is as pure (the contract).
PROBED = [f"intake.core.{name}" for name in CORE_MODULES] + ["intake.errors"]


def _pure_core_contract() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c.get("id") == "pure-core")


FORBIDDEN = tuple(sorted(_pure_core_contract()["forbidden_modules"]))

# Imports every probed module and prints the forbidden top-level packages that ended up loaded.
PROBE = textwrap.dedent(
    """
    import importlib, sys
    {prelude}
    for name in {modules!r}:
        importlib.import_module(name)
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({forbidden!r}))
    print(",".join(loaded))
    """
)

# Registers `intake` as a bare namespace so that intake/__init__.py (the app factory, which may
# import Flask: it is the edge) is not executed and only intake.core's own imports are measured.
BARE_PARENT = textwrap.dedent(
    """
    import types
    pkg = types.ModuleType("intake")
    pkg.__path__ = [{path!r}]
    sys.modules["intake"] = pkg
    """
)


def _loaded_after_import(prelude: str = "") -> list[str]:
    code = PROBE.format(prelude=prelude, modules=PROBED, forbidden=FORBIDDEN)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.strip()
    return out.split(",") if out else []


def test_the_contract_forbids_at_least_the_web_db_and_pdf_libraries():
    assert {"flask", "sqlalchemy", "weasyprint", "wtforms", "flask_wtf", "celery", "werkzeug"} <= set(FORBIDDEN)
    assert set(_pure_core_contract()["source_modules"]) == {"intake.core", "intake.errors"}


def test_every_core_module_is_probed():
    assert {
        "answers",
        "catalog",
        "enablement",
        "extensions",
        "fhir_models",
        "fhirpath",
        "items",
        "lint",
        "validation",
    } <= set(CORE_MODULES)


def test_core_modules_themselves_load_no_web_db_or_pdf_library():
    prelude = BARE_PARENT.format(path=str(ROOT / "intake"))
    assert _loaded_after_import(prelude) == []


def test_probe_reports_a_forbidden_library():
    prelude = BARE_PARENT.format(path=str(ROOT / "intake")) + "\nimport wtforms\n"
    assert _loaded_after_import(prelude) == ["wtforms"]


def test_importing_intake_core_loads_no_web_db_or_pdf_library():
    assert _loaded_after_import() == []


IMPORT_LINE = re.compile(rf"^\s*(?:import|from)\s+({'|'.join(FORBIDDEN)})\b", re.MULTILINE)


@pytest.mark.parametrize("path", [*sorted(CORE.glob("*.py")), ROOT / "intake" / "errors.py"], ids=lambda p: p.name)
def test_no_forbidden_import_statement(path: Path):
    assert IMPORT_LINE.findall(path.read_text(encoding="utf-8")) == []


def test_static_check_would_catch_a_forbidden_import():
    sample = "from __future__ import annotations\n\n    from flask import current_app\nimport sqlalchemy.orm\n"
    assert IMPORT_LINE.findall(sample) == ["flask", "sqlalchemy"]
