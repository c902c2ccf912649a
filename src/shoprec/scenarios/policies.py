"""Mix policies: which strategies, with which weights, answer each request.

* ``static`` (the default): every request gets the scenario's weights (configured, or tuned on the
  validation slice at fit); one arm, propensity 1.
* ``uniform``: named arms (strategy mixes) chosen uniformly at random per request, with the exact
  propensity 1/A logged with the impression: the exploration policy whose logs off-policy evaluation
  can read, and the baseline an adaptive policy is measured against.

Arms are declared in the scenario file by strategy label; a strategy an arm does not name gets
weight 0 in it::

    [policy]
    name = "uniform"
    params = { arms = { graph = { linear_filter = 1.0 }, blend = { ease = 1.0, item_knn = 1.0 } } }
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from pydantic import Field

from ..exceptions import ConfigError

from .stages import MixChoice, MixContext, MixPolicy, StageConfig


class StaticConfig(StageConfig):
    pass


class StaticPolicy(MixPolicy):
    """The scenario's own weights for every request."""

    name = "static"
    Config = StaticConfig

    def probabilities(self, ctx: MixContext) -> np.ndarray:
        return np.ones((len(ctx), 1))

    def choose(self, ctx: MixContext) -> MixChoice:
        n = len(ctx)
        w = np.broadcast_to(np.asarray(ctx.weights, np.float32), (n, len(ctx.weights)))
        return MixChoice(w, np.zeros(n, np.int32), np.ones(n), ("static",))


class ArmsConfig(StageConfig):
    arms: dict[str, dict[str, float]] = Field(
        min_length=1, description="Arm name → {strategy label: weight}; unnamed strategies get 0 in that arm.")
    seed: int = Field(default=0, description="Seed of the random choices (a server process draws its own stream).")


def arm_matrix(arms: dict[str, dict[str, float]], labels: Sequence[str], source: str) -> np.ndarray:
    """(A, S) float32 weights of each arm over the scenario's strategy labels."""
    out = np.zeros((len(arms), len(labels)), np.float32)
    pos = {lab: s for s, lab in enumerate(labels)}
    for a, (name, mix) in enumerate(arms.items()):
        unknown = sorted(set(mix) - set(pos))
        if unknown:
            raise ValueError(f"{source}: arm {name!r} names strategies the scenario does not have: {unknown} "
                             f"(its strategies: {list(labels)})")
        for lab, w in mix.items():
            if not (w >= 0 and np.isfinite(w)):
                raise ValueError(f"{source}: arm {name!r}: weight of {lab!r} must be a finite number ≥ 0, not {w}")
            out[a, pos[lab]] = w
        if not out[a].any():
            raise ValueError(f"{source}: arm {name!r} gives every strategy weight 0")
    return out


class UniformPolicy(MixPolicy):
    """Each request's arm drawn uniformly at random among the declared arms."""

    name = "uniform"
    Config = ArmsConfig

    def __init__(self, config=None, **params) -> None:
        super().__init__(config, **params)
        self._rng = np.random.default_rng(self.config.seed)

    @classmethod
    def check(cls, config: ArmsConfig, labels: Sequence[str], source: str) -> None:
        arm_matrix(config.arms, labels, source)

    def arms(self, labels, weights):
        return list(self.config.arms), arm_matrix(self.config.arms, labels, f"policy {self.name!r}")

    def probabilities(self, ctx: MixContext) -> np.ndarray:
        A = len(self.config.arms)
        return np.full((len(ctx), A), 1.0 / A)

    def choose(self, ctx: MixContext) -> MixChoice:
        names, W = self.arms(ctx.labels, ctx.weights)
        n, A = len(ctx), len(names)
        arm = self._rng.integers(0, A, size=n).astype(np.int32)
        return MixChoice(W[arm], arm, np.full(n, 1.0 / A), tuple(names))


def override_mix(choice: MixChoice, mix: Sequence[Any] | None, labels: Sequence[str], base: np.ndarray,
                 scenario: str = "scenario") -> MixChoice:
    """``choice`` with the requests whose ``mix`` (per request: None, or ``{"name", "weights": {label:
    weight}}``, an A/B variant that overrides the scenario's weights) answered by ``base`` so
    overridden, as the arm ``override:NAME`` with propensity 1 (no policy chose it)."""
    if mix is None or not any(m for m in mix):
        return choice
    W = np.array(choice.weights, dtype=np.float32, copy=True)
    arm, prop = choice.arm.copy(), np.array(choice.propensity, np.float64, copy=True)
    names = list(choice.arms)
    index = {label: i for i, label in enumerate(labels)}
    for r, m in enumerate(mix):
        if not m:
            continue
        w = np.asarray(base, np.float32).copy()
        for label, value in m["weights"].items():
            if label not in index:
                raise ConfigError(f"mix {m['name']!r}: no strategy {label!r} in scenario {scenario!r} "
                                  f"(it has {list(labels)})")
            w[index[label]] = value
        name = f"override:{m['name']}"
        if name not in names:
            names.append(name)
        W[r], arm[r], prop[r] = w, names.index(name), 1.0
    return MixChoice(W, arm, prop, tuple(names), choice.features)
