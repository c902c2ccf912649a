"""What a production user of the public API needs bounded and said plainly: write rate limits (429 with
Retry-After; counted in Redis when the workers share a bus), ids with control characters refused,
events about unknown items counted (or refused), one error body for every failure, a 500 that tells
the client nothing but the request id, owner-only files, backends found by URL scheme."""

from __future__ import annotations

import logging
import stat
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shoprec.exceptions import ConfigError
from shoprec.service.app import create_app

from .conftest import API_KEY, PUBLIC_KEY, REDIS_URL, require_redis

WRITE = {"X-API-Key": API_KEY}
PUBLIC = {"X-API-Key": PUBLIC_KEY}


def _event(item: str = "85123A", user: str = "u1") -> dict:
    return {"user_id": user, "item_id": item, "behaviour": "view"}


def _post(client, events, headers=PUBLIC):
    return client.post("/v1/events", json={"events": events}, headers=headers)


def _error_body(r) -> dict:
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "hint"}, body
    return body["error"]


# --------------------------------------------------------------------------- rate limits
def test_public_writes_are_limited_per_ip_with_retry_after(service_settings):
    settings = service_settings.model_copy(update={"rate_limit_per_ip": "3/minute", "rate_limit_public_key": None})
    with TestClient(create_app(settings)) as c:
        for _ in range(3):
            assert _post(c, [_event()]).status_code == 200
        r = _post(c, [_event()])
        assert r.status_code == 429
        err = _error_body(r)
        assert err["code"] == "rate_limited" and "3 per 1 minute" in err["message"]
        assert "testclient" in err["message"]                        # the client the budget is for
        wait = int(r.headers["Retry-After"])
        assert 1 <= wait <= 60 and f"retry after {wait} s" in err["hint"]
        # the refused request stored nothing
        assert c.app.state.service.store.count_events() == 3
        # a wrong key is counted on the same budget (guessing the key is bounded too)
        assert c.put("/v1/items", json={"items": [{"item_id": "z"}]}, headers={"X-API-Key": "guess-1"}).status_code \
            == 429
        # the API key has its own budget: the shop's back end is not throttled by its visitors
        assert _post(c, [_event()], headers=WRITE).status_code == 200
        # reads are never limited
        assert c.post("/v1/recommendations/home", json={"k": 3}).status_code == 200
        stats = c.get("/v1/admin/stats", headers=WRITE).json()
        assert stats["rate_limited"] == 2
        metrics = c.get("/metrics").text
        assert 'shoprec_rate_limited_total{budget="per_ip"} 2.0' in metrics


def test_the_public_key_has_a_budget_over_all_ips(service_settings):
    settings = service_settings.model_copy(update={"rate_limit_per_ip": None, "rate_limit_public_key": "2/minute"})
    with TestClient(create_app(settings)) as c:
        assert [_post(c, [_event()]).status_code for _ in range(3)] == [200, 200, 429]
        assert "the public key" in _error_body(_post(c, [_event()]))["message"]
        assert _post(c, [_event()], headers=WRITE).status_code == 200


def test_rate_limit_settings_are_checked():
    from shoprec.service.settings import ServiceSettings

    with pytest.raises(Exception, match="not a rate limit"):
        ServiceSettings(model=Path("."), api_key="k" * 16, rate_limit_per_ip="lots")
    s = ServiceSettings(model=Path("."), api_key="k" * 16, rate_limit_per_ip="0", rate_limit_public_key="10/second;600/hour")
    assert s.rate_limit_per_ip is None and s.rate_limit_public_key == "10/second;600/hour"


def test_limits_count_in_redis_shared_by_the_workers(service_settings):
    """Two apps (two workers' worth) with the Redis state bus count against one budget."""
    redis = require_redis()
    from shoprec.service.ratelimit import KEY_PREFIX

    stream = f"t-limits-{uuid.uuid4().hex[:8]}"
    # a fresh budget name per run: the counters of an earlier run may still be in the window
    limit = f"{4 + uuid.uuid4().int % 1000}/hour"
    settings = service_settings.model_copy(update={"state_bus": REDIS_URL, "rate_limit_per_ip": limit,
                                                   "rate_limit_public_key": None})
    from shoprec.service import bus_redis

    original = bus_redis.RedisBus.__init__

    def private_stream(self, url, **kw):
        original(self, url, stream=stream, **{k: v for k, v in kw.items() if k != "stream"})

    bus_redis.RedisBus.__init__ = private_stream
    try:
        with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
            n = int(limit.split("/")[0])
            codes = [(_post(a if i % 2 else b, [_event(user=f"r{i}")])).status_code for i in range(n + 1)]
            assert codes == [200] * n + [429]
            assert _post(a, [_event()]).status_code == 429 and _post(b, [_event()]).status_code == 429
    finally:
        bus_redis.RedisBus.__init__ = original
        r = redis.Redis.from_url(REDIS_URL)
        r.delete(stream)
        for key in r.scan_iter(f"{KEY_PREFIX}*{limit.split('/')[0]}*"):
            r.delete(key)


def test_an_unreachable_limit_storage_lets_writes_through_and_says_so(service_settings, caplog):
    settings = service_settings.model_copy(update={"rate_limit_storage": "redis://127.0.0.1:1/0",
                                                   "rate_limit_per_ip": "1/minute"})
    pytest.importorskip("redis")
    with TestClient(create_app(settings)) as c, caplog.at_level(logging.WARNING):
        assert [_post(c, [_event()]).status_code for _ in range(3)] == [200, 200, 200]
        # the three posts, and this admin request (checked against the API key's budget) itself
        assert c.get("/v1/admin/stats", headers=WRITE).json()["rate_limit_storage_failures"] == 4
    assert any("rate limits not checked" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- ids
@pytest.mark.parametrize("bad", ["a\x00b", "tab\there", "new\nline", "del\x7f", "c1\x85"])
def test_ids_with_control_characters_are_a_clear_422(client, bad):
    r = _post(client, [_event(item=bad)])
    assert r.status_code == 422, r.text
    err = _error_body(r)
    assert err["code"] == "invalid_request"
    assert "events.0.item_id" in err["message"] and "control character U+" in err["message"]
    assert "printable" in err["message"]
    r = _post(client, [_event(user=bad)])
    assert r.status_code == 422 and "events.0.user_id" in _error_body(r)["message"]
    r = client.post("/v1/recommendations/cart", json={"basket": ["85123A", bad]})
    assert r.status_code == 422 and "basket.1" in _error_body(r)["message"]
    r = client.post("/v1/recommendations/item_page", json={"session": [{"item_id": bad}]})
    assert r.status_code == 422 and "session.0.item_id" in _error_body(r)["message"]
    r = client.put("/v1/items", json={"items": [{"item_id": bad, "title": "x"}]}, headers=WRITE)
    assert r.status_code == 422 and "items.0.item_id" in _error_body(r)["message"]
    assert client.app.state.service.store.count_events() == 0


def test_nul_in_free_text_is_refused_but_newlines_are_fine(client):
    r = client.put("/v1/items", json={"items": [{"item_id": "T1", "title": "a\x00b"}]}, headers=WRITE)
    assert r.status_code == 422 and "NUL" in _error_body(r)["message"]
    r = client.put("/v1/items", json={"items": [{"item_id": "T1", "title": "two\nlines", "description": "a\tb"}]},
                   headers=WRITE)
    assert r.status_code == 200, r.text
    r = client.post("/v1/recommendations/search", json={"query": "heart\x00"})
    assert r.status_code == 422


def test_unicode_ids_are_accepted(client):
    r = _post(client, [_event(item="85123A", user="Zoë-東京-🛒")])
    assert r.status_code == 200, r.text


def test_a_request_id_header_with_control_characters_is_a_422(client):
    r = client.post("/v1/recommendations/home", json={"k": 3}, headers={"X-Request-ID": "ab\x01c"})
    assert r.status_code == 422 and "x-request-id" in _error_body(r)["message"].lower()


# --------------------------------------------------------------------------- unknown items
def test_events_for_unknown_items_are_counted_and_visible(client):
    r = _post(client, [_event("85123A"), _event("NOT-IN-CATALOGUE"), _event("NOT-IN-CATALOGUE", "u2")])
    assert r.status_code == 200 and r.json()["accepted"] == 3 and r.json()["unknown_items"] == 2
    stats = client.get("/v1/admin/stats", headers=WRITE).json()
    assert stats["unknown_items_policy"] == "accept"
    assert stats["events_accepted"] == 3 and stats["events_unknown_item"] == 2
    assert "shoprec_events_unknown_item_total 2.0" in client.get("/metrics").text
    assert client.get("/v1/admin/stats", headers=PUBLIC).status_code == 401


def test_events_for_unknown_items_can_be_refused(service_settings):
    settings = service_settings.model_copy(update={"unknown_items": "refuse"})
    with TestClient(create_app(settings)) as c:
        r = _post(c, [_event("85123A"), _event("NOPE-1"), _event("NOPE-1", "u2")])
        assert r.status_code == 422
        err = _error_body(r)
        assert err["code"] == "unknown_items" and "'NOPE-1'" in err["message"] and "2 of the 3" in err["message"]
        assert "PUT the items" in err["hint"]
        assert c.app.state.service.store.count_events() == 0          # nothing of the batch
        # an item PUT first is known from then on
        assert c.put("/v1/items", json={"items": [{"item_id": "NOPE-1", "title": "new"}]},
                     headers=WRITE).status_code == 200
        r = _post(c, [_event("85123A"), _event("NOPE-1")])
        assert r.status_code == 200 and r.json()["unknown_items"] == 0
        stats = c.get("/v1/admin/stats", headers=WRITE).json()
        assert stats["events_refused_unknown_item"] == 2 and stats["batches_refused_unknown_item"] == 1
        assert 'shoprec_events_refused_total{reason="unknown_item"} 2.0' in c.get("/metrics").text


# --------------------------------------------------------------------------- one error contract
def test_unknown_routes_methods_and_unreadable_bodies_answer_the_error_body(client):
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and _error_body(r)["code"] == "not_found"
    assert "/docs" in _error_body(r)["hint"]
    r = client.get("/v1/events")
    assert r.status_code == 405
    err = _error_body(r)
    assert err["code"] == "method_not_allowed" and "POST" in err["hint"] and "POST" in r.headers["allow"]
    r = client.post("/v1/events", content=b'{"events": [', headers={**PUBLIC, "Content-Type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in _error_body(r)["message"]
    r = client.post("/v1/recommendations/home", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422) and _error_body(r)["code"] in ("bad_request", "invalid_request")
    r = client.get("/v1/items/%00x")
    assert r.status_code == 422 and "control character" in _error_body(r)["message"]


@pytest.mark.parametrize("path", ["route", "fast"])
def test_a_500_tells_the_client_only_the_request_id(service_settings, monkeypatch, caplog, path):
    """The exception's text (which may hold data, SQL, file paths) is logged with the request id,
    never sent: by the fast path and by the FastAPI route alike."""
    from shoprec.service.app import FastRecommend

    secret = "SECRET-path-/var/lib/shop/db.sqlite"
    if path == "route":   # the fast path declines, as it does for what it does not handle
        async def decline(self, scope, headers, body):
            return None

        monkeypatch.setattr(FastRecommend, "_answer", decline)
    with TestClient(create_app(service_settings), raise_server_exceptions=False) as client:
        def boom(*a, **k):
            raise RuntimeError(secret)

        monkeypatch.setattr(client.app.state.service.engine.rec, "recommend_raw", boom)
        with caplog.at_level(logging.ERROR):
            r = client.post("/v1/recommendations/home", json={"k": 3}, headers={"X-Request-ID": f"req-{path}-1"})
    assert r.status_code == 500
    err = _error_body(r)
    assert err["code"] == "internal_error" and secret not in r.text and "RuntimeError" not in r.text
    assert f"req-{path}-1" in err["message"] and r.headers["X-Request-ID"] == f"req-{path}-1"
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert f"req-{path}-1" in logged
    assert any(rec.exc_info and secret in str(rec.exc_info[1]) for rec in caplog.records)


def test_a_500_in_any_route_has_the_same_body(service_settings, monkeypatch):
    with TestClient(create_app(service_settings), raise_server_exceptions=False) as client:
        def boom():
            raise ValueError("SELECT * FROM secret_table")

        monkeypatch.setattr(client.app.state.service, "model_info", boom)
        r = client.get("/v1/admin/model", headers=WRITE)
    assert r.status_code == 500 and "secret_table" not in r.text
    assert _error_body(r)["code"] == "internal_error" and r.headers["X-Request-ID"]


# --------------------------------------------------------------------------- files
def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_the_store_and_the_model_are_owner_only(tmp_path, demo_models):
    import os

    from shoprec.service.files import make_private, write_private
    from shoprec.service.store import open_store

    old = os.umask(0o022)
    try:
        store = open_store(f"sqlite:///{tmp_path / 'new' / 'deeper' / 'events.db'}")
        store.close()
        key = write_private(tmp_path / "k" / "api-key", "abc\n")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "new") == 0o700 and _mode(tmp_path / "new" / "deeper") == 0o700
    assert _mode(tmp_path / "new" / "deeper" / "events.db") == 0o600
    for extra in ("-wal", "-shm"):
        p = tmp_path / "new" / "deeper" / f"events.db{extra}"
        if p.exists():
            assert _mode(p) & 0o077 == 0
    assert _mode(key) == 0o600 and key.read_text() == "abc\n"
    # what training writes (the session's models folder was made by train())
    files = [p for p in demo_models.rglob("*")]
    assert files and all(_mode(p) == (0o700 if p.is_dir() else 0o600) for p in files)
    assert _mode(demo_models) == 0o700
    (tmp_path / "loose").mkdir(mode=0o755)
    (tmp_path / "loose" / "f").write_text("x")
    make_private(tmp_path / "loose")
    assert _mode(tmp_path / "loose") == 0o700 and _mode(tmp_path / "loose" / "f") == 0o600


def test_the_api_key_from_a_file(tmp_path, monkeypatch):
    from shoprec.service.settings import ServiceSettings, read_key_file

    f = tmp_path / "key"
    f.write_text("from-a-file-123\nignored\n")
    assert read_key_file(f) == "from-a-file-123"
    monkeypatch.delenv("SHOPREC_API_KEY", raising=False)
    monkeypatch.setenv("SHOPREC_API_KEY_FILE", str(f))
    assert ServiceSettings.from_env(model=tmp_path).api_key == "from-a-file-123"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_key_file(tmp_path / "empty")
    with pytest.raises(ConfigError, match="cannot read the API key file .*missing"):
        read_key_file(tmp_path / "missing")


# --------------------------------------------------------------------------- backends
def test_backends_registry(tmp_path):
    from shoprec.service import backends
    from shoprec.service.bus import EventBus, LocalBus, open_bus
    from shoprec.service.store import open_store
    from shoprec.service.store_sqlite import SQLiteStore

    with pytest.raises(ConfigError) as info:
        open_store("kafka://broker:9092/events")
    msg = str(info.value)
    assert "unknown event store" in msg and "postgresql" in msg and "sqlite" in msg
    with pytest.raises(ConfigError) as info:
        open_store("mystery://user:s3cret@host/db")
    assert "s3cret" not in str(info.value) and "***" in str(info.value)

    class MemoryBus(LocalBus):
        opened: list = []

        @classmethod
        def from_url(cls, url, **options):
            bus = cls()
            cls.opened.append((url, options))
            return bus

    class TmpStore(SQLiteStore):
        @classmethod
        def from_url(cls, url, **options):
            return cls(tmp_path / url.split("://", 1)[1])

    backends.register_bus("membus", MemoryBus)
    backends.register_store("tmpdb", TmpStore)
    try:
        bus = open_bus("membus://x", max_len=5)
        assert isinstance(bus, EventBus) and MemoryBus.opened == [("membus://x", {"max_len": 5})]
        store = open_store("tmpdb://events.db")
        assert isinstance(store, TmpStore) and (tmp_path / "events.db").exists()
        store.close()
        assert "membus" in backends.BUSES.schemes and "tmpdb" in backends.STORES.schemes
    finally:
        backends.BUSES.unregister("membus")
        backends.STORES.unregister("tmpdb")
    # a backend given by module path is imported only when its scheme is opened
    backends.register_store("broken", "shoprec.service.no_such_backend:Store", extra="kafka")
    try:
        with pytest.raises(ConfigError, match=r"cannot be imported.*shoprec\[kafka\]"):
            open_store("broken://x")
    finally:
        backends.STORES.unregister("broken")
    with pytest.raises(ConfigError, match="not a URL scheme"):
        backends.register_store("no spaces", TmpStore)


def test_the_interfaces_import_no_backend():
    """store.py and bus.py name their backends nowhere: a new one (Kafka next) is one new file."""
    here = Path(__file__).resolve().parents[2] / "src" / "shoprec" / "service"
    for interface, backend_modules in (("store.py", ("store_sqlite", "store_postgres")), ("bus.py", ("bus_redis",))):
        text = (here / interface).read_text()
        imports = [line for line in text.splitlines() if line.lstrip().startswith(("import ", "from "))]
        for mod in backend_modules:
            assert not any(mod in line for line in imports), (interface, mod)
        for lib in ("psycopg", "redis", "sqlite3"):
            assert not any(lib in line for line in imports), (interface, lib)


def test_the_bus_keeps_a_bounded_history():
    redis = require_redis()
    from shoprec.service.bus_redis import BusError, RedisBus

    stream = f"t-bounded-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL)
    bus = RedisBus(REDIS_URL, stream=stream, max_len=200)
    try:
        for i in range(3000):
            bus.publish("events", [{"n": i}])
        n = client.xlen(stream)
        assert 200 <= n < 400, n                         # approximate trimming: whole nodes of ~100
        last = client.xrevrange(stream, count=1)[0][1]
        assert b'"n":2999' in last[b"payload"]           # the newest are kept
    finally:
        bus.close()
        client.delete(stream)
    aged = RedisBus(REDIS_URL, stream=stream, max_len=None, max_age_seconds=0.2)
    try:
        for i in range(300):
            aged.publish("events", [{"n": i}])
        import time

        time.sleep(0.4)
        for i in range(300):
            aged.publish("events", [{"n": 1000 + i}])
        oldest = client.xrange(stream, count=1)[0][1]
        n_oldest = int(oldest[b"payload"].split(b'"n":')[1].split(b"}")[0])
        assert n_oldest >= 100, n_oldest                 # whole nodes older than the age were dropped
    finally:
        aged.close()
        client.delete(stream)
    with pytest.raises(BusError, match="max_len"):
        RedisBus(REDIS_URL, stream=stream, max_len=0)


def test_settings_folders_of_dead_masters_are_swept(tmp_path):
    import subprocess
    import sys

    from shoprec.service.workers import PREFIX, sweep_stale

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{PREFIX}{dead.pid}-abc"
    live = tmp_path / f"{PREFIX}{__import__('os').getpid()}-def"
    other = tmp_path / "unrelated"
    for d in (stale, live, other):
        d.mkdir()
        (d / "settings.json").write_text("{}")
    assert sweep_stale(tmp_path) == 1
    assert not stale.exists() and live.exists() and other.exists()
