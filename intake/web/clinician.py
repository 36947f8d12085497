"""Clinician pages: intakes, the screening summary, and the staff list of urgent flags."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, render_template
from werkzeug.wrappers import Response

from intake import documents, workflow
from intake.core.summary import top_tier
from intake.storage import fhir_store, worklists
from intake.storage import intakes as intake_store
from intake.web.auditing import note
from intake.web.context import catalog, reader, writer
from intake.web.staff import role_required

bp = Blueprint("clinician", __name__, url_prefix="/clinician")


@bp.get("/")
@role_required("clinician")
def intakes() -> Any:
    rows = [(intake, name, top_tier(tiers)) for intake, name, tiers in worklists.list_intakes(reader())]
    note(*(f"Intake/{intake.id}" for intake, _, _ in rows))
    return render_template("clinician/intakes.html", rows=rows)


@bp.get("/flags")
@role_required("clinician")
def flags() -> Any:
    rows = workflow.staff_flags(reader(), catalog())
    note(*(f"Intake/{row.flag.intake_id}" for row in rows))
    return render_template("clinician/flags.html", rows=rows)


def summary_for(intake_id: str) -> Any:
    """The Summary view model of a completed, scored intake (404 otherwise)."""
    summary = workflow.summary_of(reader(), catalog(), intake_id)
    if summary is None:
        abort(404)
    note(f"Intake/{intake_id}")
    return summary


@bp.get("/intakes/<intake_id>")
@role_required("clinician")
def summary(intake_id: str) -> Any:
    if len(intake_id) > 64:
        abort(404)
    summary = summary_for(intake_id)
    intake = intake_store.get_intake(reader(), intake_id)
    responses = fhir_store.resources_of_intake(reader(), intake_id, "QuestionnaireResponse")
    fhir_links = [("Patient", f"/fhir/Patient/{intake.patient_id}")] if intake else []
    fhir_links += [(f"$extract Bundle {n}", f"/fhir/QuestionnaireResponse/{r.resource_id}/$extract")
                   for n, r in enumerate(responses, 1)]
    return render_template("clinician/summary.html", summary=summary, fhir_links=fhir_links,
                           onset_age=current_app.config["INTAKE_GI_ONSET_AGE"])


@bp.get("/intakes/<intake_id>/screening-summary.pdf")
@role_required("clinician")
def summary_pdf(intake_id: str) -> Any:
    """The stored PDF (rendered now if the background job has not run yet)."""
    if len(intake_id) > 64 or workflow.summary_of(reader(), catalog(), intake_id) is None:
        abort(404)
    note(f"Intake/{intake_id}")
    document = fhir_store.get_document(reader(), intake_id)
    if document is None:
        with writer() as session:
            content = documents.document_for(session, catalog(), intake_id).content
    else:
        content = document.content
    return Response(content, 200, content_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="screening-summary-{intake_id}.pdf"'})
