"""Databases for the blotter's store tests: a SQLite file, or a fresh database on the
PostgreSQL server named by ``$REBALANCE_TEST_POSTGRES_URL`` (``.ci/run`` starts one)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

POSTGRES_URL_ENV = "REBALANCE_TEST_POSTGRES_URL"
MISSING = (
    f"PostgreSQL tests need a server: install Debian's postgresql package (apt-get install "
    f"postgresql) and run .ci/run, or set {POSTGRES_URL_ENV} to a database URL"
)


def postgres_url() -> str:
    """The test server's URL; skips (fails under CI=true) when there is none."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    return url


@contextmanager
def fresh_database(kind: str, folder: Path) -> Iterator[str]:
    """A URL of an empty database of ``kind`` (``sqlite`` or ``postgresql``), dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'store.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(postgres_url())
    name = f"blotter_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # a server named but not reachable
        admin.dispose()
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"{MISSING} ({exc.__class__.__name__})")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
