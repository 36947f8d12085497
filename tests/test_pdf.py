"""The clinician PDF read back with pypdf: identifiers and page x of y on every page, flags and
scores present, the given attachments embedded byte for byte, PDF/A-3b declared, tagged, the same
bytes on re-render; hostile text fetches nothing and attaches nothing; the URL fetcher."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from datetime import date, datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from intake.core.answers import build_response
from intake.core.catalog import load_catalog
from intake.core.items import Form
from intake.core.scoring import Context, score_intake
from intake.core.summary import Summary, build_summary
from intake.pdf import (
    STATIC,
    PdfAttachment,
    StaticOnlyFetcher,
    UrlRefused,
    render_summary_pdf,
)

ROOT = Path(__file__).resolve().parent.parent
CATALOG = load_catalog(ROOT / "forms")
BORN = date(1958, 3, 14)
EARLIER = datetime(2026, 5, 2, 9, 0, tzinfo=timezone.utc)
COMPLETED = datetime(2026, 11, 21, 18, 30, tzinfo=timezone.utc)
IDENTIFIER = "MRN 0042-XY"
EMERGENCY = {"n-rf2": [{"valueBoolean": True}]}
LA = "http://loinc.org"


def phq4(code: str) -> dict[str, list[dict[str, Any]]]:
    return {f"phq4-{n}": [{"valueCoding": {"system": LA, "code": code}}] for n in range(1, 5)}


def default_answers(form: Form, text: str) -> dict[str, list[dict[str, Any]]]:
    """One plausible answer per question: the first option, 'no', 1, a date, or `text`."""
    answers: dict[str, list[dict[str, Any]]] = {}
    for item in form.walk():
        if not item.is_question or item.read_only or item.hidden:
            continue
        if item.options:
            option = item.options[0]
            key = next(k for k in option if k.startswith("value"))
            answers[item.link_id] = [{key: option[key]}]
        elif item.type == "boolean":
            answers[item.link_id] = [{"valueBoolean": False}]
        elif item.type in ("integer", "decimal"):
            answers[item.link_id] = [{"valueInteger" if item.type == "integer" else "valueDecimal": 1}]
        elif item.type == "date":
            answers[item.link_id] = [{"valueDate": "2020-01-01"}]
        elif item.type in ("string", "text"):
            answers[item.link_id] = [{"valueString": text}]
    return answers


def scored(overrides: dict[str, list[dict[str, Any]]], when: datetime, text: str = "none") -> tuple[dict[str, Any], list]:
    pairs = []
    for form in CATALOG.forms:
        answers = {**default_answers(form, text), **{k: v for k, v in overrides.items() if k in form.by_link}}
        response = build_response(form, answers, status="completed", subject="Patient/p1",
                                  authored=when.strftime("%Y-%m-%dT%H:%M:%SZ"))
        pairs.append((form, response))
    return score_intake(pairs, Context(birth_date=BORN.isoformat())).as_json(), pairs


def make_summary(name: str = "Ada Example", text: str = "none") -> Summary:
    earlier, _pairs = scored(phq4("LA6569-3"), EARLIER)
    result, pairs = scored({**EMERGENCY, **phq4("LA6571-9")}, COMPLETED, text)
    return build_summary(intake_id="intake-1", patient_name=name, birth_date=BORN, completed_at=COMPLETED,
                         appointment_at=None, result=result, history=[(EARLIER, earlier)], pairs=pairs)


ATTACHMENTS = [
    PdfAttachment("QuestionnaireResponse-stress.json", b'{"resourceType":"QuestionnaireResponse","id":"qr-1"}',
                  "FHIR R4 QuestionnaireResponse/qr-1"),
    PdfAttachment("extract-stress.json", b'{"resourceType":"Bundle","type":"transaction"}', "FHIR R4 transaction Bundle"),
]


@pytest.fixture(scope="module")
def summary() -> Summary:
    return make_summary()


@pytest.fixture(scope="module")
def pdf(summary: Summary) -> bytes:
    return render_summary_pdf(summary, patient_identifier=IDENTIFIER, attachments=ATTACHMENTS)


def pages_text(pdf: bytes) -> list[str]:
    return [" ".join((page.extract_text() or "").split()) for page in PdfReader(io.BytesIO(pdf)).pages]


def test_every_page_names_the_patient_and_counts_pages(pdf: bytes) -> None:
    pages = pages_text(pdf)
    assert len(pages) >= 2
    for number, text in enumerate(pages, start=1):
        assert "Ada Example" in text and "1958-03-14" in text and IDENTIFIER in text and "2026-11-21" in text
        assert f"Page {number} of {len(pages)}" in text


def test_flags_first_scores_and_the_disclaimer(pdf: bytes, summary: Summary) -> None:
    text = " ".join(pages_text(pdf))
    assert "not a diagnosis" in text.lower()
    for flag in summary.flags:
        assert " ".join(flag["message"].split())[:60] in text
    assert summary.flags[0]["tier"] == "emergency"
    first_score = " ".join(summary.scores[0].score["title"].split())[:30]
    assert text.index("Red flags") < text.index(" ".join(summary.flags[0]["message"].split())[:40]) < text.index(first_score)
    for row in summary.scores:
        assert " ".join(row.score["title"].split())[:30] in text
        assert row.value_text in text
    phq = next(r for r in summary.scores if r.score["id"] == "phq4")
    assert phq.change is not None and phq.change_text in text  # change since the earlier intake
    assert "not a validated cut-off" in text  # PSS-10 and MEDAS bands are conventional
    assert "Kroenke" in text  # instrument citations


def test_attachments_are_embedded_byte_for_byte_and_pdfa3b_is_declared(pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(pdf))
    assert {name: data[0] for name, data in reader.attachments.items()} == {a.filename: a.data for a in ATTACHMENTS}
    metadata = reader.xmp_metadata
    assert metadata is not None
    xml = metadata.stream.get_data().decode()
    assert re.search(r"pdfaid:part(=\"|>)3", xml) and re.search(r"pdfaid:conformance(=\"|>)B", xml)
    catalog = reader.trailer["/Root"]
    assert bool(catalog["/MarkInfo"]["/Marked"]) and "/StructTreeRoot" in catalog  # tagged
    assert catalog["/Lang"] == "en"


def test_the_same_inputs_give_the_same_bytes(pdf: bytes, summary: Summary) -> None:
    assert render_summary_pdf(summary, patient_identifier=IDENTIFIER, attachments=ATTACHMENTS) == pdf
    assert render_summary_pdf(make_summary(), patient_identifier=IDENTIFIER, attachments=ATTACHMENTS) == pdf


class Counter(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"body { color: red }")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    hits: list[str] = []
    server = HTTPServer(("127.0.0.1", 0), type("Handler", (Counter,), {"hits": hits}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port, hits
    server.shutdown()
    server.server_close()
    thread.join()


def test_hostile_text_fetches_nothing_and_attaches_nothing(listener: tuple[int, list[str]]) -> None:
    port, hits = listener
    hostile = (f'<link rel=attachment href=file:///etc/passwd><img src=http://127.0.0.1:{port}/img>'
               f'<style>@import url(http://127.0.0.1:{port}/import); body{{background:url(http://127.0.0.1:{port}/bg)}}</style>'
               f'<link rel=stylesheet href=file:///etc/passwd><p style="background:url(http://127.0.0.1:{port}/p)">x</p>')
    summary = make_summary(name=f"Eve {hostile}", text=hostile)
    pdf = render_summary_pdf(summary, patient_identifier=IDENTIFIER, attachments=ATTACHMENTS)
    assert hits == []
    reader = PdfReader(io.BytesIO(pdf))
    assert set(reader.attachments) == {a.filename for a in ATTACHMENTS}
    assert b"root:x:0:0" not in pdf
    text = " ".join(pages_text(pdf))
    assert "<link rel=attachment href=file:///etc/passwd>" in text  # shown as the literal text typed
    assert f"@import url(http://127.0.0.1:{port}/import)" in text


def test_the_fetcher_serves_only_static_files() -> None:
    fetcher = StaticOnlyFetcher()
    response = fetcher.fetch((STATIC / "pdf.css").as_uri())
    assert b"@page" in (response.read() if hasattr(response, "read") else response.body)  # type: ignore[attr-defined]
    for url in ("file:///etc/passwd", (STATIC / ".." / "pyproject.toml").as_uri(), f"file://{STATIC}/../intake/pdf.py",
                "http://127.0.0.1:9/x.css", "https://example.org/x.css", "data:text/css,body{}", "ftp://x/y",
                "file://evil.example/etc/passwd", (STATIC / "nope.css").as_uri(), "//127.0.0.1/x"):
        with pytest.raises(UrlRefused):
            fetcher.fetch(url)
