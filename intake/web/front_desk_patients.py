"""Front desk, by patient: find a patient (name, birth date, record number), see each of their
intakes' progress (sent, opened, in progress, sent back, expired, with times), invite them again,
see their contact details in full (audited), and confirm a new link before making it.

Routes on the front desk's blueprint (`intake.web.front_desk.bp`), so they share its owner in the
authorization matrix; registered by importing this module (intake/web/__init__.py).
"""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request

from intake.core.contact_points import mask_email, mask_phone
from intake.storage import intakes, patients
from intake.storage.models import Patient
from intake.web import auditing
from intake.web.context import reader, writer
from intake.web.front_desk import (
    InvitationForm,
    NewLinkForm,
    bp,
    invite_and_show,
    local_zone,
    sendable,
)
from intake.web.intake_progress import at, progress_of
from intake.web.staff import role_required

QUERY_MAX = 100


def _patient_or_404(db: Any, patient_id: str) -> Patient:
    patient = patients.get_patient(db, patient_id)
    if patient is None:
        abort(404)
    return patient


@bp.get("/patients")
@role_required("front-desk")
def find_patient() -> Any:
    """Search by name, birth date (YYYY-MM-DD) or record number; each result with its intakes."""
    query = request.args.get("q", "")
    error, results = None, []
    if len(query) > QUERY_MAX:
        error, query = f"Search for at most {QUERY_MAX} characters: a name, a birth date or a record number.", ""
    elif query.strip():
        db = reader()
        found = patients.search(db, query)
        all_intakes = patients.intakes_of(db, [p.id for p in found])
        stages = progress_of(db, all_intakes, zone=local_zone())
        for patient in found:
            rows = [{"intake": i, "stages": stages[i.id], "appointment": at(local_zone(), i.appointment_at)}
                    for i in all_intakes if i.patient_id == patient.id]
            results.append({"patient": patient, "email": mask_email(patient.email), "phone": mask_phone(patient.phone),
                            "intakes": rows})
            auditing.note(f"Patient/{patient.id}")
    status = 400 if error else 200
    return render_template("staff/patients.html", query=query, results=results, error=error,
                           searched=bool(query.strip())), status


@bp.get("/patients/<patient_id>/contact")
@role_required("front-desk")
def contact_details(patient_id: str) -> Any:
    """The patient's e-mail address and mobile number in full: audited as a read that showed them."""
    with writer() as db:
        patient = _patient_or_404(db, patient_id)
        auditing.record_change(db, "read", f"Patient/{patient_id}",
                               detail={"method": "GET", "path": request.path[:300], "contact": "shown"})
    return render_template("staff/contact.html", patient=patient)


@bp.route("/patients/<patient_id>/invite", methods=["GET", "POST"])
@role_required("front-desk")
def invite_again(patient_id: str) -> Any:
    """A new intake for a patient already known (a follow-up): their scores show the change."""
    patient = _patient_or_404(reader(), patient_id)
    form = InvitationForm()
    form.offer()
    error, refused = None, None
    if request.method == "GET" and patient.email:
        form.send.data = ["email"]
    if request.method == "POST" and form.validate_on_submit():
        done, error, refused = invite_and_show(form, name="", birth_date=patient.birth_date, patient_id=patient_id)
        if done is not None:
            return done
    auditing.note(f"Patient/{patient_id}")
    status = (refused or 400) if request.method == "POST" else 200
    return render_template("staff/invite_again.html", form=form, patient=patient, error=error,
                           email=mask_email(patient.email), phone=mask_phone(patient.phone)), status


@bp.get("/intakes/<intake_id>/new-link")
@role_required("front-desk")
def confirm_new_link(intake_id: str) -> Any:
    """What a new link does, before it is made: the POST to `front_desk.new_link` makes it."""
    db = reader()
    intake = intakes.get_intake(db, intake_id)
    if intake is None:
        abort(404)
    patient = _patient_or_404(db, intake.patient_id)
    auditing.note(f"Patient/{patient.id}", f"Intake/{intake_id}")
    form = NewLinkForm()
    form.send.choices = [choice for choice in sendable()
                         if (patient.email if choice.value == "email" else patient.phone)]
    return render_template("staff/confirm_new_link.html", intake=intake, patient=patient, form=form,
                           email=mask_email(patient.email), phone=mask_phone(patient.phone),
                           started=intake.status == "in-progress"), 409 if intake.status == "completed" else 200
