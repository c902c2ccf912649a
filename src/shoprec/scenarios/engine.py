"""The Python API: a :class:`Recommender` holds a shop's fitted scenarios and answers requests.

    from shoprec import Recommender
    rec = Recommender().fit(data)                       # every shipped scenario
    rec.recommend("cart", {"basket": ["85123A"], "country": "France"})

Scenarios share fitted strategies (same name and parameters = one fit).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..data import Behaviour, Ragged, ShopData
from ..data.schema import DEFAULT_WEIGHTS
from ..exceptions import NotFittedError, RequestError
from ..strategies.base import Queries
from . import reasons as R
from .config import SCENARIO_NAMES, ScenarioConfig, load_scenario
from .context import Reason, RecommendedItem, RequestContext, Response
from .pipeline import ModelCache, Recommendations, RequestFilters, ScenarioPipeline


class Recommender:
    """Fits a set of scenarios on one shop and serves requests for any of them."""

    def __init__(self, scenarios: Iterable[str | Path | ScenarioConfig] | None = None) -> None:
        names = SCENARIO_NAMES if scenarios is None else scenarios
        self.configs: dict[str, ScenarioConfig] = {}
        for s in names:
            cfg = s if isinstance(s, ScenarioConfig) else load_scenario(s)
            self.configs[cfg.name] = cfg
        self.pipelines: dict[str, ScenarioPipeline] = {}

    def fit(self, data: ShopData, *, train_rankers: bool | None = None, progress=None) -> "Recommender":
        """Fit every scenario on ``data``; ``progress(name, seconds)`` is called after each."""
        self.data_ = data
        self.cache_ = ModelCache()
        self.fit_seconds_: dict[str, float] = {}
        for name, cfg in self.configs.items():
            start = time.perf_counter()
            self.pipelines[name] = ScenarioPipeline(cfg).fit(data, cache=self.cache_, train_ranker=train_rankers)
            self.fit_seconds_[name] = time.perf_counter() - start
            if progress is not None:
                progress(name, self.fit_seconds_[name])
        user_items = self.cache_.models and next(iter(self.cache_.models.values())).user_items_
        self._user_items = user_items if user_items is not None else data.interactions()
        self._item_users = self._user_items.T.tocsr()
        self._item_norms = np.sqrt(np.asarray(self._item_users.multiply(self._item_users).sum(axis=1)).ravel())
        return self

    # ------------------------------------------------------------------ requests
    def to_queries(self, contexts: list[RequestContext]) -> tuple[Queries, list[RequestFilters], list[list[str]]]:
        """Map request contexts to internal indices; what cannot be mapped is reported in notes."""
        data = self.data_
        n = len(contexts)
        users = np.full(n, -1, np.int32)
        cur = np.full(n, -1, np.int32)
        sess, weights, baskets, filters, notes = [], [], [], [], []
        ctx_cols: dict[str, list[Any]] = {"country": [], "device": [], "query": [], "timestamp": []}
        attr_keys = sorted({k for c in contexts for k in c.attributes})
        for k in attr_keys:
            ctx_cols[k] = []
        facts_names = None
        for r, c in enumerate(contexts):
            note: list[str] = []
            if c.user_id is not None:
                u = int(data.users.to_index([c.user_id], missing=-1)[0])
                users[r] = u
                if u < 0:
                    note.append(f"user {c.user_id!r} has no history yet: treated as a new visitor")
            ids, w = [], []
            for ev in c.session:
                item_id, beh = (ev, "view") if isinstance(ev, str) else (ev.item_id, ev.behaviour)
                ids.append(item_id)
                try:
                    w.append(DEFAULT_WEIGHTS[Behaviour.parse(beh)])
                except ValueError as e:
                    raise RequestError(f"session event {item_id!r}: {e}") from None
            idx = data.items.to_index(ids, missing=-1) if ids else np.zeros(0, np.int32)
            unknown = [i for i, x in zip(ids, idx) if x < 0]
            if unknown:
                note.append(f"session items not in the catalogue ignored: {unknown[:5]}")
            sess.append(idx[idx >= 0])
            weights.append(np.asarray(w, np.float32)[idx >= 0] if len(w) else np.zeros(0, np.float32))
            if c.current_item is not None:
                ci = int(data.items.to_index([c.current_item], missing=-1)[0])
                if ci < 0:
                    note.append(f"current item {c.current_item!r} is not in the catalogue")
                cur[r] = ci
            b = data.items.to_index(c.basket, missing=-1) if c.basket else np.zeros(0, np.int32)
            if (b < 0).any():
                note.append(f"basket items not in the catalogue ignored: {[x for x, i in zip(c.basket, b) if i < 0][:5]}")
            baskets.append(b[b >= 0])
            f = c.filters
            cats: tuple[int, ...] = ()
            if f.category:
                facts = next(iter(self.pipelines.values())).facts_
                facts_names = facts_names or {name: i for i, name in enumerate(facts.category_names)}
                missing = [x for x in f.category if x not in facts_names]
                if missing:
                    raise RequestError(f"filters.category: unknown categories {missing} "
                                       f"(e.g. {list(facts_names)[:5]})")
                cats = tuple(facts_names[x] for x in f.category)
            ex = data.items.to_index(f.exclude_ids, missing=-1) if f.exclude_ids else np.zeros(0, np.int32)
            filters.append(RequestFilters(cats, f.price_min, f.price_max, f.in_stock_only,
                                          tuple(int(x) for x in ex if x >= 0)))
            ctx_cols["country"].append(c.country or "")
            ctx_cols["device"].append(c.device or "")
            ctx_cols["query"].append(c.query or "")
            ctx_cols["timestamp"].append(c.unix_time() if c.unix_time() is not None else -1.0)
            for k in attr_keys:
                ctx_cols[k].append(c.attributes.get(k, ""))
            notes.append(note)
        items = Ragged.from_lists(sess)
        wv = np.concatenate(weights) if weights else np.zeros(0, np.float32)
        context = {k: np.asarray(v, dtype=np.float64 if k == "timestamp" else object) for k, v in ctx_cols.items()}
        q = Queries(users, items, np.where(cur >= 0, cur, items.last()).astype(np.int32),
                    Ragged.from_lists(baskets), wv if len(wv) else None, context)
        return q, filters, notes

    def recommend(self, scenario: str, context: RequestContext | dict[str, Any] | None = None,
                  **fields: Any) -> Response:
        """Recommendations with reasons for one request (``context`` as a dict or keyword fields)."""
        if context is not None and fields:
            raise RequestError("pass the context either as a dict or as keyword fields, not both")
        ctx = RequestContext.parse(context if context is not None else fields)
        return self.recommend_many(scenario, [ctx])[0]

    def recommend_many(self, scenario: str, contexts: list[RequestContext | dict[str, Any]]) -> list[Response]:
        if not self.pipelines:
            raise NotFittedError("Recommender is not fitted; call fit(data) first")
        pipe = self.pipelines.get(scenario)
        if pipe is None:
            raise RequestError(f"unknown scenario {scenario!r}; this recommender has {sorted(self.pipelines)}")
        ctxs = [RequestContext.parse(c) for c in contexts]
        q, filters, notes = self.to_queries(ctxs)
        ks = {c.k or pipe.config.k for c in ctxs}
        k = max(ks)
        recs = pipe.recommend(q, k, filters=filters)
        out = []
        for r, c in enumerate(ctxs):
            kk = c.k or pipe.config.k
            items = self._explain(pipe, q, recs, r, kk, c)
            nt = list(notes[r]) + list(pipe.notes_)
            if len(items) < kk:
                nt.append(f"only {len(items)} items satisfy the rules and filters")
            out.append(Response(scenario=scenario, items=items, notes=nt))
        return out

    # ------------------------------------------------------------------ reasons
    def _explain(self, pipe: ScenarioPipeline, q: Queries, recs: Recommendations, r: int, k: int,
                 ctx: RequestContext) -> list[RecommendedItem]:
        data = self.data_
        facts = pipe.facts_
        qr = q.take(np.array([r]))
        row_items = recs.item_idx[r, :k]
        valid = row_items >= 0
        row_items = row_items[valid]
        anchors_pool = R.anchor_candidates(qr, self._user_items)[0]
        specs = pipe.specs_ + list(pipe.config.fallback)
        models = pipe.models_ + pipe.fallback_models_
        special: dict[int, np.ndarray] = {}
        for s, model in enumerate(models):
            if model is None:
                continue
            fn = getattr(model, "top_anchor", None) or getattr(model, "top_segment", None)
            if fn is not None:
                special[s] = np.asarray(fn(qr, row_items[None, :]))[0]
        ids = data.items.to_external(row_items)
        out = []
        for j, (item, item_id) in enumerate(zip(row_items, ids)):
            bits = int(recs.sources[r, j])
            srcs = [s for s in range(len(specs)) if bits >> s & 1]
            srcs.sort(key=lambda s: -specs[s].weight)
            reasons = []
            generic_anchor = None
            for s in srcs:
                spec, model = specs[s], models[s]
                name = spec.name
                template_a, template_n = R.TEMPLATES.get(name, ("recommended by " + name, "recommended by " + name))
                anchor_id = None
                segment = None
                if name == "popularity":
                    mode = getattr(model.config, "mode", "global")
                    text = R.TRENDING if mode == "trending" else template_a
                elif name.startswith("content") and ctx.query:
                    text = R.fill(spec.reason or R.SEARCH, query=ctx.query)
                elif s in special and name == "cold_start":
                    segment = special[s][j]
                    text = R.fill(spec.reason or (template_a if segment else template_n), segment=str(segment or ""))
                else:
                    a = int(special[s][j]) if s in special else None
                    if a is None:
                        if generic_anchor is None:
                            generic_anchor = R.cooccurrence_anchor(int(item), anchors_pool, self._item_users,
                                                                   self._item_norms)
                        a = generic_anchor
                    if a is not None and a >= 0:
                        anchor_id = str(data.items.to_external(np.array([a]))[0])
                        label = facts.title(a) or anchor_id
                        text = R.fill(spec.reason or template_a, anchor=label)
                    else:
                        text = R.fill(spec.reason or template_n)
                reasons.append(Reason(strategy=spec.display, text=text, anchor_item_id=anchor_id))
            out.append(RecommendedItem(item_id=str(item_id), score=float(recs.scores[r, j]),
                                       title=facts.title(int(item)), reasons=reasons))
        return out

