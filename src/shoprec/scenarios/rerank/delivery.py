"""Delivery-aware pages: the ``delivery`` re-ranker holds items that would take too long to reach the
shopper's region, demotes (or holds, or only notes) items likely to arrive late there, and says how
long each shown item takes::

    [[rerankers]]
    name = "delivery"
    params = { max_delivery_days = 15, max_late_risk = 0.15, action = "demote", note_days = true }

At fit it reads :func:`shoprec.scenarios.delivery.delivery_estimates`: per seller and customer region,
the expected days from purchase to delivery and the share delivered after the promised date, shrunk
toward the seller's record on its routes and the route's (cell → seller × route → route → shop).
The request's region is the context value ``region_key`` names (``attributes["region"]`` by default:
``{"attributes": {"region": "SP"}}``; ``"country"`` reads the request's country); a request without
one, or with a region no delivery went to, is judged by each seller's overall figures.

* ``max_delivery_days``: an item expected later than this for the request's region is never shown
  (a rule, applied in ``constrain`` before candidates, so the list is filled from the others);
* ``max_late_risk``: an item at least this likely to arrive late there is moved after every other item
  of the fused pool (``demote``: K is chosen from the top ``pool`` fused items), never shown
  (``hold``) or shown as ranked with a note (``note``); demoted and noted items carry "often arrives
  late (18% of orders to SP)";
* ``note_days``: every shown item with an estimate carries "arrives in about N days" (N rounded).

Items whose seller has fewer than ``min_orders`` deliveries have no estimate: never held, demoted or
noted. The notes depend on the request's region, so they come from :meth:`request_notes`, not
:meth:`item_notes`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from ..delivery import DeliveryEstimates, delivery_estimates
from ..stages import Ranked, ReRanker, StageConfig

__all__ = ["DeliveryConfig", "DeliveryReRanker", "days_text"]


def days_text(days: float) -> str:
    """ "arrives in about N days" with N the days rounded (half up, at least 1)."""
    n = max(1, int(np.floor(days + 0.5)))
    return f"arrives in about {n} day{'s' if n != 1 else ''}"


class DeliveryConfig(StageConfig):
    max_delivery_days: float | None = Field(
        default=None, gt=0, description="Never show an item expected to take longer than this to the request's region.")
    max_late_risk: float | None = Field(
        default=None, gt=0, le=1, description="Items at least this likely to arrive late there: see action.")
    action: Literal["demote", "hold", "note"] = Field(
        default="demote", description="For items over max_late_risk: demote (after every other item of the pool, "
                                      "with the note), hold (never shown), note (as ranked, with the note).")
    note_days: bool = Field(default=True, description='Note "arrives in about N days" on every shown item with an '
                                                      "estimate.")
    region_key: str = Field(default="region", min_length=1,
                            description='The request context value naming the region: an attributes key, or "country".')
    pool: int = Field(default=30, ge=1, description="With demote: choose K from the top `pool` fused items.")
    prior_days: float = Field(default=5.0, ge=0, description="Pseudo-deliveries at the parent's log-days (shrinkage).")
    prior_risk: float = Field(default=20.0, ge=0, description="Pseudo-deliveries at the parent's late share.")
    min_orders: int = Field(default=1, ge=0, description="A seller with fewer deliveries has no estimate.")


class DeliveryReRanker(ReRanker):
    """The ``delivery`` re-ranker (module docstring)."""

    name = "delivery"
    Config = DeliveryConfig

    def fit(self, data, env) -> "DeliveryReRanker":
        self.bind(env)
        c = self.config
        self.estimates_ = delivery_estimates(data, prior_days=c.prior_days, prior_risk=c.prior_risk,
                                             min_orders=c.min_orders)
        return self

    def bind(self, env) -> None:
        super().bind(env)
        self.__dict__.setdefault("estimates_", None)

    # ------------------------------------------------------------------ per request
    def _codes(self, queries) -> np.ndarray:
        """Per request its region's column (the last one: unknown)."""
        est = self.estimates_
        values = queries.get_context(self.config.region_key)
        if values is None:
            return np.full(len(queries), est.n_regions, np.int64)
        return est.region_index(values)

    def _cells(self, a: np.ndarray, item_idx: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """float32 like ``item_idx``: each item's value of the seller × region table ``a`` for its
        row's region (NaN: padding, no estimate, or an item the stage does not know)."""
        seller = self.estimates_.seller
        inside = (item_idx >= 0) & (item_idx < len(seller))
        s = np.where(inside, seller[np.where(inside, item_idx, 0)], -1)
        out = a[np.maximum(s, 0), np.broadcast_to(codes.reshape(-1, *([1] * (item_idx.ndim - 1))), s.shape)]
        return np.where(s >= 0, out, np.nan).astype(np.float32)

    def _active(self) -> bool:
        est = self.estimates_
        return est is not None and len(est.seller_names) > 0 and np.isfinite(est.seller_days).any()

    def constrain(self, queries, allowed: np.ndarray) -> None:
        c = self.config
        hold_risk = c.action == "hold" and c.max_late_risk is not None
        if (c.max_delivery_days is None and not hold_risk) or not self._active():
            return
        est = self.estimates_
        codes = self._codes(queries)
        m = min(allowed.shape[1], est.n_items)
        items = np.arange(m)
        for code in np.unique(codes):          # one row of the tables per distinct region of the batch
            bad = np.zeros(m, bool)
            with np.errstate(invalid="ignore"):
                if c.max_delivery_days is not None:
                    bad |= self._cells(est.seller_days, items, np.array(code)) > c.max_delivery_days
                if hold_risk:
                    bad |= self._cells(est.seller_risk, items, np.array(code)) >= c.max_late_risk
            if bad.any():
                rows = np.flatnonzero(codes == code)
                allowed[np.ix_(rows, np.flatnonzero(bad))] = False

    def pool(self, k: int) -> int:
        if self.config.action == "demote" and self.config.max_late_risk is not None:
            return max(k, self.config.pool)
        return k

    def _late(self, item_idx: np.ndarray, codes: np.ndarray) -> np.ndarray:
        risk = self._cells(self.estimates_.seller_risk, item_idx, codes)
        with np.errstate(invalid="ignore"):
            return risk >= self.config.max_late_risk

    def rerank(self, ranked: Ranked, queries, k: int) -> Ranked:
        c = self.config
        if c.action != "demote" or c.max_late_risk is None or not self._active():
            return ranked
        idx = ranked.item_idx
        bad = self._late(idx, self._codes(queries))
        if not bad.any():
            return ranked
        key = np.where(idx < 0, 2, bad.astype(np.int8))
        order = np.argsort(key, axis=1, kind="stable")
        take = lambda a: np.take_along_axis(a, order, axis=1)     # noqa: E731
        return Ranked(take(ranked.item_idx), take(ranked.scores), take(ranked.sources))

    def request_notes(self, queries, item_idx: np.ndarray) -> list[dict[int, str]] | None:
        c = self.config
        late_notes = c.max_late_risk is not None and c.action != "hold"
        if not (c.note_days or late_notes) or not self._active():
            return None
        est = self.estimates_
        codes = self._codes(queries)
        days = self._cells(est.seller_days, item_idx, codes)
        risk = self._cells(est.seller_risk, item_idx, codes)
        with np.errstate(invalid="ignore"):
            late = (risk >= c.max_late_risk) if late_notes else np.zeros(item_idx.shape, bool)
        shown = np.isfinite(days) if c.note_days else np.zeros(item_idx.shape, bool)
        names = est.regions + [""]
        out: list[dict[int, str]] = []
        for r in range(len(item_idx)):
            notes: dict[int, str] = {}
            where = f" to {names[codes[r]]}" if names[codes[r]] else ""
            for j in np.flatnonzero(shown[r] | late[r]).tolist():
                parts = [days_text(float(days[r, j]))] if shown[r, j] else []
                if late[r, j]:
                    parts.append(f"often arrives late ({float(risk[r, j]):.0%} of orders{where})")
                notes[int(item_idx[r, j])] = "; ".join(parts)
            out.append(notes)
        return out

    # ------------------------------------------------------------------ state
    def refresh_items(self, changed: np.ndarray) -> None:
        if self.estimates_ is None:
            return
        self.estimates_.assign(self.env.data.item_table, changed, self.env.facts.n_items)

    def state(self) -> dict[str, np.ndarray]:
        return {} if self.estimates_ is None else self.estimates_.state()

    def set_state(self, state) -> None:
        self.estimates_ = DeliveryEstimates.from_state(state) if "seller_days" in state else None
