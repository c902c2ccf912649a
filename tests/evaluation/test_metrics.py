"""Tests of shoprec.evaluation.metrics.

Three layers:

1. hand-computed answers on tiny fixtures (written out as fractions);
2. a plain per-user pure-Python reference implementation, compared with the
   vectorised functions on random inputs by hypothesis;
3. properties (bounds, monotonicity, identities, invariances).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoprec.evaluation.metrics import (
    auc,
    catalogue_coverage,
    gini_index,
    hits,
    intra_list_diversity,
    novelty,
    ranking_metrics,
    summarise,
)

NAMES = ("recall", "precision", "hr", "ndcg", "mrr", "map")
L2 = math.log2
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def csr(rows: list[set[int]] | list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


def assert_nan_close(actual, expected, tol=1e-12):
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual[~np.isnan(actual)], expected[~np.isnan(expected)],
                               rtol=0, atol=tol)


# --------------------------------------------------------------------------
# fixture: 4 users, 6 items, K = 3
# --------------------------------------------------------------------------
REC = np.array([
    [4, 2, 1],    # relevant {1, 4}: hits at positions 0 and 2
    [1, 3, -1],   # relevant {0, 2, 3}: hit at position 1, padded
    [0, 1, 2],    # no relevant items -> NaN
    [0, 1, 2],    # relevant {5}: no hit
])
REL = csr([{1, 4}, {0, 2, 3}, set(), {5}], n_items=6)
N_ITEMS = 6


def test_hits_fixture():
    expected = np.array([
        [True, False, True],
        [False, True, False],
        [False, False, False],
        [False, False, False],
    ])
    out = hits(REC, REL)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, expected)


def test_ranking_metrics_fixture_known_answers():
    m = ranking_metrics(REC, REL, ks=(1, 2, 3))
    nan = np.nan
    idcg2 = 1 + 1 / L2(3)
    idcg3 = 1 + 1 / L2(3) + 1 / 2
    expected = {
        # user 0: rel {1,4}, rec [4,2,1]  -> hits [1,0,1]
        # user 1: rel {0,2,3}, rec [1,3,-1] -> hits [0,1,0]
        # user 2: no relevant items -> NaN; user 3: rel {5} -> no hit
        "recall@1": [1 / 2, 0, nan, 0],
        "recall@2": [1 / 2, 1 / 3, nan, 0],
        "recall@3": [2 / 2, 1 / 3, nan, 0],
        "precision@1": [1 / 1, 0, nan, 0],
        "precision@2": [1 / 2, 1 / 2, nan, 0],
        "precision@3": [2 / 3, 1 / 3, nan, 0],
        "hr@1": [1, 0, nan, 0],
        "hr@2": [1, 1, nan, 0],
        "hr@3": [1, 1, nan, 0],
        "ndcg@1": [1, 0, nan, 0],
        "ndcg@2": [1 / idcg2, (1 / L2(3)) / idcg2, nan, 0],
        "ndcg@3": [(1 + 1 / 2) / idcg2, (1 / L2(3)) / idcg3, nan, 0],
        "mrr@1": [1, 0, nan, 0],
        "mrr@2": [1, 1 / 2, nan, 0],
        "mrr@3": [1, 1 / 2, nan, 0],
        "map@1": [1, 0, nan, 0],
        "map@2": [(1 / 2) * (1 / 1), (1 / 2) * (1 / 2), nan, 0],
        "map@3": [(1 / 2) * (1 / 1 + 2 / 3), (1 / 3) * (1 / 2), nan, 0],
    }
    assert set(m) == set(expected)
    for key, value in expected.items():
        assert m[key].dtype == np.float64, key
        assert_nan_close(m[key], value)


def test_ranking_metrics_default_ks_keys():
    rec = np.tile(np.arange(20), (2, 1))
    rel = csr([{0}, {19}], n_items=30)
    m = ranking_metrics(rec, rel)
    assert set(m) == {f"{n}@{k}" for n in NAMES for k in (10, 20)}
    assert m["hr@10"].tolist() == [1.0, 0.0]
    assert m["hr@20"].tolist() == [1.0, 1.0]
    assert m["mrr@20"].tolist() == [1.0, 1 / 20]


def test_ranking_metrics_k_checks():
    with pytest.raises(ValueError, match="k=4 exceeds"):
        ranking_metrics(REC, REL, ks=(2, 4))
    with pytest.raises(ValueError):
        ranking_metrics(REC, REL, ks=(0,))
    with pytest.raises(ValueError):
        ranking_metrics(REC, REL, ks=())


def test_input_validation():
    with pytest.raises(ValueError):
        hits(np.array([[0, 6]]), csr([{0}], 6))  # index == n_items
    with pytest.raises(ValueError):
        hits(np.array([[0, -2]]), csr([{0}], 6))
    with pytest.raises(ValueError):
        hits(np.array([[0, 1]]), csr([{0}, {1}], 6))  # user count mismatch
    with pytest.raises(ValueError):
        hits(np.array([0, 1]), csr([{0}], 6))  # 1-D
    with pytest.raises(ValueError):
        hits(np.array([[0.0, 1.0]]), csr([{0}], 6))  # float indices
    with pytest.raises(ValueError):
        auc(np.array([[np.nan, 1.0]]), csr([{0}], 2))
    with pytest.raises(ValueError):
        auc(np.zeros((1, 3)), csr([{0}], 2))
    with pytest.raises(ValueError):
        catalogue_coverage(REC, N_ITEMS, 4)


def test_relevant_csr_quirks_and_purity():
    # duplicates, unsorted indices and an explicit zero in the CSR
    indptr = np.array([0, 4])
    indices = np.array([3, 1, 3, 0])
    data = np.array([1.0, 5.0, 1.0, 0.0])  # item 0 stored but zero -> not relevant
    rel = sp.csr_matrix((data, indices, indptr), shape=(1, 5))
    before = (rel.data.copy(), rel.indices.copy(), rel.indptr.copy())
    rec = np.array([[0, 1, 2, 3]])
    rec_before = rec.copy()
    np.testing.assert_array_equal(hits(rec, rel), [[False, True, False, True]])
    m = ranking_metrics(rec, rel, ks=(4,))
    assert m["recall@4"][0] == 1.0  # |relevant| = 2 (not 3 or 4)
    np.testing.assert_array_equal(rel.data, before[0])
    np.testing.assert_array_equal(rel.indices, before[1])
    np.testing.assert_array_equal(rel.indptr, before[2])
    np.testing.assert_array_equal(rec, rec_before)


def test_auc_fixture():
    scores = np.array([
        [0.9, 0.1, 0.5, 0.5, 0.3],
        [0.9, 0.1, 0.5, 0.5, 0.3],
        [0.2, 0.2, 0.2, 0.2, 0.2],
        [0.1, 0.2, 0.3, 0.4, 0.5],
        [0.1, 0.2, 0.3, 0.4, 0.5],
    ])
    rel = csr([{0, 3}, {0, 3}, {1}, {0, 1, 2, 3, 4}, set()], n_items=5)
    exclude = csr([{4}, set(), set(), set(), set()], n_items=5)
    # user 0, item 4 excluded: pos scores {0.9, 0.5}, neg {0.1, 0.5}:
    #   0.9 beats both (2), 0.5 beats 0.1 (1) and ties 0.5 (1/2) -> 3.5 / 4
    # user 1, no exclusion: neg {0.1, 0.5, 0.3}: 3 + (1 + 1/2 + 1) = 5.5 / 6
    # user 2: all tied -> 1/2; user 3: no negatives -> NaN; user 4: no positives -> NaN
    assert_nan_close(auc(scores, rel, exclude), [7 / 8, 11 / 12, 1 / 2, np.nan, np.nan])
    assert_nan_close(auc(scores, rel, exclude, batch_size=2),
                     [7 / 8, 11 / 12, 1 / 2, np.nan, np.nan])
    # excluding the only positive leaves no positives -> NaN
    assert np.isnan(auc(scores[2:3], rel[2:3], csr([{1}], 5)))[0]


def test_auc_infinite_scores():
    scores = np.array([[np.inf, -np.inf, -np.inf, 0.0]])
    rel = csr([{0, 1}], 4)
    # pos {inf, -inf}, neg {-inf, 0}: inf beats 2, -inf ties 1 (1/2) -> 2.5 / 4
    assert auc(scores, rel)[0] == 5 / 8


def test_catalogue_coverage_fixture():
    assert catalogue_coverage(REC, N_ITEMS, 3) == 5 / 6  # items {0,1,2,3,4}
    assert catalogue_coverage(REC, N_ITEMS, 1) == 3 / 6  # items {4,1,0}
    assert catalogue_coverage(np.full((2, 3), -1), N_ITEMS, 3) == 0.0


def test_gini_fixture():
    # k=1 exposure counts: item0 2, item1 1, item4 1, rest 0 -> sorted [0,0,0,1,1,2]
    # G = sum_i (2i-n-1) x_(i) / (n sum x) = (1*1 + 3*1 + 5*2) / (6 * 4) = 14/24
    assert gini_index(REC, N_ITEMS, 1) == pytest.approx(7 / 12, abs=1e-12)
    even = np.array([[0, 1], [2, 3]])
    assert gini_index(even, 4, 2) == 0.0
    concentrated = np.array([[2], [2], [2]])
    assert gini_index(concentrated, 4, 1) == pytest.approx(3 / 4, abs=1e-12)  # (n-1)/n
    assert math.isnan(gini_index(np.full((2, 2), -1), 4, 2))


def test_novelty_fixture():
    pop = np.array([8, 4, 2, 1, 0, 8])  # self-information 0, 1, 2, 3, 3 (clipped), 0
    assert_nan_close(novelty(REC, pop, 8, 3), [(3 + 2 + 1) / 3, (1 + 3) / 2, (0 + 1 + 2) / 3,
                                              (0 + 1 + 2) / 3])
    assert_nan_close(novelty(REC, pop, 8, 1), [3, 1, 0, 0])
    assert_nan_close(novelty(np.array([[-1, -1]]), pop, 8, 2), [np.nan])


def test_intra_list_diversity_categorical_fixture():
    cats = np.array([0, 0, 1, 1, -1, 2])
    # user 0 [4,2,1]: item 4 unknown -> only pair (2,1): 1 != 0 -> 1
    # user 1 [1,3,-1]: pair (1,3) -> 1; users 2, 3 [0,1,2]: (0,1)=0, (0,2)=1, (1,2)=1 -> 2/3
    assert_nan_close(intra_list_diversity(REC, cats, 3), [1, 1, 2 / 3, 2 / 3])
    # k=2: user 0 [4,2] has no usable pair -> NaN
    assert_nan_close(intra_list_diversity(REC, cats, 2), [np.nan, 1, 0, 0])
    assert_nan_close(intra_list_diversity(REC, cats, 1), [np.nan] * 4)


def test_intra_list_diversity_embedding_fixture():
    emb = np.array([[1.0, 0], [0, 1], [1, 1], [-1, 0], [0, 0], [2, 0]])
    r2 = 1 / math.sqrt(2)
    rec = np.array([[0, 1, 2], [1, 3, -1], [4, 2, 1], [0, 3, 5]])
    expected = [
        (1 + (1 - r2) + (1 - r2)) / 3,  # cos(0,1)=0, cos(0,2)=cos(1,2)=1/sqrt2
        1.0,                            # orthogonal
        1 - r2,                         # zero vector 4 skipped
        (2 + 0 + 2) / 3,                # opposite, parallel, opposite
    ]
    assert_nan_close(intra_list_diversity(rec, emb, 3), expected)


def test_summarise():
    out = summarise({"a": np.array([1.0, np.nan, 3.0]), "b": np.array([np.nan]),
                     "c": np.array([])})
    assert out["a"] == 2.0
    assert math.isnan(out["b"]) and math.isnan(out["c"])
    assert list(out) == ["a", "b", "c"]
    assert all(isinstance(v, float) for v in out.values())
    m = summarise(ranking_metrics(REC, REL, ks=(3,)))
    assert m["recall@3"] == pytest.approx((1 + 1 / 3 + 0) / 3)  # user 2 (no relevant) left out


# --------------------------------------------------------------------------
# reference implementation: plain Python, one user at a time
# --------------------------------------------------------------------------
def ref_ranking(rec_rows, rel_sets, k):
    out = {n: [] for n in NAMES}
    for items, rel in zip(rec_rows, rel_sets):
        if not rel:
            for n in NAMES:
                out[n].append(math.nan)
            continue
        top = [i for i in items[:k]]
        h = [1 if (i >= 0 and i in rel) else 0 for i in top]
        n_hits = sum(h)
        out["recall"].append(n_hits / len(rel))
        out["precision"].append(n_hits / k)
        out["hr"].append(1.0 if n_hits else 0.0)
        dcg = sum(1 / math.log2(i + 2) for i, x in enumerate(h) if x)
        idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), k)))
        out["ndcg"].append(dcg / idcg)
        first = next((i for i, x in enumerate(h) if x), None)
        out["mrr"].append(0.0 if first is None else 1 / (first + 1))
        ap, seen = 0.0, 0
        for i, x in enumerate(h):
            if x:
                seen += 1
                ap += seen / (i + 1)
        out["map"].append(ap / min(len(rel), k))
    return out


def ref_auc(scores, rel_sets, excl_sets):
    out = []
    for u, row in enumerate(scores):
        keep = [i for i in range(len(row)) if i not in excl_sets[u]]
        pos = [row[i] for i in keep if i in rel_sets[u]]
        neg = [row[i] for i in keep if i not in rel_sets[u]]
        if not pos or not neg:
            out.append(math.nan)
            continue
        wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
        out.append(wins / (len(pos) * len(neg)))
    return out


def ref_coverage_gini(rec_rows, n_items, k):
    counts = [0] * n_items
    for items in rec_rows:
        for i in items[:k]:
            if i >= 0:
                counts[i] += 1
    coverage = sum(1 for c in counts if c) / n_items
    total = sum(counts)
    if total == 0:
        return coverage, math.nan
    mean = total / n_items
    # Gini as the relative mean absolute difference
    mad = sum(abs(a - b) for a in counts for b in counts)
    return coverage, mad / (2 * n_items * n_items * mean)


def ref_novelty(rec_rows, pop, n_users, k):
    out = []
    for items in rec_rows:
        vals = [-math.log2(max(pop[i], 1) / n_users) for i in items[:k] if i >= 0]
        out.append(sum(vals) / len(vals) if vals else math.nan)
    return out


def ref_ild(rec_rows, feats, k):
    out = []
    for items in rec_rows:
        top = [i for i in items[:k] if i >= 0]
        dists = []
        for a in range(len(top)):
            for b in range(a + 1, len(top)):
                i, j = top[a], top[b]
                if feats.ndim == 1:
                    if feats[i] < 0 or feats[j] < 0:
                        continue
                    dists.append(1.0 if feats[i] != feats[j] else 0.0)
                else:
                    ni, nj = math.sqrt(sum(x * x for x in feats[i])), math.sqrt(
                        sum(x * x for x in feats[j]))
                    if ni == 0 or nj == 0:
                        continue
                    cos = sum(x * y for x, y in zip(feats[i], feats[j])) / (ni * nj)
                    dists.append(1 - max(-1.0, min(1.0, cos)))
        out.append(sum(dists) / len(dists) if dists else math.nan)
    return out


# --------------------------------------------------------------------------
# random inputs
# --------------------------------------------------------------------------
@st.composite
def problems(draw, max_users=8, max_items=15, max_k=8):
    """Random (rec, rec_rows, rel, rel_sets, n_items, K): unique items per list, -1 padding."""
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(1, max_items))
    K = draw(st.integers(1, max_k))
    item = st.integers(0, n_items - 1)
    rec_rows, rel_sets = [], []
    for _ in range(n_users):
        items = draw(st.lists(item, unique=True, max_size=min(K, n_items)))
        rec_rows.append(items + [-1] * (K - len(items)))
        rel_sets.append(set(draw(st.sets(item))))
    rec = np.array(rec_rows, dtype=np.int64).reshape(n_users, K)
    return rec, rec_rows, csr(rel_sets, n_items), rel_sets, n_items, K


@FAST
@given(problems())
def test_hits_match_reference(p):
    rec, rec_rows, rel, rel_sets, n_items, K = p
    expected = [[i >= 0 and i in rel_sets[u] for i in row] for u, row in enumerate(rec_rows)]
    np.testing.assert_array_equal(hits(rec, rel), np.array(expected, dtype=bool).reshape(rec.shape))


@FAST
@given(problems())
def test_ranking_metrics_match_reference(p):
    rec, rec_rows, rel, rel_sets, n_items, K = p
    ks = tuple(range(1, K + 1))
    got = ranking_metrics(rec, rel, ks=ks)
    for k in ks:
        ref = ref_ranking(rec_rows, rel_sets, k)
        for n in NAMES:
            assert_nan_close(got[f"{n}@{k}"], ref[n], tol=1e-12)


@FAST
@given(problems(), st.data())
def test_beyond_accuracy_match_reference(p, data):
    rec, rec_rows, rel, rel_sets, n_items, K = p
    k = data.draw(st.integers(1, K))
    cov, gini = ref_coverage_gini(rec_rows, n_items, k)
    assert catalogue_coverage(rec, n_items, k) == pytest.approx(cov, abs=1e-12)
    g = gini_index(rec, n_items, k)
    assert (math.isnan(g) and math.isnan(gini)) or g == pytest.approx(gini, abs=1e-12)

    pop = data.draw(st.lists(st.integers(0, 20), min_size=n_items, max_size=n_items))
    n_train = max(pop + [1])
    assert_nan_close(novelty(rec, np.array(pop), n_train, k), ref_novelty(rec_rows, pop, n_train, k))

    cats = np.array(data.draw(st.lists(st.integers(-1, 3), min_size=n_items, max_size=n_items)))
    assert_nan_close(intra_list_diversity(rec, cats, k), ref_ild(rec_rows, cats, k))
    emb = np.array(data.draw(st.lists(
        st.lists(st.integers(-2, 2), min_size=3, max_size=3), min_size=n_items, max_size=n_items)),
        dtype=float)
    assert_nan_close(intra_list_diversity(rec, emb, k), ref_ild(rec_rows, emb, k), tol=1e-9)


@FAST
@given(problems(), st.data())
def test_auc_matches_reference(p, data):
    _, _, rel, rel_sets, n_items, _ = p
    n_users = rel.shape[0]
    # few distinct values (plenty of ties), some infinities
    values = st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 1.0, np.inf])
    scores = np.array(data.draw(st.lists(st.lists(values, min_size=n_items, max_size=n_items),
                                         min_size=n_users, max_size=n_users)))
    excl_sets = [data.draw(st.sets(st.integers(0, n_items - 1))) for _ in range(n_users)]
    batch = data.draw(st.integers(1, 4))
    got = auc(scores, rel, csr(excl_sets, n_items), batch_size=batch)
    assert_nan_close(got, ref_auc(scores, rel_sets, excl_sets))
    assert_nan_close(auc(scores, rel), ref_auc(scores, rel_sets, [set()] * n_users))


# --------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------
@FAST
@given(problems())
def test_bounds_monotonicity_and_identities(p):
    rec, rec_rows, rel, rel_sets, n_items, K = p
    ks = tuple(range(1, K + 1))
    m = ranking_metrics(rec, rel, ks=ks)
    n_rel = np.array([len(s) for s in rel_sets], dtype=float)
    no_rel = n_rel == 0
    for key, v in m.items():
        assert v.dtype == np.float64 and v.shape == (rec.shape[0],)
        assert np.isnan(v[no_rel]).all(), key
        assert ((v[~no_rel] >= 0) & (v[~no_rel] <= 1 + 1e-12)).all(), key
    for k in ks[1:]:
        for n in ("recall", "hr"):
            assert (m[f"{n}@{k}"][~no_rel] >= m[f"{n}@{k - 1}"][~no_rel]).all()
    for k in ks:
        np.testing.assert_allclose(m[f"precision@{k}"][~no_rel] * k,
                                   m[f"recall@{k}"][~no_rel] * n_rel[~no_rel], atol=1e-12)
        assert (m[f"mrr@{k}"][~no_rel] <= m[f"hr@{k}"][~no_rel]).all()
    for k in ks:
        assert 0 <= catalogue_coverage(rec, n_items, k) <= 1
        g = gini_index(rec, n_items, k)
        assert math.isnan(g) or 0 <= g <= 1
    cats = np.arange(n_items) % 3
    d = intra_list_diversity(rec, cats, K)
    assert ((d[~np.isnan(d)] >= 0) & (d[~np.isnan(d)] <= 1)).all()


@FAST
@given(problems())
def test_ndcg_is_one_for_ideal_lists(p):
    _, _, rel, rel_sets, n_items, K = p
    rows = []
    for s in rel_sets:  # relevant items first, then the others
        order = sorted(s) + [i for i in range(n_items) if i not in s]
        rows.append((order + [-1] * K)[:K])
    rec = np.array(rows, dtype=np.int64)
    m = ranking_metrics(rec, rel, ks=tuple(range(1, K + 1)))
    has = np.array([bool(s) for s in rel_sets])
    for k in range(1, K + 1):
        np.testing.assert_allclose(m[f"ndcg@{k}"][has], 1.0, atol=1e-12)
        np.testing.assert_allclose(m[f"map@{k}"][has], 1.0, atol=1e-12)
        np.testing.assert_allclose(m[f"mrr@{k}"][has], 1.0, atol=1e-12)


@FAST
@given(problems(), st.randoms(use_true_random=False))
def test_permuting_users_permutes_results(p, rnd):
    rec, _, rel, _, n_items, K = p
    perm = np.arange(rec.shape[0])
    rnd.shuffle(perm)
    ks = (1, K)
    base = ranking_metrics(rec, rel, ks=ks)
    permuted = ranking_metrics(rec[perm], rel[perm], ks=ks)
    for key in base:
        assert_nan_close(permuted[key], base[key][perm])
    np.testing.assert_array_equal(hits(rec[perm], rel[perm]), hits(rec, rel)[perm])
    pop = np.arange(n_items)
    assert_nan_close(novelty(rec[perm], pop, n_items + 1, K), novelty(rec, pop, n_items + 1, K)[perm])
    cats = np.arange(n_items) % 2
    assert_nan_close(intra_list_diversity(rec[perm], cats, K),
                     intra_list_diversity(rec, cats, K)[perm])
    assert catalogue_coverage(rec[perm], n_items, K) == catalogue_coverage(rec, n_items, K)
    scores = np.add.outer(np.arange(rec.shape[0]), np.arange(n_items) % 4).astype(float)
    assert_nan_close(auc(scores[perm], rel[perm]), auc(scores, rel)[perm])


@FAST
@given(problems(), st.integers(1, 4))
def test_padding_equals_shorter_list(p, extra):
    rec, _, rel, _, n_items, K = p
    padded = np.hstack([rec, np.full((rec.shape[0], extra), -1)])
    ks = tuple(range(1, K + 1))
    a, b = ranking_metrics(rec, rel, ks=ks), ranking_metrics(padded, rel, ks=ks)
    for key in a:
        assert_nan_close(b[key], a[key])
    # a padded tail adds misses: hits stay, precision@(K+e) = hits / (K+e)
    full = ranking_metrics(padded, rel, ks=(K + extra,))
    assert_nan_close(full[f"recall@{K + extra}"], a[f"recall@{K}"])
    assert_nan_close(full[f"precision@{K + extra}"], a[f"precision@{K}"] * K / (K + extra))
    kp = K + extra
    assert catalogue_coverage(padded, n_items, kp) == catalogue_coverage(rec, n_items, K)
    g1, g2 = gini_index(padded, n_items, kp), gini_index(rec, n_items, K)
    assert (math.isnan(g1) and math.isnan(g2)) or g1 == g2
    pop = np.arange(n_items) + 1
    assert_nan_close(novelty(padded, pop, n_items, kp), novelty(rec, pop, n_items, K))
    cats = np.arange(n_items) % 3
    assert_nan_close(intra_list_diversity(padded, cats, kp), intra_list_diversity(rec, cats, K))


@FAST
@given(problems())
def test_auc_perfect_reversed_constant(p):
    _, _, rel, rel_sets, n_items, _ = p
    dense = rel.toarray() != 0
    n_pos = dense.sum(axis=1)
    defined = (n_pos > 0) & (n_pos < n_items)
    noise = np.random.default_rng(0).random(dense.shape) * 0.5
    perfect = dense + noise  # every positive above every negative
    np.testing.assert_allclose(auc(perfect, rel)[defined], 1.0)
    np.testing.assert_allclose(auc(-perfect, rel)[defined], 0.0)
    np.testing.assert_allclose(auc(np.full(dense.shape, 3.0), rel)[defined], 0.5)
    assert np.isnan(auc(perfect, rel)[~defined]).all()
