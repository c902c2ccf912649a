"""EASE (Steck, 2019): a closed-form linear autoencoder, ``B = I - P / diag(P)``, ``P = (XᵀX + λI)⁻¹``.

Memory and time grow with the square and the cube of the number of items: the dense item×item Gram
matrix alone takes ``4·n²`` bytes (5.8 GB for 38k items) and its inverse ~n³/3 flops twice. When the
catalogue has more items than ``max_items``, EASE is fitted on the ``max_items`` items with the most
users and the other items get no EASE score (``-inf``: this strategy never proposes them; fuse with
another strategy to cover them). ``max_items`` defaults to 20,000 (a fit of about 1.5 min on 2 cores);
``memory_budget_gb`` caps it further so that a fit never outgrows the machine (peak ≈ 2·4·n² bytes).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from .. import progress
from ..data import ShopData
from ._parallel import by_row_chunks, map_in_threads
from .base import Queries, Strategy, StrategyConfig, register

log = logging.getLogger(__name__)

#: OpenBLAS' spotrf has crashed (SIGSEGV) on matrices of ~38k rows; above this size the inverse is
#: assembled from two half-size blocks (Schur complement), each well inside the safe range.
SAFE_CHOLESKY_N = 16384
#: Items per block of rows when the dense Gram matrix is built (bounds the sparse intermediate).
GRAM_BLOCK = 2048


class EASEConfig(StrategyConfig):
    binary: bool = Field(default=True, description="Fit on the binary user×item matrix.")
    l2: float = Field(default=500.0, gt=0, description="λ, the L2 penalty added to the Gram diagonal.")
    max_items: int | None = Field(
        default=20_000, ge=1,
        description="Most items EASE is fitted on (most popular first). The fit takes ~n³ flops: "
                    "20k items ≈ 1.5 min on 2 cores, 38k ≈ 8 min. None = as many as memory_budget_gb allows.")
    memory_budget_gb: float = Field(default=16.0, gt=0,
                                    description="Cap on the dense item×item matrices (about 2·4·n² bytes).")


def gram(x: sp.spmatrix) -> np.ndarray:
    """The dense float32 ``XᵀX`` of a sparse users×items matrix, :data:`GRAM_BLOCK` item rows at a
    time in threads (the sparse product of the whole matrix would first hold its ~n² entries in
    sparse form, 12 bytes each)."""
    xc = sp.csr_matrix(x, dtype=np.float32)
    xt = sp.csr_matrix(xc.T)
    n = xc.shape[1]
    g = np.empty((n, n), dtype=np.float32)

    def rows(start: int) -> None:
        stop = min(n, start + GRAM_BLOCK)
        g[start:stop] = (xt[start:stop] @ xc).toarray()

    for _ in map_in_threads(rows, range(0, n, GRAM_BLOCK)):
        pass
    return g


def spd_inverse(g: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite float32 matrix, overwriting ``g``.

    Cholesky (LAPACK ``potrf``/``potri``) up to :data:`SAFE_CHOLESKY_N`; larger matrices are split
    into 2×2 blocks and inverted through the Schur complement, recursively.
    """
    import scipy.linalg as sla  # here, not at import: ~0.1-0.2 s that listing the strategies need not pay

    n = g.shape[0]
    if n <= SAFE_CHOLESKY_N:
        c, info = sla.lapack.spotrf(g, lower=1, overwrite_a=1, clean=0)
        if info != 0:
            raise np.linalg.LinAlgError(f"Cholesky failed (info={info}); increase l2")
        inv, info = sla.lapack.spotri(c, lower=1, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"potri failed (info={info})")
        iu = np.triu_indices(n, 1)
        inv[iu] = inv.T[iu]
        return inv
    h = n // 2
    a_inv = spd_inverse(np.ascontiguousarray(g[:h, :h]))
    b = np.ascontiguousarray(g[:h, h:])
    ainv_b = a_inv @ b                      # h × (n-h)
    s = np.ascontiguousarray(g[h:, h:])
    s -= b.T @ ainv_b                        # Schur complement D - Bᵀ A⁻¹ B
    del b
    s_inv = spd_inverse(s)
    out = g  # reuse the input's memory
    t = ainv_b @ s_inv                       # A⁻¹ B S⁻¹
    out[h:, h:] = s_inv
    out[:h, h:] = -t
    out[h:, :h] = -t.T
    out[:h, :h] = a_inv + t @ ainv_b.T
    return out


@register
class EASEStrategy(Strategy):
    """Embarrassingly Shallow Autoencoder; scores are ``history @ B``."""

    name = "ease"
    Config = EASEConfig

    def _fit(self, data: ShopData) -> None:
        cfg = self.config
        x = self.user_items_
        n_items = x.shape[1]
        budget_items = int(np.sqrt(cfg.memory_budget_gb * 2**30 / (2 * 4)))
        limit = min(cfg.max_items or budget_items, budget_items, n_items)
        if limit < n_items:
            users_per_item = np.asarray((x > 0).sum(axis=0)).ravel()
            items = np.sort(np.argsort(-users_per_item, kind="stable")[:limit]).astype(np.int32)
            log.warning("EASE: %d items exceed the limit of %d; fitting on the %d most popular",
                        n_items, limit, limit)
        else:
            items = np.arange(n_items, dtype=np.int32)
        xs = sp.csr_matrix(x[:, items] if limit < n_items else x, dtype=np.float32)
        with progress.step(f"ease: inverting the {len(items):,}×{len(items):,} item Gram matrix"):
            g = gram(xs)
            g[np.diag_indices_from(g)] += cfg.l2
            p = spd_inverse(g)
        d = np.diag(p).copy()
        p /= -d[None, :]
        p[np.diag_indices_from(p)] = 0.0
        self.items_ = items
        # C order: a sparse × dense product ravels its dense operand, which copies a Fortran-ordered
        # matrix (the LAPACK inverse's layout) on every call
        self.weights_ = np.ascontiguousarray(p)

    def _score(self, queries: Queries) -> np.ndarray:
        hist = self.history(queries)
        if len(self.items_) == self.n_items_:
            return by_row_chunks(lambda rows: hist[rows] @ self.weights_, hist.shape[0], self.n_items_)
        sub = sp.csr_matrix(hist[:, self.items_])
        out = np.full((len(queries), self.n_items_), -np.inf, dtype=np.float32)
        out[:, self.items_] = by_row_chunks(lambda rows: sub[rows] @ self.weights_, sub.shape[0],
                                            len(self.items_))
        return out

    def top_anchor(self, queries: Queries, item_idx: np.ndarray) -> np.ndarray:
        """For each recommended item the history item with the largest ``h(q, i) · B[i, j]``; -1 when
        none is positive (or the item is outside EASE's items)."""
        item_idx = np.asarray(item_idx)
        n, k = item_idx.shape
        out = np.full((n, k), -1, dtype=np.int32)
        h = self.history(queries)
        pos = np.full(self.n_items_, -1, np.int64)
        pos[self.items_] = np.arange(len(self.items_))
        for r in range(n):
            lo, hi = h.indptr[r], h.indptr[r + 1]
            row = item_idx[r]
            col = np.where((row >= 0) & (row < self.n_items_), pos[np.clip(row, 0, self.n_items_ - 1)], -1)
            hist = h.indices[lo:hi]
            hp = pos[hist]
            keep = hp >= 0
            ok = col >= 0
            if not keep.any() or not ok.any():
                continue
            contrib = self.weights_[hp[keep]][:, col[ok]] * h.data[lo:hi][keep, None]
            best = contrib.argmax(axis=0)
            good = contrib[best, np.arange(contrib.shape[1])] > 0
            out[r, np.flatnonzero(ok)[good]] = hist[keep][best[good]]
        return out

    def _state(self) -> dict[str, Any]:
        return {"items_": self.items_, "weights_": self.weights_}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.items_ = state["items_"]
        self.weights_ = np.ascontiguousarray(state["weights_"])
