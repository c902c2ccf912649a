"""The event store contract, on every backend: durable appends with sequence numbers, idempotent
retries, item merges, impressions, replay in order, and many concurrent writers grouped."""

from __future__ import annotations

import threading
import time

import pytest

from shoprec.service.store import EventRecord, ImpressionRecord, ItemRecord, StoreError, open_store
from shoprec.service.store_sqlite import SQLiteStore

from .conftest import POSTGRES_URL, _postgres_store


def ev(i: int, item: str = "a", user: str | None = "u1", **kw) -> EventRecord:
    return EventRecord(event_id=f"e{i}", item_id=item, behaviour=kw.pop("behaviour", "view"),
                       timestamp=1_700_000_000.0 + i, received_at=time.time(), user_id=user, **kw)


def test_append_assigns_increasing_seqs_and_replays_in_order(store):
    res = store.append_events([ev(1), ev(2, "b"), ev(3, "c", session_id="s1", price=2.5, quantity=3)])
    assert (res.accepted, res.duplicates) == (3, 0)
    assert res.seqs == sorted(res.seqs) and len(set(res.seqs)) == 3
    got = [e for batch in store.iter_events(batch=2) for e in batch]
    assert [e.event_id for e in got] == ["e1", "e2", "e3"]
    assert [e.seq for e in got] == res.seqs
    assert got[2].session_id == "s1" and got[2].price == 2.5 and got[2].quantity == 3
    assert store.last_seq() == res.seqs[-1]
    assert [e.event_id for b in store.iter_events(after_seq=res.seqs[0]) for e in b] == ["e2", "e3"]


def test_retry_is_idempotent(store):
    first = store.append_events([ev(1), ev(2)])
    again = store.append_events([ev(2), ev(3)])
    assert (again.accepted, again.duplicates) == (1, 1)
    assert again.seqs[0] == first.seqs[1]  # the duplicate reports the stored event's seq
    assert store.count_events() == 3
    assert store.existing_event_ids(["e1", "e3", "nope"]) == {"e1", "e3"}


def test_item_upserts_merge_attributes(store):
    store.upsert_items([ItemRecord("i1", {"title": "Mug", "price": 3.0, "in_stock": True})])
    store.upsert_items([ItemRecord("i1", {"price": 2.5, "in_stock": False, "title": None}),
                        ItemRecord("i2", {"title": "Plate"})])
    items = {it.item_id: it for it in store.iter_items()}
    assert items["i1"].attributes == {"title": "Mug", "price": 2.5, "in_stock": False}
    assert items["i2"].attributes == {"title": "Plate"}
    assert [it.item_id for it in store.iter_items()] == ["i1", "i2"]  # order of last change


def test_impressions_round_trip(store):
    row = ImpressionRecord("r1", time.time(), "home", "v1",
                           [{"item_id": "a", "position": 1, "score": 0.5, "strategies": ["ease"], "propensity": 1.0}],
                           user_id="u1", context={"k": 10})
    store.append_impressions([row, row])  # the same request id twice: kept once
    got = [r for b in store.iter_impressions() for r in b]
    assert len(got) == 1 and got[0].items[0]["strategies"] == ["ease"] and got[0].context == {"k": 10}


def test_concurrent_writers_share_commits(store):
    n_threads, per = 8, 25

    def write(t: int) -> None:
        for j in range(per):
            store.append_events([ev(t * 1000 + j, f"i{j}")])

    threads = [threading.Thread(target=write, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count_events() == n_threads * per
    seqs = [e.seq for b in store.iter_events() for e in b]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_data_survives_reopen(tmp_path):
    path = tmp_path / "db" / "events.db"
    with SQLiteStore(path) as s:
        s.append_events([ev(1), ev(2)])
    with open_store(f"sqlite:///{path}") as s:
        assert s.count_events() == 2


def test_unknown_url_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown event store URL"):
        open_store("mysql://x")


# --------------------------------------------------------------------------- more of the contract
def test_large_batch_keeps_input_order_and_reports_duplicates(store):
    first = store.append_events([ev(i) for i in range(0, 5000, 7)])       # some stored before
    batch = [ev(i, f"i{i % 50}") for i in range(5000)] + [ev(3), ev(14)]  # two repeated inside the batch
    res = store.append_events(batch)
    n_old = len(first.seqs)
    assert (res.accepted, res.duplicates) == (5000 - n_old, n_old + 2)
    by_id = dict(zip([e.event_id for e in batch], res.seqs))
    assert [by_id[f"e{i}"] for i in range(0, 5000, 7)] == first.seqs
    new = [s for e, s in zip(batch[:5000], res.seqs[:5000]) if int(e.event_id[1:]) % 7]
    assert new == sorted(new) and len(set(new)) == len(new) and new[0] > first.seqs[-1]
    assert res.seqs[-2:] == [by_id["e3"], by_id["e14"]]
    assert [e.seq for e in batch] == res.seqs
    assert store.count_events() == 5000
    assert sum(len(b) for b in store.iter_events(batch=1000)) == 5000


def test_unicode_ids_and_nested_attributes(store):
    ids = ["ü-ñ-😀", "quote'and\"double", "back\\slash", "x" * 2000, "日本語"]
    res = store.append_events([EventRecord(event_id=i, item_id=i, behaviour="purchase", timestamp=1.0,
                                           received_at=2.0, user_id=i, country="ÖST") for i in ids])
    assert res.accepted == len(ids)
    got = [e for b in store.iter_events() for e in b]
    assert [(e.event_id, e.item_id, e.user_id, e.country) for e in got] == [(i, i, i, "ÖST") for i in ids]
    assert store.existing_event_ids(ids + ["ü"]) == set(ids)
    # only top-level nulls are dropped by a merge; a null inside a nested value is kept
    store.upsert_items([ItemRecord("ü", {"title": "Tasse ☕", "dims": {"w": 3, "h": None}, "tags": ["a", None]})])
    store.upsert_items([ItemRecord("ü", {"dims": {"w": 4}, "title": None}), ItemRecord("ü", {"brand": "Ä"})])
    (item,) = store.iter_items()
    assert item.attributes == {"title": "Tasse ☕", "dims": {"w": 4}, "tags": ["a", None], "brand": "Ä"}


def test_empty_writes_and_reads(store):
    assert store.append_events([]) == store.append_events([])
    assert store.append_events([]).seqs == []
    assert store.upsert_items([]) == 0
    store.append_impressions([])
    assert store.last_seq() == 0 and store.count_events() == 0
    assert list(store.iter_events()) == [] and list(store.iter_items()) == [] and list(store.iter_impressions()) == []
    assert store.existing_event_ids([]) == set()


def test_item_seqs_set_on_records(store):
    a, b = ItemRecord("a", {"x": 1}), ItemRecord("b", {"x": 2})
    store.upsert_items([a, b])
    again = ItemRecord("a", {"x": 3})
    store.upsert_items([again])
    assert 0 < a.seq < b.seq < again.seq
    assert [(it.item_id, it.seq) for it in store.iter_items()] == [("b", b.seq), ("a", again.seq)]


# --------------------------------------------------------------------------- PostgreSQL only
@pytest.fixture
def pg():
    """A PostgreSQL store in a schema of its own (skipped with a message when there is no server)."""
    s = _postgres_store()
    yield s
    s.close()


def test_postgres_unreachable_is_a_clear_error_without_the_password():
    pytest.importorskip("psycopg")
    from shoprec.service.store_postgres import PostgresStore

    url = "postgresql://shop:s3cr3t-pw@127.0.0.1:1/shop?connect_timeout=2"
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:1/shop") as info:
        PostgresStore(url)
    assert "s3cr3t-pw" not in str(info.value) and "shop:***@" in str(info.value)


def test_postgres_workers_share_a_schema_and_data_survives_reopen(pg):
    from shoprec.service.store_postgres import PostgresStore

    schema = f"{pg.schema}_shared"  # a fresh one, created by several workers at once
    stores: list = [None] * 4

    def open_one(k: int) -> None:
        stores[k] = PostgresStore(POSTGRES_URL, schema=schema)

    def write(k: int) -> None:
        for j in range(20):
            stores[k].append_events([ev(k * 100 + j), ev(k * 100 + j + 1)])  # overlapping retries

    try:
        for target in (open_one, write):
            threads = [threading.Thread(target=target, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        for s in stores:
            s.close()
    finally:
        with PostgresStore(POSTGRES_URL, schema=schema, drop_schema_on_close=True) as s:  # reopened
            events = [e for b in s.iter_events() for e in b]
    assert {e.event_id for e in events} == {f"e{k * 100 + j}" for k in range(4) for j in range(21)}
    assert [e.seq for e in events] == sorted(e.seq for e in events)


def test_postgres_writer_reconnects_after_its_connection_is_killed(pg):
    pg.append_events([ev(1)])
    pid = pg._writer.run(lambda w: w.conn().info.backend_pid)
    assert pg._read("SELECT pg_terminate_backend(%s)", (pid,))[0][0] is True
    try:
        pg.append_events([ev(2)])  # may fail once: the connection is gone
    except StoreError as e:
        assert pg.url in str(e)
    res = pg.append_events([ev(2), ev(3)])  # the client's retry succeeds on a new connection
    assert pg.count_events() == 3 and res.accepted + res.duplicates == 2


def test_impression_writer_shares_answers_only_once_stored(tmp_path):
    """The answers go to the bus after the store holds them: a worker starting meanwhile finds each
    one in the store it rebuilds from, or on the bus it follows from before that rebuild."""
    from shoprec.service.app import ImpressionWriter
    from shoprec.service.metrics import Metrics

    store = open_store(f"sqlite:{tmp_path / 'events.db'}")
    seen_in_store: list[int] = []

    def on_written(rows):
        stored = {r["request_id"] if isinstance(r, dict) else r.request_id
                  for batch in store.iter_impressions() for r in batch}
        seen_in_store.append(sum(r.request_id in stored for r in rows))

    writer = ImpressionWriter(store, Metrics(), max_wait=0.01, on_written=on_written)
    writer.add([ImpressionRecord(f"r{i}", 1.0, "home", "v1", [{"item_id": "a", "position": 1}]) for i in range(5)])
    writer.close()
    store.close()
    assert sum(seen_in_store) == 5


def test_documents_replace_by_key_and_keep_their_first_order(store):
    store.put_document("experiment", "b", {"id": "b", "n": 1})
    store.put_document("experiment", "a", {"id": "a", "nested": {"x": [1, 2]}})
    store.put_document("experiment", "b", {"id": "b", "n": 2})
    store.put_document("other", "b", {"id": "other"})
    got = list(store.iter_documents("experiment"))
    assert [(k, b) for k, b, _ in got] == [("b", {"id": "b", "n": 2}), ("a", {"id": "a", "nested": {"x": [1, 2]}})]
    assert all(t > 0 for _, _, t in got)
    assert [k for k, _, _ in store.iter_documents("missing")] == []


def test_erase_user_removes_its_events_impressions_and_snapshots(store):
    store.append_events([ev(1, user="gone", session_id="sg"), ev(2, "b", user="gone"), ev(3, user="stays"),
                         ev(4, "c", user=None, session_id="sg")])
    imp = [{"item_id": "a", "position": 1, "score": 0.5, "strategies": ["ease"], "propensity": 1.0}]
    store.append_impressions([ImpressionRecord("r1", time.time(), "home", "v1", imp, user_id="gone"),
                              ImpressionRecord("r2", time.time(), "home", "v1", imp, session_id="sg"),
                              ImpressionRecord("r3", time.time(), "home", "v1", imp, user_id="stays")])
    store.put_document("policy_snapshot", "home", {"pulls": [1]})
    store.put_document("experiment", "x1", {"id": "x1"})
    got = store.erase_user("gone")
    assert got.pop("session_ids") == ["sg"]
    assert got == {"events": 2, "impressions": 2, "sessions": 1, "snapshots": 1}
    left = [e for b in store.iter_events() for e in b]
    # the guest event of the session keeps its place: it names no user (only impressions of the session go)
    assert sorted(e.event_id for e in left) == ["e3", "e4"]
    assert [r.request_id for b in store.iter_impressions() for r in b] == ["r3"]
    assert list(store.iter_documents("policy_snapshot")) == []
    assert [k for k, _, _ in store.iter_documents("experiment")] == ["x1"]
    assert store.erase_user("nobody") == {"events": 0, "impressions": 0, "sessions": 0, "snapshots": 0,
                                          "session_ids": []}


def test_sqlite_erasure_leaves_no_bytes_of_the_user_in_its_files(tmp_path):
    path = tmp_path / "events.db"
    store = SQLiteStore(path)
    marker = "erase-me-7f3a9c"
    store.append_events([ev(i, f"item{i}", user=marker if i % 3 == 0 else "other") for i in range(300)])
    store.append_impressions([ImpressionRecord(f"r{i}", time.time(), "home", "v1", [], user_id=marker)
                              for i in range(20)])
    files = lambda: b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())  # noqa: E731
    assert marker.encode() in files()
    store.erase_user(marker)
    assert marker.encode() not in files()
    assert store.count_events() == 200
    store.close()
