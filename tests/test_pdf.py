"""The clinician PDF read back with pypdf: identifiers and page x of y on every page, flags and
scores present, the given attachments embedded byte for byte, PDF/A-3b declared, tagged, the same
bytes on re-render; hostile text fetches nothing and attaches nothing; the URL fetcher."""

from __future__ import annotations

import gc
import io
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import weasyprint
from pypdf import PdfReader
from weasyprint.urls import FatalURLFetchingError, fetch

from intake.core.answers import build_response
from intake.core.catalog import load_catalog
from intake.core.items import Form
from intake.core.scoring import Context, score_intake
from intake.core.summary import AnswerGroup, AnswerRow, ScoreRow, Summary, build_summary
from intake.pdf import (
    STATIC,
    STATIC_BASE,
    PdfAttachment,
    StaticOnlyFetcher,
    UrlRefused,
    font_config,
    gc_paused,
    html_to_pdf,
    render_summary_html,
    render_summary_pdf,
    stylesheet,
)

pytestmark = pytest.mark.pdf  # the real WeasyPrint render (these call it directly, too)

ROOT = Path(__file__).resolve().parent.parent
CATALOG = load_catalog(ROOT / "forms")
BORN = date(1958, 3, 14)
EARLIER = datetime(2026, 5, 2, 9, 0, tzinfo=UTC)
COMPLETED = datetime(2026, 11, 21, 18, 30, tzinfo=UTC)
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


def scored(
    overrides: dict[str, list[dict[str, Any]]], when: datetime, text: str = "none"
) -> tuple[dict[str, Any], list]:
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
    PdfAttachment(
        "QuestionnaireResponse-stress.json",
        b'{"resourceType":"QuestionnaireResponse","id":"qr-1"}',
        "FHIR R4 QuestionnaireResponse/qr-1",
    ),
    PdfAttachment(
        "extract-stress.json", b'{"resourceType":"Bundle","type":"transaction"}', "FHIR R4 transaction Bundle"
    ),
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
        assert " ".join(flag["headline"].split())[:60] in text
    assert summary.flags[0]["tier"] == "emergency"
    first_score = summary.positives[0].row.short_title if summary.positives[0].row else summary.others[0].short_title
    assert (
        text.index("Red flags")
        < text.index(" ".join(summary.flags[0]["headline"].split())[:40])
        < text.index(first_score)
    )
    for row in summary.scores:
        assert row.short_title in text
        assert row.value_of_max in text
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
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"body { color: red }")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    hits: ClassVar[list[str]] = []
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


def squash(text: str) -> str:
    """Text without whitespace: extraction breaks lines (and keeps or drops spaces) as laid out."""
    return re.sub(r"\s+", "", text)


def hostile_snippets(port: int) -> list[str]:
    return [
        "<link rel=attachment href=file:///etc/passwd>",
        f"<img src=http://127.0.0.1:{port}/x>",
        f'<p style="background:url(http://127.0.0.1:{port}/y)">styled</p>',
        f"<style>@import url(http://127.0.0.1:{port}/z);</style>",
        "<link rel=stylesheet href=file:///etc/passwd>",
    ]


def test_hostile_answers_notes_and_identifier_print_literally(summary: Summary,
                                                              listener: tuple[int, list[str]]) -> None:
    """The forms have no free-text question, so the hostile strings are planted in the view model
    itself (answer rows, a note, the identifier), where any patient text would end up."""
    port, hits = listener
    snippets = hostile_snippets(port)
    domains = list(summary.domains)
    domains[0] = replace(domains[0], groups=[*domains[0].groups, AnswerGroup(title="Free text", rows=[
        AnswerRow(question=f"Anything else? ({n})", answer=snippet, link_id=f"free-{n}")
        for n, snippet in enumerate(snippets)])])
    planted = replace(summary, domains=domains, notes=[*summary.notes, {"text": snippets[3], "kind": "finding"}],
                      references=[*summary.references, snippets[2]], reason=snippets[4])
    pdf = render_summary_pdf(planted, patient_identifier=snippets[1], attachments=ATTACHMENTS)
    assert hits == []
    reader = PdfReader(io.BytesIO(pdf))
    assert {name: data for name, data in reader.attachments.items()} == {a.filename: [a.data] for a in ATTACHMENTS}
    assert b"root:x:0:0" not in pdf
    pages = [squash(page.extract_text()) for page in reader.pages]
    for snippet in snippets:
        assert squash(snippet) in "".join(pages), snippet
    assert all(squash(snippets[1]) in page for page in pages)  # the identifier, in every page header


@pytest.mark.parametrize("n", range(5))
def test_raw_hostile_html_stops_the_rendering(n: int, listener: tuple[int, list[str]]) -> None:
    """Defence in depth: were markup to get past the escaping, the fetcher refuses its URL and no
    PDF is made at all (rather than one with something fetched or attached)."""
    port, hits = listener
    html = f"<!doctype html><html lang=en><title>t</title><body>{hostile_snippets(port)[n]}<p>text</p>"
    with pytest.raises(FatalURLFetchingError) as error:
        html_to_pdf(html, attachments=ATTACHMENTS)
    assert isinstance(error.value.__cause__, UrlRefused)
    assert hits == []


def test_attachments_carry_media_type_relationship_and_the_intake_date(pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(pdf))
    specs = {spec["/UF"]: spec for spec in (ref.get_object() for ref in reader.trailer["/Root"]["/AF"])}
    assert set(specs) == {a.filename for a in ATTACHMENTS}
    for attachment in ATTACHMENTS:
        spec = specs[attachment.filename]
        stream = spec["/EF"]["/F"].get_object()
        assert (spec["/Desc"], spec["/AFRelationship"], stream["/Subtype"]) == (
            attachment.description, "/Data", "/application/fhir+json")
        assert stream["/Params"]["/CreationDate"] == stream["/Params"]["/ModDate"] == "D:20261121183000Z"
    assert reader.metadata is not None and reader.metadata["/CreationDate"] == "D:20261121183000Z"


def test_an_undated_summary_is_deterministic_too(summary: Summary) -> None:
    undated = replace(summary, completed_at=None)
    first = render_summary_pdf(undated, patient_identifier=None, attachments=ATTACHMENTS[:1])
    assert render_summary_pdf(undated, patient_identifier=None, attachments=ATTACHMENTS[:1]) == first
    reader = PdfReader(io.BytesIO(first))
    assert reader.metadata is not None and "/CreationDate" not in reader.metadata
    stream = reader.trailer["/Root"]["/AF"][0].get_object()["/EF"]["/F"].get_object()
    assert "/CreationDate" not in stream["/Params"]
    assert squash("no identifier intake not completed") in squash(reader.pages[-1].extract_text())


def test_a_stored_result_without_optional_keys_still_renders() -> None:
    """Scores, flags and notes are dicts; one stored by an older engine may lack a key. The
    clinician page (Flask, lenient undefined) shows it, so the PDF must too."""
    summary = Summary(intake_id="old", patient_name="Old Result", birth_date=BORN, completed_at=COMPLETED,
                      appointment_at=None, flags=[{"tier": "review", "message": "An old flag"}],
                      scores=[ScoreRow(score={"id": "x", "title": "An old score", "total": 3, "complete": True})],
                      notes=[{"text": "An old note"}], domains=[], scoring_versions={})
    text = squash(" ".join(pages_text(render_summary_pdf(summary, patient_identifier=None, attachments=()))))
    for expected in ("An old flag", "An old score3", "An old note"):
        assert squash(expected) in text


def test_one_font_configuration_per_process() -> None:
    assert font_config() is font_config()


def test_the_stylesheet_is_parsed_once_and_applied_to_html_that_links_none(summary: Summary) -> None:
    """The summary HTML carries no stylesheet; the renderer applies the one it parsed at start-up
    (the running header and the page counter below exist only in pdf.css)."""
    assert stylesheet() is stylesheet()
    html = render_summary_html(summary, patient_identifier=IDENTIFIER)
    assert "<link" not in html and "<style" not in html
    inline = render_summary_html(summary, patient_identifier=IDENTIFIER, inline_css=True)
    assert "<style>" in inline and "@page" in inline
    pages = pages_text(html_to_pdf(html))
    assert len(pages) >= 2 and all(f"Page {n} of {len(pages)}" in text for n, text in enumerate(pages, start=1))


def test_every_answer_flag_and_note_is_in_the_pdf_text(pdf: bytes, summary: Summary) -> None:
    """All text present: every question and answer of the appendix, every flag and note (layout
    changes for speed must never drop or clip a row)."""
    text = squash(" ".join(pages_text(pdf)))
    rows = [row for domain in summary.domains for row in domain.rows]
    assert len(rows) > 100
    for row in rows:
        assert squash(f"{row.question}") in text and squash(f"{row.answer}") in text, row.link_id
    for flag in summary.flags:  # the headline, what to do, and any detail the action does not say
        for part in ("headline", "action", "detail"):
            assert squash(flag[part]) in text, (flag["id"], part)
    for note in summary.notes:
        assert squash(note["text"]) in text
    for domain in summary.domains:
        assert squash(domain.title) in text


def test_a_fresh_process_renders_the_same_bytes(pdf: bytes) -> None:
    """Deterministic across processes too: the per-process font configuration and parsed
    stylesheet leave nothing of their own in the file (a stored PDF is compared with re-renders)."""
    script = ("import sys; from tests.test_pdf import ATTACHMENTS, IDENTIFIER, make_summary; "
              "from intake.pdf import render_summary_pdf; "
              "sys.stdout.buffer.write(render_summary_pdf(make_summary(), patient_identifier=IDENTIFIER, "
              "attachments=ATTACHMENTS))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    fresh = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, env=env, cwd=ROOT,
                           timeout=120)
    assert fresh.stdout == pdf


@pytest.mark.parametrize("url", [
    STATIC_BASE + "%2e%2e/pyproject.toml",
    STATIC_BASE + "..%2fpyproject.toml",
    STATIC_BASE + "pdf.css%00.png",
    STATIC_BASE,
    "pdf.css",
])
def test_the_fetcher_refuses_encoded_escapes_and_non_files(url: str) -> None:
    fetcher = StaticOnlyFetcher()
    with pytest.raises(UrlRefused):
        fetcher.fetch(url)
    with pytest.raises(FatalURLFetchingError), fetch(fetcher, url):  # as WeasyPrint calls it
        pass


def test_the_fetcher_does_not_follow_a_symlink_out(tmp_path: Path) -> None:
    root = tmp_path / "static"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("secret")
    (root / "inside.css").write_text("p{}")
    (root / "link.css").symlink_to(tmp_path / "secret.txt")
    fetcher = StaticOnlyFetcher(root)
    assert fetcher.fetch(root.as_uri() + "/inside.css").read() == b"p{}"
    with pytest.raises(UrlRefused):
        fetcher.fetch(root.as_uri() + "/link.css")


def test_the_collector_is_paused_while_rendering_and_restored(summary: Summary,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The render runs without cyclic GC (bench/pdf.py: about 40 % of it); the state comes back."""
    seen: list[bool] = []
    write = weasyprint.HTML.write_pdf

    def recording(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return write(self, *args, **kwargs)

    monkeypatch.setattr(weasyprint.HTML, "write_pdf", recording)
    assert gc.isenabled()
    render_summary_pdf(summary, patient_identifier=None)
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:  # a caller that runs without the collector keeps it off
        render_summary_pdf(summary, patient_identifier=None)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_pauses_restore_the_collector_once_the_last_ends() -> None:
    first, second = gc_paused(), gc_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # another render is still running
    second.__exit__(None, None, None)
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("a failed render")
    assert gc.isenabled()
