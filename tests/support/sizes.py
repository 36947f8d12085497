"""Hypothesis profiles: how large the generated tests (marker `sized`) run.

`dev`, the default, runs them at a small size, enough to reach every page and operation and
both the accepting and the refusing paths; `ci` (`--hypothesis-profile=ci`, which `make
test-long` and .ci/run use) runs them at their full figures: 10,000 fuzzed form posts, every
schemathesis example. The tests read `full_size()` to pick their figures, so a profile never
changes what a test asserts, only how many inputs it is given.
"""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("ci", max_examples=100)
settings.register_profile("dev", max_examples=10)
settings.load_profile("dev")


def full_size() -> bool:
    """True under the `ci` profile: generated tests run at their full size."""
    return settings.get_current_profile_name() == "ci"
