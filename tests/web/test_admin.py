"""Admin pages: staff accounts (add, disable, enable, new password, remove two-step) and API
clients (register from a JWK set, revoke), each change taking effect at once; the audit report
(filters by action, user, record and UTC days, keyset paging, the hash-chain check on request)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake import audit
from intake.services import services
from intake.storage import audit_log
from intake.storage.db import session_scope
from intake.storage.models import AuditRecord
from intake.web import admin as admin_views
from tests.conftest import AppFactory
from tests.smart_client import SmartClient
from tests.web.conftest import csrf, error_summary
from tests.web.flow import sign_in, signed_in
from tests.web.test_fhir_api import api_app  # noqa: F401  (fixture)


def test_admin_adds_disables_and_resets_users(api_app: Flask) -> None:  # noqa: F811
    admin = signed_in(api_app, "admin")
    page = admin.get("/admin/users").text
    bad = admin.post(
        "/admin/users", data={"username": "n", "password": "short", "role": "clinician", "csrf_token": csrf(page)}
    )
    assert bad.status_code == 400 and "<title>Error:" in bad.text
    added = admin.post(
        "/admin/users",
        data={
            "username": "Nurse.Joy",
            "display_name": "Nurse <Joy>",
            "role": "front-desk",
            "password": "a long enough password",
            "csrf_token": csrf(page),
        },
    )
    assert added.status_code == 302
    listing = admin.get("/admin/users").text
    assert "nurse.joy" in listing and "Nurse &lt;Joy&gt;" in listing
    duplicate = admin.post("/admin/users", data={"username": "NURSE.JOY", "role": "clinician",
                                                 "password": "a long enough password", "csrf_token": csrf(listing)})
    assert duplicate.status_code == 409 and "already a user" in duplicate.text
    token = csrf(duplicate.text)
    gone = admin.post("/admin/users/nobody.here/disable", data={"csrf_token": token})
    assert gone.status_code == 404 and "No user" in gone.text
    nurse = signed_in(api_app, "front-desk", username="nurse.joy", password="a long enough password")
    assert nurse.get("/front-desk/").status_code == 200
    token = csrf(admin.get("/admin/users").text)
    assert admin.post("/admin/users/nurse.joy/disable", data={"csrf_token": token}).status_code == 302
    assert nurse.get("/front-desk/").status_code == 302  # signed out at once
    assert "disabled" in admin.get("/admin/users").text
    assert admin.post("/admin/users/nurse.joy/enable", data={"csrf_token": token}).status_code == 302
    short = admin.post("/admin/users/nurse.joy/reset-password", data={"password": "short", "csrf_token": token})
    assert short.status_code == 400 and "12 to 256" in short.text
    assert admin.post("/admin/users/nurse.joy/reset-password", data={"password": "the next long password",
                                                                      "csrf_token": token}).status_code == 302
    assert sign_in(api_app.test_client(), "nurse.joy", "a long enough password").status_code == 401
    assert sign_in(api_app.test_client(), "nurse.joy", "the next long password").status_code == 302
    assert admin.post("/admin/users/nobody/disable", data={"csrf_token": token}).status_code == 404  # no such user
    assert admin.post("/admin/users/nurse.joy/promote", data={"csrf_token": token}).status_code == 404


def test_admin_registers_and_revokes_api_clients(api_app: Flask, tmp_path: Path) -> None:  # noqa: F811
    admin = signed_in(api_app, "admin")
    page = admin.get("/admin/clients").text
    client = SmartClient("lab-system", "ES384")
    private = {"keys": [{"kty": "EC", "crv": "P-384", "x": "a", "y": "b", "d": "secret"}]}
    refused = admin.post("/admin/clients", data={"name": "lab-system", "jwks": json.dumps(private),
                                                 "scopes": "system/*.read", "csrf_token": csrf(page)})
    assert refused.status_code == 400 and error_summary(refused.text) is not None
    assert (
        admin.post(
            "/admin/clients",
            data={
                "name": "lab-system",
                "jwks": json.dumps(client.jwks),
                "scopes": "system/Observation.read",
                "csrf_token": csrf(page),
            },
        ).status_code
        == 302
    )
    assert "system/Observation.read" in admin.get("/admin/clients").text
    token = client.token(api_app, "system/Observation.read")
    assert (
        api_app.test_client().get("/fhir/Observation", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    )
    assert admin.post("/admin/clients/lab-system/revoke", data={"csrf_token": csrf(page)}).status_code == 302
    assert "revoked" in admin.get("/admin/clients").text
    response = api_app.test_client().post(
        "/auth/token", data=client.token_form("http://localhost/auth/token", "system/Observation.read")
    )
    assert response.status_code in (400, 401) and json.loads(response.data)["error"] == "invalid_client"


# -- the audit report: filters by action, user, record and date; keyset paging; the chain check --

@pytest.fixture
def audit_app(make_app: AppFactory) -> Flask:
    """Read rows written before each response (INTAKE_AUDIT_QUEUE=sync): every request's row is
    in the log when the next request reads it."""
    return make_app(INTAKE_AUDIT_QUEUE="sync")


ROW = re.compile(r'<tr><td>(\d+)</td><td class="status">([^<]+)</td>\s*<td>(\S+) (?:<a [^>]*>([^<]*)</a>)?</td>\s*'
                 r"<td>([^<]+)</td><td>[^<]+</td>\s*<td>(.*?)</td>", re.DOTALL)


def shown(html: str) -> list[dict[str, Any]]:
    """The audit page's rows as shown: seq, at, actor, action, records."""
    return [{"seq": int(seq), "at": at, "actor": unescape(actor or ""), "action": action,
             "records": [unescape(e) for e in re.findall(r">([^<]+)</a>", records)]}
            for seq, at, _kind, actor, action, records in ROW.findall(html)]


def stored(app: Flask) -> list[AuditRecord]:
    """Every row of the log, newest first."""
    with services(app).sessions() as session:
        found = list(session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc())))
        session.expunge_all()
    return found


def seqs(app: Flask, keep: Callable[[AuditRecord], bool]) -> list[int]:
    return [row.seq for row in stored(app) if keep(row)]


def older_link(html: str) -> str | None:
    match = re.search(r'<a href="([^"]+)">Older rows</a>', html)
    return unescape(match.group(1)) if match else None


def write_rows(app: Flask, *rows: tuple[datetime, str, list[str]]) -> None:
    """Append rows (when, action, records) by the CLI user "tester", as a command would."""
    with session_scope(services(app).sessions) as session:
        for at, action, entities in rows:
            audit.record(session, actor=audit.Actor("cli", "tester"), action=action, now=at, entities=entities)


def busy_log(app: Flask) -> FlaskClient:
    """Sign-ins, a failed one, two users added and one disabled; returns the admin's client."""
    admin = signed_in(app, "admin")
    signed_in(app, "clinician")
    sign_in(app.test_client(), "doctor", "not the password")
    token = csrf(admin.get("/admin/users").text)
    for name in ("nurse.one", "nurse.two"):
        added = admin.post("/admin/users", data={"username": name, "role": "front-desk",
                                                 "password": "a long enough password", "csrf_token": token})
        assert added.status_code == 302
    assert admin.post("/admin/users/nurse.one/disable", data={"csrf_token": token}).status_code == 302
    return admin


def test_the_audit_report_filters_by_action_user_and_record(audit_app: Flask) -> None:
    admin = busy_log(audit_app)
    cases: list[tuple[str, Callable[[AuditRecord], bool]]] = [
        ("action=create", lambda r: r.action == "create"),
        ("actor=admin", lambda r: r.actor == "admin"),
        ("actor=doctor&action=login-failed", lambda r: r.actor == "doctor" and r.action == "login-failed"),
        ("entity=User/nurse.one", lambda r: "User/nurse.one" in json.loads(r.entities)),
        ("entity=+User/nurse.two+&action=create", lambda r: json.loads(r.entities) == ["User/nurse.two"]),
        ("entity=User/nurse", lambda r: False),  # a whole record id, not a part of one
        ("actor=nobody", lambda r: False),
    ]
    for query, keep in cases:
        expected = seqs(audit_app, keep)  # before the request: the page's own row comes after
        response = admin.get(f"/admin/audit?{query}")
        assert response.status_code == 200, query
        assert [row["seq"] for row in shown(response.text)] == expected, query
    assert len(seqs(audit_app, lambda r: "User/nurse.one" in json.loads(r.entities))) == 2  # created, disabled
    page = admin.get("/admin/audit?entity=User/nurse.one").text
    assert {row["action"] for row in shown(page)} == {"create", "update"}
    assert 'value="User/nurse.one"' in page  # the filter stays in its box
    # Each shown user and record links to its own rows, keeping the other filters.
    assert 'href="/admin/audit?action=create&amp;entity=User/nurse.two"' in admin.get("/admin/audit?action=create").text
    assert "No rows match these filters." in admin.get("/admin/audit?actor=nobody").text


def test_the_audit_report_filters_by_utc_days_the_last_one_included(audit_app: Flask) -> None:
    admin = signed_in(audit_app, "admin")
    write_rows(audit_app, (datetime(2024, 3, 30, 12, 0, tzinfo=UTC), "update", ["Patient/12"]),
               (datetime(2024, 3, 31, 23, 59, 59, 999999, tzinfo=UTC), "update", ["Patient/12"]),
               (datetime(2024, 4, 1, 0, 0, tzinfo=UTC), "update", ["Patient/12"]),
               (datetime(2024, 4, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))), "update", ["Patient/12"]),  # 23:30Z
               (datetime(2024, 4, 2, 8, 0, tzinfo=UTC), "create", ["Patient/13"]))

    def days(query: str) -> list[str]:
        response = admin.get(f"/admin/audit?actor=tester&{query}")
        assert response.status_code == 200, query
        return [row["at"] for row in shown(response.text)]

    # Newest first is in the order the rows were written (their number), not by their times.
    assert days("since=2024-03-31&until=2024-03-31") == ["2024-03-31 23:30:00", "2024-03-31 23:59:59"]
    assert days("until=2024-03-31") == ["2024-03-31 23:30:00", "2024-03-31 23:59:59", "2024-03-30 12:00:00"]
    assert days("since=2024-04-01") == ["2024-04-02 08:00:00", "2024-04-01 00:00:00"]
    assert days("since=2024-04-01&until=2024-04-01") == ["2024-04-01 00:00:00"]
    assert days("since=2024-04-03") == []
    assert days("since=2024-04-01&entity=Patient/13&action=create") == ["2024-04-02 08:00:00"]
    assert len(days("since=0001-01-01&until=9999-12-31")) == 5  # the ends of the calendar are not an error


@pytest.mark.parametrize("query, field, message", [
    ("since=2024-02-30", "since", "Enter a date as YYYY-MM-DD"),
    ("until=31/03/2024", "until", "Enter a date as YYYY-MM-DD"),
    ("since=yesterday", "since", "Enter a date as YYYY-MM-DD"),
    ("since=2024-04-02&until=2024-04-01", "until", "The end date must be on or after the start date."),
    ("entity=Patient 12", "entity", "Enter a record as type/id"),
    ("action=steal", "action", "Not a valid choice"),
])
def test_bad_audit_filters_are_listed_not_ignored(audit_app: Flask, query: str, field: str, message: str) -> None:
    admin = signed_in(audit_app, "admin")
    for path in ("/admin/audit", "/admin/audit/AuditEvent.ndjson"):
        response = admin.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query)
        assert "<title>Error: Audit log" in response.text
        problems = error_summary(response.text)
        assert [f for f, _ in problems] == [field] and message in problems[0][1], problems
        assert f'id="{field}"' in response.text  # the summary's link has somewhere to go


def test_a_broken_page_link_is_a_problem_not_a_crash(audit_app: Flask) -> None:
    admin = signed_in(audit_app, "admin")
    for before in ("abc", "-3", "1e9", "9" * 40):
        response = admin.get(f"/admin/audit?before={before}")
        assert response.status_code == 400 and "That page of the log does not exist" in response.text, before
    assert admin.get("/admin/audit?before=").status_code == 200


def test_older_rows_pages_through_the_log_with_no_overlap_and_no_gap(
    audit_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin_views, "PAGE_ROWS", 3)
    admin = busy_log(audit_app)
    write_rows(audit_app, *((datetime(2024, 1, 1, 9, n, tzinfo=UTC), "update", [f"Patient/{n}"]) for n in range(8)))
    for query, keep in [("actor=tester", lambda r: r.actor == "tester"), ("", lambda r: True),
                        ("action=update&since=2024-01-01", lambda r: r.action == "update")]:
        expected = seqs(audit_app, keep)
        seen: list[int] = []
        path: str | None = f"/admin/audit?{query}"
        pages = 0
        while path:
            page = admin.get(path).text  # each view adds its own row to the log: paging must not shift
            rows = [row["seq"] for row in shown(page)]
            assert 0 < len(rows) <= 3, (path, rows)
            seen += rows
            path = older_link(page)
            if path:
                assert query.split("&")[0] in path.replace("%2F", "/")  # the filters stay with the pages
            pages += 1
            assert pages < 20
        assert seen == expected, query  # newest first, each row once, none missed
        assert len(seen) > 3


def test_the_hash_chain_is_checked_only_on_request(audit_app: Flask) -> None:
    admin = busy_log(audit_app)
    with services(audit_app).sessions() as session:
        head = audit_log.head(session)[0]
    page = admin.get("/admin/audit?action=create").text
    assert f"The log holds {head} rows." in page and "Hash chain intact" not in page
    assert "flask intake audit verify" in page
    form = re.search(r'<form method="get" action="/admin/audit">(.*?)</form>', page, re.DOTALL)
    assert form and 'name="check" value="1"' in form.group(1) and "Check the whole log</button>" in form.group(1)
    assert 'name="action" value="create"' in form.group(1)  # the check keeps the view
    checked = admin.get("/admin/audit?action=create&check=1").text
    assert f"Hash chain intact: {head + 1} rows checked." in checked  # and the row of the view before it
    assert "tampered" not in checked and len(shown(checked)) == 2


def test_the_export_takes_the_same_filters(audit_app: Flask) -> None:
    admin = busy_log(audit_app)
    write_rows(audit_app, (datetime(2024, 1, 1, 9, 0, tzinfo=UTC), "update", ["Patient/12"]),
               (datetime(2024, 1, 2, 9, 0, tzinfo=UTC), "update", ["Patient/12", "Intake/abc"]))
    page = admin.get("/admin/audit?entity=Patient/12&until=2024-01-01").text
    link = re.search(r'<a href="([^"]+)">Download the rows these filters keep', page)
    assert link
    response = admin.get(unescape(link.group(1)))
    assert response.status_code == 200 and 'filename="AuditEvent.ndjson"' in response.headers["Content-Disposition"]
    events = [json.loads(line) for line in response.data.decode().splitlines()]
    assert [e["recorded"][:10] for e in events] == ["2024-01-01"]
    everything = admin.get("/admin/audit/AuditEvent.ndjson").data.decode().splitlines()
    assert len(everything) >= len(stored(audit_app)) - 1
