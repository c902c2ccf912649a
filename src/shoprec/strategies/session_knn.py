"""Session-based k-nearest-neighbours (V-SKNN / STAN / VSTAN family), vectorised over query batches.

The training sessions are ``data.sequences(by="session")`` (each user's whole sequence when the data
has no sessions); "recent" means the session's last timestamp, or its place in the event table when
there are no real timestamps (``session_order``). For each query the *query session* is the query's
items (oldest first), the current item when it is not already last, and — for a known user, when
``user_history > 0`` — the user's most recent training items before them (that user's own training
sessions are then not used as neighbours). Behaviour weights and the basket are not used. The
strategy then

1. takes as candidates the ``sample_size`` most recent training sessions that share an item with the
   query session (exactly the "recent" sample of V-SKNN / STAN);
2. scores each candidate ``n`` by a position-weighted cosine (STAN's λ1 / VSTAN ``lambda_spw``)::

       sim(s, n) = Σ_{i ∈ s ∩ n} w(age_s(i)) / (‖w‖₂ · √|n|)  ·  exp(-age(n) / λ2)

   where ``age_s(i)`` is how many steps ago ``i`` was last seen in ``s`` (0 = the current item),
   ``w(a) = exp(-a/λ1)`` (or ``max(0, 1 - a/λ1)``) and ``age(n)`` the age of the neighbour session as
   a fraction of the training time span (optional, λ2 / ``lambda_snh``);
3. keeps the ``k`` most similar candidates and scores every item ``j`` of each neighbour ``n`` with::

       sim(s, n) · exp(-|p_n(j) - p_n*| / λ3) · exp(-a_n* / λ_ipw) · (1 + λ_idf · idf(j))

   ``p_n(j)`` being the last position of ``j`` in ``n``, ``p_n*`` the last position in ``n`` of an
   item shared with ``s`` (STAN's λ3 / ``lambda_inh``), ``a_n*`` the age in ``s`` of the most recent
   item shared with ``n`` (V-SKNN's score decay / ``lambda_ipw``) and ``idf(j) = log(#sessions /
   #events of j)`` (``lambda_idf``). Items of the query session are scored too (repeat views are
   common); exclude them with ``filter_history`` or ``exclude`` when they are not wanted.

Everything runs on whole batches: candidates come from one sparse product with a per-item index of
the ``sample_size`` most recent sessions (the most recent ``m`` sessions of a union are always among
the union of each item's ``m`` most recent, so the sample is exact), similarities from a sorted-key
lookup of the candidates' items in the batch's query matrix, neighbours from one lexsort per batch.
Items no neighbour holds get distinct scores in ``[-1, 0)``, below every neighbour-based score and
ordered by popularity (``fallback="popular"``), so an empty or unmatched session still gets a full
list; or ``-inf`` (``fallback="none"``). Distinct values matter for speed too: ``np.argpartition``
on rows that are mostly one repeated value (``-inf``) is several times slower than on distinct values.

References: Ludewig et al., "Empirical analysis of session-based recommendation algorithms", UMUAI
2021 (V-SKNN, VSTAN); Garg et al., "Sequence and time aware neighborhood for session-based
recommendations: STAN", SIGIR 2019.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from ..data import Ragged, ShopData
from ._kernels import session_knn_topk
from .base import Queries, Strategy, StrategyConfig, register
from .topk import sparse_topk

__all__ = ["SessionKNNConfig", "SessionKNNStrategy", "query_sequences", "recent_tails"]

#: queries handled at once inside ``_score`` (bounds the candidate expansion)
_CHUNK = 1024


# ------------------------------------------------------------------------ shared helpers
def recent_tails(data: ShopData, n: int) -> Ragged:
    """The last ``n`` items of every user's training sequence (time order), one row per user."""
    if n <= 0 or data.n_events == 0:
        return Ragged.empty(data.n_users)
    return data.sequences(by="user").tail(n)


def query_sequences(queries: Queries, user_tails: Ragged | None, max_len: int) -> Ragged:
    """The item sequence each query stands for, oldest first, at most ``max_len`` long.

    It is the known user's recent training items (``user_tails``, when given), then the query's
    ``items``, then ``current_item`` when it is set and not already the last item.
    """
    n = len(queries)
    seq = queries.items
    if user_tails is not None and len(user_tails) and (queries.user_idx >= 0).any():
        known = queries.user_idx >= 0
        hist = user_tails.take(np.where(known, queries.user_idx, 0))
        if not known.all():  # unknown users: empty rows
            keep = np.repeat(known, hist.lengths)
            lengths = np.where(known, hist.lengths, 0)
            indptr = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(lengths, out=indptr[1:])
            hist = Ragged(indptr, hist.values[keep])
        seq = hist.concat(seq)
    cur = np.asarray(queries.current_item)
    add = (cur >= 0) & (seq.last() != cur)
    if add.any():
        extra_len = add.astype(np.int64)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(extra_len, out=indptr[1:])
        seq = seq.concat(Ragged(indptr, cur[add].astype(seq.values.dtype)))
    seq = seq.tail(max_len)
    return Ragged(seq.indptr, seq.values.astype(np.int64))


def _last_occurrences(seqs: Ragged, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every row keep the last occurrence of each item, in sequence order.

    Returns ``(indptr, items, positions)`` with 1-based positions in the original row.
    """
    rows = seqs.rows()
    items = seqs.values.astype(np.int64)
    pos = np.arange(len(items), dtype=np.int64) - seqs.indptr[rows] + 1
    key = rows * n_items + items
    rev = key[::-1]
    _, first_rev = np.unique(rev, return_index=True)
    keep = np.sort(len(key) - 1 - first_rev)
    counts = np.bincount(rows[keep], minlength=len(seqs))
    indptr = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, items[keep].astype(np.int32), pos[keep].astype(np.int32)


def _rank_within_rows(rows: np.ndarray) -> np.ndarray:
    """0-based rank of each entry inside its run of equal (sorted) row labels."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    start = np.ones(len(rows), dtype=bool)
    start[1:] = rows[1:] != rows[:-1]
    first = np.flatnonzero(start)
    run = np.cumsum(start) - 1
    return np.arange(len(rows)) - first[run]


# ------------------------------------------------------------------------------ config
class SessionKNNConfig(StrategyConfig):
    """Parameters of :class:`SessionKNNStrategy` (defaults tuned on a Diginetica validation split
    carved from the training sessions)."""

    k: int = Field(default=200, ge=1, description="Neighbour sessions that score items.")
    sample_size: int = Field(
        default=1000, ge=0,
        description="Most recent training sessions sharing an item with the query that are compared "
                    "with it; 0 = all of them.")
    position_decay: Literal["exp", "linear", "none"] = Field(
        default="exp",
        description="Weight of a query item by how many steps ago it was seen (age a): exp(-a/λ1), "
                    "max(0, 1 - a/λ1), or 1.")
    lambda_position: float = Field(
        default=4.0, gt=0, description="λ1 (STAN, VSTAN lambda_spw): position decay of the query session.")
    lambda_neighbour: float | None = Field(
        default=4.0, gt=0,
        description="λ3 (STAN, VSTAN lambda_inh): an item of a neighbour is weighted by "
                    "exp(-|its position - position of the last shared item| / λ3); None = 1.")
    lambda_recency: float | None = Field(
        default=2.0, gt=0,
        description="VSTAN lambda_ipw: a neighbour's item scores are weighted by exp(-a*/λ) with a* the "
                    "age in the query of the most recent item shared with it; None = 1.")
    lambda_idf: float | None = Field(
        default=2.0, ge=0,
        description="VSTAN lambda_idf: item scores times (1 + λ·idf(item)); None = off.")
    time_decay: float | None = Field(
        default=1.0, gt=0,
        description="λ2 (STAN, VSTAN lambda_snh) as a fraction of the training time span: a neighbour "
                    "session of age t (fraction of the span) weighs exp(-t/λ2); None = off.")
    session_order: Literal["auto", "timestamp", "source"] = Field(
        default="auto",
        description="What 'recent' means for training sessions: their last timestamp, or their place "
                    "in the event table (source order). auto: timestamps when every event has one "
                    "that looks like unix seconds (≥ 1e8), else source order.")
    user_history: int = Field(
        default=10, ge=0,
        description="For a known user, prepend that many of the user's most recent training items to "
                    "the query session (the user's own training sessions are then not neighbours).")
    max_history: int = Field(default=50, ge=1, description="Only the last that many query items count.")
    fallback: Literal["popular", "none"] = Field(
        default="popular",
        description="Items no neighbour holds: popular = a score below every neighbour-based score, "
                    "in order of popularity (lists are full even for an empty session); none = -inf.")


# ---------------------------------------------------------------------------- strategy
@register
class SessionKNNStrategy(Strategy):
    """Session-based kNN (V-SKNN / STAN / VSTAN); see the module docstring."""

    name = "session_knn"
    Config = SessionKNNConfig

    def evidence_floor(self) -> float | None:
        """The popular fallback scores lie in [-1, 0), below every evidence-based score."""
        return 0.0 if self.config.fallback == "popular" else None

    # -------------------------------------------------------------------------- fit
    def _fit(self, data: ShopData) -> None:
        cfg: SessionKNNConfig = self.config
        n_items = data.n_items
        ev = data.events
        by_session = data.has_sessions
        seqs = data.sequences(by="session" if by_session else "user")
        n_sess = len(seqs)

        # session owner and recency key
        if by_session:
            ev = ev[ev["session_idx"] >= 0]
            group = ev["session_idx"].to_numpy().astype(np.int64)
        else:
            group = ev["user_idx"].to_numpy().astype(np.int64)
        ts = ev["timestamp"].to_numpy()
        row = np.flatnonzero(data.events["session_idx"].to_numpy() >= 0) if by_session \
            else np.arange(len(ev))
        use_ts = cfg.session_order == "timestamp" or (
            cfg.session_order == "auto" and len(ts) > 0 and bool((ts >= 100_000_000).all()))
        key_src = ts.astype(np.float64) if use_ts else row.astype(np.float64)
        order_key = np.full(n_sess, -np.inf)
        if len(group):
            frame = pd.DataFrame({"g": group, "k": key_src, "u": ev["user_idx"].to_numpy()})
            agg = frame.groupby("g", sort=True).agg(k=("k", "max"), u=("u", "first"))
            order_key[agg.index.to_numpy()] = agg["k"].to_numpy()
        if by_session:
            sess_user = np.full(n_sess, -1, dtype=np.int32)
            if len(group):
                sess_user[agg.index.to_numpy()] = agg["u"].to_numpy()
        else:
            sess_user = np.arange(n_sess, dtype=np.int32)
        # internal session order = recency (0 = oldest; ties by source index), so that "the m most
        # recent sessions" are the m largest session indices
        perm = np.lexsort((np.arange(n_sess), order_key))
        seqs = seqs.take(perm)
        order_key, sess_user = order_key[perm], sess_user[perm]
        finite = np.isfinite(order_key)
        if cfg.time_decay is not None and finite.any():
            lo, hi = order_key[finite].min(), order_key[finite].max()
            age = (hi - np.where(finite, order_key, lo)) / max(hi - lo, 1e-12)
            sess_weight = np.exp(-age / cfg.time_decay)
        else:
            sess_weight = np.ones(n_sess)

        indptr, items, pos = _last_occurrences(seqs, n_items)
        n_distinct = np.diff(indptr)

        # idf over events, as in VSTAN
        counts = np.bincount(seqs.values.astype(np.int64), minlength=n_items).astype(np.float64)
        idf = np.where(counts > 0, np.log(max(n_sess, 1) / np.maximum(counts, 1)), 0.0)

        self.sess_indptr_ = indptr
        self.sess_items_ = items
        self.sess_pos_ = pos
        self.sess_user_ = sess_user
        # per-session constant factor of the similarity: time decay / sqrt(|n|)
        self.sess_factor_ = (sess_weight / np.sqrt(np.maximum(n_distinct, 1))).astype(np.float64)
        self.idf_ = idf.astype(np.float64)
        self.popularity_ = counts.astype(np.float64)
        self.user_tails_ = recent_tails(data, cfg.user_history) if cfg.user_history > 0 else None
        self._build_index()

    def _build_index(self) -> None:
        """Item → the ``sample_size`` most recent sessions holding it (CSR items × sessions)."""
        n_items = self.n_items_
        n_sess = len(self.sess_indptr_) - 1
        sess = np.repeat(np.arange(n_sess, dtype=np.int64), np.diff(self.sess_indptr_))
        items = self.sess_items_.astype(np.int64)
        order = np.lexsort((-sess, items))  # by item, most recent first
        items, sess = items[order], sess[order]
        if self.config.sample_size > 0:
            keep = _rank_within_rows(items) < self.config.sample_size
            items, sess = items[keep], sess[keep]
        self.item_sessions_ = sp.csr_matrix(
            (np.ones(len(sess), dtype=np.float32), (items, sess)), shape=(n_items, n_sess))
        self._fallback_row = np.full(n_items, -np.inf, dtype=np.float32)
        if self.config.fallback == "popular":
            # distinct values in [-1, 0): by popularity, then by index (no ties: see module doc)
            rank = np.empty(n_items, dtype=np.int64)
            rank[np.lexsort((np.arange(n_items), -self.popularity_))] = np.arange(n_items)
            self._fallback_row = (-(rank + 1) / max(n_items, 1)).astype(np.float32)

    # ------------------------------------------------------------------------ score
    def _score(self, queries: Queries) -> np.ndarray:
        n = len(queries)
        out = np.empty((n, self.n_items_), dtype=np.float32)
        out[:] = self._fallback_row
        for start, stop, scores in self._chunks(queries):
            srow = np.repeat(np.arange(stop - start), np.diff(scores.indptr))
            out[start + srow, scores.indices] = scores.data
        return out

    def candidates(self, queries: Queries, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The dense path's top-k (the neighbour-based scores, then the popular fallback) by the
        compiled kernel (``_kernels.session_knn_topk``; ``_sparse_scores`` is its
        vectorised reference): no dense row per request."""
        self._check_fitted()
        queries = queries.within(self.n_items_)
        n = len(queries)
        seq = query_sequences(queries, self.user_tails_, self.config.max_history)
        if seq.indptr[-1] == 0:
            return self._filled(queries, np.full((n, k), -1, np.int32), np.full((n, k), -np.inf, np.float32), allowed)
        _, qrow, qitem, qage, qw, qnorm = self._query_items(seq, n)
        q_ptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(qrow, minlength=n), out=q_ptr[1:])
        own = self.config.user_history > 0 and self.user_tails_ is not None
        idx, val = session_knn_topk(self, q_ptr, qitem, qw, qage, qnorm, queries.user_idx, k, allowed, own)
        return self._filled(queries, idx, val, allowed)

    def _filled(self, queries: Queries, idx: np.ndarray, val: np.ndarray, allowed: np.ndarray):
        """The popular fallback after the neighbour-based items, as the dense scores rank it."""
        if self.config.fallback != "popular":
            return idx, val
        return self._with_fallback(queries, idx, val, allowed, self._fallback_row)

    def _reference_candidates(self, queries: Queries, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`candidates` from the vectorised sparse scores (the kernel's reference)."""
        queries = queries.within(self.n_items_)
        n = len(queries)
        idx = np.full((n, k), -1, dtype=np.int32)
        val = np.full((n, k), -np.inf, dtype=np.float32)
        for start, stop, scores in self._chunks(queries):
            idx[start:stop], val[start:stop] = sparse_topk(scores, k, allowed[start:stop])
        return self._filled(queries, idx, val, allowed)

    def _chunks(self, queries: Queries):
        """(start, stop, sparse float32 scores of those queries) per chunk holding any neighbour."""
        for start in range(0, len(queries), _CHUNK):
            stop = min(len(queries), start + _CHUNK)
            q = queries if (start == 0 and stop == len(queries)) else queries.take(np.arange(start, stop))
            scores = self._sparse_scores(q)
            if scores is not None:
                yield start, stop, scores

    def _query_items(self, seq: Ragged, n: int):
        """The query sessions' distinct items with their age (0 = most recent), sorted by (row,
        item): key, row, item, age, position weight, and each query's norm."""
        rows = seq.rows()
        age = (seq.indptr[rows + 1] - 1 - np.arange(len(rows))).astype(np.int64)
        qkey = rows * self.n_items_ + seq.values
        o = np.lexsort((age, qkey))
        first = np.ones(len(o), dtype=bool)
        first[1:] = qkey[o][1:] != qkey[o][:-1]
        o = o[first]
        qkey, qrow, qitem, qage = qkey[o], rows[o], seq.values[o], age[o]
        qw = self._position_weight(qage)
        qnorm = np.sqrt(np.bincount(qrow, weights=qw * qw, minlength=n))
        return qkey, qrow, qitem, qage, qw, qnorm

    def _sparse_scores(self, queries: Queries) -> sp.csr_matrix | None:
        """The neighbour-based scores of ``queries`` (CSR (n, n_items), float32; None: no neighbour)."""
        cfg: SessionKNNConfig = self.config
        n, n_items = len(queries), self.n_items_
        seq = query_sequences(queries, self.user_tails_, cfg.max_history)
        if seq.indptr[-1] == 0:
            return None

        qkey, qrow, qitem, qage, qw, qnorm = self._query_items(seq, n)

        # candidates: the sample_size most recent sessions sharing an item
        qbin = sp.csr_matrix((np.ones(len(qrow), dtype=np.float32), (qrow, qitem)), shape=(n, n_items))
        cand = (qbin @ self.item_sessions_).tocsr()
        c_row = np.repeat(np.arange(n, dtype=np.int64), np.diff(cand.indptr))
        c_sess = cand.indices.astype(np.int64)
        if cfg.user_history > 0 and self.user_tails_ is not None:
            own = (queries.user_idx[c_row] >= 0) & (self.sess_user_[c_sess] == queries.user_idx[c_row])
            c_row, c_sess = c_row[~own], c_sess[~own]
        if cfg.sample_size > 0 and len(c_row):
            o = np.lexsort((-c_sess, c_row))
            o = o[_rank_within_rows(c_row[o]) < cfg.sample_size]
            o.sort()
            c_row, c_sess = c_row[o], c_sess[o]
        if len(c_row) == 0:
            return None

        # expand the candidates' items; look each up in the query
        starts, ends = self.sess_indptr_[c_sess], self.sess_indptr_[c_sess + 1]
        lens = ends - starts
        pair_start = np.zeros(len(c_row) + 1, dtype=np.int64)
        np.cumsum(lens, out=pair_start[1:])
        e_pair = np.repeat(np.arange(len(c_row), dtype=np.int64), lens)
        e_idx = np.arange(pair_start[-1], dtype=np.int64) - pair_start[e_pair] + starts[e_pair]
        e_item = self.sess_items_[e_idx].astype(np.int64)
        e_key = c_row[e_pair] * n_items + e_item
        hit = np.searchsorted(qkey, e_key)
        hit = np.minimum(hit, len(qkey) - 1)
        member = qkey[hit] == e_key
        e_w = np.where(member, qw[hit], 0.0)

        sim = np.add.reduceat(e_w, pair_start[:-1]) if len(e_w) else np.zeros(0)
        sim = sim / np.maximum(qnorm[c_row], 1e-12) * self.sess_factor_[c_sess]

        # top-k neighbours per query (ties: the more recent session)
        o = np.lexsort((-c_sess, -sim, c_row))
        o = o[(_rank_within_rows(c_row[o]) < cfg.k) & (sim[o] > 0)]
        pairs = np.sort(o)  # back to candidate order
        if len(pairs) == 0:
            return None

        # per-pair anchor: last position in the neighbour of a shared item; most recent shared age
        e_pos = self.sess_pos_[e_idx].astype(np.int64)
        pos_star = np.maximum.reduceat(np.where(member, e_pos, 0), pair_start[:-1])
        big = np.iinfo(np.int64).max
        age_star = np.minimum.reduceat(np.where(member, qage[hit], big), pair_start[:-1])

        # item weights of the kept neighbours
        keep_pair = np.zeros(len(c_row), dtype=bool)
        keep_pair[pairs] = True
        ke = keep_pair[e_pair]
        k_pair, k_item, k_pos = e_pair[ke], e_item[ke], e_pos[ke]
        w = sim[k_pair]
        if cfg.lambda_neighbour is not None:
            w = w * np.exp(-np.abs(k_pos - pos_star[k_pair]) / cfg.lambda_neighbour)
        if cfg.lambda_recency is not None:
            w = w * np.exp(-age_star[k_pair] / cfg.lambda_recency)
        if cfg.lambda_idf is not None:
            w = w * (1.0 + cfg.lambda_idf * self.idf_[k_item])
        # sum per (query, item) and write into the block
        scores = sp.csr_matrix((w, (c_row[k_pair], k_item)), shape=(n, n_items))
        scores.sum_duplicates()
        return scores.astype(np.float32)

    def _position_weight(self, age: np.ndarray) -> np.ndarray:
        cfg: SessionKNNConfig = self.config
        a = age.astype(np.float64)
        if cfg.position_decay == "exp":
            return np.exp(-a / cfg.lambda_position)
        if cfg.position_decay == "linear":
            return np.maximum(0.0, 1.0 - a / cfg.lambda_position)
        return np.ones_like(a)

    # ------------------------------------------------------------------- save/load
    def _state(self) -> dict[str, Any]:
        state = {
            "sess_indptr_": self.sess_indptr_, "sess_items_": self.sess_items_,
            "sess_pos_": self.sess_pos_, "sess_user_": self.sess_user_,
            "sess_factor_": self.sess_factor_, "idf_": self.idf_, "popularity_": self.popularity_,
        }
        if self.user_tails_ is not None:
            state["user_tails_indptr_"] = self.user_tails_.indptr
            state["user_tails_values_"] = self.user_tails_.values
        return state

    def _set_state(self, state: Mapping[str, Any]) -> None:
        for key in ("sess_indptr_", "sess_items_", "sess_pos_", "sess_user_",
                    "sess_factor_", "idf_", "popularity_"):
            setattr(self, key, np.asarray(state[key]))
        self.user_tails_ = Ragged(np.asarray(state["user_tails_indptr_"]),
                                  np.asarray(state["user_tails_values_"])) \
            if "user_tails_indptr_" in state else None
        self._build_index()
