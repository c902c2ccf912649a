"""Fixtures of the service tests: event stores on every backend this machine runs."""

from __future__ import annotations

import os
import uuid

import pytest

from shoprec.service.store import SQLiteStore

#: The PostgreSQL server the backend tests use (a real server; skipped with a message when absent).
POSTGRES_URL = os.environ.get("SHOPREC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
#: The Redis server the shared-state tests use.
REDIS_URL = os.environ.get("SHOPREC_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _postgres_store():
    try:
        from shoprec.service.store_postgres import PostgresStore
    except ImportError as e:
        pytest.skip(f"PostgreSQL backend not importable: {e}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        return PostgresStore(POSTGRES_URL, schema=schema, drop_schema_on_close=True)
    except Exception as e:  # noqa: BLE001 - the message says why
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL}: {e}")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "events.db")
    else:
        s = _postgres_store()
    yield s
    s.close()
