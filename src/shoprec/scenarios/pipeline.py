"""One scenario's pipeline: candidates → fusion (or the learned ranker) → rules → diversity → fallback
→ reasons. Vectorised over a batch of requests; the single-request API of :mod:`.engine` is a batch
of one.

Per block of requests:

1. **Rules first.** A dense (n, n_items) *allowed* mask from the scenario's rules and the requests'
   filters: stock, basket, current item, history (with repurchase timing), price ratio, query match,
   near-duplicates of basket items. Every strategy ranks within it, so rules never starve a list.
2. **Candidates.** Each strategy's top ``candidates`` items under the mask.
3. **Fusion.** The union of candidate (request, item) pairs, with each strategy's normalised score
   and rank; fused by weighted sum, reciprocal-rank fusion or the learned ranker
   (:mod:`.ranker`).
4. **Diversity.** MMR over category or content vectors on the top of the fused list.
5. **Fallback.** Lists shorter than K are filled from the fallback strategies under the same mask.
6. **Sources.** A bitmask per item of the strategies that proposed it, for the reasons.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from ..data import Behaviour, ShopData
from ..exceptions import ConfigError
from ..strategies.base import Queries, Strategy, make_strategy
from ..strategies.topk import topk
from .config import ScenarioConfig, StrategySpec
from .facts import DAY, ItemFacts

_F32_MAX = float(np.finfo(np.float32).max)


def _initial_method(config: ScenarioConfig) -> str:
    """The fusion method served before validation chose one: ``auto`` starts as ``weighted``."""
    return config.fusion.method if config.fusion.method != "auto" else "weighted"


# --------------------------------------------------------------------------- model cache
class ModelCache:
    """Fitted strategies keyed by (name, parameters), so scenarios that share a strategy fit it once."""

    def __init__(self) -> None:
        self.models: dict[str, Strategy] = {}
        self.fit_seconds: dict[str, float] = {}
        self.skipped: dict[str, str] = {}

    def get(self, spec: StrategySpec, data: ShopData) -> Strategy | None:
        key = spec.key
        if key in self.models:
            return self.models[key]
        if key in self.skipped:
            return None
        model = make_strategy(spec.name, **spec.params)
        why = model.unusable(data)
        if why is not None:   # e.g. content strategies on a shop without item texts
            self.skipped[key] = why
            return None
        start = time.perf_counter()
        try:
            model.fit(data)
        except ConfigError as e:
            if spec.optional and "pip install" in str(e):
                self.skipped[key] = str(e)
                return None
            raise
        self.fit_seconds[key] = time.perf_counter() - start
        self.models[key] = model
        return model


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
    int64 bitmask over ``labels`` (the scenario's strategies, then its fallbacks)."""

    item_idx: np.ndarray
    scores: np.ndarray
    sources: np.ndarray
    labels: list[str]
    timings: dict[str, float] = field(default_factory=dict)

    def source_labels(self, row: int, col: int) -> list[str]:
        bits = int(self.sources[row, col])
        return [lab for j, lab in enumerate(self.labels) if bits >> j & 1]


@dataclass
class Pairs:
    """Candidate (request, item) pairs of a block with each strategy's evidence; the ranker's input."""

    row: np.ndarray          # int64 (M,)
    item: np.ndarray         # int32 (M,)
    norm: np.ndarray         # float32 (M, S): normalised score, 0 where the strategy did not propose it
    rank: np.ndarray         # float32 (M, S): 1-based rank, nan where not proposed
    raw: np.ndarray          # float32 (M, S): raw score, nan where not proposed
    sources: np.ndarray      # int64 (M,) bitmask

    def subset(self, mask: np.ndarray) -> "Pairs":
        """The pairs where ``mask`` (bool (M,)) holds, in the same order."""
        return Pairs(self.row[mask], self.item[mask], self.norm[mask], self.rank[mask], self.raw[mask],
                     self.sources[mask])


# --------------------------------------------------------------------------- the pipeline
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
        """Fit (or take from ``cache``) every strategy of the scenario, learn the item facts (or use
        ``facts``, shared with other scenarios), and train the ranker on a validation slice of
        ``data`` — when the fusion method is ``ranker`` or ``auto`` (``train_ranker=None``), always
        (``True``, for comparisons) or never (``False``). ``ablation`` (benchmarks) also trains a ranker
        without the similarity features, served as method ``ranker_ablation``."""
        cfg = self.config
        self.data_ = data
        self.ranker = self.ranker_ablation_ = None
        self.cache_ = cache if cache is not None else ModelCache()
        self.facts_ = facts if facts is not None else ItemFacts.from_data(
            data, consumable_min_repeat=cfg.rules.consumable_min_repeat)
        self.specs_ = [s for s in cfg.strategies]
        self.models_ = [self.cache_.get(s, data) for s in self.specs_]
        self.fallback_models_ = [self.cache_.get(s, data) for s in cfg.fallback]
        self.notes_ = [f"strategy {s.display!r} skipped: {self.cache_.skipped[s.key]}"
                       for s in self.specs_ if s.key in self.cache_.skipped]
        self._text = None
        self._near_dup = None
        if cfg.rules.complements_only or cfg.rules.require_query_match or cfg.diversity.by == "content":
            self._text = _text_index(data, self.cache_)
        if cfg.rules.complements_only and self._text is not None:
            self._near_dup = _near_duplicates(self._text.item_vectors(), cfg.rules.max_similarity_to_basket)
        self.weights_ = np.array([s.weight for s in self.specs_], np.float32)
        self.validation_ = None
        self.method_ = _initial_method(cfg)
        want_ranker = train_ranker or (train_ranker is None and cfg.fusion.method in ("ranker", "auto"))
        if want_ranker or cfg.fusion.tune_weights:
            from . import ranker as rk

            vs = rk.validation_set(self, data)
            self.validation_ = {"protocol": vs.protocol, "queries": vs.n_queries, "seconds": round(vs.seconds, 1),
                                "ndcg@10 (configured weights)": rk.ndcg_at(vs, self.weights_)}
            if cfg.fusion.tune_weights:
                self.weights_, best = rk.tune_weights(vs, self.weights_)
                self.validation_["ndcg@10 (tuned weights)"] = best
                self.validation_["tuned weights"] = dict(zip([s.display for s in self.specs_],
                                                             map(float, self.weights_)))
            if want_ranker:
                self.ranker = rk.train_ranker(self, vs)
                if ablation:
                    self.ranker_ablation_ = rk.train_ranker(self, vs, similarity=False)
            held = rk.compare_methods(self, vs)
            self.validation_["held-out ndcg@10"] = held
            if cfg.fusion.method == "auto":
                self.method_ = max((m for m in held if m in ("weighted", "rrf", "ranker")), key=held.get)
            del vs
            if self.ranker is not None and self.ranker.similarity:
                rk.prepare_serving(self)
        return self

    def serving_arrays(self) -> dict[str, np.ndarray]:
        """Arrays the ranker's features read from the fitted data (saved in the artifact)."""
        out = {}
        if getattr(self, "_embedding", None) is not None:
            out["embedding"] = self._embedding
        if getattr(self, "_last_item", None) is not None:
            out["last_item"] = self._last_item
        return out

    @classmethod
    def restore(cls, config: ScenarioConfig, data: ShopData, cache: ModelCache, facts: ItemFacts, *,
                weights: np.ndarray, notes: list[str], validation: dict | None, text_model: Strategy | None,
                near_duplicates: sp.csr_matrix | None, ranker=None, method: str | None = None,
                arrays: dict[str, np.ndarray] | None = None) -> "ScenarioPipeline":
        """A fitted pipeline from saved parts (see :mod:`.artifact`); its strategies come from ``cache``."""
        pipe = cls(config)
        pipe.method_ = method or _initial_method(config)
        pipe.ranker_ablation_ = None
        arrays = arrays or {}
        if "embedding" in arrays:
            pipe._embedding = np.asarray(arrays["embedding"], np.float32)
        if "last_item" in arrays:
            pipe._last_item = np.asarray(arrays["last_item"], np.int32)
        pipe.data_ = data
        pipe.cache_ = cache
        pipe.facts_ = facts
        pipe.specs_ = list(config.strategies)
        pipe.models_ = [cache.models.get(s.key) for s in pipe.specs_]
        pipe.fallback_models_ = [cache.models.get(s.key) for s in config.fallback]
        pipe.notes_ = list(notes)
        pipe._text = _TextIndex(text_model) if text_model is not None else None
        pipe._near_dup = near_duplicates
        pipe.weights_ = np.asarray(weights, np.float32)
        pipe.validation_ = validation
        pipe.ranker = ranker
        return pipe

    def refresh_items(self, changed: np.ndarray) -> None:
        """After the catalogue grew or items changed (``facts_`` and the strategies already
        refreshed): the near-duplicate rows of ``changed`` items from their new text vectors."""
        m = self.facts_.n_items
        emb = getattr(self, "_embedding", None)
        if emb is not None and len(emb) < m:  # new items: no co-occurrence yet
            self._embedding = np.vstack([emb, np.zeros((m - len(emb), emb.shape[1]), np.float32)])
        if self._near_dup is None or self._text is None:
            return
        vec = self._text.item_vectors()
        nd = self._near_dup.copy()
        if nd.shape[0] < m:
            nd.resize((m, m))
        changed = np.asarray(changed, np.int64)
        if len(changed):
            keep = np.ones(m, np.float32)
            keep[changed] = 0.0
            d = sp.diags(keep)
            nd = sp.csr_matrix(d @ nd @ d)
            v = sp.csr_matrix(vec, dtype=np.float32) if sp.issparse(vec) else np.asarray(vec, np.float32)
            block = v[changed] @ v.T
            block = sp.csr_matrix(block)
            block.data = (block.data >= self.config.rules.max_similarity_to_basket - 1e-6).astype(np.float32)
            block.eliminate_zeros()
            rows = sp.csr_matrix((np.ones(len(changed), np.float32), (changed, np.arange(len(changed)))),
                                 shape=(m, len(changed))) @ block
            nd = sp.csr_matrix(nd.maximum(rows).maximum(rows.T))
        self._near_dup = nd

    @property
    def labels(self) -> list[str]:
        return [s.display for s in self.specs_] + [f"fallback:{s.display}" for s in self.config.fallback]

    # ------------------------------------------------------------------ rules
    def allowed(self, queries: Queries, filters: Sequence[RequestFilters | None] | None = None,
                exclude: sp.csr_matrix | None = None) -> np.ndarray:
        """Dense bool (n, n_items): what the rules and filters let this block recommend."""
        rules = self.config.rules
        facts = self.facts_
        n, m = len(queries), facts.n_items
        ok = np.ones((n, m), dtype=bool)
        if rules.in_stock_only:
            ok &= facts.in_stock[None, :]
        rows_b = queries.basket.rows()
        if rules.exclude_basket and len(rows_b):
            ok[rows_b, queries.basket.values] = False
        if rules.exclude_current_item:
            cur = queries.current_item
            has = cur >= 0
            ok[np.flatnonzero(has), cur[has]] = False
        if rules.exclude_history != "none":
            self._mask_history(ok, queries)
        if rules.max_price_ratio is not None and len(rows_b):
            price = np.nan_to_num(facts.price[queries.basket.values], nan=0.0)
            value = np.bincount(rows_b, weights=price, minlength=n)
            limit = np.where(value > 0, value * rules.max_price_ratio, np.inf)
            known = np.isfinite(facts.price)
            ok &= ~known[None, :] | (facts.price[None, :] <= limit[:, None])
        if rules.complements_only and len(rows_b):
            basket = queries.basket.to_csr(m, binary=True)
            if self._near_dup is not None:
                dup = basket @ self._near_dup
                ok[dup.nonzero()] = False
            if not rules.same_category_allowed and (facts.category >= 0).any():
                cat = facts.category
                has_cat = cat >= 0
                onehot = sp.csr_matrix((np.ones(has_cat.sum(), np.float32),
                                        (np.flatnonzero(has_cat), cat[has_cat])), shape=(m, cat.max() + 1))
                same = (basket @ onehot) @ onehot.T
                ok[same.nonzero()] = False
        if rules.require_query_match and self._text is not None:
            text = queries.get_context("query")
            if text is not None:
                has_q = np.array([bool(t) for t in text])
                if has_q.any():
                    match = self._text.query_scores([str(t) for t in text[has_q]]) > 0
                    if match.shape[1] < m:  # items the text index does not know match nothing
                        match = np.hstack([match, np.zeros((match.shape[0], m - match.shape[1]), bool)])
                    ok[has_q] &= match
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

    def _mask_history(self, ok: np.ndarray, queries: Queries) -> None:
        rules = self.config.rules
        facts = self.facts_
        n = len(queries)
        known = queries.user_idx >= 0
        if rules.exclude_history == "all":
            model = next((m for m in self.models_ if m is not None), None)
            if model is not None:
                ok[model.history(queries, include_basket=False).nonzero()] = False
            return
        # purchased: the user's purchases before now, and purchases in the request's session
        bought = facts.purchased[np.where(known, queries.user_idx, 0)]
        if not known.all():
            bought = sp.diags(known.astype(np.float64)) @ bought
        bought = sp.csr_matrix(bought)
        r = np.repeat(np.arange(n), np.diff(bought.indptr))
        c = bought.indices
        if rules.repurchase and len(c):
            now = queries.get_context("timestamp")
            now_r = np.full(n, facts.now) if now is None else np.where(np.asarray(now, float) > 0, now, facts.now)
            since = (now_r[r] - (bought.data - 1.0)) / DAY
            interval = facts.repurchase_days[c]
            due = np.isfinite(interval) & (since >= rules.repurchase_tolerance * interval)
            r, c = r[~due], c[~due]
        ok[r, c] = False

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
        """:meth:`recommend` for several ``methods`` at once (None = the scenario's own): the rules
        mask and every strategy's candidates are computed once per block and fused each way.

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
        step = max(1, self.block_cells // max(m, 1))
        for start in range(0, n, step):
            sel = np.arange(start, min(n, start + step))
            qb = queries.take(sel) if len(sel) < n else queries
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
                idx, val, src = self._fuse_block(qb, k, pairs, allowed, meth, o, tm)
                out_idx, out_val, out_src = outs[meth]
                out_idx[sel], out_val[sel], out_src[sel] = idx, val, src
        return {meth: Recommendations(*outs[meth], self.labels, timings[meth]) for meth in methods}

    def candidate_pairs(self, queries: Queries, allowed: np.ndarray,
                        only: int | Sequence[int] | None = None, *,
                        seconds: dict[int, float] | None = None) -> Pairs:
        """Each strategy's top candidates under ``allowed``, as the union of (request, item) pairs
        (``only``: those strategies alone; ``seconds``: filled with each strategy's time)."""
        m = self.facts_.n_items
        S = len(self.specs_)
        use = set(range(S)) if only is None else {only} if isinstance(only, (int, np.integer)) else set(only)
        keys_l, s_l, norm_l, rank_l, raw_l = [], [], [], [], []
        for s, (spec, model) in enumerate(zip(self.specs_, self.models_)):
            if model is None or s not in use:
                continue
            t0 = time.perf_counter()
            idx, val = model.candidates(queries, spec.candidates, allowed)
            valid = idx >= 0
            rows = np.broadcast_to(np.arange(len(queries))[:, None], idx.shape)
            ranks = np.broadcast_to(np.arange(1, idx.shape[1] + 1, dtype=np.float32), idx.shape)
            norm = _normalise(val, valid, self.config.fusion.normalise)
            keys_l.append(rows[valid].astype(np.int64) * m + idx[valid])
            s_l.append(np.full(valid.sum(), s, np.int64))
            norm_l.append(norm[valid])
            rank_l.append(ranks[valid])
            raw_l.append(val[valid])
            if seconds is not None:
                seconds[s] = time.perf_counter() - t0
        if not keys_l:
            empty = np.zeros((0, S), np.float32)
            return Pairs(np.zeros(0, np.int64), np.zeros(0, np.int32), empty, empty, empty, np.zeros(0, np.int64))
        keys = np.concatenate(keys_l)
        strat = np.concatenate(s_l)
        uniq, inv = np.unique(keys, return_inverse=True)
        M = len(uniq)
        norm = np.zeros((M, S), np.float32)
        rank = np.full((M, S), np.nan, np.float32)
        raw = np.full((M, S), np.nan, np.float32)
        norm[inv, strat] = np.concatenate(norm_l)
        rank[inv, strat] = np.concatenate(rank_l)
        raw[inv, strat] = np.concatenate(raw_l)
        sources = np.zeros(M, np.int64)
        np.bitwise_or.at(sources, inv, np.left_shift(np.int64(1), strat))
        return Pairs(uniq // m, (uniq % m).astype(np.int32), norm, rank, raw, sources)

    def fuse(self, pairs: Pairs, queries: Queries, method: str) -> np.ndarray:
        """Fused score of every candidate pair (weights: the configured ones, or tuned on validation)."""
        w = self.weights_
        if method == "auto":
            method = self.method_
        if method == "rrf":
            contrib = np.where(np.isnan(pairs.rank), 0.0, 1.0 / (self.config.fusion.rrf_k + np.nan_to_num(pairs.rank)))
            return (contrib * w).sum(axis=1).astype(np.float32)
        if method == "ranker" and self.ranker is not None:
            return self.ranker.predict(self, pairs, queries)
        if method == "ranker_ablation" and self.ranker_ablation_ is not None:
            return self.ranker_ablation_.predict(self, pairs, queries)
        if method == "weighted_configured":
            w = np.array([s.weight for s in self.specs_], np.float32)
        return pairs.norm @ w

    def _fuse_block(self, qb: Queries, k: int, pairs: Pairs, allowed: np.ndarray, method: str | None,
                    only: int | None, timings: dict[str, float]):
        """One method's top-``k`` of a block from its candidate pairs: fusion (or one strategy's own
        normalised score), MMR, fallback."""
        cfg = self.config
        t1 = time.perf_counter()
        if only is not None:   # one strategy alone: its own candidates and normalised score
            if (pairs.sources != (np.int64(1) << only)).any():
                pairs = pairs.subset((pairs.sources >> only) & 1 == 1)
                pairs.sources[:] = np.int64(1) << only
            fused = pairs.norm[:, only].copy()
        else:
            fused = self.fuse(pairs, qb, method or cfg.fusion.method)
        t2 = time.perf_counter()
        pool = max(k, cfg.diversity.pool) if cfg.diversity.method == "mmr" else k
        idx, val, src = _top_pairs(pairs.row, pairs.item, fused, pairs.sources, len(qb), pool)
        if cfg.diversity.method == "mmr" and only is None:
            idx, val, src = self._mmr(idx, val, src, k)
        else:
            idx, val, src = idx[:, :k], val[:, :k], src[:, :k]
        idx, val, src = self._fill(qb, idx, val, src, allowed, k)
        timings["fusion"] += t2 - t1
        timings["rerank"] += time.perf_counter() - t2
        return idx, val, src

    # ------------------------------------------------------------------ diversity
    def _mmr(self, idx: np.ndarray, val: np.ndarray, src: np.ndarray, k: int):
        """Maximal marginal relevance (Carbonell & Goldstein 1998) over the pool, all rows at once:
        pick ``argmax λ·rel − (1−λ)·max sim(picked)`` k times."""
        lam = self.config.diversity.trade_off
        n, P = idx.shape
        valid = idx >= 0
        rel = np.where(valid, val, -np.inf)
        lo = np.where(valid, rel, np.inf).min(axis=1, keepdims=True)
        hi = np.where(valid, rel, -np.inf).max(axis=1, keepdims=True)
        rel = np.where(valid, (rel - lo) / np.maximum(hi - lo, 1e-9), -np.inf)
        vecs = self._sim_vectors(idx)
        chosen = np.full((n, k), -1, np.int64)
        max_sim = np.zeros((n, P), np.float32)
        taken = ~valid
        rows = np.arange(n)
        for j in range(min(k, P)):
            gain = np.where(taken, -np.inf, lam * rel - (1 - lam) * max_sim)
            pick = gain.argmax(axis=1)
            ok = np.isfinite(gain[rows, pick])
            chosen[ok, j] = pick[ok]
            taken[rows[ok], pick[ok]] = True
            sim = np.einsum("npd,nd->np", vecs, vecs[rows, pick])
            max_sim = np.where(ok[:, None], np.maximum(max_sim, sim), max_sim)
        have = chosen >= 0
        safe = np.where(have, chosen, 0)
        out_idx = np.where(have, np.take_along_axis(idx, safe, 1), -1).astype(np.int32)
        out_val = np.where(have, np.take_along_axis(val, safe, 1), -np.inf).astype(np.float32)
        out_src = np.where(have, np.take_along_axis(src, safe, 1), 0)
        return out_idx, out_val, out_src

    def _sim_vectors(self, idx: np.ndarray) -> np.ndarray:
        """(n, P, d) unit vectors whose dot products are the MMR similarity."""
        safe = np.maximum(idx, 0)
        if self.config.diversity.by == "content" and self._text is not None:
            v = self._text.item_vectors()
            flat = v[safe.ravel()]
            flat = flat.toarray() if sp.issparse(flat) else np.asarray(flat)
            vec = flat.reshape(*idx.shape, -1).astype(np.float32)
        else:
            cat = self.facts_.category
            n_cat = int(cat.max(initial=-1)) + 1
            if n_cat == 0:
                return np.zeros((*idx.shape, 1), np.float32)
            c = cat[safe]
            vec = np.zeros((*idx.shape, n_cat), np.float32)
            has = (c >= 0) & (idx >= 0)
            vec[has, c[has]] = 1.0
        vec[idx < 0] = 0.0
        return vec

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
def _normalise(val: np.ndarray, valid: np.ndarray, how: str) -> np.ndarray:
    """Per-row normalisation of a strategy's candidate scores to [0, 1]."""
    if how == "rank":
        k = val.shape[1]
        return np.broadcast_to(1.0 - np.arange(k, dtype=np.float32) / k, val.shape).copy()
    v = np.where(valid, val, np.nan).astype(np.float64)
    with np.errstate(all="ignore"):
        hi = np.nanmax(np.where(valid, v, -np.inf), axis=1, keepdims=True)
        if how == "max":
            out = np.where(hi > 0, v / hi, 1.0)
        else:
            lo = np.nanmin(np.where(valid, v, np.inf), axis=1, keepdims=True)
            span = hi - lo
            out = np.where(span > 0, (v - lo) / np.where(span > 0, span, 1.0), 1.0)
    return np.where(valid, np.nan_to_num(out, nan=0.0), 0.0).astype(np.float32)


def _top_pairs(row: np.ndarray, item: np.ndarray, score: np.ndarray, sources: np.ndarray, n: int, k: int):
    """Per-row top-k of scored pairs (ties: lower item index first)."""
    idx = np.full((n, k), -1, np.int32)
    val = np.full((n, k), -np.inf, np.float32)
    src = np.zeros((n, k), np.int64)
    if not len(row):
        return idx, val, src
    order = np.lexsort((item, -score, row))
    r = row[order]
    starts = np.searchsorted(r, np.arange(n))
    pos = np.arange(len(r)) - starts[r]
    keep = pos < k
    o = order[keep]
    idx[r[keep], pos[keep]] = item[o]
    val[r[keep], pos[keep]] = score[o]
    src[r[keep], pos[keep]] = sources[o]
    return idx, val, src


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


#: The strategy behind the text index (fitted once per shop through the model cache).
TEXT_INDEX_SPEC = StrategySpec(name="content_tfidf", label="text index", params={"neighbours": 1})


def _text_index(data: ShopData, cache: ModelCache) -> _TextIndex | None:
    table = data.item_table
    if table is None or not any(c in table.columns for c in ("title", "description")):
        return None
    from ..strategies import STRATEGIES

    if "content_tfidf" not in STRATEGIES:
        return None
    return _TextIndex(cache.get(TEXT_INDEX_SPEC, data))


def _near_duplicates(vectors, threshold: float) -> sp.csr_matrix:
    """Sparse bool item×item: cosine ≥ threshold (the diagonal included), computed in row blocks."""
    v = sp.csr_matrix(vectors, dtype=np.float32) if sp.issparse(vectors) else np.asarray(vectors, np.float32)
    n = v.shape[0]
    parts = []
    for start in range(0, n, 2048):
        block = v[start:start + 2048] @ v.T
        block = sp.csr_matrix(block) if not sp.issparse(block) else block.tocsr()
        block.data = (block.data >= threshold - 1e-6).astype(np.float32)
        block.eliminate_zeros()
        parts.append(block)
    return sp.vstack(parts).tocsr() if parts else sp.csr_matrix((0, 0), dtype=np.float32)
