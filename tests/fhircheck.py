"""Run ../shared/fhircheck (the independent FHIR R4 checker) over exported files, or skip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FHIRCHECK = ROOT.parent / "shared" / "fhircheck"
FORMS = ROOT / "forms"


def fhircheck(*paths: Path, strict: bool = True) -> str:
    """Check `paths` with the Questionnaires in forms/ (every QR must resolve); return the report.

    Skips, saying why, where the checker is not beside this clone or its npm packages are missing.
    """
    if not (FHIRCHECK / "check.sh").exists():
        pytest.skip("../shared/fhircheck is not beside this clone")
    if not (FHIRCHECK / "node_modules").exists() or shutil.which("node") is None:
        pytest.skip("fhircheck dependencies missing: run (cd ../shared/fhircheck && npm ci)")
    args = [str(FHIRCHECK / "check.sh"), "--require-questionnaire", "-q", str(FORMS)]
    if strict:
        args.insert(1, "--strict")
    result = subprocess.run(args + [str(p) for p in paths], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result.stdout
