"""The clinician PDF as a stored document: rendered by the job after submit, published as a
DocumentReference (SHA-256 recorded), embedded files equal to what the FHIR API serves, the same
bytes from every route, and the `pdf` / `export` commands."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from pypdf import PdfReader
from sqlalchemy import update

from intake import documents
from intake.core.fhir_models import resource_errors
from intake.services import services
from intake.storage import fhir_store
from intake.storage.db import session_scope
from intake.storage.models import DocumentRecord
from tests.fhircheck import fhircheck
from tests.web.flow import EMERGENCY, HIGH_PHQ4, complete_intake, signed_in
from tests.web.test_fhir_api import Api, api_app, new_token, patient_of  # noqa: F401  (fixture)

pytestmark = pytest.mark.pdf  # the real WeasyPrint render: these tests are about the PDF itself


def stored_pdf(app: Flask, intake_id: str) -> bytes:
    with services(app).sessions() as session:
        document = fhir_store.get_document(session, intake_id)
        assert document is not None, "the render job did not store a PDF"
        return bytes(document.content)


def test_submit_renders_stores_and_publishes_the_pdf(api_app: Flask) -> None:  # noqa: F811
    _client, intake_id = complete_intake(api_app, {**EMERGENCY, **HIGH_PHQ4})
    pdf = stored_pdf(api_app, intake_id)
    assert pdf.startswith(b"%PDF-")
    api = Api(api_app.test_client(), new_token(api_app))
    found = api.json(f"/fhir/DocumentReference?patient={patient_of(api_app, intake_id)}")
    assert found["total"] == 1
    reference = found["entry"][0]["resource"]
    attachment = reference["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf" and attachment["size"] == len(pdf)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(pdf).digest()).decode()
    assert attachment["extension"][0]["valueString"] == hashlib.sha256(pdf).hexdigest()
    assert api.get(f"/fhir/{attachment['url']}").data == pdf  # Binary read: the stored bytes
    binary = json.loads(api.get(f"/fhir/{attachment['url']}", headers={"Accept": "application/fhir+json"}).data)
    assert base64.b64decode(binary["data"]) == pdf
    clinician = signed_in(api_app)
    staff = clinician.get(f"/clinician/intakes/{intake_id}/screening-summary.pdf")
    assert staff.status_code == 200 and staff.data == pdf and staff.content_type == "application/pdf"
    page = clinician.get(f"/clinician/intakes/{intake_id}").text
    assert f"/clinician/intakes/{intake_id}/screening-summary.pdf" in page
    assert (
        api_app.test_client().get(f"/clinician/intakes/{intake_id}/screening-summary.pdf").status_code == 302
    )  # to sign-in


def test_embedded_files_equal_the_apis_json(api_app: Flask) -> None:  # noqa: F811
    _client, intake_id = complete_intake(api_app, EMERGENCY)
    api = Api(api_app.test_client(), new_token(api_app))
    embedded = {
        name: data[0] for name, data in PdfReader(io.BytesIO(stored_pdf(api_app, intake_id))).attachments.items()
    }
    responses = api.json(f"/fhir/QuestionnaireResponse?patient={patient_of(api_app, intake_id)}")["entry"]
    assert len(embedded) == 2 * len(responses) == 10
    for entry in responses:
        rid = entry["resource"]["id"]
        key = entry["resource"]["questionnaire"].split("|")[0].rsplit("/", 1)[1]
        assert embedded[f"QuestionnaireResponse-{key}.json"] == api.get(f"/fhir/QuestionnaireResponse/{rid}").data
        assert (
            embedded[f"extract-{key}.json"]
            == api.get(f"/fhir/QuestionnaireResponse/{rid}/$extract?document=false").data
        )


def test_extract_carries_the_pdf_inline_and_rescoring_keeps_identical_bytes(api_app: Flask) -> None:  # noqa: F811
    _client, intake_id = complete_intake(api_app, {})
    pdf = stored_pdf(api_app, intake_id)
    api = Api(api_app.test_client(), new_token(api_app))
    response = api.json(f"/fhir/QuestionnaireResponse?patient={patient_of(api_app, intake_id)}&_count=1")["entry"][0]
    bundle = api.json(f"/fhir/QuestionnaireResponse/{response['resource']['id']}/$extract")
    reference = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference")
    assert base64.b64decode(reference["content"][0]["attachment"]["data"]) == pdf
    assert "url" not in reference["content"][0]["attachment"]
    result = api_app.test_cli_runner().invoke(args=["intake", "rescore", intake_id])
    assert result.exit_code == 0, result.output
    assert stored_pdf(api_app, intake_id) == pdf  # the same data renders the same bytes: no new version
    with services(api_app).sessions() as session:
        content, _source = documents.render(session, services(api_app).catalog, intake_id)
    assert content == pdf


def test_pdf_and_export_commands(api_app: Flask, tmp_path: Path) -> None:  # noqa: F811
    _client, intake_id = complete_intake(api_app, EMERGENCY)
    runner = api_app.test_cli_runner()
    result = runner.invoke(args=["intake", "pdf", intake_id, "-o", str(tmp_path / "s.pdf")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.pdf").read_bytes() == stored_pdf(api_app, intake_id)
    result = runner.invoke(args=["intake", "export", intake_id, "-o", str(tmp_path / "one")])
    assert result.exit_code == 0, result.output
    bundle = json.loads((tmp_path / "one" / "extract-bundle.json").read_text())
    assert bundle["type"] == "transaction" and len([e for e in bundle["entry"]
                                                    if e["resource"]["resourceType"] == "QuestionnaireResponse"]) == 5
    assert (tmp_path / "one" / "screening-summary.pdf").read_bytes() == stored_pdf(api_app, intake_id)
    result = runner.invoke(args=["intake", "export", "--all", "--since", "2000-01-01", "-o", str(tmp_path / "all")])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "all" / "Observation.ndjson").read_text().splitlines()
    assert lines and all(json.loads(line)["resourceType"] == "Observation" for line in lines)
    exported = [p for p in [*(tmp_path / "one").glob("*.json"), *(tmp_path / "all").glob("*.ndjson")]]
    for path in exported:
        for line in path.read_text().splitlines() if path.suffix == ".ndjson" else [path.read_text()]:
            assert not resource_errors(json.loads(line)), path.name
    assert "0 failed" in fhircheck(tmp_path / "one", tmp_path / "all")
    later = runner.invoke(args=["intake", "export", "--all", "--since", "2999-01-01", "-o", str(tmp_path / "none")])
    assert later.exit_code == 0 and "nothing to export" in later.output
    for args in (["pdf", "nope", "-o", str(tmp_path / "x.pdf")], ["export", "-o", str(tmp_path / "y")],
                 ["export", intake_id, "--all", "-o", str(tmp_path / "z")],
                 ["export", "--all", "--since", "soon", "-o", str(tmp_path / "w")]):
        failed = runner.invoke(args=["intake", *args])
        assert failed.exit_code == 1 and failed.output.startswith("error: ") and len(failed.output.splitlines()) == 1, (
            failed.output
        )


def test_the_render_holds_no_write_lock_and_a_stale_render_is_not_stored(api_app: Flask,  # noqa: F811
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """WeasyPrint runs outside any transaction (on SQLite a write transaction blocks every page
    save), and a render whose sources changed meanwhile is dropped, not stored over newer ones."""
    _client, intake_id = complete_intake(api_app, {})
    before = stored_pdf(api_app, intake_id)
    sessions = services(api_app).sessions
    with session_scope(sessions) as session:  # the stored PDF is outdated: the job renders again
        session.execute(update(DocumentRecord).values(source_sha256="outdated"))
    rendering, release, changed = threading.Event(), threading.Event(), threading.Event()
    real_pdf_of, real_sources = documents._pdf_of, documents.sources

    def slow_pdf_of(source: documents.Sources) -> bytes:
        rendering.set()
        assert release.wait(10)
        return real_pdf_of(source)

    def changed_sha(sha: str) -> str:  # another 64-character hash, as a re-score's sources would have
        return hashlib.sha256(f"changed {sha}".encode()).hexdigest()

    def sources(session: Any, catalog: Any, intake: str) -> documents.Sources:
        found = real_sources(session, catalog, intake)
        return replace(found, sha256=changed_sha(found.sha256)) if changed.is_set() else found

    monkeypatch.setattr(documents, "_pdf_of", slow_pdf_of)
    monkeypatch.setattr(documents, "sources", sources)
    worker = threading.Thread(target=documents.render_job, args=(api_app, intake_id))
    worker.start()
    assert rendering.wait(10)
    started = time.monotonic()
    with session_scope(sessions) as session:  # a patient's page save, say, while WeasyPrint works
        session.execute(update(DocumentRecord).values(size=DocumentRecord.size))
    assert time.monotonic() - started < 2
    changed.set()  # a re-score changes the sources before the render is stored
    release.set()
    worker.join(20)
    with sessions() as session:
        document = fhir_store.get_document(session, intake_id)
        assert (document.source_sha256, document.content) == ("outdated", before)
    documents.render_job(api_app, intake_id)  # the re-score's own job stores its render
    with sessions() as session:
        document = fhir_store.get_document(session, intake_id)
        assert document.source_sha256 == changed_sha(real_sources(session, services(api_app).catalog, intake_id).sha256)
