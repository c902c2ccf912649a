"""The compiled serving kernels give exactly what their NumPy/SciPy references give (ties, padding,
masks included), on known answers and on random inputs."""

import numpy as np
import pytest
import scipy.sparse as sp

from shoprec.strategies._kernels import merge_block, product_anchor, product_topk
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
    got = pruned_mips(v, f, (order, norms[order], np.ascontiguousarray(f[order])), k, allowed,
                      block=int(rng.integers(1, 500)))
    scores = np.hstack([(v @ f.T).astype(np.float32), np.full((n, 3), -np.inf, np.float32)])
    scores[~allowed] = -np.inf
    want = topk(scores, k)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)
