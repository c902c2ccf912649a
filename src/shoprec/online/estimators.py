"""Off-policy estimators: what a policy would earn, estimated from logs another policy produced.

Every estimator is a small class with one verb (the Open Bandit Pipeline's shape, ``HOUSE_STYLE.md``
pattern 13): ``estimate(log, target, q_hat=None) -> Estimate`` over the same arrays:

* ``log`` — :class:`LoggedFeedback`: per logged row the action the logging policy took, the reward it
  earned, the logging policy's probability of that action (at that position), optionally the slot
  position and the list (slate) the row belongs to;
* ``target`` — float (n, A): the evaluated policy's probability of every action on each logged row
  (at the row's position, for ranked lists);
* ``q_hat`` — float (n, A): a reward model's prediction for every action on each row (DM, DR and
  Switch-DR need it; :class:`~shoprec.online.reward_model.RewardModel` cross-fits one).

Each estimate is a ratio of sums over *units* (rows, or slates for the slate estimators), so a
bootstrap over units is one vectorised resampling (:func:`bootstrap_interval`): the reward model is
fitted once and held fixed across resamples, as OBP does.

With ``w = target[a] / pscore`` (importance weight) and ``r`` the reward:

==============  ======================================================================  ===============
estimator       per unit                                                                value
==============  ======================================================================  ===============
``ips``         ``w·r`` (``clip`` caps w)                                               mean
``snips``       ``w·r`` over ``w``                                                      Σ / Σw
``dm``          ``Σ_a target[a]·q̂[a]``                                                  mean
``dr``          ``Σ_a target[a]·q̂[a] + w·(r − q̂[a_logged])``                            mean
``switch-dr``   DR, with the correction kept only where ``w ≤ tau`` (Wang et al., 2017)  mean
``iips``        per slate ``Σ_k w_k·r_k`` (position-wise marginal weights; Li et al.)   mean over slates
``rips``        per slate ``Σ_k W_k·r_k``, ``W_k = Π_{j≤k} w_j`` (cascade; McInerney)   mean over slates
``sips``        per slate ``W_slate·Σ_k r_k``, ``W_slate = Π_k w_k``                    mean over slates
==============  ======================================================================  ===============

The row-level estimators value the policy per *row* (a click rate per shown slot in the Open Bandit
Dataset, a reward per request for a page's mix); the slate ones per *list*. ``rips``/``sips`` build the
cascade and slate weights from the per-position weights (exact when positions are filled one after the
other, each from the policy's distribution at that position given the row's context).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "DM", "DR", "IIPS", "IPS", "RIPS", "SIPS", "SNIPS", "Estimate", "Estimator", "LoggedFeedback",
    "SwitchDR", "bootstrap_interval", "estimator", "ESTIMATORS",
]


@dataclass(frozen=True)
class LoggedFeedback:
    """Logged bandit feedback, one row per shown (request, position): ``action`` int64 (n,) in
    ``[0, n_actions)``, ``reward`` float64 (n,), ``pscore`` float64 (n,) in (0, 1] (the logging
    policy's probability of that action there), ``position`` int64 (n,) (0 when not ranked), ``slate``
    int64 (n,) (the list each row belongs to; every row its own list when not given)."""

    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    n_actions: int
    position: np.ndarray | None = None
    slate: np.ndarray | None = None

    def __post_init__(self) -> None:
        a = np.asarray(self.action)
        n = len(a)
        object.__setattr__(self, "action", a.astype(np.int64, copy=False))
        object.__setattr__(self, "reward", np.asarray(self.reward, np.float64))
        object.__setattr__(self, "pscore", np.asarray(self.pscore, np.float64))
        pos = np.zeros(n, np.int64) if self.position is None else np.asarray(self.position, np.int64)
        object.__setattr__(self, "position", pos)
        slate = np.arange(n, dtype=np.int64) if self.slate is None else np.asarray(self.slate, np.int64)
        object.__setattr__(self, "slate", slate)
        for name in ("reward", "pscore", "position", "slate"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}; expected ({n},) like action")
        if n == 0:
            raise ValueError("the log has no rows")
        bad = (a < 0) | (a >= self.n_actions)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{int(bad.sum()):,} rows have an action outside [0, {self.n_actions}) "
                             f"(first: row {i}, action {int(a[i])})")
        p = self.pscore
        bad = ~((p > 0) & (p <= 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{int(bad.sum()):,} rows have a logging propensity outside (0, 1] "
                             f"(first: row {i}, {p[i]!r}); an impression without its propensity cannot be "
                             "reweighted: log it, or leave such rows out and say how many")
        if not np.isfinite(self.reward).all():
            i = int(np.flatnonzero(~np.isfinite(self.reward))[0])
            raise ValueError(f"row {i} has a reward that is not a finite number ({self.reward[i]!r})")

    def __len__(self) -> int:
        return len(self.action)

    def take(self, rows: np.ndarray) -> "LoggedFeedback":
        return LoggedFeedback(self.action[rows], self.reward[rows], self.pscore[rows], self.n_actions,
                              self.position[rows], self.slate[rows])

    @property
    def on_policy_value(self) -> float:
        """The logging policy's own value: the mean reward per row."""
        return float(self.reward.mean())


@dataclass(frozen=True)
class Estimate:
    """One estimator's value of a policy, its bootstrap interval, and weight diagnostics."""

    estimator: str
    value: float
    low: float = float("nan")
    high: float = float("nan")
    level: float = 0.95
    n_units: int = 0
    ess: float = float("nan")          # effective sample size of the importance weights
    max_weight: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)

    def relative_error(self, truth: float) -> float:
        return abs(self.value - truth) / abs(truth)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_target(log: LoggedFeedback, target: np.ndarray, what: str = "target") -> np.ndarray:
    t = np.asarray(target, np.float64)
    if t.shape != (len(log), log.n_actions):
        raise ValueError(f"{what} has shape {t.shape}; expected (n rows, n actions) = ({len(log)}, {log.n_actions})")
    if what == "target":
        if (t < 0).any() or not np.allclose(t.sum(1), 1.0, atol=1e-6):
            raise ValueError("target: each row must be a probability distribution over the actions (≥ 0, sum 1)")
    elif not np.isfinite(t).all():
        raise ValueError(f"{what}: predictions must be finite")
    return t


class Estimator(ABC):
    """An off-policy estimator (see the module docstring)."""

    name: ClassVar[str]
    needs_model: ClassVar[bool] = False
    slate_level: ClassVar[bool] = False

    def estimate(self, log: LoggedFeedback, target: np.ndarray, q_hat: np.ndarray | None = None, *,
                 n_boot: int = 0, level: float = 0.95, seed: int = 0) -> Estimate:
        """The policy value of ``target`` from ``log``; with ``n_boot`` > 0 a percentile bootstrap
        interval at ``level`` over resampled units (rows, or slates)."""
        target = _check_target(log, target)
        if self.needs_model:
            if q_hat is None:
                raise ValueError(f"{self.name} needs q_hat, a reward model's predictions (n rows, n actions)")
            q_hat = _check_target(log, q_hat, "q_hat")
        num, den = self.units(log, target, q_hat)
        value = float(num.sum() / den.sum())
        w = target[np.arange(len(log)), log.action] / log.pscore
        low = high = float("nan")
        if n_boot:
            low, high = bootstrap_interval(num, den, n_boot, level, seed)
        return Estimate(self.name, value, low, high, level, len(num),
                        float(w.sum() ** 2 / (w ** 2).sum()), float(w.max()), self.extra())

    @abstractmethod
    def units(self, log: LoggedFeedback, target: np.ndarray, q_hat: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(numerator, denominator) per unit; the estimate is ``Σ num / Σ den``."""

    def extra(self) -> dict[str, Any]:
        return {}


def _weights(log: LoggedFeedback, target: np.ndarray) -> np.ndarray:
    return target[np.arange(len(log)), log.action] / log.pscore


@dataclass
class IPS(Estimator):
    """Inverse propensity scoring; ``clip`` caps the weights (biased, lower variance)."""

    clip: float | None = None
    name: ClassVar[str] = "ips"

    def units(self, log, target, q_hat):
        w = _weights(log, target)
        if self.clip is not None:
            w = np.minimum(w, self.clip)
        return w * log.reward, np.ones(len(log))

    def extra(self):
        return {} if self.clip is None else {"clip": self.clip}


class SNIPS(Estimator):
    """Self-normalised IPS: Σ w·r / Σ w (bounded by the rewards' range, slightly biased)."""

    name = "snips"

    def units(self, log, target, q_hat):
        w = _weights(log, target)
        return w * log.reward, w


class DM(Estimator):
    """Direct method: the reward model's value of the target's choices."""

    name = "dm"
    needs_model = True

    def units(self, log, target, q_hat):
        return (target * q_hat).sum(1), np.ones(len(log))


@dataclass
class DR(Estimator):
    """Doubly robust: DM plus the importance-weighted residual of the logged action."""

    clip: float | None = None
    name: ClassVar[str] = "dr"
    needs_model: ClassVar[bool] = True

    def units(self, log, target, q_hat):
        w = _weights(log, target)
        if self.clip is not None:
            w = np.minimum(w, self.clip)
        rows = np.arange(len(log))
        return (target * q_hat).sum(1) + w * (log.reward - q_hat[rows, log.action]), np.ones(len(log))


@dataclass
class SwitchDR(Estimator):
    """Switch-DR: DR where the weight is at most ``tau``, the DM alone where it is larger."""

    tau: float = 100.0
    name: ClassVar[str] = "switch-dr"
    needs_model: ClassVar[bool] = True

    def units(self, log, target, q_hat):
        w = _weights(log, target)
        rows = np.arange(len(log))
        keep = w <= self.tau
        return (target * q_hat).sum(1) + keep * w * (log.reward - q_hat[rows, log.action]), np.ones(len(log))

    def extra(self):
        return {"tau": self.tau}


def _slates(log: LoggedFeedback) -> tuple[np.ndarray, int]:
    uniq, inv = np.unique(log.slate, return_inverse=True)
    return inv, len(uniq)


class IIPS(Estimator):
    """Independent (position-wise) IPS for ranked lists: per slate Σ_k w_k r_k."""

    name = "iips"
    slate_level = True

    def units(self, log, target, q_hat):
        inv, m = _slates(log)
        return np.bincount(inv, _weights(log, target) * log.reward, m), np.ones(m)


class RIPS(Estimator):
    """Reward-interaction IPS (cascade): position k weighted by the product of the weights of
    positions 1..k of its slate."""

    name = "rips"
    slate_level = True

    def units(self, log, target, q_hat):
        inv, m = _slates(log)
        order = np.lexsort((log.position, inv))
        w = _weights(log, target)[order]
        s = inv[order]
        same = s[1:] == s[:-1]                    # row i continues the slate of row i − 1
        cascade = w.copy()
        longest = int(np.bincount(s).max())
        for _ in range(longest - 1):              # each pass carries the product one position further
            cascade[1:] = np.where(same, cascade[:-1] * w[1:], w[1:])
        return np.bincount(s, cascade * log.reward[order], m), np.ones(m)


class SIPS(Estimator):
    """Standard slate IPS: the whole slate's weight (product over its positions) times its total reward."""

    name = "sips"
    slate_level = True

    def units(self, log, target, q_hat):
        inv, m = _slates(log)
        order = np.argsort(inv, kind="stable")
        start = np.r_[0, np.flatnonzero(np.diff(inv[order])) + 1]
        slate_w = np.multiply.reduceat(_weights(log, target)[order], start)
        return slate_w * np.bincount(inv, log.reward, m), np.ones(m)


def bootstrap_interval(num: np.ndarray, den: np.ndarray, n_boot: int = 1000, level: float = 0.95,
                       seed: int = 0, chunk: int = 100) -> tuple[float, float]:
    """Percentile interval of ``Σ num / Σ den`` over ``n_boot`` resamples of the units (with
    replacement), drawn ``chunk`` resamples at a time; resamples with ``Σ den = 0`` (SNIPS with no
    weight) have no value and are left out."""
    rng = np.random.default_rng(seed)
    m = len(num)
    stats = np.empty(n_boot)
    for lo in range(0, n_boot, chunk):
        b = min(chunk, n_boot - lo)
        idx = rng.integers(0, m, size=(b, m))
        with np.errstate(invalid="ignore", divide="ignore"):
            stats[lo:lo + b] = num[idx].sum(1) / den[idx].sum(1)
    # a resample whose weights are all 0 has no self-normalised value (0 / 0): left out of the interval
    stats = stats[np.isfinite(stats)]
    if not len(stats):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return float(low), float(high)


#: name → class of every shipped estimator
ESTIMATORS: dict[str, type[Estimator]] = {c.name: c for c in (IPS, SNIPS, DM, DR, SwitchDR, IIPS, RIPS, SIPS)}


def estimator(name: str, **params: Any) -> Estimator:
    """An estimator by name (``ips``, ``snips``, ``dm``, ``dr``, ``switch-dr``, ``iips``, ``rips``, ``sips``)."""
    cls = ESTIMATORS.get(name)
    if cls is None:
        raise ValueError(f"unknown estimator {name!r}; known: {', '.join(ESTIMATORS)}")
    return cls(**params)
