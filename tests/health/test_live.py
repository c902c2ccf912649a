"""The live session guard: a crawler's events after it is recognised are held, a person's never."""

import numpy as np

from shoprec.health.live import SessionGuard


def _events(session, items, behaviour, gaps, t0=1_700_000_000.0):
    ts = t0 + np.concatenate([[0.0], np.cumsum(gaps)])
    return [{"session_id": session, "user_id": None, "item_id": str(i), "behaviour": b, "timestamp": float(t)}
            for i, b, t in zip(items, behaviour, ts)]


def test_a_crawler_is_held_from_its_twentieth_event_and_a_person_is_not():
    g = SessionGuard()
    rng = np.random.default_rng(0)
    person = _events("p", rng.integers(0, 20, 40), ["view"] * 39 + ["purchase"], rng.exponential(30, 39))
    crawler = _events("c", range(100, 160), ["view"] * 60, np.full(59, 1.0))
    mixed = [e for pair in zip(person, crawler[:40]) for e in pair] + crawler[40:]     # interleaved, one batch
    ok = g.admit(mixed)
    by = {}
    for e, a in zip(mixed, ok):
        by.setdefault(e["session_id"], []).append(a)
    assert all(by["p"])
    assert by["c"][:20] == [True] * 20 and not any(by["c"][20:])      # judged as they come
    assert g.counts == {"events_seen": 100, "events_held": 40, "visits_flagged": 1}
    (f,) = g.flagged()
    assert f["visit"] == "c" and f["kind"] == "crawler" and f["events_held"] == 40
    # later batches of the same visit stay held
    assert not g.admit(_events("c", [999], ["view"], [], t0=1_700_001_000.0)).any()


def test_a_cart_stuffer_is_held_and_a_buyer_with_many_carts_is_not():
    g = SessionGuard()
    stuffer = _events("s", range(15), ["add_to_cart"] * 15, np.full(14, 12.0))
    ok = g.admit(stuffer)
    assert ok[:9].all() and not ok[10:].any()
    buyer = _events("b", range(12), ["purchase"] + ["add_to_cart"] * 11, np.full(11, 12.0))
    assert g.admit(buyer).all()
