"""The layering rule (DESIGN.md, "The one-way flow"): intake.core imports no web, DB or PDF library.

The check runs in a fresh interpreter, because this test process has long since imported Flask
and SQLAlchemy through tests/conftest.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "intake" / "core"
CORE_MODULES = sorted(p.stem for p in CORE.glob("*.py") if p.stem != "__init__")
FORBIDDEN = ("flask", "sqlalchemy", "weasyprint", "wtforms", "flask_wtf")

# Imports every core module and prints the forbidden top-level packages that ended up loaded.
PROBE = textwrap.dedent(
    """
    import importlib, sys
    {prelude}
    for name in {modules!r}:
        importlib.import_module("intake.core." + name)
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
    code = PROBE.format(prelude=prelude, modules=CORE_MODULES, forbidden=FORBIDDEN)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.strip()
    return out.split(",") if out else []


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


IMPORT_LINE = re.compile(r"^\s*(?:import|from)\s+(flask|sqlalchemy|weasyprint|wtforms|flask_wtf)\b", re.MULTILINE)


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_no_forbidden_import_statement(path: Path):
    assert IMPORT_LINE.findall(path.read_text(encoding="utf-8")) == []


def test_static_check_would_catch_a_forbidden_import():
    sample = "from __future__ import annotations\n\n    from flask import current_app\nimport sqlalchemy.orm\n"
    assert IMPORT_LINE.findall(sample) == ["flask", "sqlalchemy"]
