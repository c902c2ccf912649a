"""Off-policy evaluation as one call: what would ``target`` earn on the traffic in ``table``?

:func:`evaluate_policy` fits the reward model once (when an estimator needs one), runs each named
estimator with a bootstrap interval, and returns one :class:`~shoprec.online.estimators.Estimate` per
estimator. :func:`target_policy` turns a short policy spec (what ``shoprec ope --policy`` takes) into
the (n rows, n actions) matrix of the evaluated policy's probabilities:

* ``uniform`` — every action equally likely;
* ``arm:NAME`` — always the named action;
* ``weights:NAME=P,NAME=P,…`` — a fixed distribution (the rest get 0; must sum to 1);
* ``thompson:PATH.json[#KEY]`` — Bernoulli Thompson sampling over ranked lists from a Beta prior
  ``{"alpha": [...], "beta": [...]}`` (under ``KEY`` when given), each row at its position, by
  Monte Carlo (:func:`~shoprec.online.thompson.ranking_distribution`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .estimators import Estimate, estimator
from .logs import FeedbackTable
from .reward_model import RewardModel
from .thompson import ranking_distribution

__all__ = ["DEFAULT_ESTIMATORS", "SLATE_ESTIMATORS", "evaluate_policy", "target_policy"]

DEFAULT_ESTIMATORS = ("ips", "snips", "dm", "dr", "switch-dr")
SLATE_ESTIMATORS = ("iips", "rips", "sips")


def target_policy(spec: str, table: FeedbackTable, *, n_sim: int = 100_000, seed: int = 0) -> np.ndarray:
    """float64 (n, A): the policy ``spec`` names (module docstring), on every row of ``table``."""
    log = table.log
    n, A = len(log), log.n_actions
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "uniform":
        return np.full((n, A), 1.0 / A)
    if kind == "arm":
        a = _action_index(arg, table)
        out = np.zeros((n, A))
        out[:, a] = 1.0
        return out
    if kind == "weights":
        p = np.zeros(A)
        for part in filter(None, (s.strip() for s in arg.split(","))):
            name, eq, val = part.partition("=")
            if not eq:
                raise ValueError(f"policy {spec!r}: expected NAME=PROBABILITY pairs, got {part!r}")
            try:
                p[_action_index(name, table)] = float(val)
            except ValueError as e:
                if "not a" in str(e) or "could not convert" in str(e):
                    raise ValueError(f"policy {spec!r}: {val!r} is not a probability") from None
                raise
        if (p < 0).any() or not np.isclose(p.sum(), 1.0, atol=1e-6):
            raise ValueError(f"policy {spec!r}: the probabilities must be ≥ 0 and sum to 1 (they sum to {p.sum():g})")
        return np.tile(p, (n, 1))
    if kind == "thompson":
        path, _, key = arg.partition("#")
        try:
            prior = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"policy {spec!r}: no file {path}") from None
        if key:
            if key not in prior:
                raise ValueError(f"policy {spec!r}: {path} has no key {key!r} (it has {sorted(prior)})")
            prior = prior[key]
        alpha, beta = np.asarray(prior.get("alpha", []), float), np.asarray(prior.get("beta", []), float)
        if len(alpha) != A or len(beta) != A:
            raise ValueError(f"policy {spec!r}: the prior has {len(alpha)} alphas and {len(beta)} betas; "
                             f"the log has {A} actions")
        L = int(log.position.max()) + 1
        dist = ranking_distribution(alpha, beta, len_list=L, n_sim=n_sim, seed=seed)   # (A, L)
        return np.ascontiguousarray(dist.T[log.position])
    raise ValueError(f"unknown policy {spec!r}: expected uniform, arm:NAME, weights:NAME=P,…, "
                     "or thompson:PRIOR.json[#KEY]")


def _action_index(name: str, table: FeedbackTable) -> int:
    name = name.strip()
    if name in table.actions:
        return table.actions.index(name)
    raise ValueError(f"unknown action {name!r}; the log's actions are {table.actions[:20]}"
                     + (" …" if len(table.actions) > 20 else ""))


def evaluate_policy(table: FeedbackTable, target: np.ndarray, estimators: Sequence[str] | None = None, *,
                    n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                    reward_model: RewardModel | None = None, tau: float = 100.0,
                    q_hat: np.ndarray | None = None) -> list[Estimate]:
    """Each estimator's value of ``target`` on ``table`` with a percentile bootstrap interval.

    The default estimators are the row-level five, plus the slate ones when the log has lists of more
    than one row. The reward model (default :class:`RewardModel`, cross-fitted) is fitted once, only
    when an estimator needs it, unless ``q_hat`` is given."""
    log = table.log
    if estimators is None:
        multi = len(np.unique(log.slate)) < len(log)
        estimators = DEFAULT_ESTIMATORS + (SLATE_ESTIMATORS if multi else ())
    made = [estimator(name, tau=tau) if name == "switch-dr" else estimator(name) for name in estimators]
    if q_hat is None and any(e.needs_model for e in made):
        model = reward_model or RewardModel(seed=seed)
        q_hat = model.fit_predict(log, table.context, table.action_features)
    return [e.estimate(log, target, q_hat, n_boot=n_boot, level=level, seed=seed) for e in made]
