"""Clinician pages: intakes, the screening summary, and the staff list of urgent flags."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, render_template
from werkzeug.wrappers import Response

from intake import workflow
from intake.core.summary import TIER_ORDER, build_summary
from intake.storage import repository
from intake.web import catalog, reader
from intake.web.staff import staff_required

bp = Blueprint("clinician", __name__, url_prefix="/clinician")


@bp.after_request
def no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _top_tier(tiers: list[str]) -> str | None:
    return min(tiers, key=lambda t: TIER_ORDER.get(t, 9)) if tiers else None


@bp.get("/")
@staff_required
def intakes() -> Any:
    rows = [(intake, name, _top_tier(tiers)) for intake, name, tiers in repository.list_intakes(reader())]
    return render_template("clinician/intakes.html", rows=rows)


@bp.get("/flags")
@staff_required
def flags() -> Any:
    return render_template("clinician/flags.html", rows=repository.list_flags(reader()))


def summary_for(intake_id: str) -> Any:
    """The Summary view model of a completed, scored intake (404 otherwise)."""
    db = reader()
    intake = repository.get_intake(db, intake_id)
    if intake is None or intake.status != "completed":
        abort(404)
    scoring = repository.get_scoring(db, intake_id)
    patient = repository.get_patient(db, intake.patient_id)
    if scoring is None or patient is None:
        abort(404)
    try:
        pairs = workflow.stored_pairs(db, catalog(), intake_id, latest=False)
    except workflow.WorkflowError:
        pairs = workflow.stored_pairs(db, catalog(), intake_id, latest=True)
    return build_summary(
        intake_id=intake.id, patient_name=patient.name, birth_date=patient.birth_date,
        completed_at=intake.completed_at, appointment_at=intake.appointment_at, result=scoring.result,
        history=repository.patient_history(db, patient.id, before=intake.completed_at), pairs=pairs,
    )


@bp.get("/intakes/<intake_id>")
@staff_required
def summary(intake_id: str) -> Any:
    if len(intake_id) > 64:
        abort(404)
    return render_template("clinician/summary.html", summary=summary_for(intake_id),
                           onset_age=current_app.config["INTAKE_GI_ONSET_AGE"])
