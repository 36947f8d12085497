"""A stand-in for the clinician PDF render in tests that are not about the PDF.

WeasyPrint takes about a second per intake; most tests complete intakes only to reach what
comes after (scores, FHIR, the EHR push), and the real render has its own tests, marked `pdf`
(tests/test_pdf.py, tests/test_documents.py). The stand-in is still a valid PDF (one page,
its sources' hash printed on it, the intake's files embedded), so the stored document, its
DocumentReference and Binary, and the EHR Bundle that carries it are built as in production.
"""

from __future__ import annotations

import io
from typing import Any

import pydyf


def quick_pdf(source: Any) -> bytes:
    """A small deterministic PDF of `source` (an `intake.documents.Sources`), in about a millisecond."""
    pdf = pydyf.PDF()
    font = pydyf.Dictionary({"Type": "/Font", "Subtype": "/Type1", "BaseFont": "/Helvetica"})
    pdf.add_object(font)
    text = pydyf.Stream()
    text.begin_text()
    text.set_font_size("F1", 10)
    text.set_text_matrix(1, 0, 0, 1, 40, 800)
    text.show_text(pydyf.String(f"Intake summary (test stand-in) {source.sha256}"))
    text.end_text()
    pdf.add_object(text)
    page = pydyf.Dictionary({
        "Type": "/Page", "Parent": pdf.pages.reference, "MediaBox": pydyf.Array([0, 0, 595, 842]),
        "Contents": text.reference, "Resources": pydyf.Dictionary({"Font": pydyf.Dictionary({"F1": font.reference})}),
    })
    pdf.add_page(page)
    files = []
    for attachment in source.attachments:
        stream = pydyf.Stream([attachment.data], pydyf.Dictionary({"Type": "/EmbeddedFile"}))
        pdf.add_object(stream)
        spec = pydyf.Dictionary({"Type": "/Filespec", "F": pydyf.String(attachment.filename),
                                 "UF": pydyf.String(attachment.filename),
                                 "EF": pydyf.Dictionary({"F": stream.reference})})
        pdf.add_object(spec)
        files += [pydyf.String(attachment.filename), spec.reference]
    if files:
        pdf.catalog["Names"] = pydyf.Dictionary({"EmbeddedFiles": pydyf.Dictionary({"Names": pydyf.Array(files)})})
    out = io.BytesIO()
    pdf.write(out)
    return out.getvalue()
