"""Mix policies that learn from rewards: Thompson sampling and linear contextual bandits.

Each is a :class:`~shoprec.scenarios.stages.MixPolicy` over named arms (strategy mixes, declared like
the ``uniform`` policy's), registered as ``thompson``, ``linucb`` and ``lin_ts``::

    [policy]
    name = "thompson"
    params = { reward = "beta", arms = { graph = { linear_filter = 1.0 }, blend = { ease = 1.0, item_knn = 1.0 } } }

**Exact propensities.** A policy first computes each request's probability of every arm, then draws
the arm from exactly that distribution, so the logged propensity is the probability the choice was
made with. For Thompson sampling, P(arm a's sample is the largest) = ∫ f_a(x) Π_{b≠a} F_b(x) dx is
integrated on a grid (``grid`` points over the posteriors' joint support), with no Monte Carlo noise;
linear TS does the same per request over the arms' Gaussian score distributions; LinUCB is greedy on
its upper confidence bound. ``explore`` mixes in a uniform share (ε), so every arm keeps a propensity
≥ ε / A that off-policy evaluation can reweight.

**Learning online.** :meth:`update` takes :class:`~shoprec.scenarios.stages.MixFeedback` *deltas*:
a new answer is a pull (reward 0 so far), a later click or purchase adds to its reward. The state is
sufficient statistics only (pulls, reward sums, sums of squares; per arm ``A = λI + Σ x xᵀ`` and
``b = Σ r x`` for the linear ones), so updates commute and any process that sees the same answers
and rewards holds the same state (see :mod:`shoprec.online.learner`). With a ``discount`` < 1 (every
policy: the statistics shrink by the discount per new answer, the linear ones' prior λI excepted) the
order of updates matters a little, so two workers may differ in the last digits.

Rewards of the ``beta`` model are read as success probabilities: an answer's reward is capped at 1
(a purchase, or several clicks, is one success). ``gaussian`` takes any real reward (revenue).

**Context** (``linucb``, ``lin_ts``): :func:`context_features` — a bias, the device (mobile, desktop,
tablet), known vs new visitor, log session length, log basket size and value, the hour of day (as sine
and cosine), and the country hashed into ``country_buckets`` indicator columns.

Why not a library: mabwiser (2.7.4) fits our pins but exposes neither the probability of its choices
(needed for the impression log and OPE) nor its state as additive statistics a worker can rebuild
from the store; obp's policies are batch simulators; vowpalwabbit's contextual bandits log pmfs but
keep an opaque model that cannot be rebuilt from the event store and is a heavy native dependency.
"""

from __future__ import annotations

import time
import zlib
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field

from ..scenarios.policies import ArmsConfig, arm_matrix
from ..scenarios.stages import MixChoice, MixContext, MixFeedback, MixPolicy

__all__ = ["LinTSPolicy", "LinUCBPolicy", "ThompsonPolicy", "context_features", "prob_max"]

DEVICES = ("mobile", "desktop", "tablet")


# --------------------------------------------------------------------------- P(max) by quadrature
def prob_max(kind: str, a: np.ndarray, b: np.ndarray, grid: int = 2048) -> np.ndarray:
    """(n, A): the probability that each arm's draw is the largest, arms independent.

    ``kind`` "beta": draws ~ Beta(a, b); "normal": draws ~ N(a, b²) (b = standard deviation).
    ``a``, ``b`` are (A,) or (n, A). Trapezoid rule on ``grid`` points spanning the draws' joint
    support (beta: mean ± 14 sd within [0, 1]; normal: mean ± 5.3 sd), with scipy.special's densities and distribution functions."""
    from scipy import special

    a = np.atleast_2d(np.asarray(a, np.float64))
    b = np.atleast_2d(np.asarray(b, np.float64))
    n, A = np.broadcast_shapes(a.shape, b.shape)
    a, b = np.ascontiguousarray(np.broadcast_to(a, (n, A))), np.ascontiguousarray(np.broadcast_to(b, (n, A)))
    if A == 1:
        return np.ones((n, 1))
    t = np.linspace(0.0, 1.0, grid)
    if kind == "beta":
        # the support: mean ± 14 standard deviations (clipped to [0, 1]) holds all but ~1e-6 of
        # each draw's mass even for skewed posteriors such as Beta(1, 1000), and costs no quantile search
        mean_, sd_ = a / (a + b), np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
        lo = np.clip(mean_ - 14 * sd_, 0.0, 1.0).min(1, keepdims=True)
        hi = np.clip(mean_ + 14 * sd_, 0.0, 1.0).max(1, keepdims=True)
        x = lo + (hi - lo) * t                                 # (n, G)
        xs = np.clip(x, 1e-300, 1 - 1e-16)[:, :, None]
        aa, bb = a[:, None, :], b[:, None, :]
        pdf = np.exp((aa - 1) * np.log(xs) + (bb - 1) * np.log1p(-xs) - special.betaln(aa, bb))
        cdf = special.betainc(aa, bb, xs)
        mean = a / (a + b)
    else:
        sd = np.maximum(b, 1e-12)
        lo = (a - 5.3 * sd).min(1, keepdims=True)
        hi = (a + 5.3 * sd).max(1, keepdims=True)
        x = lo + (hi - lo) * t
        z = (x[:, :, None] - a[:, None, :]) / sd[:, None, :]
        pdf = np.exp(-0.5 * z * z) / (np.sqrt(2 * np.pi) * sd[:, None, :])
        cdf = special.ndtr(z)
        mean = a
    pdf = np.nan_to_num(pdf, nan=0.0, posinf=0.0)
    # Π_{b≠a} F_b = Π_b F_b / F_a, computed in logs to stay finite where some F_a is 0
    logc = np.log(np.clip(cdf, 1e-300, 1.0))
    others = np.exp(logc.sum(2, keepdims=True) - logc)
    integrand = pdf * others
    dx = (hi - lo) / (grid - 1)                               # (n, 1)
    p = (integrand[:, 1:] + integrand[:, :-1]).sum(1) * dx / 2   # trapezoid rule, (n, A)
    p = np.clip(p, 0.0, None)
    s = p.sum(1, keepdims=True)
    bad = ~(s[:, 0] > 0)
    p[~bad] /= s[~bad]
    if bad.any():                                             # degenerate: the largest mean wins
        m = mean[bad]
        p[bad] = (m == m.max(1, keepdims=True)).astype(float)
        p[bad] /= p[bad].sum(1, keepdims=True)
    return p


# --------------------------------------------------------------------------- context
def context_features(ctx: MixContext, country_buckets: int = 8, price: np.ndarray | None = None) -> np.ndarray:
    """float64 (n, d) request features (module docstring), d = 10 + ``country_buckets``; ``price``
    (per item index) values the basket."""
    q = ctx.queries
    n = len(q)
    cols = [np.ones(n)]
    device = q.get_context("device")
    dev = np.asarray(device if device is not None else [""] * n, dtype=object).astype(str)
    dev = np.char.lower(dev.astype("U"))
    cols += [(dev == d).astype(float) for d in DEVICES]
    cols.append((np.asarray(q.user_idx) >= 0).astype(float))
    cols.append(np.log1p(np.diff(q.items.indptr).astype(float)))
    bsize = np.diff(q.basket.indptr).astype(float)
    cols.append(np.log1p(bsize))
    value = np.zeros(n)
    if price is not None and len(q.basket.values):
        vals = q.basket.values
        pr = np.where(vals < len(price), np.nan_to_num(np.asarray(price)[np.minimum(vals, len(price) - 1)]), 0.0)
        rows = np.repeat(np.arange(n), np.diff(q.basket.indptr))
        value = np.bincount(rows, pr, n)
    cols.append(np.log1p(np.maximum(value, 0.0)))
    ts = q.get_context("timestamp")
    ts = np.asarray(ts, np.float64) if ts is not None else np.full(n, -1.0)
    hour = np.where(ts >= 0, (ts % 86_400) / 3600.0, 0.0)
    known = ts >= 0
    cols += [np.where(known, np.sin(2 * np.pi * hour / 24), 0.0), np.where(known, np.cos(2 * np.pi * hour / 24), 0.0)]
    country = q.get_context("country")
    cb = np.zeros((n, country_buckets))
    if country is not None and country_buckets:
        for i, c in enumerate(np.asarray(country, dtype=object).tolist()):
            if c:
                cb[i, zlib.crc32(str(c).lower().encode()) % country_buckets] = 1.0
    return np.column_stack(cols + [cb])


# --------------------------------------------------------------------------- base
class LearningConfig(ArmsConfig):
    explore: float = Field(default=0.05, ge=0.0, le=1.0,
                           description="Uniform share mixed into every choice (keeps each arm's propensity ≥ explore / A).")
    grid: int = Field(default=512, ge=64, le=16384, description="Quadrature points for P(arm is best).")
    discount: float = Field(default=1.0, gt=0, le=1, description="Each new answer multiplies what was learned "
                            "before by this (discounted bandits, for a shop whose best mix drifts): 0.9999 "
                            "remembers about the last 10,000 answers; 1 never forgets.")


class LearningPolicy(MixPolicy):
    """Shared by the learning policies: arms, the draw from exact probabilities, the ε share."""

    Config = LearningConfig
    #: the service keeps a learner for every policy that says so (shoprec.service.live.Engine)
    learns = True
    context_free = False

    def __init__(self, config=None, **params) -> None:
        super().__init__(config, **params)
        self._rng = np.random.default_rng(self.config.seed)
        self.reset()

    @classmethod
    def check(cls, config, labels: Sequence[str], source: str) -> None:
        arm_matrix(config.arms, labels, source)

    @property
    def arm_names(self) -> list[str]:
        return list(self.config.arms)

    @property
    def n_arms(self) -> int:
        return len(self.config.arms)

    def arms(self, labels, weights):
        return self.arm_names, arm_matrix(self.config.arms, labels, f"policy {self.name!r}")

    def reset(self) -> None:
        A = self.n_arms
        self.pulls = np.zeros(A)
        self.reward_sum = np.zeros(A)
        self.reward_sq = np.zeros(A)

    def _mix(self, p: np.ndarray) -> np.ndarray:
        eps = self.config.explore
        return (1 - eps) * p + eps / p.shape[-1]

    def features(self, ctx: MixContext) -> np.ndarray | None:
        return None

    def choose(self, ctx: MixContext) -> MixChoice:
        names, W = self.arms(ctx.labels, ctx.weights)
        x = self.features(ctx)
        p = self._probabilities(ctx, x)
        n = len(ctx)
        u = self._rng.random(n)
        arm = np.minimum((p.cumsum(1) < u[:, None]).sum(1), p.shape[1] - 1).astype(np.int32)
        prop = p[np.arange(n), arm]
        return MixChoice(W[arm], arm, prop, tuple(names), features=x)

    def probabilities(self, ctx: MixContext) -> np.ndarray:
        return self._probabilities(ctx, self.features(ctx))

    def _probabilities(self, ctx: MixContext, x: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def update(self, feedback: MixFeedback) -> None:
        arm = np.asarray(feedback.arm, np.int64)
        if not len(arm):
            return
        g = self.config.discount
        if g < 1:
            n_new = float(np.sum(np.ones(len(arm)) if feedback.pull is None else feedback.pull))
            if n_new:
                self._discount(g ** n_new)
        r = np.asarray(feedback.reward, np.float64)
        prev = np.zeros(len(arm)) if feedback.previous is None else np.asarray(feedback.previous, np.float64)
        pull = np.ones(len(arm)) if feedback.pull is None else np.asarray(feedback.pull, np.float64)
        if self.capped:
            r = np.clip(prev + r, 0.0, 1.0) - np.clip(prev, 0.0, 1.0)
            prev = np.clip(prev, 0.0, 1.0)
        A = self.n_arms
        self.pulls += np.bincount(arm, pull, A)
        self.reward_sum += np.bincount(arm, r, A)
        self.reward_sq += np.bincount(arm, (prev + r) ** 2 - prev ** 2, A)
        self._update_extra(arm, r, pull, feedback.features)

    capped = False

    def _discount(self, f: float) -> None:
        """Multiply what was learned so far by ``f`` (the discount of the answers since)."""
        self.pulls *= f
        self.reward_sum *= f
        self.reward_sq *= f

    def _update_extra(self, arm, r, pull, x) -> None:
        pass

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, np.ndarray]:
        return {"pulls": self.pulls, "reward_sum": self.reward_sum, "reward_sq": self.reward_sq}

    def set_state(self, state) -> None:
        for k, v in state.items():
            if hasattr(self, k) and np.shape(getattr(self, k)) == np.shape(v):
                setattr(self, k, np.array(v, np.float64))

    def posterior_mean(self) -> np.ndarray:
        raise NotImplementedError

    def summary(self) -> list[dict[str, Any]]:
        """Per arm: pulls, reward sum, mean reward, posterior mean (what ``policy show`` prints)."""
        mean = self.posterior_mean()
        out = []
        for a, name in enumerate(self.arm_names):
            n = float(self.pulls[a])
            out.append({"arm": name, "pulls": int(round(n)), "reward": float(self.reward_sum[a]),
                        "mean_reward": float(self.reward_sum[a] / n) if n else None,
                        "posterior_mean": float(mean[a])})
        return out


# --------------------------------------------------------------------------- Thompson sampling
class ThompsonConfig(LearningConfig):
    reward: Literal["beta", "gaussian"] = Field(default="beta", description="beta: rewards in [0, 1] (a success "
                                                "probability); gaussian: any real reward.")
    prior_alpha: float = Field(default=1.0, gt=0)
    prior_beta: float = Field(default=1.0, gt=0)
    prior_mean: float = Field(default=0.0, description="gaussian: prior mean of every arm's reward.")
    prior_strength: float = Field(default=1.0, gt=0, description="gaussian: the prior counts as this many answers.")
    prior_sd: float = Field(default=1.0, gt=0, description="gaussian: prior guess of the reward's standard deviation.")
    refresh_seconds: float = Field(default=0.5, ge=0, description="The arm probabilities are recomputed from the "
                                   "posterior at most this often (batched Thompson sampling; every choice is still "
                                   "drawn from, and logged with, the probabilities in force).")


class ThompsonPolicy(LearningPolicy):
    """Context-free Thompson sampling over the arms (Beta-Bernoulli or Gaussian rewards)."""

    name = "thompson"
    Config = ThompsonConfig

    @property
    def capped(self) -> bool:                       # type: ignore[override]
        return self.config.reward == "beta"

    def _params(self) -> tuple[str, np.ndarray, np.ndarray]:
        c = self.config
        if c.reward == "beta":
            return "beta", c.prior_alpha + self.reward_sum, c.prior_beta + np.maximum(self.pulls - self.reward_sum, 0)
        k = c.prior_strength + self.pulls
        mean = (c.prior_strength * c.prior_mean + self.reward_sum) / k
        # residual variance: prior guess pooled with the observed second moment
        ss = self.reward_sq - self.pulls * (self.reward_sum / np.maximum(self.pulls, 1)) ** 2
        var = (c.prior_strength * c.prior_sd ** 2 + np.maximum(ss, 0)) / k
        return "normal", mean, np.sqrt(var / k)

    context_free = True

    def probabilities_now(self) -> np.ndarray:
        """(A,) every request's probability of each arm: the posterior's, recomputed when it changed
        and ``refresh_seconds`` have passed since the last time."""
        now = time.monotonic()
        cached = getattr(self, "_cached", None)
        if cached is None or (self._dirty and now - self._cached_at >= self.config.refresh_seconds):
            self._cached = self.posterior_probabilities()
            self._cached_at, self._dirty = now, False
        return self._cached

    def posterior_probabilities(self) -> np.ndarray:
        """(A,) the arm probabilities of the posterior as it is now (what the next refresh uses)."""
        kind, a, b = self._params()
        return self._mix(prob_max(kind, a, b, self.config.grid)[0])

    def state(self) -> dict[str, np.ndarray]:
        return {**super().state(), "probabilities": self.probabilities_now()}

    def reset(self) -> None:
        super().reset()
        self._cached, self._dirty = None, True

    def update(self, feedback: MixFeedback) -> None:
        super().update(feedback)
        self._dirty = True

    def set_state(self, state) -> None:
        super().set_state(state)
        self._cached, self._dirty = None, True
        if "probabilities" in state and np.shape(state["probabilities"]) == (self.n_arms,):
            # the probabilities in force travel with the state, so a copy chooses as the original
            self._cached = np.array(state["probabilities"], np.float64)
            self._cached_at = time.monotonic()

    def _probabilities(self, ctx, x):
        return np.tile(self.probabilities_now(), (len(ctx), 1))

    def posterior_mean(self):
        kind, a, b = self._params()
        return a / (a + b) if kind == "beta" else a


# --------------------------------------------------------------------------- linear bandits
class LinearConfig(LearningConfig):
    ridge: float = Field(default=1.0, gt=0, description="λ of A = λI + Σ x xᵀ.")
    scale: float = Field(default=0.25, gt=0, description="LinUCB: α of the bound; lin_ts: v, the posterior's scale.")
    country_buckets: int = Field(default=8, ge=0, le=64)


class _Linear(LearningPolicy):
    Config = LinearConfig

    @property
    def dim(self) -> int:
        return 10 + self.config.country_buckets

    def reset(self) -> None:
        super().reset()
        A, d = self.n_arms, self.dim
        self.A = np.tile(np.eye(d) * self.config.ridge, (A, 1, 1))
        self.b = np.zeros((A, d))

    def features(self, ctx):
        price = getattr(getattr(self.env, "facts", None), "price", None)
        return context_features(ctx, self.config.country_buckets, price)

    def _discount(self, f: float) -> None:
        super()._discount(f)
        ridge = np.eye(self.dim) * self.config.ridge       # the prior λI is not forgotten
        self.A = ridge + f * (self.A - ridge)
        self.b *= f

    def _update_extra(self, arm, r, pull, x) -> None:
        if x is None:
            raise ValueError(f"policy {self.name!r} learns from context: the feedback needs the answers' features")
        x = np.asarray(x, np.float64)
        np.add.at(self.A, arm, pull[:, None, None] * x[:, :, None] * x[:, None, :])
        np.add.at(self.b, arm, r[:, None] * x)

    def state(self):
        return {**super().state(), "A": self.A, "b": self.b}

    def _moments(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, A) mean score xᵀθ̂_a and its standard deviation √(xᵀA_a⁻¹x)."""
        Ainv = np.linalg.inv(self.A)                          # (A, d, d)
        theta = np.einsum("aij,aj->ai", Ainv, self.b)         # (A, d)
        mean = x @ theta.T
        sd = np.sqrt(np.maximum(np.einsum("ni,aij,nj->na", x, Ainv, x), 0.0))
        return mean, sd

    def posterior_mean(self):
        # the mean score for the average context seen (bias column only when nothing was seen)
        n = self.pulls.sum()
        xbar = np.zeros(self.dim)
        xbar[0] = 1.0
        if n:
            # Σ_a (A_a − λI) = Σ x xᵀ; its first row / n is the mean x (x₀ = 1)
            xbar = (self.A - np.eye(self.dim) * self.config.ridge).sum(0)[0] / n
        mean, _ = self._moments(xbar[None, :])
        return mean[0]


class LinUCBPolicy(_Linear):
    """LinUCB (Li et al., 2010), disjoint arms: greedy on xᵀθ̂_a + α √(xᵀA_a⁻¹x), with the ε share."""

    name = "linucb"

    def _probabilities(self, ctx, x):
        mean, sd = self._moments(x)
        ucb = mean + self.config.scale * sd
        best = ucb >= ucb.max(1, keepdims=True) - 1e-12
        return self._mix(best / best.sum(1, keepdims=True))


class LinTSPolicy(_Linear):
    """Linear Thompson sampling (Agrawal & Goyal, 2013): θ_a ~ N(θ̂_a, v² A_a⁻¹), per request."""

    name = "lin_ts"

    def _probabilities(self, ctx, x):
        mean, sd = self._moments(x)
        return self._mix(prob_max("normal", mean, self.config.scale * sd, self.config.grid))
