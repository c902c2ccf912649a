"""Consumer protection on the pages: the ``consumer_protection`` re-ranker demotes (or holds, or only
notes) items shoppers often send back::

    [[rerankers]]
    name = "consumer_protection"
    params = { max_return_rate = 0.2, action = "demote" }

At fit, each item's **return rate** is the units cancelled or returned (``remove_from_cart`` events
after a purchase: Online Retail's ``C`` invoices are loaded as such) over the units bought, shrunk
toward the shop's overall rate by ``prior_units`` pseudo-units (an item sold twice and returned once
is not yet "often returned"). Items at or above ``max_return_rate`` are flagged; every place they
appear carries the note "often returned (N % of units)" among their reasons, and ``demote`` moves
them after every unflagged item of the pool, ``hold`` never shows them. :meth:`current` lists them.

Poor reviews and late deliveries (Olist) are not read yet: the Olist review table is not available
here and the sample's orders and items join only in part.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from ..data import Behaviour
from ..scenarios.stages import StageConfig
from .flagged import FlaggedItemsReRanker

__all__ = ["ProtectionConfig", "ProtectionReRanker", "return_rates"]


def return_rates(events: pd.DataFrame, n_items: int, prior_units: float = 20.0) -> tuple[np.ndarray, np.ndarray, float]:
    """(shrunk return rate per item, units bought per item, the shop's overall rate) of ``events``
    (``item_idx``, ``behaviour``, ``quantity`` (absolute units; 1 when missing))."""
    beh = events["behaviour"].to_numpy()
    q = np.abs(events["quantity"].to_numpy(np.float64)) if "quantity" in events.columns else np.ones(len(events))
    q = np.where(np.isfinite(q) & (q > 0), q, 1.0)
    items = events["item_idx"].to_numpy()
    bought = np.bincount(items, weights=np.where(beh == int(Behaviour.PURCHASE), q, 0.0), minlength=n_items)
    back = np.bincount(items, weights=np.where(beh == int(Behaviour.REMOVE_FROM_CART), q, 0.0), minlength=n_items)
    back = np.minimum(back, np.maximum(bought, back))      # a return of units bought before the data began
    overall = float(back.sum() / bought.sum()) if bought.sum() else 0.0
    rate = (back + prior_units * overall) / (bought + prior_units)
    return rate.astype(np.float32), bought.astype(np.float32), overall


class ProtectionConfig(StageConfig):
    max_return_rate: float = Field(default=0.2, gt=0, le=1, description="An item returned this often is flagged.")
    prior_units: float = Field(default=20.0, ge=0, description="Pseudo-units at the shop's overall rate (shrinkage).")
    min_units: float = Field(default=5.0, ge=0, description="Items sold fewer units than this are not judged.")
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
        self.rate_, self.bought_, self.overall_ = return_rates(data.events, data.n_items, c.prior_units)
        self._notes = None
        return self

    def flagged(self) -> np.ndarray:
        c = self.config
        return (self.rate_ >= c.max_return_rate) & (self.bought_ >= c.min_units)

    def refresh_items(self, changed: np.ndarray) -> None:
        n = self.env.facts.n_items
        if len(self.rate_) < n:
            grow = n - len(self.rate_)
            self.rate_ = np.concatenate([self.rate_, np.full(grow, self.overall_, np.float32)])
            self.bought_ = np.concatenate([self.bought_, np.zeros(grow, np.float32)])

    def item_notes(self) -> dict[int, str]:
        # asked by every answered batch: computed once per fit or load
        if getattr(self, "_notes", None) is None:
            idx = np.flatnonzero(self.flagged())
            self._notes = {int(i): f"often returned ({self.rate_[i]:.0%} of units)" for i in idx}
        return self._notes

    def state(self) -> dict[str, np.ndarray]:
        return {"rate_": self.rate_, "bought_": self.bought_, "overall_": np.array([self.overall_], np.float64)}

    def set_state(self, state) -> None:
        self._notes = None
        self.rate_, self.bought_ = np.asarray(state["rate_"]), np.asarray(state["bought_"])
        self.overall_ = float(np.asarray(state["overall_"])[0])

    def current(self) -> pd.DataFrame:
        idx = np.flatnonzero(self.flagged())
        return pd.DataFrame({"item_idx": idx, "return_rate": self.rate_[idx].astype(float),
                             "units_bought": self.bought_[idx].astype(float)})
