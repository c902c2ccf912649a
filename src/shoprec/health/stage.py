"""Price flags on the pages: the ``price_flags`` re-ranker a scenario declares to keep abnormal prices
out of sight or at the bottom::

    [[rerankers]]
    name = "price_flags"
    params = { action = "demote" }      # or "hold" (never shown) or "ignore" (flagged, shown as ranked)

At fit it scans the training events' prices (:class:`~shoprec.health.prices.PriceSupervisor`) and
keeps the items whose **current** price is abnormal: the item's last observed price raised a spike,
drop or subsidy flag, or a creep was flagged within ``creep_days`` of its last observation. It also
keeps, per item, the recent prices the live check compares with, so a catalogue upsert (``PUT
/v1/items``) with an abnormal price flags the item at once (a spike or a drop: a single new price has no
volume for a subsidy and no path for a creep), and a price back at a known level clears it. Live
events that name a price (``POST /v1/events`` with ``price``, those the bot guard admits) are checked
the same way, the newest per item of each batch, and the first price of each new day joins the
item's recent prices.

``demote`` moves flagged items after every unflagged one of the fused pool (their order kept);
``hold`` removes them before candidates are taken (a rule, like out of stock); ``note`` shows them as
ranked with the flag's reason among their reasons.
"""

from __future__ import annotations

import weakref
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from ..scenarios.stages import StageConfig
from .flagged import FlaggedItemsReRanker, demote  # noqa: F401  (demote: re-exported)
from .prices import PriceConfig, PriceSupervisor, _reason, history_stats, price_series

__all__ = ["PriceFlagsConfig", "PriceFlagsReRanker", "demote", "item_price_flags"]

#: the arrays the stage keeps (its state)
_STATE = ("kind_", "value_", "expected_", "recent_", "last_t_")
#: (the events last scanned, weakly; ((creep_days, n_items), the arrays, the counts))
_LAST_SCAN: tuple = (lambda: None, None)

KIND_CODES = {"": 0, "spike": 1, "drop": 2, "subsidy": 3, "creep": 4}
KIND_NAMES = {v: k for k, v in KIND_CODES.items()}


class PriceFlagsConfig(StageConfig):
    action: Literal["demote", "hold", "note", "ignore"] = Field(
        default="demote", description="What a flagged item gets: demote (after every unflagged item), hold (never "
                                      "shown), note (shown as ranked, the flag's reason among its reasons), ignore "
                                      "(shown as ranked; the flag is still reported).")
    creep_days: float = Field(default=30.0, gt=0, description="A creep counts while flagged this recently.")


class PriceFlagsReRanker(FlaggedItemsReRanker):
    """The ``price_flags`` re-ranker (module docstring)."""

    name = "price_flags"
    Config = PriceFlagsConfig

    def fit(self, data, env) -> "PriceFlagsReRanker":
        self.bind(env)
        self._notes = None
        # the scenarios of one fit see the same events: scanned once (the arrays are copied, each
        # scenario's stage then changes its own live)
        global _LAST_SCAN
        ref, cached = _LAST_SCAN
        if ref() is data.events and cached[0] == (self.config.creep_days, data.n_items):
            for k, v in cached[1].items():
                setattr(self, k, v.copy())
            self.counts_ = dict(cached[2])
            return self
        self._scan(data)
        _LAST_SCAN = (weakref.ref(data.events), ((self.config.creep_days, data.n_items),
                                                 {k: getattr(self, k).copy() for k in _STATE},
                                                 dict(getattr(self, "counts_", {}))))
        return self

    def _scan(self, data) -> None:
        sup = PriceSupervisor()
        n, W = data.n_items, sup.config.window
        self.kind_ = np.zeros(n, np.int8)
        self.value_ = np.full(n, np.nan, np.float32)
        self.expected_ = np.full(n, np.nan, np.float32)
        self.recent_ = np.full((n, W), np.nan, np.float32)      # the last W daily prices, newest last
        self.last_t_ = np.full(n, np.nan, np.float64)           # the day of the newest of them
        ev = data.events
        if "price" not in ev.columns or not len(ev):
            return
        frame = pd.DataFrame({"item_id": ev["item_idx"].to_numpy(), "timestamp": ev["timestamp"].to_numpy(),
                              "price": ev["price"].to_numpy(),
                              "quantity": ev["quantity"].to_numpy() if "quantity" in ev.columns else 1.0})
        series, self.counts_ = price_series(frame, source=data.name)
        if series.empty:
            return
        flags = sup.scan(series).frame
        last = series.groupby("item")["t"].max()
        if len(flags):
            f = flags.assign(item=flags["key"].astype(np.int64))
            f["last"] = f["item"].map(last).to_numpy()
            now = (f["kind"] != "creep") & (f["at"] == f["last"])
            creep = (f["kind"] == "creep") & (f["at"] >= f["last"] - self.config.creep_days * 86_400.0)
            cur = f[now | creep].sort_values("at").drop_duplicates("item", keep="last")
            idx = cur["item"].to_numpy()
            self.kind_[idx] = cur["kind"].map(KIND_CODES).to_numpy(np.int8)
            self.value_[idx] = cur["value"].to_numpy(np.float32)
            self.expected_[idx] = cur["expected"].to_numpy(np.float32)
        # the last W prices per item, for the live check
        items = series["item"].to_numpy(np.int64)
        rank = series.groupby("item").cumcount(ascending=False).to_numpy()   # 0 = the newest
        keep = rank < W
        self.recent_[items[keep], W - 1 - rank[keep]] = series["price"].to_numpy(np.float32)[keep]
        self.last_t_[last.index.to_numpy(np.int64)] = last.to_numpy(np.float64)

    # ------------------------------------------------------------------ live
    def refresh_items(self, changed: np.ndarray) -> None:
        """New or changed catalogue items: their upserted price is checked at once."""
        facts = self.env.facts
        n = facts.n_items
        if len(self.kind_) < n:
            grow = n - len(self.kind_)
            self.kind_ = np.concatenate([self.kind_, np.zeros(grow, np.int8)])
            self.value_ = np.concatenate([self.value_, np.full(grow, np.nan, np.float32)])
            self.expected_ = np.concatenate([self.expected_, np.full(grow, np.nan, np.float32)])
            self.recent_ = np.vstack([self.recent_, np.full((grow, self.recent_.shape[1]), np.nan, np.float32)])
            self.last_t_ = np.concatenate([self.last_t_, np.full(grow, np.nan)])
        changed = np.asarray(changed, np.int64)
        if len(changed):
            self._check(changed, np.asarray(facts.price, np.float64)[changed])

    def observe(self, events) -> None:
        """Live events that name a price: the newest per item checked, each new day's first price kept."""
        if events.price is None or not len(events):
            return
        p = np.asarray(events.price, np.float64)
        item = np.asarray(events.item_idx, np.int64)
        ok = np.isfinite(p) & (p > 0) & (item >= 0) & (item < len(self.kind_))
        if not ok.any():
            return
        item, p, t = item[ok], p[ok], np.asarray(events.timestamp, np.float64)[ok]
        uniq, first_rev = np.unique(item[::-1], return_index=True)     # the newest event per item
        newest = len(item) - 1 - first_rev
        self._check(uniq, p[newest])
        day = np.floor(t[newest] / 86_400.0) * 86_400.0
        new_day = ~(day <= self.last_t_[uniq])                          # NaN (no history): new
        rows = uniq[new_day]
        if len(rows):
            self.recent_[rows] = np.column_stack([self.recent_[rows, 1:], p[newest][new_day].astype(np.float32)])
            self.last_t_[rows] = day[new_day]

    def _check(self, changed: np.ndarray, price: np.ndarray) -> None:
        """The live check of ``price`` (one per item of ``changed``) against the items' recent prices."""
        self._notes = None
        kind, expected = check_prices(self.recent_[changed], price, PriceSupervisor().config)
        has = np.isfinite(price) & (price > 0)
        live = self.kind_[changed].copy()
        # a one-off kind follows the new price: set when abnormal, cleared when normal again
        one_off = np.isin(live, [0, KIND_CODES["spike"], KIND_CODES["drop"], KIND_CODES["subsidy"]])
        upd = has & (one_off | (kind > 0))
        live[upd] = kind[upd]
        self.kind_[changed] = live
        self.value_[changed[upd]] = price[upd]
        self.expected_[changed[upd]] = expected[upd]

    # ------------------------------------------------------------------ the page
    def flagged(self) -> np.ndarray:
        return self.kind_ > 0

    def item_notes(self) -> dict[int, str]:
        # asked by every answered batch: kept until the flags change (fit, load, an upsert)
        if self.config.action != "note":
            return {}
        if getattr(self, "_notes", None) is None:
            cur = self.current()
            self._notes = dict(zip(cur["item_idx"].tolist(), cur["reason"].tolist()))
        return self._notes

    def state(self) -> dict[str, np.ndarray]:
        return {"kind_": self.kind_, "value_": self.value_, "expected_": self.expected_, "recent_": self.recent_,
                "last_t_": self.last_t_}

    def set_state(self, state) -> None:
        self._notes = None
        for k in ("kind_", "value_", "expected_", "recent_"):
            setattr(self, k, np.asarray(state[k]))
        # a model saved before the live event check kept no days: every event's day is then new
        self.last_t_ = np.asarray(state["last_t_"]) if "last_t_" in state else np.full(len(self.kind_), np.nan)

    def current(self) -> pd.DataFrame:
        """The flagged items now: item index, kind, price, usual price, reason."""
        idx = np.flatnonzero(self.flagged())
        kinds = [KIND_NAMES[int(k)] for k in self.kind_[idx]]
        value, expected = self.value_[idx].astype(float), self.expected_[idx].astype(float)
        return pd.DataFrame({"item_idx": idx, "kind": kinds, "price": value, "usual": expected,
                             "reason": [_reason(k, v, e) for k, v, e in zip(kinds, value, expected)]})


def check_prices(recent: np.ndarray, price: np.ndarray, c: PriceConfig) -> tuple[np.ndarray, np.ndarray]:
    """(kind code, usual price) of each new ``price`` against its item's ``recent`` prices (rows of the
    last window, NaN where fewer): the spike and drop tests of :class:`PriceSupervisor`."""
    import warnings

    n = len(price)
    kind = np.zeros(n, np.int8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lp = np.log(np.where(price > 0, price, np.nan))
        have, base, spread, known = history_stats(np.log(recent.astype(np.float64)), lp, c)
    ok = (have >= c.min_history) & np.isfinite(lp) & ~known
    d = lp - base
    z = d / spread
    kind[ok & (d >= np.log(c.spike_ratio)) & (z >= c.z)] = KIND_CODES["spike"]
    kind[ok & (d <= np.log(c.drop_ratio)) & (z <= -c.z)] = KIND_CODES["drop"]
    return kind, np.exp(base)


def item_price_flags(rec: Any, only: Any = None) -> tuple[str, pd.DataFrame] | None:
    """(scenario, its current price flags with item ids) of the first scenario of ``rec`` that has a
    ``price_flags`` re-ranker (``only``: of these item ids), or None."""
    for name, pipe in rec.pipelines.items():
        for stage in pipe.rerankers_:
            if isinstance(stage, PriceFlagsReRanker):
                cur = stage.current()
                if only is not None:
                    cur = cur[cur["item_idx"].isin(rec.data_.items.to_index(list(only), missing=-1))]
                cur.insert(0, "item_id", [str(x) for x in rec.data_.items.to_external(cur["item_idx"].to_numpy())]
                           if len(cur) else [])
                return name, cur.drop(columns="item_idx")
    return None
