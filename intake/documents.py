"""The clinician PDF of a completed intake: render once, store, publish its DocumentReference.

Rendered by a background job after submit (and after re-scoring); downloads serve the stored
bytes. The PDF embeds, as PDF/A-3 attachments, each completed QuestionnaireResponse and its `$extract`
Bundle exactly as the FHIR API serves them, the Bundles without the DocumentReference (a
document cannot contain its own hash). The render is deterministic, so the stored version only
changes when what it shows changes (`source_sha256`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from intake import workflow
from intake.core.catalog import Catalog
from intake.core.fhir_time import utcnow
from intake.errors import IntakeError
from intake.fhir import publish
from intake.services import services
from intake.storage import fhir_store, intakes, patients
from intake.storage.db import session_scope
from intake.storage.models import DocumentRecord

log = logging.getLogger(__name__)


class DocumentError(IntakeError):
    """The intake has no PDF to make (not completed, not scored, or not published yet): 409."""

    status = 409


def attachments_of(session: Session, intake_id: str) -> list[tuple[str, bytes, str]]:
    """(file name, bytes, description) of what the PDF embeds: per completed response, the
    response and its `$extract` Bundle, byte for byte what the FHIR API returns for
    `GET QuestionnaireResponse/{id}` and `GET QuestionnaireResponse/{id}/$extract?document=false`."""
    out = []
    for stored in fhir_store.resources_of_intake(session, intake_id, "QuestionnaireResponse"):
        key = json.loads(stored.resource_json)["questionnaire"].split("|")[0].rsplit("/", 1)[-1]
        out.append((f"QuestionnaireResponse-{key}.json", stored.resource_json.encode(),
                    f"FHIR R4 QuestionnaireResponse/{stored.resource_id} ({key})"))
        bundle = publish.extract_bundle(session, intake_id, response_id=stored.resource_id, include_document=False)
        out.append((f"extract-{key}.json", extract_bundle_bytes(bundle),
                    f"FHIR R4 transaction Bundle: $extract of QuestionnaireResponse/{stored.resource_id} ({key})"))
    if not out:
        raise DocumentError(f"intake {intake_id} has no published responses")
    return out


def extract_bundle_bytes(bundle: dict) -> bytes:
    """The Bundle as the API's `$extract` serialises it (so the attachment equals the API's bytes)."""
    return json.dumps(bundle, separators=(",", ":"), ensure_ascii=False).encode()


def patient_identifier(session: Session, patient_id: str) -> str:
    patient = patients.get_patient(session, patient_id)
    if patient is not None and patient.mrn:
        return f"MRN {patient.mrn}"
    return f"Patient ID {patient_id}"


@dataclass(frozen=True)
class Sources:
    """What a PDF is rendered from, and their hash: equal hashes render equal bytes."""

    html: str
    attachments: list[Any]  # pdf.PdfAttachment
    created: datetime | None
    sha256: str


def sources(session: Session, catalog: Catalog, intake_id: str) -> Sources:
    """The HTML and embedded files of a completed, scored and published intake's PDF."""
    from intake import pdf  # cycle-ok: WeasyPrint loads only where PDFs are made

    summary = workflow.summary_of(session, catalog, intake_id)
    intake = intakes.get_intake(session, intake_id)
    if summary is None or intake is None:
        raise DocumentError(f"intake {intake_id} is not completed and scored")
    html = pdf.render_summary_html(summary, patient_identifier=patient_identifier(session, intake.patient_id))
    files = attachments_of(session, intake_id)
    digest = hashlib.sha256(html.encode())
    for name, data, _ in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    attachments = [
        pdf.PdfAttachment(filename=name, data=data, description=description) for name, data, description in files
    ]
    return Sources(html, attachments, summary.completed_at, digest.hexdigest())


def render(session: Session, catalog: Catalog, intake_id: str) -> tuple[bytes, str]:
    """(PDF bytes, hash of its sources) of a completed, scored and published intake."""
    source = sources(session, catalog, intake_id)
    return _pdf_of(source), source.sha256


def _pdf_of(source: Sources) -> bytes:
    from intake import pdf  # cycle-ok: WeasyPrint loads only where PDFs are made (as in `sources`)

    return pdf.html_to_pdf(source.html, attachments=source.attachments, created=source.created)


def render_and_store(
    session: Session, catalog: Catalog, intake_id: str, *, now: datetime | None = None
) -> DocumentRecord:
    """Render the intake's PDF, store it if its sources changed, and publish its DocumentReference.

    Unchanged sources (a re-score that changed nothing) keep the stored PDF without rendering it
    again: the render is deterministic, and the expensive step."""
    existing = fhir_store.get_document(session, intake_id)
    source = sources(session, catalog, intake_id)
    if existing is not None and existing.source_sha256 == source.sha256:
        return existing
    return _store(session, catalog, intake_id, _pdf_of(source), source.sha256, now=now or utcnow())


def _store(session: Session, catalog: Catalog, intake_id: str, content: bytes, source_sha256: str, *,
           now: datetime) -> DocumentRecord:
    document = fhir_store.store_document(
        session,
        intake_id=intake_id,
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        source_sha256=source_sha256,
        now=now,
    )
    forms = [form for form, _ in workflow.stored_pairs(session, catalog, intake_id, latest=False)]
    publish.publish_intake(session, intake_id, forms={f.canonical: f for f in forms}, now=now)
    return document


def document_for(session: Session, catalog: Catalog, intake_id: str) -> DocumentRecord:
    """The stored PDF, rendered now if the background job has not run yet (or was lost)."""
    document = fhir_store.get_document(session, intake_id)
    if document is None:
        document = render_and_store(session, catalog, intake_id)
    return document


def render_job(app: Flask, intake_id: str) -> None:
    """The outbox handler run after submit and re-scoring (safe to run twice: the render is
    deterministic and replaces the stored PDF).

    The render (WeasyPrint, up to a second) runs outside any transaction: on SQLite a write
    transaction holds the one write lock, and every patient's page save would wait behind it.
    The sources are read, rendered, then read again in the short write that stores the PDF: if
    a re-score changed them meanwhile, this render is stale and the re-score's own job stores its
    PDF instead."""
    catalog = services(app).catalog
    try:
        with services(app).readers() as session:
            existing = fhir_store.get_document(session, intake_id)
            source = sources(session, catalog, intake_id)
    except DocumentError:
        # Not scored (a broken rule): nothing to render until `flask intake rescore`, which
        # queues this job again.
        log.warning("no PDF for intake %s yet: it is not scored", intake_id)
        return
    if existing is not None and existing.source_sha256 == source.sha256:
        return
    content = _pdf_of(source)
    with session_scope(services(app).sessions) as session:
        if sources(session, catalog, intake_id).sha256 == source.sha256:
            _store(session, catalog, intake_id, content, source.sha256, now=utcnow())
