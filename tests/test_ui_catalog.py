"""The Spanish UI catalog (intake/translations) covers every patient-facing string of the code
and templates, with the same placeholders, and compiles; the build compiles it (`make`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
PO = ROOT / "intake/translations/es/LC_MESSAGES/messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """What `make translations` extracts today (babel.cfg), as msgid -> message."""
    pot = tmp_path_factory.mktemp("pot") / "messages.pot"
    subprocess.run([str(Path(sys.executable).with_name("pybabel")), "extract", "-F", "babel.cfg", "-k", "_l",
                    "--no-location", "-o", str(pot), "."], cwd=ROOT, check=True, capture_output=True)
    with pot.open("rb") as handle:
        return {m.id: m for m in read_po(handle) if m.id}


def forms(text: object) -> tuple[str, ...]:
    """A message's text as its forms: one for a plain message, several for a plural one."""
    return tuple(text) if isinstance(text, (list, tuple)) else (str(text or ""),)


def spanish() -> dict[str, object]:
    with PO.open("rb") as handle:
        return {m.id: m for m in read_po(handle) if m.id}


def test_every_extracted_string_has_a_spanish_translation(extracted: dict[str, object]) -> None:
    catalog = spanish()
    missing = sorted(set(extracted) - set(catalog))
    assert missing == [], "run `make translations` and translate: " + "; ".join(missing)
    untranslated = sorted(str(k) for k, m in catalog.items() if not all(forms(m.string)) or m.fuzzy)
    assert untranslated == []


def test_the_catalog_holds_nothing_the_code_no_longer_says(extracted: dict[str, object]) -> None:
    assert sorted(set(spanish()) - set(extracted)) == []


def test_placeholders_are_kept_in_every_translation() -> None:
    for msgid, message in spanish().items():
        wanted = {name for text in forms(msgid) for name in PLACEHOLDER.findall(text)}
        for text in forms(message.string):  # every plural form keeps every placeholder
            assert set(PLACEHOLDER.findall(text)) == wanted, msgid


def test_the_compiled_catalog_is_current() -> None:
    """`make install`/`make test` compile the .po; the .mo is a build product, not in git."""
    mo = PO.with_suffix(".mo")
    assert mo.exists(), "run `make install` (pybabel compile)"
    with mo.open("rb") as handle:
        compiled = {forms(m.id): forms(m.string) for m in read_mo(handle) if m.id}
    assert compiled == {forms(k): forms(m.string) for k, m in spanish().items()}
