"""The serving fast paths give the answers of the plain ones: threshold top-k on long rows, sparse
and presorted candidates, HNSW candidates, live updates of strategies and catalogue growth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from shoprec.data import Ragged
from shoprec.strategies import make_strategy
from shoprec.strategies.base import LiveEvents, Queries, Strategy
from shoprec.strategies.topk import sparse_topk, topk
from shoprec.testing import tiny_shop


def reference_topk(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n, m = x.shape
    idx = np.full((n, k), -1, np.int32)
    val = np.full((n, k), -np.inf, np.float32)
    for r in range(n):
        order = np.lexsort((np.arange(m), -x[r]))[:k]
        order = order[np.isfinite(x[r, order])]
        idx[r, :len(order)] = order
        val[r, :len(order)] = x[r, order]
    return idx, val


KINDS = ["normal", "ties", "sparse", "excluded", "zeros", "mostly_excluded", "few_scoreable"]


@pytest.mark.parametrize("kind", KINDS)
def test_threshold_topk_is_exact_on_long_rows(kind):
    rng = np.random.default_rng(KINDS.index(kind))
    x = rng.standard_normal((7, 20_000)).astype(np.float32)
    if kind == "ties":
        x = np.round(x * 2) / 2
    elif kind == "sparse":
        x = np.where(rng.random(x.shape) < 0.01, np.abs(x), 0).astype(np.float32)
    elif kind == "excluded":
        x[rng.random(x.shape) < 0.999] = -np.inf
    elif kind == "zeros":
        x[:] = 0
    elif kind == "mostly_excluded":   # a sparse strategy's dense rows: positives, the rest -inf
        x = np.where(rng.random(x.shape) < 0.3, np.abs(x), -np.inf).astype(np.float32)
        x[0] = -np.inf
    elif kind == "few_scoreable":     # fewer scoreable entries than k in some rows, negatives among them
        x[rng.random(x.shape) < 0.998] = -np.inf
        x[1, :] = -np.inf
        x[1, [5, 17_000]] = -1e30
    for k in (1, 10, 100):
        got, ref = topk(x, k), reference_topk(x, k)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])


def test_sparse_topk_matches_dense_over_positive_scores():
    rng = np.random.default_rng(5)
    m = sp.random(6, 300, density=0.05, random_state=5, dtype=np.float32).tocsr()
    allowed = rng.random((6, 300)) < 0.7
    dense = m.toarray()
    dense[(dense <= 0) | ~allowed] = -np.inf
    for k in (3, 20):
        got, ref = sparse_topk(m, k, allowed), reference_topk(dense, k)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_allclose(got[1], ref[1])


def _queries(data, n=6):
    rng = np.random.default_rng(0)
    users = np.array([0, 1, -1, 2, -1, 3][:n], np.int32)
    sessions = Ragged.from_lists([rng.choice(data.n_items, 2, replace=False) for _ in range(n)])
    return Queries(users, sessions, sessions.last(), Ragged.from_lists([[1]] * n))


@pytest.mark.parametrize("name,params", [("item_knn", {}), ("item_knn", {"similarity": "covisit"}),
                                         ("popularity", {}), ("popularity", {"mode": "trending"}),
                                         ("content_tfidf", {}), ("session_knn", {}),
                                         ("session_knn", {"fallback": "none", "user_history": 3}),
                                         ("sequential", {}), ("sequential", {"repeat_weight": 0.0}),
                                         ("fbt", {}), ("fbt", {"history_weight": 0.5, "fallback": "none"})])
def test_candidates_equal_the_dense_path_on_positive_scores(name, params):
    data = tiny_shop()
    s = make_strategy(name, **params).fit(data)
    q = _queries(data)
    allowed = np.random.default_rng(1).random((len(q), data.n_items)) < 0.8
    got = s.candidates(q, 5, allowed)
    dense = Strategy.candidates(s, q, 5, allowed)  # the default: dense scores, mask, top-k
    for r in range(len(q)):
        pos = dense[1][r] > 0
        if name in ("popularity", "fbt", "session_knn", "sequential"):  # the dense answer exactly
            np.testing.assert_array_equal(got[0][r], dense[0][r])     # (their fallback order included)
        else:  # only positive scores are candidates; those are the dense answer's positives
            np.testing.assert_array_equal(got[0][r][got[0][r] >= 0], dense[0][r][pos])


def test_item_knn_fanout_candidates_come_from_close_neighbours():
    data = tiny_shop()
    exact = make_strategy("item_knn").fit(data)
    fan = make_strategy("item_knn", candidate_fanout=1000).fit(data)  # fanout ≥ neighbours: the same
    q = _queries(data)
    allowed = np.ones((len(q), data.n_items), bool)
    np.testing.assert_array_equal(exact.candidates(q, 5, allowed)[0], fan.candidates(q, 5, allowed)[0])
    narrow = make_strategy("item_knn", candidate_fanout=1).fit(data)
    idx = narrow.candidates(q, 5, allowed)[0]
    assert (idx >= 0).any()


def test_hnsw_candidates_find_the_exact_top_and_survive_save_load(tmp_path):
    pytest.importorskip("hnswlib")
    data = tiny_shop()
    exact = make_strategy("als", factors=8, iterations=5, num_threads=1).fit(data)
    ann = make_strategy("als", factors=8, iterations=5, num_threads=1, candidate_index="hnsw").fit(data)
    np.testing.assert_allclose(exact.item_factors_, ann.item_factors_)
    q = Queries.for_users(np.arange(4))
    allowed = np.ones((4, data.n_items), bool)
    allowed[:, 0] = False
    a, b = exact.candidates(q, 3, allowed), ann.candidates(q, 3, allowed)
    np.testing.assert_array_equal(a[0], b[0])   # a tiny graph is searched exhaustively
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5)
    loaded = Strategy.load(ann.save(tmp_path / "als"))
    np.testing.assert_array_equal(loaded.candidates(q, 3, allowed)[0], b[0])


def _live(data, item: int, context: list[int], behaviour: int = 0, t: float | None = None) -> LiveEvents:
    ts = float(data.events["timestamp"].max()) + 3600 if t is None else t
    return LiveEvents(np.array([-1], np.int32), np.array([item], np.int32), np.array([behaviour], np.int8),
                      np.array([ts]), Ragged.from_lists([context]))


def test_observe_updates_popularity_and_co_visitation():
    data = tiny_shop()
    pop = make_strategy("popularity", mode="trending").fit(data)
    least = int(np.argmin(pop.scores_))
    before = pop.scores_[least]
    assert pop.observe(_live(data, least, [], behaviour=4))  # a purchase
    assert pop.scores_[least] > before
    knn = make_strategy("item_knn", similarity="covisit").fit(data)
    a, b = 0, data.n_items - 1
    q = Queries(np.array([-1], np.int32), Ragged.from_lists([[a]]), np.array([a], np.int32), Ragged.empty(1))
    s0 = knn.score(q)[0, b]
    for _ in range(5):
        knn.observe(_live(data, b, [a]))
    assert knn.score(q)[0, b] > s0
    assert knn.top_anchor(q, np.array([[b]]))[0, 0] == a


def test_refresh_items_makes_a_new_item_recommendable_by_its_text():
    from dataclasses import replace

    data = tiny_shop()
    words = ["red", "blue", "green", "wooden", "glass", "paper", "owl", "star", "heart", "lantern", "mug", "bag"]
    titles = [f"{words[i % 3]} {words[3 + i % 3]} {words[6 + i % 6]}" for i in range(data.n_items)]
    table = data.item_table.copy()
    table["title"] = titles
    data = replace(data, item_table=table)
    content = make_strategy("content_tfidf").fit(data)
    new_row = pd.DataFrame({c: [None] for c in table.columns})
    new_row["title"] = titles[0] + " bag"                  # a new item that reads like item 0
    full = pd.concat([table, new_row], ignore_index=True)
    n = data.n_items + 1
    assert content.refresh_items(n, np.array([n - 1]), full)
    q = Queries(np.array([-1], np.int32), Ragged.empty(1), np.array([0], np.int32), Ragged.empty(1))
    allowed = np.ones((1, n), bool)
    allowed[0, 0] = False
    assert content.candidates(q, 1, allowed)[0][0, 0] == n - 1
    knn = make_strategy("item_knn").fit(data)
    assert knn.refresh_items(n, np.array([n - 1]), full)
    assert knn.score(q).shape == (1, n)
    ease = make_strategy("ease").fit(data)
    assert not ease.refresh_items(n, np.array([n - 1]), full)  # cannot score it: the pipeline pads
    assert ease.candidates(q, 3, allowed)[0].max() < n - 1


@pytest.mark.parametrize("params", [{}, {"sample_size": 3, "k": 2}, {"user_history": 0, "lambda_idf": None},
                                    {"lambda_neighbour": None, "lambda_recency": None, "position_decay": "linear"}])
def test_session_knn_kernel_equals_its_sparse_reference(params):
    data = tiny_shop()
    s = make_strategy("session_knn", **params).fit(data)
    rng = np.random.default_rng(4)
    n = 40
    users = rng.integers(-1, data.n_users, n).astype(np.int32)
    sessions = Ragged.from_lists([rng.choice(data.n_items, int(rng.integers(0, 5))) for _ in range(n)])
    cur = np.where(rng.random(n) < 0.5, rng.integers(0, data.n_items, n), -1).astype(np.int32)
    q = Queries(users, sessions, cur, Ragged.empty(n))
    allowed = rng.random((n, data.n_items + 3)) < 0.85     # a grown catalogue: wider than the model
    for k in (1, 4, 50):
        got, want = s.candidates(q, k, allowed), s._reference_candidates(q, k, allowed)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)


def test_cold_start_candidates_equal_the_dense_path():
    data = tiny_shop()
    s = make_strategy("cold_start").fit(data)
    s.presorted_depth = 1             # short lists: the tiny shop's catalogue is longer than 4 k
    rng = np.random.default_rng(2)
    n = 30
    q = Queries(rng.integers(-1, data.n_users, n).astype(np.int32), Ragged.empty(n), np.full(n, -1, np.int32),
                Ragged.empty(n))
    for density in (0.9, 0.02):      # 0.02: most requests fall back to the dense path
        allowed = rng.random((n, data.n_items)) < density
        for k in (1, 2, 5, data.n_items + 2):
            got, want = s.candidates(q, k, allowed), Strategy.candidates(s, q, k, allowed)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])


def test_fill_from_order_is_the_dense_top_k_of_positives_over_a_filler():
    from shoprec.strategies.topk import fill_from_order

    rng = np.random.default_rng(9)
    n, m = 20, 60
    pos = np.where(rng.random((n, m)) < 0.1, rng.random((n, m)) + 0.01, 0.0).astype(np.float32)
    filler = -(np.arange(m)[rng.permutation(m)] + 1) / m                      # distinct, below 0
    dense = np.where(pos > 0, pos, filler).astype(np.float32)
    allowed = rng.random((n, m)) < 0.7
    allowed[0] = False
    allowed[1, :3] = True
    for k in (1, 5, 30, 70):
        want = topk(np.where(allowed, dense, -np.inf).astype(np.float32), k)
        first = sparse_topk(sp.csr_matrix(pos), k, allowed)
        order = np.argsort(-filler, kind="stable")
        idx, val, short = fill_from_order(first[0], first[1], allowed, order, filler[order].astype(np.float32),
                                          extra=4)
        for r in range(n):
            if r in short:       # the first k + 4 of the order could not complete it: the caller's to score
                continue
            np.testing.assert_array_equal(idx[r], want[0][r])
            np.testing.assert_array_equal(val[r], want[1][r])
        assert 0 in short or k + 4 >= m       # row 0 allows nothing: only a dense look can tell
