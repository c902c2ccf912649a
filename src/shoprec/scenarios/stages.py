"""The stages of a scenario's pipeline, one protocol each, and the registry that finds them by name.

A scenario (``scenarios/*.toml``) declares, besides its strategies::

    [[training_filters]]          events in → events kept + a report (what the strategies learn from)
    name = "event_rate"
    params = { max_events_per_minute = 60 }

    [policy]                      request context → the strategies' weights, with the choice's propensity
    name = "static"               (default: the configured, or tuned, weights for every request)

    [fusion]                      candidates → one score per (request, item) pair: weighted, rrf, ranker
    method = "weighted"

    [[rerankers]]                 after fusion: constrain what may be shown, re-order the fused list
    name = "mmr"

``[rules]`` and ``[diversity]`` are the shipped re-rankers' settings: the chain is always ``rules``
first, then the declared ``[[rerankers]]`` in order, then ``mmr`` when ``[diversity] method = "mmr"``.

Each kind is a small class with one verb (see ``HOUSE_STYLE.md``, pattern 13):

* :class:`TrainingFilter` — ``filter(data) -> (kept ShopData, FilterReport)``; never mutates its input.
* :class:`MixPolicy` — ``choose(MixContext) -> MixChoice`` (weights per request, arm, propensity);
  ``update(MixFeedback)`` learns from rewards; ``probabilities(MixContext)`` gives every arm's.
* :class:`Fusion` — ``fuse(pairs, weights, queries) -> float32 (M,)``, pure over the candidate pairs.
* :class:`ReRanker` — ``constrain(queries, allowed)`` narrows the (n, n_items) mask before candidates
  are taken (a hard rule never starves a list), ``rerank(ranked, queries, k) -> Ranked`` re-orders
  the fused pool.

Every stage has a frozen pydantic ``Config`` (unknown fields are an error), is built by
:func:`make_stage` from a :class:`StageSpec`, may learn at ``fit(data, env)`` and keep what it learned
as arrays (``state`` / ``set_state``, saved in the model artifact, no pickle). ``shoprec.testing`` has a
conformance check per kind; ``tests/scenarios/test_stages.py`` runs it on every registered stage.

New stages are new modules: ``register_stage(kind, name, "package.module:Class")`` (imported when a
scenario first names it). The shipped ones are listed in :data:`BUILTIN`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ..exceptions import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ..data import ShopData
    from ..strategies.base import Queries, Strategy
    from .facts import ItemFacts
    from .fusion.pairs import Pairs

StageKind = Literal["training_filter", "mix_policy", "fusion", "reranker"]
KINDS: tuple[str, ...] = ("training_filter", "mix_policy", "fusion", "reranker")


class StageConfig(BaseModel):
    """Base of every stage's config: frozen, unknown fields forbidden."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass
class StageEnv:
    """What a fitted pipeline shares with its stages: the data it was fitted on (after the
    training filters), the item facts, the scenario's strategies (``None`` where skipped), their
    labels, and the text index (TF-IDF item vectors and search, or None)."""

    data: "ShopData"
    facts: "ItemFacts"
    models: list["Strategy | None"]
    labels: list[str]
    text: Any = None
    config: Any = None
    cache: dict[str, Any] = field(default_factory=dict)   # arrays a stage derives from the data, kept

    def history_model(self) -> "Strategy | None":
        """A fitted strategy whose ``history(queries)`` gives each request's behaviour-weighted items."""
        return next((m for m in self.models if m is not None), None)


class Stage(ABC):
    """Base class of the pipeline's stages (see the module docstring)."""

    kind: ClassVar[str]
    name: ClassVar[str]
    Config: ClassVar[type[StageConfig]] = StageConfig

    def __init__(self, config: StageConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise TypeError("pass either a config or keyword parameters, not both")
        self.config = config if config is not None else self.Config(**params)
        self.env: StageEnv | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def bind(self, env: StageEnv) -> None:
        """Attach the fitted pipeline's shared resources (at fit, and when a saved model is loaded)."""
        self.env = env

    def fit(self, data: "ShopData", env: StageEnv) -> "Stage":
        """Learn what the stage needs from the (filtered) training data; the default only binds."""
        self.bind(env)
        return self

    def state(self) -> dict[str, np.ndarray]:
        """What the stage learned, as arrays (saved in the model artifact)."""
        return {}

    def set_state(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`state` (after :meth:`bind`)."""

    def refresh_items(self, changed: np.ndarray) -> None:
        """The catalogue grew or items changed (``env.facts`` already updated)."""

    def observe(self, events) -> None:
        """Live events arrived (:class:`~shoprec.strategies.LiveEvents`, those the bot guard admitted);
        the default ignores them."""

    def needs_text(self) -> bool:
        """Whether the stage reads the text index (item TF-IDF vectors, search); built only then."""
        return False


# --------------------------------------------------------------------------- training filters
@dataclass(frozen=True)
class FilterReport:
    """What a training filter kept: events in, kept, and dropped by reason."""

    stage: str
    n_in: int
    n_kept: int
    dropped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        if self.n_in == self.n_kept:
            return f"{self.stage}: kept all {self.n_in:,} events"
        why = "; ".join(f"{n:,} {reason}" for reason, n in self.dropped.items() if n)
        return f"{self.stage}: kept {self.n_kept:,} of {self.n_in:,} events (dropped {why})"

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "n_in": self.n_in, "n_kept": self.n_kept, "dropped": dict(self.dropped)}


class TrainingFilter(Stage):
    """Events in, events kept plus a report. Subclasses implement :meth:`_drop`."""

    kind = "training_filter"

    def filter(self, data: "ShopData") -> tuple["ShopData", FilterReport]:
        """The events of ``data`` this filter keeps (same users, items and tables; ``data`` is not
        changed) and the report of what it dropped and why."""
        n = data.n_events
        drop: dict[str, np.ndarray] = self._drop(data) if n else {}
        keep = np.ones(n, bool)
        counts: dict[str, int] = {}
        for reason, mask in drop.items():
            mask = np.asarray(mask, bool)
            if mask.shape != (n,):
                raise ValueError(f"{self.name}: reason {reason!r} gave a mask of shape {mask.shape}, not ({n},)")
            counts[reason] = int((mask & keep).sum())   # an event counts once, under its first reason
            keep &= ~mask
        report = FilterReport(self.name, n, int(keep.sum()), counts)
        if keep.all():
            return data, report
        return data.filter_events(keep, name=data.name), report

    @abstractmethod
    def _drop(self, data: "ShopData") -> dict[str, np.ndarray]:
        """Per reason (words a shop reads: "older than 365 days"), a bool mask over the events."""


def apply_filters(filters: Sequence[TrainingFilter], data: "ShopData") -> tuple["ShopData", list[FilterReport]]:
    """Run the filters in order; each sees what the previous kept."""
    reports = []
    for f in filters:
        data, report = f.filter(data)
        reports.append(report)
    return data, reports


# --------------------------------------------------------------------------- mix policies
@dataclass
class MixContext:
    """What a mix policy chooses from: the batch of requests (``queries.context`` carries country,
    device, timestamp …; sessions, basket and user are there too), the scenario's strategy labels,
    the base weights (configured, or tuned on validation) and which strategies are fitted."""

    queries: "Queries"
    labels: list[str]
    weights: np.ndarray          # float32 (S,)
    available: np.ndarray        # bool (S,)

    def __len__(self) -> int:
        return len(self.queries)


@dataclass
class MixChoice:
    """A policy's choice for each request of a batch."""

    weights: np.ndarray          # float32 (n, S): the fusion weights each request is answered with
    arm: np.ndarray              # int32 (n,): index into ``arms``
    propensity: np.ndarray       # float64 (n,): the probability the policy chose that arm there
    arms: tuple[str, ...]
    features: np.ndarray | None = None   # float64 (n, d): the context a contextual policy chose from

    @property
    def shared(self) -> np.ndarray | None:
        """The weights when every request has the same (fusion then takes one matrix product)."""
        w = self.weights
        if len(w) and (w == w[:1]).all():
            return w[0]
        return None

    def take(self, rows: np.ndarray) -> "MixChoice":
        return MixChoice(self.weights[rows], self.arm[rows], self.propensity[rows], self.arms,
                         None if self.features is None else self.features[rows])

    def arm_names(self) -> list[str]:
        return [self.arms[a] for a in self.arm.tolist()]


@dataclass
class MixFeedback:
    """Rewards of shown answers, for :meth:`MixPolicy.update`: the arm each was answered with and
    the reward it earned. Learning policies take deltas: ``pull`` 1 marks a new answer (counted once),
    0 a reward that arrived later for an answer already counted (``previous``: its reward before);
    ``features`` is the context each answer was chosen with (``MixChoice.features``)."""

    arm: np.ndarray              # int32 (n,)
    reward: np.ndarray           # float64 (n,)
    queries: "Queries | None" = None
    pull: np.ndarray | None = None       # float64 (n,), default all 1
    previous: np.ndarray | None = None   # float64 (n,), default all 0
    features: np.ndarray | None = None   # float64 (n, d)


class MixPolicy(Stage):
    """Request context → which strategies, with which weights, and the choice's propensity."""

    kind = "mix_policy"

    def arms(self, labels: Sequence[str], weights: np.ndarray) -> tuple[list[str], np.ndarray]:
        """The arm names and their weight vectors (A, S) for a scenario with these strategies."""
        return ["static"], np.asarray(weights, np.float32)[None, :]

    @abstractmethod
    def probabilities(self, ctx: MixContext) -> np.ndarray:
        """float64 (n, A): each request's probability of each arm (rows sum to 1)."""

    @abstractmethod
    def choose(self, ctx: MixContext) -> MixChoice:
        """One arm per request, drawn from :meth:`probabilities`, with its weights and propensity."""

    def update(self, feedback: MixFeedback) -> None:
        """Learn from rewards (online, without a refit); the default learns nothing."""


# --------------------------------------------------------------------------- fusion
class Fusion(Stage):
    """Candidate pairs with each strategy's evidence → one score per pair (higher = better)."""

    kind = "fusion"

    @abstractmethod
    def fuse(self, pairs: "Pairs", weights: np.ndarray, queries: "Queries") -> np.ndarray:
        """float32 (M,) for the M pairs; ``weights`` is (S,) for all requests or (n, S) per request
        (``pairs.row`` indexes its rows). Must not change ``pairs``."""


def row_weights(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per pair, its request's weight vector: (M, S) from (n, S), or (S,) as given."""
    w = np.asarray(weights, np.float32)
    return w if w.ndim == 1 else w[rows]


# --------------------------------------------------------------------------- re-rankers
@dataclass
class Ranked:
    """A fused list per request, best first: ``item_idx`` int32 (n, P) -1 padded, ``scores`` float32,
    ``sources`` int64 bitmask of the strategies that proposed each item."""

    item_idx: np.ndarray
    scores: np.ndarray
    sources: np.ndarray

    def __post_init__(self) -> None:
        if not (self.item_idx.shape == self.scores.shape == self.sources.shape):
            raise ValueError("item_idx, scores and sources must have one shape")

    def head(self, k: int) -> "Ranked":
        return Ranked(self.item_idx[:, :k], self.scores[:, :k], self.sources[:, :k])

    def take(self, rows: np.ndarray) -> "Ranked":
        return Ranked(self.item_idx[rows], self.scores[rows], self.sources[rows])


class ReRanker(Stage):
    """After fusion: hard constraints (``constrain``, applied before candidates are taken) and a
    re-ordering of the fused pool (``rerank``). Both default to doing nothing."""

    kind = "reranker"

    def constrain(self, queries: "Queries", allowed: np.ndarray) -> None:
        """Set to False (in place) what this stage never lets the requests see; never sets True."""

    def pool(self, k: int) -> int:
        """How many fused items per request this stage wants to choose K from."""
        return k

    def rerank(self, ranked: Ranked, queries: "Queries", k: int) -> Ranked:
        """The pool re-ordered (items only from ``ranked``, each once; -1 pads at the end)."""
        return ranked

    def item_notes(self) -> Mapping[int, str]:
        """Item index → a note shown among the item's reasons wherever it appears ("often returned"),
        under the stage's name. Default: none."""
        return {}

    def request_notes(self, queries: "Queries", item_idx: np.ndarray) -> "list[dict[int, str]] | None":
        """Notes that depend on the request ("arrives in about 3 days" to its region): per request of
        ``queries``, item index → a note for the shown items ``item_idx`` (int (n, K), -1 padded),
        shown among their reasons under the stage's name after any :meth:`item_notes`. Default: None."""
        return None


# --------------------------------------------------------------------------- registry
class StageSpec(BaseModel):
    """A stage as a scenario file names it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    params: dict[str, Any] = {}

    @property
    def key(self) -> str:
        import json

        return f"{self.name}:{json.dumps(self.params, sort_keys=True, default=str)}"


#: (kind, name) → "module:Class" of the stages shipped with shoprec, imported on first use
BUILTIN: dict[tuple[str, str], str] = {
    ("training_filter", "time_window"): "shoprec.scenarios.filters:TimeWindowFilter",
    ("training_filter", "behaviours"): "shoprec.scenarios.filters:BehaviourFilter",
    ("training_filter", "event_rate"): "shoprec.scenarios.filters:EventRateFilter",
    ("mix_policy", "static"): "shoprec.scenarios.policies:StaticPolicy",
    ("mix_policy", "uniform"): "shoprec.scenarios.policies:UniformPolicy",
    # the learning policies live beside the scenarios, in the online package (they import scenarios)
    ("mix_policy", "thompson"): "shoprec.online.policies:ThompsonPolicy",
    ("mix_policy", "linucb"): "shoprec.online.policies:LinUCBPolicy",
    ("mix_policy", "lin_ts"): "shoprec.online.policies:LinTSPolicy",
    ("fusion", "weighted"): "shoprec.scenarios.fusion.methods:WeightedFusion",
    ("fusion", "rrf"): "shoprec.scenarios.fusion.methods:RRFFusion",
    ("fusion", "ranker"): "shoprec.scenarios.fusion.ranker:Ranker",
    ("reranker", "rules"): "shoprec.scenarios.rerank.rules:RulesReRanker",
    ("reranker", "mmr"): "shoprec.scenarios.rerank.mmr:MMRReRanker",
    ("reranker", "fair_exposure"): "shoprec.scenarios.rerank.fairness:FairExposureReRanker",
    # marketplace health plugs in as a re-ranker (it imports scenarios)
    ("reranker", "price_flags"): "shoprec.health.stage:PriceFlagsReRanker",
    ("training_filter", "bots"): "shoprec.health.bots:BotFilter",
    ("training_filter", "fake_reviews"): "shoprec.health.reviews:FakeReviewsFilter",
    ("reranker", "consumer_protection"): "shoprec.health.protection:ProtectionReRanker",
    ("reranker", "delivery"): "shoprec.scenarios.rerank.delivery:DeliveryReRanker",
}
_REGISTRY: dict[tuple[str, str], str | type[Stage]] = dict(BUILTIN)


def register_stage(kind: str, name: str, target: str | type[Stage]) -> None:
    """Make ``name`` usable as a stage of ``kind`` in scenario files: ``target`` is the class or
    ``"package.module:Class"`` (imported when first needed)."""
    if kind not in KINDS:
        raise ValueError(f"unknown stage kind {kind!r}; kinds: {', '.join(KINDS)}")
    _REGISTRY[(kind, name)] = target


def known_stages(kind: str) -> list[str]:
    return sorted(n for k, n in _REGISTRY if k == kind)


def stage_class(kind: str, name: str) -> type[Stage]:
    """The class registered as ``name`` for ``kind`` (ConfigError naming the known ones)."""
    target = _REGISTRY.get((kind, name))
    if target is None:
        raise ConfigError(f"unknown {kind.replace('_', ' ')} {name!r}; known: {', '.join(known_stages(kind))}")
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
        _REGISTRY[(kind, name)] = target
    return target


def make_stage(kind: str, spec: StageSpec | Mapping[str, Any], source: str = "scenario") -> Stage:
    """A stage from its spec, its params validated by the stage's Config."""
    if not isinstance(spec, StageSpec):
        spec = StageSpec(**spec)
    cls = stage_class(kind, spec.name)
    try:
        return cls(cls.Config(**spec.params))
    except ValidationError as e:
        lines = [f"{source}: {kind.replace('_', ' ')} {spec.name!r} params"]
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  {loc or '(top level)'}: {msg}")
        raise ConfigError("\n".join(lines)) from None
