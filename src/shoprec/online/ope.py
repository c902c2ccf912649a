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

:func:`scenario_target` evaluates a scenario's own learning ``[policy]`` (``scenario:PATH.toml`` in
``shoprec ope``) on a shop's logs: the policy learns from the first ``fit_fraction`` of the answers in
time order (each a pull with its reward and its logged context features), is then frozen, and its
probabilities for each later answer (from that answer's logged features, for the linear policies) are
the target on those later answers, which are the rows evaluated.
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

__all__ = ["DEFAULT_ESTIMATORS", "SLATE_ESTIMATORS", "evaluate_policy", "scenario_target", "target_policy"]

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


def scenario_target(path: str | Path, table: FeedbackTable, fit_fraction: float = 0.5,
                    batch: int = 200) -> tuple[np.ndarray, FeedbackTable]:
    """(target (m, A), the m evaluated rows of ``table``): the scenario file's learning ``[policy]``
    fitted on the first ``fit_fraction`` of the answers (module docstring)."""
    import json as json_

    from ..scenarios.config import load_scenario
    from ..scenarios.stages import MixFeedback, make_stage

    sc = load_scenario(path)
    pol = make_stage("mix_policy", sc.policy, str(path))
    if not getattr(pol, "learns", False):
        raise ValueError(f"{path}: its policy {pol.name!r} does not learn from rewards; evaluate a fixed mix with "
                         "arm:NAME or weights:NAME=P,…")
    if not 0.0 <= fit_fraction < 1.0:
        raise ValueError(f"fit fraction {fit_fraction!r}: expected a number in [0, 1)")
    missing = [a for a in pol.arm_names if a not in table.actions]
    if missing:
        raise ValueError(f"{path}: the policy's arms {missing} were never logged (the log's actions are "
                         f"{table.actions}); off-policy evaluation can only reweight logged choices")
    frame = table.frame
    n = len(table.log)
    if frame is None:
        raise ValueError("a scenario policy is evaluated on a shop's own logs (shoprec rewards --out), not on "
                         "a dataset log")
    order = np.argsort(frame["created_at"].to_numpy(np.float64), kind="stable") if "created_at" in frame else np.arange(n)
    feats = None
    if not getattr(pol, "context_free", False):
        if "features" not in frame or frame["features"].isna().any():
            raise ValueError(f"{path}: policy {pol.name!r} reads context features, and "
                             f"{int(frame['features'].isna().sum()) if 'features' in frame else n:,} logged answers "
                             "have none (they were logged by a policy that did not compute them)")
        feats = np.array([json_.loads(v) if isinstance(v, str) else list(v) for v in frame["features"]], np.float64)
        if feats.shape[1] != pol.dim:
            raise ValueError(f"{path}: the logged features have {feats.shape[1]} columns; policy {pol.name!r} "
                             f"reads {pol.dim}")
    col = np.array([table.actions.index(a) for a in pol.arm_names])
    to_arm = np.full(len(table.actions), -1)
    to_arm[col] = np.arange(len(col))
    n_fit = int(round(fit_fraction * n))
    fit, ev = order[:n_fit], order[n_fit:]
    if not len(ev):
        raise ValueError(f"fit fraction {fit_fraction}: no answers left to evaluate on")
    fit = fit[to_arm[table.log.action[fit]] >= 0]       # answers of arms the policy does not have teach it nothing
    for lo in range(0, len(fit), batch):
        rows = fit[lo:lo + batch]
        pol.update(MixFeedback(to_arm[table.log.action[rows]].astype(np.int32), table.log.reward[rows],
                               features=None if feats is None else feats[rows]))

    class _Rows:
        def __len__(self) -> int:
            return len(ev)

    p = pol._probabilities(_Rows(), None if feats is None else feats[ev])
    target = np.zeros((len(ev), len(table.actions)))
    target[:, col] = p
    return target, table.take(ev)


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
