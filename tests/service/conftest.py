"""Fixtures of the service tests: event stores on every backend this machine runs."""

from __future__ import annotations

import os
import uuid

import pytest

from shoprec.service.store_sqlite import SQLiteStore

#: The PostgreSQL server the backend tests use (a real server; skipped with a message when absent).
POSTGRES_URL = os.environ.get("SHOPREC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
#: The Redis server the shared-state tests use.
REDIS_URL = os.environ.get("SHOPREC_TEST_REDIS", "redis://127.0.0.1:6379/0")


def require_redis():
    """The ``redis`` module once the Redis server at REDIS_URL answers; else the test is skipped
    with a message saying why."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as e:  # noqa: BLE001 - the message says why
        pytest.skip(f"needs Redis at {REDIS_URL}: {e}")
    return redis


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


# --------------------------------------------------------------------------- a trained demo model
API_KEY = "test-api-key-0123456789"
PUBLIC_KEY = "test-public-key-0123456789"


def demo_shop_recent(days: int = 42):
    """The embedded demo shop's last ``days`` days (a quick model for the service tests)."""

    from shoprec.data.adapters import load_online_retail
    from shoprec.demo_data import DEMO_PATH

    data, _ = load_online_retail(DEMO_PATH)
    ts = data.events["timestamp"].to_numpy()
    return data.filter_events(ts >= ts.max() - days * 86400, name="demo-recent")


def fast_scenarios():
    """Every shipped scenario without SASRec (what `shoprec train --fast` fits)."""
    from shoprec.scenarios import default_scenarios

    return [c.with_overrides(strategies=[x for x in c.strategies if x.name != "sasrec"])
            for c in default_scenarios().values()]


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory):
    """A models folder (CURRENT + one version) trained on the recent demo shop, every shipped scenario
    but SASRec (about 10 s)."""
    from shoprec.service.training import train

    root = tmp_path_factory.mktemp("models")
    train(demo_shop_recent(), root, scenarios=fast_scenarios())
    return root


@pytest.fixture()
def service_settings(demo_models, tmp_path):
    from shoprec.service.settings import ServiceSettings

    return ServiceSettings(model=demo_models, store=f"sqlite:///{tmp_path / 'events.db'}", api_key=API_KEY,
                           public_key=PUBLIC_KEY, watch_seconds=0)


@pytest.fixture()
def client(service_settings):
    from fastapi.testclient import TestClient

    from shoprec.service.app import create_app

    with TestClient(create_app(service_settings)) as c:
        yield c
