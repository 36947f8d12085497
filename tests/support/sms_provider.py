"""A stand-in SMS provider on 127.0.0.1 speaking Twilio's Messages API shape: a POST of form
fields To, From and Body with HTTP basic authentication, answered 201 with a JSON message. It
keeps what it received in memory (never logs it) and fails on command, so tests prove delivery,
retries and dead letters from the receiving end."""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs

PATH = "/2010-04-01/Accounts/AC-test/Messages.json"


@dataclass
class SmsProvider:
    """`with SmsProvider() as sms:` serves at `sms.url`; `sms.received` lists the messages taken,
    `sms.fail_next(status, ...)` answers the next requests with those statuses instead."""

    account: str = "AC-test"
    token: str = "secret-token"
    received: list[dict[str, str]] = field(default_factory=list)
    _failures: deque[int] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Self:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # never log the texts
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                expected = base64.b64encode(f"{provider.account}:{provider.token}".encode()).decode()
                with provider._lock:
                    failure = provider._failures.popleft() if provider._failures else None
                if self.path != PATH:
                    status, answer = 404, {"message": "not found"}
                elif self.headers.get("Authorization") != f"Basic {expected}":
                    status, answer = 401, {"message": "authenticate"}
                elif failure is not None:
                    status, answer = failure, {"message": "failing on command"}
                else:
                    form = {key: values[0] for key, values in parse_qs(body).items()}
                    if not all(form.get(k) for k in ("To", "From", "Body")):
                        status, answer = 400, {"message": "To, From and Body are required"}
                    else:
                        with provider._lock:
                            provider.received.append(form)
                            sid = f"SM{len(provider.received):032d}"
                        status, answer = 201, {"sid": sid, "status": "queued", "to": form["To"]}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"

    def fail_next(self, *statuses: int) -> None:
        with self._lock:
            self._failures.extend(statuses)

    def settings(self, sender: str = "+15550001111") -> dict[str, Any]:
        """The app settings that send through this provider."""
        return {"INTAKE_SMS_URL": self.url, "INTAKE_SMS_ACCOUNT": self.account, "INTAKE_SMS_TOKEN": self.token,
                "INTAKE_SMS_FROM": sender}
