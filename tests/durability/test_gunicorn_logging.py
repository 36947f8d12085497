"""gunicorn.conf.py and intake/gunicorn_logging.py: no link token or query string in any log
line, and every preloaded worker on database connections of its own."""

from __future__ import annotations

import logging
import os
import runpy
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
from gunicorn.config import Config
from gunicorn.glogging import SafeAtoms
from sqlalchemy import text
from sqlalchemy.engine import make_url

from intake.gunicorn_logging import MaskingLogger, mask_url
from intake.storage.db import make_engine
from tests.conftest import AppFactory
from tests.durability import invite_many, local_app, server_env
from tests.support.gunicorn_server import ROOT, HttpClient, gunicorn_server

TOKEN = "Zq3x_SECRET-token-value_0123456789abcdefghijklm"
with mock.patch.dict(os.environ):  # the config sets INTAKE_OUTBOX_POLLER for its server's processes
    CONFIG = runpy.run_path(str(ROOT / "gunicorn.conf.py"))


# --- the logger, in-process -----------------------------------------------------------------------


@pytest.mark.parametrize(("url", "logged"), [
    (f"/i/{TOKEN}", "/i/[redacted]"),
    (f"/i/{TOKEN}?utm=x", "/i/[redacted]"),
    (f"//i/{TOKEN}", "//i/[redacted]"),  # urlsplit would read "i" as a host and keep the token
    (f"/%69/{TOKEN}", "/i/[redacted]"),  # gunicorn decodes %69 before Flask routes it to the link
    (f"/i%2F{TOKEN}", "/i/[redacted]"),
    (f"/I/{TOKEN}/more", "/i/[redacted]"),
    (f"https://clinic.example/i/{TOKEN}#top", "/i/[redacted]"),
    ("/fhir/Patient?name=Ana&birthdate=1970-01-01", "/fhir/Patient"),
    ("/intake/stress/stress-pss10?from=review", "/intake/stress/stress-pss10"),
    ("/odd path\r\nforged line", "/odd%20path%0D%0Aforged%20line"),
    ("*", "*"),
])
def test_mask_url(url: str, logged: str) -> None:
    assert mask_url(url) == logged


def access_line(environ: dict[str, Any], request_headers: list[tuple[str, str]],
                response_headers: list[tuple[str, str]], access_format: str | None = None) -> str:
    """The access-log line MaskingLogger writes for one request, with the configured format."""
    cfg = Config()
    cfg.set("accesslog", "-")
    logger = MaskingLogger(cfg)
    response = SimpleNamespace(status="302 FOUND", headers=response_headers, sent=189)
    request = SimpleNamespace(headers=request_headers)
    base = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"}
    atoms = logger.atoms(response, request, {**base, **environ}, timedelta(milliseconds=12))
    return (access_format or CONFIG["access_log_format"]) % SafeAtoms(atoms)


def test_access_line_masks_every_url_atom() -> None:
    environ = {"RAW_URI": f"/i/{TOKEN}?sms=1", "PATH_INFO": f"/i/{TOKEN}", "QUERY_STRING": "sms=1",
               "HTTP_REFERER": f"https://sms.example/i/{TOKEN}?q=2", "HTTP_COOKIE": "session=abc",
               "HTTP_USER_AGENT": "phone"}
    request_headers = [("REFERER", f"https://sms.example/i/{TOKEN}?q=2"), ("COOKIE", "session=abc"),
                       ("AUTHORIZATION", "Bearer xyz"), ("USER-AGENT", "phone")]
    response_headers = [("Location", "/intake?next=1"), ("Set-Cookie", "session=def; HttpOnly")]
    line = access_line(environ, request_headers, response_headers)
    assert '"GET /i/[redacted] HTTP/1.1" 302 189 12ms' in line
    assert '"/i/[redacted]" "phone"' in line  # the referer's path only
    # Every atom a deployment might put in its own format is masked too.
    everything = " ".join(f"%({name})s" for name in (
        "r", "U", "q", "f", "u", "{referer}i", "{cookie}i", "{authorization}i", "{location}o",
        "{set-cookie}o", "{raw_uri}e", "{path_info}e", "{query_string}e", "{http_cookie}e", "{http_referer}e"))
    line = access_line(environ, request_headers, response_headers, everything)
    for secret in (TOKEN, "sms=1", "q=2", "session=abc", "session=def", "Bearer", "next=1"):
        assert secret not in line


def test_error_log_messages_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config()
    logger = MaskingLogger(cfg)
    with caplog.at_level(logging.INFO, logger="gunicorn.error"):  # caplog listens on that logger too
        logger.error("Error handling request %s", f"/i/{TOKEN}?x=1")
        logger.warning("Invalid request from ip=127.0.0.1: GET /fhir/Patient?name=Ana HTTP/1.1")
    assert caplog.messages == ["Error handling request /i/[redacted]",
                               "Invalid request from ip=127.0.0.1: GET /fhir/Patient HTTP/1.1"]


# --- the config's hook ----------------------------------------------------------------------------


def test_post_fork_drops_the_inherited_pool_without_closing_it(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'pool.db'}")
    try:
        with engine.connect() as connection:  # the master's connection, now idle in the pool
            connection.execute(text("SELECT 1"))
            inherited = connection.connection.dbapi_connection
        pool = engine.pool
        server = SimpleNamespace(
            app=SimpleNamespace(wsgi=lambda: SimpleNamespace(extensions={"intake": SimpleNamespace(engine=engine)}))
        )
        CONFIG["post_fork"](server, None)
        assert engine.pool is not pool  # the worker will open its own
        assert inherited is not None
        assert inherited.execute("SELECT 1").fetchone() == (1,)  # the master's is left open
        inherited.close()
    finally:
        engine.dispose()


def test_config_settings() -> None:
    assert CONFIG["worker_class"] == "sync" and CONFIG["preload_app"] is True
    assert CONFIG["logger_class"] == "intake.gunicorn_logging.MaskingLogger"
    assert "%(q)s" not in CONFIG["access_log_format"]
    assert 1 <= CONFIG["workers"] <= 12
    assert CONFIG["timeout"] > 30  # SQLite's busy timeout ends a lock wait first


# --- through gunicorn -----------------------------------------------------------------------------


def test_link_requests_are_logged_masked(make_app: AppFactory, database_url: str, tmp_path: Path) -> None:
    with local_app(make_app) as app:
        [invite] = invite_many(app, 1)
        token = invite.link.removeprefix("/i/")
        with gunicorn_server(server_env(database_url, tmp_path), tmp_path / "logs") as server:
            client = HttpClient(server.port)
            assert client.get(f"{invite.link}?utm_source=sms-campaign-7").status == 302
            assert HttpClient(server.port).get(f"/%69/{token}").status == 302  # the same link, encoded
            assert client.request("GET", "/intake", headers={"Referer": f"http://x/i/{token}?r=1"}).status == 200
            assert client.get("/fhir/Patient?name=Querysecret&birthdate=1970-01-01").status == 401
        access, errors = server.access_log(), server.error_log()
    assert access.count('"GET /i/[redacted] HTTP/1.1" 302') == 2
    assert '"GET /intake HTTP/1.1" 200' in access and '"/i/[redacted]"' in access
    assert '"GET /fhir/Patient HTTP/1.1" 401' in access
    for secret in (token, "sms-campaign-7", "Querysecret", "birthdate", "r=1"):
        assert secret not in access and secret not in errors


def _db_handles(pid: int, database_url: str) -> set[str]:
    """What `pid` holds open on the database: the SQLite file's descriptors, or its sockets to
    PostgreSQL's port (socket inodes: the same inode in two processes is one shared connection)."""
    url = make_url(database_url)
    fds = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            fds[fd.name] = os.readlink(fd)
        except OSError:
            continue
    if url.get_backend_name() == "sqlite":
        path = os.path.realpath(url.database or "")
        return {f"fd {fd}" for fd, target in fds.items() if target == path}
    port = f"{url.port or 5432:04X}"
    remote: set[str] = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2].rsplit(":", 1)[1] == port:
                remote.add(f"socket:[{fields[9]}]")
    return {target for target in fds.values() if target in remote}


def test_each_worker_has_its_own_database_connections(make_app: AppFactory, database_url: str, tmp_path: Path) -> None:
    with local_app(make_app) as app:
        invites = invite_many(app, 40)
        with gunicorn_server(server_env(database_url, tmp_path), tmp_path / "logs", workers=2) as server:
            workers = server.worker_pids()
            with ThreadPoolExecutor(max_workers=8) as pool:  # both workers busy at once
                statuses = list(pool.map(lambda invite: HttpClient(server.port).get(invite.link).status, invites))
            handles = {pid: _db_handles(pid, database_url) for pid in workers}
            master = _db_handles(server.master_pid, database_url)
        served_by = {int(line.rsplit("<", 1)[1].split(">")[0]) for line in server.access_log().splitlines()
                     if '"GET /i/[redacted]' in line}
    assert statuses == [302] * len(invites)
    assert served_by == set(workers)  # both workers answered, each through the database
    assert all(handles.values()), handles
    if not database_url.startswith("sqlite"):
        # A socket both workers hold is one they inherited: only the master's (had the preloaded
        # app connected) may be, left open but unused after post_fork's dispose(close=False).
        assert handles[workers[0]] & handles[workers[1]] <= master
