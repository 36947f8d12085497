"""The clinician summary of real intakes (web flow, real WeasyPrint): page 1 of the PDF carries
every raised flag and every instrument's result; nothing a clinician or EHR reads names the
internal reference, its sections, rule ids or verification status; the reason for the visit
opens it, escaped. Writes PNGs of every PDF page for three intakes to build/test-output/pdf/."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pypdf import PdfReader
from sqlalchemy import select

from intake.services import services
from intake.storage import fhir_store
from intake.storage.models import Intake
from intake.web.forms import field_name, option_key
from tests.web.conftest import csrf, error_summary, invite_link
from tests.web.flow import fill_all, signed_in

pytestmark = pytest.mark.pdf

OUTPUT = Path(__file__).resolve().parents[2] / "build" / "test-output" / "pdf"
REASON_PAGE = "/intake/digestive/digestive-reason"
# Internal reference names, section numbers, rule ids after "because", verification words.
INTERNAL = re.compile(
    r"instruments\.md|clinical reference|\bsection \d|because: |reference tier|\bAMBER\b|"
    r"\b(?:un|partly-)?verified\b|\b(?:GI-AF|AI-RF|N-RF|AI-F)\d|\b(?:gi-af|ai-rf|n-rf)\d", re.IGNORECASE)
# What the pattern cleaner left of the maintainers' notes before the clinician citations.
CHOPPY = re.compile(r"in-house wording|in-house, clinical|sources say|checklist no validated|sign-off|"
                    r"not retrieved|\(default \d+\)", re.IGNORECASE)

NO_FLAGS = {"reason-for-visit": "Tired all the time, want to know why."}
FLAGS = {"reason-for-visit": "<b>Bleeding</b> & tummy pain", "gi-af1": "true", "n-rf2": "true",
         "phq4-1": "LA6571-9", "phq4-2": "LA6571-9", "phq4-3": "LA6571-9", "phq4-4": "LA6571-9"}
FIRST_VISIT = {"phq4-1": "LA6569-3", "phq4-2": "LA6569-3", "phq4-3": "LA6569-3", "phq4-4": "LA6569-3"}
FOLLOW_UP = {"reason-for-visit": "Follow-up: is the new diet helping?",
             "phq4-1": "LA6571-9", "phq4-2": "LA6571-9", "phq4-3": "LA6568-5", "phq4-4": "LA6568-5"}


def negative(app: Flask) -> dict[str, Any]:
    """'No' (LOINC LA32-8), or 'None of these' on the family history's checkboxes, wherever a
    question offers it: an intake that raises nothing."""
    out: dict[str, Any] = {}
    for form in services(app).catalog.forms:
        for item in form.walk():
            codes = [o.get("valueCoding", {}).get("code") for o in item.options]
            for code in ("LA32-8", "none"):
                if code in codes:
                    key = option_key(item.options[codes.index(code)])
                    out[item.link_id] = [key] if item.repeats else key
                    break
    return out


def follow_up_link(app: Flask, intake_id: str) -> str:
    """`flask intake invite --patient`: a follow-up intake for the patient of `intake_id`."""
    with services(app).sessions() as session:
        patient_id = session.get(Intake, intake_id).patient_id  # type: ignore[union-attr]
    result = app.test_cli_runner().invoke(args=["intake", "invite", "--patient", patient_id])
    assert result.exit_code == 0, result.output
    return "/i/" + result.output.strip().rsplit("/i/", 1)[1]


def complete(app: Flask, overrides: dict[str, Any], *, name: str = "", birth_date: str = "",
             link: str | None = None) -> str:
    """Invite, answer every page from the reason for the visit on, submit; the intake id."""
    client = app.test_client()
    client.get(link or invite_link(app, name=name, birth_date=birth_date))
    fill_all(client, app, REASON_PAGE, {**negative(app), **overrides})
    review = client.get("/intake/review")
    assert client.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302
    with services(app).sessions() as session:
        intake_id = session.scalars(select(Intake.id).order_by(Intake.completed_at.desc())).first()
    assert intake_id
    return str(intake_id)


def pages_of(pdf: bytes) -> list[str]:
    return [" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(pdf)).pages]


def write_pngs(name: str, pdf: bytes) -> list[Path]:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for old in OUTPUT.glob(f"{name}-*.png"):
        old.unlink()
    source = OUTPUT / f"{name}.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "80", "-png", str(source), str(OUTPUT / name)], check=True, timeout=120)
    return sorted(OUTPUT.glob(f"{name}-*.png"))


@pytest.fixture
def intakes(app: Flask) -> dict[str, str]:
    ids = {"no-flags": complete(app, NO_FLAGS, name="Nora Noflag", birth_date="1971-01-01"),
           "flags-reflexes": complete(app, FLAGS, name="Fred Flags", birth_date="1960-05-01")}
    first = complete(app, FIRST_VISIT, name="Fay Follow", birth_date="1955-02-02")
    ids["follow-up"] = complete(app, FOLLOW_UP, link=follow_up_link(app, first))
    return ids


def test_page_one_carries_every_flag_and_result_and_nothing_internal(app: Flask, intakes: dict[str, str]) -> None:
    clinician = signed_in(app)
    for name, intake_id in intakes.items():
        summary = clinician.get(f"/clinician/intakes/{intake_id}")
        assert summary.status_code == 200
        html = summary.text
        pdf = clinician.get(f"/clinician/intakes/{intake_id}/screening-summary.pdf").data
        pages = pages_of(pdf)
        assert write_pngs(name, pdf), name
        page_one = pages[0]
        flags = re.findall(r'<span class="message">([^<]+)</span>', html)
        results = re.findall(r'<span class="score-name"[^>]*>([^<]+)</span>\s*<span class="value">([^<]+)</span>', html)
        others = re.findall(r'<span class="other"[^>]*>([^<]+?)(?:<sup|</span>)', html)
        assert results or others, name
        for text in [*flags, *(f"{n} {v}" for n, v in results), *others]:
            plain = " ".join(text.replace("&amp;", "&").replace("&#39;", "'").replace("&gt;", ">").split())
            assert plain[:50] in page_one, (name, plain)
        visible = re.sub(r"<[^>]+>", " ", html)
        assert not INTERNAL.search(visible), (name, INTERNAL.search(visible))
        for page in pages:
            assert not INTERNAL.search(page), (name, INTERNAL.search(page))
        with services(app).sessions() as session:
            stored = [json.loads(r.resource_json) for kind in ("Observation", "Flag")
                      for r in fhir_store.resources_of_intake(session, intake_id, kind)]
        assert stored, name
        for resource in stored:
            read = [n["text"] for n in resource.get("note") or []] + [resource["code"].get("text", "")]
            assert all(read) and not any(INTERNAL.search(text) for text in read), (name, read)
        # the references are the forms' clinician citations, not the maintainers' notes cleaned up
        notes = " ".join(n["text"] for r in stored for n in r.get("note") or [])
        assert "Source: Kroenke K, Spitzer RL, Williams JBW, Löwe B. Psychosomatics 2009;50:613-21." in notes
        references = html[html.index('id="references-title"'):]
        assert "Kroenke K, Spitzer RL, Williams JBW, Löwe B. Psychosomatics 2009;50:613-21." in references
        assert not CHOPPY.search(references) and not CHOPPY.search(" ".join(pages)), name
        if name == "no-flags":
            assert "No red flags raised." in page_one and "Tired all the time" in page_one
            assert "Within limits or no validated cut-off" in page_one
        if name == "flags-reflexes":
            assert "&lt;b&gt;Bleeding&lt;/b&gt; &amp; tummy pain" in html and "<b>Bleeding" not in html  # escaped
            assert "<b>Bleeding</b> & tummy pain" in page_one
            assert page_one.index("Reason for the visit") < page_one.index("Red flags") < page_one.index(
                "Positive findings")
            assert "What to do: Contact the patient today" in page_one
            assert "IBS pattern not assessed: an alarm feature was raised" in page_one
            assert "PHQ-9" in page_one and "GAD-7" in page_one  # the reflexes
            assert "first result" not in page_one and "first time" not in page_one  # every score is first
            assert "(expedited review)" not in page_one  # said by "What to do: Expedited review"
            assert "Clinic protocol (not a published instrument)." in references  # the in-house rules
            assert "Lacy BE, Patel NK. J Clin Med 2017;6:99" in references
        if name == "follow-up":
            assert " since " in page_one  # change since the first visit
            assert "GAD-7 6/21 · Mild (5–9) · first result" in page_one  # a reflex the first visit did not reach


def test_the_reason_is_bounded_with_a_clear_error(app: Flask) -> None:
    client = app.test_client()
    client.get(invite_link(app, name="Long Story", birth_date="1980-01-01"))
    page = client.get(REASON_PAGE)
    assert page.status_code == 200 and "What would you most like help with" in page.text
    name = field_name("reason-for-visit")
    response = client.post(REASON_PAGE, data={name: "x" * 501, "csrf_token": csrf(page.text)})
    assert response.status_code == 400  # the page again, with its error summary
    assert any("500 characters or fewer" in message for _, message in error_summary(response.text))
    ok = client.post(REASON_PAGE, data={name: "", "csrf_token": csrf(page.text)})
    assert ok.status_code == 302  # optional
