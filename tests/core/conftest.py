"""Fixtures of the core tests: the project's own Questionnaires, loaded once per test session."""

from __future__ import annotations

import pytest

from intake.core.catalog import Catalog, load_catalog
from tests.core.factories import FORMS


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """forms/ as the service loads it (the current versions, and the archived ones by url|version)."""
    return load_catalog(FORMS)
