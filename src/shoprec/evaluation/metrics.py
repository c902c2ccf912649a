"""Vectorised top-K recommendation metrics.

All functions are pure (they never modify their inputs) and vectorised over
users with numpy / scipy.sparse; every floating-point result is ``float64``.

Conventions
-----------
recommended
    Integer array of shape ``(n_users, K)``. Row ``u`` holds the item indices
    recommended to user ``u`` in rank order (column 0 is the top item). A list
    with fewer than ``K`` items is padded with ``-1``; padding is never a hit
    and is ignored by the beyond-accuracy metrics. Lists are assumed to hold
    no duplicate items (a duplicated relevant item would be counted twice).
relevant
    ``scipy.sparse`` matrix (CSR preferred) of shape ``(n_users, n_items)``;
    every stored entry with a nonzero value marks a relevant (held-out) item.
    Relevance is binary: the value itself is ignored.

Users without relevant items
    The per-user accuracy metrics (:func:`ranking_metrics`, :func:`auc`) are
    ``NaN`` for users without any relevant item: they are undefined, not zero.
    Average them over the users that do have a relevant item with
    ``np.nanmean`` -- :func:`summarise` does exactly that.

Definitions follow the full-ranking evaluators of LightGCN / BARS
(recall divides by ``|relevant|``, not by ``min(|relevant|, k)``).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import numpy as np
import scipy.sparse as sp

__all__ = [
    "hits",
    "ranking_metrics",
    "auc",
    "catalogue_coverage",
    "gini_index",
    "novelty",
    "intra_list_diversity",
    "summarise",
    "METRIC_NAMES",
]

#: Metric name prefixes produced by :func:`ranking_metrics` (``f"{name}@{k}"``).
METRIC_NAMES: tuple[str, ...] = ("recall", "precision", "hr", "ndcg", "mrr", "map")

# Upper bound on the number of elements of a temporary (users x k x k or
# users x k x d) array in the batched computations (~64 MB of float64).
_BATCH_ELEMENTS = 8_000_000


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------
def _check_recommended(recommended: np.ndarray, n_items: int | None = None) -> np.ndarray:
    rec = np.asarray(recommended)
    if rec.ndim != 2:
        raise ValueError(
            f"recommended must be a 2-D array of shape (n_users, K), got shape {rec.shape}"
        )
    if rec.size and not np.issubdtype(rec.dtype, np.integer):
        raise ValueError(f"recommended must hold integer item indices, got dtype {rec.dtype}")
    rec = rec.astype(np.int64, copy=False)
    if rec.size:
        lo = int(rec.min())
        if lo < -1:
            raise ValueError(
                f"recommended holds the index {lo}; item indices must be >= 0 (-1 = padding)"
            )
        if n_items is not None:
            hi = int(rec.max())
            if hi >= n_items:
                raise ValueError(
                    f"recommended holds the item index {hi}, but there are only {n_items} items"
                )
    return rec


def _check_k(k: int, K: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > K:
        raise ValueError(
            f"k={k} exceeds the length of the recommendation lists (K={K}); "
            f"recommend at least {k} items per user or lower k"
        )
    return k


def _clean_relevant(relevant, n_users: int | None = None) -> sp.csr_matrix:
    """Binary CSR copy with sorted, unique indices and no explicit zeros."""
    if not sp.issparse(relevant):
        raise ValueError(
            f"relevant must be a scipy.sparse matrix (n_users, n_items), got {type(relevant).__name__}"
        )
    rel = sp.csr_matrix(relevant, copy=True)
    rel.sum_duplicates()  # also sorts the indices
    rel.data = (rel.data != 0).astype(np.int8)
    rel.eliminate_zeros()
    if n_users is not None and rel.shape[0] != n_users:
        raise ValueError(
            f"relevant has {rel.shape[0]} rows but recommended has {n_users} users"
        )
    return rel


def _n_relevant(rel: sp.csr_matrix) -> np.ndarray:
    return np.diff(rel.indptr).astype(np.int64)


def _hits_clean(rec: np.ndarray, rel: sp.csr_matrix) -> np.ndarray:
    """Hit matrix of a validated ``rec`` against a cleaned ``rel``."""
    n_users, n_items = rel.shape
    if rec.size == 0 or rel.nnz == 0:
        return np.zeros(rec.shape, dtype=bool)
    # Keys row * n_items + item are sorted: rows ascend, indices sorted per row.
    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(rel.indptr))
    keys = rows * n_items + rel.indices.astype(np.int64)
    query = np.arange(n_users, dtype=np.int64)[:, None] * n_items + rec
    pos = np.searchsorted(keys, query)
    np.minimum(pos, keys.size - 1, out=pos)
    return (keys[pos] == query) & (rec >= 0)


# --------------------------------------------------------------------------
# accuracy
# --------------------------------------------------------------------------
def hits(recommended: np.ndarray, relevant) -> np.ndarray:
    """Which recommended items are relevant.

    Parameters
    ----------
    recommended : np.ndarray of int, shape (n_users, K)
        Item indices in rank order; ``-1`` pads short lists.
    relevant : scipy.sparse matrix, shape (n_users, n_items)
        Any stored nonzero entry marks a relevant item.

    Returns
    -------
    np.ndarray of bool, shape (n_users, K)
        ``out[u, r]`` is True iff ``recommended[u, r]`` is relevant to user
        ``u``. Padding (``-1``) is never a hit. Users without relevant items
        get an all-False row.

    Raises
    ------
    ValueError
        If the shapes disagree or an index is outside ``[-1, n_items)``.

    Notes
    -----
    Implemented as one ``np.searchsorted`` of the keys ``user * n_items + item``
    into the sorted keys of the relevant entries: O((nnz + n_users K) log nnz),
    no per-user Python loop.
    """
    rel = _clean_relevant(relevant)
    rec = _check_recommended(recommended, rel.shape[1])
    if rec.shape[0] != rel.shape[0]:
        raise ValueError(
            f"relevant has {rel.shape[0]} rows but recommended has {rec.shape[0]} users"
        )
    return _hits_clean(rec, rel)


def ranking_metrics(
    recommended: np.ndarray, relevant, ks: Iterable[int] = (10, 20)
) -> dict[str, np.ndarray]:
    """Per-user top-k accuracy metrics with binary relevance.

    Parameters
    ----------
    recommended : np.ndarray of int, shape (n_users, K)
        Item indices in rank order; ``-1`` pads short lists (never a hit).
    relevant : scipy.sparse matrix, shape (n_users, n_items)
        Any stored nonzero entry marks a relevant item.
    ks : iterable of int, default (10, 20)
        Cut-offs; each must satisfy ``1 <= k <= K``.

    Returns
    -------
    dict[str, np.ndarray]
        For every ``k`` in ``ks`` the float64 arrays of shape ``(n_users,)``
        ``recall@k``, ``precision@k``, ``hr@k``, ``ndcg@k``, ``mrr@k`` and
        ``map@k``. With ``h_i`` = 1 if the item at 0-based position ``i`` is
        relevant, ``R`` = the number of relevant items of the user:

        - ``recall@k    = sum_{i<k} h_i / R``
        - ``precision@k = sum_{i<k} h_i / k`` (padding counts as a miss)
        - ``hr@k        = 1 if any h_i (i<k) else 0``
        - ``ndcg@k      = DCG / IDCG`` with ``DCG = sum_{i<k} h_i / log2(i+2)``
          and ``IDCG = sum_{i<min(R,k)} 1 / log2(i+2)``
        - ``mrr@k       = 1 / (i+1)`` for the first hit ``i < k``, else 0
        - ``map@k       = sum_{i<k} h_i * precision@(i+1) / min(R, k)``

        Users with ``R == 0`` get NaN in every array; average with
        ``np.nanmean`` (see :func:`summarise`).

    Raises
    ------
    ValueError
        If ``ks`` is empty, a ``k`` is not in ``[1, K]``, or the inputs are
        inconsistent.
    """
    rel = _clean_relevant(relevant)
    rec = _check_recommended(recommended, rel.shape[1])
    n_users, K = rec.shape
    if n_users != rel.shape[0]:
        raise ValueError(
            f"relevant has {rel.shape[0]} rows but recommended has {n_users} users"
        )
    ks = [_check_k(k, K) for k in ks]
    if not ks:
        raise ValueError("ks must name at least one cut-off")
    kmax = max(ks)

    h = _hits_clean(rec[:, :kmax], rel)  # only the first kmax columns matter
    hf = h.astype(np.float64)
    n_rel = _n_relevant(rel)
    has_rel = n_rel > 0
    n_rel_f = np.where(has_rel, n_rel, 1).astype(np.float64)

    positions = np.arange(kmax, dtype=np.float64)
    discounts = 1.0 / np.log2(positions + 2.0)
    cum_discounts = np.cumsum(discounts)
    cum_hits = np.cumsum(hf, axis=1)  # hits in the top i+1
    prec_at = cum_hits / (positions + 1.0)  # precision@(i+1)
    any_hit_cum = cum_hits > 0
    first_hit = np.where(h.any(axis=1), np.argmax(h, axis=1), kmax)  # kmax = no hit

    out: dict[str, np.ndarray] = {}
    for k in ks:
        n_hits = cum_hits[:, k - 1]
        ideal_len = np.minimum(n_rel, k)  # >= 1 where has_rel
        idcg = cum_discounts[np.maximum(ideal_len, 1) - 1]
        dcg = hf[:, :k] @ discounts[:k]
        ap = (hf[:, :k] * prec_at[:, :k]).sum(axis=1) / np.maximum(ideal_len, 1)
        mrr = np.where(first_hit < k, 1.0 / (first_hit + 1.0), 0.0)

        values = {
            "recall": n_hits / n_rel_f,
            "precision": n_hits / k,
            "hr": any_hit_cum[:, k - 1].astype(np.float64),
            "ndcg": dcg / idcg,
            "mrr": mrr,
            "map": ap,
        }
        for name in METRIC_NAMES:
            out[f"{name}@{k}"] = np.where(has_rel, values[name], np.nan).astype(np.float64)
    return out


def _row_searchsorted(
    sorted_rows: np.ndarray, rows: np.ndarray, values: np.ndarray, lengths: np.ndarray,
    side: str,
) -> np.ndarray:
    """``np.searchsorted(sorted_rows[r, :lengths[r]], v, side)`` for many (r, v) at once.

    A branch-free binary search run for all queries in lock-step: the Python
    loop has ``ceil(log2(n_cols + 1))`` iterations, independent of the number
    of users.
    """
    lo = np.zeros(rows.size, dtype=np.int64)
    hi = lengths.astype(np.int64, copy=True)
    n_cols = sorted_rows.shape[1]
    for _ in range(int(np.ceil(np.log2(n_cols + 1))) + 1):
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        v = sorted_rows[rows, np.minimum(mid, n_cols - 1)]
        go_right = (v < values) if side == "left" else (v <= values)
        lo = np.where(active & go_right, mid + 1, lo)
        hi = np.where(active & ~go_right, mid, hi)
    return lo


def auc(
    scores: np.ndarray, relevant, exclude=None, *, batch_size: int | None = None
) -> np.ndarray:
    """Per-user ROC AUC of a full-ranking score matrix.

    The AUC of a user is the probability that a random relevant item scores
    higher than a random non-relevant one (Mann-Whitney U / (n_pos n_neg));
    ties count 1/2.

    Parameters
    ----------
    scores : np.ndarray of float, shape (n_users, n_items)
        Higher = more recommended. ``+-inf`` are allowed; NaN is not.
    relevant : scipy.sparse matrix, shape (n_users, n_items)
        Nonzero entries are the positives; every other non-excluded item of
        the row is a negative.
    exclude : scipy.sparse matrix, shape (n_users, n_items), optional
        Nonzero entries (typically the training interactions) are removed from
        both the positives and the negatives.
    batch_size : int, optional
        Users processed at once; by default chosen so that the temporary
        ``batch_size x n_items`` arrays stay around 64 MB.

    Returns
    -------
    np.ndarray of float64, shape (n_users,)
        AUC in [0, 1]; NaN for users without positives or without negatives.

    Raises
    ------
    ValueError
        On inconsistent shapes or NaN scores.

    Notes
    -----
    Each row is sorted once (excluded items are set to NaN, which sorts last
    and is cut off); the average rank of every positive among the remaining
    items, ``(#lower + #lower-or-equal + 1) / 2``, is found by a vectorised
    binary search, and ``U = sum(rank of positives) - n_pos (n_pos + 1) / 2``.
    Cost: one ``np.sort`` of the score matrix.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_users, n_items), got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; use -inf for items that must rank last")
    rel = _clean_relevant(relevant)
    if rel.shape != s.shape:
        raise ValueError(f"relevant has shape {rel.shape} but scores has shape {s.shape}")
    exc = None
    if exclude is not None:
        exc = _clean_relevant(exclude)
        if exc.shape != s.shape:
            raise ValueError(f"exclude has shape {exc.shape} but scores has shape {s.shape}")
    n_users, n_items = s.shape
    if batch_size is None:
        batch_size = max(1, _BATCH_ELEMENTS // max(n_items, 1))
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    out = np.full(n_users, np.nan, dtype=np.float64)
    if n_items == 0:
        return out
    for start in range(0, n_users, batch_size):  # batches bound memory, not a per-user loop
        stop = min(start + batch_size, n_users)
        n_b = stop - start
        pos = rel[start:stop]
        pr = np.repeat(np.arange(n_b), np.diff(pos.indptr))
        pc = pos.indices
        if exc is not None:
            excluded = exc[start:stop].toarray().astype(bool)
            keep = ~excluded[pr, pc]
            pr, pc = pr[keep], pc[keep]
            block = np.where(excluded, np.nan, s[start:stop])
            n_valid = n_items - excluded.sum(axis=1)
        else:
            block = s[start:stop]
            n_valid = np.full(n_b, n_items, dtype=np.int64)
        sorted_rows = np.sort(block, axis=1)  # NaN (excluded) sort to the end
        values = block[pr, pc]
        lengths = n_valid[pr]
        n_lower = _row_searchsorted(sorted_rows, pr, values, lengths, "left")
        n_lower_eq = _row_searchsorted(sorted_rows, pr, values, lengths, "right")
        ranks = (n_lower + n_lower_eq + 1) / 2.0  # 1-based average rank
        n_pos = np.bincount(pr, minlength=n_b).astype(np.float64)
        rank_sum = np.bincount(pr, weights=ranks, minlength=n_b)
        n_neg = n_valid - n_pos
        ok = (n_pos > 0) & (n_neg > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            u_stat = rank_sum - n_pos * (n_pos + 1.0) / 2.0
            out[start:stop] = np.where(ok, u_stat / (n_pos * n_neg), np.nan)
    return out


# --------------------------------------------------------------------------
# beyond accuracy
# --------------------------------------------------------------------------
def _top_k(recommended: np.ndarray, k: int, n_items: int | None = None) -> np.ndarray:
    rec = _check_recommended(recommended, n_items)
    return rec[:, : _check_k(k, rec.shape[1])]


def _exposure(recommended: np.ndarray, n_items: int, k: int) -> np.ndarray:
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    top = _top_k(recommended, k, n_items)
    return np.bincount(top[top >= 0], minlength=n_items)


def catalogue_coverage(recommended: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one top-k list.

    Parameters
    ----------
    recommended : np.ndarray of int, shape (n_users, K)
        Item indices in rank order; ``-1`` padding is ignored.
    n_items : int
        Catalogue size.
    k : int
        Cut-off, ``1 <= k <= K``.

    Returns
    -------
    float
        ``|{items in some top-k list}| / n_items`` in [0, 1].
    """
    counts = _exposure(recommended, n_items, k)
    return float(np.count_nonzero(counts) / n_items)


def gini_index(recommended: np.ndarray, n_items: int, k: int) -> float:
    """Gini coefficient of the item exposure in the top-k lists.

    Parameters
    ----------
    recommended : np.ndarray of int, shape (n_users, K)
        Item indices in rank order; ``-1`` padding is ignored.
    n_items : int
        Catalogue size; items never recommended count with exposure 0.
    k : int
        Cut-off, ``1 <= k <= K``.

    Returns
    -------
    float
        ``G = sum_i (2i - n - 1) x_(i) / (n sum_i x_i)`` over the ascending
        exposure counts ``x_(1) <= ... <= x_(n)``: 0 when every item is
        recommended equally often, ``(n-1)/n`` (-> 1) when one item gets all
        exposure. NaN when nothing is recommended at all.
    """
    counts = np.sort(_exposure(recommended, n_items, k)).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    n = counts.size
    idx = np.arange(1, n + 1, dtype=np.float64)
    return float(np.sum((2.0 * idx - n - 1.0) * counts) / (n * total))


def novelty(
    recommended: np.ndarray, item_popularity: np.ndarray, n_users: int, k: int
) -> np.ndarray:
    """Per-user mean self-information of the recommended items.

    Parameters
    ----------
    recommended : np.ndarray of int, shape (n_users_eval, K)
        Item indices in rank order; ``-1`` padding is ignored.
    item_popularity : np.ndarray, shape (n_items,)
        Number of training users who interacted with each item; clipped at 1
        so that unseen items get the maximal (finite) self-information.
    n_users : int
        Number of training users (denominator of the popularity share).
    k : int
        Cut-off, ``1 <= k <= K``.

    Returns
    -------
    np.ndarray of float64, shape (n_users_eval,)
        Mean over the (non-padding) top-k items of ``-log2(pop_i / n_users)``;
        NaN for an empty list. Higher = more novel (not bounded by 1).
    """
    pop = np.asarray(item_popularity, dtype=np.float64)
    if pop.ndim != 1:
        raise ValueError(f"item_popularity must be 1-D, got shape {pop.shape}")
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1, got {n_users}")
    top = _top_k(recommended, k, pop.size)
    info = -np.log2(np.maximum(pop, 1.0) / float(n_users))
    valid = top >= 0
    per_item = np.where(valid, info[np.where(valid, top, 0)], 0.0) if pop.size else np.zeros(top.shape)
    n_valid = valid.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n_valid > 0, per_item.sum(axis=1) / n_valid, np.nan)


def intra_list_diversity(
    recommended: np.ndarray, item_features: np.ndarray, k: int
) -> np.ndarray:
    """Per-user mean pairwise distance between the items of a top-k list.

    Parameters
    ----------
    recommended : np.ndarray of int, shape (n_users, K)
        Item indices in rank order; ``-1`` padding is ignored.
    item_features : np.ndarray
        Either a 1-D integer array of category codes, shape ``(n_items,)``:
        distance 1 if two items' categories differ, else 0; code ``-1`` means
        unknown and every pair involving it is skipped. Or a 2-D float array
        of embeddings, shape ``(n_items, d)``: cosine distance ``1 - cos`` in
        [0, 2]; pairs involving an all-zero embedding are skipped.
    k : int
        Cut-off, ``1 <= k <= K``.

    Returns
    -------
    np.ndarray of float64, shape (n_users,)
        Mean distance over the unordered pairs ``i < j`` of the list; NaN when
        a list has fewer than two usable items.

    Notes
    -----
    Vectorised over users in batches (the temporaries are
    ``batch x k x k``), so memory stays bounded.
    """
    feats = np.asarray(item_features)
    if feats.ndim not in (1, 2):
        raise ValueError(
            f"item_features must be 1-D category codes or 2-D embeddings, got shape {feats.shape}"
        )
    n_items = feats.shape[0]
    top = _top_k(recommended, k, n_items)
    n_users, kk = top.shape
    out = np.full(n_users, np.nan, dtype=np.float64)
    if n_users == 0 or kk < 2 or n_items == 0:
        return out

    categorical = feats.ndim == 1
    if categorical:
        if feats.size and not np.issubdtype(feats.dtype, np.integer):
            raise ValueError(f"1-D item_features must be integer category codes, got {feats.dtype}")
        codes = feats.astype(np.int64)
        width = kk
    else:
        emb = feats.astype(np.float64)
        norms = np.linalg.norm(emb, axis=1)
        usable_item = norms > 0
        emb = emb / np.where(usable_item, norms, 1.0)[:, None]
        width = max(kk, emb.shape[1])

    upper = np.triu(np.ones((kk, kk), dtype=bool), 1)
    batch = max(1, _BATCH_ELEMENTS // (kk * width))
    for start in range(0, n_users, batch):  # batches bound memory, not a per-user loop
        block = top[start : start + batch]
        safe = np.where(block >= 0, block, 0)
        if categorical:
            c = np.where(block >= 0, codes[safe], -1)
            usable = c >= 0
            dist = (c[:, :, None] != c[:, None, :]).astype(np.float64)
        else:
            usable = (block >= 0) & usable_item[safe]
            e = emb[safe]
            sim = np.clip(np.matmul(e, e.transpose(0, 2, 1)), -1.0, 1.0)
            dist = 1.0 - sim
        pairs = usable[:, :, None] & usable[:, None, :] & upper
        n_pairs = pairs.sum(axis=(1, 2))
        total = np.where(pairs, dist, 0.0).sum(axis=(1, 2))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[start : start + batch] = np.where(n_pairs > 0, total / n_pairs, np.nan)
    return out


# --------------------------------------------------------------------------
# aggregation
# --------------------------------------------------------------------------
def summarise(per_user: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Average per-user metric arrays, ignoring NaN (users without relevant items).

    Parameters
    ----------
    per_user : mapping of str to np.ndarray
        E.g. the output of :func:`ranking_metrics`, possibly extended with
        :func:`auc`, :func:`novelty`, ...

    Returns
    -------
    dict[str, float]
        ``np.nanmean`` of each array (same keys, same order); NaN for an array
        that is empty or all NaN (without a RuntimeWarning).
    """
    result: dict[str, float] = {}
    for name, values in per_user.items():
        arr = np.asarray(values, dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=RuntimeWarning)
            result[name] = float(np.nanmean(arr)) if arr.size else float("nan")
    return result
