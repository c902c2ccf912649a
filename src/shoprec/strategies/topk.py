"""The one top-k kernel every strategy and the evaluator use."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def mask_scores(scores: np.ndarray, exclude: sp.csr_matrix | None) -> np.ndarray:
    """Set the excluded entries of a dense (n, n_items) score block to -inf, in place."""
    if exclude is not None and exclude.nnz:
        exclude = sp.csr_matrix(exclude)
        rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
        scores[rows, exclude.indices] = -np.inf
    return scores


def topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest scores of each row, best first.

    Entries equal to ``-inf`` (excluded, or not scoreable) are never returned: their places hold
    index ``-1`` and score ``-inf``. Ties are broken by the lower item index, so results are
    deterministic.

    Returns
    -------
    (item_idx int32 (n, k), scores float32 (n, k))
    """
    n, m = scores.shape
    kk = min(k, m)
    if kk == 0:
        return np.full((n, k), -1, dtype=np.int32), np.full((n, k), -np.inf, dtype=np.float32)
    if kk < m:
        part = np.argpartition(scores, m - kk, axis=1)[:, m - kk:]
    else:
        part = np.broadcast_to(np.arange(m), (n, m)).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    # sort by score desc, then by item index asc (stable tie-break)
    order = np.lexsort((part, -vals), axis=1) if n else part
    idx = np.take_along_axis(part, order, axis=1).astype(np.int32)
    vals = np.take_along_axis(vals, order, axis=1).astype(np.float32)
    # argpartition picks an arbitrary subset among ties at the boundary; make it the lowest indices
    boundary = vals[:, -1:]
    has_ties = np.sum(scores == boundary, axis=1) > np.sum(vals == boundary, axis=1)
    if has_ties.any():
        rows = np.flatnonzero(has_ties)
        sub = scores[rows]
        b = boundary[rows]
        greater = sub > b
        eq = sub == b
        need = kk - greater.sum(axis=1)
        sel = greater | (eq & (np.cumsum(eq, axis=1) <= need[:, None]))
        cols = np.nonzero(sel)[1].reshape(len(rows), kk)
        cvals = np.take_along_axis(sub, cols, axis=1)
        order = np.lexsort((cols, -cvals), axis=1)
        idx[rows] = np.take_along_axis(cols, order, axis=1).astype(np.int32)
        vals[rows] = np.take_along_axis(cvals, order, axis=1)
    bad = ~np.isfinite(vals) & (vals < 0)
    idx[bad] = -1
    if kk < k:
        idx = np.pad(idx, ((0, 0), (0, k - kk)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, k - kk)), constant_values=-np.inf)
    return idx, vals
