"""Strategies on tiny inputs whose answers can be computed by hand or with plain numpy."""

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shoprec.data import Behaviour, ShopData
from shoprec.strategies import Queries, make_strategy
from shoprec.strategies import ease as ease_mod
from shoprec.strategies.item_knn import bm25_weight


def shop_from_matrix(m: np.ndarray) -> ShopData:
    u, i = np.nonzero(m)
    frame = pd.DataFrame({"user_id": [f"u{x}" for x in u], "item_id": [f"i{x}" for x in i]})
    # keep index order equal to the matrix order
    from shoprec.data import IdMap
    return ShopData.from_frame(frame, users=IdMap([f"u{x}" for x in range(m.shape[0])]),
                               items=IdMap([f"i{x}" for x in range(m.shape[1])]))


X = np.array([[1, 1, 0, 0],
              [1, 1, 1, 0],
              [0, 1, 1, 0],
              [0, 0, 1, 1],
              [1, 0, 0, 0]], dtype=np.float32)


def test_spd_inverse_schur_path_matches_numpy(monkeypatch):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((37, 60)).astype(np.float32)
    g = a @ a.T + 5 * np.eye(37, dtype=np.float32)
    expected = np.linalg.inv(g.astype(np.float64))
    monkeypatch.setattr(ease_mod, "SAFE_CHOLESKY_N", 8)  # force two levels of Schur blocks
    got = ease_mod.spd_inverse(g.copy())
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5)


def test_ease_matches_closed_form():
    lam = 2.0
    s = make_strategy("ease", l2=lam).fit(shop_from_matrix(X))
    p = np.linalg.inv(X.T @ X + lam * np.eye(4))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(s.score(Queries.for_users(np.arange(5))), X @ b, rtol=1e-4, atol=1e-5)


def test_ease_capped_scores_only_popular_items():
    s = make_strategy("ease", l2=1.0, max_items=2).fit(shop_from_matrix(X))
    sc = s.score(Queries.for_users([0]))
    # items 0 and 1 (3 users each) are kept; 2 (3 users) loses the tie to the lower index; 3 is rare
    assert np.isfinite(sc[0, [0, 1]]).all() and np.isneginf(sc[0, [2, 3]]).all()


def test_item_knn_cosine_by_hand():
    s = make_strategy("item_knn", shrink=0.0, neighbours=10).fit(shop_from_matrix(X))
    norms = np.sqrt((X ** 2).sum(axis=0))
    sim = (X.T @ X) / np.outer(norms, norms)
    np.fill_diagonal(sim, 0.0)
    np.testing.assert_allclose(s.similarity_.toarray(), sim, rtol=1e-5)
    # an anonymous session that viewed item 3 gets item 2 first (the only co-occurring item)
    from shoprec.data import Ragged
    top = s.recommend(Queries.for_sessions(Ragged.from_lists([[3]])), k=1, filter_history=True)
    assert top.item_idx[0, 0] == 2


def test_item_knn_keeps_top_neighbours_per_item():
    s = make_strategy("item_knn", shrink=0.0, neighbours=1).fit(shop_from_matrix(X))
    sim = s.similarity_.toarray()
    assert ((sim > 0).sum(axis=0) <= 1).all()  # one neighbour per target item (column)


def test_bm25_weight_matches_formula():
    x = sp.csr_matrix(X)
    k1, b = 1.2, 0.75
    w = bm25_weight(x, k1, b).toarray()
    docs = X.T  # items × users
    idf = np.log(docs.shape[0]) - np.log1p((docs > 0).sum(axis=0))
    length = docs.sum(axis=1)
    norm = (1 - b) + b * length / length.mean()
    expected = (docs * (k1 + 1) / (k1 * norm[:, None] + docs) * idf[None, :]) * (docs > 0)
    np.testing.assert_allclose(w, expected.T, rtol=1e-5)


def test_popularity_modes():
    P, V = int(Behaviour.PURCHASE), int(Behaviour.VIEW)
    frame = pd.DataFrame({"user_id": ["a", "b", "c", "a", "b", "c"],
                          "item_id": ["x", "x", "x", "y", "y", "z"],
                          "behaviour": [V, V, V, P, P, P],
                          "timestamp": [0, 0, 0, 10 * 86400, 10 * 86400, 10 * 86400]})
    items = pd.DataFrame({"category": ["k1", "k1", "k2"]}, index=["x", "y", "z"])
    d = ShopData.from_frame(frame, item_table=items)
    q = Queries.for_users([-1])
    g = make_strategy("popularity").fit(d).recommend(q, 3)
    assert list(d.items.to_external(g.item_idx[0])) == ["x", "y", "z"]  # 3, 2, 1 users
    t = make_strategy("popularity", mode="trending", half_life_days=1.0).fit(d).recommend(q, 3)
    assert list(d.items.to_external(t.item_idx[0])) == ["y", "z", "x"]  # recent purchases win
    from shoprec.data import Ragged
    qc = Queries.for_sessions(Ragged.from_lists([[d.items.to_index(["z"])[0]]]))
    c = make_strategy("popularity", mode="category", category_boost=10.0).fit(d).recommend(qc, 3)
    assert d.items.to_external(c.item_idx[0])[0] == "z"  # the session's category first


def test_als_folds_in_an_unknown_user():
    from shoprec.data import Ragged
    s = make_strategy("als", factors=4, iterations=10, regularization=0.1).fit(shop_from_matrix(X))
    known = s.score(Queries.for_users([3]))
    anon = s.score(Queries.for_sessions(Ragged.from_lists([[2, 3]])))  # same history as user 3
    assert np.corrcoef(known[0], anon[0])[0, 1] > 0.9


def test_row_parallel_scoring_equals_serial():
    from shoprec.strategies._parallel import by_row_chunks
    rng = np.random.default_rng(0)
    h = sp.random(300, 50, density=0.1, format="csr", random_state=1, dtype=np.float32)
    w = rng.random((50, 40), dtype=np.float32)
    got = by_row_chunks(lambda rows: h[rows] @ w, 300, 40, min_rows=16)
    np.testing.assert_allclose(got, h @ w, rtol=1e-6)


def test_gram_by_blocks_equals_the_sparse_product(monkeypatch):
    x = sp.random(60, 23, density=0.2, format="csr", random_state=2, dtype=np.float32)
    monkeypatch.setattr(ease_mod, "GRAM_BLOCK", 5)   # 5 row blocks, the last one short
    got = ease_mod.gram(x)
    assert got.dtype == np.float32 and got.shape == (23, 23)
    np.testing.assert_allclose(got, (x.T @ x).toarray(), rtol=1e-6)


def test_sparse_topk_rows_dense_and_sparse_paths_agree():
    from shoprec.strategies.item_knn import sparse_topk_rows
    m = sp.csr_matrix(np.array([[0, 3, 3, 1, -2, 0],     # a tie at the cut: the lower column wins
                                [0, 0, 0, 0, 0, 0],      # nothing positive
                                [2, 0, 5, 0, 0, 1]], np.float32))   # dense enough for the dense path
    r, c, v = sparse_topk_rows(m, 2)
    assert sorted(zip(r.tolist(), c.tolist(), v.tolist())) == [(0, 1, 3.0), (0, 2, 3.0), (2, 0, 2.0), (2, 2, 5.0)]
    sparse = sp.csr_matrix(sp.eye(200, format="csr", dtype=np.float32) * 2)   # 0.5 % filled: the lexsort path
    r, c, v = sparse_topk_rows(sparse, 3)
    assert (r == c).all() and len(r) == 200 and (v == 2).all()


def test_map_in_threads_keeps_order_and_equals_serial():
    from shoprec.strategies._parallel import map_in_threads
    assert list(map_in_threads(lambda x: x * x, range(7), workers=3)) == [x * x for x in range(7)]
    assert list(map_in_threads(lambda x: x + 1, [5], workers=2)) == [6]
    assert list(map_in_threads(lambda x: x, [], workers=2)) == []
