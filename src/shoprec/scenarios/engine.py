"""The Python API: a :class:`Recommender` holds a shop's fitted scenarios and answers requests.

    from shoprec import Recommender
    rec = Recommender().fit(data)                       # every shipped scenario
    rec.recommend("cart", {"basket": ["85123A"], "country": "France"})

Scenarios share fitted strategies (same name and parameters = one fit).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Sequence

from dataclasses import replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import progress as _progress
from ..data import Behaviour, Ragged, ShopData
from ..data.schema import DEFAULT_WEIGHTS
from ..exceptions import NotFittedError, RequestError
from ..strategies.base import LiveEvents, Queries, Strategy
from . import reasons as R
from .config import SCENARIO_NAMES, ScenarioConfig, load_scenario
from .context import Reason, RecommendedItem, RequestContext, Response
from .facts import ItemFacts
from .pipeline import (BACKGROUND_STRATEGIES, ModelCache, Recommendations, RequestFilters, ScenarioPipeline,
                       filter_scope, learns_fusion)


class Recommender:
    """Fits a set of scenarios on one shop and serves requests for any of them."""

    def __init__(self, scenarios: Iterable[str | Path | ScenarioConfig] | None = None) -> None:
        names = SCENARIO_NAMES if scenarios is None else scenarios
        self.configs: dict[str, ScenarioConfig] = {}
        for s in names:
            cfg = s if isinstance(s, ScenarioConfig) else load_scenario(s)
            self.configs[cfg.name] = cfg
        self.pipelines: dict[str, ScenarioPipeline] = {}
        #: users erased since the model was fitted: served as new visitors until the next fit
        self.forgotten_: set[str] = set()

    def forget_users(self, user_ids: Iterable[str]) -> int:
        """Serve these users as visitors without history from now on (an erasure: the model's own
        copy of them goes at the next fit); returns how many the model knew."""
        ids = [str(u) for u in user_ids]
        self.forgotten_.update(ids)
        return int((self.data_.users.to_index(ids, missing=-1) >= 0).sum()) if ids else 0

    def fit(self, data: ShopData, *, train_rankers: bool | None = None, progress=None) -> "Recommender":
        """Fit every scenario on ``data``; ``progress(name, seconds)`` is called after each."""
        self.data_ = data
        self.cache_ = ModelCache()   # shares fitted strategies, filtered data and item facts
        self.fit_seconds_: dict[str, float] = {}
        fitted: dict[str, ScenarioPipeline] = {}
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoprec-background-fit")
        try:
            # the strategies that train in native code (PyTorch) start in the background, and the
            # scenarios that wait for them are fitted last, so that the rest is fitted meanwhile
            later = self._fit_ahead(data, train_rankers, pool)
            order = [n for n in self.configs if n not in later] + [n for n in self.configs if n in later]
            # the validation slice each scenario learns its fusion from (None: none); scenarios that
            # cut the same one share it, and it is forgotten once no scenario still to fit needs it
            slices = [ModelCache.validation_key(self.configs[n]) if learns_fusion(self.configs[n], train_rankers)
                      else None for n in order]
            with _progress.step("training scenarios", total=len(self.configs), unit="scenario") as bar:
                for i, name in enumerate(order):
                    start = time.perf_counter()
                    bar.describe(f"training scenario {name}")
                    fitted[name] = ScenarioPipeline(self.configs[name]).fit(data, cache=self.cache_,
                                                                            train_ranker=train_rankers)
                    self.cache_.release_validation({k for k in slices[i + 1:] if k is not None})
                    self.fit_seconds_[name] = time.perf_counter() - start
                    bar.advance()
                    if progress is not None:
                        progress(name, self.fit_seconds_[name])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.cache_.release_validation()
        self.pipelines.update((name, fitted[name]) for name in self.configs)
        self.fit_seconds_ = {name: self.fit_seconds_[name] for name in self.configs}
        self._order_models()
        first = next(iter(self.cache_.models.values()), None)
        self._index_history(first.user_items_ if first is not None else data.interactions())
        return self

    def _fit_ahead(self, data: ShopData, train_rankers: bool | None, pool) -> set[str]:
        """Start the fits of :data:`~.pipeline.BACKGROUND_STRATEGIES` (each scenario's, and those on
        its validation slice) in ``pool``; returns the scenarios that use them."""
        from .fusion import learn

        later = set()
        for name, cfg in self.configs.items():
            specs = [s for s in (*cfg.strategies, *cfg.fallback) if s.name in BACKGROUND_STRATEGIES]
            if not specs:
                continue
            fdata, _ = self.cache_.filter(cfg, data)
            scope = filter_scope(cfg)
            for spec in specs:
                self.cache_.fit_later(spec, fdata, scope, pool)
            if not any(ModelCache.key(s, scope) in self.cache_.pending for s in specs):
                continue   # none can be fitted on this data (skipped): nothing to wait for
            later.add(name)
            if learns_fusion(cfg, train_rankers):
                shared = learn.shared_slice(self.cache_, cfg, fdata)
                for spec in specs:   # the inner pipeline: no training filters, the slice's training part
                    shared.cache.fit_later(spec, shared.task.train, "", pool)
        return later

    def _order_models(self) -> None:
        """The fitted strategies in the order the scenarios, as configured, name them (what fitting
        them one scenario after the other gives, whatever order they were fitted in): the first is
        the one whose history the reasons read, and the artifact lists them in that order."""
        cache = self.cache_
        key_of = {id(m): k for k, m in cache.models.items()}
        order: dict[str, None] = {}
        for pipe in self.pipelines.values():
            text = pipe.text_.model if pipe.text_ is not None else None
            for m in (*pipe.models_, *pipe.fallback_models_, text):
                if m is not None and id(m) in key_of:
                    order.setdefault(key_of[id(m)])
        order.update(dict.fromkeys(cache.models))
        cache.models = {k: cache.models[k] for k in order}
        cache.fit_seconds = {k: cache.fit_seconds[k] for k in order if k in cache.fit_seconds}

    def _index_history(self, user_items) -> None:
        """The user×item history behind the reasons' anchors."""
        self._user_items = sp.csr_matrix(user_items, dtype=np.float32)
        self._item_users = self._user_items.T.tocsr()
        self._item_norms = np.sqrt(np.asarray(self._item_users.multiply(self._item_users).sum(axis=1)).ravel())

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, **meta: Any) -> Path:
        """Write the fitted recommender as a versioned artifact (manifest + arrays, no pickle);
        ``meta`` goes into the manifest (e.g. ``trained_through_seq``). See :mod:`.artifact`."""
        from .artifact import save_recommender

        return save_recommender(self, Path(path), meta)

    @classmethod
    def load(cls, path: str | Path) -> "Recommender":
        """Read an artifact written by :meth:`save` (no pickle is loaded)."""
        from .artifact import load_recommender

        return load_recommender(Path(path), cls)

    # ------------------------------------------------------------------ live updates
    @property
    def facts(self) -> list[ItemFacts]:
        """The distinct item-fact tables of the scenarios."""
        seen: dict[int, ItemFacts] = {}
        for pipe in self.pipelines.values():
            seen.setdefault(id(pipe.facts_), pipe.facts_)
        return list(seen.values())

    def models(self) -> list[Strategy]:
        """Every distinct fitted strategy (shared ones once), the text index included."""
        return list(self.cache_.models.values())

    def observe(self, events: LiveEvents) -> int:
        """Learn from live events (internal indices) in every strategy that learns online, and show
        them to the scenarios' stages (a price check reads the prices they name); returns how many
        strategies changed."""
        if not len(events):
            return 0
        changed = sum(bool(m.observe(events)) for m in self.models())
        for pipe in self.pipelines.values():
            pipe.observe(events)
        return changed

    def upsert_items(self, table: pd.DataFrame) -> dict[str, int]:
        """Add or update catalogue items: ``table`` has ``item_id`` and any of the item columns
        (title, description, category, brand, price, in_stock, seller). New items are recommendable at
        once by the strategies that can score them (content, popularity/trending, live
        co-visitation); stock, price and category take effect from the next request."""
        if "item_id" not in table.columns:
            raise RequestError("items need an item_id")
        table = table.drop_duplicates("item_id", keep="last").reset_index(drop=True)
        ids = table["item_id"].astype(str)
        data = self.data_
        self.__dict__.pop("_reason_texts", None)  # titles may change: reasons are written afresh
        known = data.items.to_index(ids, missing=-1)
        n_old = data.n_items
        items = data.items.extend(ids[known < 0]) if (known < 0).any() else data.items
        n = len(items)
        idx = items.to_index(ids).astype(np.int64)
        attrs = table.drop(columns=["item_id"])
        old = data.item_table if data.item_table is not None else pd.DataFrame(index=pd.RangeIndex(n_old))
        full = old.reindex(pd.RangeIndex(n))
        for col in attrs.columns:
            given = attrs[col].notna().to_numpy()
            if col not in full.columns:
                full[col] = pd.Series([None] * n, dtype=object)
            if given.any():
                if full[col].dtype != object and not pd.api.types.is_dtype_equal(full[col].dtype, attrs[col].dtype):
                    full[col] = full[col].astype(object)
                full.loc[idx[given], col] = attrs[col][given].to_numpy()
        if "in_stock" in full.columns:
            full["in_stock"] = full["in_stock"].astype(object).where(full["in_stock"].notna(), True).astype(bool)
        self.data_ = replace(data, items=items, item_table=full)
        for facts in self.facts:
            facts.grow(n)
            facts.update(idx, attrs)
        for model in self.models():
            model.refresh_items(n, idx, full)
        for pipe in self.pipelines.values():
            pipe.data_ = pipe.env_.data = self.data_
            pipe.refresh_items(idx)
        return {"added": int(n - n_old), "updated": int((known >= 0).sum())}

    # ------------------------------------------------------------------ requests
    def to_queries(self, contexts: list[RequestContext]) -> tuple[Queries, list[RequestFilters], list[list[str]]]:
        """Map request contexts to internal indices (one id lookup for the whole batch); what cannot
        be mapped is reported in notes."""
        data = self.data_
        n = len(contexts)
        # every item id of the batch, looked up at once: per request its session, current item,
        # basket and excluded ids, in that order
        all_ids: list[str] = []
        spans = []
        sess_w: list[list[float]] = []
        for c in contexts:
            start = len(all_ids)
            w = []
            for ev in c.session:
                item_id, beh = (ev, "view") if isinstance(ev, str) else (ev.item_id, ev.behaviour)
                all_ids.append(item_id)
                try:
                    w.append(DEFAULT_WEIGHTS[Behaviour.parse(beh)])
                except ValueError as e:
                    raise RequestError(f"session event {item_id!r}: {e}") from None
            n_sess = len(c.session)
            if c.current_item is not None:
                all_ids.append(c.current_item)
            all_ids.extend(c.basket)
            all_ids.extend(c.filters.exclude_ids)
            spans.append((start, n_sess, c.current_item is not None, len(c.basket), len(c.filters.exclude_ids)))
            sess_w.append(w)
        item_idx = data.items.to_index(all_ids, missing=-1) if all_ids else np.zeros(0, np.int32)
        user_ids = [c.user_id for c in contexts]
        known_u = [i for i, u in enumerate(user_ids) if u is not None]
        users = np.full(n, -1, np.int32)
        if known_u:
            users[known_u] = data.users.to_index([user_ids[i] for i in known_u], missing=-1)
            forgotten = getattr(self, "forgotten_", None)
            if forgotten:
                users[[i for i in known_u if user_ids[i] in forgotten]] = -1
        cur = np.full(n, -1, np.int32)
        sess, weights, baskets, filters, notes = [], [], [], [], []
        ctx_cols: dict[str, list[Any]] = {"country": [], "device": [], "query": [], "timestamp": []}
        attr_keys = sorted({k for c in contexts for k in c.attributes})
        for k in attr_keys:
            ctx_cols[k] = []
        facts_names = None
        for r, c in enumerate(contexts):
            note: list[str] = []
            if c.user_id is not None and users[r] < 0:
                note.append("the user has no history yet: treated as a new visitor")
            pos, n_sess, has_cur, n_b, n_x = spans[r]
            idx = item_idx[pos:pos + n_sess]
            pos += n_sess
            if (idx < 0).any():
                ids = [ev if isinstance(ev, str) else ev.item_id for ev in c.session]
                note.append(f"session items not in the catalogue ignored: {[i for i, x in zip(ids, idx) if x < 0][:5]}")
            sess.append(idx[idx >= 0])
            weights.append(np.asarray(sess_w[r], np.float32)[idx >= 0] if n_sess else np.zeros(0, np.float32))
            if has_cur:
                ci = int(item_idx[pos])
                pos += 1
                if ci < 0:
                    note.append(f"current item {c.current_item!r} is not in the catalogue")
                cur[r] = ci
            b = item_idx[pos:pos + n_b]
            pos += n_b
            if (b < 0).any():
                note.append(f"basket items not in the catalogue ignored: {[x for x, i in zip(c.basket, b) if i < 0][:5]}")
            baskets.append(b[b >= 0])
            ex = item_idx[pos:pos + n_x]
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
            filters.append(RequestFilters(cats, f.price_min, f.price_max, f.in_stock_only,
                                          tuple(int(x) for x in ex if x >= 0)))
            ctx_cols["country"].append(c.country or "")
            ctx_cols["device"].append(c.device or "")
            ctx_cols["query"].append(c.query or "")
            t = c.unix_time()
            ctx_cols["timestamp"].append(t if t is not None else -1.0)
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
        """:meth:`recommend` for a batch of requests of one scenario, answered together."""
        return [Response.model_construct(
            scenario=scenario, notes=raw["notes"],
            items=[RecommendedItem.model_construct(
                item_id=it["item_id"], score=it["score"], title=it["title"],
                reasons=[Reason.model_construct(**r) for r in it["reasons"]]) for it in raw["items"]])
            for raw in self.recommend_raw(scenario, contexts)]

    def recommend_raw(self, scenario: str, contexts: list[RequestContext | dict[str, Any]],
                      mixes: Sequence[dict[str, Any] | None] | None = None) -> list[dict[str, Any]]:
        """The answers as plain dicts (``items``: ``item_id``, ``title``, ``score``, ``reasons``: list of
        ``strategy``, ``text``, ``anchor_item_id``, and for display ``reason`` (the first text) and
        ``strategies`` (their names); ``notes``): what a server serialises. ``mixes``: per request,
        None or an A/B variant's override of the scenario's weights (``{"name", "weights"}``, see
        :func:`shoprec.scenarios.policies.override_mix`)."""
        if not self.pipelines:
            raise NotFittedError("Recommender is not fitted; call fit(data) first")
        pipe = self.pipelines.get(scenario)
        if pipe is None:
            raise RequestError(f"unknown scenario {scenario!r}; this recommender has {sorted(self.pipelines)}")
        ctxs = [RequestContext.parse(c) for c in contexts]
        q, filters, notes = self.to_queries(ctxs)
        if mixes is not None and any(mixes):
            if len(mixes) != len(ctxs):
                raise RequestError(f"{len(mixes)} mixes for {len(ctxs)} requests")
            mix = np.empty(len(ctxs), dtype=object)
            mix[:] = list(mixes)
            q = replace(q, context={**(q.context or {}), "mix": mix})
        ks = [c.k or pipe.config.k for c in ctxs]
        recs = pipe.recommend(q, max(ks), filters=filters)
        items = self._explain(pipe, q, recs, ks, ctxs)
        out = []
        arms = recs.arm.tolist() if recs.arm is not None else [0] * len(ks)
        prop = recs.propensity.tolist() if recs.propensity is not None else [1.0] * len(ks)
        names = recs.arms or ("static",)
        feats = None if recs.features is None else np.round(recs.features, 6).tolist()
        for r, kk in enumerate(ks):
            nt = list(notes[r]) + list(pipe.notes_)
            if len(items[r]) < kk:
                nt.append(f"only {len(items[r])} items satisfy the rules and filters")
            arm = names[arms[r]]
            policy = {"name": "override" if arm.startswith("override:") else pipe.policy_.name, "arm": arm,
                      "propensity": prop[r]}
            if feats is not None:
                policy["features"] = feats[r]
            out.append({"items": items[r], "notes": nt, "policy": policy})
        return out

    # ------------------------------------------------------------------ reasons
    def _explain(self, pipe: ScenarioPipeline, q: Queries, recs: Recommendations, ks: list[int],
                 ctxs: list[RequestContext]) -> list[list[dict[str, Any]]]:
        """Every recommended item of the batch with its reasons (see :mod:`.reasons`)."""
        data = self.data_
        facts = pipe.facts_
        idx = recs.item_idx
        n, width = idx.shape
        specs = pipe.specs_ + list(pipe.config.fallback)
        models = pipe.models_ + pipe.fallback_models_
        used = np.bitwise_or.reduce(recs.sources, axis=None) if recs.sources.size else 0
        special: dict[int, np.ndarray] = {}
        for s, model in enumerate(models):
            if model is None or not (int(used) >> s) & 1:
                continue
            fn = getattr(model, "top_anchor", None) or getattr(model, "top_segment", None)
            if fn is not None:
                known = np.where(idx < model.n_items_, idx, -1)  # items added after its fit: -1
                special[s] = np.asarray(fn(q, known))
        generic: np.ndarray | None = None
        ext = data.items.external_ids
        titles = facts.titles
        # (template, anchor) → text, anchor id; kept across requests until the catalogue changes
        texts: dict[tuple[str, int], tuple[str, str | None]] = self.__dict__.setdefault("_reason_texts", {})
        if len(texts) > 200_000:
            texts.clear()

        def title(i: int) -> str | None:
            if titles is None or i >= len(titles):
                return None
            t = titles[i]
            return None if t is None or t is pd.NA or (isinstance(t, float) and t != t) else str(t)

        def anchored(template: str, a: int) -> tuple[str, str | None]:
            got = texts.get((template, a))
            if got is None:
                anchor_id = str(ext[a])
                got = texts[(template, a)] = (R.fill(template, anchor=title(a) or anchor_id), anchor_id)
            return got

        order = sorted(range(len(specs)), key=lambda s: -specs[s].weight)
        plain = {s: R.fill(specs[s].reason or R.TEMPLATES.get(specs[s].name, ("recommended by " + specs[s].name,) * 2)[1])
                 for s in order}
        # plain Python lists: indexing numpy scalars one by one costs more than the whole loop
        idx_l, src_l, score_l = idx.tolist(), recs.sources.tolist(), recs.scores.tolist()
        special_l = {s: v.tolist() for s, v in special.items()}
        ext_ids: dict[int, str] = {}
        reason_of: dict[tuple[int, int], dict[str, Any]] = {}   # (strategy, anchor) → reason (shared, read-only)
        # notes of the re-rankers (consumer protection: "often returned"), shown among the reasons
        notes: dict[int, list[dict[str, Any]]] = {}
        for stage in pipe.rerankers_:
            for i, text in stage.item_notes().items():
                notes.setdefault(int(i), []).append({"strategy": stage.name, "text": text, "anchor_item_id": None})
        # notes that depend on the request (delivery: "arrives in about 3 days" to its region)
        per_request = [(stage.name, got) for stage in pipe.rerankers_
                       if (got := stage.request_notes(q, idx)) is not None]
        out: list[list[dict[str, Any]]] = []
        for r in range(n):
            row: list[dict[str, Any]] = []
            query = ctxs[r].query
            idx_r, src_r, score_r = idx_l[r], src_l[r], score_l[r]
            for j in range(min(ks[r], width)):
                item = idx_r[j]
                if item < 0:
                    break
                bits = src_r[j]
                reasons = []
                for s in order:
                    if not bits >> s & 1:
                        continue
                    spec, model = specs[s], models[s]
                    name = spec.name
                    anchor_id = None
                    if name == "popularity":
                        text = R.TRENDING if getattr(model.config, "mode", "global") == "trending" else \
                            R.TEMPLATES["popularity"][0]
                    elif name.startswith("content") and query:
                        text = R.fill(spec.reason or R.SEARCH, query=query)
                    elif name == "cold_start" and s in special:
                        segment = special_l[s][r][j]
                        template_a, template_n = R.TEMPLATES["cold_start"]
                        text = R.fill(spec.reason or (template_a if segment else template_n), segment=str(segment or ""))
                    else:
                        a = int(special_l[s][r][j]) if s in special else -1
                        if a < 0 and s not in special:
                            if generic is None:
                                generic = R.cooccurrence_anchors(idx, R.anchor_candidates(q, self._user_items),
                                                                 self._item_users, self._item_norms).tolist()
                            a = generic[r][j]
                        got = reason_of.get((s, a))
                        if got is None:
                            if a >= 0:
                                template = spec.reason or R.TEMPLATES.get(name, ("recommended by " + name,) * 2)[0]
                                text, anchor_id = anchored(template, a)
                            else:
                                text = plain[s]
                            got = reason_of[(s, a)] = {"strategy": spec.display, "text": text,
                                                       "anchor_item_id": anchor_id}
                        reasons.append(got)
                        continue
                    reasons.append({"strategy": spec.display, "text": text, "anchor_item_id": anchor_id})
                if notes and item in notes:
                    reasons = reasons + notes[item]
                for stage_name, got in per_request:
                    text = got[r].get(item)
                    if text:
                        reasons = reasons + [{"strategy": stage_name, "text": text, "anchor_item_id": None}]
                score = score_r[j]
                iid = ext_ids.get(item)
                if iid is None:
                    iid = ext_ids[item] = str(ext[item])
                row.append({"item_id": iid, "score": score if math.isfinite(score) else 0.0,
                            "title": title(item), "reasons": reasons,
                            "reason": reasons[0]["text"] if reasons else "",
                            "strategies": [x["strategy"] for x in reasons]})
            out.append(row)
        return out
