"""A/B tests: sticky assignment, an always-valid sequential test, and CUPED.

* :func:`assign` — a visitor's variant from a keyed hash (HMAC-SHA256 of experiment and visitor id
  under the shop's secret key), so it is the same in every session, worker and restart, and cannot be
  guessed or steered from outside; traffic shares are any positive weights.
* :class:`MSPRT` — the mixture sequential probability ratio test (Johari, Pekelis & Walsh, "Always
  valid inference", 2017) for the difference of two means, with a normal mixing distribution of
  variance ``tau2`` over the effect: after every look the always-valid p-value is
  ``min(p_prev, 1 / Λ)`` with ``Λ = √(V / (V + τ²)) · exp(τ² Δ² / (2 V (V + τ²)))`` (Δ the observed
  difference, V its variance). Peeking after every day keeps the false-positive rate at most α.
* :func:`cuped` — CUPED (Deng et al., 2013): ``y − θ (x − x̄)`` with the pre-period covariate ``x``
  and ``θ = cov(x, y) / var(x)`` pooled over the variants, which keeps the difference of means
  unbiased and shrinks its variance by ``1 − ρ²``.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["MSPRT", "assign", "cuped", "difference", "hash_fraction"]


def assign(visitor_ids: Sequence[str], experiment: str, shares: Sequence[float], key: bytes | str) -> np.ndarray:
    """int32 (n,): each visitor's variant index, by a keyed hash (module docstring)."""
    w = np.asarray(shares, np.float64)
    if w.ndim != 1 or len(w) < 2 or (w <= 0).any() or not np.isfinite(w).all():
        raise ValueError(f"an experiment needs two or more positive traffic shares, got {list(shares)}")
    edges = np.cumsum(w / w.sum())
    k = key.encode() if isinstance(key, str) else key
    if len(k) < 16:
        raise ValueError("the assignment key must be at least 16 bytes (a secret of the shop's)")
    frac = np.fromiter((hash_fraction(k, experiment, v) for v in visitor_ids), dtype=np.float64,
                       count=len(visitor_ids))
    return np.minimum(np.searchsorted(edges, frac, side="right"), len(w) - 1).astype(np.int32)


def hash_fraction(key: bytes, experiment: str, visitor: str) -> float:
    """The visitor's point in [0, 1) for ``experiment``: HMAC-SHA256 under ``key``, first 8 bytes."""
    digest = hmac.new(key, experiment.encode() + b"\0" + str(visitor).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def cuped(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """(adjusted y, θ): CUPED with covariate ``x`` (module docstring). θ = 0 when x is constant."""
    y = np.asarray(y, np.float64)
    x = np.asarray(x, np.float64)
    vx = x.var()
    theta = float(np.cov(x, y, ddof=0)[0, 1] / vx) if vx > 0 else 0.0
    return y - theta * (x - x.mean()), theta


def difference(y: np.ndarray, variant: np.ndarray, treatment: int = 1, control: int = 0) -> tuple[float, float]:
    """(mean of treatment − mean of control, the variance of that difference)."""
    a, b = y[variant == control], y[variant == treatment]
    if len(a) < 2 or len(b) < 2:
        return 0.0, float("inf")
    return float(b.mean() - a.mean()), float(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))


@dataclass
class MSPRT:
    """Always-valid test of "treatment − control = 0" over repeated looks (module docstring).

    ``tau2``: the mixing variance of the effect (on the scale of the difference of means; about the
    square of the smallest effect worth detecting); ``alpha``: the false-positive rate kept whatever
    the number of looks."""

    tau2: float
    alpha: float = 0.05
    p_value: float = 1.0
    looks: list[dict] = field(default_factory=list)

    def look(self, diff: float, var: float) -> float:
        """Update with the current difference and its variance; returns the always-valid p-value."""
        if np.isfinite(var) and var > 0:
            t = self.tau2
            log_lr = 0.5 * np.log(var / (var + t)) + t * diff * diff / (2 * var * (var + t))
            self.p_value = min(self.p_value, float(np.exp(-log_lr)) if log_lr > 0 else 1.0)
        self.looks.append({"difference": diff, "variance": var, "p_value": self.p_value})
        return self.p_value

    @property
    def significant(self) -> bool:
        return self.p_value <= self.alpha

    def interval(self, diff: float, var: float) -> tuple[float, float]:
        """The always-valid confidence interval at this look: the Δ₀ with Λ(Δ − Δ₀) < 1/α."""
        t = self.tau2
        # Λ(d) ≥ 1/α  ⇔  d² ≥ 2V(V+τ²)/τ² · (log(1/α) − ½ log(V/(V+τ²)))
        half = np.sqrt(max(2 * var * (var + t) / t * (np.log(1 / self.alpha) - 0.5 * np.log(var / (var + t))), 0.0))
        return diff - half, diff + half
