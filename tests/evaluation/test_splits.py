"""Splits produce the queries, relevant items and exclusions their protocols call for."""

import numpy as np
import pandas as pd

from shoprec.data import Behaviour, Ragged, SessionCases, ShopData, TrainTest
from shoprec.evaluation import (basket_hold_one_out, from_train_test, leave_one_out, session_next_item,
                                temporal_split)
from shoprec.strategies.topk import topk


def test_topk_orders_and_breaks_ties_by_index():
    s = np.array([[0.1, 0.5, 0.5, -np.inf, 0.3], [-np.inf] * 5], dtype=np.float32)
    idx, val = topk(s, 4)
    np.testing.assert_array_equal(idx, [[1, 2, 4, 0], [-1, -1, -1, -1]])
    np.testing.assert_allclose(val[0], [0.5, 0.5, 0.3, 0.1])
    idx, _ = topk(s[:1], 8)  # k larger than the catalogue: padded; -inf never returned
    np.testing.assert_array_equal(idx, [[1, 2, 4, 0, -1, -1, -1, -1]])


def _seq_shop():
    rows = [("u0", i, t) for t, i in enumerate(["a", "b", "c", "d"])] + \
           [("u1", i, t) for t, i in enumerate(["c", "a", "e"])] + [("u2", "a", 0), ("u2", "b", 1)]
    f = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return ShopData.from_frame(f, name="seq")


def test_leave_one_out_test_and_validation():
    d = _seq_shop()
    t = leave_one_out(d)
    # u2 has 2 events (< 3): stays in training, no query
    assert list(d.users.to_external(t.queries.user_idx)) == ["u0", "u1"]
    rel = [list(d.items.to_external(t.relevant[i].indices)) for i in range(2)]
    assert rel == [["d"], ["e"]]
    assert t.train.n_events == 9 - 2
    v = leave_one_out(d, validation=True)
    rel = [list(d.items.to_external(v.relevant[i].indices)) for i in range(2)]
    assert rel == [["c"], ["a"]]
    assert v.train.n_events == 9 - 4
    # history items are excluded
    ex = [set(d.items.to_external(t.exclude[i].indices)) for i in range(2)]
    assert ex == [{"a", "b", "c"}, {"c", "a"}]


def test_from_train_test_queries_only_users_with_test_items():
    f1 = pd.DataFrame({"user_id": ["0", "0", "1"], "item_id": ["0", "1", "1"]})
    f2 = pd.DataFrame({"user_id": ["0"], "item_id": ["2"]})
    from shoprec.data import IdMap
    users, items = IdMap(["0", "1"]), IdMap(["0", "1", "2"])
    tt = TrainTest(ShopData.from_frame(f1, users=users, items=items),
                   ShopData.from_frame(f2, users=users, items=items))
    t = from_train_test(tt)
    np.testing.assert_array_equal(t.queries.user_idx, [0])
    np.testing.assert_array_equal(t.relevant.toarray(), [[0, 0, 1]])
    np.testing.assert_array_equal(t.exclude.toarray(), [[1, 1, 0]])


def test_temporal_split_uses_later_purchases_of_known_users():
    P, V = int(Behaviour.PURCHASE), int(Behaviour.VIEW)
    f = pd.DataFrame({"user_id": ["a", "a", "b", "a", "c", "b"],
                      "item_id": ["x", "y", "x", "z", "z", "y"],
                      "behaviour": [P, V, P, P, P, V],
                      "timestamp": [1, 2, 3, 10, 11, 12]})
    d = ShopData.from_frame(f)
    t = temporal_split(d, cut=5)
    assert t.train.n_events == 3
    # a bought z after the cut; c is new (not queried); b only viewed
    assert list(d.users.to_external(t.queries.user_idx)) == ["a"]
    assert list(d.items.to_external(t.relevant[0].indices)) == ["z"]
    t2 = temporal_split(d, cut=5, known_users_only=False)
    assert sorted(d.users.to_external(np.maximum(t2.queries.user_idx, 0))) == ["a", "a"]  # c → -1 (unknown)
    assert (t2.queries.user_idx == -1).sum() == 1


def test_session_next_item_excludes_nothing():
    d = _seq_shop()
    cases = SessionCases(d, Ragged.from_lists([[0, 1], [2]]), np.array([2, 0]))
    t = session_next_item(cases)
    assert t.exclude is None
    np.testing.assert_array_equal(t.queries.current_item, [1, 2])
    np.testing.assert_array_equal(t.relevant.toarray()[:, :3], [[0, 0, 1], [1, 0, 0]])


def test_basket_hold_one_out_hides_one_item_per_basket():
    P = int(Behaviour.PURCHASE)
    rows = [("u1", "a", 1, "o1"), ("u1", "b", 1, "o1"), ("u2", "a", 2, "o2"),
            ("u1", "a", 10, "o3"), ("u1", "b", 10, "o3"), ("u1", "c", 10, "o3"),
            ("g", "c", 11, "o4")]  # single-item basket: not a query
    f = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "session_id"])
    f["behaviour"] = P
    d = ShopData.from_frame(f)
    t = basket_hold_one_out(d, cut=5)
    assert len(t.queries) == 1
    basket = set(d.items.to_external(t.queries.basket[0]))
    hidden = set(d.items.to_external(t.relevant[0].indices))
    assert len(basket) == 2 and len(hidden) == 1 and basket | hidden == {"a", "b", "c"}
    assert set(d.items.to_external(t.exclude[0].indices)) == basket


def test_topk_sparse_path_matches_a_full_sort():
    """Blocks dominated by one value (0 or -inf) take the sparse path; results equal a stable sort."""
    rng = np.random.default_rng(3)
    s = np.zeros((50, 400), dtype=np.float32)
    cols = rng.integers(0, 400, (50, 6))
    np.put_along_axis(s, cols, rng.integers(1, 4, (50, 6)).astype(np.float32), axis=1)  # ties too
    s[10:15] = -np.inf
    s[10, 5] = 2.0
    for k in (3, 10):
        idx, val = topk(s, k)
        ref = np.argsort(-s, axis=1, kind="stable")[:, :k]
        ref_val = np.take_along_axis(s, ref, axis=1)
        ref = np.where(np.isneginf(ref_val), -1, ref)
        np.testing.assert_array_equal(idx, ref)
