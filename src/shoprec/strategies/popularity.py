"""Popularity: global, per category of what the query looked at, and time-decayed trending."""

from __future__ import annotations

from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
from pydantic import Field

from ..data import ShopData
from .base import LiveEvents, Queries, Strategy, StrategyConfig, register

#: Trending scores are kept relative to a reference time; past 2**60 they are rebased.
_REBASE = 2.0 ** 60


class PopularityConfig(StrategyConfig):
    mode: Literal["global", "category", "trending"] = Field(
        default="global",
        description="global: most users; category: popular within the categories of the query's "
                    "history (global popularity breaks ties and fills); trending: exponentially "
                    "time-decayed behaviour weight.",
    )
    half_life_days: float = Field(default=7.0, gt=0, description="Trending: half-life of an event's weight.")
    category_boost: float = Field(default=1.0, ge=0,
                                  description="Category mode: weight of the query's category affinity.")


@register
class PopularityStrategy(Strategy):
    """Most popular items, optionally within the query's categories or decayed in time.

    ``global`` counts distinct users per item (weighted by behaviour when ``binary`` is false, the
    count of users is used as tie-breaker). ``trending`` weights each event by
    ``0.5 ** (age / half_life)`` with age measured from the newest event in the data; data without
    timestamps falls back to ``global``. ``category`` needs ``item_table['category']``; the score of an
    item is its normalised popularity times ``1 + boost * share of the query's history in the item's
    category``, so the query's categories come first and the rest stays ranked by popularity.
    """

    name = "popularity"
    Config = PopularityConfig

    def unusable(self, data: ShopData) -> str | None:
        if self.config.mode == "category" and (data.item_table is None or "category" not in data.item_table.columns):
            return f"{data.name}: popularity mode 'category' needs item_table['category']"
        return None

    def _fit(self, data: ShopData) -> None:
        cfg = self.config
        users_per_item = np.asarray((self.user_items_ > 0).sum(axis=0)).ravel().astype(np.float64)
        weight = np.asarray(self.user_items_.sum(axis=0)).ravel().astype(np.float64)
        base = users_per_item + 1e-6 * weight / max(weight.max(initial=0.0), 1.0)
        if cfg.mode == "trending":
            ts = data.events["timestamp"].to_numpy()
            if len(ts) and (ts >= 0).all():
                age_days = (ts.max() - ts) / 86400.0
                w = data.behaviour_weights(cfg.weights()) * np.power(0.5, age_days / cfg.half_life_days)
                trend = np.bincount(data.events["item_idx"].to_numpy(), weights=w, minlength=data.n_items)
                base = trend + 1e-9 * base / max(base.max(initial=0.0), 1.0)
        self.scale_ = 1.0 / max(float(base.max(initial=0.0)), 1e-12)
        self.scores_ = (base * self.scale_).astype(np.float32)
        ts = data.events["timestamp"].to_numpy()
        self.ref_time_ = float(ts.max()) if len(ts) and (ts >= 0).all() else 0.0
        self.item_category_ = np.full(data.n_items, -1, dtype=np.int32)
        if cfg.mode == "category":
            why = self.unusable(data)
            if why is not None:
                raise ValueError(why)
            codes, _ = pd.factorize(data.item_table["category"], use_na_sentinel=True)
            self.item_category_ = codes.astype(np.int32)

    def _score(self, queries: Queries) -> np.ndarray:
        n = len(queries)
        scores = np.broadcast_to(self.scores_, (n, self.n_items_)).copy()
        if self.config.mode == "category":
            hist = self.history(queries)
            cats = self.item_category_
            n_cat = int(cats.max(initial=-1)) + 1
            if n_cat and hist.nnz:
                rows = np.repeat(np.arange(n), np.diff(hist.indptr))
                c = cats[hist.indices]
                ok = c >= 0
                aff = np.zeros((n, n_cat), dtype=np.float32)
                np.add.at(aff, (rows[ok], c[ok]), hist.data[ok])
                aff /= np.maximum(aff.sum(axis=1, keepdims=True), 1e-12)
                item_aff = np.where(cats >= 0, aff[:, np.maximum(cats, 0)], 0.0)
                scores *= 1.0 + self.config.category_boost * item_aff
        return scores

    def _top(self, t: int) -> np.ndarray:
        """The ``t`` best items, best first, ties to the lower index (cached until scores change)."""
        cache = getattr(self, "_top_cache_", None)
        if cache is None or len(cache) < min(t, len(self.scores_)):
            t = min(max(t, 1024), len(self.scores_))
            s = self.scores_
            part = np.argpartition(-s, t - 1)[:t] if t < len(s) else np.arange(len(s))
            # argpartition may cut ties at the boundary arbitrarily: take every item tied with the t-th
            boundary = s[part].min()
            part = np.union1d(part, np.flatnonzero(s == boundary)) if (s == boundary).sum() > 1 else part
            cache = part[np.lexsort((part, -s[part]))]
            self._top_cache_ = cache
        return cache

    def candidates(self, queries: Queries, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` allowed items of the popularity order (global and trending modes; the
        category mode depends on the query and scores densely)."""
        if self.config.mode == "category":
            return super().candidates(queries, k, allowed)
        n = len(queries)
        idx = np.full((n, k), -1, dtype=np.int32)
        val = np.full((n, k), -np.inf, dtype=np.float32)
        top = self._top(4 * k + 256)
        ok = allowed[:, top]
        enough = ok.sum(axis=1) >= min(k, len(top))
        if enough.any():
            rows = np.flatnonzero(enough)
            first = np.argsort(~ok[rows], axis=1, kind="stable")[:, :k]
            got = np.take_along_axis(ok[rows], first, axis=1)
            items = np.where(got, top[first], -1)
            idx[rows, :items.shape[1]] = items
            val[rows, :items.shape[1]] = np.where(got, self.scores_[np.maximum(items, 0)], -np.inf)
        if not enough.all():  # heavily filtered requests: the dense path
            rows = np.flatnonzero(~enough)
            idx[rows], val[rows] = super().candidates(queries.take(rows), k, allowed[rows])
        return idx, val

    # ------------------------------------------------------------------ online
    def observe(self, events: LiveEvents) -> bool:
        w = events.weights(self.config.weights())
        keep = (w > 0) & (events.item_idx < len(self.scores_))
        if not keep.any():
            return False
        items, w = events.item_idx[keep], w[keep].astype(np.float64)
        if self.config.mode == "trending" and self.ref_time_ > 0:
            t = events.timestamp[keep]
            exponent = (t - self.ref_time_) / (self.config.half_life_days * 86400.0)
            if exponent.max() > 60:  # rebase: every score shrinks by the same factor
                shift = float(np.floor(exponent.max())) - 30.0
                self.scores_ = (self.scores_ * 2.0 ** -shift).astype(np.float32)
                self.ref_time_ += shift * self.config.half_life_days * 86400.0
                exponent = exponent - shift
            inc = w * np.power(2.0, exponent)
        else:
            inc = np.ones(len(items))
        scores = self.scores_.copy()  # readers keep a consistent array
        np.add.at(scores, items, (inc * self.scale_).astype(np.float32))
        self.scores_ = scores
        self._top_cache_ = None
        return True

    def refresh_items(self, n_items: int, changed: np.ndarray, item_table=None) -> bool:
        old = len(self.scores_)
        if n_items > old:
            self.scores_ = np.concatenate([self.scores_, np.zeros(n_items - old, np.float32)])
            self.item_category_ = np.concatenate([self.item_category_, np.full(n_items - old, -1, np.int32)])
            self._resize_users_items(n_items)
        self._top_cache_ = None
        if self.config.mode == "category" and item_table is not None and "category" in item_table.columns:
            codes, _ = pd.factorize(item_table["category"], use_na_sentinel=True)
            self.item_category_ = codes.astype(np.int32)[:n_items]
        return True

    def _state(self) -> dict[str, Any]:
        return {"scores_": self.scores_, "item_category_": self.item_category_, "scale_": self.scale_,
                "ref_time_": self.ref_time_}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.scores_ = state["scores_"]
        self.item_category_ = state["item_category_"]
        self.scale_ = float(state.get("scale_", 1.0))
        self.ref_time_ = float(state.get("ref_time_", 0.0))
