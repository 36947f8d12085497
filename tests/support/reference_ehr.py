"""A real FHIR engine nobody here wrote, for push tests: `../shared/reference-ehr` (Medplum's
fhir-router over its in-memory repository) as a Node subprocess on a free 127.0.0.1 port.

Why a subprocess of someone else's server: our own test receiver (`fhir_receiver.py`) accepts
what we wrote it to accept; Medplum's engine refuses what real servers refuse (large conditional
transactions, create-by-update under `MEDPLUM_RULES=1`, unencoded conditional URLs).

Tests skip, saying why, when Node or the folder (or its `node_modules`) is missing: a clone
elsewhere has no `../shared`. The in-memory repository does not roll back a failed transaction,
so use a fresh server for each test that counts resources.

    with reference_ehr(rules=True, log_dir=tmp_path) as ehr:
        ... push to ehr.base_url with "Authorization: Bearer " + ehr.token ...
        assert ehr.stats()["Patient"] == 1
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import Request, urlopen

import pytest

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_EHR = ROOT.parent / "shared" / "reference-ehr"
HOST = "127.0.0.1"
TOKEN = "reference-ehr-test-token"
START_TIMEOUT = 60.0


def skip_reason() -> str | None:
    """Why the reference EHR cannot run here, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs): the reference EHR is a Node server"
    if not (REFERENCE_EHR / "server.mjs").is_file():
        return f"{REFERENCE_EHR} is missing (a clone outside the project workspace has no ../shared)"
    if not (REFERENCE_EHR / "node_modules").is_dir():
        return f"run `npm ci` in {REFERENCE_EHR} first (.ci/run does)"
    return None


def require_reference_ehr() -> None:
    """Skip the calling test when the reference EHR cannot run."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)


@dataclass
class ReferenceEhr:
    """A running reference EHR: its FHIR base URL, bearer token and inspection endpoints."""

    port: int
    log_path: Path
    token: str = TOKEN

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/fhir"

    def _get(self, path: str) -> Any:
        with urlopen(f"http://{HOST}:{self.port}{path}", timeout=10) as response:
            return json.load(response)

    def stats(self) -> dict[str, int]:
        """Resource counts by type (`GET /_stats`)."""
        return dict(self._get("/_stats"))

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every stored resource by type (`GET /_dump`)."""
        return dict(self._get("/_dump"))

    def search(self, query: str) -> dict[str, Any]:
        """A FHIR search as a client would make it, e.g. ``Flag?status=active``."""
        request = Request(f"{self.base_url}/{query}", headers={"Authorization": f"Bearer {self.token}"})
        with urlopen(request, timeout=10) as response:
            return dict(json.load(response))

    def requests(self) -> list[dict[str, Any]]:
        """The server's request log: one dict per request (method, path, status, outcome)."""
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _wait_until_up(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the reference EHR exited with status {process.returncode}")
        try:
            with urlopen(f"http://{HOST}:{port}/_stats", timeout=2):
                return
        except (URLError, ConnectionError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"the reference EHR did not answer within {START_TIMEOUT:.0f} s")


@contextmanager
def reference_ehr(log_dir: Path, *, rules: bool = False) -> Iterator[ReferenceEhr]:
    """Start the reference EHR (stock, or with Medplum's server rules) and stop it afterwards."""
    require_reference_ehr()
    port = _free_port()
    log_path = log_dir / f"reference-ehr-{port}.jsonl"
    env = {**os.environ, "PORT": str(port), "EHR_TOKEN": TOKEN, "EHR_LOG": str(log_path)}
    env.pop("MEDPLUM_RULES", None)
    if rules:
        env["MEDPLUM_RULES"] = "1"
    with open(log_dir / f"reference-ehr-{port}.out", "wb") as output:
        process = subprocess.Popen(["node", "--experimental-websocket", "server.mjs"], cwd=REFERENCE_EHR,
                                   env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(process, port)
        yield ReferenceEhr(port=port, log_path=log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
