"""Candidate pairs: the hand-off from the strategies to fusion.

Each strategy proposes its top candidates per request; the union of (request, item) pairs, with
every strategy's normalised score, rank and raw score (missing where it did not propose the item),
is what every fusion method scores. Pure array code, no pipeline state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Pairs:
    """Candidate (request, item) pairs of a block with each strategy's evidence; fusion's input."""

    row: np.ndarray          # int64 (M,), sorted
    item: np.ndarray         # int32 (M,)
    norm: np.ndarray         # float32 (M, S): normalised score, 0 where the strategy did not propose it
    rank: np.ndarray         # float32 (M, S): 1-based rank, nan where not proposed
    raw: np.ndarray          # float32 (M, S): raw score, nan where not proposed
    sources: np.ndarray      # int64 (M,) bitmask

    def __len__(self) -> int:
        return len(self.row)

    def subset(self, mask: np.ndarray) -> "Pairs":
        """The pairs where ``mask`` (bool (M,)) holds, in the same order."""
        return Pairs(self.row[mask], self.item[mask], self.norm[mask], self.rank[mask], self.raw[mask],
                     self.sources[mask])

    @classmethod
    def empty(cls, n_strategies: int) -> "Pairs":
        e = np.zeros((0, n_strategies), np.float32)
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int32), e, e.copy(), e.copy(), np.zeros(0, np.int64))


def union_pairs(lists: list[tuple[int, np.ndarray, np.ndarray, np.ndarray | None]], n_rows: int, n_items: int,
                n_strategies: int, normalise: str) -> Pairs:
    """The union of the strategies' candidate lists: ``lists`` holds ``(strategy, item_idx (n, c),
    scores (n, c), keep)`` with -1 padding; ``normalise`` is ``minmax``, ``max`` or ``rank``, over each
    whole list; ``keep`` (bool (n, c) or None = all) then says which entries become pairs (a
    strategy's filler sets the scale of its list without being proposed)."""
    keys_l, s_l, norm_l, rank_l, raw_l = [], [], [], [], []
    for s, idx, val, keep in lists:
        valid = idx >= 0
        rows = np.broadcast_to(np.arange(n_rows)[:, None], idx.shape)
        ranks = np.broadcast_to(np.arange(1, idx.shape[1] + 1, dtype=np.float32), idx.shape)
        norm = normalise_scores(val, valid, normalise)
        if keep is not None:
            valid = valid & keep
        keys_l.append(rows[valid].astype(np.int64) * n_items + idx[valid])
        s_l.append(np.full(valid.sum(), s, np.int64))
        norm_l.append(norm[valid])
        rank_l.append(ranks[valid])
        raw_l.append(val[valid])
    if not keys_l:
        return Pairs.empty(n_strategies)
    keys = np.concatenate(keys_l)
    strat = np.concatenate(s_l)
    uniq, inv = np.unique(keys, return_inverse=True)
    M = len(uniq)
    norm = np.zeros((M, n_strategies), np.float32)
    rank = np.full((M, n_strategies), np.nan, np.float32)
    raw = np.full((M, n_strategies), np.nan, np.float32)
    norm[inv, strat] = np.concatenate(norm_l)
    rank[inv, strat] = np.concatenate(rank_l)
    raw[inv, strat] = np.concatenate(raw_l)
    sources = np.zeros(M, np.int64)
    np.bitwise_or.at(sources, inv, np.left_shift(np.int64(1), strat))
    return Pairs(uniq // n_items, (uniq % n_items).astype(np.int32), norm, rank, raw, sources)


def normalise_scores(val: np.ndarray, valid: np.ndarray, how: str) -> np.ndarray:
    """Per-row normalisation of a strategy's candidate scores to [0, 1]."""
    if how == "rank":
        k = val.shape[1]
        return np.broadcast_to(1.0 - np.arange(k, dtype=np.float32) / k, val.shape).copy()
    v = np.where(valid, val, np.nan).astype(np.float64)
    with np.errstate(all="ignore"):
        hi = np.nanmax(np.where(valid, v, -np.inf), axis=1, keepdims=True)
        if how == "max":
            out = np.where(hi > 0, v / hi, 1.0)
        else:
            lo = np.nanmin(np.where(valid, v, np.inf), axis=1, keepdims=True)
            span = hi - lo
            out = np.where(span > 0, (v - lo) / np.where(span > 0, span, 1.0), 1.0)
    return np.where(valid, np.nan_to_num(out, nan=0.0), 0.0).astype(np.float32)


def top_pairs(row: np.ndarray, item: np.ndarray, score: np.ndarray, sources: np.ndarray, n: int, k: int):
    """Per-row top-k of scored pairs (ties: lower item index first): (idx, val, src), each (n, k)."""
    idx = np.full((n, k), -1, np.int32)
    val = np.full((n, k), -np.inf, np.float32)
    src = np.zeros((n, k), np.int64)
    if not len(row):
        return idx, val, src
    order = np.lexsort((item, -score, row))
    r = row[order]
    starts = np.searchsorted(r, np.arange(n))
    pos = np.arange(len(r)) - starts[r]
    keep = pos < k
    o = order[keep]
    idx[r[keep], pos[keep]] = item[o]
    val[r[keep], pos[keep]] = score[o]
    src[r[keep], pos[keep]] = sources[o]
    return idx, val, src


def top_mask(row: np.ndarray, item: np.ndarray, score: np.ndarray, n: int, k: int) -> np.ndarray:
    """Bool per pair: among its request's top ``k`` by ``score`` (ties: lower item)."""
    order = np.lexsort((item, -score, row))
    r = row[order]
    starts = np.searchsorted(r, np.arange(n))
    pos = np.empty(len(order), np.int64)
    pos[order] = np.arange(len(r)) - starts[r]
    return pos < k
