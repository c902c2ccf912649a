"""Item-kNN: cosine, BM25 and behaviour-weighted co-visitation, with a sparse top-k neighbourhood."""

from __future__ import annotations

from typing import Any, Literal, Mapping

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from ..data import ShopData
from ._live import LiveCooccurrence
from ._parallel import by_row_chunks
from .base import LiveEvents, Queries, Strategy, StrategyConfig, register


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
    a sparse matrix (one lexsort over the stored entries; much faster than a dense partition when
    most entries are zero)."""
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

    def _similarity(self, x: sp.csr_matrix) -> sp.csr_matrix:
        cfg = self.config
        n_items = x.shape[1]
        xt = sp.csr_matrix(x.T)  # items × users
        sq = np.asarray(x.multiply(x).sum(axis=0)).ravel().astype(np.float32)
        self.norms_ = np.sqrt(sq)
        normalise = cfg.similarity != "bm25"
        left = np.power(sq, cfg.alpha).astype(np.float32)
        right = np.power(sq, 1.0 - cfg.alpha).astype(np.float32)
        rows_all, cols_all, vals_all = [], [], []
        for start in range(0, n_items, cfg.block_size):
            stop = min(n_items, start + cfg.block_size)
            # row j of the block holds the dot products of target item start+j with every item i
            block = sp.csr_matrix(xt[start:stop] @ x)
            brow = np.repeat(np.arange(stop - start), np.diff(block.indptr))
            block.data[block.indices == brow + start] = 0.0  # no self-similarity
            if normalise:
                block.data /= left[block.indices] * right[start + brow] + cfg.shrink + 1e-12
            target, neighbour, v = sparse_topk_rows(block, cfg.neighbours)
            rows_all.append(neighbour)
            cols_all.append(target + start)
            vals_all.append(v.astype(np.float32))
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
        return state

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.similarity_ = state["similarity_"]
        if "norms_" in state:
            self.norms_ = np.asarray(state["norms_"], np.float32)
