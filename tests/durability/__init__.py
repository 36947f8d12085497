"""Durability tests: patients over real HTTP against gunicorn (tests/support/gunicorn_server.py).

This package's shared kit lives here: intakes made in-process (`workflow.invite`, one short
questionnaire each to keep request counts down), a patient client that walks link -> start ->
pages -> review -> submit with retries and deliberate duplicates, and the database checks that
say nothing was lost, duplicated or half-written.

"Acknowledged" means a POST /intake/submit answered 302 to /intake/done; only then may a
client believe its intake is stored. A connection error (a killed worker) is "not acknowledged":
the client carries on with the same intake from its session, or from its link when it has no
session cookie yet, until a submit is acknowledged.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from sqlalchemy import func, select, text

from intake import audit, close_app, workflow
from intake.jobs import outbox
from intake.services import services
from intake.storage.db import session_scope
from intake.storage.models import (
    AuditRecord,
    FhirResource,
    FlagRecord,
    Intake,
    OutboxRecord,
    ResponseRecord,
    ScoringResult,
)
from tests.conftest import AppFactory
from tests.support.gunicorn_server import GunicornServer, HttpClient, Response
from tests.web.flow import page_data

FORM_KEY = "stress"  # two pages (PSS-10, PHQ-4) when PHQ-4 stays low, as the default answers keep it
DUPLICATE_EVERY = 10  # every 10th intake re-POSTs a page and double-submits: 10% duplicate retries
MAX_ATTEMPTS = 25  # per intake, each attempt resuming after a connection error
CLIENT_TIMEOUT = 30.0  # per request: longer than any submit under load, shorter than the test
INVITE_BATCH = 50
MAX_PAGES = 40  # a whole five-questionnaire intake has about 15; more means a page loop

CONNECTION_ERRORS = (OSError, http.client.HTTPException)
_CSRF = re.compile(r'name="csrf_token"[^>]*? value="([^"]+)"')
_PAGE_LINK = re.compile(r'href="(/intake/[^"/]+/[^"]+)"')
# Server log lines that mean a request failed inside the app, or a worker hung (killed by the
# master after gunicorn.conf.py's timeout); gunicorn's lines about the workers the kill test
# kills are expected and not matched.
_BAD_LOG = re.compile(r"database is locked|Traceback|Exception on |ERROR in |\bjob \S+ failed|WORKER TIMEOUT",
                      re.IGNORECASE)


# --- set-up --------------------------------------------------------------------------------------


AUDIT_KEY = "the audit key of the durability tests' server and checks"


def server_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """gunicorn's environment: the test database, its own instance folder, a random key, jobs in
    a thread (the default), and a link rate limit no test reaches (all clients are 127.0.0.1)."""
    return {
        "DATABASE_URL": database_url,
        "INTAKE_INSTANCE_PATH": str(tmp_path / "server-instance"),
        "INTAKE_SECRET_KEY": secrets.token_hex(32),
        "INTAKE_AUDIT_KEY": AUDIT_KEY,  # the local app checks the chain the server wrote
        "INTAKE_JOBS": "thread",
        "INTAKE_LINK_RATE_LIMIT": "1000000 per minute",
    }


@contextmanager
def local_app(make_app: AppFactory) -> Iterator[Flask]:
    """The app in-process over the same database: invites before, checks after."""
    app = make_app(INTAKE_AUDIT_KEY=AUDIT_KEY)
    try:
        yield app
    finally:
        close_app(app)


@dataclass(frozen=True)
class Invite:
    intake_id: str
    link: str  # /i/<token>


def invite_many(app: Flask, count: int, form_key: str = FORM_KEY) -> list[Invite]:
    """`count` patients, each with an intake of `form_key` alone, in a few transactions."""
    invites: list[Invite] = []
    catalog = services(app).catalog
    while len(invites) < count:
        with session_scope(services(app).sessions) as session:
            for n in range(len(invites), min(count, len(invites) + INVITE_BATCH)):
                intake, token = workflow.invite(
                    session, catalog, name=f"Durable Patient {n}", birth_date=date(1970, 1, 1),
                    questionnaires=[form_key], appointment_at=None, ttl=timedelta(hours=2))
                invites.append(Invite(intake.id, f"/i/{token}"))
    return invites


def page_answers(app: Flask, form_key: str = FORM_KEY) -> dict[str, dict[str, Any]]:
    """Valid answers for every page of the form, by page path (tests/web/flow.py's choices)."""
    form = services(app).catalog.by_key[form_key]
    paths = [f"/intake/{form_key}/{page.key}" for page in form.pages]
    return {path: page_data(app, path) for path in paths}


# --- the patient client ---------------------------------------------------------------------------


class FlowError(Exception):
    """An answer the patient flow should never give (wrong status or redirect)."""


@dataclass
class Outcome:
    """What one intake's client saw."""

    intake_id: str
    acknowledged: bool = False
    attempts: int = 0
    connection_errors: int = 0
    duplicates: int = 0
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def _path(location: str) -> str:
    return urlsplit(location).path


class Patient:
    """One patient's phone working through one intake."""

    def __init__(self, port: int, invite: Invite, answers: dict[str, dict[str, Any]], *, duplicate: bool) -> None:
        self.client = HttpClient(port, timeout=CLIENT_TIMEOUT)
        self.invite, self.answers, self.duplicate = invite, answers, duplicate
        self.outcome = Outcome(invite.intake_id)
        self.csrf: str | None = None
        self._duplicated_page = False

    def run(self, deadline: float) -> Outcome:
        """Work until a submit is acknowledged, an unexpected answer, or out of attempts/time."""
        out = self.outcome
        while not out.acknowledged and out.attempts < MAX_ATTEMPTS:
            if time.monotonic() > deadline:
                out.problems.append("ran out of time")
                break
            out.attempts += 1
            try:
                self._attempt()
            except CONNECTION_ERRORS:
                out.connection_errors += 1
                time.sleep(min(0.02 * out.attempts, 0.5))
            except FlowError as exc:
                out.problems.append(str(exc))
                break
        if not out.acknowledged and not out.problems:
            out.problems.append(f"no acknowledged submit after {out.attempts} attempts")
        return out

    def _send(self, method: str, path: str, form: dict[str, Any] | None = None) -> Response:
        return self._count(method, path, self.client.request(method, path, form))

    def _count(self, method: str, path: str, response: Response) -> Response:
        self.outcome.requests += 1
        self.outcome.statuses[response.status] += 1
        if response.status >= 500:
            shown = "/i/<token>" if path.startswith("/i/") else path  # no tokens in test output
            raise FlowError(f"{method} {shown}: {response.status}")
        return response

    def _expect_redirect(self, response: Response, what: str) -> str:
        if response.status != 302:
            raise FlowError(f"{what}: expected 302, got {response.status}")
        return _path(response.location)

    def _attempt(self) -> None:
        if not self.client.cookies:  # no session yet (or its answer was lost): the link again
            target = self._expect_redirect(self._send("GET", self.invite.link), "GET link")
            if target != "/intake":
                raise FlowError(f"GET link: redirected to {target}")
        start = self._send("GET", "/intake")
        if start.status == 302 and _path(start.location) == "/intake/done":
            self._submit()  # completed by a submit whose answer was lost: ask again
            return
        if start.status != 200:
            raise FlowError(f"GET /intake: {start.status}")
        match = _PAGE_LINK.search(start.text)
        if not match:
            raise FlowError("the start page links to no page")
        path = match.group(1)
        for _ in range(MAX_PAGES):
            page = self._send("GET", path)
            if page.status == 302 and _path(page.location) == "/intake/done":
                break
            if page.status != 200:
                raise FlowError(f"GET {path}: {page.status}")
            self.csrf = self._token(page.text, path)
            data = {**self.answers[_path(path)], "csrf_token": self.csrf}
            after = self._expect_redirect(self._send("POST", path, data), f"POST {path}")
            if self.duplicate and not self._duplicated_page:  # a flaky phone sends the page twice
                self._duplicated_page = True
                self.outcome.duplicates += 1
                again = self._expect_redirect(self._send("POST", path, data), f"POST {path} again")
                if again != after:
                    raise FlowError(f"POST {path} again: redirected to {again}, first to {after}")
            if after in ("/intake/review", "/intake/done"):
                break
            path = after
        else:
            raise FlowError(f"more than {MAX_PAGES} pages")
        review = self._send("GET", "/intake/review")
        if review.status == 200:
            self.csrf = self._token(review.text, "/intake/review")
        elif not (review.status == 302 and _path(review.location) == "/intake/done"):
            raise FlowError(f"GET /intake/review: {review.status}")
        self._submit()

    def _token(self, html: str, path: str) -> str:
        match = _CSRF.search(html)
        if not match:
            raise FlowError(f"GET {path}: no CSRF token")
        return match.group(1)

    def _submit(self) -> None:
        if self.csrf is None:
            raise FlowError("submit without ever seeing a CSRF token")
        form = {"csrf_token": self.csrf}
        twin: list[Response] = []
        thread = None
        if self.duplicate:  # a double tap: the same submit on a second connection, at once
            twin_client = HttpClient(self.client.port, timeout=CLIENT_TIMEOUT)
            twin_client.cookies = dict(self.client.cookies)
            thread = threading.Thread(target=_twin, args=(twin_client, form, twin))
            thread.start()
            self.outcome.duplicates += 1
        try:
            response = self._send("POST", "/intake/submit", form)
        finally:
            if thread is not None:
                thread.join(CLIENT_TIMEOUT + 5)
        for result in twin:  # a connection error there left nothing: the first POST decides
            self._count("POST", "/intake/submit", result)
            if (result.status, _path(result.location)) != (302, "/intake/done"):
                raise FlowError(f"the second POST /intake/submit: {result.status} to {_path(result.location)}")
        target = self._expect_redirect(response, "POST /intake/submit")
        if target != "/intake/done":
            raise FlowError(f"POST /intake/submit: redirected to {target}")
        self.outcome.acknowledged = True


def _twin(client: HttpClient, form: dict[str, Any], into: list[Response]) -> None:
    with suppress(CONNECTION_ERRORS):
        into.append(client.post("/intake/submit", form))


# --- running many ---------------------------------------------------------------------------------


@dataclass
class Run:
    outcomes: list[Outcome]
    elapsed: float

    @property
    def acknowledged(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.acknowledged]

    @property
    def requests(self) -> int:
        return sum(o.requests for o in self.outcomes)

    def statuses(self) -> Counter[int]:
        total: Counter[int] = Counter()
        for outcome in self.outcomes:
            total.update(outcome.statuses)
        return total

    def problems(self) -> list[str]:
        return [f"intake #{n}: {p}" for n, o in enumerate(self.outcomes) for p in o.problems]

    def figures(self, label: str) -> str:
        retried = sum(o.connection_errors for o in self.outcomes)
        duplicates = sum(o.duplicates for o in self.outcomes)
        return (f"{label}: submits {len(self.outcomes)}, acknowledged {len(self.acknowledged)}, "
                f"retried {retried} (after connection errors), duplicates {duplicates}, "
                f"requests {self.requests}, elapsed {self.elapsed:.1f} s, "
                f"{self.requests / self.elapsed:.0f} req/s, {len(self.acknowledged) / self.elapsed:.1f} submits/s, "
                f"statuses {dict(sorted(self.statuses().items()))}")


def run_patients(server: GunicornServer, invites: list[Invite], answers: dict[str, dict[str, Any]], *,
                 clients: int, timeout: float,
                 during: Callable[[Callable[[], int]], None] | None = None) -> Run:
    """Drive every invite to an acknowledged submit with `clients` concurrent threads.

    `during`, if given, runs in this thread while the clients work; it gets a function
    returning how many intakes have finished so far (the kill test paces its kills with it).
    """
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    finished = [0]
    lock = threading.Lock()

    def one(n: int, invite: Invite) -> Outcome:
        patient = Patient(server.port, invite, answers, duplicate=n % DUPLICATE_EVERY == 0)
        try:
            return patient.run(deadline)
        finally:
            with lock:
                finished[0] += 1

    with ThreadPoolExecutor(max_workers=clients, thread_name_prefix="patient") as pool:
        futures: list[Future[Outcome]] = [pool.submit(one, n, invite) for n, invite in enumerate(invites)]
        try:
            if during is not None:
                during(lambda: finished[0])
        finally:
            outcomes = [f.result(timeout=max(1.0, deadline - time.monotonic()) + CLIENT_TIMEOUT) for f in futures]
    return Run(outcomes, time.monotonic() - started)


# --- checks ---------------------------------------------------------------------------------------


def bad_log_lines(server: GunicornServer) -> list[str]:
    """Error-log lines that mean something failed in the app (none expected, ever); a traceback
    is reported with its exception line."""
    lines = server.error_log().splitlines()
    bad = []
    for n, line in enumerate(lines):
        if not _BAD_LOG.search(line):
            continue
        if line.startswith("Traceback"):
            last = next((later for later in lines[n + 1:] if later and not later[0].isspace()), "")
            line = f"{line} ... {last}"
        bad.append(line)
    return bad


def check_database(app: Flask, run: Run) -> list[str]:
    """Everything acknowledged is stored completely, exactly once; nothing is half-written."""
    problems: list[str] = []
    ids = [o.intake_id for o in run.outcomes]
    acknowledged = {o.intake_id for o in run.acknowledged}
    with services(app).sessions() as session:
        status = dict(session.execute(select(Intake.id, Intake.status).where(Intake.id.in_(ids))).all())
        completed_at = dict(session.execute(select(Intake.id, Intake.completed_at).where(Intake.id.in_(ids))).all())
        responses: dict[str, Counter[str]] = {i: Counter() for i in ids}
        for intake_id, response_status in session.execute(
                select(ResponseRecord.intake_id, ResponseRecord.status).where(ResponseRecord.intake_id.in_(ids))):
            responses[intake_id][response_status] += 1
        scored = set(session.scalars(select(ScoringResult.intake_id).where(ScoringResult.intake_id.in_(ids))))
        resources: dict[str, Counter[str]] = {i: Counter() for i in ids}
        for intake_id, kind in session.execute(
                select(FhirResource.intake_id, FhirResource.resource_type).where(FhirResource.intake_id.in_(ids))):
            resources[intake_id][kind] += 1
        flags = Counter(session.scalars(select(FlagRecord.intake_id).where(FlagRecord.intake_id.in_(ids))))
        renders = Counter(session.scalars(select(OutboxRecord.subject).where(
            OutboxRecord.kind == outbox.RENDER_PDF, OutboxRecord.subject.in_(ids))))
        dead = session.scalar(select(func.count()).select_from(OutboxRecord).where(OutboxRecord.state == "dead"))
        submitted: Counter[str] = Counter()
        for entities, detail in session.execute(
                select(AuditRecord.entities, AuditRecord.detail).where(AuditRecord.action == "create")):
            if json.loads(detail or "{}").get("submitted"):
                submitted.update(e.removeprefix("Intake/") for e in json.loads(entities))
        count, chain_problems = audit.verify(session)
    problems += [f"audit chain: {p}" for p in chain_problems[:5]]
    if count == 0:
        problems.append("audit log is empty")
    if dead:
        problems.append(f"{dead} outbox rows are dead letters")

    shape: Counter[tuple[tuple[str, int], ...]] = Counter()
    for n, intake_id in enumerate(ids):
        where = f"intake #{n}"
        if intake_id in acknowledged and status.get(intake_id) != "completed":
            problems.append(f"{where}: submit acknowledged but status is {status.get(intake_id)!r} (lost)")
        if status.get(intake_id) == "completed":
            if completed_at.get(intake_id) is None:
                problems.append(f"{where}: completed without completed_at")
            if responses[intake_id] != Counter({"completed": 1}):
                problems.append(f"{where}: responses {dict(responses[intake_id])}, expected one completed")
            if intake_id not in scored:
                problems.append(f"{where}: completed without its scoring row (half-written)")
            if resources[intake_id]["QuestionnaireResponse"] != 1:
                problems.append(f"{where}: {resources[intake_id]['QuestionnaireResponse']} published responses")
            if submitted[intake_id] != 1:
                problems.append(f"{where}: {submitted[intake_id]} 'submitted' audit rows, expected 1")
            if renders[intake_id] != 1:
                problems.append(f"{where}: {renders[intake_id]} PDF outbox rows, expected 1")
            # Every intake got the same answers, so the same records: a duplicate shows as a different shape.
            shape[
                (
                    *tuple(sorted((k, v) for k, v in resources[intake_id].items() if k != "DocumentReference")),
                    ("flags", flags[intake_id]),
                )
            ] += 1
        else:
            if (responses[intake_id]["completed"] or intake_id in scored or resources[intake_id]
                    or submitted[intake_id] or renders[intake_id]):
                problems.append(f"{where}: not completed, yet has completed records (half-written)")
    if len(shape) > 1:
        problems.append(f"completed intakes differ in their stored records: {dict(shape)}")
    return problems


def check_sqlite_integrity(app: Flask) -> list[str]:
    """SQLite's own checks of the file: pages and indexes, and foreign keys."""
    engine = services(app).engine
    if engine.dialect.name != "sqlite":
        return []
    with engine.connect() as connection:
        integrity = [row[0] for row in connection.execute(text("PRAGMA integrity_check"))]
        foreign = connection.execute(text("PRAGMA foreign_key_check")).all()
    problems = [] if integrity == ["ok"] else [f"integrity_check: {integrity[:5]}"]
    return problems + ([f"foreign_key_check: {foreign[:5]}"] if foreign else [])


def count_intakes(app: Flask) -> int:
    with services(app).sessions() as session:
        return session.scalar(select(func.count()).select_from(Intake)) or 0
