"""What shoppers said about an item after buying it: returns, poor reviews, late deliveries.

:func:`consumer_signals` computes, per item, three rates from the training data (all at once,
vectorised), each a share with its evidence, shrunk toward the item's **seller** (where the item
table names one) and the seller's toward the whole shop, so an item sold twice is judged mostly by
its seller's record and a new seller by the shop's:

* ``return_rate``: units cancelled or returned (``remove_from_cart`` events of units bought:
  Online Retail's ``C`` invoices, Olist's cancelled orders) over units bought;
* ``poor_review_rate``: purchases rated 1–2 (of 5) over rated purchases (the events' ``rating``);
* ``late_rate``: orders delivered after the date the shop promised over orders delivered, from the
  delivery outcomes a loader attaches as ``data.meta["orders"]`` (``session_id``, ``delivered``,
  ``days_late``: the Olist loader does); only deliveries made by the data's last event count (a
  temporal split does not see the future's deliveries).

Shrinkage: rate = (events + k · parent rate) / (evidence + k), ``k`` = ``prior`` pseudo-units. The
ranker reads the three rates as features; the ``consumer_protection`` re-ranker flags by them
(:mod:`shoprec.health.protection`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data import Behaviour, ShopData

__all__ = ["ConsumerSignals", "consumer_signals"]

SIGNALS = ("return_rate", "poor_review_rate", "late_rate")


@dataclass
class ConsumerSignals:
    """Per item (length n_items, float32): each rate (shrunk), its own evidence (units, ratings,
    deliveries), and the shop-wide rate; per item its seller's code (-1: none) and the sellers' names."""

    rates: dict[str, np.ndarray]
    evidence: dict[str, np.ndarray]
    overall: dict[str, float]
    seller: np.ndarray
    seller_names: list[str]
    seller_rates: dict[str, np.ndarray]
    seller_evidence: dict[str, np.ndarray]


def _shrunk(hits: np.ndarray, n: np.ndarray, seller: np.ndarray, n_sellers: int, prior: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(item rate, seller rate per seller, seller evidence per seller, overall rate)."""
    total = float(n.sum())
    overall = float(hits.sum() / total) if total else 0.0
    has = seller >= 0
    s_hits = np.bincount(seller[has], weights=hits[has], minlength=n_sellers)
    s_n = np.bincount(seller[has], weights=n[has], minlength=n_sellers)
    s_rate = (s_hits + prior * overall) / (s_n + prior)
    parent = np.where(has, s_rate[np.maximum(seller, 0)] if n_sellers else overall, overall)
    rate = (hits + prior * parent) / (n + prior)
    return rate.astype(np.float32), s_rate.astype(np.float32), s_n.astype(np.float32), overall


def consumer_signals(data: ShopData, prior: float = 20.0) -> ConsumerSignals:
    """The three rates of ``data`` (module docstring)."""
    n_items = data.n_items
    ev = data.events
    table = data.item_table
    if table is not None and "seller" in table.columns:
        codes, names = pd.factorize(table["seller"].astype("string"), use_na_sentinel=True)
        seller, seller_names = codes.astype(np.int64), [str(x) for x in names]
    else:
        seller, seller_names = np.full(n_items, -1, np.int64), []
    if len(seller) < n_items:
        seller = np.concatenate([seller, np.full(n_items - len(seller), -1, np.int64)])
    n_s = len(seller_names)
    items = ev["item_idx"].to_numpy().astype(np.int64)
    beh = ev["behaviour"].to_numpy()
    buy = beh == int(Behaviour.PURCHASE)
    q = np.abs(ev["quantity"].to_numpy(np.float64)) if "quantity" in ev.columns else np.ones(len(ev))
    q = np.where(np.isfinite(q) & (q > 0), q, 1.0)
    bought = np.bincount(items, weights=np.where(buy, q, 0.0), minlength=n_items)
    back = np.bincount(items, weights=np.where(beh == int(Behaviour.REMOVE_FROM_CART), q, 0.0), minlength=n_items)
    back = np.minimum(back, bought)       # returns of units bought before the data began do not count
    rating = ev["rating"].to_numpy(np.float64) if "rating" in ev.columns else np.full(len(ev), np.nan)
    rated = buy & np.isfinite(rating)
    n_rated = np.bincount(items, weights=rated.astype(float), minlength=n_items)
    poor = np.bincount(items, weights=(rated & (rating <= 2)).astype(float), minlength=n_items)
    n_deliv = np.zeros(n_items)
    late = np.zeros(n_items)
    orders = data.meta.get("orders") if isinstance(getattr(data, "meta", None), dict) else None
    if orders is not None and len(orders) and data.sessions is not None and buy.any():
        now = float(ev["timestamp"].max())
        o = orders[np.isfinite(orders["delivered"].to_numpy(np.float64))
                   & (orders["delivered"].to_numpy(np.float64) <= now)
                   & np.isfinite(orders["days_late"].to_numpy(np.float64))]
        sidx = data.sessions.to_index(o["session_id"].astype(str).to_numpy(dtype=object), missing=-1)
        lateness = np.full(len(data.sessions), np.nan)
        lateness[sidx[sidx >= 0]] = o["days_late"].to_numpy(np.float64)[sidx >= 0]
        sess = ev["session_idx"].to_numpy().astype(np.int64)
        d = np.where(buy & (sess >= 0), lateness[np.maximum(sess, 0)], np.nan)
        known = np.isfinite(d)
        n_deliv = np.bincount(items, weights=known.astype(float), minlength=n_items)
        late = np.bincount(items, weights=(known & (d > 0)).astype(float), minlength=n_items)
    rates, evidence, overall, s_rates, s_ev = {}, {}, {}, {}, {}
    for name, hits, n in (("return_rate", back, bought), ("poor_review_rate", poor, n_rated),
                          ("late_rate", late, n_deliv)):
        rates[name], s_rates[name], s_ev[name], overall[name] = _shrunk(hits, n, seller, n_s, prior)
        evidence[name] = n.astype(np.float32)
    return ConsumerSignals(rates, evidence, overall, seller, seller_names, s_rates, s_ev)
