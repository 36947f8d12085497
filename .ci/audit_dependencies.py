#!/usr/bin/env python3
"""Known-vulnerability check of every installed distribution, from PyPI's own advisory data.

pip-audit asks PyPI for each *pinned version* (/pypi/NAME/VERSION/json) or OSV; neither is
reachable from this project's machines (only the project JSON, /pypi/NAME/json, is). That JSON
lists the advisories (OSV/PYSEC/GHSA) that affect the project's *latest* release. So:

- a distribution at its latest release is checked exactly: any advisory fails the run;
- one behind its latest release is reported, and fails unless it cannot be upgraded: another
  installed distribution's requirement excludes the latest release (found from their metadata,
  and named), or a reason is given in ALLOWED_BEHIND; its advisories cannot be seen from here.

Run with the environment's python: `.venv/bin/python .ci/audit_dependencies.py`. Exit 0 = clean.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

INDEX = "https://pypi.org/pypi/{}/json"
# name -> why it may lag its latest release (checked by hand; revisit when the cap moves)
ALLOWED_BEHIND: dict[str, str] = {
    "deprecated": "its 2.x and 3.x releases need Python >= 3.12; 1.3.1 is the newest for 3.11 (needed by limits)",
    "python-dateutil": "fhirpathpy pins ~=2.8, so 2.9.x is the newest it allows",
}
SKIP = {"intake"}  # this project


def latest(name: str) -> tuple[str, list[str]] | None:
    try:
        with urllib.request.urlopen(INDEX.format(name), timeout=30) as response:
            data = json.load(response)
    except OSError:
        return None
    return data["info"]["version"], [v["id"] for v in data.get("vulnerabilities") or []]


def capped_by(name: str, newest: str) -> list[str]:
    """Installed distributions whose requirements (with any of their extras) exclude `newest` of
    `name`, e.g. ["kombu[redis] packaging==26.3"]: why pip could not install the latest."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    wanted, caps = canonicalize_name(name), []
    for dist in metadata.distributions():
        extras = [""] + list(dist.metadata.get_all("Provides-Extra") or [])
        for text in dist.requires or []:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if canonicalize_name(requirement.name) != wanted or requirement.specifier.contains(newest, prereleases=True):
                continue
            for extra in extras:
                if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                    caps.append(f"{dist.metadata['Name']}{f'[{extra}]' if extra else ''} {requirement.name}{requirement.specifier}")
                    break
    return sorted(set(caps))


def main() -> int:
    dists = {d.metadata["Name"].lower(): d.version for d in metadata.distributions() if d.metadata["Name"]}
    names = sorted(n for n in dists if n not in SKIP)
    with ThreadPoolExecutor(8) as pool:
        answers = dict(zip(names, pool.map(latest, names)))
    failed = behind = 0
    for name in names:
        answer, installed = answers[name], dists[name]
        if answer is None:
            print(f"UNCHECKED {name} {installed}: PyPI did not answer")
            failed += 1
        elif answer[0] == installed:
            if answer[1]:
                print(f"VULNERABLE {name} {installed}: {', '.join(answer[1])}")
                failed += 1
        elif name in ALLOWED_BEHIND:
            print(f"behind    {name} {installed} (latest {answer[0]}): {ALLOWED_BEHIND[name]}")
            behind += 1
        elif caps := capped_by(name, answer[0]):
            print(f"behind    {name} {installed} (latest {answer[0]}): capped by {'; '.join(caps)}")
            behind += 1
        else:
            print(f"BEHIND    {name} {installed} (latest {answer[0]}): its advisories cannot be checked from here; upgrade it")
            failed += 1
    print(f"{len(names)} distributions: {len(names) - failed - behind} at their latest release with no known "
          f"advisory, {behind} allowed behind, {failed} failing")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
