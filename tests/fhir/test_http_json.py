"""The three ways a JSON call fails are told apart, against a real local HTTP server."""

from __future__ import annotations

import socket
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from intake.fhir.http_json import HttpStatusError, NotJsonError, UnreachableError, call_json

ANSWERS = {"/ok": (200, b'{"a": 1}'), "/list": (200, b"[1]"), "/html": (200, b"<html>"),
           "/refused": (400, b'{"error": "invalid_client"}')}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = ANSWERS[self.path]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_json_answer_is_parsed_whatever_its_shape(base: str) -> None:
    assert call_json(urllib.request.Request(f"{base}/ok"), 5) == {"a": 1}
    assert call_json(urllib.request.Request(f"{base}/list"), 5) == [1]


def test_an_error_status_keeps_the_status_and_the_body(base: str) -> None:
    with pytest.raises(HttpStatusError) as caught:
        call_json(urllib.request.Request(f"{base}/refused"), 5)
    assert (caught.value.status, caught.value.body) == (400, b'{"error": "invalid_client"}')


def test_a_body_that_is_not_json(base: str) -> None:
    with pytest.raises(NotJsonError):
        call_json(urllib.request.Request(f"{base}/html"), 5)


def test_no_server_is_unreachable_with_a_short_kind_and_the_detail() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(UnreachableError) as caught:
        call_json(urllib.request.Request(f"http://127.0.0.1:{port}/"), 5)
    assert str(caught.value) == "ConnectionRefusedError"
    assert "refused" in caught.value.detail.lower()
