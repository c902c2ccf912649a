"""Item-kNN: cosine, BM25 and behaviour-weighted co-visitation, with a sparse top-k neighbourhood."""

from __future__ import annotations

from typing import Any, Literal, Mapping

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from .. import progress
from ..data import ShopData
from ._live import LiveCooccurrence
from ._parallel import by_row_chunks, map_in_threads
from .base import LiveEvents, Queries, Strategy, StrategyConfig, register
from ._kernels import product_anchor, product_topk, row_floor
from .topk import sparse_topk


class ItemKNNConfig(StrategyConfig):
    similarity: Literal["cosine", "bm25", "covisit"] = Field(
        default="cosine",
        description="cosine: over users; bm25: BM25-weighted dot product over users; covisit: "
                    "behaviour-weighted co-occurrence within sessions (users when there are no sessions).")
    neighbours: int = Field(default=200, ge=1, description="Neighbours kept per item.")
    shrink: float = Field(default=10.0, ge=0,
                          description="Added to the similarity denominator (cosine, covisit; not bm25).")
    alpha: float = Field(default=0.5, ge=0, le=1,
                         description="Normalisation asymmetry: ||i||^(2·alpha)·||j||^(2·(1-alpha)); 0.5 = cosine.")
    bm25_k1: float = Field(default=1.2, gt=0)
    bm25_b: float = Field(default=0.75, ge=0, le=1)
    block_size: int = Field(default=1024, ge=1, description="Items per block when computing similarities.")
    candidate_fanout: int | None = Field(
        default=None, ge=1,
        description="Serving: the scenario pipeline's candidates sum, per history item, only its "
                    "`candidate_fanout` most similar items (the item-to-item lookup of production systems) "
                    "instead of the full product, whose rows are nearly dense on large catalogues (a "
                    "popular item neighbours most others). Evaluation (`recommend`) stays exact; None = "
                    "exact candidates too.")


def bm25_weight(x: sp.csr_matrix, k1: float, b: float) -> sp.csr_matrix:
    """BM25-weight a users×items matrix, items as documents and users as terms (as implicit does)."""
    docs = sp.csr_matrix(x.T, dtype=np.float32)  # items × users
    n_docs = docs.shape[0]
    df = np.bincount(docs.indices, minlength=docs.shape[1])
    idf = np.log(n_docs) - np.log1p(df)
    length = np.asarray(docs.sum(axis=1)).ravel()
    norm = (1.0 - b) + b * length / max(length.mean(), 1e-12)
    rows = np.repeat(np.arange(n_docs), np.diff(docs.indptr))
    docs.data = (docs.data * (k1 + 1.0) / (k1 * norm[rows] + docs.data) * idf[docs.indices]).astype(np.float32)
    return sp.csr_matrix(docs.T)


def sparse_topk_rows(m: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices, column indices and values of the ``k`` largest positive entries of each row of
    a sparse matrix, ties to the lower column (one lexsort over the stored entries when most entries
    are zero; the shared dense top-k kernel when rows are nearly dense, as similarity blocks of
    popular items are: the same answer, without sorting millions of entries)."""
    if m.nnz > 0.02 * m.shape[0] * m.shape[1]:
        idx, val = sparse_topk(m, k)
        r, c = np.nonzero(idx >= 0)
        return r, idx[r, c], val[r, c].astype(m.dtype, copy=False)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    cols, vals = m.indices, m.data
    pos = vals > 0
    rows, cols, vals = rows[pos], cols[pos], vals[pos]
    order = np.lexsort((cols, -vals, rows))  # by row, best first, lower index on ties
    rows, cols, vals = rows[order], cols[order], vals[order]
    first = np.searchsorted(rows, np.arange(m.shape[0]))
    rank = np.arange(len(rows)) - first[rows]
    keep = rank < k
    return rows[keep], cols[keep], vals[keep]


def neighbourhood_anchor(history: sp.csr_matrix, by_target: sp.csr_matrix | list[sp.csr_matrix],
                         item_idx: np.ndarray) -> np.ndarray:
    """Per query and recommended item (``item_idx`` (n, k), -1 padded), the history item ``i`` with
    the largest ``history(q, i) · sim(i, item)``; -1 when every contribution is 0 or the item is not
    covered. ``by_target`` holds the similarities by target item: row ``j`` lists the items ``i``
    and ``sim(i, j)`` (the transpose of a neighbourhood matrix; a symmetric one as it is; a list of
    such matrices adds up). Vectorised over the whole batch."""
    item_idx = np.asarray(item_idx)
    n, k = item_idx.shape
    out = np.full((n, k), -1, dtype=np.int32)
    parts = by_target if isinstance(by_target, list) else [by_target]
    m = parts[0].shape[0]
    h = sp.csr_matrix(history)
    if not h.nnz:
        return out
    flat = item_idx.ravel().astype(np.int64)
    req = np.repeat(np.arange(n, dtype=np.int64), k)
    ok = np.flatnonzero((flat >= 0) & (flat < m))
    if not len(ok):
        return out
    g = parts[0][flat[ok]]
    for extra in parts[1:]:
        g = g + extra[flat[ok]]
    g = sp.csr_matrix(g)
    a = np.repeat(np.arange(len(ok)), np.diff(g.indptr))
    src = g.indices.astype(np.int64)
    width = max(h.shape[1], m)
    need = req[ok][a] * width + src
    hr = np.repeat(np.arange(n, dtype=np.int64), np.diff(h.indptr))
    have = hr * width + h.indices          # sorted: CSR rows in order, indices sorted within rows
    h_sorted = h.has_sorted_indices
    if not h_sorted:
        order = np.argsort(have, kind="stable")
        have, hdata = have[order], h.data[order]
    else:
        hdata = h.data
    pos = np.clip(np.searchsorted(have, need), 0, max(len(have) - 1, 0))
    hit = have[pos] == need
    contrib = np.where(hit, hdata[pos] * g.data, 0.0)
    good = contrib > 0
    if not good.any():
        return out
    a, src, contrib = a[good], src[good], contrib[good]
    order = np.lexsort((src, -contrib, a))      # per recommended item: largest contribution first
    a, src = a[order], src[order]
    first = np.ones(len(a), dtype=bool)
    first[1:] = a[1:] != a[:-1]
    flat_out = out.ravel()
    flat_out[ok[a[first]]] = src[first]
    return flat_out.reshape(n, k)


@register
class ItemKNNStrategy(Strategy):
    """Item-based collaborative filtering: ``score(u, j) = Σ_i history(u, i) · sim(i, j)``.

    The similarity matrix keeps, for every item ``j``, its ``neighbours`` most similar items, computed
    block by block (``block_size`` columns at a time) so memory stays at ``n_items × block_size``.
    """

    name = "item_knn"
    Config = ItemKNNConfig

    def _fit(self, data: ShopData) -> None:
        cfg = self.config
        if cfg.similarity == "covisit" and data.has_sessions:
            ev = data.events[data.events["session_idx"] >= 0]
            w = data.behaviour_weights(cfg.weights())[ev.index.to_numpy()]
            keep = w > 0
            x = sp.csr_matrix((w[keep], (ev["session_idx"].to_numpy()[keep], ev["item_idx"].to_numpy()[keep])),
                              shape=(len(data.sessions), data.n_items), dtype=np.float32)
            x.sum_duplicates()
        else:
            x = self.user_items_.copy()
        if cfg.binary:
            x.data[:] = 1.0
        if cfg.similarity == "bm25":
            x = bm25_weight(x, cfg.bm25_k1, cfg.bm25_b)
        self.similarity_ = self._similarity(sp.csr_matrix(x, dtype=np.float32))
        self._prepare_serving()

    def _prepare_serving(self) -> None:
        """The serving structures, built once (not on a first request): with ``candidate_fanout``,
        each item's closest items."""
        if self.config.candidate_fanout is not None:
            self._fanout(self.config.candidate_fanout)

    def _similarity(self, x: sp.csr_matrix) -> sp.csr_matrix:
        cfg = self.config
        n_items = x.shape[1]
        xt = sp.csr_matrix(x.T)  # items × users
        sq = np.asarray(x.multiply(x).sum(axis=0)).ravel().astype(np.float32)
        self.norms_ = np.sqrt(sq)
        normalise = cfg.similarity != "bm25"
        left = np.power(sq, cfg.alpha).astype(np.float32)
        right = np.power(sq, 1.0 - cfg.alpha).astype(np.float32)

        def block(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            stop = min(n_items, start + cfg.block_size)
            # row j of the block holds the dot products of target item start+j with every item i
            b = sp.csr_matrix(xt[start:stop] @ x)
            brow = np.repeat(np.arange(stop - start), np.diff(b.indptr))
            b.data[b.indices == brow + start] = 0.0  # no self-similarity
            if normalise:
                b.data /= left[b.indices] * right[start + brow] + cfg.shrink + 1e-12
            target, neighbour, v = sparse_topk_rows(b, cfg.neighbours)
            return neighbour, target + start, v.astype(np.float32)

        rows_all, cols_all, vals_all = [], [], []
        starts = range(0, n_items, cfg.block_size)
        with progress.step(f"{self.name}: {cfg.similarity} similarities", total=n_items, unit="item") as p:
            # blocks in threads: the sparse products and sorts release the GIL
            for start, (neighbour, target, v) in zip(starts, map_in_threads(block, starts)):
                rows_all.append(neighbour)
                cols_all.append(target)
                vals_all.append(v)
                p.advance(min(n_items, start + cfg.block_size) - start)
        sim = sp.csr_matrix((np.concatenate(vals_all), (np.concatenate(rows_all), np.concatenate(cols_all))),
                            shape=(n_items, n_items), dtype=np.float32)
        sim.sort_indices()
        return sim

    def _score(self, queries: Queries) -> np.ndarray:
        h = self.history(queries)
        live = getattr(self, "live_", None)
        if live is not None and not live.empty:
            return by_row_chunks(lambda rows: (h[rows] @ self.similarity_ + live.product(h[rows])).toarray(),
                                 h.shape[0], self.n_items_)
        return by_row_chunks(lambda rows: (h[rows] @ self.similarity_).toarray(), h.shape[0], self.n_items_)

    def _product(self, h: sp.csr_matrix) -> sp.csr_matrix:
        out = h @ self.similarity_
        live = getattr(self, "live_", None)
        if live is not None and not live.empty:
            out = out + live.product(h)
        return sp.csr_matrix(out)

    def candidates(self, queries: Queries, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of ``history @ sim`` (positive scores only; the compiled kernel, no product formed);
        with ``candidate_fanout``, only items among some history item's closest contribute candidates."""
        h = self.history(queries)
        fan = self.config.candidate_fanout
        return product_topk(h, [self.similarity_, self._live_matrix()], k, allowed,
                            floor=None if fan is None else self._fanout(fan))

    def _live_matrix(self) -> sp.csr_matrix | None:
        live = getattr(self, "live_", None)
        return None if live is None or live.empty else live.matrix()

    def _fanout(self, fan: int) -> np.ndarray:
        """Per item, the similarity of its ``fan``-th most similar item (row i: targets j by
        sim(i, j)): the candidates read only the entries at or above it. One float per item
        (computed at fit and saved with the model when ``candidate_fanout`` is set), not a second
        copy of the similarity."""
        got = getattr(self, "fanout_floor_", None)
        if got is None or len(got) != self.similarity_.shape[0] or getattr(self, "fanout_k_", None) != fan:
            self.fanout_floor_ = got = row_floor(self.similarity_, fan)
            self.fanout_k_ = fan
        return got

    def top_anchor(self, queries: Queries, item_idx: np.ndarray) -> np.ndarray:
        """For each recommended item (``item_idx`` (n, k), -1 padded), the history item that
        contributed most to its score, ``argmax_i h(q, i) · sim(i, item)``; -1 when none did."""
        return product_anchor(self.history(queries), [self.similarity_, self._live_matrix()], item_idx)

    # ------------------------------------------------------------------ online
    def observe(self, events: LiveEvents) -> bool:
        if getattr(self, "live_", None) is None:
            self.live_ = LiveCooccurrence(self.n_items_)
        w = events.weights(self.config.weights())
        norm = None if self.config.similarity == "bm25" else getattr(self, "norms_", None)
        return self.live_.add_context_pairs(events.context, events.item_idx, w, norm, self.config.shrink) > 0

    def refresh_items(self, n_items: int, changed: np.ndarray, item_table=None) -> bool:
        if n_items > self.n_items_:
            sim = self.similarity_.copy()
            sim.resize((n_items, n_items))
            self.similarity_ = sim
            self.fanout_floor_ = None
            if hasattr(self, "norms_"):
                self.norms_ = np.concatenate([self.norms_, np.zeros(n_items - len(self.norms_), np.float32)])
            if getattr(self, "live_", None) is not None:
                self.live_.grow(n_items)
            self._resize_users_items(n_items)
        return True

    def _state(self) -> dict[str, Any]:
        state = {"similarity_": self.similarity_}
        if hasattr(self, "norms_"):
            state["norms_"] = self.norms_
        if self.config.candidate_fanout is not None:
            state["fanout_floor_"] = self._fanout(self.config.candidate_fanout)
            state["fanout_k_"] = self.config.candidate_fanout
        return state

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.similarity_ = state["similarity_"]
        if "norms_" in state:
            self.norms_ = np.asarray(state["norms_"], np.float32)
        if "fanout_floor_" in state:   # (models saved before it kept a pruned matrix "fanout_": recomputed)
            self.fanout_floor_ = np.asarray(state["fanout_floor_"], np.float32)
            self.fanout_k_ = int(state["fanout_k_"])
        self._prepare_serving()
