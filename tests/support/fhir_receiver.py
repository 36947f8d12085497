"""A FHIR R4 server on 127.0.0.1 that takes the service's EHR push (transaction Bundles) and fails
on command, so tests can prove delivery, retries and "exactly once" from the receiving end.

It does what a real server does with those Bundles — conditional create on `ifNoneExist` and
conditional update on `PUT Type?identifier=…` (identifier tokens, percent-encoding and FHIR
escapes undone), update-as-create on PUT, server-assigned ids, `urn:uuid`
references rewritten, all entries or none — and keeps everything in memory. Nothing it receives is
ever logged: the resources are patient data.

    python -m tests.support.fhir_receiver --port 8089    # prints the base URL, serves until Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NamedTuple, Self
from urllib.parse import unquote, urlsplit

HOST = "127.0.0.1"
BASE_PATH = "/fhir"
FHIR_JSON = "application/fhir+json"
Token = tuple[str | None, str]  # (system, value); system None matches any system


@dataclass(frozen=True)
class Received:
    """One answered request. Header names are lower-cased (clients differ in their case)."""

    monotonic: float  # time.monotonic() on arrival, before any delay
    wall: datetime  # UTC, on arrival
    method: str
    path: str  # the request target, query included
    status: int
    headers: dict[str, str]
    bundle: dict[str, Any] | None  # the POSTed JSON object, None if there was none


class _Reply(NamedTuple):
    status: int
    body: dict[str, Any] | str
    headers: tuple[tuple[str, str], ...] = ()


class _Refused(Exception):
    """A request answered with an OperationOutcome instead of being processed."""

    def __init__(self, status: int, diagnostics: str, code: str = "invalid") -> None:
        super().__init__(diagnostics)
        self.status, self.code = status, code


def outcome(code: str, diagnostics: str) -> dict[str, Any]:
    """An OperationOutcome with one error issue."""
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]}


class FhirReceiver:
    """The receiving FHIR server: start/stop (or `with`), failure controls, and what it got."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._lock = threading.Lock()  # the store, the records and the failure controls
        self._arrived = threading.Condition(self._lock)
        self._switch = threading.Lock()  # start/stop/outage/recover
        self._wake = threading.Event()  # ends delays when stopping
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._closed: list[_Server] = []  # closed listeners whose handler threads stop() joins
        self._started = False
        self._store: dict[str, dict[str, dict[str, Any]]] = {}
        self._created: Counter[tuple[str, str]] = Counter()
        self._records: list[Received] = []
        self._ok = 0
        self._failures: deque[_Reply] = deque()
        self._outage: str | None = None
        self._delay = 0.0
        self._reject: Callable[[dict[str, Any]], int | None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        with self._switch:
            if self._started:
                raise RuntimeError("the receiver is already running")
            self._wake.clear()
            self._listen()
            self._started = True
        return self

    def stop(self) -> None:
        """Close the listener and wait for every request in flight (delays are cut short)."""
        with self._switch:
            self._wake.set()
            if self._server is not None:
                self._close_listener()
            for server in self._closed:
                server.server_close()
            self._closed.clear()
            self._started = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self._port}{BASE_PATH}"

    def _listen(self) -> None:
        self._server = _Server((HOST, self._port), self)
        self._port = self._server.server_address[1]  # recover() binds the same port again
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fhir-receiver-{self._port}", daemon=True)
        self._thread.start()

    def _close_listener(self) -> None:
        """Close the listening socket at once; requests in flight finish on their own threads."""
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.socket.close()
        self._thread.join()
        self._closed.append(self._server)
        self._server = self._thread = None

    # --- failure controls ---------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1, retry_after: str | None = None,
                  body: dict[str, Any] | str | None = None) -> None:
        """Answer the next `times` transaction POSTs with `status` (an OperationOutcome unless
        `body` is given) and store nothing. Calls queue up: fail_next(503); fail_next(429)."""
        if body is None:
            code = "throttled" if status == 429 else "transient" if status >= 500 else "processing"
            body = outcome(code, f"failure injected by the test ({status})")
        reply = _Reply(status, body, (("Retry-After", retry_after),) if retry_after is not None else ())
        with self._lock:
            self._failures.extend([reply] * times)

    def outage(self, mode: Literal["refuse", "503"] = "refuse") -> None:
        """Go down until recover(): "refuse" closes the listening socket (connections are refused),
        "503" keeps listening and answers 503 to everything."""
        with self._switch:
            with self._lock:
                self._outage = mode
            if mode == "refuse" and self._server is not None:
                self._close_listener()

    def recover(self) -> None:
        """End an outage: listen again on the same port (SO_REUSEADDR), or stop answering 503."""
        with self._switch:
            with self._lock:
                self._outage = None
            if self._started and self._server is None:
                self._listen()

    def delay(self, seconds: float) -> None:
        """Wait this long before answering every request (0 to stop): provokes client timeouts.
        The request is still processed afterwards, as a slow real server would."""
        with self._lock:
            self._delay = seconds

    def reject_when(self, predicate: Callable[[dict[str, Any]], int | None] | None) -> None:
        """Answer transactions for which `predicate(bundle)` gives a status with that status, for
        as long as it is set (None removes it); they store nothing."""
        with self._lock:
            self._reject = predicate

    # --- what arrived -------------------------------------------------------------------------

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._records)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The records once `count` requests have been answered (pushes arrive asynchronously)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._records) >= count, timeout):
                raise TimeoutError(f"{len(self._records)} of {count} requests arrived within {timeout} s")
            return list(self._records)

    @property
    def transactions_ok(self) -> int:
        """Transactions answered 200 (processed), repeats included."""
        with self._lock:
            return self._ok

    def created_counts(self) -> dict[tuple[str, str], int]:
        """(resourceType, "system|value") -> how many resources with that identifier were created.
        All 1 means exactly-once; a resource without identifiers (Provenance, PUT) has no key."""
        with self._lock:
            return dict(self._created)

    def resources(self, resource_type: str) -> list[dict[str, Any]]:
        """Copies of the stored resources of a type, in the order they were first stored."""
        with self._lock:
            return copy.deepcopy(list(self._store.get(resource_type, {}).values()))

    def reset(self) -> None:
        """Forget everything received, and every failure control (an outage ends too)."""
        self.recover()
        with self._lock:
            self._store.clear()
            self._created.clear()
            self._records.clear()
            self._ok = 0
            self._failures.clear()
            self._delay = 0.0
            self._reject = None

    # --- answering ----------------------------------------------------------------------------

    def _answer(self, method: str, target: str, headers: Message, body: bytes) -> _Reply:
        arrived, wall = time.monotonic(), datetime.now(UTC)
        bundle = _json_object(body) if method == "POST" else None
        with self._lock:
            pause = self._delay
        if pause:
            self._wake.wait(pause)
        try:
            with self._lock:
                down = self._outage == "503"
            if down:
                raise _Refused(503, "the receiver is in an outage", "transient")
            reply = self._route(method, target, headers, bundle)
        except _Refused as refused:
            reply = _Reply(refused.status, outcome(refused.code, str(refused)))
        except Exception as error:  # a reject_when that raised, say: a 500, as servers do
            reply = _Reply(500, outcome("exception", f"receiver error: {type(error).__name__}"))
        with self._lock:
            self._records.append(Received(arrived, wall, method, target, reply.status,
                                          {k.lower(): v for k, v in headers.items()}, bundle))
            self._arrived.notify_all()
        return reply

    def _route(self, method: str, target: str, headers: Message, bundle: dict[str, Any] | None) -> _Reply:
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if parts[:1] != [BASE_PATH.strip("/")]:
            raise _Refused(404, f"no FHIR endpoint at {url.path}", "not-found")
        if method == "POST" and len(parts) == 1:
            return self._transaction(headers, bundle)
        if method == "GET" and len(parts) == 2:
            return self._search(parts[1], url.query)
        if method == "GET" and len(parts) == 3 and not url.query:
            return self._read(parts[1], parts[2])
        raise _Refused(404, f"this receiver does not serve {method} {url.path}", "not-supported")

    def _transaction(self, headers: Message, bundle: dict[str, Any] | None) -> _Reply:
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            predicate = self._reject
        if failure is not None:
            return failure
        if (headers.get("Content-Type") or "").split(";")[0].strip().lower() not in (FHIR_JSON, "application/json"):
            raise _Refused(415, f"send {FHIR_JSON}", "not-supported")
        if bundle is None:
            raise _Refused(400, "the body is not a JSON object")
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
            raise _Refused(400, "expected a Bundle of type transaction")
        status = predicate(bundle) if predicate is not None else None
        if status:
            raise _Refused(status, "rejected by the test (reject_when)", "processing")
        with self._lock:
            reply = self._apply(bundle.get("entry") or [])
            self._ok += 1
        return reply

    def _apply(self, entries: Any) -> _Reply:
        """Process the entries as one transaction: everything is checked and staged before the
        store changes, so a refused entry leaves it untouched. Called with the lock held."""
        if not isinstance(entries, list):
            raise _Refused(400, "Bundle.entry is not a list")
        plans: list[tuple[str, str, dict[str, Any] | None]] = []  # type, id, resource to write
        urls: dict[str, str] = {}  # fullUrl -> Type/id
        for index, entry in enumerate(entries):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                raise _Refused(400, f"entry {index} has no resource")
            kind, request = resource["resourceType"], entry.get("request")
            method, url = (request.get("method"), request.get("url")) if isinstance(request, dict) else (None, None)
            if method == "POST" and url == kind:
                condition = request.get("ifNoneExist")
                matches = self._matching(kind, _identifier_tokens(condition)) if condition else []
                if len(matches) > 1:
                    raise _Refused(412, f"entry {index}: ifNoneExist matches {len(matches)} resources", "duplicate")
                plans.append((kind, matches[0]["id"], None) if matches else (kind, str(uuid.uuid4()), resource))
            elif method == "PUT" and resource.get("id") and url == f"{kind}/{resource['id']}":
                plans.append((kind, resource["id"], resource))
            elif method == "PUT" and isinstance(url, str) and url.startswith(f"{kind}?") and not resource.get("id"):
                matches = self._matching(kind, _identifier_tokens(url.split("?", 1)[1]))  # conditional update
                if len(matches) > 1:
                    raise _Refused(412, f"entry {index}: {url} matches {len(matches)} resources", "duplicate")
                plans.append((kind, matches[0]["id"] if matches else str(uuid.uuid4()), resource))
            else:
                raise _Refused(400, f"entry {index}: unsupported request {method} {url} for a {kind}")
            full_url = entry.get("fullUrl")
            if full_url:
                if full_url in urls:
                    raise _Refused(400, f"entry {index}: fullUrl {full_url} appears twice")
                urls[full_url] = f"{kind}/{plans[-1][1]}"
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        staged: dict[tuple[str, str], tuple[dict[str, Any], bool]] = {}
        answers = []
        for index, (kind, rid, resource) in enumerate(plans):
            current = self._store.get(kind, {}).get(rid)
            if resource is None:  # a conditional create that matched `current`: nothing to write
                version, status = current["meta"]["versionId"], "200 OK"
            else:
                version = str(int(current["meta"]["versionId"]) + 1) if current else "1"
                status = "200 OK" if current else "201 Created"
                stored = _resolve(resource, urls, index)
                stored["id"], stored["meta"] = rid, {"versionId": version, "lastUpdated": now}
                staged[(kind, rid)] = stored, current is None
            answers.append({"response": {"status": status, "location": f"{kind}/{rid}/_history/{version}",
                                         "etag": f'W/"{version}"', "lastModified": now}})
        for (kind, rid), (stored, created) in staged.items():
            self._store.setdefault(kind, {})[rid] = stored
            if created:
                self._created.update((kind, f"{system}|{value}") for system, value in _identifiers(stored))
        return _Reply(200, {"resourceType": "Bundle", "type": "transaction-response", "entry": answers})

    def _matching(self, kind: str, tokens: list[Token] | None) -> list[dict[str, Any]]:
        """Stored resources of `kind` with an identifier matching any token (all when None)."""
        return [r for r in self._store.get(kind, {}).values()
                if tokens is None or any((system is None or system == s) and value == v
                                         for system, value in tokens for s, v in _identifiers(r))]

    def _search(self, kind: str, query: str) -> _Reply:
        tokens = _identifier_tokens(query)
        with self._lock:
            found = self._matching(kind, tokens)
        return _Reply(200, {"resourceType": "Bundle", "type": "searchset", "total": len(found), "entry": [
            {"fullUrl": f"{self.base_url}/{kind}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in found]})

    def _read(self, kind: str, rid: str) -> _Reply:
        with self._lock:
            found = self._store.get(kind, {}).get(rid)
        if found is None:
            raise _Refused(404, f"{kind}/{rid} is not known", "not-found")
        return _Reply(200, found)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads: no request outlives stop()

    def __init__(self, address: tuple[str, int], receiver: FhirReceiver) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)  # HTTPServer sets SO_REUSEADDR (allow_reuse_address)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.0 (the default): one request per connection, so an outage also reaches clients
    that pool connections."""

    server: _Server
    timeout = 5  # a client that connects and sends nothing cannot hold up stop()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        reply = self.server.receiver._answer(method, self.path, self.headers, body)
        if isinstance(reply.body, str):
            data, content_type = reply.body.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(reply.body).encode(), f"{FHIR_JSON}; charset=utf-8"
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (a timeout during a delay): nobody to answer
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines and errors are no one's business here, and nothing of the
        content (patient data) may reach a log."""


# --- FHIR search tokens ------------------------------------------------------------------------


def _identifier_tokens(query: str) -> list[Token] | None:
    """The `identifier` tokens of a search or ifNoneExist query (alternatives, comma-separated);
    None when the query has no parameter. Any other parameter is refused, as unsupported."""
    tokens = None
    for part in filter(None, query.split("&")):
        name, _, value = part.partition("=")
        if unquote(name) != "identifier" or tokens is not None:
            raise _Refused(400, f"unsupported search parameter {unquote(name)!r} (one identifier only)",
                           "not-supported")
        tokens = [_token(alternative) for alternative in _split(unquote(value), ",")]
    return tokens


def _token(text: str) -> Token:
    """`system|value` or a bare `value` (any system), FHIR escapes undone."""
    parts = [re.sub(r"\\(.)", r"\1", p) for p in _split(text, "|")]
    if len(parts) > 2:
        raise _Refused(400, "a token has more than one unescaped |")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def _split(text: str, separator: str) -> list[str]:
    """Split at each `separator` not escaped by a backslash (escapes kept, for a later split)."""
    parts, start, index = [], 0, 0
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == separator:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    return parts


def _identifiers(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """(system, value) of each identifier; R4 has a single one on some types (QuestionnaireResponse)."""
    found = resource.get("identifier") or []
    if isinstance(found, dict):
        found = [found]
    return [(i.get("system") or "", i["value"]) for i in found if isinstance(i, dict) and i.get("value")]


def _resolve(value: Any, urls: dict[str, str], index: int) -> Any:
    """A copy of `value` with references to entries' fullUrls replaced by the ids the server
    assigned; a `urn:` reference to no entry refuses the transaction, as FHIR servers do."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and (item in urls or item.startswith("urn:")):
                if item not in urls:
                    raise _Refused(400, f"entry {index}: reference {item} is not the fullUrl of an entry")
                out[key] = urls[item]
            else:
                out[key] = _resolve(item, urls, index)
        return out
    if isinstance(value, list):
        return [_resolve(item, urls, index) for item in value]
    return value


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def main(argv: Sequence[str] | None = None) -> None:
    """Serve for a service run by hand (INTAKE_EHR_FHIR_BASE=<printed URL>) until Ctrl-C."""
    parser = argparse.ArgumentParser(description="A test FHIR R4 server that receives transaction Bundles.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    args = parser.parse_args(argv)
    with FhirReceiver(args.port) as receiver:
        print(receiver.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
