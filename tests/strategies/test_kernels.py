"""The compiled serving kernels give exactly what their NumPy/SciPy references give (ties, padding,
masks included), on known answers and on random inputs."""

import numpy as np
import pytest
import scipy.sparse as sp

from shoprec.scenarios.reasons import cooccurrence_anchors_sparse
from shoprec.strategies._kernels import cosine_anchor, merge_block, product_anchor, product_topk, row_floor
from shoprec.strategies.factorization import pruned_mips
from shoprec.strategies.item_knn import neighbourhood_anchor
from shoprec.strategies.topk import sparse_topk, topk


def test_product_topk_known_answer():
    # history: request 0 saw items 0 and 1; request 1 saw nothing
    h = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 0]], np.float32))
    sim = sp.csr_matrix(np.array([[0, 0, 2, 1],
                                  [0, 0, 1, 2],
                                  [0, 0, 0, 0],
                                  [0, 0, 0, 0]], np.float32))
    idx, val = product_topk(h, sim, 3)
    # items 2 and 3 both score 3: the tie goes to the lower index; nothing else is positive
    assert idx.tolist() == [[2, 3, -1], [-1, -1, -1]]
    assert val[0, :2].tolist() == [3.0, 3.0] and np.isneginf(val[0, 2]) and np.isneginf(val[1]).all()
    allowed = np.array([[True, True, False, True], [True] * 4])
    idx, _ = product_topk(h, sim, 3, allowed)
    assert idx[0].tolist() == [3, -1, -1]
    # the anchor of item 2 is item 0 (2 > 1), of item 3 item 1
    assert product_anchor(h, sim, np.array([[2, 3, -1]])).tolist() == [[0, 1, -1]]


@pytest.mark.parametrize("seed", range(6))
def test_product_kernels_match_the_sparse_reference(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(20, 400))
    sim = sp.random(m, m, density=0.05, format="csr", dtype=np.float32, random_state=seed)
    sim.data = np.round(sim.data * 4) / 4           # many ties
    live = sp.random(m, m, density=0.01, format="csr", dtype=np.float32, random_state=seed + 100)
    h = sp.random(16, m, density=0.03, format="csr", dtype=np.float32, random_state=seed + 200)
    h.data = np.ceil(h.data * 3)
    allowed = rng.random((16, m + 5)) > 0.2           # the catalogue may have grown past the model
    k = int(rng.integers(1, 30))
    for mats, total in (([sim], sim), ([sim, live], sim + live), ([sim, None], sim)):
        got = product_topk(h, mats, k, allowed)
        want = sparse_topk(h @ total, k, allowed)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], rtol=1e-6)
        anchors = product_anchor(h, mats, want[0])
        np.testing.assert_array_equal(anchors, neighbourhood_anchor(h, sp.csr_matrix(total.T), want[0]))


def test_merge_block_keeps_the_k_best_with_ties_to_the_lower_index():
    best_i = np.full((1, 3), -1, np.int64)
    best_v = np.full((1, 3), -np.inf, np.float32)
    fill = np.zeros(1, np.int64)
    allowed = np.ones((1, 10), bool)
    allowed[0, 9] = False
    merge_block(np.array([[1.0, 5.0, 5.0, 0.5]], np.float32), np.array([0]), np.array([7, 3, 6, 1]),
                allowed, best_i, best_v, fill)
    merge_block(np.array([[5.0, 9.0]], np.float32), np.array([0]), np.array([2, 9]), allowed, best_i, best_v, fill)
    order = np.lexsort((best_i[0], -best_v[0]))
    assert best_i[0, order].tolist() == [2, 3, 6]     # 9 is not allowed; the three 5s kept by index


@pytest.mark.parametrize("seed", range(8))
def test_pruned_mips_is_the_exact_top_k(seed):
    rng = np.random.default_rng(seed)
    m, d, n = int(rng.integers(5, 3000)), 8, int(rng.integers(1, 20))
    k = int(rng.integers(1, 60))
    f = (rng.standard_normal((m, d)) * rng.random((m, 1)) ** 3).astype(np.float32)
    f[rng.random(m) < 0.1] = 0
    v = rng.standard_normal((n, d)).astype(np.float32)
    v[rng.random(n) < 0.2] = 0                       # unknown visitors: every score 0
    if seed % 2:                                     # ties
        f, v = np.round(f * 2) / 2, np.round(v)
    allowed = rng.random((n, m + 3)) > 0.3
    norms = np.linalg.norm(f, axis=1)
    order = np.argsort(-norms, kind="stable")
    head = np.ascontiguousarray(f[order[:int(rng.integers(0, m + 1))]])   # a sorted head of any length
    got = pruned_mips(v, f, (order, norms[order], head) if seed % 3 else (order, norms[order]), k, allowed,
                      block=int(rng.integers(1, 500)))
    scores = np.hstack([(v @ f.T).astype(np.float32), np.full((n, 3), -np.inf, np.float32)])
    scores[~allowed] = -np.inf
    want = topk(scores, k)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)


def test_cosine_anchor_known_answer():
    # items × users: item 0 and item 1 share user 0; item 2 shares users 1 and 2 with item 3
    x = sp.csr_matrix(np.array([[1, 0, 0],
                                [1, 0, 1],
                                [0, 1, 1],
                                [0, 1, 1],
                                [0, 0, 0]], np.float32))
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    items = np.array([[3, 0, -1, 4, 7], [1, 2, -1, -1, -1], [2, -1, -1, -1, -1]])
    pools = [np.array([1, 2]), np.array([4]), np.array([], np.int64)]
    got = cosine_anchor(items, pools, x, norms)
    # request 0: item 3 is closest to 2 (cos 1) not 1 (cos .5); item 0 only to 1; item 4 co-occurs with
    # none and item 7 is unknown: the pool's first. Request 1: item 4 co-occurs with nothing: itself first.
    assert got.tolist() == [[2, 1, -1, 1, 1], [4, 4, -1, -1, -1], [-1, -1, -1, -1, -1]]


@pytest.mark.parametrize("seed", range(5))
def test_cosine_anchor_matches_the_sparse_reference(seed):
    rng = np.random.default_rng(seed)
    n_items, n_users = int(rng.integers(10, 200)), int(rng.integers(5, 300))
    x = sp.random(n_items, n_users, density=0.08, format="csr", dtype=np.float32, random_state=seed)
    x.data = np.ceil(x.data * 2)                  # small integers: many exact ties
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    n = 12
    items = rng.integers(-1, n_items + 5, size=(n, 7))     # -1 padding and items added after fit
    pools = [rng.choice(n_items + 3, size=int(rng.integers(0, 8)), replace=False) for _ in range(n)]
    np.testing.assert_array_equal(cosine_anchor(items, pools, x, norms),
                                  cooccurrence_anchors_sparse(items, pools, x, norms))


def test_row_floor_keeps_each_rows_fan_largest():
    x = sp.csr_matrix(np.array([[0, 3, 1, 2], [5, 0, 0, 0], [1, 1, 1, 0]], np.float32))
    floor = row_floor(x, 2)
    assert floor[0] == 2 and np.isneginf(floor[1]) and floor[2] == 1   # row 2: ties at the boundary kept
    h = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 1]], np.float32))
    idx, _ = product_topk(h, x, 4, floor=floor)
    assert idx.tolist() == [[1, 3, -1, -1], [0, 1, 2, -1]]


@pytest.mark.parametrize("seed", range(3))
def test_product_topk_floor_equals_the_pruned_matrix(seed):
    from shoprec.strategies.item_knn import sparse_topk_rows

    rng = np.random.default_rng(seed)
    m = int(rng.integers(30, 300))
    sim = sp.random(m, m, density=0.1, format="csr", dtype=np.float32, random_state=seed)   # distinct values
    live = sp.random(m, m, density=0.01, format="csr", dtype=np.float32, random_state=seed + 1)
    h = sp.random(10, m, density=0.05, format="csr", dtype=np.float32, random_state=seed + 2)
    fan = int(rng.integers(1, 12))
    r, c, v = sparse_topk_rows(sim, fan)
    pruned = sp.csr_matrix((v, (r, c)), shape=sim.shape)
    allowed = rng.random((10, m)) < 0.8
    want = product_topk(h, [pruned, live], 7, allowed)
    got = product_topk(h, [sim, live], 7, allowed, floor=row_floor(sim, fan))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)


def test_als_fold_in_is_implicits_least_squares_step():
    from implicit.cpu.als import AlternatingLeastSquares

    from shoprec.strategies.factorization import als_fold_in

    rng = np.random.default_rng(3)
    f = rng.standard_normal((60, 8)).astype(np.float32)
    h = sp.random(9, 60, density=0.15, format="csr", dtype=np.float32, random_state=3)
    h.data = np.ceil(h.data * 3)
    keep = np.ones(9, np.float32)
    keep[4] = 0                                # an empty history: the zero vector
    h = sp.csr_matrix(sp.diags(keep) @ h)
    h.eliminate_zeros()
    model = AlternatingLeastSquares(factors=8, regularization=0.05, alpha=2.0)
    model.item_factors = f
    want = model.recalculate_user(np.arange(9), h)
    got = als_fold_in(h, f, f.astype(np.float64).T @ f.astype(np.float64), 2.0, 0.05)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert not got[4].any()


def test_float16_factors_serve_the_float16_ranking_and_survive_save_load(tmp_path):
    from shoprec.data import Ragged
    from shoprec.strategies import make_strategy
    from shoprec.strategies.base import Queries, Strategy
    from shoprec.testing import tiny_shop

    data = tiny_shop()
    s = make_strategy("als", factors=8, iterations=3, factor_dtype="float16").fit(data)
    assert s.item_factors_.dtype == np.float16 and 0.5 <= s.quantisation_agreement_ <= 1.0
    q = Queries(np.arange(4, dtype=np.int32), Ragged.empty(4), np.full(4, -1, np.int32), Ragged.empty(4))
    allowed = np.ones((4, data.n_items), bool)
    dense = topk(s.score(q), 5)
    np.testing.assert_array_equal(s.candidates(q, 5, allowed)[0], dense[0])
    s.save(tmp_path / "als")
    back = Strategy.load(tmp_path / "als")
    assert back.item_factors_.dtype == np.float16
    np.testing.assert_array_equal(back.candidates(q, 5, allowed)[0], dense[0])


def test_npz_arrays_memory_maps_uncompressed_members(tmp_path):
    from shoprec.strategies.base import npz_arrays

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    f = np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3))
    np.savez(tmp_path / "x.npz", a=a, f=f, empty=np.zeros((0, 3), np.int32), s=np.array("text"))
    got = npz_arrays(tmp_path / "x.npz")
    assert isinstance(got["a"].base, np.memmap) and got["a"].dtype == np.float32
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_array_equal(got["f"], f)
    assert got["empty"].shape == (0, 3) and str(got["s"]) == "text"
    got["a"][0, 0] = 99.0                      # copy-on-write: the file keeps its values
    assert npz_arrays(tmp_path / "x.npz")["a"][0, 0] == 0.0
    np.savez_compressed(tmp_path / "z.npz", a=a)  # compressed members are read as np.load reads them
    np.testing.assert_array_equal(npz_arrays(tmp_path / "z.npz")["a"], a)
