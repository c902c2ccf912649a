"""One scenario's pipeline, vectorised over a batch of requests; the single-request API of
:mod:`.engine` is a batch of one. It orchestrates stages and holds none of their logic:

* at fit: the **training filters** (events in → events kept + a report) give the data the
  strategies, the item facts and the learned stages see; every strategy is fitted (or taken from
  the shared :class:`ModelCache`); the stages are fitted; fusion learns from a validation slice
  when it is asked to (:mod:`.fusion.learn`: tuned weights, the ranker, the ``auto`` choice).

* per block of requests:

  1. **Mix policy**: each request's fusion weights (and the arm and its propensity).
  2. **Constraints**: the re-rankers' hard rules (``[rules]``: stock, basket, history, price,
     complements, search match; then the ``[[rerankers]]``) and the request's filters as one dense
     (n, n_items) *allowed* mask. Every strategy ranks within it, so rules never starve a list.
  3. **Candidates**: each strategy's top ``candidates`` items under the mask, as the union of
     (request, item) pairs (:mod:`.fusion.pairs`). A strategy with no signal for a request (its
     list is as long as it could be and every score ties, e.g. a user-factor model for a visitor
     with no history) gives that request no candidates, and a strategy's own filler (scores below
     its ``evidence_floor()``, e.g. session-kNN's popularity order for an unmatched session) is not
     taken: neither pads the list with items the strategy has no evidence for, nor lends them its
     reason; the fallback chain fills the list and says why.
  4. **Fusion** (:mod:`.fusion`): weighted sum, reciprocal-rank fusion, the learned ranker, or a
     registered fusion.
  5. **Re-ranking**: each re-ranker re-orders the fused pool (MMR diversity last when enabled).
  6. **Fallback**: lists shorter than K are filled from the fallback strategies under the same mask.
  7. **Sources**: a bitmask per item of the strategies that proposed it, for the reasons.

See :mod:`.stages` for the protocols and the registry.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from .. import progress
from ..data import ShopData
from ..exceptions import ConfigError
from ..strategies.base import Queries, Strategy, make_strategy
from .config import ScenarioConfig, StrategySpec
from .facts import ItemFacts
from .fusion.methods import RRFFusion, WeightedFusion
from .fusion.pairs import Pairs, top_pairs, union_pairs
from .policies import override_mix
from .stages import (FilterReport, MixChoice, MixContext, Ranked, StageEnv, StageSpec, apply_filters,
                     make_stage)

_F32_MAX = float(np.finfo(np.float32).max)


def _initial_method(config: ScenarioConfig) -> str:
    """The fusion method served before validation chose one: ``auto`` starts as ``weighted``."""
    return config.fusion.method if config.fusion.method != "auto" else "weighted"


def wants_ranker(config: ScenarioConfig, train_ranker: bool | None = None) -> bool:
    """Whether fitting trains the ranker: always (``True``), never (``False``), or when the fusion
    method is ``ranker`` or ``auto`` (None)."""
    return bool(train_ranker) or (train_ranker is None and config.fusion.method in ("ranker", "auto"))


def learns_fusion(config: ScenarioConfig, train_ranker: bool | None = None) -> bool:
    """Whether fitting cuts a validation slice (to train the ranker or tune the weights)."""
    return wants_ranker(config, train_ranker) or config.fusion.tune_weights


def filter_scope(config: ScenarioConfig) -> str:
    """The identity of a scenario's training filters ("" for none): models fitted on differently
    filtered data are different models."""
    return "|".join(s.key for s in config.training_filters)


# --------------------------------------------------------------------------- model cache
#: Strategies whose fit runs in native code that releases the GIL (PyTorch training and encoding):
#: a :class:`~.engine.Recommender` fits them in a background thread, one at a time (they seed
#: torch's global generator, so one at a time keeps them deterministic), while it fits the rest.
BACKGROUND_STRATEGIES = frozenset({"sasrec", "content_embedding"})


def _fit_model(spec: StrategySpec, model: Strategy, data: ShopData) -> tuple[Strategy, float]:
    start = time.perf_counter()
    with progress.step(f"fitting {spec.display}"):
        model.fit(data)
    return model, time.perf_counter() - start


class ModelCache:
    """Fitted strategies keyed by (training filters, name, parameters), so scenarios that share a
    strategy fit it once; and the filtered data and item facts scenarios share.

    While a :class:`~.engine.Recommender` fits, it also holds the validation slices its scenarios
    learn fusion from (:meth:`validation_slice`): scenarios that cut the same slice of the same data
    share it, the strategies fitted on its training part (one inner cache) and their candidates."""

    def __init__(self) -> None:
        self.models: dict[str, Strategy] = {}
        self.fit_seconds: dict[str, float] = {}
        self.skipped: dict[str, str] = {}
        self.filtered: dict[str, tuple[ShopData, list[FilterReport]]] = {}
        self.facts: dict[tuple[str, float], ItemFacts] = {}
        self.validation: dict[tuple, Any] = {}
        self.pending: dict[str, Future] = {}

    @staticmethod
    def validation_key(config: ScenarioConfig) -> tuple:
        """What a scenario's validation slice depends on: its training filters and how ``[ranker]``
        cuts the slice (the data being the same)."""
        r = config.ranker
        return (filter_scope(config), r.validation, r.validation_fraction, r.seed)

    def validation_slice(self, config: ScenarioConfig, make):
        """The validation slice shared by every scenario with the same :meth:`validation_key`:
        ``make()`` builds it the first time."""
        key = self.validation_key(config)
        if key not in self.validation:
            self.validation[key] = make()
        return self.validation[key]

    def release_validation(self, keep: set[tuple] = frozenset()) -> None:
        """Forget the validation slices (and what was fitted on them) whose key is not in ``keep``."""
        for key in [k for k in self.validation if k not in keep]:
            del self.validation[key]

    @staticmethod
    def key(spec: StrategySpec, scope: str = "") -> str:
        return f"{scope}||{spec.key}" if scope else spec.key

    def get(self, spec: StrategySpec, data: ShopData, scope: str = "") -> Strategy | None:
        """The fitted strategy of ``spec`` on ``data`` (fitted now, or waited for when
        :meth:`fit_later` started it), or None when it is skipped (see :attr:`skipped`)."""
        key = self.key(spec, scope)
        if key in self.pending:
            future = self.pending.pop(key)
            return self._store(key, spec, future.result)
        if key in self.models:
            return self.models[key]
        if key in self.skipped:
            return None
        model = self._make(key, spec, data)
        return None if model is None else self._store(key, spec, lambda: _fit_model(spec, model, data))

    def fit_later(self, spec: StrategySpec, data: ShopData, scope: str, executor) -> bool:
        """Start fitting ``spec`` on ``data`` in ``executor`` (a thread pool); :meth:`get` waits for
        it. Returns whether a fit was started (not when the strategy is fitted, started or skipped)."""
        key = self.key(spec, scope)
        if key in self.pending or key in self.models or key in self.skipped:
            return False
        model = self._make(key, spec, data)
        if model is None:
            return False
        # the same context: the caller's progress reporter shows the background fit's steps too
        self.pending[key] = executor.submit(contextvars.copy_context().run, _fit_model, spec, model, data)
        return True

    def _make(self, key: str, spec: StrategySpec, data: ShopData) -> Strategy | None:
        model = make_strategy(spec.name, **spec.params)
        why = model.unusable(data)
        if why is not None:   # e.g. content strategies on a shop without item texts
            self.skipped[key] = why
            return None
        return model

    def _store(self, key: str, spec: StrategySpec, fit) -> Strategy | None:
        """Run ``fit() -> (model, seconds)`` (or collect a background fit's result) and keep the model."""
        try:
            model, seconds = fit()
        except ConfigError as e:
            if spec.optional and "pip install" in str(e):
                self.skipped[key] = str(e)
                return None
            raise
        self.fit_seconds[key] = seconds
        self.models[key] = model
        return model

    def filter(self, config: ScenarioConfig, data: ShopData) -> tuple[ShopData, list[FilterReport]]:
        """``data`` through the scenario's training filters (once per distinct chain)."""
        scope = filter_scope(config)
        if not scope:
            return data, []
        if scope not in self.filtered:
            filters = [make_stage("training_filter", s, f"scenario {config.name!r}") for s in config.training_filters]
            self.filtered[scope] = apply_filters(filters, data)
        return self.filtered[scope]

    def item_facts(self, config: ScenarioConfig, data: ShopData) -> ItemFacts:
        key = (filter_scope(config), config.rules.consumable_min_repeat)
        if key not in self.facts:
            self.facts[key] = ItemFacts.from_data(data, consumable_min_repeat=key[1])
        return self.facts[key]


# --------------------------------------------------------------------------- request filters
@dataclass(frozen=True)
class RequestFilters:
    """Filters of one request, in internal indices."""

    categories: tuple[int, ...] = ()
    price_min: float | None = None
    price_max: float | None = None
    in_stock_only: bool | None = None
    exclude: tuple[int, ...] = ()

    @property
    def empty(self) -> bool:
        return (not self.categories and self.price_min is None and self.price_max is None
                and self.in_stock_only is None and not self.exclude)


# --------------------------------------------------------------------------- output
@dataclass
class Recommendations:
    """A batch answer: ``item_idx`` (n, k) int32, -1 padded, best first; ``scores``; ``sources`` (n, k)
    int64 bitmask over ``labels`` (the scenario's strategies, then its fallbacks); the mix policy's
    choice per request (``arm`` into ``arms``, with its ``propensity``)."""

    item_idx: np.ndarray
    scores: np.ndarray
    sources: np.ndarray
    labels: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    arm: np.ndarray | None = None
    propensity: np.ndarray | None = None
    arms: tuple[str, ...] = ()
    features: np.ndarray | None = None     # float64 (n, d): the context a contextual policy chose from

    def source_labels(self, row: int, col: int) -> list[str]:
        bits = int(self.sources[row, col])
        return [lab for j, lab in enumerate(self.labels) if bits >> j & 1]


# --------------------------------------------------------------------------- the pipeline
def rule_stages(cfg) -> list[StageSpec]:
    """The health re-rankers that ``[rules]`` switches on by a word (``price_flags = "demote"``,
    ``consumer_protection = "note"``; ``max_delivery_days = 15`` the delivery re-ranker), unless the
    scenario declares the same re-ranker in ``[[rerankers]]`` with its own parameters (that one wins)."""
    declared = {s.name for s in cfg.rerankers}
    out = []
    for name, action in (("price_flags", cfg.rules.price_flags), ("consumer_protection", cfg.rules.consumer_protection)):
        if action != "off" and name not in declared:
            out.append(StageSpec(name=name, params={"action": action}))
    if cfg.rules.max_delivery_days is not None and "delivery" not in declared:
        out.append(StageSpec(name="delivery", params={"max_delivery_days": cfg.rules.max_delivery_days}))
    return out


class ScenarioPipeline:
    """Fit once on a shop's data, then answer batches of requests for one scenario."""

    block_cells = 1 << 24

    def __init__(self, config: ScenarioConfig) -> None:
        self.config = config
        self.ranker = None

    # ------------------------------------------------------------------ fit
    def fit(self, data: ShopData, *, cache: ModelCache | None = None,
            train_ranker: bool | None = None, ablation: bool = False,
            facts: ItemFacts | None = None) -> "ScenarioPipeline":
        """Filter ``data`` through the training filters, fit (or take from ``cache``) every strategy
        of the scenario, learn the item facts (or use ``facts``, shared with other scenarios), fit
        the stages, and train the ranker on a validation slice — when the fusion method is
        ``ranker`` or ``auto`` (``train_ranker=None``), always (``True``, for comparisons) or never
        (``False``). ``ablation`` (benchmarks) also trains a ranker without the similarity
        features, served as method ``ranker_ablation``."""
        cfg = self.config
        self.ranker = self.ranker_ablation_ = None
        own_cache = cache is None
        self.cache_ = cache if cache is not None else ModelCache()
        data, self.filter_reports_ = self.cache_.filter(cfg, data)
        self.data_ = data
        self.facts_ = facts if facts is not None else self.cache_.item_facts(cfg, data)
        scope = filter_scope(cfg)
        self.specs_ = list(cfg.strategies)
        self.models_ = [self.cache_.get(s, data, scope) for s in self.specs_]
        self.fallback_models_ = [self.cache_.get(s, data, scope) for s in cfg.fallback]
        self.notes_ = [f"strategy {s.display!r} skipped: {self.cache_.skipped[ModelCache.key(s, scope)]}"
                       for s in self.specs_ if ModelCache.key(s, scope) in self.cache_.skipped]
        self._build_stages()
        self.text_ = _text_index(data, self.cache_, scope) if self._needs_text() else None
        self.env_ = StageEnv(data, self.facts_, self.models_, [s.display for s in self.specs_], self.text_, cfg)
        for stage in (self.policy_, *self.rerankers_, *self.fusions_.values()):
            stage.fit(data, self.env_)
        self.weights_ = np.array([s.weight for s in self.specs_], np.float32)
        self.validation_ = None
        self.method_ = _initial_method(cfg)
        want_ranker = wants_ranker(cfg, train_ranker)
        if learns_fusion(cfg, train_ranker):
            from .fusion import learn

            with progress.step(f"{cfg.name}: validation slice"):
                vs = learn.validation_set(self, data)
            self.validation_ = {"protocol": vs.protocol, "queries": vs.n_queries, "seconds": round(vs.seconds, 1),
                                "ndcg@10 (configured weights)": learn.ndcg_at(vs, self.weights_)}
            if cfg.fusion.tune_weights:
                with progress.step(f"{cfg.name}: tuning weights"):
                    self.weights_, best = learn.tune_weights(vs, self.weights_)
                self.validation_["ndcg@10 (tuned weights)"] = best
                self.validation_["tuned weights"] = dict(zip([s.display for s in self.specs_],
                                                             map(float, self.weights_)))
            if want_ranker:
                with progress.step(f"{cfg.name}: training the ranker"):
                    try:
                        self.ranker = learn.train_ranker(self, vs)
                        if ablation:
                            self.ranker_ablation_ = learn.train_ranker(self, vs, similarity=False)
                    except learn.NothingToLearn as e:   # served by weighted fusion, and said so
                        self.notes_.append(f"{cfg.name}: {e}; fused by weighted scores")
                        self.validation_["ranker"] = str(e)
            held = learn.compare_methods(self, vs)
            self.validation_["held-out ndcg@10"] = held
            if cfg.fusion.method == "auto":
                self.method_ = max((m for m in held if m in ("weighted", "rrf", "ranker")), key=held.get)
            del vs
            if own_cache:   # a cache shared with other scenarios keeps the slice for them (its owner frees it)
                self.cache_.release_validation()
            for r in (self.ranker, self.ranker_ablation_):
                if r is not None:
                    r.bind(self.env_)
            if self.ranker is not None and self.ranker.similarity:
                from .fusion.ranker import prepare_serving

                prepare_serving(self.env_)
        return self

    def _build_stages(self, ranker=None) -> None:
        """The policy, the re-ranker chain and the fusions the scenario file declares."""
        cfg = self.config
        src = f"scenario {cfg.name!r}"
        self.policy_ = make_stage("mix_policy", cfg.policy, src)
        chain = [StageSpec(name="rules", params=cfg.rules.model_dump())] + rule_stages(cfg) + list(cfg.rerankers)
        if cfg.fairness.method != "none":
            chain.append(StageSpec(name="fair_exposure", params=cfg.fairness.model_dump()))
        if cfg.diversity.method == "mmr":
            chain.append(StageSpec(name="mmr", params=cfg.diversity.model_dump(exclude={"method"})))
        self.rerankers_ = [make_stage("reranker", s, src) for s in chain]
        self.fusions_ = {"weighted": WeightedFusion(), "rrf": RRFFusion(rrf_k=cfg.fusion.rrf_k)}
        if cfg.fusion.method not in ("weighted", "rrf", "ranker", "auto"):
            self.fusions_[cfg.fusion.method] = make_stage(
                "fusion", StageSpec(name=cfg.fusion.method, params=cfg.fusion.params), src)

    def _needs_text(self) -> bool:
        return any(getattr(r, "needs_text", lambda: False)() for r in self.rerankers_)

    @property
    def stages(self) -> dict[str, Any]:
        """Every stage by a stable key (``policy``, ``reranker.<i>.<name>``, ``fusion.<name>``)."""
        out: dict[str, Any] = {"policy": self.policy_}
        out.update({f"reranker.{i}.{r.name}": r for i, r in enumerate(self.rerankers_)})
        out.update({f"fusion.{name}": f for name, f in self.fusions_.items()})
        if self.ranker is not None:
            out["fusion.ranker"] = self.ranker
        return out

    def stage_states(self) -> dict[str, dict[str, np.ndarray]]:
        """What each stage learned, by :attr:`stages` key (the artifact saves it)."""
        return {key: st for key, stage in self.stages.items() if (st := stage.state())}

    @classmethod
    def restore(cls, config: ScenarioConfig, data: ShopData, cache: ModelCache, facts: ItemFacts, *,
                weights: np.ndarray, notes: list[str], validation: dict | None, text_model: Strategy | None,
                states: dict[str, dict[str, np.ndarray]] | None = None, method: str | None = None,
                filter_reports: list[FilterReport] | None = None) -> "ScenarioPipeline":
        """A fitted pipeline from saved parts (see :mod:`.artifact`); its strategies come from ``cache``."""
        from .fusion.ranker import Ranker

        pipe = cls(config)
        pipe.method_ = method or _initial_method(config)
        pipe.ranker_ablation_ = None
        pipe.data_ = data
        pipe.cache_ = cache
        pipe.facts_ = facts
        scope = filter_scope(config)
        pipe.filter_reports_ = list(filter_reports or [])
        pipe.specs_ = list(config.strategies)
        pipe.models_ = [cache.models.get(ModelCache.key(s, scope)) for s in pipe.specs_]
        pipe.fallback_models_ = [cache.models.get(ModelCache.key(s, scope)) for s in config.fallback]
        pipe.notes_ = list(notes)
        pipe.text_ = _TextIndex(text_model) if text_model is not None else None
        pipe.weights_ = np.asarray(weights, np.float32)
        pipe.validation_ = validation
        pipe._build_stages()
        pipe.env_ = StageEnv(data, facts, pipe.models_, [s.display for s in pipe.specs_], pipe.text_, config)
        states = dict(states or {})
        if "fusion.ranker" in states:
            pipe.ranker = Ranker()
        for key, stage in pipe.stages.items():
            stage.bind(pipe.env_)
            if key in states:
                stage.set_state(states[key])
        return pipe

    def observe(self, events) -> None:
        """Live events (:class:`~shoprec.strategies.LiveEvents`) shown to every stage."""
        for stage in self.stages.values():
            if hasattr(stage, "observe"):
                stage.observe(events)

    def refresh_items(self, changed: np.ndarray) -> None:
        """After the catalogue grew or items changed (``facts_`` and the strategies already
        refreshed): every stage updates what it keeps per item."""
        for stage in self.stages.values():
            stage.refresh_items(np.asarray(changed, np.int64))

    @property
    def labels(self) -> list[str]:
        return [s.display for s in self.specs_] + [f"fallback:{s.display}" for s in self.config.fallback]

    # ------------------------------------------------------------------ stages per block
    def choose_mix(self, queries: Queries) -> MixChoice:
        """The mix policy's choice for each request; a request whose context carries a ``mix``
        (``{"name", "weights": {label: weight}}``: an A/B variant that overrides the scenario's
        weights) is answered with the scenario's weights so overridden, as the arm
        ``override:NAME`` with propensity 1 (the policy did not choose it)."""
        labels = [s.display for s in self.specs_]
        ctx = MixContext(queries, labels, self.weights_, np.array([m is not None for m in self.models_]))
        choice = self.policy_.choose(ctx)
        return override_mix(choice, queries.get_context("mix"), labels, self.weights_, self.config.name)

    def allowed(self, queries: Queries, filters: Sequence[RequestFilters | None] | None = None,
                exclude: sp.csr_matrix | None = None) -> np.ndarray:
        """Dense bool (n, n_items): what the re-rankers' rules and the requests' filters let this
        block recommend."""
        facts = self.facts_
        n, m = len(queries), facts.n_items
        ok = np.ones((n, m), dtype=bool)
        for stage in self.rerankers_:
            stage.constrain(queries, ok)
        if exclude is not None and exclude.nnz:
            ok[sp.csr_matrix(exclude).nonzero()] = False
        if filters is not None:
            for r, f in enumerate(filters):
                if f is None or f.empty:
                    continue
                if f.categories:
                    ok[r] &= np.isin(facts.category, f.categories)
                # bounds beyond float32 (prices are float32) compare as its largest finite value
                if f.price_min is not None:
                    ok[r] &= ~(facts.price < np.clip(f.price_min, -_F32_MAX, _F32_MAX))
                if f.price_max is not None:
                    ok[r] &= ~(facts.price > np.clip(f.price_max, -_F32_MAX, _F32_MAX))
                if f.in_stock_only:
                    ok[r] &= facts.in_stock
                if f.exclude:
                    ok[r, list(f.exclude)] = False
        return ok

    # ------------------------------------------------------------------ recommend
    def recommend(self, queries: Queries, k: int | None = None, *,
                  filters: Sequence[RequestFilters | None] | None = None,
                  exclude: sp.csr_matrix | None = None, method: str | None = None) -> Recommendations:
        """Top-``k`` (default: the scenario's K) for each request of the batch.

        ``method`` overrides the fusion method (``weighted``, ``rrf``, ``ranker``, or a strategy label
        to return that strategy alone under the same rules and fallback), for benchmarks.
        """
        return self.recommend_variants(queries, [method], k, filters=filters, exclude=exclude)[method]

    def recommend_variants(self, queries: Queries, methods: Sequence[str | None], k: int | None = None, *,
                           filters: Sequence[RequestFilters | None] | None = None,
                           exclude: sp.csr_matrix | None = None) -> dict[str | None, Recommendations]:
        """:meth:`recommend` for several ``methods`` at once (None = the scenario's own): the mix,
        the rules mask and every strategy's candidates are computed once per block and fused each way.

        Each answer's ``timings`` are what that method alone would cost: ``candidates`` counts only
        the strategies it uses (one for a single-strategy method), plus its own fusion and re-ranking.
        """
        k = k or self.config.k
        n, m = len(queries), self.facts_.n_items
        methods = list(dict.fromkeys(methods))
        outs = {meth: (np.full((n, k), -1, np.int32), np.full((n, k), -np.inf, np.float32),
                       np.zeros((n, k), np.int64)) for meth in methods}
        timings = {meth: {"candidates": 0.0, "fusion": 0.0, "rerank": 0.0} for meth in methods}
        labels = [s.display for s in self.specs_]
        only = {meth: labels.index(meth) if meth in labels else None for meth in methods}
        needed = None if any(o is None for o in only.values()) else sorted(set(only.values()))
        choice = self.choose_mix(queries)
        step = max(1, self.block_cells // max(m, 1))
        for start in range(0, n, step):
            sel = np.arange(start, min(n, start + step))
            whole = len(sel) == n
            qb = queries if whole else queries.take(sel)
            cb = choice if whole else choice.take(sel)
            fb = None if filters is None else [filters[i] for i in sel]
            eb = None if exclude is None else exclude[sel]
            t0 = time.perf_counter()
            allowed = self.allowed(qb, fb, eb)
            rules_s = time.perf_counter() - t0
            seconds: dict[int, float] = {}
            pairs = self.candidate_pairs(qb, allowed, needed, seconds=seconds)
            for meth in methods:
                o = only[meth]
                tm = timings[meth]
                tm["candidates"] += rules_s + (seconds.get(o, 0.0) if o is not None else sum(seconds.values()))
                idx, val, src = self._fuse_block(qb, cb, k, pairs, allowed, meth, o, tm)
                out_idx, out_val, out_src = outs[meth]
                out_idx[sel], out_val[sel], out_src[sel] = idx, val, src
        return {meth: Recommendations(*outs[meth], self.labels, timings[meth], choice.arm, choice.propensity,
                                      choice.arms, choice.features) for meth in methods}

    def candidate_pairs(self, queries: Queries, allowed: np.ndarray,
                        only: int | Sequence[int] | None = None, *,
                        seconds: dict[int, float] | None = None,
                        memo: tuple[dict, Any] | None = None) -> Pairs:
        """Each strategy's top candidates under ``allowed``, as the union of (request, item) pairs
        (``only``: those strategies alone; ``seconds``: filled with each strategy's time). ``memo``,
        ``(store, block key)`` where the key stands for these requests and this ``allowed``, keeps
        each strategy's candidates in ``store``: pipelines that share fitted strategies and requests
        (the scenarios of one validation slice) compute them once."""
        m = self.facts_.n_items
        S = len(self.specs_)
        use = set(range(S)) if only is None else {only} if isinstance(only, (int, np.integer)) else set(only)
        scope = filter_scope(self.config)
        lists = []
        for s, (spec, model) in enumerate(zip(self.specs_, self.models_)):
            if model is None or s not in use:
                continue
            t0 = time.perf_counter()
            key = None if memo is None else (ModelCache.key(spec, scope), id(model), spec.candidates, memo[1])
            got = None if key is None else memo[0].get(key)
            if got is None:
                idx, val = model.candidates(queries, spec.candidates, allowed)
                got = (idx, val, _evidence(idx, val, spec.candidates, allowed, model.evidence_floor()))
                if key is not None:
                    memo[0][key] = got
            idx, val, keep = got
            lists.append((s, idx, val, keep))
            if seconds is not None:
                seconds[s] = time.perf_counter() - t0
        return union_pairs(lists, len(queries), m, S, self.config.fusion.normalise)

    def fuse(self, pairs: Pairs, queries: Queries, method: str, weights: np.ndarray | None = None) -> np.ndarray:
        """Fused score of every candidate pair by ``method``; ``weights`` (S,) or (n, S) default to
        the pipeline's (configured, or tuned on validation)."""
        w = self.weights_ if weights is None else weights
        if method == "auto":
            method = self.method_
        if method == "weighted_configured":
            return self.fusions_["weighted"].fuse(pairs, np.array([s.weight for s in self.specs_], np.float32),
                                                  queries)
        if method == "ranker" and self.ranker is not None:
            return self.ranker.fuse(pairs, w, queries)
        if method == "ranker_ablation" and self.ranker_ablation_ is not None:
            return self.ranker_ablation_.fuse(pairs, w, queries)
        fusion = self.fusions_.get(method, self.fusions_["weighted"])
        return fusion.fuse(pairs, w, queries)

    def _learned(self, method: str) -> bool:
        """Whether ``method`` is a learned ranker, which reads every strategy's evidence whatever its weight."""
        return (method == "ranker" and self.ranker is not None) or (
            method == "ranker_ablation" and self.ranker_ablation_ is not None)

    def _fuse_block(self, qb: Queries, choice: MixChoice, k: int, pairs: Pairs, allowed: np.ndarray,
                    method: str | None, only: int | None, timings: dict[str, float]):
        """One method's top-``k`` of a block from its candidate pairs: fusion (or one strategy's own
        normalised score), the re-rankers, fallback."""
        cfg = self.config
        t1 = time.perf_counter()
        if only is not None:   # one strategy alone: its own candidates and normalised score
            if (pairs.sources != (np.int64(1) << only)).any():
                pairs = pairs.subset((pairs.sources >> only) & 1 == 1)
                pairs.sources[:] = np.int64(1) << only
            fused = pairs.norm[:, only].copy()
        else:
            shared = choice.shared
            weights = shared if shared is not None else choice.weights
            method = method or cfg.fusion.method
            if method == "auto":
                method = self.method_
            if not self._learned(method):
                pairs = _weighted_only(pairs, weights)
            fused = self.fuse(pairs, qb, method, weights)
        t2 = time.perf_counter()
        pool = max(r.pool(k) for r in self.rerankers_)
        ranked = Ranked(*top_pairs(pairs.row, pairs.item, fused, pairs.sources, len(qb), pool))
        if only is None:
            for stage in self.rerankers_:
                ranked = stage.rerank(ranked, qb, k)
        ranked = ranked.head(k)
        idx, val, src = self._fill(qb, ranked.item_idx.copy(), ranked.scores.copy(), ranked.sources.copy(), allowed, k)
        timings["fusion"] += t2 - t1
        timings["rerank"] += time.perf_counter() - t2
        return idx, val, src

    # ------------------------------------------------------------------ fallback
    def _fill(self, qb: Queries, idx, val, src, allowed, k):
        short = np.flatnonzero((idx < 0).any(axis=1))
        if not len(short):
            return idx, val, src
        n_main = len(self.specs_)
        for f, model in enumerate(self.fallback_models_):
            if model is None or not len(short):
                continue
            q = qb.take(short)
            ok = allowed[short].copy()
            have = idx[short]
            r, c = np.nonzero(have >= 0)
            ok[r, have[r, c]] = False
            need = int((have < 0).sum(axis=1).max())
            fi, fv = model.candidates(q, need, ok)
            # append the fallback items after the existing ones, below their scores
            floor = np.where(idx[short] >= 0, val[short], np.inf).min(axis=1)
            floor = np.where(np.isfinite(floor), floor, 0.0)
            for_pos = np.cumsum(have < 0, axis=1) - 1  # which fallback item goes to each empty slot
            empty = have < 0
            take = np.where(empty, np.minimum(for_pos, need - 1), 0)
            new_idx = np.take_along_axis(fi, take, 1)
            got = empty & (new_idx >= 0)
            idx[short] = np.where(got, new_idx, have)
            val[short] = np.where(got, floor[:, None] - 1.0 - np.arange(k)[None, :] * 1e-3, val[short])
            src[short] = np.where(got, np.int64(1) << (n_main + f), src[short])
            short = short[(idx[short] < 0).any(axis=1)]
        return idx, val, src


# --------------------------------------------------------------------------- helpers
def _evidence(idx: np.ndarray, val: np.ndarray, wanted: int, allowed: np.ndarray,
              floor: float | None) -> np.ndarray | None:
    """Which of a strategy's candidates are evidence about their request (None: all of them). Not
    evidence: its own filler (scores below ``floor``), and whole rows that carry no ranking — as
    long as they could be (``wanted`` items, or every allowed item) with every score equal, so which
    items made the cut is arbitrary (a zero history row times a model is zeros everywhere)."""
    valid = idx >= 0
    keep = None
    if floor is not None:
        below = valid & (val < floor)
        if below.any():
            keep = ~below
    count = valid.sum(axis=1)
    if not len(idx) or count.max(initial=0) < 2:
        return keep
    hi = np.where(valid, val, -np.inf).max(axis=1)
    lo = np.where(valid, val, np.inf).min(axis=1)
    flat = (count >= 2) & (hi == lo)
    if not flat.any():
        return keep
    short = flat & (count < wanted)
    if short.any():   # shorter than asked: flat only if it took every item the rules allow
        rows = np.flatnonzero(short)
        flat[rows[allowed[rows].sum(axis=1) > count[rows]]] = False
        if not flat.any():
            return keep
    keep = np.ones(idx.shape, bool) if keep is None else keep
    keep[flat] = False
    return keep


def _weighted_only(pairs: Pairs, weights: np.ndarray) -> Pairs:
    """The pairs without what strategies of weight 0 proposed: a strategy an arm (or the tuning) gives
    no weight does not answer that request, so its candidates do not pad the list at score 0 and it
    is not named among an item's sources."""
    zero = np.asarray(weights) == 0
    if not zero.any() or not len(pairs):
        return pairs
    bits = np.left_shift(np.int64(1), np.arange(zero.shape[-1], dtype=np.int64))
    used = (np.where(zero, 0, bits)).sum(axis=-1)        # int64 bitmask: (n,) or a scalar
    used_r = used[pairs.row] if np.ndim(used) else used
    keep = (pairs.sources & used_r) != 0
    out = pairs.subset(keep) if not keep.all() else Pairs(pairs.row, pairs.item, pairs.norm, pairs.rank,
                                                          pairs.raw, pairs.sources.copy())
    out.sources &= used[out.row] if np.ndim(used) else used
    return out


class _TextIndex:
    """TF-IDF vectors of item texts (through the content_tfidf strategy) for near-duplicates, search
    and content diversity."""

    def __init__(self, model: Strategy) -> None:
        self.model = model

    def item_vectors(self):
        return self.model.item_vectors()

    def query_scores(self, texts: list[str]) -> np.ndarray:
        n = len(texts)
        from ..data import Ragged

        q = Queries(np.full(n, -1, np.int32), Ragged.empty(n), np.full(n, -1, np.int32), Ragged.empty(n),
                    context={"query": np.asarray(texts, dtype=object)})
        out = self.model.score(q)
        return out

    def query_matches(self, texts: list[str], n_cols: int) -> np.ndarray:
        """(len(texts), n_cols) bool: the items whose text matches each search text (a positive
        score of :meth:`query_scores`), from the sparse text similarity when the model has one
        (no dense score row per request); items the index does not know match nothing."""
        m = self.model
        sim = None
        if getattr(m.config, "query_weight", 0) > 0 and hasattr(m, "_query_similarity"):
            sim = m._query_similarity(texts)
        if sim is None or not sp.issparse(sim):
            match = self.query_scores(texts) > 0
            if match.shape[1] < n_cols:
                match = np.hstack([match, np.zeros((match.shape[0], n_cols - match.shape[1]), bool)])
            return match[:, :n_cols]
        sim = sp.csr_matrix(sim)
        out = np.zeros((len(texts), n_cols), bool)
        rows = np.repeat(np.arange(len(texts)), np.diff(sim.indptr))
        pos = (sim.data > 0) & (sim.indices < n_cols)
        out[rows[pos], sim.indices[pos]] = True
        return out


#: The strategy behind the text index (fitted once per shop through the model cache).
TEXT_INDEX_SPEC = StrategySpec(name="content_tfidf", label="text index", params={"neighbours": 1})


def _text_index(data: ShopData, cache: ModelCache, scope: str = "") -> _TextIndex | None:
    table = data.item_table
    if table is None or not any(c in table.columns for c in ("title", "description")):
        return None
    from ..strategies import STRATEGIES

    if "content_tfidf" not in STRATEGIES:
        return None
    return _TextIndex(cache.get(TEXT_INDEX_SPEC, data, scope))
