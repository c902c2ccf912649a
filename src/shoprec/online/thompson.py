"""Thompson sampling: posterior draws, and the exact-in-the-limit distribution of what it shows.

:func:`ranking_distribution` is the probability that Bernoulli Thompson sampling over ``A`` actions
(Beta(α, β) posteriors) puts each action at each of the first ``L`` positions of a list, when a
list is the actions sorted by one posterior draw each: the evaluated policy's action distribution
an off-policy estimator needs, computed by Monte Carlo (``n_sim`` draws, vectorised).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ranking_distribution"]


def ranking_distribution(alpha: np.ndarray, beta: np.ndarray, len_list: int = 1, n_sim: int = 100_000,
                         seed: int = 0, chunk: int = 10_000) -> np.ndarray:
    """float64 (A, len_list): P(action a at position l) under Thompson sampling with Beta(α_a, β_a)."""
    alpha = np.asarray(alpha, np.float64)
    beta = np.asarray(beta, np.float64)
    if alpha.shape != beta.shape or alpha.ndim != 1:
        raise ValueError("alpha and beta must be 1-d arrays of one length (one per action)")
    if (alpha <= 0).any() or (beta <= 0).any():
        raise ValueError("alpha and beta must be > 0")
    A = len(alpha)
    if not 1 <= len_list <= A:
        raise ValueError(f"len_list must be in [1, {A}]")
    rng = np.random.default_rng(seed)
    counts = np.zeros((A, len_list), np.int64)
    for lo in range(0, n_sim, chunk):
        b = min(chunk, n_sim - lo)
        theta = rng.beta(alpha, beta, size=(b, A))
        top = np.argsort(-theta, axis=1, kind="stable")[:, :len_list]
        for pos in range(len_list):
            counts[:, pos] += np.bincount(top[:, pos], minlength=A)
    return counts / n_sim
