"""The production set-up on the real servers of this machine: two service processes' worth of apps
sharing one PostgreSQL event store and the Redis state bus. An event acknowledged by one is applied
by the other; a restart of either rebuilds from PostgreSQL."""

from __future__ import annotations

import time
import uuid

import pytest
from fastapi.testclient import TestClient

from shoprec.service.app import create_app

from .conftest import API_KEY, POSTGRES_URL, PUBLIC_KEY, REDIS_URL

pytestmark = pytest.mark.slow


@pytest.fixture()
def production_settings(service_settings):
    pytest.importorskip("psycopg")
    redis = pytest.importorskip("redis")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = f"{POSTGRES_URL}?schema={schema}"
    try:
        import psycopg

        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as e:  # noqa: BLE001 - the message says why
        pytest.skip(f"needs PostgreSQL at {POSTGRES_URL} and Redis at {REDIS_URL}: {e}")
    yield service_settings.model_copy(update={"store": url, "state_bus": REDIS_URL})
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _cart(client, visitor):
    r = client.post("/v1/recommendations/cart", json={"session_id": visitor})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_two_workers_share_events_through_postgres_and_redis(production_settings):
    with TestClient(create_app(production_settings)) as a, TestClient(create_app(production_settings)) as b:
        item = a.post("/v1/recommendations/first_visit", json={"k": 1}).json()["items"][0]["item_id"]
        r = a.post("/v1/events", json={"events": [{"session_id": "pg-v1", "item_id": item,
                                                   "behaviour": "add_to_cart"}]}, headers={"X-API-Key": PUBLIC_KEY})
        assert r.status_code == 200 and r.json()["accepted"] == 1
        assert item not in [it["item_id"] for it in _cart(a, "pg-v1")]       # the worker that took it
        deadline = time.monotonic() + 2.0                                       # the other, through Redis
        while True:
            items = _cart(b, "pg-v1")
            if any(rr["anchor_item_id"] == item for it in items for rr in it["reasons"]):
                break
            assert time.monotonic() < deadline, "worker b never saw worker a's event"
            time.sleep(0.02)
        assert item not in [it["item_id"] for it in items]
        r = b.put("/v1/items", json={"items": [{"item_id": item, "in_stock": False}]}, headers={"X-API-Key": API_KEY})
        assert r.status_code == 200
        deadline = time.monotonic() + 2.0
        while item in [it["item_id"] for it in a.post("/v1/recommendations/first_visit", json={"k": 20}).json()["items"]]:
            assert time.monotonic() < deadline, "worker a never saw worker b's stock change"
            time.sleep(0.02)
    with TestClient(create_app(production_settings)) as c:   # a restart rebuilds from PostgreSQL
        assert c.get("/health").json()["events_applied"] == 1
        assert any(rr["anchor_item_id"] == item for it in _cart(c, "pg-v1") for rr in it["reasons"])
        assert item not in [it["item_id"] for it in c.post("/v1/recommendations/first_visit", json={"k": 20}).json()["items"]]
