"""Popularity: global, per category of what the query looked at, and time-decayed trending."""

from __future__ import annotations

from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
from pydantic import Field

from ..data import ShopData
from .base import Queries, Strategy, StrategyConfig, register


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
        self.scores_ = (base / max(base.max(initial=0.0), 1e-12)).astype(np.float32)
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

    def _state(self) -> dict[str, Any]:
        return {"scores_": self.scores_, "item_category_": self.item_category_}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.scores_ = state["scores_"]
        self.item_category_ = state["item_category_"]
