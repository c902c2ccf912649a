"""Scenario configuration: TOML files validated into frozen, typed configs.

A scenario is one recommendation slot of a shop (home feed, item page, cart, …). Its file names the
strategies that propose candidates (with parameters and weights), how they are fused, the optional
learned ranker, the business rules, diversity, K and the fallback chain::

    [scenario]
    name = "cart"
    k = 10

    [[strategies]]
    name = "fbt"
    weight = 2.0
    params = { measure = "confidence" }

    [fusion]
    method = "weighted"        # weighted | rrf | ranker

    [rules]
    exclude_basket = true
    complements_only = true

    [[fallback]]
    name = "popularity"

and optionally its other stages (see :mod:`.stages`)::

    [[training_filters]]       # what the strategies learn from
    name = "event_rate"

    [policy]                   # which weights answer each request (default: static)
    name = "uniform"
    params = { arms = { fbt_only = { fbt = 1.0 }, blend = { fbt = 2.0, popularity = 1.0 } } }

    [reward]                   # what an answer earned (the policy learns from it, OPE reads it)
    purchase = 1.0
    cart = 0.3
    click = 0.1
    window_seconds = 86400

    [[rerankers]]              # after [rules], before [fairness] and [diversity]
    name = "my_reranker"       # registered with shoprec.scenarios.stages.register_stage

    [fairness]                 # fair exposure of sellers / brands / categories (rerank/fairness.py)
    method = "exposure"        # or "fair" (FA*IR); default "none"
    group = "seller"
    strength = 0.3

Shipped defaults live in ``shoprec/scenarios/defaults/<name>.toml``; :func:`load_scenario` takes a
default's name or a path.
"""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..exceptions import ConfigError
from .rerank.mmr import MMRConfig
from .rerank.fairness import FairExposureConfig
from .rerank.rules import RulesConfig
from .stages import StageSpec, make_stage, stage_class

SCENARIO_NAMES = ("home", "first_visit", "item_page", "cart", "checkout", "post_purchase", "search")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StrategySpec(_Frozen):
    """One candidate strategy of a scenario."""

    name: str = Field(description="Registered strategy name (see `shoprec strategies`).")
    label: str | None = Field(default=None, description="Unique label within the scenario; default: name.")
    params: dict[str, Any] = Field(default_factory=dict, description="The strategy's config fields.")
    weight: float = Field(default=1.0, ge=0, description="Weight in weighted and rank fusion.")
    candidates: int = Field(default=100, ge=1, le=5000, description="Candidates taken from this strategy per request.")
    reason: str | None = Field(default=None, description="Reason template; {anchor}, {query}, {segment} are filled in.")
    optional: bool = Field(default=False, description="Skip (with a note) when its optional dependency is not "
                                                       "installed, instead of failing.")

    @property
    def key(self) -> str:
        """Identity of the fitted model: strategies with the same name and parameters are fitted once."""
        return f"{self.name}:{json.dumps(self.params, sort_keys=True)}"

    @property
    def display(self) -> str:
        return self.label or self.name


class FusionConfig(_Frozen):
    method: str = Field(
        default="weighted",
        description="weighted: Σ weight·normalised score; rrf: Σ weight/(rrf_k + rank); ranker: the learned ranker "
                    "(falls back to weighted until it is trained); auto: train the ranker and use whichever of the "
                    "three scores best on the held-out validation requests (see [ranker] method_holdout); or the "
                    "name of a fusion registered with shoprec.scenarios.stages.register_stage.")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters of a registered fusion.")
    normalise: Literal["minmax", "max", "rank"] = Field(
        default="minmax", description="Per request and strategy, how scores are put on one scale before weighting.")
    rrf_k: float = Field(default=60.0, gt=0, description="Reciprocal-rank fusion constant (Cormack et al. 2009).")
    tune_weights: bool = Field(
        default=False, description="Tune the strategy weights by coordinate ascent on NDCG@10 of a validation "
                                   "slice cut from the training data (see [ranker] for the slice).")


class RankerConfig(_Frozen):
    validation: Literal["auto", "temporal", "leave_one_out", "session", "basket", "holdout", "first_visit",
                        "new_users"] = Field(
        default="auto", description="How the training slice for the ranker is cut from the training data "
                                    "(never the test): auto picks from the data and the scenario.")
    validation_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    max_queries: int = Field(default=20000, ge=100, description="Validation queries used to train the ranker.")
    method_holdout: float = Field(
        default=0.25, ge=0, lt=1,
        description="Share of the validation requests held out from weight tuning and ranker training; the fusion "
                    "methods are compared on them (fusion method auto picks the best).")
    rerank: int = Field(default=50, ge=1, description="The ranker re-orders each request's top `rerank` pairs "
                                                       "of weighted fusion (and is trained on them).")
    max_train_pairs: int | None = Field(
        default=None, ge=1,
        description="Most candidate pairs the ranker trains on: past it, whole training requests drawn at random "
                    "(with the seed) are kept up to this many pairs (LightGBM's time grows with the pairs; "
                    "200k pairs is about 4,000 requests at rerank = 50). None = every request (on yelp2018 a "
                    "200k cap cost the ranker .0505 → .0497 held-out NDCG@10 on item_page).")
    n_estimators: int = Field(default=150, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    num_leaves: int = Field(default=31, ge=2)
    min_child_samples: int = Field(default=20, ge=1)
    seed: int = 0


class DiversityConfig(MMRConfig):
    """``[diversity]``: the shipped MMR re-ranker, last in the chain when ``method = "mmr"``."""

    method: Literal["none", "mmr"] = "none"


class FairnessConfig(FairExposureConfig):
    """``[fairness]``: the fair-exposure re-ranker (``rerank/fairness.py``), after the ``[[rerankers]]``
    and before ``[diversity]``, when ``method`` is not ``"none"``."""

    method: Literal["none", "exposure", "fair"] = "none"


class RewardConfig(_Frozen):
    """``[reward]``: what a shown answer earned, for the mix policy and off-policy evaluation.

    Each shown item earns the weight of the best behaviour that followed it within ``window_seconds``
    (a purchase after a click counts the purchase only), plus ``revenue`` × price × quantity of the
    purchases; an answer earns the sum over its items. Events are attributed by ``request_id`` +
    ``position`` when they carry them, else (as ``attribution`` allows) by session and item, then by
    user and item, to the latest answer that showed the item before the event."""

    view: float = Field(default=0.0, ge=0, description="A view of a shown item (e.g. its page opened from the slot).")
    click: float = Field(default=0.1, ge=0)
    cart: float = Field(default=0.3, ge=0, description="An add-to-cart of a shown item.")
    purchase: float = Field(default=1.0, ge=0)
    favourite: float = Field(default=0.0, ge=0)
    revenue: float = Field(default=0.0, ge=0, description="Reward per currency unit of an attributed purchase.")
    window_seconds: float = Field(default=86_400.0, gt=0, description="How long after the answer an event still counts.")
    attribution: Literal["request", "session", "user"] = Field(
        default="user", description="request: only events that carry the request id; session: also the same "
                                    "session and item; user: also the same user and item.")

    def behaviour_weights(self) -> dict[str, float]:
        """Canonical behaviour name → reward weight (only the rewarded ones)."""
        w = {"view": self.view, "click": self.click, "add_to_cart": self.cart, "purchase": self.purchase,
             "favourite": self.favourite}
        return {k: v for k, v in w.items() if v > 0 or (k == "purchase" and self.revenue > 0)}


class ScenarioConfig(_Frozen):
    name: str
    description: str = ""
    k: int = Field(default=10, ge=1, le=1000)
    strategies: list[StrategySpec] = Field(min_length=1)
    fusion: FusionConfig = FusionConfig()
    ranker: RankerConfig = RankerConfig()
    rules: RulesConfig = RulesConfig()
    diversity: DiversityConfig = DiversityConfig()
    fairness: FairnessConfig = FairnessConfig()
    training_filters: list[StageSpec] = Field(
        default_factory=list, description="Applied in order to the events before the strategies learn from them.")
    policy: StageSpec = Field(default_factory=lambda: StageSpec(name="static"),
                              description="The mix policy: which weights answer each request (default: static).")
    reward: RewardConfig = Field(default_factory=RewardConfig,
                                 description="What a shown answer earned (the mix policy learns from it).")
    rerankers: list[StageSpec] = Field(
        default_factory=list, description="Re-rankers after [rules] and before [diversity] MMR, in order.")
    fallback: list[StrategySpec] = Field(
        default_factory=lambda: [StrategySpec(name="popularity")],
        description="Tried in order when the fused list is short; the last should cover the catalogue.")

    @model_validator(mode="after")
    def _unique_labels(self) -> "ScenarioConfig":
        labels = [s.display for s in self.strategies]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"strategy labels must be unique within a scenario; repeated: {dup} "
                             "(give each a `label`)")
        return self

    def with_overrides(self, **fields: Any) -> "ScenarioConfig":
        """A copy with top-level fields (or whole sections) replaced, validated again."""
        data = self.model_dump()
        data.update(fields)
        return ScenarioConfig(**data)


def _format_validation(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid scenario"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = "unknown field (not part of the scenario format)" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {loc or '(top level)'}: {msg}")
    return "\n".join(lines)


def scenario_from_dict(raw: dict[str, Any], source: str = "<dict>") -> ScenarioConfig:
    """Validate a parsed TOML document (``[scenario]`` table + sections) into a ScenarioConfig."""
    raw = dict(raw)
    head = raw.pop("scenario", None)
    if not isinstance(head, dict):
        raise ConfigError(f"{source}: needs a [scenario] table with at least `name`")
    merged = {**head, **raw}
    try:
        cfg = ScenarioConfig(**merged)
    except ValidationError as e:
        raise ConfigError(_format_validation(e, source)) from None
    _check_names(cfg, source)
    return cfg


def _check_names(cfg: ScenarioConfig, source: str) -> None:
    """Every strategy and stage the scenario names exists and takes the parameters it is given."""
    _check_strategy_names(cfg, source)
    for spec in cfg.training_filters:
        make_stage("training_filter", spec, source)
    for spec in cfg.rerankers:
        make_stage("reranker", spec, source)
    policy = make_stage("mix_policy", cfg.policy, source)
    check = getattr(type(policy), "check", None)
    if check is not None:
        try:
            check(policy.config, [s.display for s in cfg.strategies], f"{source}: policy {cfg.policy.name!r}")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if cfg.fusion.method != "auto":
        stage_class("fusion", cfg.fusion.method)


def _check_strategy_names(cfg: ScenarioConfig, source: str) -> None:
    from ..strategies import STRATEGIES

    for spec in [*cfg.strategies, *cfg.fallback]:
        if spec.name not in STRATEGIES:
            raise ConfigError(f"{source}: unknown strategy {spec.name!r}; known: {', '.join(sorted(STRATEGIES))}")
        cls = STRATEGIES[spec.name]
        try:
            cls.Config(**spec.params)
        except ValidationError as e:
            raise ConfigError(_format_validation(e, f"{source}: strategy {spec.display!r} params")) from None


def load_scenario(name_or_path: str | Path) -> ScenarioConfig:
    """Load a shipped default by name (``"cart"``) or a scenario TOML file by path."""
    text: str
    source: str
    path = Path(name_or_path)
    if isinstance(name_or_path, str) and name_or_path in SCENARIO_NAMES and not path.exists():
        res = resources.files("shoprec.scenarios") / "defaults" / f"{name_or_path}.toml"
        text, source = res.read_text(encoding="utf-8"), f"default scenario {name_or_path!r}"
    else:
        if not path.is_file():
            raise ConfigError(f"{path}: no such scenario file (shipped defaults: {', '.join(SCENARIO_NAMES)})")
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    return scenario_from_dict(raw, source)


def default_scenarios() -> dict[str, ScenarioConfig]:
    """Every shipped default scenario, by name."""
    return {name: load_scenario(name) for name in SCENARIO_NAMES}
