"""Conformance checks every strategy passes, shipped so that new strategies (yours too) can be
checked in a few lines::

    from shoprec.testing import tiny_shop, check_strategy
    def test_my_strategy(tmp_path):
        check_strategy(lambda: MyStrategy(), tiny_shop(), tmp_path)

Stages of a scenario pipeline have one check per kind: check_training_filter, check_mix_policy,
check_fusion, check_reranker (at the end of this module).

The strategy checks: fit returns self; refit equals a fresh fit; save→load gives identical output; the
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


def priced_shop(days: int = 40, n_items: int = 10, spike: float = 3.0) -> ShopData:
    """Items bought every day at steady prices (item ``i{k}`` at 1 + k, bought by 10 − k users a day,
    so ``i0`` is the most popular), except that ``i0`` costs ``spike`` × its price on the last day: the
    known answer of the price detectors and the ``price_flags`` re-ranker."""
    rows = []
    for d in range(days):
        for i in range(n_items):
            for u in range(n_items - i):
                price = (1.0 + i) * (spike if (i == 0 and d == days - 1) else 1.0)
                rows.append((f"u{u}", f"i{i}", int(Behaviour.PURCHASE), 1_600_000_000 + d * 86_400 + u,
                             f"s{u}-{d}", price, 1.0))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp", "session_id", "price",
                                        "quantity"])
    return ShopData.from_frame(frame, name="priced")


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


# ============================================================================= pipeline stages
# One check per stage kind (see shoprec.scenarios.stages), each runnable in a line:
#     check_training_filter(lambda: MyFilter(max_x=3))
#     check_mix_policy(lambda: MyPolicy(arms={...}), labels=["item_knn", "popularity"])
#     check_fusion(lambda: MyFusion())
#     check_reranker(lambda: MyReRanker())

def _stage_config_round_trips(stage) -> None:
    cfg = stage.config
    assert type(cfg)(**cfg.model_dump()) == cfg, f"{stage.name}: config does not round-trip"
    assert type(stage)(cfg).config == cfg, f"{stage.name}: a stage built from its config differs"


def tiny_pipeline(data: ShopData | None = None, **sections):
    """A fitted scenario pipeline on :func:`tiny_shop` (popularity, item-kNN, EASE; weighted fusion)
    with ``sections`` of the scenario file added: the environment the stage checks run in."""
    from .scenarios import ScenarioPipeline, scenario_from_dict

    data = data if data is not None else tiny_shop()
    cfg = scenario_from_dict({"scenario": {"name": "check", "k": 5},
                              "strategies": [{"name": "item_knn"}, {"name": "ease", "weight": 0.5},
                                             {"name": "popularity", "weight": 0.2}], **sections})
    return ScenarioPipeline(cfg).fit(data)


def check_training_filter(factory: Callable[[], "object"], data: ShopData | None = None) -> None:
    """A training filter keeps a subset of the events with the same users, items and tables, never
    changes its input, counts what it dropped by reason, is deterministic, and takes empty data."""
    from .scenarios.stages import FilterReport, TrainingFilter

    data = data if data is not None else tiny_shop()
    stage = factory()
    assert isinstance(stage, TrainingFilter)
    _stage_config_round_trips(stage)
    before = data.events.copy()
    kept, report = stage.filter(data)
    pd.testing.assert_frame_equal(data.events, before, obj="the input events (a filter must not change them)")
    assert isinstance(report, FilterReport) and isinstance(report.summary(), str)
    assert kept.users is data.users and kept.items is data.items, "a filter must keep the id maps"
    assert kept.item_table is data.item_table, "a filter must keep the item table"
    assert report.n_in == data.n_events and report.n_kept == kept.n_events, "report counts differ from the data"
    assert report.n_in - report.n_kept == sum(report.dropped.values()), "dropped by reason must add up"
    have = pd.util.hash_pandas_object(data.events, index=False).value_counts()
    got = pd.util.hash_pandas_object(kept.events[list(data.events.columns)], index=False).value_counts()
    extra = got.sub(have.reindex(got.index).fillna(0))
    assert (extra <= 0).all(), "a filter returned events that were not in its input"
    again, report2 = factory().filter(data)
    pd.testing.assert_frame_equal(again.events.reset_index(drop=True), kept.events.reset_index(drop=True),
                                  obj="a second run of the filter")
    assert report2 == report
    empty, rep = stage.filter(data.filter_events(np.zeros(data.n_events, bool)))
    assert empty.n_events == 0 and rep.n_in == 0 and rep.n_kept == 0


def check_mix_policy(factory: Callable[[], "object"], labels: list[str] | None = None,
                     data: ShopData | None = None, draws: int = 4000) -> None:
    """A mix policy gives each request probabilities over its arms (rows sum to 1, one row per
    request whatever the batch), chooses arms at those frequencies with exactly that propensity and
    the arm's weights, round-trips its state, and takes empty feedback."""
    from .scenarios.stages import MixChoice, MixContext, MixFeedback, MixPolicy

    data = data if data is not None else tiny_shop()
    labels = labels or ["item_knn", "ease", "popularity"]
    stage = factory()
    assert isinstance(stage, MixPolicy)
    _stage_config_round_trips(stage)
    q = sample_queries(data)
    base = np.linspace(1.0, 0.2, len(labels)).astype(np.float32)
    ctx = MixContext(q, labels, base, np.ones(len(labels), bool))
    names, W = stage.arms(labels, base)
    A = len(names)
    assert W.shape == (A, len(labels)) and np.isfinite(W).all() and (W >= 0).all(), "arm weights (A, S) ≥ 0"
    p = stage.probabilities(ctx)
    assert p.shape == (len(q), A), f"probabilities must be (n, {A})"
    assert (p >= 0).all() and np.allclose(p.sum(axis=1), 1.0), "each request's arm probabilities must sum to 1"
    for i in range(len(q)):
        one = MixContext(q.take(np.array([i])), labels, base, ctx.available)
        np.testing.assert_allclose(stage.probabilities(one)[0], p[i], err_msg=f"request {i}: batch ≠ single")
    choice = stage.choose(ctx)
    assert isinstance(choice, MixChoice) and list(choice.arms) == list(names)
    assert choice.weights.shape == (len(q), len(labels)) and choice.weights.dtype == np.float32
    assert ((choice.arm >= 0) & (choice.arm < A)).all(), "arm index out of range"
    np.testing.assert_allclose(choice.propensity, p[np.arange(len(q)), choice.arm],
                               err_msg="the logged propensity must be the chosen arm's probability")
    np.testing.assert_allclose(choice.weights, W[choice.arm], err_msg="weights must be the chosen arm's")
    # frequencies: one request drawn many times
    one = MixContext(q.take(np.zeros(draws, np.int64)), labels, base, ctx.available)
    arms = stage.choose(one).arm
    freq = np.bincount(arms, minlength=A) / draws
    sd = np.sqrt(p[0] * (1 - p[0]) / draws)
    assert (np.abs(freq - p[0]) <= 5 * sd + 1e-9).all(), f"arm frequencies {freq} differ from {p[0]}"
    # state round-trip; empty feedback
    fresh = factory()
    fresh.set_state(stage.state())
    np.testing.assert_allclose(fresh.probabilities(ctx), p, err_msg="state round-trip changed the policy")
    stage.update(MixFeedback(np.zeros(0, np.int32), np.zeros(0)))


def check_fusion(factory: Callable[[], "object"], data: ShopData | None = None) -> None:
    """A fusion gives a finite float32 score per pair, does not change the pairs, scores each
    request alone (a request's pairs fused alone score as in the batch), and takes (S,) weights as
    the same (n, S) weights on every row."""
    from .scenarios.stages import Fusion

    pipe = tiny_pipeline(data)
    stage = factory()
    assert isinstance(stage, Fusion)
    _stage_config_round_trips(stage)
    stage.fit(pipe.data_, pipe.env_)
    q = sample_queries(pipe.data_)
    pairs = pipe.candidate_pairs(q, pipe.allowed(q))
    assert len(pairs), "the fixture has no candidate pairs"
    copy = {k: getattr(pairs, k).copy() for k in ("row", "item", "norm", "rank", "raw", "sources")}
    w = pipe.weights_
    out = stage.fuse(pairs, w, q)
    for k, v in copy.items():
        np.testing.assert_array_equal(getattr(pairs, k), v, err_msg=f"fusion changed pairs.{k}")
    assert out.shape == (len(pairs),) and out.dtype == np.float32 and np.isfinite(out).all()
    per_row = stage.fuse(pairs, np.broadcast_to(w, (len(q), len(w))).copy(), q)
    np.testing.assert_allclose(per_row, out, rtol=1e-5, atol=1e-6, err_msg="(S,) and (n, S) weights differ")
    for r in np.unique(pairs.row):
        sel = pairs.row == r
        sub = pairs.subset(sel)
        sub.row = np.zeros(len(sub.row), np.int64)
        alone = stage.fuse(sub, w, q.take(np.array([r])))
        np.testing.assert_allclose(alone, out[sel], rtol=1e-5, atol=1e-6, err_msg=f"request {r}: alone ≠ in batch")


def check_reranker(factory: Callable[[], "object"], data: ShopData | None = None, k: int = 5) -> None:
    """A re-ranker only narrows the allowed mask; re-orders each request's pool into items of that
    pool, each once, -1 padding last, at least min(K, pool) of them; does not change its input;
    answers each request as in the batch; is deterministic; round-trips its state."""
    from .scenarios.fusion.pairs import top_pairs
    from .scenarios.stages import Ranked, ReRanker

    pipe = tiny_pipeline(data)
    stage = factory()
    assert isinstance(stage, ReRanker)
    _stage_config_round_trips(stage)
    stage.fit(pipe.data_, pipe.env_)
    q = sample_queries(pipe.data_)
    allowed = pipe.allowed(q)
    narrowed = allowed.copy()
    stage.constrain(q, narrowed)
    assert narrowed.shape == allowed.shape and not (narrowed & ~allowed).any(), "constrain may only remove items"
    pool = stage.pool(k)
    assert pool >= k, "pool(k) must be at least k"
    pairs = pipe.candidate_pairs(q, narrowed)
    ranked = Ranked(*top_pairs(pairs.row, pairs.item, pipe.fuse(pairs, q, "weighted"), pairs.sources, len(q), pool))
    before = Ranked(ranked.item_idx.copy(), ranked.scores.copy(), ranked.sources.copy())
    out = stage.rerank(ranked, q, k)
    for name in ("item_idx", "scores", "sources"):
        np.testing.assert_array_equal(getattr(ranked, name), getattr(before, name),
                                      err_msg=f"rerank changed its input's {name}")
    for r in range(len(q)):
        given = before.item_idx[r][before.item_idx[r] >= 0]
        got = out.item_idx[r]
        items = got[got >= 0]
        assert (got[len(items):] == -1).all(), f"request {r}: -1 padding must come last"
        assert len(np.unique(items)) == len(items), f"request {r}: an item twice"
        assert np.isin(items, given).all(), f"request {r}: an item that was not in the pool"
        assert len(items) >= min(k, len(given)), f"request {r}: fewer than min(K, pool) items"
        src = dict(zip(before.item_idx[r].tolist(), before.sources[r].tolist()))
        assert all(src[i] == s for i, s in zip(items.tolist(), out.sources[r].tolist())), \
            f"request {r}: an item lost its sources"
        alone = stage.rerank(before.take(np.array([r])), q.take(np.array([r])), k)
        np.testing.assert_array_equal(alone.item_idx[0], got, err_msg=f"request {r}: alone ≠ in batch")
    np.testing.assert_array_equal(stage.rerank(before, q, k).item_idx, out.item_idx, err_msg="not deterministic")
    fresh = factory()
    fresh.bind(pipe.env_)
    fresh.set_state(stage.state())
    np.testing.assert_array_equal(fresh.rerank(before, q, k).item_idx, out.item_idx,
                                  err_msg="state round-trip changed the re-ranker")
    again = allowed.copy()
    fresh.constrain(q, again)
    np.testing.assert_array_equal(again, narrowed, err_msg="state round-trip changed constrain")
