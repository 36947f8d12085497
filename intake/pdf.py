"""The clinician PDF: the screening summary rendered by WeasyPrint as a tagged PDF/A-3b.

The PDF shows the same view model as the clinician page (`intake.core.summary.Summary`) and embeds
the FHIR resources it was made from, so the record keeps the data next to the picture.

Why it is built the way it is:
- Deterministic: the same summary and attachments give byte-identical PDFs, so a re-render can be
  compared with the stored copy. WeasyPrint takes its dates from `<meta name=dcterms.created/
  modified>` (set from the intake's completion time, or left out), the attachments' dates are set
  from the same time instead of "now", and the PDF/A variant makes the file identifier (/ID) an MD5
  of the file's own content rather than something random.
- Safe: patient text is escaped by Jinja's autoescape, and WeasyPrint gets `StaticOnlyFetcher`,
  which serves files below `static/` and refuses everything else (other files, any network scheme,
  data: URIs; it never follows a redirect because it never opens a connection). A refused URL
  stops the rendering: the template asks only for static files, so any other fetch means injected
  markup, and no PDF is better than a quietly altered one.
- Usable outside a request: a plain Jinja environment owned by this module (background jobs, CLI).
- Fast enough (docs/benchmarks.md, bench/pdf.py): the font configuration and the stylesheet are
  built once per process and handed to every render, so a render parses only its own HTML. The
  summary HTML therefore links no stylesheet: `html_to_pdf` applies `static/pdf.css` itself (as a
  user stylesheet: nothing else styles the document, so the origin changes nothing). The cyclic
  garbage collector is paused while WeasyPrint renders (`gc_paused`): a render allocates some
  hundred thousand box and style objects, and the collector's full passes over them were about
  40 % of the render; the bytes are the same.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import jinja2
import pydyf
import weasyprint
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

from intake.core.summary import Summary

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "templates"
STATIC = (ROOT / "static").resolve()
#: The document base: relative URLs (in the stylesheet, in the template) resolve below the static folder.
STATIC_BASE = STATIC.as_uri() + "/"
STYLESHEET = "pdf.css"
PDF_VARIANT = "pdf/a-3b"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MEDIA_TYPES = {".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg",
               ".woff2": "font/woff2", ".ttf": "font/ttf"}


@dataclass(frozen=True)
class PdfAttachment:
    """A file embedded in the PDF (PDF/A-3 associated file), e.g. the intake's FHIR Bundle.

    `relationship` is the PDF/A-3 /AFRelationship: "Data" (the default) says the PDF is a rendering
    of this data.
    """

    filename: str
    data: bytes
    description: str
    media_type: str = "application/fhir+json"
    relationship: str = "Data"


class UrlRefused(ValueError):
    """A URL that the PDF renderer will not fetch."""


class StaticOnlyFetcher(URLFetcher):
    """Serves regular files below `static/` from `file:` URLs; raises `UrlRefused` for anything else.

    WeasyPrint 70 wants a `URLFetcher` instance (it reads `_fail_on_errors`), so this subclasses it
    but replaces `fetch`, so the inherited urllib opener (http, ftp, data, redirects) is never used.
    """

    def __init__(self, root: Path = STATIC) -> None:
        super().__init__(allowed_protocols=("file",), allow_redirects=False, fail_on_errors=True)
        self.root = root.resolve()

    def resolve(self, url: str) -> Path:
        """The file that `url` names, if it is one this fetcher serves."""
        try:
            parts = urlsplit(url)
        except ValueError as error:
            raise UrlRefused("malformed URL") from error
        if parts.scheme.lower() != "file":
            raise UrlRefused(f"scheme not allowed: {parts.scheme or '(none)'}")
        if parts.netloc not in ("", "localhost"):
            raise UrlRefused("file URL with a host")
        path = Path(url2pathname(unquote(parts.path)))
        try:
            resolved = path.resolve(strict=True)
        except (OSError, ValueError, RuntimeError) as error:
            raise UrlRefused("no such static file") from error
        if not resolved.is_relative_to(self.root) or not resolved.is_file():
            raise UrlRefused("outside the static folder")
        return resolved

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> URLFetcherResponse:
        path = self.resolve(url)
        message = EmailMessage()
        message["Content-Type"] = MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return URLFetcherResponse(path.as_uri(), path.read_bytes(), message)

    def open(self, url: Any, data: Any = None, timeout: Any = None) -> URLFetcherResponse:
        return self.fetch(url if isinstance(url, str) else url.full_url)


_fonts: FontConfiguration | None = None
_stylesheet: weasyprint.CSS | None = None
_fonts_lock = threading.Lock()  # guards both


def font_config() -> FontConfiguration:
    """One FontConfiguration per process: building one scans the system fonts (fontconfig)."""
    global _fonts
    if _fonts is None:
        with _fonts_lock:
            if _fonts is None:
                _fonts = FontConfiguration()
    return _fonts


@cache
def _environment() -> jinja2.Environment:
    """A Jinja environment of our own, so rendering needs no Flask app or request.

    Undefined values are lenient, as in Flask: the view model's scores, flags and notes are dicts
    (stored results may predate a key), and the PDF must render whatever the clinician page shows.
    """
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)


def _utc(when: datetime | None) -> datetime | None:
    """Naive datetimes from storage are UTC."""
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def stylesheet() -> weasyprint.CSS:
    """`static/pdf.css`, parsed once per process (through the restricted fetcher, like the document):
    parsing it and building its selector matcher took a fixed slice of every render."""
    global _stylesheet
    if _stylesheet is None:
        with _fonts_lock:
            if _stylesheet is None:
                _stylesheet = weasyprint.CSS(url=(STATIC / STYLESHEET).as_uri(), url_fetcher=StaticOnlyFetcher(),
                                             font_config=font_config())
    return _stylesheet


def render_summary_html(summary: Summary, *, patient_identifier: str | None,
                        inline_css: bool = False) -> str:
    """The PDF's HTML, without a stylesheet: `html_to_pdf` applies the parsed `stylesheet()`.
    `inline_css` puts the stylesheet in a <style> element (for other engines, e.g. the Chromium
    benchmark, and for looking at the HTML in a browser): the same layout."""
    completed = _utc(summary.completed_at)
    stylesheet = (STATIC / STYLESHEET).read_text(encoding="utf-8") if inline_css else None
    return _environment().get_template("pdf/summary.html").render(
        summary=summary,
        patient_identifier=patient_identifier,
        completed=completed,
        appointment=_utc(summary.appointment_at),
        created=completed.strftime("%Y-%m-%dT%H:%M:%SZ") if completed else None,
        stylesheet=stylesheet,
    )


def render_summary_pdf(summary: Summary, *, patient_identifier: str | None,
                       attachments: Sequence[PdfAttachment] = ()) -> bytes:
    """The clinician PDF (tagged PDF/A-3b, `attachments` embedded): same inputs, same bytes."""
    return html_to_pdf(render_summary_html(summary, patient_identifier=patient_identifier),
                       attachments=attachments, created=summary.completed_at)


_GC_LOCK = threading.Lock()
_gc_pauses = 0  # renders in progress that paused the collector (threads may render at once)
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block; the collector's state is restored when the
    last of overlapping blocks (other threads' renders) ends. A render's cycles are collected
    afterwards as usual: the memory held meanwhile is one render's garbage."""
    global _gc_pauses, _gc_was_enabled
    with _GC_LOCK:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def html_to_pdf(html: str, *, attachments: Sequence[PdfAttachment] = (),
                created: datetime | None = None) -> bytes:
    """Any HTML through the restricted fetcher to a tagged PDF/A-3b with `static/pdf.css` applied;
    `created` dates the attachments. HTML that carries the stylesheet itself (`inline_css`) gets
    the same rules twice: the same layout, only slower."""
    when = _utc(created) or EPOCH
    embedded = [
        weasyprint.Attachment(string=a.data, name=a.filename, description=a.description,
                              created=when, modified=when, relationship=a.relationship)
        for a in attachments
    ]
    media_types = {a.filename: a.media_type for a in attachments}

    def finish(_document: Any, pdf: pydyf.PDF) -> None:
        _set_attachment_details(pdf, media_types, dated=created is not None)

    with gc_paused():
        document = weasyprint.HTML(string=html, base_url=STATIC_BASE, url_fetcher=StaticOnlyFetcher())
        return document.write_pdf(
            font_config=font_config(),
            stylesheets=[stylesheet()],
            pdf_variant=PDF_VARIANT,
            pdf_tags=True,
            attachments=embedded,
            finisher=finish,
        )


def _set_attachment_details(pdf: pydyf.PDF, media_types: dict[str, str], *, dated: bool) -> None:
    """Give each embedded file its own media type (WeasyPrint guesses from the file name: .json ->
    application/json), and drop the placeholder dates when the intake has no completion time."""
    for pdf_object in pdf.objects:
        if not isinstance(pdf_object, dict) or pdf_object.get("Type") != "/Filespec":
            continue
        name = pdf_object["UF"].string if isinstance(pdf_object["UF"], pydyf.String) else None
        stream = pdf.objects[int(pdf_object["EF"]["F"].split()[0])]
        if name in media_types:
            stream.extra["Subtype"] = "/" + pydyf_name(media_types[name])
        if not dated:
            stream.extra["Params"].pop("CreationDate", None)
            stream.extra["Params"].pop("ModDate", None)


def pydyf_name(value: str) -> str:
    """A PDF name body: '/' and other delimiters as #xx, as WeasyPrint writes application#2fpdf."""
    return "".join(c if c.isalnum() or c in "-.+_" else f"#{ord(c):02x}" for c in value)
