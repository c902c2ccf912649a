"""Matrix factorisation through `implicit`: ALS (Hu, Koren & Volinsky 2008) and BPR (Rendle 2009)."""

from __future__ import annotations

from typing import Any, Literal, Mapping

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from threadpoolctl import threadpool_limits

from .. import progress
from ..data import ShopData
from .base import Queries, Strategy, StrategyConfig, register


class ALSConfig(StrategyConfig):
    factors: int = Field(default=256, ge=1)
    regularization: float = Field(default=1.0, ge=0)
    alpha: float = Field(default=20.0, gt=0, description="Confidence = 1 + alpha · weight.")
    iterations: int = Field(default=15, ge=1)
    seed: int = 42
    num_threads: int = Field(default=0, ge=0, description="0 = all cores.")
    candidate_index: Literal["exact", "hnsw"] = Field(
        default="exact",
        description="Serving: how the scenario pipeline finds each request's candidates. exact = the exact "
                    "top inner products by a scan of the items in decreasing norm that stops when no later "
                    "item can enter (pruned_mips); hnsw = an HNSW graph over the item factors "
                    "(hnswlib, inner product; built at fit and saved with the model), which reads a few "
                    "thousand items instead of all. Evaluation (`recommend`) stays exact.")
    factor_dtype: Literal["float32", "float16"] = Field(
        default="float32",
        description="How the factors are kept once fitted: float16 halves their memory (serving reads "
                    "them in blocks, in float32 arithmetic); the fit measures how often float16 keeps "
                    "the float32 top 10 (`quantisation_agreement_`, sampled users).")
    hnsw_m: int = Field(default=16, ge=4, description="HNSW: links per node.")
    hnsw_ef: int = Field(default=200, ge=10, description="HNSW: candidate list size at query time (≥ 2k).")


class BPRConfig(StrategyConfig):
    binary: bool = True
    factors: int = Field(default=128, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    regularization: float = Field(default=0.001, ge=0)
    iterations: int = Field(default=100, ge=1)
    seed: int = 42
    num_threads: int = Field(default=0, ge=0, description="0 = all cores. Training is lock-free parallel "
                             "SGD, so results are bit-reproducible only with 1 thread.")


def factor_anchor(history: sp.csr_matrix, item_factors: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
    """Per query and recommended item, the history item whose factor is closest to the item's
    (``argmax_i h(q, i) · v_i·v_j``, positive only): what "because you showed interest in …" points
    to for a factor model. -1 where none is positive or the item has no factor."""
    item_idx = np.asarray(item_idx)
    n, k = item_idx.shape
    out = np.full((n, k), -1, dtype=np.int32)
    h = sp.csr_matrix(history)
    m = len(item_factors)
    if not h.nnz or not k:
        return out
    # per chunk of queries, their histories padded to one length: contributions (queries, L, k) by
    # one batched product, argmax over the history axis (ties: the first, as argmax)
    lens = np.diff(h.indptr).astype(np.int64)
    step = max(1, 1_000_000 // (int(lens.max()) * k))
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        ln = lens[lo:hi]
        if not ln.any():
            continue
        width = int(ln.max())
        rr = np.repeat(np.arange(hi - lo), ln)
        pos = np.arange(h.indptr[lo], h.indptr[hi]) - np.repeat(h.indptr[lo:hi], ln)
        hist = np.zeros((hi - lo, width), np.int64)
        weight = np.zeros((hi - lo, width), np.float32)
        hist[rr, pos] = h.indices[h.indptr[lo]:h.indptr[hi]]
        weight[rr, pos] = h.data[h.indptr[lo]:h.indptr[hi]]
        items = item_idx[lo:hi]
        ok = (items >= 0) & (items < m)
        contrib = np.matmul(_f32(item_factors[hist]), _f32(item_factors[np.where(ok, items, 0)]).transpose(0, 2, 1))
        contrib *= weight[:, :, None]
        contrib[np.arange(width)[None, :] >= ln[:, None]] = -np.inf
        best = contrib.argmax(axis=1)
        value = np.take_along_axis(contrib, best[:, None, :], axis=1)[:, 0, :]
        good = ok & (value > 0)
        out[lo:hi][good] = np.take_along_axis(hist, best, axis=1)[good]
    return out


def als_fold_in(history: sp.csr_matrix, item_factors: np.ndarray, yty: np.ndarray, alpha: float,
                regularization: float) -> np.ndarray:
    """One exact ALS least-squares step per row of ``history`` against fixed item factors, what
    ``implicit``'s ``recalculate_user`` computes (confidence ``c = alpha · weight``;
    ``(YᵀY + λI + Σ (c − 1) y yᵀ) x = Σ c y``), batched in NumPy: ``yty`` (YᵀY, float64) is
    computed once by the caller instead of per call (at a million items that product alone is
    4 GFLOP), and only the history's own factors are read, so float16 factors work as they are."""
    h = sp.csr_matrix(history)
    n, f = h.shape[0], item_factors.shape[1]
    out = np.zeros((n, f), np.float32)
    lens = np.diff(h.indptr).astype(np.int64)
    rows = np.flatnonzero(lens > 0)
    if not len(rows):
        return out
    base = yty + regularization * np.eye(f)
    # chunks of rows padded to their longest history, at most ~1M factor entries each
    order = rows[np.argsort(lens[rows], kind="stable")]
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and (stop - start + 1) * int(lens[order[stop]]) * f <= 1_000_000:
            stop += 1
        chunk = order[start:stop]
        L = int(lens[chunk].max())
        pos = np.arange(L)[None, :]
        valid = pos < lens[chunk][:, None]
        at = np.where(valid, h.indptr[chunk][:, None] + pos, 0)
        items = h.indices[at]
        c = np.where(valid, alpha * h.data[at].astype(np.float64), 0.0)
        Y = item_factors[items].astype(np.float64) * valid[:, :, None]          # (m, L, f)
        W = (np.abs(c) - 1.0)[:, :, None] * Y
        A = base[None] + np.matmul(W.transpose(0, 2, 1), Y)
        b = np.einsum("ml,mlf->mf", np.where(c > 0, c, 0.0), Y)
        out[chunk] = np.linalg.solve(A, b[:, :, None])[:, :, 0]
        start = stop
    return out


def _changed_rows(queries: Queries) -> np.ndarray:
    """Queries whose user is unknown or who bring items the model has not seen."""
    return (queries.user_idx < 0) | (queries.items.lengths > 0) | (queries.basket.lengths > 0)


@register
class ALSStrategy(Strategy):
    """Implicit-feedback ALS. Unknown users and sessions with new items are folded in exactly
    (one least-squares solve against the fixed item factors)."""

    name = "als"
    Config = ALSConfig

    def _fit(self, data: ShopData) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        cfg = self.config
        with threadpool_limits(1, "blas"):  # implicit parallelises itself; BLAS threads slow it down
            model = AlternatingLeastSquares(
                factors=cfg.factors, regularization=cfg.regularization, alpha=cfg.alpha,
                iterations=cfg.iterations, random_state=cfg.seed, num_threads=cfg.num_threads)
            with progress.step("als: alternating least squares", total=cfg.iterations, unit="iteration") as p:
                model.fit(self.user_items_, show_progress=False, callback=lambda *_: p.advance())
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        if cfg.candidate_index == "hnsw":
            self._hnsw_index_ = _build_hnsw(self.item_factors_, cfg)
        if cfg.factor_dtype == "float16":
            self.quantisation_agreement_ = _float16_agreement(self.user_factors_, self.item_factors_, seed=cfg.seed)
            self.user_factors_ = self.user_factors_.astype(np.float16)
            self.item_factors_ = self.item_factors_.astype(np.float16)

    def _user_vectors(self, queries: Queries) -> np.ndarray:
        known = np.maximum(queries.user_idx, 0)
        vecs = self.user_factors_[known].astype(np.float32)
        fold = _changed_rows(queries)
        if fold.any():
            vecs[fold] = self._fold_in(self.history(queries.take(np.flatnonzero(fold))))
        return vecs

    def _fold_in(self, hist: sp.csr_matrix) -> np.ndarray:
        """One exact ALS least-squares step per row against the fixed item factors (als_fold_in)."""
        got = getattr(self, "_yty_", None)
        if got is None or got[0] is not self.item_factors_:
            f = self.item_factors_.astype(np.float64)
            got = self._yty_ = (self.item_factors_, f.T @ f)
        return als_fold_in(hist, self.item_factors_, got[1], self.config.alpha, self.config.regularization)

    def _score(self, queries: Queries) -> np.ndarray:
        return self._user_vectors(queries).astype(np.float32) @ _f32(self.item_factors_).T

    def top_anchor(self, queries: Queries, item_idx: np.ndarray) -> np.ndarray:
        """The history item whose factor is closest to each recommended item's (see factor_anchor)."""
        return factor_anchor(self.history(queries), self.item_factors_, item_idx)

    # ------------------------------------------------------------------ serving
    def candidates(self, queries: Queries, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """With ``candidate_index = "hnsw"``: the approximate top inner products from the HNSW graph,
        the first ``k`` allowed of them; requests the graph cannot fill (heavy filters) take the
        exact path."""
        if k >= self.n_items_:
            return super().candidates(queries, k, allowed)
        if self.config.candidate_index != "hnsw":
            return pruned_mips(self._user_vectors(queries.within(self.n_items_)).astype(np.float32),
                               self.item_factors_, self._norm_order(), k, allowed)
        index = self._hnsw()
        vecs = self._user_vectors(queries).astype(np.float32)
        want = min(self.n_items_, 2 * k + 32)
        index.set_ef(max(self.config.hnsw_ef, want))
        labels, dist = index.knn_query(vecs, k=want, num_threads=1)
        labels = labels.astype(np.int64)
        scores = (1.0 - dist).astype(np.float32)    # hnswlib's "ip" distance is 1 − dot
        ok = np.take_along_axis(allowed, labels, axis=1)
        n = len(queries)
        idx = np.full((n, k), -1, np.int32)
        val = np.full((n, k), -np.inf, np.float32)
        enough = ok.sum(axis=1) >= k
        if enough.any():
            rows = np.flatnonzero(enough)
            first = np.argsort(~ok[rows], axis=1, kind="stable")[:, :k]
            lab = np.take_along_axis(labels[rows], first, axis=1)
            sc = np.take_along_axis(scores[rows], first, axis=1)
            order = np.lexsort((lab, -sc), axis=1)
            idx[rows] = np.take_along_axis(lab, order, axis=1)
            val[rows] = np.take_along_axis(sc, order, axis=1)
        if not enough.all():
            rows = np.flatnonzero(~enough)
            idx[rows], val[rows] = super().candidates(queries.take(rows), k, allowed[rows])
        return idx, val

    def _norm_order(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The items by decreasing factor norm: (order, norms in that order, the float32 factors of
        the first ``32768 + n / 8`` of them in that order — the head nearly every request's scan
        stays in, contiguous: gathering rows costs as much as scoring them), for
        :func:`pruned_mips`; cached."""
        got = getattr(self, "_norm_order_", None)
        if got is None or len(got[0]) != self.item_factors_.shape[0]:
            f = self.item_factors_
            norms = np.sqrt(np.einsum("ij,ij->i", f, f, dtype=np.float32))
            order = np.argsort(-norms, kind="stable").astype(np.int64)
            head = np.ascontiguousarray(f[order[:32768 + len(order) // 8]], dtype=np.float32)
            got = self._norm_order_ = (order, norms[order], head)
        return got

    def _hnsw(self):
        index = getattr(self, "_hnsw_index_", None)
        if index is None:
            index = self._hnsw_index_ = _build_hnsw(self.item_factors_, self.config)
        return index

    def _state(self) -> dict[str, Any]:
        state = {"user_factors_": self.user_factors_, "item_factors_": self.item_factors_}
        if self.config.candidate_index == "hnsw":
            state["hnsw_"] = _hnsw_bytes(self._hnsw())
        if getattr(self, "quantisation_agreement_", None) is not None:
            state["quantisation_agreement_"] = np.float64(self.quantisation_agreement_)
        return state

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.user_factors_ = state["user_factors_"]
        self.item_factors_ = state["item_factors_"]
        if "hnsw_" in state:
            self._hnsw_index_ = _hnsw_from_bytes(np.asarray(state["hnsw_"]), self.item_factors_.shape)
        if "quantisation_agreement_" in state:
            self.quantisation_agreement_ = float(state["quantisation_agreement_"])


def _f32(x: np.ndarray) -> np.ndarray:
    return x if x.dtype == np.float32 else x.astype(np.float32)


def _float16_agreement(user_f: np.ndarray, item_f: np.ndarray, k: int = 10, users: int = 2000,
                       seed: int = 0) -> float:
    """Mean overlap of each sampled user's top ``k`` by float32 factors and by the float16-rounded
    ones (the scores of float16 factors, computed in float32)."""
    from .topk import topk

    rng = np.random.default_rng(seed)
    u = rng.choice(len(user_f), min(users, len(user_f)), replace=False)
    a = topk(user_f[u] @ item_f.T, k)[0]
    b = topk(user_f[u].astype(np.float16).astype(np.float32) @ item_f.astype(np.float16).astype(np.float32).T, k)[0]
    return float(np.mean([len(np.intersect1d(x, y)) / k for x, y in zip(a, b)]))


def _hnswlib():
    try:
        import hnswlib
    except ImportError:
        from ..exceptions import ConfigError

        raise ConfigError('candidate_index = "hnsw" needs hnswlib: pip install "shoprec[ann]"') from None
    return hnswlib


def pruned_mips(vecs: np.ndarray, factors: np.ndarray, by_norm: tuple[np.ndarray, np.ndarray],
                k: int, allowed: np.ndarray, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The exact top-``k`` inner products ``vecs @ factors.T`` among ``allowed``, as ``topk`` of the
    dense scores gives them (ties to the lower item index), without scoring every item: items are
    scanned in blocks of decreasing norm and a request stops once ``‖q‖ · ‖x‖`` (Cauchy–Schwarz:
    no item further down can score more) falls below its k-th best so far. On the serving
    benchmark's shop (100k items, 64 factors) a top 132 needed the first 12 % of the items by norm
    (median request), so a batch costs an eighth of the dense product. ``by_norm`` is (the item
    order by decreasing norm, the norms in that order[, a float32 copy of the first items'
    factors in that order]); blocks beyond that head are gathered from ``factors`` (float32 or
    float16) as they are scanned, so only the part most requests read is kept sorted."""
    from ._kernels import merge_block

    order, norms, *rest = by_norm
    head = rest[0] if rest else np.zeros((0, factors.shape[1]), np.float32)
    vecs = np.asarray(vecs, dtype=np.float32)
    n, m = len(vecs), len(order)
    k_eff = min(k, m)
    qn = np.linalg.norm(vecs, axis=1)
    best_i = np.full((n, k_eff), -1, np.int64)
    best_v = np.full((n, k_eff), -np.inf, np.float32)
    fill = np.zeros(n, np.int64)
    allowed = np.ascontiguousarray(allowed, dtype=np.bool_)
    live = np.flatnonzero(qn > 0)
    for r in np.flatnonzero(qn == 0):   # every score 0: the lowest allowed indices, as topk gives them
        got = np.flatnonzero(allowed[r, :m])[:k_eff]
        best_i[r, :len(got)], best_v[r, :len(got)] = got, 0.0
    for start in range(0, m if len(live) else 0, block):
        stop = min(m, start + block)
        block_f = head[start:stop] if stop <= len(head) else factors[order[start:stop]].astype(np.float32, copy=False)
        merge_block(vecs[live] @ block_f.T, live, order[start:stop], allowed, best_i, best_v, fill)
        if stop >= m:
            break
        # a request is done when it holds k items and no later item can beat (or tie) its k-th best
        kth = best_v[live, 0]             # the heaps' roots
        done = (fill[live] == k_eff) & (qn[live] * norms[stop] < kth)
        live = live[~done]
        if not len(live):
            break
    o = np.lexsort((best_i, -best_v), axis=1)
    bi, bv = np.take_along_axis(best_i, o, axis=1), np.take_along_axis(best_v, o, axis=1)
    ok = np.isfinite(bv) & (bi >= 0)
    idx = np.full((n, k), -1, np.int32)
    val = np.full((n, k), -np.inf, np.float32)
    idx[:, :k_eff] = np.where(ok, bi, -1)
    val[:, :k_eff] = np.where(ok, bv, -np.inf)
    return idx, val


def _build_hnsw(factors: np.ndarray, cfg: ALSConfig):
    """An HNSW graph (inner product) over the item factors, built with the fit's seed."""
    hnswlib = _hnswlib()
    n, dim = factors.shape
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, ef_construction=max(100, cfg.hnsw_ef), M=cfg.hnsw_m, random_seed=cfg.seed)
    index.add_items(np.ascontiguousarray(factors, dtype=np.float32), np.arange(n), num_threads=max(cfg.num_threads, 0) or -1)
    return index


def _hnsw_bytes(index) -> np.ndarray:
    """The graph as bytes (hnswlib's own file format, not a pickle)."""
    import os
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".hnsw")
    os.close(fd)
    try:
        index.save_index(path)
        return np.fromfile(path, dtype=np.uint8)
    finally:
        os.unlink(path)


def _hnsw_from_bytes(data: np.ndarray, shape: tuple[int, int]):
    import os
    import tempfile

    hnswlib = _hnswlib()
    fd, path = tempfile.mkstemp(suffix=".hnsw")
    os.close(fd)
    try:
        data.astype(np.uint8).tofile(path)
        index = hnswlib.Index(space="ip", dim=shape[1])
        index.load_index(path, max_elements=shape[0])
        return index
    finally:
        os.unlink(path)


@register
class BPRStrategy(Strategy):
    """Bayesian personalised ranking. Unknown users are represented by the mean factor of their
    history items (BPR has no exact fold-in)."""

    name = "bpr"
    Config = BPRConfig

    def _fit(self, data: ShopData) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking
        cfg = self.config
        model = BayesianPersonalizedRanking(
            factors=cfg.factors, learning_rate=cfg.learning_rate, regularization=cfg.regularization,
            iterations=cfg.iterations, random_state=cfg.seed, num_threads=cfg.num_threads)
        with threadpool_limits(1, "blas"), \
                progress.step("bpr: stochastic gradient epochs", total=cfg.iterations, unit="epoch") as p:
            model.fit(self.user_items_, show_progress=False, callback=lambda *_: p.advance())
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)

    def _score(self, queries: Queries) -> np.ndarray:
        vecs = self.user_factors_[np.maximum(queries.user_idx, 0)].copy()
        fold = _changed_rows(queries)
        if fold.any():
            hist = self.history(queries.take(np.flatnonzero(fold)))
            hist.data[:] = 1.0
            counts = np.maximum(np.asarray(hist.sum(axis=1)).ravel(), 1.0)
            mean_items = (hist @ self.item_factors_) / counts[:, None]
            # implicit's BPR keeps the item bias in the last factor; the user side of it is 1
            mean_items[:, -1] = 1.0
            vecs[fold] = mean_items
        return vecs @ self.item_factors_.T

    def _state(self) -> dict[str, Any]:
        return {"user_factors_": self.user_factors_, "item_factors_": self.item_factors_}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.user_factors_ = state["user_factors_"]
        self.item_factors_ = state["item_factors_"]
