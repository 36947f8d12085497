"""English and Spanish on the patient pages: choosing, switching mid-page, what is recorded,
and what the clinician sees (the summary stays English and names the patient's language)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake.services import services
from intake.storage.models import AuditRecord, Intake, ResponseRecord
from tests.fhircheck import fhircheck
from tests.web.conftest import csrf, error_links, error_summary, invite_link
from tests.web.flow import (
    EMERGENCY,
    HIGH_PHQ4,
    complete_intake,
    fill_all,
    fill_page,
    page_data,
    signed_in,
)

FIRST = "/intake/digestive/digestive-alarm"
PHQ9_ITEM9 = {**HIGH_PHQ4, "phq9-9": "LA6569-3"}  # "Several days": the emergency-tier crisis flag


def html_lang(html: str) -> str:
    match = re.search(r'<html lang="([^"]+)"', html)
    assert match
    return match.group(1)


def intake_row(app: Flask) -> Intake:
    with services(app).sessions() as session:
        return session.scalars(select(Intake).order_by(Intake.created_at.desc())).first()


def test_the_browser_language_decides_until_the_patient_chooses(app: Flask, client: FlaskClient) -> None:
    assert html_lang(client.get("/").text) == "en"
    spanish = client.get("/", headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"})
    assert html_lang(spanish.text) == "es" and "Antes de su cita" in spanish.text
    chose = client.get("/language/en?next=/", headers={"Accept-Language": "es"})
    assert chose.status_code == 302 and chose.headers["Location"] == "/"
    assert html_lang(client.get("/", headers={"Accept-Language": "es"}).text) == "en"


def test_the_switch_only_returns_to_pages_of_this_site(client: FlaskClient) -> None:
    for target in ("//evil.example", "https://evil.example/", "/\\evil.example", "https:evil.example"):
        response = client.get("/language/es", query_string={"next": target})
        assert response.status_code == 302 and response.headers["Location"] == "/", target
    assert client.get("/language/de").status_code == 404


def test_the_choice_is_kept_on_the_intake_and_a_new_browser_continues_in_it(app: Flask, client: FlaskClient) -> None:
    link = invite_link(app)
    client.get(link)
    start = client.get("/intake")
    assert 'lang="es" hreflang="es"' in start.text  # the start page offers the choice
    client.get("/language/es?next=/intake")
    assert intake_row(app).language == "es"
    fresh = app.test_client()
    fresh.get(link)
    page = fresh.get("/intake")
    assert html_lang(page.text) == "es" and "Preguntas antes de su cita" in page.text
    with services(app).sessions() as session:
        details = [r.detail for r in session.scalars(select(AuditRecord).where(AuditRecord.action == "update"))]
    assert {"language": "es"} in [json.loads(d) for d in details if d]


def test_switching_on_a_question_page_keeps_what_was_typed_and_saves_nothing(app: Flask, opened: FlaskClient) -> None:
    page = opened.get(FIRST)
    assert (
        '<button class="language-switch__control" type="submit" form="page-form" name="language" value="es" lang="es">'
        in page.text
    )
    data = page_data(app, FIRST, {"gi-af1": "true", "gi-af2-kg": "3"})
    data["csrf_token"] = csrf(page.text)
    switched = opened.post(FIRST, data={**data, "q-gi-af3": "", "language": "es"})
    assert switched.status_code == 200
    assert html_lang(switched.text) == "es"
    assert re.search(r'name="q-gi-af1" value="true" checked', switched.text)
    assert 'value="3"' in switched.text
    assert error_summary(switched.text) == []  # an unanswered question is not an error yet
    assert "Continuar" in switched.text and ">Sí</label>" in switched.text and "English</button>" in switched.text
    with services(app).sessions() as session:
        assert session.scalars(select(ResponseRecord)).all() == []
    # Continue in Spanish: errors are Spanish, and the page is saved with its language recorded.
    bad = opened.post(FIRST, data={"csrf_token": csrf(switched.text)})
    assert bad.status_code == 400
    assert bad.text.split("<title>")[1].startswith("Error:")
    # Each question's own message, in Spanish (requiredMessage), alone on its line.
    assert [m for _id, m in error_summary(bad.text)[:2]] == [
        "Elija sí si ha visto sangre en sus heces (popó) o sobre ellas, o ha tenido heces negras como el alquitrán, "
        "en los últimos 3 meses",
        "Elija sí si ha perdido peso sin intentarlo en los últimos 6 a 12 meses"]
    assert fill_page(opened, app, FIRST).startswith("/intake/")
    with services(app).sessions() as session:
        saved = json.loads(session.scalars(select(ResponseRecord.resource_json)).one())
    assert saved["language"] == "es"
    # Texts and codes stay the Questionnaire's own, so receivers match them to the definition.
    assert saved["item"][0]["text"].startswith("Warning signs")


def test_a_whole_intake_in_spanish(app: Flask, opened: FlaskClient, tmp_path: Path) -> None:
    opened.get("/language/es?next=/intake")
    pages = fill_all(opened, app, FIRST, {**PHQ9_ITEM9, "pss10-1": "LA13866-1"})
    # The "translation, not a validated version" notice is said once, on the first page that asks
    # such an instrument (the Bristol scale), naming every one of them; not again on the PSS-10 page.
    shown = {p: re.findall(r'<div class="translation-notice[^"]*"><p>(.*?)</p>', opened.get(p).text, re.DOTALL)
             for p in pages}
    assert [p for p, found in shown.items() if found] == ["/intake/digestive/digestive-bowel"]
    [notice] = shown["/intake/digestive/digestive-bowel"]
    assert all(name in notice for name in ("Bristol", "MNSI", "MEDAS", "PSS-10", "PHQ-4"))
    assert "la versión validada que usamos aquí está en inglés" in notice
    review = opened.get("/intake/review")
    assert "Revise sus respuestas antes de enviarlas" in review.text
    assert "Casi nunca" in review.text and "Enviar mis respuestas" in review.text
    assert opened.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302
    done = opened.get("/intake/done")
    assert html_lang(done.text) == "es"
    assert "Actúe ahora, por favor" in done.text
    guidance = re.search(r'<div class="interruption" role="alert">(.*?)</div>', done.text, re.DOTALL).group(1)
    assert "vea los números más abajo" in guidance and "If you are" not in guidance
    assert "Llame al número local de emergencias." in guidance  # no number is configured: no country's
    with services(app).sessions() as session:
        stored = [json.loads(t) for t in session.scalars(select(ResponseRecord.resource_json))]
    assert {r.get("language") for r in stored} == {"es"} and {r["status"] for r in stored} == {"completed"}
    # What a health record receives passes the independent checker against the Questionnaires.
    for n, response in enumerate(stored):
        (tmp_path / f"qr-{n}.json").write_text(json.dumps(response), encoding="utf-8")
    fhircheck(*sorted(tmp_path.glob("qr-*.json")))


@pytest.mark.pdf  # reads the PDF's text
def test_the_clinician_summary_and_pdf_stay_english_and_name_the_patients_language(app: Flask) -> None:
    _patient, intake_id = complete_intake(app, EMERGENCY)
    english_only = signed_in(app).get(f"/clinician/intakes/{intake_id}")
    assert "patient's language: English" in english_only.text and "language-note" not in english_only.text

    spanish_patient = app.test_client()
    spanish_patient.get(invite_link(app, name="Paciente Dos"))
    spanish_patient.get("/language/es?next=/intake")
    fill_all(spanish_patient, app, FIRST, HIGH_PHQ4)
    review = spanish_patient.get("/intake/review")
    spanish_patient.post("/intake/submit", data={"csrf_token": csrf(review.text)})
    spanish_id = intake_row(app).id
    clinician = signed_in(app)
    summary = clinician.get(f"/clinician/intakes/{spanish_id}", headers={"Accept-Language": "es"})
    assert html_lang(summary.text) == "en"
    assert "patient's language: Spanish (español)" in summary.text
    note = re.search(r'<p class="language-note">(.*?)</p>', summary.text, re.DOTALL).group(1)
    assert "PSS-10" in note and "PHQ-4" in note and "not a validated version" in note
    assert "Red flags" in summary.text  # the clinician's language
    from io import BytesIO

    from pypdf import PdfReader

    pdf = clinician.get(f"/clinician/intakes/{spanish_id}/screening-summary.pdf")
    assert pdf.status_code == 200
    text = " ".join(page.extract_text() for page in PdfReader(BytesIO(pdf.data)).pages)
    assert "Spanish (español)" in text and "not a validated version" in " ".join(text.split())


def test_submitting_with_questions_unanswered_lists_them_in_spanish(app: Flask, opened: FlaskClient) -> None:
    opened.get("/language/es?next=/intake")
    review = opened.get("/intake/review")
    refused = opened.post("/intake/submit", data={"csrf_token": csrf(review.text)})
    assert refused.status_code == 400
    assert "Faltan algunas respuestas" in refused.text
    problems = error_links(refused.text)
    assert problems and all(label.startswith("Responda esta pregunta – ") for _href, label in problems)
    # The language switch of a page shown for a POST leads back to a page that can be opened.
    assert "/language/en?next=/intake/review" in refused.text
    # Each link goes to the question on its page: the first option of a radio group.
    assert problems[0][0] == "/intake/digestive/digestive-alarm?from=review#q-gi-af1-1"
