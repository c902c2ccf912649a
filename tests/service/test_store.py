"""The event store contract, on every backend: durable appends with sequence numbers, idempotent
retries, item merges, impressions, replay in order, and many concurrent writers grouped."""

from __future__ import annotations

import threading
import time

import pytest

from shoprec.service.store import EventRecord, ImpressionRecord, ItemRecord, SQLiteStore, open_store


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
