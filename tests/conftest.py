"""Test settings: hypothesis runs derandomized under CI, so a run is repeatable."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


# The blotter's store: every test using ``store_url`` runs on a SQLite file and on a fresh
# database of the PostgreSQL server .ci/run starts (skipped without one, failed under CI).
@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    from tests.blotter_db import fresh_database

    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def store(store_url):
    """The blotter's store at ``store_url``, open for the test."""
    from planner.blotter.store import open_store

    with open_store(store_url) as opened:
        yield opened
