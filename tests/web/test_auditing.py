"""The audit log through the service: each listed action writes exactly one row, naming who, what,
when and from where; tampering is detected (`flask intake audit verify`); the log exports as FHIR
AuditEvent (through fhircheck); admins see it, nobody else; no PHI reaches the application logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from intake import audit
from intake.audit import verify
from intake.services import services
from intake.storage.models import AuditHead, AuditRecord
from intake.web.auditing import flush
from tests.fhircheck import fhircheck
from tests.support.sms_provider import SmsProvider
from tests.test_notify import Inbox, inbox  # noqa: F401  (fixture)
from tests.web.conftest import csrf, invite_link
from tests.web.flow import (
    EMERGENCY,
    complete_intake,
    first_page,
    page_data,
    sign_in,
    signed_in,
)
from tests.web.test_fhir_api import Api, api_app, new_token, patient_of  # noqa: F401  (fixture)


def rows(app: Flask) -> list[AuditRecord]:
    flush(app)  # the write-behind queue of read rows
    with services(app).sessions() as session:
        found = list(session.scalars(select(AuditRecord).order_by(AuditRecord.seq)))
        session.expunge_all()
    return found


def one_new_row(app: Flask, action: Callable[[], Any]) -> AuditRecord:
    """Run `action`; exactly one audit row must have been written; return it."""
    before = len(rows(app))
    action()
    after = rows(app)
    assert len(after) == before + 1, [(r.action, r.actor, r.detail) for r in after[before:]]
    return after[-1]


def test_each_audited_action_writes_exactly_one_row(api_app: Flask) -> None:  # noqa: F811
    _client, intake_id = complete_intake(api_app, EMERGENCY)
    patient_id = patient_of(api_app, intake_id)
    api = Api(api_app.test_client(), new_token(api_app, "ehr"))
    clinician = signed_in(api_app, "clinician")
    desk = signed_in(api_app, "front-desk")
    admin = signed_in(api_app, "admin")

    read = one_new_row(api_app, lambda: api.json(f"/fhir/Patient/{patient_id}"))
    assert (read.action, read.actor_kind, read.actor, read.outcome) == ("read", "client", "ehr", "success")
    assert json.loads(read.entities) == [f"Patient/{patient_id}"] and read.source == "127.0.0.1"

    search = one_new_row(api_app, lambda: api.json(f"/fhir/Observation?patient={patient_id}"))
    assert search.action == "search" and len(json.loads(search.entities)) >= 2
    assert json.loads(search.detail)["query"] == ["patient"]  # names only: values can be PHI (finding 8)

    export = one_new_row(api_app, lambda: api.get("/fhir/$export?_type=Patient", headers={"Prefer": "respond-async"}))
    assert export.action == "export" and json.loads(export.detail)["status"] == 202

    pdf = one_new_row(api_app, lambda: clinician.get(f"/clinician/intakes/{intake_id}/screening-summary.pdf"))
    assert (pdf.action, pdf.actor_kind, pdf.actor) == ("pdf", "user", "doctor")
    assert json.loads(pdf.entities) == [f"Intake/{intake_id}"]

    summary = one_new_row(api_app, lambda: clinician.get(f"/clinician/intakes/{intake_id}"))
    assert summary.action == "read"
    fhir_json = one_new_row(api_app, lambda: clinician.get(f"/fhir/Patient/{patient_id}"))
    assert (fhir_json.action, fhir_json.actor_kind, fhir_json.actor) == ("read", "user", "doctor")

    login = one_new_row(api_app, lambda: signed_in(api_app, "clinician"))
    assert (login.action, login.actor, login.outcome) == ("login", "doctor", "success")
    failed = one_new_row(api_app, lambda: sign_in(api_app.test_client(), "doctor", "not the password"))
    assert (failed.action, failed.actor_kind, failed.actor, failed.outcome) == (
        "login-failed",
        "anonymous",
        "doctor",
        "failure",
    )
    logout = one_new_row(
        api_app,
        lambda: clinician.post("/staff/logout", data={"csrf_token": csrf(clinician.get("/staff/two-step").text)}),
    )
    assert (logout.action, logout.actor) == ("logout", "doctor")

    refused = one_new_row(api_app, lambda: desk.get(f"/clinician/intakes/{intake_id}"))
    assert refused.outcome == "failure" and json.loads(refused.detail)["status"] == 403

    page = desk.get("/front-desk/new").text
    created = one_new_row(
        api_app,
        lambda: desk.post(
            "/front-desk/new",
            data={
                "name": "Audit Person",
                "birth_date": "1980-01-01",
                "appointment_day": "2030-01-01",
                "appointment_time": "09:00",
                "questionnaires": ["stress"],
                "csrf_token": csrf(page),
            },
        ),
    )
    assert (created.action, created.actor, created.actor_kind) == ("create", "frontdesk", "user")
    page = admin.get("/admin/users").text
    added = one_new_row(api_app, lambda: admin.post("/admin/users", data={
        "username": "nurse2", "display_name": "Nurse", "role": "front-desk", "password": "another long password",
        "csrf_token": csrf(page)}))
    assert (added.action, json.loads(added.entities)) == ("create", ["User/nurse2"])

    patient = api_app.test_client()
    link = invite_link(api_app)
    opened = one_new_row(api_app, lambda: patient.get(link))
    assert (opened.action, opened.actor_kind) == ("login", "patient-link")
    start = one_new_row(api_app, lambda: first_page(patient))
    assert (start.action, start.actor_kind, start.actor) == ("read", "patient-link", opened.actor)
    assert json.loads(start.entities) == [opened.actor]
    first = first_page(patient)
    shown = one_new_row(api_app, lambda: patient.get(first))
    assert (shown.action, json.loads(shown.detail)["path"]) == ("read", first)
    answers = {**page_data(api_app, first, {}), "csrf_token": csrf(patient.get(first).text)}
    saved = one_new_row(api_app, lambda: patient.post(first, data=answers))
    assert (saved.action, saved.actor_kind, saved.actor) == ("update", "patient-link", opened.actor)
    review = one_new_row(api_app, lambda: patient.get("/intake/review"))
    assert (review.action, review.actor, review.outcome) == ("read", opened.actor, "success")
    unsent = len(rows(api_app))
    api_app.test_client().get("/intake/review")  # no intake in that session: nothing shown, no row
    assert len(rows(api_app)) == unsent
    bad_link = one_new_row(api_app, lambda: api_app.test_client().get("/i/not-a-real-link"))
    assert (bad_link.action, bad_link.outcome) == ("login-failed", "failure")

    unaudited = len(rows(api_app))
    api_app.test_client().get("/fhir/metadata")
    api_app.test_client().get("/")
    assert len(rows(api_app)) == unaudited  # nothing disclosed, nothing written
    assert api_app.test_cli_runner().invoke(args=["intake", "audit", "verify"]).exit_code == 0


TRIGGERS = ("audit_log_no_update", "audit_log_no_delete", "audit_log_no_truncate", "audit_head_no_delete",
            "audit_head_no_truncate", "audit_head_forward_only")


def guards_off(session: Session) -> None:
    """Switch off the append-only triggers in this transaction (as the schema's owner could)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        session.execute(text("ALTER TABLE audit_head DISABLE TRIGGER USER"))
    else:
        for name in TRIGGERS:
            session.execute(text(f"DROP TRIGGER IF EXISTS {name}"))


def guards_on(session: Session) -> None:
    """Put them back for the tests after this one (PostgreSQL's database outlives a test)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
        session.execute(text("ALTER TABLE audit_head ENABLE TRIGGER USER"))


def test_the_database_refuses_to_change_or_remove_audit_rows(api_app: Flask) -> None:  # noqa: F811
    for _ in range(3):
        signed_in(api_app, "admin").get("/admin/users")
    postgres = services(api_app).engine.dialect.name == "postgresql"
    attempts = [
        update(AuditRecord).where(AuditRecord.seq == 2).values(actor="someone-else"),
        delete(AuditRecord).where(AuditRecord.seq == 2),
        delete(AuditRecord),
        delete(AuditHead),
        update(AuditHead).values(seq=AuditHead.seq - 1),
    ] + ([text("TRUNCATE audit_log"), text("TRUNCATE audit_head")] if postgres else [])
    for statement in attempts:
        with (services(api_app).sessions() as session, pytest.raises(DBAPIError, match="append-only"),
              session.begin()):
            session.execute(statement)
    with services(api_app).sessions() as session:
        count, problems = verify(session)
    assert count >= 3 and problems == []
    signed_in(api_app, "admin").get("/admin/users")  # appending still works
    assert api_app.test_cli_runner().invoke(args=["intake", "audit", "verify"]).exit_code == 0


@pytest.mark.parametrize("tamper", ["change", "delete-middle", "delete-last", "reorder"])
def test_tampering_is_detected(api_app: Flask, tamper: str) -> None:  # noqa: F811
    for _ in range(3):
        signed_in(api_app, "admin").get("/admin/users")
    runner = api_app.test_cli_runner()
    ok = runner.invoke(args=["intake", "audit", "verify"])
    assert ok.exit_code == 0 and "intact" in ok.output
    with services(api_app).sessions() as session, session.begin():
        guards_off(session)  # what someone who can change the schema could do
        if tamper == "change":
            session.execute(update(AuditRecord).where(AuditRecord.seq == 2).values(actor="someone-else"))
        elif tamper == "delete-middle":
            session.execute(delete(AuditRecord).where(AuditRecord.seq == 2))
        elif tamper == "delete-last":
            last = session.scalars(select(AuditRecord.seq).order_by(AuditRecord.seq.desc())).first()
            session.execute(delete(AuditRecord).where(AuditRecord.seq == last))
        else:
            first, second = session.scalars(
                select(AuditRecord).where(AuditRecord.seq.in_([1, 2])).order_by(AuditRecord.seq)
            ).all()
            a, b = first.at, second.at
            first.at, second.at = b, a
            session.flush()
        guards_on(session)
    result = runner.invoke(args=["intake", "audit", "verify"])
    assert result.exit_code == 1 and "TAMPERED" in result.output
    page = signed_in(api_app, "admin").get("/admin/audit?check=1").text
    assert "tampered with" in page


def test_the_log_exports_as_audit_events_for_admins_only(api_app: Flask, tmp_path: Path) -> None:  # noqa: F811
    _client, intake_id = complete_intake(api_app, {})
    Api(api_app.test_client(), new_token(api_app)).json(f"/fhir/Patient/{patient_of(api_app, intake_id)}")
    sign_in(api_app.test_client(), "doctor", "wrong password!")
    admin = signed_in(api_app, "admin")
    response = admin.get("/admin/audit/AuditEvent.ndjson")
    assert response.status_code == 200 and response.content_type == "application/fhir+ndjson"
    lines = response.data.decode().splitlines()
    events = [json.loads(line) for line in lines]
    stored = rows(api_app)
    # Every row in chain order; the export's own row is queued as it starts and may or may not be in it.
    assert len(stored) - 1 <= len(events) <= len(stored)
    assert [e["id"] for e in events] == [f"audit-{r.seq}" for r in stored[:len(events)]]
    assert {e["resourceType"] for e in events} == {"AuditEvent"}
    assert {e["subtype"][0]["code"] for e in events} >= {"read", "110122"}
    (tmp_path / "AuditEvent.ndjson").write_bytes(response.data)
    fhircheck(tmp_path / "AuditEvent.ndjson")
    out = tmp_path / "cli.ndjson"
    result = api_app.test_cli_runner().invoke(args=["intake", "audit", "export", "-o", str(out)])
    assert result.exit_code == 0 and len(out.read_text().splitlines()) >= len(lines)
    assert signed_in(api_app, "clinician").get("/admin/audit").status_code == 403
    page = admin.get("/admin/audit?action=login-failed&check=1").text
    assert "login-failed" in page and "Hash chain intact" in page


def test_no_patient_details_reach_the_application_logs(api_app: Flask, caplog: pytest.LogCaptureFixture,  # noqa: F811
                                                       inbox: tuple[Inbox, int]) -> None:  # noqa: F811
    marker = "Zebediah Quaxmoor"
    email, phone = "zebediah.quaxmoor@example.org", "+15559876543"
    caplog.set_level(logging.DEBUG)
    with SmsProvider() as sms:  # contact details through the invitation, its messages and a refusal
        api_app.config.update(INTAKE_SMTP_PORT=inbox[1], INTAKE_QUIET_HOURS="", **sms.settings())
        sms.fail_next(400)
        result = api_app.test_cli_runner().invoke(args=[
            "intake", "invite", "--name", "Contact Person", "--birth-date", "1970-01-01", "--email", email,
            "--phone", phone, "--appointment", "2999-01-01T10:00"])
        assert result.exit_code == 0 and len(inbox[0].messages) == 1 and sms.received == []
    desk = signed_in(api_app, "front-desk")
    assert "Contact Person" in desk.get("/front-desk/patients?q=contact").text
    patient_id = result.output.split(" ")[1]
    assert email in desk.get(f"/front-desk/patients/{patient_id}/contact").text
    client = api_app.test_client()
    client.get(invite_link(api_app, name=marker))
    path = first_page(client)
    answers = page_data(api_app, path, {})
    answers = {key: (marker if isinstance(value, str) and not value.startswith("LA") and len(value) > 5 else value)
               for key, value in answers.items()}
    client.post(path, data={**answers, "csrf_token": csrf(client.get(path).text)})
    _c, intake_id = complete_intake(api_app, EMERGENCY)
    Api(api_app.test_client(), new_token(api_app)).json(f"/fhir/Patient?name={marker.split()[1]}")
    signed_in(api_app).get(f"/clinician/intakes/{intake_id}")
    logged = "\n".join(record.getMessage() + str(record.args or "") for record in caplog.records
                       if not record.name.startswith("mail.log"))  # not the test's SMTP server's own log
    assert caplog.records, "nothing was logged at all: the test would prove nothing"
    assert marker not in logged and marker.split()[1] not in logged
    assert "patient message" in logged and "dead letter" in logged  # the sending was logged, without the details
    assert email not in logged and email.split("@")[0] not in logged and phone[2:] not in logged


# -- issue 15, finding 8: the real outcome of a read; no query values in the log --


def test_finding_8_an_anonymous_summary_request_is_not_logged_as_a_successful_read(app: Flask) -> None:
    anonymous = app.test_client()
    for path in ("/clinician/intakes/abc123", "/clinician/intakes/abc123/screening-summary.pdf"):
        row = one_new_row(app, lambda: anonymous.get(path))  # noqa: B023 (called at once)
        detail = json.loads(row.detail)
        assert (row.actor_kind, row.outcome, detail["status"], json.loads(row.entities)) == (
            "anonymous",
            "failure",
            302,
            [],
        )
    clinician = signed_in(app, "clinician")
    missing = one_new_row(app, lambda: clinician.get("/clinician/intakes/no-such-intake"))
    assert (missing.outcome, json.loads(missing.detail)["status"]) == ("failure", 404)
    shown = one_new_row(app, lambda: clinician.get("/clinician/"))
    assert (shown.action, shown.outcome) == ("search", "success")


def test_finding_8_search_values_never_reach_the_audit_log_page_or_export(app: Flask) -> None:
    clinician = signed_in(app, "clinician")
    admin = signed_in(app, "admin")
    search = one_new_row(app, lambda: clinician.get("/fhir/Patient?name=Smith&birthdate=1970-01-01"))
    assert (search.action, json.loads(search.detail)["query"]) == ("search", ["birthdate", "name"])
    posted = one_new_row(app, lambda: clinician.post("/fhir/Patient/_search", data={"name": "Smith"},
                                                     query_string={"birthdate": "1970-01-01"}))
    assert json.loads(posted.detail)["query"] == ["birthdate"]
    exported = one_new_row(app, lambda: clinician.get("/fhir/Patient/$export?_type=Patient&_since=1970-01-01T00:00:00Z",
                                                      headers={"Prefer": "respond-async"}))
    assert (exported.action, json.loads(exported.detail)["query"]) == ("export", ["_since", "_type"])
    filtered = one_new_row(app, lambda: admin.get("/admin/audit?actor=Smith&entity=Patient/1970-01-01"))
    assert json.loads(filtered.detail)["query"] == ["actor", "entity"]
    odd = one_new_row(app, lambda: clinician.get("/fhir/Patient?Smith%201970-01-01=x"))
    assert json.loads(odd.detail)["query"] == ["?"]  # a name that is no parameter name is not kept either

    with services(app).sessions() as session:
        stored = "\n".join(str(getattr(row, column.key)) for row in session.scalars(select(AuditRecord))
                            for column in AuditRecord.__table__.columns)
    page = admin.get("/admin/audit").text
    export = admin.get("/admin/audit/AuditEvent.ndjson").text
    for secret in ("Smith", "1970-01-01"):
        assert secret not in stored and secret not in page and secret not in export


def test_finding_8_query_values_of_rows_written_before_are_not_shown(app: Flask) -> None:
    with services(app).sessions() as session, session.begin():  # a row as the old code wrote it
        audit.record(session, actor=audit.Actor("client", "ehr"), action="search", now=datetime.now(UTC),
                     detail={"method": "GET", "path": "/fhir/Patient", "query": "name=Smith&birthdate=1970-01-01"})
    admin = signed_in(app, "admin")
    page, export = admin.get("/admin/audit").text, admin.get("/admin/audit/AuditEvent.ndjson").text
    assert "birthdate" in page and "Smith" not in page and "1970-01-01" not in page
    assert "Smith" not in export and "1970-01-01" not in export
