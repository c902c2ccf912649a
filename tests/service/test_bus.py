"""The state bus: LocalBus for one process, RedisBus over a real Redis stream (skipped with a message
when there is no server): delivery to the other workers only, in order, from ``start`` on, fast."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest

from shoprec.exceptions import ConfigError
from shoprec.service.bus import LocalBus, open_bus

from .conftest import REDIS_URL


class Inbox:
    """A handler that keeps what it got and can wait for a number of entries."""

    def __init__(self) -> None:
        self.got: list[tuple[str, list, float]] = []
        self._cond = threading.Condition()

    def __call__(self, kind: str, records: list) -> None:
        with self._cond:
            self.got.append((kind, records, time.perf_counter()))
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.got) >= n, timeout)

    @property
    def records(self) -> list:
        return [r for _, records, _ in self.got for r in records]


@pytest.fixture
def make_bus():
    """Buses on one fresh stream, closed and the stream deleted afterwards."""
    try:
        import redis

        from shoprec.service.bus_redis import RedisBus
    except ImportError as e:
        pytest.skip(f"Redis bus not importable: {e}")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as e:
        pytest.skip(f"no Redis at {REDIS_URL}: {e}")
    stream = f"shoprec:test:{uuid.uuid4().hex[:12]}"
    buses = []

    def make():
        bus = RedisBus(REDIS_URL, stream=stream)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        bus.close()
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(stream)
    client.close()


def test_other_workers_get_a_change_and_the_publisher_does_not(make_bus):
    # how fast is the serve benchmark's event-to-effect figure; here only that it arrives, intact
    a, b = make_bus(), make_bus()
    inbox_a, inbox_b = Inbox(), Inbox()
    a.start(inbox_a)
    b.start(inbox_b)
    a.publish("events", [{"event_id": "e1", "item_id": "ü", "price": 2.5, "user_id": None}])
    assert inbox_b.wait_for(1, timeout=10.0)
    assert inbox_b.got[0][:2] == ("events", [{"event_id": "e1", "item_id": "ü", "price": 2.5, "user_id": None}])
    b.publish("items", [{"item_id": "i1"}])  # A follows in order: once it has B's, it has seen its own
    assert inbox_a.wait_for(1)
    assert [(k, r) for k, r, _ in inbox_a.got] == [("items", [{"item_id": "i1"}])]
    assert a.shared and b.origin != a.origin


def test_order_kept_over_a_thousand_changes(make_bus):
    a, b = make_bus(), make_bus()
    inbox = Inbox()
    b.start(inbox)
    for i in range(1000):
        a.publish("events", [{"n": i}])
    assert inbox.wait_for(1000, timeout=10.0), f"got {len(inbox.got)} of 1000"
    assert inbox.records == [{"n": i} for i in range(1000)]


def test_changes_published_before_start_are_not_delivered(make_bus):
    a, b = make_bus(), make_bus()
    a.publish("events", [{"n": "early"}])
    inbox = Inbox()
    b.start(inbox)
    a.publish("events", [{"n": "late"}])
    assert inbox.wait_for(1)
    time.sleep(0.05)
    assert inbox.records == [{"n": "late"}]


def test_a_failing_handler_does_not_stop_delivery(make_bus, caplog):
    a, b = make_bus(), make_bus()
    inbox = Inbox()

    def handler(kind: str, records: list) -> None:
        if records == [{"n": 0}]:
            raise RuntimeError("boom")
        inbox(kind, records)

    b.start(handler)
    with caplog.at_level(logging.ERROR, logger="shoprec.service.bus_redis"):
        a.publish("events", [{"n": 0}])
        a.publish("events", [{"n": 1}])
        assert inbox.wait_for(1)
    assert inbox.records == [{"n": 1}]
    assert any("handler failed" in r.getMessage() for r in caplog.records)


def test_follower_reconnects_after_its_connection_is_killed(make_bus, caplog):
    import redis

    a, b = make_bus(), make_bus()
    inbox = Inbox()
    b.start(inbox)
    a.publish("events", [{"n": 0}])
    assert inbox.wait_for(1)
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        with caplog.at_level(logging.WARNING, logger="shoprec.service.bus_redis"):
            # only B's follower connection (it carries B's origin in its name)
            killed = 0
            for c in admin.client_list():
                if c.get("name") == f"shoprec-bus-{b.origin}":
                    killed += admin.client_kill_filter(_id=c["id"])
            assert killed == 1
            a.publish("events", [{"n": 1}])
            assert inbox.wait_for(2, timeout=5.0)
    finally:
        admin.close()
    assert inbox.records == [{"n": 0}, {"n": 1}]
    assert any("cannot read stream" in r.getMessage() for r in caplog.records)


def test_close_is_prompt(make_bus):
    bus = make_bus()
    bus.start(Inbox())
    time.sleep(0.1)  # the follower is blocked in XREAD
    bus.close()
    # close woke the follower out of its blocking read (CLIENT UNBLOCK) rather than waiting it out,
    # and joined it: the mechanism, not a wall-clock bound
    assert bus.unblocked == 1
    assert not bus._thread.is_alive()


def test_unreachable_redis_is_a_clear_error_without_the_password():
    pytest.importorskip("redis")
    from shoprec.service.bus_redis import BusError, RedisBus

    with pytest.raises(BusError, match=r"127\.0\.0\.1:1/0") as info:
        RedisBus("redis://user:s3cr3t-pw@127.0.0.1:1/0")
    assert "s3cr3t-pw" not in str(info.value)


def test_open_bus():
    assert isinstance(open_bus(None), LocalBus) and isinstance(open_bus(""), LocalBus)
    assert not open_bus(None).shared
    with pytest.raises(ConfigError, match="unknown state bus URL 'bogus://'"):
        open_bus("bogus://")


def test_forget_deletes_the_entries_naming_an_erased_user(make_bus):
    bus = make_bus()
    for i in range(1500):                       # more than one XRANGE page
        bus.publish("events", [{"event_id": f"e{i}", "user_id": "p:gone" if i % 7 == 0 else "p:stays"}])
    bus.publish("erasure", [{"user_id": "p:gone"}])
    assert bus.forget("p:gone", except_kind="erasure") == len(range(0, 1500, 7))
    left = bus._client.xrange(bus.stream)
    assert len(left) == 1500 - len(range(0, 1500, 7)) + 1
    assert bus.forget("p:gone") == 1              # the erasure itself, later
    assert not any(b"p:gone" in f[b"payload"] for _, f in bus._client.xrange(bus.stream))
