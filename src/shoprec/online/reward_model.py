"""A reward model for the direct and doubly robust estimators: q̂(context, action, position).

One scikit-learn model per position (as OBP's ``RegressionModel`` does), over the row's context
features joined with the action's features; logistic regression for 0/1 rewards, ridge otherwise.
``fit_predict`` cross-fits: the rows of each fold are predicted by a model that did not see them, so
DR's correction term stays unbiased by the model's own fit (Chernozhukov et al.'s cross-fitting).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .estimators import LoggedFeedback

__all__ = ["RewardModel"]


def _as_csr(x: np.ndarray | sp.spmatrix | None, n: int) -> sp.csr_matrix:
    if x is None:
        return sp.csr_matrix((n, 0), dtype=np.float64)
    return sp.csr_matrix(x, dtype=np.float64)


@dataclass
class RewardModel:
    """``fit_predict(log, context, action_features)`` → float64 (n, n_actions): every action's
    predicted reward on every row, at the row's position.

    ``context`` (n, d) and ``action_features`` (n_actions, f) may be dense or sparse (one-hot);
    without ``action_features`` each action is its own one-hot column. ``C`` is the inverse
    regularisation of the logistic model (OBP's OBD example uses 100), ``alpha`` the ridge's."""

    n_folds: int = 3
    C: float = 100.0
    alpha: float = 1.0
    max_iter: int = 1000
    seed: int = 0

    def _design(self, context: sp.csr_matrix, rows: np.ndarray, actions: np.ndarray,
                action_features: sp.csr_matrix) -> sp.csr_matrix:
        return sp.hstack([context[rows], action_features[actions]], format="csr")

    def _model(self, binary: bool):
        if binary:
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=self.C, max_iter=self.max_iter)
        from sklearn.linear_model import Ridge

        return Ridge(alpha=self.alpha)

    def fit_predict(self, log: LoggedFeedback, context=None, action_features=None) -> np.ndarray:
        n, A = len(log), log.n_actions
        X = _as_csr(context, n)
        F = sp.identity(A, format="csr", dtype=np.float64) if action_features is None else _as_csr(action_features, A)
        if F.shape[0] != A:
            raise ValueError(f"action_features has {F.shape[0]} rows; expected one per action ({A})")
        binary = bool(np.isin(log.reward, (0.0, 1.0)).all())
        rng = np.random.default_rng(self.seed)
        folds = rng.integers(0, max(self.n_folds, 1), size=n) if self.n_folds > 1 else np.zeros(n, np.int64)
        out = np.empty((n, A), np.float64)
        all_actions = np.arange(A)
        for pos in np.unique(log.position):
            at = log.position == pos
            for k in np.unique(folds[at]):
                test = np.flatnonzero(at & (folds == k))
                train = np.flatnonzero(at & (folds != k)) if self.n_folds > 1 else test
                out[test] = self._fit_one(log, X, F, train, test, all_actions, binary)
        return out

    def _fit_one(self, log, X, F, train, test, actions, binary) -> np.ndarray:
        y = log.reward[train]
        if binary and len(np.unique(y)) < 2:      # one class only: its rate is the prediction
            return np.full((len(test), len(actions)), float(y.mean()) if len(y) else 0.0)
        model = self._model(binary)
        model.fit(self._design(X, train, log.action[train], F), y)
        rows = np.repeat(test, len(actions))
        acts = np.tile(actions, len(test))
        D = self._design(X, rows, acts, F)
        pred = model.predict_proba(D)[:, 1] if binary else model.predict(D)
        return pred.reshape(len(test), len(actions))
