"""Frequently bought together: association rules mined from baskets, scored against the whole cart.

A *basket* is the set of distinct items of one session (``session_idx``) among the events of the
configured ``behaviours`` (default purchase and add-to-cart). Events without a session — all of them
when the data has no sessions — are grouped per user and calendar day (UTC day of the unix
timestamp); events without a timestamp fall into one basket per user.

From the baskets the strategy counts, with sparse products only (``Bᵀ·diag(w)·B`` for blocks of
anchor items, never a dense ``n_items × n_items`` matrix):

* ``n(a)`` — the weighted number of baskets holding ``a``, ``N`` the weighted number of baskets;
* ``n(a, b)`` — the weighted number of baskets holding both.

Each basket's weight ``w`` is ``0.5 ** (age / half_life_days)`` with the age of its newest event
measured from the newest training event (``half_life_days=None``, or a basket without timestamps:
weight 1). Baskets of more than ``max_basket`` distinct items are skipped (``large_baskets="skip"``,
the default: a wholesaler's 500-line order says little about what goes together) or down-weighted
by ``max_basket / size`` (``"downweight"``, continuous at the threshold). Pairs with
``n(a, b) < min_support`` are dropped, and the rule ``a → b`` is scored by the ``measure`` (Agrawal et
al., "Mining association rules between sets of items in large databases", SIGMOD 1993; Brin et al.,
"Dynamic itemset counting and implication rules for market basket data", SIGMOD 1997 for lift)::

    confidence  n(a, b) / (n(a) + shrink)                      ≈ P(b | a), shrunk for rare anchors
    lift        n(a, b) · N / ((n(a) + shrink) · (n(b) + shrink))   ≈ P(a, b) / (P(a) P(b))
    cosine      n(a, b) / (sqrt(n(a) · n(b)) + shrink)

Only the ``neighbours`` best consequents of each anchor are kept (sparse CSR ``assoc_``, row = anchor).
Defaults as measured on Online Retail (:func:`~shoprec.evaluation.splits.basket_hold_one_out`, NDCG@10):
cosine .164, confidence .120, lift .097 (lift with shrink 50: .148); skipping baskets above 50 items
beat down-weighting them (.164 vs .155); a 30-day half-life changed little (.162), so there is no decay
by default.

Scoring is basket-aware: every query gets anchor weights — 1 for each basket item and the current
item, ``session_weight`` for the items of the query's session, ``history_weight`` for a known user's
``recent_items`` most recent training items of those behaviours (an item in several roles takes the
largest weight) — and ``score(b) = Σ_anchors w(a) · assoc(a → b)``. :meth:`FBTStrategy.top_anchor`
names, per recommended item, the anchor that contributed most ("bought together with X").
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

import numpy as np
import scipy.sparse as sp
from pydantic import Field, field_validator

from ..data import Behaviour, ShopData
from ._parallel import by_row_chunks
from ._kernels import product_topk
from .base import Queries, Strategy, StrategyConfig, register
from .item_knn import sparse_topk_rows

SECONDS_PER_DAY = 86_400


class FBTConfig(StrategyConfig):
    behaviours: tuple[str, ...] = Field(
        default=("purchase", "add_to_cart"),
        description="Behaviours whose events make up the baskets (names or aliases, see Behaviour.parse).")
    half_life_days: float | None = Field(
        default=None, gt=0,
        description="Half-life of a basket's weight by its age before the newest training event; None = no "
                    "decay (also the case for data without timestamps).")
    max_basket: int = Field(
        default=50, ge=2,
        description="Baskets with more distinct items are down-weighted by max_basket/size or skipped "
                    "(large_baskets).")
    large_baskets: Literal["downweight", "skip"] = Field(
        default="skip",
        description="What baskets above max_basket become: skip = left out; downweight = weight × "
                    "max_basket/size.")
    measure: Literal["confidence", "lift", "cosine"] = Field(
        default="cosine",
        description="Score of the rule a→b: confidence n(a,b)/(n(a)+shrink); lift n(a,b)·N/((n(a)+shrink)"
                    "(n(b)+shrink)); cosine n(a,b)/(sqrt(n(a)n(b))+shrink).")
    shrink: float = Field(default=5.0, ge=0,
                          description="Pseudo-count added to the denominators so that rare items do not dominate.")
    min_support: float = Field(
        default=2.0, ge=0,
        description="Minimum weighted number of baskets holding both items for a rule to be kept.")
    neighbours: int = Field(default=100, ge=1, description="Rules (consequents) kept per anchor item.")
    session_weight: float = Field(default=0.3, ge=0,
                                  description="Anchor weight of the query's session items (basket items weigh 1).")
    history_weight: float = Field(default=0.1, ge=0,
                                  description="Anchor weight of a known user's recent training items.")
    recent_items: int = Field(default=10, ge=0,
                              description="How many of a known user's most recent distinct items are anchors.")
    fallback: Literal["popular", "none"] = Field(
        default="popular",
        description="Items no anchor is associated with: popular = distinct scores in [-1, 0), below every "
                    "rule-based score, by basket popularity (lists are full); none = 0 for all of them.")
    block_size: int = Field(default=2048, ge=1, description="Anchor items per block of the co-occurrence product.")

    @field_validator("behaviours")
    @classmethod
    def _known_behaviours(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("behaviours must name at least one behaviour, e.g. ('purchase',)")
        for name in v:
            Behaviour.parse(name)  # raises ValueError naming the accepted names
        return v


def basket_ids(data: ShopData, behaviours: tuple[Behaviour, ...]) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows of ``data.events`` of the given behaviours and the basket number of each.

    A basket is a session; events without a session are grouped per (user, UTC calendar day), and
    events without timestamp per user. Returns ``(event_rows, basket, n_baskets)``.
    """
    ev = data.events
    beh = ev["behaviour"].to_numpy()
    rows = np.flatnonzero(np.isin(beh, [int(b) for b in behaviours]))
    sess = ev["session_idx"].to_numpy()[rows].astype(np.int64)
    user = ev["user_idx"].to_numpy()[rows].astype(np.int64)
    ts = ev["timestamp"].to_numpy()[rows]
    day = np.where(ts >= 0, ts // SECONDS_PER_DAY, -1)
    _, day_code = np.unique(day, return_inverse=True)
    n_days = int(day_code.max(initial=-1)) + 1
    offset = int(sess.max(initial=-1)) + 1
    key = np.where(sess >= 0, sess, offset + user * max(n_days, 1) + day_code)
    uniq, basket = np.unique(key, return_inverse=True)
    return rows, basket.astype(np.int64).ravel(), len(uniq)


@register
class FBTStrategy(Strategy):
    """Frequently bought together: basket association rules (see the module docstring)."""

    name = "fbt"
    Config = FBTConfig

    def evidence_floor(self) -> float | None:
        """The popular fallback scores lie in [-1, 0), below every evidence-based score."""
        return 0.0 if self.config.fallback == "popular" else None

    # ------------------------------------------------------------------ fit
    def unusable(self, data: ShopData) -> str | None:
        wanted = [int(Behaviour.parse(b)) for b in self.config.behaviours]
        present = np.unique(data.events["behaviour"].to_numpy())
        if np.isin(present, wanted).any():
            return None
        names = sorted(Behaviour(int(b)).name.lower() for b in present)
        return (f"{data.name}: fbt found no events of behaviours {list(self.config.behaviours)} to make baskets "
                f"of; the data has {names} — set FBTConfig.behaviours to those")

    def _fit(self, data: ShopData) -> None:
        cfg = self.config
        n_items = data.n_items
        behaviours = tuple(Behaviour.parse(b) for b in cfg.behaviours)
        why = self.unusable(data)
        if why is not None:
            raise ValueError(why)
        rows, basket, n_baskets = basket_ids(data, behaviours)
        items = data.events["item_idx"].to_numpy()[rows]
        ts = data.events["timestamp"].to_numpy()[rows]

        b = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (basket, items)),
                          shape=(n_baskets, n_items), dtype=np.float32)
        b.sum_duplicates()
        b.data[:] = 1.0
        w = np.ones(n_baskets, dtype=np.float64)
        if cfg.half_life_days is not None and len(ts) and (ts >= 0).all():
            newest = np.full(n_baskets, np.iinfo(np.int64).min, dtype=np.int64)
            np.maximum.at(newest, basket, ts)
            age_days = (ts.max() - newest) / SECONDS_PER_DAY
            w *= np.power(0.5, age_days / cfg.half_life_days)
        size = np.diff(b.indptr)
        large = size > cfg.max_basket
        if cfg.large_baskets == "skip":
            w[large] = 0.0
        else:
            w[large] *= cfg.max_basket / size[large]
        self.n_baskets_ = int((w > 0).sum())

        bw = sp.csr_matrix(sp.diags(w.astype(np.float32)) @ b)  # baskets × items, weighted
        bw.eliminate_zeros()
        support = np.asarray(bw.sum(axis=0)).ravel().astype(np.float64)  # n(a)
        total = float(w.sum())  # N
        self.support_ = support.astype(np.float32)
        self.assoc_ = self._rules(b, bw, support, total)
        self.recent_ = self._recent(data)
        self._set_derived()

    def _rules(self, b: sp.csr_matrix, bw: sp.csr_matrix, support: np.ndarray, total: float) -> sp.csr_matrix:
        """Top ``neighbours`` rules per anchor, computed ``block_size`` anchors at a time."""
        cfg = self.config
        n_items = b.shape[1]
        bt = sp.csr_matrix(b.T)  # items × baskets
        rows_all, cols_all, vals_all = [], [], []
        for start in range(0, n_items, cfg.block_size):
            stop = min(n_items, start + cfg.block_size)
            block = sp.csr_matrix(bt[start:stop] @ bw)  # n(a, b) for anchors a in the block
            brow = np.repeat(np.arange(stop - start), np.diff(block.indptr))
            anchor = brow + start
            co = block.data.astype(np.float64)
            keep = (block.indices != anchor) & (co >= cfg.min_support) & (co > 0)
            na, nb = support[anchor], support[block.indices]
            if cfg.measure == "confidence":
                val = co / (na + cfg.shrink)
            elif cfg.measure == "lift":
                val = co * total / ((na + cfg.shrink) * (nb + cfg.shrink) + 1e-12)
            else:
                val = co / (np.sqrt(na * nb) + cfg.shrink + 1e-12)
            block.data = np.where(keep, val, 0.0).astype(np.float32)
            r, c, v = sparse_topk_rows(block, cfg.neighbours)
            rows_all.append(r + start)
            cols_all.append(c)
            vals_all.append(v.astype(np.float32))
        rows = np.concatenate(rows_all) if rows_all else np.zeros(0, np.int64)
        cols = np.concatenate(cols_all) if cols_all else np.zeros(0, np.int64)
        vals = np.concatenate(vals_all) if vals_all else np.zeros(0, np.float32)
        assoc = sp.csr_matrix((vals, (rows, cols)), shape=(n_items, n_items), dtype=np.float32)
        assoc.sort_indices()
        return assoc

    def _recent(self, data: ShopData) -> sp.csr_matrix:
        """users × items, 1 for each user's ``recent_items`` most recent distinct basket-behaviour items."""
        n = self.config.recent_items
        ev = data.events
        beh = [int(Behaviour.parse(b)) for b in self.config.behaviours]
        rows = np.flatnonzero(ev["behaviour"].isin(beh).to_numpy())
        if n == 0 or len(rows) == 0:
            return sp.csr_matrix((data.n_users, data.n_items), dtype=np.float32)
        user = ev["user_idx"].to_numpy()[rows]
        item = ev["item_idx"].to_numpy()[rows]
        ts = ev["timestamp"].to_numpy()[rows]
        order = np.lexsort((-rows, -ts, user))  # per user, newest first (later rows first on ties)
        user, item = user[order], item[order]
        key = user.astype(np.int64) * data.n_items + item
        _, first = np.unique(key, return_index=True)  # newest event of each (user, item)
        first = np.sort(first)
        user, item = user[first], item[first]
        start = np.searchsorted(user, user, side="left")
        keep = (np.arange(len(user)) - start) < n
        return sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (user[keep], item[keep])),
                             shape=(data.n_users, data.n_items), dtype=np.float32)

    def _set_derived(self) -> None:
        """Lookup keys of the rules and the fallback row (recomputed, never saved)."""
        a = self.assoc_
        self.assoc_keys_ = (np.repeat(np.arange(a.shape[0], dtype=np.int64), np.diff(a.indptr)) * a.shape[1]
                            + a.indices.astype(np.int64))
        n_items = a.shape[1]
        self.fallback_row_ = np.zeros(n_items, dtype=np.float32)
        if self.config.fallback == "popular":
            rank = np.empty(n_items, dtype=np.int64)
            rank[np.lexsort((np.arange(n_items), -self.support_.astype(np.float64)))] = np.arange(n_items)
            self.fallback_row_ = (-(rank + 1) / max(n_items, 1)).astype(np.float32)

    # ------------------------------------------------------------ scoring
    def anchors(self, queries: Queries) -> sp.csr_matrix:
        """Anchor weights (n, n_items): basket and current item 1, session items ``session_weight``,
        a known user's recent items ``history_weight``; an item in several roles takes the largest."""
        self._check_fitted()
        cfg = self.config
        queries = queries.within(self.n_items_)  # items added after fit anchor nothing
        n, n_items = len(queries), self.n_items_
        a = queries.basket.to_csr(n_items, binary=True)
        cur = queries.current_item >= 0
        a = a.maximum(sp.csr_matrix((np.ones(int(cur.sum()), np.float32),
                                     (np.flatnonzero(cur), queries.current_item[cur])), shape=(n, n_items)))
        if cfg.session_weight > 0 and queries.items.indptr[-1]:
            a = a.maximum(queries.items.to_csr(n_items, binary=True) * np.float32(cfg.session_weight))
        known = queries.user_idx >= 0
        if cfg.history_weight > 0 and known.any() and self.recent_.nnz:
            h = self.recent_[np.where(known, queries.user_idx, 0)]
            h = sp.diags(known.astype(np.float32) * np.float32(cfg.history_weight)) @ h
            a = a.maximum(h)
        a = sp.csr_matrix(a, dtype=np.float32)
        a.eliminate_zeros()
        a.sort_indices()
        return a

    def _score(self, queries: Queries) -> np.ndarray:
        a = self.anchors(queries)
        scores = by_row_chunks(lambda rows: (a[rows] @ self.assoc_).toarray(), a.shape[0], self.n_items_)
        if self.config.fallback == "popular":
            np.copyto(scores, np.broadcast_to(self.fallback_row_, scores.shape), where=scores <= 0)
        return scores

    def candidates(self, queries: Queries, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The dense path's top-k (``anchors @ assoc`` where positive, the popular fallback — or
        zeros — elsewhere) by the compiled kernel and a presorted filler, no dense row per request."""
        queries = queries.within(self.n_items_)
        idx, val = product_topk(self.anchors(queries), self.assoc_, k, allowed)
        return self._with_fallback(queries, idx, val, allowed, self.fallback_row_)

    # ----------------------------------------------------------- explain
    def association(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Score of the kept rule ``a → b`` for arrays of anchor and consequent indices (broadcast
        together); 0 where the rule was not kept or an index is -1. Returns float32."""
        self._check_fitted()
        a, b = np.broadcast_arrays(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
        out = np.zeros(a.shape, dtype=np.float32)
        ok = (a >= 0) & (b >= 0) & (a < self.n_items_) & (b < self.n_items_)
        if not ok.any() or not len(self.assoc_keys_):
            return out
        key = a[ok] * self.n_items_ + b[ok]
        pos = np.minimum(np.searchsorted(self.assoc_keys_, key), len(self.assoc_keys_) - 1)
        hit = self.assoc_keys_[pos] == key
        out[ok] = np.where(hit, self.assoc_.data[pos], 0.0)
        return out

    def top_anchor(self, queries: Queries, item_idx: np.ndarray) -> np.ndarray:
        """For each recommended item (``item_idx`` (n, k), -1 padded), the anchor of the query that
        contributed most to its score, ``argmax_a w(a) · assoc(a → item)``; -1 when none did.
        Returns int32 (n, k); ties go to the lower anchor index."""
        item_idx = np.asarray(item_idx)
        if item_idx.ndim != 2 or item_idx.shape[0] != len(queries):
            raise ValueError(f"item_idx must be (n_queries, k) = ({len(queries)}, k), got {item_idx.shape}")
        n, k = item_idx.shape
        out = np.full((n, k), -1, dtype=np.int32)
        a = self.anchors(queries)
        if a.nnz == 0 or k == 0:
            return out
        row = np.repeat(np.arange(n), np.diff(a.indptr))
        contrib = a.data[:, None] * self.association(a.indices[:, None], item_idx[row])  # (nnz, k)
        key = (row[:, None] * k + np.arange(k)[None, :]).ravel()
        val = contrib.ravel()
        entry = np.repeat(np.arange(a.nnz), k)
        order = np.lexsort((entry, -val, key))  # per (query, position): best contribution first
        first = np.ones(len(order), dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        best = order[first]
        good = val[best] > 0
        flat = out.ravel()
        flat[key[best][good]] = a.indices[entry[best][good]]
        return flat.reshape(n, k)

    # --------------------------------------------------------- save/load
    def _state(self) -> dict[str, Any]:
        return {"assoc_": self.assoc_, "support_": self.support_, "recent_": self.recent_,
                "n_baskets_": self.n_baskets_}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.assoc_ = state["assoc_"]
        self.support_ = state["support_"]
        self.recent_ = state["recent_"]
        self.n_baskets_ = int(state["n_baskets_"])
        self._set_derived()
