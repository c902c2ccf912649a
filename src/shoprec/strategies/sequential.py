"""Sequence-aware next-item scores: gap-decayed item-to-item transitions plus item-kNN co-occurrence.

Fit builds one sparse item×item matrix from time-ordered sequences (sessions, or user histories when
the data has no sessions)::

    T[i, j] = Σ over pairs "j comes g ≤ max_gap steps after i" of g^-gap_power   (sequential rules)
    C[i, j] = co-occurrences of i and j within knn_window steps (either order; 0 = anywhere in the
              same sequence), cosine-normalised                                   (item-kNN)
    M = (1 - knn_weight) · rownorm(T) + knn_weight · rownorm(C),  then  M[:, j] /= pop(j)^pop_penalty

and keeps the ``neighbours`` largest entries of every row. A query's score is

    score = Σ_l exp(-l / recency) · M[item_l, :]  +  repeat_weight · Σ_l exp(-l / recency) · e(item_l)

over its last ``max_history`` items ``item_l`` (``l`` = 0 for the most recent), where the sequence is
the known user's recent training items (``user_history``), the query's items and its current item.
``repeat_weight`` scores the query's own items (re-views are common in sessions); use
``filter_history`` when they must not be recommended. Items without a score get distinct values in
``[-1, 0)`` ordered by popularity (``fallback="popular"``) or ``-inf``.

Everything is sparse algebra: fit is a handful of sparse constructions (seconds on Diginetica's 0.9M
clicks), scoring one sparse product per batch.

Reference: Ludewig et al., "Empirical analysis of session-based recommendation algorithms", UMUAI
2021 (SR: sequential rules with 1/gap weights; item-kNN).
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from ..data import Ragged, ShopData
from ._kernels import product_topk
from .base import Queries, Strategy, StrategyConfig, register
from .session_knn import query_sequences, recent_tails

__all__ = ["SequentialConfig", "SequentialStrategy"]


class SequentialConfig(StrategyConfig):
    """Parameters of :class:`SequentialStrategy` (defaults chosen on validation splits of Diginetica
    and Amazon Beauty carved from training data)."""

    sequences: Literal["auto", "session", "user"] = Field(
        default="auto", description="Which sequences to learn from; auto = sessions when the data has them.")
    max_gap: int = Field(default=10, ge=1, description="Transitions i → j up to that many steps apart.")
    gap_power: float = Field(default=0.5, ge=0, description="A transition over g steps weighs g^-power.")
    self_transitions: bool = Field(default=True, description="Count i → i (repeated clicks).")
    knn_weight: float = Field(default=0.5, ge=0, le=1,
                              description="Share of the item-kNN part in the item×item matrix.")
    knn_window: int = Field(default=0, ge=0,
                            description="Item-kNN co-occurrence window in steps; 0 = whole sequence.")
    pop_penalty: float = Field(default=0.0, ge=0, le=1,
                               description="Divide column j by popularity(j)^that (0 = off).")
    neighbours: int = Field(default=300, ge=1, description="Entries kept per row of the item×item matrix.")
    recency: float = Field(default=2.0, gt=0,
                           description="Query item l steps back weighs exp(-l / recency).")
    max_history: int = Field(default=10, ge=1, description="Query items used (most recent ones).")
    repeat_weight: float = Field(default=0.5, ge=0, description="Weight of the query's own items.")
    user_history: int = Field(default=10, ge=0,
                              description="Recent training items of a known user put before the query's "
                                          "items (of the whole sequence, the last max_history count).")
    fallback: Literal["popular", "none"] = Field(
        default="popular",
        description="Unscored items: popular = distinct scores below every other score, by "
                    "popularity; none = -inf.")


def _pairs(seqs: Ragged, max_gap: int, gap_power: float,
           both_ways: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source, target, weight) of every ordered pair at most ``max_gap`` apart in a row."""
    vals = seqs.values.astype(np.int64)
    rows = seqs.rows()
    end = seqs.indptr[1:][rows]  # exclusive end of each value's row
    idx = np.arange(len(vals), dtype=np.int64)
    src, dst, wts = [], [], []
    for gap in range(1, max_gap + 1):
        ok = idx + gap < end
        if not ok.any():
            break
        i = idx[ok]
        src.append(vals[i])
        dst.append(vals[i + gap])
        wts.append(np.full(len(i), float(gap) ** -gap_power))
    if not src:
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(0)
    s, d, w = np.concatenate(src), np.concatenate(dst), np.concatenate(wts)
    if both_ways:
        s, d, w = np.concatenate([s, d]), np.concatenate([d, s]), np.concatenate([w, w])
    return s, d, w


def _row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(np.where(sums > 0, 1.0 / np.maximum(sums, 1e-300), 0.0)) @ m)


def _prune_rows(m: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the ``n`` largest entries of each row (ties: lower column)."""
    m = sp.csr_matrix(m)
    m.sum_duplicates()
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    if len(rows) == 0 or np.diff(m.indptr).max() <= n:
        return m
    o = np.lexsort((m.indices, -m.data, rows))
    r = rows[o]
    start = np.ones(len(r), dtype=bool)
    start[1:] = r[1:] != r[:-1]
    first = np.flatnonzero(start)
    rank = np.arange(len(r)) - first[np.cumsum(start) - 1]
    o = o[rank < n]
    out = sp.csr_matrix((m.data[o], (rows[o], m.indices[o])), shape=m.shape)
    out.sort_indices()
    return out


@register
class SequentialStrategy(Strategy):
    """Sequential rules + windowed item-kNN over the last items of the query; see the module doc."""

    name = "sequential"
    Config = SequentialConfig

    def evidence_floor(self) -> float | None:
        """The popular fallback scores lie in [-1, 0), below every evidence-based score."""
        return 0.0 if self.config.fallback == "popular" else None

    def unusable(self, data: ShopData) -> str | None:
        return self._needs_order(data)

    def _fit(self, data: ShopData) -> None:
        cfg: SequentialConfig = self.config
        n_items = data.n_items
        by = cfg.sequences
        if by == "auto":
            by = "session" if data.has_sessions else "user"
        seqs = data.sequences(by=by)

        s, d, w = _pairs(seqs, cfg.max_gap, cfg.gap_power)
        if not cfg.self_transitions:
            keep = s != d
            s, d, w = s[keep], d[keep], w[keep]
        trans = sp.csr_matrix((w, (s, d)), shape=(n_items, n_items), dtype=np.float64)
        trans.sum_duplicates()
        m = _row_normalise(trans) * (1.0 - cfg.knn_weight)

        counts = np.bincount(seqs.values.astype(np.int64), minlength=n_items).astype(np.float64)
        if cfg.knn_weight > 0:
            if cfg.knn_window == 0:
                inc = seqs.to_csr(n_items, binary=True).astype(np.float64)
                co = sp.csr_matrix(inc.T @ inc)
                occ = co.diagonal().copy()
            else:
                s, d, _ = _pairs(seqs, cfg.knn_window, 0.0, both_ways=True)
                co = sp.csr_matrix((np.ones(len(s)), (s, d)), shape=(n_items, n_items))
                co.sum_duplicates()
                occ = counts
            co.setdiag(0)
            co.eliminate_zeros()
            norm = 1.0 / np.sqrt(np.maximum(occ, 1.0))
            co = sp.csr_matrix(sp.diags(norm) @ co @ sp.diags(norm))
            m = m + cfg.knn_weight * _row_normalise(co)
        if cfg.pop_penalty > 0:
            m = sp.csr_matrix(m @ sp.diags(1.0 / np.maximum(counts, 1.0) ** cfg.pop_penalty))
        self.item_item_ = _prune_rows(sp.csr_matrix(m, dtype=np.float32), cfg.neighbours)
        self.popularity_ = counts
        self.user_tails_ = recent_tails(data, cfg.user_history) if cfg.user_history > 0 else None
        self._build_fallback()

    def _build_fallback(self) -> None:
        n_items = self.n_items_
        self._fallback_row = np.full(n_items, -np.inf, dtype=np.float32)
        if self.config.fallback == "popular":
            rank = np.empty(n_items, dtype=np.int64)
            rank[np.lexsort((np.arange(n_items), -self.popularity_))] = np.arange(n_items)
            self._fallback_row = (-(rank + 1) / max(n_items, 1)).astype(np.float32)

    def _history(self, queries: Queries) -> sp.csr_matrix | None:
        """The recency-weighted query sequences (n, n_items); None when every one is empty."""
        cfg: SequentialConfig = self.config
        seq = query_sequences(queries, self.user_tails_, cfg.max_history)
        if seq.indptr[-1] == 0:
            return None
        rows = seq.rows()
        age = (seq.indptr[rows + 1] - 1 - np.arange(len(rows))).astype(np.float64)
        h = sp.csr_matrix((np.exp(-age / cfg.recency), (rows, seq.values)), shape=(len(queries), self.n_items_))
        h.sum_duplicates()
        return h

    def candidates(self, queries: Queries, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The dense path's top-k (``h @ M + repeat_weight · h``, then the popular fallback) by the
        compiled kernel, no dense row, no product formed: the repeats are a diagonal second matrix,
        the fallback a presorted order."""
        self._check_fitted()
        queries = queries.within(self.n_items_)
        h = self._history(queries)
        n = len(queries)
        idx, val = (np.full((n, k), -1, np.int32), np.full((n, k), -np.inf, np.float32)) if h is None \
            else product_topk(h, [self.item_item_, self._repeats()], k, allowed)
        if self.config.fallback != "popular":
            return idx, val
        return self._with_fallback(queries, idx, val, allowed, self._fallback_row)

    def _repeats(self) -> sp.csr_matrix | None:
        w = self.config.repeat_weight
        if w <= 0:
            return None
        got = getattr(self, "_repeats_", None)
        if got is None or got.shape[0] != self.n_items_:
            got = self._repeats_ = sp.identity(self.n_items_, dtype=np.float32, format="csr") * np.float32(w)
        return got

    def _score(self, queries: Queries) -> np.ndarray:
        cfg: SequentialConfig = self.config
        n, n_items = len(queries), self.n_items_
        out = np.empty((n, n_items), dtype=np.float32)
        out[:] = self._fallback_row
        h = self._history(queries)
        if h is None:
            return out
        scores = sp.csr_matrix(h @ self.item_item_)
        if cfg.repeat_weight > 0:
            scores = sp.csr_matrix(scores + cfg.repeat_weight * h)
        scores.sum_duplicates()
        scores.eliminate_zeros()
        srow = np.repeat(np.arange(n), np.diff(scores.indptr))
        out[srow, scores.indices] = scores.data.astype(np.float32)
        return out

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"item_item_": self.item_item_, "popularity_": self.popularity_}
        if self.user_tails_ is not None:
            state["user_tails_indptr_"] = self.user_tails_.indptr
            state["user_tails_values_"] = self.user_tails_.values
        return state

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.item_item_ = sp.csr_matrix(state["item_item_"], dtype=np.float32)
        self.popularity_ = np.asarray(state["popularity_"])
        self.user_tails_ = Ragged(np.asarray(state["user_tails_indptr_"]),
                                  np.asarray(state["user_tails_values_"])) \
            if "user_tails_indptr_" in state else None
        self._build_fallback()
