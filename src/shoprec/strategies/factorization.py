"""Matrix factorisation through `implicit`: ALS (Hu, Koren & Volinsky 2008) and BPR (Rendle 2009)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from threadpoolctl import threadpool_limits

from ..data import ShopData
from .base import Queries, Strategy, StrategyConfig, register


class ALSConfig(StrategyConfig):
    factors: int = Field(default=256, ge=1)
    regularization: float = Field(default=1.0, ge=0)
    alpha: float = Field(default=20.0, gt=0, description="Confidence = 1 + alpha · weight.")
    iterations: int = Field(default=15, ge=1)
    seed: int = 42
    num_threads: int = Field(default=0, ge=0, description="0 = all cores.")


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
    for r in range(n):
        lo, hi = h.indptr[r], h.indptr[r + 1]
        row = item_idx[r]
        ok = (row >= 0) & (row < m)
        if lo == hi or not ok.any():
            continue
        hist = h.indices[lo:hi]
        contrib = (item_factors[hist] @ item_factors[row[ok]].T) * h.data[lo:hi, None]
        best = contrib.argmax(axis=0)
        good = contrib[best, np.arange(contrib.shape[1])] > 0
        out[r, np.flatnonzero(ok)[good]] = hist[best[good]]
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
            model.fit(self.user_items_, show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)

    def _user_vectors(self, queries: Queries) -> np.ndarray:
        known = np.maximum(queries.user_idx, 0)
        vecs = self.user_factors_[known].copy()
        fold = _changed_rows(queries)
        if fold.any():
            vecs[fold] = self._fold_in(self.history(queries.take(np.flatnonzero(fold))))
        return vecs

    def _fold_in(self, hist: sp.csr_matrix) -> np.ndarray:
        """One exact ALS least-squares step per row against the fixed item factors (batched, in C)."""
        from implicit.cpu.als import AlternatingLeastSquares
        cfg = self.config
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(factors=self.item_factors_.shape[1],
                                            regularization=cfg.regularization, alpha=cfg.alpha,
                                            num_threads=cfg.num_threads)
            model.item_factors = self.item_factors_
            return model.recalculate_user(np.arange(hist.shape[0]), sp.csr_matrix(hist, dtype=np.float32))

    def _score(self, queries: Queries) -> np.ndarray:
        return self._user_vectors(queries) @ self.item_factors_.T

    def top_anchor(self, queries: Queries, item_idx: np.ndarray) -> np.ndarray:
        """The history item whose factor is closest to each recommended item's (see factor_anchor)."""
        return factor_anchor(self.history(queries), self.item_factors_, item_idx)

    def _state(self) -> dict[str, Any]:
        return {"user_factors_": self.user_factors_, "item_factors_": self.item_factors_}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.user_factors_ = state["user_factors_"]
        self.item_factors_ = state["item_factors_"]


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
        with threadpool_limits(1, "blas"):  # implicit parallelises itself; BLAS threads slow it down
            model.fit(self.user_items_, show_progress=False)
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
