"""Bots kept out of the signal: sessions scored by how they browse, and the ``bots`` training filter.

:func:`session_features` describes every visit (a session where the events carry one, else the user)
from its events, all at once (pandas group-bys, no loop over visits): events, views, add-to-carts,
purchases, duration, pace (browsing events per minute), the regularity of the gaps between events
(their coefficient of variation: a script's metronome is near 0, a person's well above 0.5), the
share of distinct items, and, where items have categories, the number of categories touched.

:class:`BotDetector` flags a visit (``subject`` ``session``, its flag naming the ``kind``):

* **crawler**: at least ``crawler_min_events`` events, only browsing (no cart, no purchase), mostly
  distinct items (≥ ``crawler_distinct``), and either faster than ``crawler_rate`` events a minute or
  metronomic (gap CV ≤ ``crawler_cv``);
* **cart_stuffer**: at least ``stuffer_min_carts`` add-to-carts, no purchase, and carts ≥
  ``stuffer_share`` of its events (holding stock, or pushing items' "in N carts" counts).

* **click_farm**: many short browsing visits (``farm_min_items`` to ``farm_max_items`` distinct items,
  at least half of the events views, no purchase), each looking like a person's, that hit the same few items: among such visits a pair of
  items is *hot* when at least ``farm_min_pair`` visits hold both and they are at least
  ``farm_pair_share`` of the visits of the rarer of the two; a visit whose pairs are at least
  ``farm_hot_share`` hot is a farm's. (Visits are judged together here: one visit alone cannot tell.)
* **brushing**: fake orders, where the events name the account (an ``account`` column): an order
  (a visit with a purchase) of an account seen in no other visit is a *newcomer's*. An item is
  *brushed* when at least ``brush_min_orders`` newcomers' orders hold it and they are at least
  ``brush_item_share`` of all the orders that hold it and at least ``brush_lift`` × the shop's share
  of newcomers' orders (real buyers of an item come back; a brushing ring's accounts are used once);
  a newcomer's order is a brushing order when at least ``brush_visit_share`` of its distinct items,
  and at least two, are brushed.

The ``bots`` training filter drops every event of a flagged visit before any strategy learns, and
its report says how many visits and events of each kind were dropped; the events stay in the store.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from ..data import Behaviour
from ..scenarios.stages import StageConfig, TrainingFilter
from .flags import FLAG_COLUMNS, Flags

__all__ = ["BotConfig", "BotDetector", "BotFilter", "session_features"]

_BROWSE = (int(Behaviour.VIEW), int(Behaviour.CLICK), int(Behaviour.SEARCH))


def session_features(events: pd.DataFrame) -> pd.DataFrame:
    """One row per visit of ``events`` (columns ``visit``, ``item``, ``behaviour`` (Behaviour codes),
    ``timestamp`` (seconds), optionally ``category``); see the module docstring."""
    ev = events.sort_values(["visit", "timestamp"], kind="stable")
    visit = ev["visit"].to_numpy()
    beh = ev["behaviour"].to_numpy()
    ts = ev["timestamp"].to_numpy(np.float64)
    same = np.r_[False, visit[1:] == visit[:-1]]
    gap = np.where(same, np.diff(ts, prepend=np.nan), np.nan)
    frame = pd.DataFrame({"visit": visit, "item": ev["item"].to_numpy(), "gap": gap, "ts": ts,
                          "view": np.isin(beh, _BROWSE), "cart": beh == int(Behaviour.ADD_TO_CART),
                          "buy": beh == int(Behaviour.PURCHASE)})
    g = frame.groupby("visit", sort=True)
    out = pd.DataFrame({"events": g.size(), "views": g["view"].sum(), "carts": g["cart"].sum(),
                        "purchases": g["buy"].sum(), "items": g["item"].nunique(),
                        "seconds": g["ts"].max() - g["ts"].min(),
                        "gap_mean": g["gap"].mean(), "gap_std": g["gap"].std()})
    if "category" in ev.columns:
        out["categories"] = pd.Series(ev["category"].to_numpy(), index=visit).groupby(level=0).nunique()
    out["rate_per_minute"] = out["views"] / np.maximum(out["seconds"] / 60.0, 1.0 / 60.0)
    out["gap_cv"] = out["gap_std"] / out["gap_mean"].where(out["gap_mean"] > 0)
    out["distinct_share"] = out["items"] / out["events"]
    return out


class BotConfig(StageConfig):
    crawler_min_events: int = Field(default=20, ge=2)
    crawler_distinct: float = Field(default=0.7, ge=0, le=1)
    crawler_rate: float = Field(default=20.0, gt=0, description="Browsing events a minute no person keeps up.")
    crawler_cv: float = Field(default=0.25, ge=0, description="Gaps this regular (std / mean) are a script's.")
    stuffer_min_carts: int = Field(default=10, ge=1)
    stuffer_share: float = Field(default=0.5, ge=0, le=1)
    farm_min_items: int = Field(default=3, ge=2)
    farm_max_items: int = Field(default=10, ge=2)
    farm_min_pair: int = Field(default=2, ge=2)
    farm_pair_share: float = Field(default=0.1, ge=0, le=1)
    farm_hot_share: float = Field(default=0.6, ge=0, le=1)
    brush_min_orders: int = Field(default=20, ge=2)
    brush_item_share: float = Field(default=0.5, ge=0, le=1)
    brush_lift: float = Field(default=2.0, ge=1)
    brush_visit_share: float = Field(default=0.5, ge=0, le=1)


class BotDetector:
    """Flags crawler and cart-stuffer visits (module docstring)."""

    def __init__(self, config: BotConfig | None = None, **params) -> None:
        self.config = config or BotConfig(**params)

    def farm_visits(self, events: pd.DataFrame, feats: pd.DataFrame) -> np.ndarray:
        """The visits (index values of ``feats``) that click farms made (module docstring)."""
        c = self.config
        # short browsing visits (a cancellation invoice, all remove-from-carts, is not one)
        short = feats.index[((feats["items"] >= c.farm_min_items) & (feats["items"] <= c.farm_max_items)
                             & (feats["purchases"] == 0) & (feats["views"] >= 0.5 * feats["events"])).to_numpy()]
        vi = events.loc[events["visit"].isin(short), ["visit", "item"]].drop_duplicates()
        if vi.empty:
            return np.zeros(0, dtype=object)
        vcode, vuniq = pd.factorize(vi["visit"])
        icode = pd.factorize(vi["item"])[0]
        order = np.lexsort((icode, vcode))
        vcode, icode = vcode[order], icode[order]
        start = np.r_[0, np.flatnonzero(np.diff(vcode)) + 1]
        size = np.diff(np.r_[start, len(vcode)])
        # all pairs (a < b) within each visit, vectorised: row j of a visit pairs with each later row
        rep = np.repeat(np.arange(len(vcode)), np.repeat(size, size) - (np.arange(len(vcode)) - np.repeat(start, size)) - 1)
        offs = np.concatenate([np.arange(1, k - j) for k in size for j in range(k - 1)] or [np.zeros(0, int)])
        a, b = icode[rep], icode[rep + offs]
        pv = vcode[rep]
        n_items = int(icode.max()) + 1
        key = np.minimum(a, b).astype(np.int64) * n_items + np.maximum(a, b)
        uniq, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
        per_item = np.bincount(icode, minlength=n_items)
        rarer = np.minimum(per_item[uniq // n_items], per_item[uniq % n_items])
        hot = (cnt >= c.farm_min_pair) & (cnt >= c.farm_pair_share * rarer)
        pairs_per_visit = np.bincount(pv, minlength=len(vuniq))
        hot_per_visit = np.bincount(pv, weights=hot[inv].astype(float), minlength=len(vuniq))
        farm = (pairs_per_visit > 0) & (hot_per_visit >= c.farm_hot_share * np.maximum(pairs_per_visit, 1))
        return np.asarray(vuniq)[farm]

    def brushing_visits(self, events: pd.DataFrame, feats: pd.DataFrame) -> np.ndarray:
        """The visits (index values of ``feats``) that are brushing orders (module docstring); none
        when ``events`` has no ``account`` column."""
        c = self.config
        if "account" not in events.columns:
            return np.zeros(0, dtype=object)
        orders = feats.index[(feats["purchases"] > 0).to_numpy()]
        va = events[["visit", "account"]].drop_duplicates("visit")
        visits_of = va.groupby("account")["visit"].size()
        newcomer = va.set_index("visit")["account"].map(visits_of) == 1
        bought = events.loc[(events["behaviour"].to_numpy() == int(Behaviour.PURCHASE))
                            & events["visit"].isin(orders).to_numpy(), ["visit", "item"]].drop_duplicates()
        if bought.empty:
            return np.zeros(0, dtype=object)
        new = newcomer.reindex(bought["visit"]).to_numpy(bool)
        icode, iuniq = pd.factorize(bought["item"])
        n_all = np.bincount(icode, minlength=len(iuniq))
        n_new = np.bincount(icode, weights=new.astype(float), minlength=len(iuniq))
        base = float(newcomer.reindex(orders).mean())     # the shop's share of newcomers' orders
        brushed = ((n_new >= c.brush_min_orders) & (n_new >= c.brush_item_share * n_all)
                   & (n_new >= c.brush_lift * base * n_all))
        vcode, vuniq = pd.factorize(bought["visit"])
        hits = np.bincount(vcode, weights=brushed[icode].astype(float), minlength=len(vuniq))
        size = np.bincount(vcode, minlength=len(vuniq))
        vnew = np.zeros(len(vuniq), bool)
        vnew[vcode[new]] = True
        return np.asarray(vuniq)[vnew & (hits >= 2) & (hits >= c.brush_visit_share * size)]

    def kinds(self, feats: pd.DataFrame, events: pd.DataFrame | None = None) -> pd.Series:
        """Per visit (the index of ``feats``): its kind, or "" when it looks like a person; with the
        ``events`` the features came from, click farms too."""
        c = self.config
        only_browse = (feats["carts"] == 0) & (feats["purchases"] == 0)
        crawler = ((feats["events"] >= c.crawler_min_events) & only_browse
                   & (feats["distinct_share"] >= c.crawler_distinct)
                   & ((feats["rate_per_minute"] >= c.crawler_rate) | (feats["gap_cv"] <= c.crawler_cv)))
        stuffer = ((feats["carts"] >= c.stuffer_min_carts) & (feats["purchases"] == 0)
                   & (feats["carts"] >= c.stuffer_share * feats["events"]))
        out = pd.Series("", index=feats.index, dtype=object)
        if events is not None:
            out[out.index.isin(self.farm_visits(events, feats))] = "click_farm"
            out[out.index.isin(self.brushing_visits(events, feats))] = "brushing"
        out[stuffer.to_numpy()] = "cart_stuffer"
        out[crawler.to_numpy()] = "crawler"
        return out

    def flags(self, events: pd.DataFrame) -> Flags:
        feats = session_features(events)
        kind = self.kinds(feats, events)
        hit = kind != ""
        f = feats[hit.to_numpy()]
        k = kind[hit]
        reason = [(f"{int(r.events)} views of {int(r.items)} items at {r.rate_per_minute:.0f} a minute, gaps "
                   f"{'regular' if r.gap_cv == r.gap_cv and r.gap_cv <= self.config.crawler_cv else 'irregular'}"
                   f", nothing carted or bought") if kk == "crawler" else
                  f"{int(r.carts)} add-to-carts and no purchase" if kk == "cart_stuffer" else
                  f"a one-off account's order of {int(r.items)} items bought mostly by one-off accounts"
                  if kk == "brushing" else
                  f"one of many short visits to the same {int(r.items)} items" for kk, r in zip(k, f.itertuples())]
        frame = pd.DataFrame({"subject": "session", "key": f.index.astype(str), "detector": "bot", "kind": k.to_numpy(),
                              "at": events.groupby("visit")["timestamp"].max().reindex(f.index).to_numpy(np.float64),
                              "score": 1.0, "reason": reason, "value": f["events"].to_numpy(np.float64),
                              "expected": np.nan})
        return Flags(frame[list(FLAG_COLUMNS)].reset_index(drop=True),
                     {"visits": int(len(feats)), "events": int(len(events))})


class BotFilter(TrainingFilter):
    """``[[training_filters]] name = "bots"``: every event of a crawler, cart-stuffer, click-farm or
    brushing visit left out of training (see the module docstring; the account is the user)."""

    name = "bots"
    Config = BotConfig

    def _drop(self, data) -> dict[str, np.ndarray]:
        ev = data.events
        if not len(ev):
            return {}
        sess = ev["session_idx"].to_numpy().astype(np.int64)
        user = ev["user_idx"].to_numpy().astype(np.int64)
        visit = np.where(sess >= 0, sess, int(sess.max(initial=-1)) + 1 + user)
        frame = pd.DataFrame({"visit": visit, "item": ev["item_idx"].to_numpy(), "behaviour": ev["behaviour"].to_numpy(),
                              "timestamp": ev["timestamp"].to_numpy(np.float64), "account": user})
        kind = BotDetector(self.config).kinds(session_features(frame), frame)
        per_event = kind.reindex(visit).to_numpy()
        return {f"events of {k.replace('_', '-')} visits": per_event == k for k in ("crawler", "cart_stuffer", "click_farm",
                                                                           "brushing")}
