"""Session-kNN and sequential strategies: known answers on tiny sessions, plain-Python references,
the conformance suite, and the edge cases of session queries (unknown user, empty session)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import shoprec.strategies.session_knn as session_knn_module
from shoprec.data import Ragged, ShopData
from shoprec.strategies.base import Queries, Strategy, make_strategy
from shoprec.strategies.sequential import SequentialConfig, SequentialStrategy
from shoprec.strategies.session_knn import SessionKNNConfig, SessionKNNStrategy
from shoprec.testing import check_strategy, tiny_shop

NAMES = ("session_knn", "sequential")


# ----------------------------------------------------------------------------- fixtures
def session_shop(sessions: list[list[str]], users: list[str] | None = None) -> ShopData:
    """One row per click; session ``s<n>`` (user ``users[n]`` or the session itself); the timestamp is
    the position in the session, so the source order says which session is recent."""
    rows = []
    for n, sess in enumerate(sessions):
        for pos, item in enumerate(sess):
            rows.append((users[n] if users else f"s{n}", item, f"s{n}", pos))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "session_id", "timestamp"])
    return ShopData.from_frame(frame, name="sessions")


def idx(data: ShopData, *items: str) -> list[int]:
    return data.items.to_index(np.asarray(items, dtype=object)).tolist()


def session_queries(data: ShopData, *sessions: list[str], users: list[int] | None = None) -> Queries:
    rag = Ragged.from_lists([idx(data, *s) if s else [] for s in sessions])
    u = None if users is None else np.asarray(users, dtype=np.int32)
    return Queries.for_sessions(rag, u)


@pytest.fixture(scope="module")
def shop() -> ShopData:
    base = [["a", "b"], ["a", "b", "c"], ["x", "a", "b"], ["c", "d"], ["c", "d", "e"], ["e", "f"],
            ["p", "q", "r"], ["q", "r"], ["f", "g", "h"], ["u", "v", "w", "z"]]
    return session_shop(base * 3)


# ------------------------------------------------------------------------ known answers
def test_sequential_recommends_what_always_follows(shop):
    s = SequentialStrategy().fit(shop)
    q = session_queries(shop, ["a"], ["c"], ["p", "q"])
    rec = s.recommend(q, 3)
    assert rec.item_idx[0, 0] == idx(shop, "b")[0]
    assert rec.item_idx[1, 0] == idx(shop, "d")[0]
    assert rec.item_idx[2, 0] == idx(shop, "r")[0]
    assert np.all(np.diff(rec.scores, axis=1) <= 0)


def test_session_knn_recommends_the_neighbours_next_item():
    data = session_shop([["a", "b"], ["c", "d"], ["u", "v", "w", "z"], ["a", "e"]])
    s = SessionKNNStrategy(k=1).fit(data)
    rec = s.recommend(session_queries(data, ["u", "v", "w"]), 2, filter_history=True)
    assert rec.item_idx[0, 0] == idx(data, "z")[0]
    # two equally similar neighbours for (a): the more recent one wins
    for time_decay in (None, 1.0):
        s = SessionKNNStrategy(k=1, time_decay=time_decay).fit(data)
        rec = s.recommend(session_queries(data, ["a"]), 1, filter_history=True)
        assert rec.item_idx[0, 0] == idx(data, "e")[0]


def test_session_knn_prefers_recent_sessions_under_sampling():
    # 'a' is followed by 'old' in the older sessions and by 'new' in the recent ones
    data = session_shop([["a", "old"]] * 5 + [["a", "new"]] * 5)
    s = SessionKNNStrategy(sample_size=3, k=3, time_decay=None).fit(data)
    rec = s.recommend(session_queries(data, ["a"]), 3, filter_history=True)
    assert rec.item_idx[0, 0] == idx(data, "new")[0]
    # the older item is then only reachable through the popularity fallback (negative score)
    assert rec.scores[0, 1] < 0


def test_repeat_clicks_are_scored_but_can_be_filtered(shop):
    for name in NAMES:
        s = make_strategy(name).fit(shop)
        q = session_queries(shop, ["a", "b"])
        scores = s.score(q)[0]
        assert scores[idx(shop, "b")[0]] > 0, name  # the session's own item is a candidate
        rec = s.recommend(q, 5, filter_history=True)
        assert not set(idx(shop, "a", "b")) & set(rec.item_idx[0].tolist()), name


# --------------------------------------------------------------------------- edge cases
@pytest.mark.parametrize("name", NAMES)
def test_unknown_user_with_only_session_items(shop, name):
    s = make_strategy(name).fit(shop)
    q = session_queries(shop, ["q"], users=[-1])
    rec = s.recommend(q, 4)
    assert (rec.item_idx[0] >= 0).all()
    assert rec.item_idx[0, 0] in idx(shop, "r", "q")


@pytest.mark.parametrize("name", NAMES)
def test_empty_session_gets_popular_items_or_nothing(shop, name):
    q = session_queries(shop, [], [])
    rec = make_strategy(name).fit(shop).recommend(q, 3)
    pop = np.bincount(shop.events["item_idx"], minlength=shop.n_items)
    assert (rec.item_idx >= 0).all()
    np.testing.assert_array_equal(rec.item_idx[0], np.lexsort((np.arange(shop.n_items), -pop))[:3])
    rec = make_strategy(name, fallback="none").fit(shop).recommend(q, 3)
    assert (rec.item_idx == -1).all() and np.isneginf(rec.scores).all()


@pytest.mark.parametrize("name", NAMES)
def test_known_user_without_session_uses_the_training_history(name):
    data = session_shop([["a", "b"], ["a", "b"], ["c", "d"], ["c", "d"], ["x", "c"]],
                        users=["u1", "u2", "u3", "u4", "me"])
    me = int(data.users.to_index(np.array(["me"], dtype=object))[0])
    s = make_strategy(name).fit(data)
    rec = s.recommend(Queries.for_users([me]), 1, filter_history=True)
    assert rec.item_idx[0, 0] == idx(data, "d")[0]
    off = make_strategy(name, user_history=0).fit(data).recommend(Queries.for_users([me]), 1)
    assert off.scores[0, 0] < 0  # nothing but the popularity fallback


@pytest.mark.parametrize("name", NAMES)
def test_current_item_counts_when_the_session_is_empty(shop, name):
    s = make_strategy(name).fit(shop)
    a = idx(shop, "c")[0]
    q = Queries(np.array([-1], np.int32), Ragged.empty(1), np.array([a], np.int32), Ragged.empty(1))
    excl = sp.csr_matrix((np.ones(1), ([0], [a])), shape=(1, shop.n_items))
    rec = s.recommend(q, 1, exclude=excl)
    assert rec.item_idx[0, 0] == idx(shop, "d")[0]


@pytest.mark.parametrize("name", NAMES)
def test_exclude_is_respected(shop, name):
    s = make_strategy(name).fit(shop)
    q = session_queries(shop, ["a"], ["c", "d"], [])
    first = s.recommend(q, 4)
    excl = sp.csr_matrix((np.ones(3), ([0, 1, 2], first.item_idx[:, 0])), shape=(3, shop.n_items))
    out = s.recommend(q, 4, exclude=excl)
    for r in range(3):
        assert first.item_idx[r, 0] not in out.item_idx[r]
        np.testing.assert_array_equal(out.item_idx[r, :3], first.item_idx[r, 1:4])


# -------------------------------------------------------------------------- protocol
def random_sessions(seed: int, n_sessions: int = 60, n_items: int = 15) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[f"i{int(x)}" for x in rng.integers(0, n_items, rng.integers(1, 9))] for _ in range(n_sessions)]


def random_queries(data: ShopData, seed: int, n: int = 25) -> Queries:
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, data.n_items, rng.integers(0, 7)).tolist() for _ in range(n)]
    users = np.where(rng.random(n) < 0.3, rng.integers(0, data.n_users, n), -1).astype(np.int32)
    return Queries.for_sessions(Ragged.from_lists(rows), users)


@pytest.mark.parametrize("name", NAMES)
def test_conformance_suite(name, tmp_path):
    check_strategy(lambda: make_strategy(name), tiny_shop(), tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_batch_single_refit(name, tmp_path, monkeypatch):
    data = session_shop(random_sessions(1), users=[f"u{n % 20}" for n in range(60)])
    q = random_queries(data, 2)
    s = make_strategy(name).fit(data)
    scores = s.score(q)
    # save -> load: identical scores
    loaded = Strategy.load(s.save(tmp_path / name))
    np.testing.assert_array_equal(loaded.score(q), scores)
    # batch == one by one, and the internal chunking does not matter
    single = np.vstack([s.score(q.take(np.array([i]))) for i in range(len(q))])
    np.testing.assert_array_equal(single, scores)
    monkeypatch.setattr(session_knn_module, "_CHUNK", 4)
    np.testing.assert_array_equal(s.score(q), scores)
    # refit (after other data) == fresh fit
    s.fit(session_shop(random_sessions(9)))
    s.fit(data)
    np.testing.assert_array_equal(s.score(q), scores)
    np.testing.assert_array_equal(make_strategy(name).fit(data).score(q), scores)


def test_configs_are_registered_and_validated():
    assert isinstance(make_strategy("session_knn", k=7).config, SessionKNNConfig)
    assert isinstance(make_strategy("sequential", max_gap=2).config, SequentialConfig)
    with pytest.raises(ValueError):
        SessionKNNConfig(k=0)
    with pytest.raises(ValueError):
        SequentialConfig(knn_weight=2.0)


# ----------------------------------------------------------------- plain-Python references
def reference_session_knn(sessions: list[list[int]], query: list[int], n_items: int,
                          cfg: SessionKNNConfig) -> dict[int, float]:
    """VSTAN as in the module docstring, one query, loops only. ``sessions`` are oldest first."""
    n_sess = len(sessions)
    counts = np.bincount([i for s in sessions for i in s], minlength=n_items)
    idf = {i: math.log(n_sess / counts[i]) for i in range(n_items) if counts[i]}
    ends = np.cumsum([len(s) for s in sessions]) - 1  # row of the last event = recency key
    lo, hi = ends.min(), ends.max()
    query = query[-cfg.max_history:]
    if not query:
        return {}
    age = {item: len(query) - 1 - p for p, item in enumerate(query)}  # last occurrence wins
    if cfg.position_decay == "exp":
        w = {i: math.exp(-a / cfg.lambda_position) for i, a in age.items()}
    elif cfg.position_decay == "linear":
        w = {i: max(0.0, 1 - a / cfg.lambda_position) for i, a in age.items()}
    else:
        w = {i: 1.0 for i in age}
    qnorm = math.sqrt(sum(v * v for v in w.values()))
    cand = [n for n in range(n_sess) if set(sessions[n]) & set(age)]
    cand.sort(reverse=True)  # most recent first
    if cfg.sample_size:
        cand = cand[:cfg.sample_size]
    sims = []
    for n in cand:
        items = set(sessions[n])
        sim = sum(w[i] for i in items & set(age)) / (qnorm * math.sqrt(len(items)))
        if cfg.time_decay is not None:
            sim *= math.exp(-((hi - ends[n]) / (hi - lo)) / cfg.time_decay)
        if sim > 0:
            sims.append((sim, n))
    sims.sort(key=lambda t: (-t[0], -t[1]))
    scores: dict[int, float] = {}
    for sim, n in sims[:cfg.k]:
        pos_last = {item: p + 1 for p, item in enumerate(sessions[n])}
        pos_star = max(pos_last[i] for i in pos_last if i in age)
        age_star = min(age[i] for i in pos_last if i in age)
        for item, p in pos_last.items():
            v = sim
            if cfg.lambda_neighbour is not None:
                v *= math.exp(-abs(p - pos_star) / cfg.lambda_neighbour)
            if cfg.lambda_recency is not None:
                v *= math.exp(-age_star / cfg.lambda_recency)
            if cfg.lambda_idf is not None:
                v *= 1 + cfg.lambda_idf * idf[item]
            scores[item] = scores.get(item, 0.0) + v
    return scores


@pytest.mark.parametrize("params", [
    {"k": 5, "sample_size": 10},
    {"k": 3, "sample_size": 0, "position_decay": "linear", "lambda_position": 3.0, "time_decay": None},
    {"k": 50, "sample_size": 4, "position_decay": "none", "lambda_neighbour": None, "lambda_recency": None,
     "lambda_idf": None, "time_decay": 0.3},
])
def test_session_knn_matches_the_reference(params):
    sessions = random_sessions(3)
    data = session_shop(sessions)
    s = SessionKNNStrategy(**params).fit(data)
    rows = [idx(data, *sess) for sess in sessions]
    q = random_queries(data, 4, n=30)
    q = Queries(np.full(len(q), -1, np.int32), q.items, q.current_item, q.basket)
    got = s.score(q)
    for r in range(len(q)):
        ref = reference_session_knn(rows, q.items[r].tolist(), data.n_items, s.config)
        scored = np.flatnonzero(got[r] > 0)
        assert set(scored.tolist()) == {i for i, v in ref.items() if v > 0}, r
        np.testing.assert_allclose(got[r, scored], [ref[i] for i in scored], rtol=1e-5)


def reference_sequential(sessions: list[list[int]], query: list[int], n_items: int,
                         cfg: SequentialConfig) -> np.ndarray:
    """The item×item matrix and the query score of the module docstring, densely."""
    trans = np.zeros((n_items, n_items))
    co = np.zeros((n_items, n_items))
    counts = np.zeros(n_items)
    for s in sessions:
        for p, i in enumerate(s):
            counts[i] += 1
            for g in range(1, cfg.max_gap + 1):
                if p + g < len(s) and (cfg.self_transitions or s[p + g] != i):
                    trans[i, s[p + g]] += g ** -cfg.gap_power
        for i in set(s):
            for j in set(s):
                co[i, j] += 1
    occ = np.diag(co).copy()
    np.fill_diagonal(co, 0)
    co = co / np.sqrt(np.maximum(occ, 1))[:, None] / np.sqrt(np.maximum(occ, 1))[None, :]

    def rownorm(m):
        sums = m.sum(1, keepdims=True)
        return np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)

    m = (1 - cfg.knn_weight) * rownorm(trans) + cfg.knn_weight * rownorm(co)
    m = m / np.maximum(counts, 1)[None, :] ** cfg.pop_penalty
    query = query[-cfg.max_history:]
    h = np.zeros(n_items)
    for p, i in enumerate(query):
        h[i] += math.exp(-(len(query) - 1 - p) / cfg.recency)
    return h @ m + cfg.repeat_weight * h


@pytest.mark.parametrize("params", [{}, {"max_gap": 2, "gap_power": 1.0, "self_transitions": False,
                                         "knn_weight": 0.2, "pop_penalty": 0.5, "recency": 0.7,
                                         "max_history": 3, "repeat_weight": 0.0}])
def test_sequential_matches_the_reference(params):
    sessions = random_sessions(5)
    data = session_shop(sessions)
    s = SequentialStrategy(neighbours=data.n_items, **params).fit(data)
    rows = [idx(data, *sess) for sess in sessions]
    q = random_queries(data, 6, n=20)
    q = Queries(np.full(len(q), -1, np.int32), q.items, q.current_item, q.basket)
    got = s.score(q)
    for r in range(len(q)):
        ref = reference_sequential(rows, q.items[r].tolist(), data.n_items, s.config)
        pos = ref > 0
        np.testing.assert_allclose(got[r, pos], ref[pos], rtol=1e-5)
        assert (got[r, ~pos] < 0).all()


def test_sequential_prunes_to_the_strongest_neighbours(shop):
    s = SequentialStrategy(neighbours=2).fit(shop)
    assert np.diff(s.item_item_.indptr).max() <= 2
