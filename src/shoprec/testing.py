"""Conformance checks every strategy passes, shipped so that new strategies (yours too) can be
checked in a few lines::

    from shoprec.testing import tiny_shop, check_strategy
    def test_my_strategy(tmp_path):
        check_strategy(lambda: MyStrategy(), tiny_shop(), tmp_path)

The checks: fit returns self; refit equals a fresh fit; save→load gives identical output; the
config round-trips; an unknown user with a session, and an empty history, get valid answers;
excluded items are never returned; a batch equals the queries one by one; recommending before fit
raises NotFittedError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .data import Behaviour, Ragged, ShopData
from .exceptions import NotFittedError
from .strategies.base import Queries, Strategy


def tiny_shop(seed: int = 0, n_users: int = 40, n_items: int = 24) -> ShopData:
    """A small synthetic shop with two taste clusters, sessions, timestamps, behaviours and categories."""
    rng = np.random.default_rng(seed)
    rows = []
    t = 1_600_000_000
    for u in range(n_users):
        cluster = u % 2
        pool = np.arange(cluster * n_items // 2, (cluster + 1) * n_items // 2)
        n_ev = rng.integers(4, 10)
        for j in range(n_ev):
            item = int(rng.choice(pool)) if rng.random() < 0.85 else int(rng.integers(n_items))
            beh = rng.choice([Behaviour.VIEW, Behaviour.ADD_TO_CART, Behaviour.PURCHASE], p=[0.6, 0.2, 0.2])
            t += int(rng.integers(60, 3600))
            rows.append((f"u{u}", f"i{item}", int(beh), t, f"s{u}-{j // 4}"))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp", "session_id"])
    items = pd.DataFrame({"category": [f"c{i % 4}" for i in range(n_items)],
                          "title": [f"item {i}" for i in range(n_items)]},
                         index=[f"i{i}" for i in range(n_items)])
    return ShopData.from_frame(frame, name="tiny", item_table=items)


def sample_queries(data: ShopData, seed: int = 1) -> Queries:
    """Known users, an unknown user with a session, an empty anonymous query, a known user with a basket."""
    rng = np.random.default_rng(seed)
    users = np.array([0, 1, 5, -1, -1, 3], dtype=np.int32)
    items = Ragged.from_lists([[], [2], [], list(rng.integers(0, data.n_items, 3)), [], []])
    basket = Ragged.from_lists([[], [], [], [], [], [4, 7]])
    return Queries(users, items, items.last(), basket)


def _assert_same(a, b, what: str) -> None:
    np.testing.assert_array_equal(a.item_idx, b.item_idx, err_msg=f"{what}: items differ")
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6, err_msg=f"{what}: scores differ")


def check_strategy(factory: Callable[[], Strategy], data: ShopData, tmp_path: Path, k: int = 5) -> None:
    """Run every conformance check on the strategy built by ``factory``."""
    strategy = factory()
    q = sample_queries(data)

    # not fitted
    try:
        strategy.recommend(q, k)
    except NotFittedError:
        pass
    else:
        raise AssertionError("recommend before fit must raise NotFittedError")

    # config round-trip
    cfg = strategy.config
    assert type(cfg)(**cfg.model_dump()) == cfg, "config does not round-trip"

    # fit returns self
    assert strategy.fit(data) is strategy, "fit must return self"
    first = strategy.recommend(q, k)
    assert first.item_idx.shape == (len(q), k) and first.item_idx.dtype == np.int32
    assert first.scores.shape == (len(q), k)
    valid = first.item_idx[first.item_idx >= 0]
    assert (valid < data.n_items).all(), "item index out of range"
    for row in first.item_idx:
        got = row[row >= 0]
        assert len(np.unique(got)) == len(got), "an item is returned twice in one list"
        assert (row[len(got):] == -1).all(), "padding (-1) must come last"
    # known users and the unknown user with a session get items
    assert (first.item_idx[[0, 1, 2, 3, 5], 0] >= 0).all(), "a query with a history got nothing"

    # refit on other data, then on the original, equals a fresh fit
    other = tiny_shop(seed=7)
    strategy.fit(other)
    strategy.fit(data)
    _assert_same(strategy.recommend(q, k), first, "refit vs first fit")
    _assert_same(factory().fit(data).recommend(q, k), first, "fresh fit")

    # save -> load
    path = strategy.save(tmp_path / strategy.name)
    loaded = Strategy.load(path)
    assert type(loaded) is type(strategy) and loaded.config == strategy.config
    _assert_same(loaded.recommend(q, k), first, "save→load")

    # exclusion
    excl = np.zeros((len(q), data.n_items), dtype=bool)
    excl[:, first.item_idx[0, :2].clip(0)] = True
    excl[np.arange(len(q)), np.arange(len(q)) % data.n_items] = True
    excl_m = sp.csr_matrix(excl)
    out = strategy.recommend(q, k, exclude=excl_m)
    hit = np.take_along_axis(excl, out.item_idx.clip(0), axis=1) & (out.item_idx >= 0)
    assert not hit.any(), "an excluded item was returned"
    hist = strategy.history(q).toarray() > 0
    out = strategy.recommend(q, k, filter_history=True)
    hit = np.take_along_axis(hist, out.item_idx.clip(0), axis=1) & (out.item_idx >= 0)
    assert not hit.any(), "filter_history returned a history item"

    # batch equals one by one
    for i in range(len(q)):
        single = strategy.recommend(q.take(np.array([i])), k)
        np.testing.assert_array_equal(single.item_idx[0], first.item_idx[i],
                                      err_msg=f"query {i}: batch differs from single")
