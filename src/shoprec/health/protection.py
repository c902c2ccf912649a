"""Consumer protection on the pages: the ``consumer_protection`` re-ranker demotes (or holds, or only
notes) items shoppers often send back, rate poorly or receive late, and items that look counterfeit::

    [[rerankers]]
    name = "consumer_protection"
    params = { max_return_rate = 0.2, max_poor_review_rate = 0.3, max_late_rate = 0.25, action = "demote" }

At fit it reads the rates of :func:`shoprec.scenarios.complaints.consumer_signals` (the same the
learned ranker sees as features): per item, the share of units returned or cancelled, of purchases
rated 1–2 stars, and of orders delivered after the promised date, each shrunk toward the item's
seller and the seller's toward the shop. An item is flagged

* **often returned** at ``return_rate ≥ max_return_rate`` with at least ``min_units`` units sold
  (by the item, or by its seller);
* **poorly reviewed** at ``poor_review_rate ≥ max_poor_review_rate`` with at least ``min_reviews``
  ratings (the item's or its seller's);
* **often late** at ``late_rate ≥ max_late_rate`` with at least ``min_deliveries`` deliveries;
* **counterfeit risk** (``counterfeit = true``, the default) when its price is far below its
  category's peers (:meth:`shoprec.health.prices.PriceSupervisor.peers`, the ``below_peers`` flag)
  and its seller is new (first sale within ``new_seller_days`` of the data's end, or fewer than
  ``min_units`` units sold) or it is poorly reviewed (the rate alone, without the evidence floor).

Every place a flagged item appears carries a note among its reasons ("often returned (31 % of
units)", "often arrives late (40 % of orders)", "counterfeit risk: priced 85 % below its category,
from a new seller"); ``demote`` moves flagged items after every unflagged item of the pool, ``hold``
never shows them, ``note`` only notes. :meth:`ProtectionReRanker.current` lists them
(``GET /v1/health/protection``, ``shoprec health protection``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from ..scenarios.complaints import consumer_signals
from ..scenarios.stages import StageConfig
from .flagged import FlaggedItemsReRanker

__all__ = ["KINDS", "ProtectionConfig", "ProtectionReRanker", "item_protection_flags", "return_rates"]

#: the flag kinds, in the order of the bits of ``kind_``
KINDS = ("often_returned", "poorly_reviewed", "often_late", "counterfeit_risk")


def return_rates(events: pd.DataFrame, n_items: int, prior_units: float = 20.0) -> tuple[np.ndarray, np.ndarray, float]:
    """(shrunk return rate per item, units bought per item, the shop's overall rate) of ``events``
    (``item_idx``, ``behaviour``, ``quantity``), without sellers: the return rate of
    :func:`~shoprec.scenarios.complaints.consumer_signals` on events alone."""
    from ..data.dataset import ShopData
    from ..data.idmap import IdMap

    data = ShopData(events, IdMap(np.arange(int(events["user_idx"].to_numpy().max(initial=-1)) + 1)),
                    IdMap(np.arange(n_items)))
    s = consumer_signals(data, prior_units)
    return s.rates["return_rate"], s.evidence["return_rate"], s.overall["return_rate"]


class ProtectionConfig(StageConfig):
    max_return_rate: float = Field(default=0.2, gt=0, le=1, description="An item returned this often is flagged.")
    max_poor_review_rate: float = Field(default=0.3, gt=0, le=1,
                                        description="An item this often rated 1–2 stars is flagged.")
    max_late_rate: float = Field(default=0.25, gt=0, le=1, description="An item delivered late this often is flagged.")
    prior_units: float = Field(default=20.0, ge=0, description="Pseudo-units at the parent's rate (shrinkage).")
    min_units: float = Field(default=5.0, ge=0, description="Items (and their sellers) sold fewer units are not judged.")
    min_reviews: float = Field(default=5.0, ge=0, description="Ratings needed before poor reviews count.")
    min_deliveries: float = Field(default=5.0, ge=0, description="Deliveries needed before lateness counts.")
    counterfeit: bool = Field(default=True, description="Flag counterfeit risk (module docstring).")
    new_seller_days: float = Field(default=60.0, ge=0, description="A seller whose first sale is this recent is new.")
    action: Literal["demote", "hold", "note"] = Field(default="demote", description="demote (after every unflagged "
                                                      "item, with the note), hold (never shown), note (as ranked, "
                                                      "with the note).")


class ProtectionReRanker(FlaggedItemsReRanker):
    """The ``consumer_protection`` re-ranker (module docstring)."""

    name = "consumer_protection"
    Config = ProtectionConfig

    def fit(self, data, env) -> "ProtectionReRanker":
        self.bind(env)
        c = self.config
        self._notes = None
        s = consumer_signals(data, c.prior_units)
        n = data.n_items
        has_seller = s.seller >= 0
        sel = np.maximum(s.seller, 0)

        def evidence(name: str) -> np.ndarray:
            """The item's own evidence, or its seller's where that is more."""
            own = s.evidence[name]
            if not len(s.seller_names):
                return own
            return np.maximum(own, np.where(has_seller, s.seller_evidence[name][sel], 0.0))

        kind = np.zeros(n, np.int8)
        kind |= ((s.rates["return_rate"] >= c.max_return_rate) & (evidence("return_rate") >= c.min_units)).astype(np.int8)
        poor = s.rates["poor_review_rate"] >= c.max_poor_review_rate
        kind |= ((poor & (evidence("poor_review_rate") >= c.min_reviews)).astype(np.int8) << 1)
        kind |= (((s.rates["late_rate"] >= c.max_late_rate) & (evidence("late_rate") >= c.min_deliveries))
                 .astype(np.int8) << 2)
        below = np.full(n, np.nan, np.float32)
        if c.counterfeit:
            below = self._below_peers(data, env)
            new = self._new_seller(data, s)
            kind |= ((np.isfinite(below) & (new | poor)).astype(np.int8) << 3)
            self.new_seller_ = new
        else:
            self.new_seller_ = np.zeros(n, bool)
        self.kind_ = kind
        self.below_ = below
        self.rates_ = np.column_stack([s.rates[k] for k in ("return_rate", "poor_review_rate", "late_rate")])
        return self

    @staticmethod
    def _below_peers(data, env) -> np.ndarray:
        """Per item, how far below its category's peers its price is (a share, NaN: not below)."""
        from .prices import PriceSupervisor

        facts = env.facts
        cat = np.asarray(facts.category)
        names = np.asarray(list(facts.category_names) + [None], dtype=object)
        frame = pd.DataFrame({"item": np.arange(facts.n_items), "price": np.asarray(facts.price, np.float64),
                              "category": names[np.where(cat >= 0, cat, len(names) - 1)]})
        f = PriceSupervisor().peers(frame).frame
        f = f[f["kind"] == "below_peers"]
        out = np.full(facts.n_items, np.nan, np.float32)
        idx = f["key"].astype(np.int64).to_numpy()
        out[idx] = (1 - f["value"] / f["expected"]).to_numpy(np.float32)
        return out

    def _new_seller(self, data, s) -> np.ndarray:
        """Per item: its seller's first sale is within ``new_seller_days`` of the data's end, or the
        seller (the item, without one) sold fewer than ``min_units`` units."""
        c = self.config
        ev = data.events
        n = data.n_items
        if not len(s.seller_names):
            return s.evidence["return_rate"] < c.min_units
        items = ev["item_idx"].to_numpy().astype(np.int64)
        seller = s.seller[items]
        ts = ev["timestamp"].to_numpy(np.float64)
        first = np.full(len(s.seller_names), np.inf)
        ok = seller >= 0
        np.minimum.at(first, seller[ok], ts[ok])
        now = float(ts.max()) if len(ts) else 0.0
        recent = (now - first) <= c.new_seller_days * 86_400.0
        few = s.seller_evidence["return_rate"] < c.min_units
        sel = np.maximum(s.seller, 0)
        return np.where(s.seller >= 0, recent[sel] | few[sel], s.evidence["return_rate"] < c.min_units)[:n]

    def flagged(self) -> np.ndarray:
        return self.kind_ > 0

    def refresh_items(self, changed: np.ndarray) -> None:
        n = self.env.facts.n_items
        if len(self.kind_) < n:
            grow = n - len(self.kind_)
            self.kind_ = np.concatenate([self.kind_, np.zeros(grow, np.int8)])
            self.below_ = np.concatenate([self.below_, np.full(grow, np.nan, np.float32)])
            self.new_seller_ = np.concatenate([self.new_seller_, np.ones(grow, bool)])
            self.rates_ = np.vstack([self.rates_, np.full((grow, 3), np.nan, np.float32)])

    def _note(self, i: int) -> str:
        k = int(self.kind_[i])
        ret, poor, late = (float(x) for x in self.rates_[i])
        parts = []
        if k & 1:
            parts.append(f"often returned ({ret:.0%} of units)")
        if k & 2:
            parts.append(f"often poorly reviewed ({poor:.0%} rated 1–2 stars)")
        if k & 4:
            parts.append(f"often arrives late ({late:.0%} of orders)")
        if k & 8:
            why = "from a new seller" if self.new_seller_[i] else "and poorly reviewed"
            parts.append(f"counterfeit risk: priced {float(self.below_[i]):.0%} below its category, {why}")
        return "; ".join(parts)

    def item_notes(self) -> dict[int, str]:
        # asked by every answered batch: computed once per fit or load
        if getattr(self, "_notes", None) is None:
            self._notes = {int(i): self._note(int(i)) for i in np.flatnonzero(self.flagged())}
        return self._notes

    def state(self) -> dict[str, np.ndarray]:
        return {"kind_": self.kind_, "below_": self.below_, "new_seller_": self.new_seller_, "rates_": self.rates_}

    def set_state(self, state) -> None:
        self._notes = None
        self.kind_, self.below_ = np.asarray(state["kind_"]), np.asarray(state["below_"])
        self.new_seller_, self.rates_ = np.asarray(state["new_seller_"]), np.asarray(state["rates_"])

    def current(self) -> pd.DataFrame:
        """The flagged items: item index, kinds (comma-separated), the three rates, and the note."""
        idx = np.flatnonzero(self.flagged())
        kinds = [",".join(name for b, name in enumerate(KINDS) if int(self.kind_[i]) >> b & 1) for i in idx]
        return pd.DataFrame({"item_idx": idx, "kinds": kinds,
                             "return_rate": self.rates_[idx, 0].astype(float),
                             "poor_review_rate": self.rates_[idx, 1].astype(float),
                             "late_rate": self.rates_[idx, 2].astype(float),
                             "reason": [self._note(int(i)) for i in idx]})


def item_protection_flags(rec) -> tuple[str, pd.DataFrame] | None:
    """(scenario, its flagged items with item ids) of the first scenario of ``rec`` that has a
    ``consumer_protection`` re-ranker, or None."""
    for name, pipe in rec.pipelines.items():
        for stage in pipe.rerankers_:
            if isinstance(stage, ProtectionReRanker):
                cur = stage.current()
                cur.insert(0, "item_id", [str(x) for x in rec.data_.items.to_external(cur["item_idx"].to_numpy())]
                           if len(cur) else [])
                return name, cur.drop(columns="item_idx")
    return None
