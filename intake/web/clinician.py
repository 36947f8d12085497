"""Clinician pages: intakes, the screening summary, and the staff list of urgent flags."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, render_template, url_for
from werkzeug.wrappers import Response

from intake import documents, workflow
from intake.core.catalog import Catalog
from intake.core.score_scale import ScoreScale, score_scales
from intake.core.summary import top_tier
from intake.core.timeline import FollowUp, Visit, build_timeline, follow_up
from intake.storage import fhir_store, patients, timelines, worklists
from intake.storage import intakes as intake_store
from intake.storage.models import Intake
from intake.web.auditing import note
from intake.web.context import catalog, reader, writer
from intake.web.staff import role_required

bp = Blueprint("clinician", __name__, url_prefix="/clinician")


@bp.get("/")
@role_required("clinician")
def intakes() -> Any:
    rows = [(intake, name, top_tier(tiers)) for intake, name, tiers in worklists.list_intakes(reader())]
    note(*(f"Intake/{intake.id}" for intake, _, _ in rows))
    return render_template("clinician/intakes.html", rows=rows, follow_ups=follow_ups_of([i for i, _, _ in rows]))


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
                           onset_age=current_app.config["INTAKE_GI_ONSET_AGE"],
                           timeline_url=url_for("clinician.timeline", patient_id=intake.patient_id) if intake else None)


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


# --- a patient's timeline, and the follow-up mark of the intake list ------------------------------


def follow_ups_of(listed: list[Intake]) -> dict[str, FollowUp]:
    """Intake id -> its follow-up mark, for the listed intakes of patients seen before."""
    completed = timelines.completed_by_patient(reader(), {intake.patient_id for intake in listed})
    marks = {intake.id: follow_up(intake.id, intake.completed_at, completed.get(intake.patient_id, []))
             for intake in listed}
    return {intake_id: mark for intake_id, mark in marks.items() if mark is not None}


def all_scales(forms: Catalog) -> dict[str, ScoreScale]:
    """Every score's scale, current versions first (an old intake's score keeps its chart)."""
    return score_scales(forms.versions)


@bp.get("/patients/<patient_id>/timeline")
@role_required("clinician")
def timeline(patient_id: str) -> Any:
    """Every intake of a patient, with each instrument's totals by date and a chart per instrument."""
    patient = patients.get_patient(reader(), patient_id) if len(patient_id) <= 64 else None
    if patient is None:
        abort(404)
    rows = timelines.patient_intakes(reader(), patient_id)
    visits = [(Visit(intake_id=intake.id, status=intake.status, created_at=intake.created_at,
                     completed_at=intake.completed_at, appointment_at=intake.appointment_at,
                     scored=result is not None), result) for intake, result in rows]
    note(f"Patient/{patient_id}", *(f"Intake/{intake.id}" for intake, _ in rows))
    return render_template("clinician/timeline.html", patient=patient,
                           timeline=build_timeline(visits, catalog().derived("score_scales", all_scales)))
