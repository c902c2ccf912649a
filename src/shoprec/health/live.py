"""Bots kept out of the live signal: :class:`SessionGuard` follows every visit's events as they arrive
and tells the service which events may move its online counters (co-visitation, popularity,
trending) and the learning policies' rewards.

It keeps, per visit (the session, else the user), the running figures :mod:`shoprec.health.bots`
judges a visit by (events, browsing events, add-to-carts, purchases, first and last time, the sum and
sum of squares of the gaps, the distinct items up to ``max_items``) and applies the same crawler and
cart-stuffer rules after each event: once a visit is recognised, none of its later events is admitted
(all of them stay in the event store, for audit and for a training filter to judge). The events a visit
sent before it was recognised (fewer than ``crawler_min_events`` / ``stuffer_min_carts``) were
admitted: the price of judging as they come. Click farms need many visits together and are left to
the ``bots`` training filter. The most recently active ``max_visits`` visits are kept (LRU).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .bots import BotConfig

__all__ = ["SessionGuard"]

_BROWSE = {"view", "click", "search"}


@dataclass(slots=True)
class _Visit:
    events: int = 0
    views: int = 0
    carts: int = 0
    purchases: int = 0
    first: float = math.inf
    last: float = -math.inf
    gap_sum: float = 0.0
    gap_sq: float = 0.0
    gaps: int = 0
    items: set = field(default_factory=set)
    kind: str = ""
    held: int = 0


class SessionGuard:
    """Admits or holds live events by their visit (module docstring)."""

    def __init__(self, config: BotConfig | None = None, max_visits: int = 500_000, max_items: int = 512) -> None:
        self.config = config or BotConfig()
        self.max_visits = max_visits
        self.max_items = max_items
        self.visits: OrderedDict[str, _Visit] = OrderedDict()
        self.counts = {"events_seen": 0, "events_held": 0, "visits_flagged": 0}
        #: no visit with fewer events is judged (neither rule can hold before)
        self._min_events = min(self.config.crawler_min_events, self.config.stuffer_min_carts)

    def _judge(self, v: _Visit) -> str:
        c = self.config
        if v.purchases:
            return ""
        if v.carts >= c.stuffer_min_carts and v.carts >= c.stuffer_share * v.events:
            return "cart_stuffer"
        if v.events >= c.crawler_min_events and not v.carts:
            distinct = len(v.items) / v.events if len(v.items) < self.max_items else 1.0
            minutes = max((v.last - v.first) / 60.0, 1.0 / 60.0)
            cv = math.nan
            if v.gaps >= 2 and v.gap_sum > 0:
                mean = v.gap_sum / v.gaps
                var = max(v.gap_sq / v.gaps - mean * mean, 0.0) * v.gaps / (v.gaps - 1)
                cv = math.sqrt(var) / mean
            if distinct >= c.crawler_distinct and (v.views / minutes >= c.crawler_rate or cv <= c.crawler_cv):
                return "crawler"
        return ""

    def admit(self, events: Iterable[Any]) -> np.ndarray:
        """bool per event (records or dicts with ``session_id``, ``user_id``, ``item_id``,
        ``behaviour``, ``timestamp``): may it move the live counters and rewards."""
        rows = list(events)
        out = np.ones(len(rows), bool)
        if not rows:
            return out
        if isinstance(rows[0], dict):
            keys = [r.get("session_id") or r.get("user_id") for r in rows]
            times = [float(r.get("timestamp") or 0.0) for r in rows]
            behs = [str(r.get("behaviour")) for r in rows]
            items = [r.get("item_id") for r in rows]
        else:
            keys = [r.session_id or r.user_id for r in rows]
            times = [float(r.timestamp or 0.0) for r in rows]
            behs = [r.behaviour for r in rows]
            items = [r.item_id for r in rows]
        # each visit's events in time order (a batch may interleave visits; most come in order)
        t_arr = np.asarray(times)
        order = range(len(rows)) if (np.diff(t_arr) >= 0).all() else np.argsort(t_arr, kind="stable").tolist()
        visits, seen, held = self.visits, 0, 0
        for i in order:
            key = keys[i]
            if not key:
                continue
            key = str(key)
            v = visits.get(key)
            if v is None:
                v = visits[key] = _Visit()
                if len(visits) > self.max_visits:
                    visits.popitem(last=False)
            else:
                visits.move_to_end(key)
            seen += 1
            if v.kind:
                v.held += 1
                held += 1
                out[i] = False
                continue
            t = times[i]
            beh = behs[i]
            v.events += 1
            v.views += beh in _BROWSE
            v.carts += beh == "add_to_cart"
            v.purchases += beh == "purchase"
            if v.last > -math.inf:
                gap = t - v.last
                v.gap_sum += gap
                v.gap_sq += gap * gap
                v.gaps += 1
            v.first, v.last = min(v.first, t), max(v.last, t)
            if len(v.items) < self.max_items:
                v.items.add(items[i])
            if v.events >= self._min_events:
                kind = self._judge(v)
                if kind:
                    v.kind = kind
                    self.counts["visits_flagged"] += 1
        self.counts["events_seen"] += seen
        self.counts["events_held"] += held
        return out

    def kind_of(self, key: str | None) -> str:
        """The bot kind of a visit ("" when it is not one, or unknown)."""
        v = self.visits.get(str(key)) if key else None
        return v.kind if v is not None else ""

    def flagged(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recently active flagged visits, newest first, with their figures."""
        out = []
        for key in reversed(self.visits):
            v = self.visits[key]
            if v.kind:
                out.append({"visit": key, "kind": v.kind, "events": v.events, "views": v.views, "carts": v.carts,
                            "events_held": v.held, "first": v.first, "last": v.last})
                if len(out) >= limit:
                    break
        return out
