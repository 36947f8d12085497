"""What the EHR holds after a patient's visits, pushed to a FHIR engine nobody here wrote
(../shared/reference-ehr: Medplum's router, stock and with Medplum's server rules): an intake with
a red flag, a re-score with a corrected rule, then a follow-up of the same patient. Afterwards the
EHR must hold one Patient, every response, the current Observations (the re-scored one amended),
ONE DocumentReference per intake, and no active Flag of the earlier intake.

Two ways in: the intake Bundles' entries sent as a `batch` (the content on its own, which Medplum
takes entry by entry), and the real outbox push (`intake/fhir/ehr_push.py`, in transactions split
for Medplum's 8-entry limit on conditional transactions).

Each test takes half a minute or so: a Node server, three intakes answered over the web pages and
their PDFs; that is the scenario the issue asks to see end to end."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest
from flask import Flask

from intake import close_app, create_app, workflow
from intake.core import extract
from intake.core.catalog import load_catalog
from intake.fhir import publish
from intake.jobs import outbox
from intake.services import services
from intake.storage import fhir_store, outbox_store
from intake.storage.db import session_scope
from intake.storage.models import Intake, OutboxRecord
from tests.core.factories import FORMS
from tests.support.fhir_receiver import FhirReceiver
from tests.support.reference_ehr import ReferenceEhr, reference_ehr
from tests.web.conftest import csrf
from tests.web.flow import HIGH_PHQ4, fill_all, first_page

FLAGGED = {**HIGH_PHQ4, "phq9-9": "LA6569-3"}  # PHQ-9 item 9 "Several days": an emergency flag
CORRECTED_ITEM = "phq4-1"  # the corrected rule weighs each answer of this item one more

Push = Callable[[Flask, str], None]


def make_app(database_url: str, tmp_path: Path, **config: Any) -> Flask:
    return create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "i"), "SECRET_KEY": "t",
                       "TESTING": True, "INTAKE_JOBS": "eager", **config})


def submit_stress(app: Flask, patient_id: str | None = None) -> str:
    """A patient (new, or `patient_id` again) answers the stress questionnaire with a red flag."""
    who = ["--patient", patient_id] if patient_id else ["--name", "Ana Test", "--birth-date", "1970-01-01"]
    result = app.test_cli_runner().invoke(args=["intake", "invite", "--questionnaires", "stress", *who])
    assert result.exit_code == 0, result.output
    client = app.test_client()
    assert client.get("/i/" + result.output.strip().rsplit("/i/", 1)[1]).status_code == 302
    fill_all(client, app, first_page(client), FLAGGED)
    review = client.get("/intake/review")
    assert client.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302
    with services(app).sessions() as session:
        intake = session.query(Intake).filter_by(status="completed").order_by(Intake.completed_at.desc()).first()
        assert intake is not None
        return intake.id


def corrected_catalog(tmp_path: Path) -> Any:
    """The forms with one scoring rule corrected (PHQ-4 item 1 weighs one more): re-scoring with
    them changes the PHQ-4 total."""
    forms = tmp_path / "forms"
    shutil.copytree(FORMS, forms)
    stress = json.loads((forms / "stress.json").read_text())
    for item in _walk(stress["item"]):
        if item["linkId"] == CORRECTED_ITEM:
            for option in item["answerOption"]:
                for extension in option["extension"]:
                    if extension["url"].endswith(("/itemWeight", "/ordinalValue")):
                        extension["valueDecimal"] += 1
    (forms / "stress.json").write_text(json.dumps(stress))
    return load_catalog(forms)


def _walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from _walk(item.get("item") or [])


def rescore(app: Flask, intake_id: str, catalog: Any) -> None:
    """`flask intake rescore` with the corrected rules: its outbox rows (PDF, push) run after the commit."""
    with session_scope(services(app).sessions) as session:
        workflow.rescore_intake(app, session, catalog, intake_id, by=workflow.Caller.cli())
    outbox.kick(app)


def post_as_batch(ehr: ReferenceEhr) -> Push:
    """The intake's whole Bundle, its entries sent as a batch (Provenance left out: how it is sent
    is the push's business); every entry must be taken."""
    def push(app: Flask, intake_id: str) -> None:
        with services(app).sessions() as session:
            bundle = publish.extract_bundle(session, intake_id)
        entries = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Provenance"]
        request = Request(ehr.base_url, method="POST", data=json.dumps(
            {"resourceType": "Bundle", "type": "batch", "entry": entries}).encode(),
            headers={"Authorization": f"Bearer {ehr.token}", "Content-Type": "application/fhir+json"})
        with urlopen(request, timeout=30) as response:
            answer = json.load(response)
        statuses = [e["response"]["status"] for e in answer["entry"]]
        assert all(s.startswith(("200", "201")) for s in statuses), statuses

    return push


def pushed_by_the_outbox(app: Flask, intake_id: str) -> None:
    """The outbox pushed (eager jobs) after the submit or re-score: nothing else to do."""


def visits(app: Flask, tmp_path: Path, push: Push) -> tuple[str, str]:
    """A flagged intake, its re-score with a corrected rule, a flagged follow-up; each pushed."""
    first = submit_stress(app)
    push(app, first)
    rescore(app, first, corrected_catalog(tmp_path))
    push(app, first)
    with services(app).sessions() as session:
        patient_id = session.get(Intake, first).patient_id
    follow_up = submit_stress(app, patient_id)
    push(app, follow_up)
    return first, follow_up


def assert_the_ehr_holds_the_current_record(app: Flask, dump: dict[str, list[dict[str, Any]]], first: str,
                                            follow_up: str) -> None:
    """`dump`: everything the EHR stores, by type."""
    counts = {kind: len(resources) for kind, resources in dump.items()}
    assert counts["Patient"] == 1 and counts["QuestionnaireResponse"] == 2
    by_value = {kind: {i["value"]: r for r in dump.get(kind, []) for i in r.get("identifier") or []}
                for kind in ("Observation", "Flag", "DocumentReference")}
    documents = by_value["DocumentReference"]
    assert counts["DocumentReference"] == 2 and set(documents) == {first, follow_up}  # one per intake
    assert documents[first]["docStatus"] == "amended"  # re-rendered after the re-score: updated in place
    assert documents[follow_up]["docStatus"] == "final"
    with services(app).sessions() as session:
        stored = {i: [json.loads(r.resource_json) for r in fhir_store.resources_of_intake(session, i)]
                  for i in (first, follow_up)}
    for intake_id, resources in stored.items():
        for observation in (r for r in resources if r["resourceType"] == "Observation"):
            theirs = by_value["Observation"][observation["identifier"][0]["value"]]
            assert theirs["status"] == observation["status"]
            assert theirs.get("valueInteger") == observation.get("valueInteger"), intake_id
    assert counts["Observation"] == sum(1 for rs in stored.values() for r in rs if r["resourceType"] == "Observation")
    amended = [o for o in dump["Observation"] if o["status"] == "amended"]
    assert amended and all(o["identifier"][0]["value"].startswith(f"{first}/") for o in amended)
    flags = by_value["Flag"]
    assert {v.split("/")[0] for v in flags} == {first, follow_up}
    assert all(f["status"] == "inactive" and f["period"].get("end") for v, f in flags.items()
               if v.startswith(first))
    active = [v.split("/")[0] for v, f in flags.items() if f["status"] == "active"]  # R4 has no Flag status search
    assert active == [follow_up]
    priorities = {e["url"] for f in flags.values() for e in f.get("extension", [])}
    assert extract.FLAG_PRIORITY_EXTENSION in priorities


def test_the_content_of_visits_leaves_the_ehr_current(database_url: str, tmp_path: Path) -> None:
    with reference_ehr(tmp_path, rules=True) as ehr:  # the stricter: no create-by-update, UUID ids
        app = make_app(database_url, tmp_path)
        try:
            first, follow_up = visits(app, tmp_path, post_as_batch(ehr))
            assert_the_ehr_holds_the_current_record(app, ehr.dump(), first, follow_up)
        finally:
            close_app(app)


def test_the_outbox_pushes_each_visit_and_the_re_score_to_a_receiver(database_url: str, tmp_path: Path) -> None:
    """The same visits through the real outbox push, to the test receiver (which takes whole
    transactions): a re-score is pushed as an update, the follow-up's push ends the first Flag."""
    with FhirReceiver() as receiver:
        app = make_app(database_url, tmp_path, INTAKE_EHR_FHIR_BASE=receiver.base_url,
                       INTAKE_EHR_BEARER_TOKEN="t")
        try:
            first, follow_up = visits(app, tmp_path, pushed_by_the_outbox)
            assert_pushed(app, first, follow_up)
            dump = {kind: receiver.resources(kind) for kind in
                    ("Patient", "QuestionnaireResponse", "Observation", "Flag", "DocumentReference")}
            assert_the_ehr_holds_the_current_record(app, dump, first, follow_up)
        finally:
            close_app(app)


def assert_pushed(app: Flask, first: str, follow_up: str) -> None:
    """Three pushes (the visit, its re-score, the follow-up), each delivered."""
    with services(app).sessions() as session:
        pushes = [r for i in (first, follow_up) for r in outbox_store.rows(session, subject=i)
                  if r.kind == outbox.EHR_PUSH]
        assert len(pushes) == 3 and all(r.state == "done" for r in pushes), [r.last_error for r in pushes]
        assert not session.query(OutboxRecord).filter_by(state="dead").count()


# The stock engine is the more lenient one: `make test` runs Medplum's rules, `make test-long` both.
@pytest.mark.parametrize("rules", [pytest.param(False, id="stock", marks=pytest.mark.long),
                                   pytest.param(True, id="medplum-rules")])
def test_the_outbox_pushes_visits_and_the_ehr_is_current(database_url: str, tmp_path: Path, rules: bool) -> None:
    with reference_ehr(tmp_path, rules=rules) as ehr:
        app = make_app(database_url, tmp_path, INTAKE_EHR_FHIR_BASE=ehr.base_url, INTAKE_EHR_BEARER_TOKEN=ehr.token)
        try:
            first, follow_up = visits(app, tmp_path, pushed_by_the_outbox)
            assert_pushed(app, first, follow_up)
            assert_the_ehr_holds_the_current_record(app, ehr.dump(), first, follow_up)
        finally:
            close_app(app)
