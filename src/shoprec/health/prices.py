"""Price supervision: each item's price series, and the abnormal prices in it.

**The series.** :func:`price_series` turns events (or catalogue upserts) with a price into one
observation per item and period (a day by default): the period's *list price* is the price most
lines had (the mode, the lower one on a tie: a wholesale shop such as Online Retail sells one item at
a few tiers the same day, and the mode is the tier most buyers paid), its quantity the units sold.
Rows whose price is missing, not a number, not finite or ≤ 0 are counted by reason and left out;
prices given as text that parse as numbers are kept and counted.

**The detectors** (:class:`PriceSupervisor`, vectorised over every observation of every item at once;
each uses only the item's past, so the same test runs live on a new price):

* the item's *usual price* at an observation is the median log price of its previous ``window``
  observations (at least ``min_history``), its spread the MAD of those (×1.4826, floored at
  ``min_spread``), and its *known levels* the prices seen in that window; a price within
  ``level_tolerance`` of a level seen ``known_level_count`` times or more is a known tier, never a
  spike or drop (that is how the natural tiers of a wholesale shop stay unflagged);
* **spike**: ≥ ``spike_ratio`` × the usual price, robust z ≥ ``z``, at a level not known;
* **drop**: ≤ ``drop_ratio`` × the usual price, robust z ≤ −``z``, at a level not known;
* **subsidy**: a cut to ≤ ``subsidy_cut`` × (but above ``drop_ratio`` ×) the usual price together
  with a volume spike (units ≥ ``subsidy_volume`` × the window's median units), at a level not known;
* **creep**: a gradual rise: the median of the last ``creep_recent`` observations ≥ ``creep_ratio`` ×
  the usual price of the window before them, reached through intermediate levels (at least
  ``creep_steps`` of the last ``2 × creep_recent`` observations lie between the old and the new level:
  a one-step repricing has none), flagged once per ``window`` observations.

**Peers** (:meth:`PriceSupervisor.peers`): an item's current price against the other items of its
category (at least ``peer_min`` of them): robust z of its log price against the category's median
and MAD (floored at ``peer_min_spread``); **below_peers** (dumping, or a counterfeit's give-away price)
at z ≤ −``peer_z`` and ≤ ``1 / peer_ratio`` × the category median, **above_peers** (gouging) at z ≥
``peer_z`` and ≥ ``peer_ratio`` × it.

Library: ``ruptures`` (change points) was considered for creep and level shifts; it fits one series at
a time in Python, while these rolling tests run over all items in a few numpy passes, and a creep is
defined here by its path (intermediate levels), which a change point alone does not give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .flags import FLAG_COLUMNS, Flags

__all__ = ["PriceConfig", "PriceSupervisor", "price_series"]


def price_series(events: pd.DataFrame, *, item: str = "item_id", timestamp: str = "timestamp",
                 price: str = "price", quantity: str | None = "quantity", period_seconds: float = 86_400.0,
                 source: str = "the events") -> tuple[pd.DataFrame, dict[str, int]]:
    """(series, counts): one row per item and period (module docstring), sorted by item and time,
    with columns ``item``, ``t`` (the period's start, unix seconds), ``price``, ``quantity``,
    ``lines``; ``counts`` says how many rows were read, kept, and skipped by reason."""
    for c in (item, timestamp, price):
        if c not in events.columns:
            raise ValueError(f"{source}: no column {c!r} (the columns are {list(events.columns)})")
    raw = events[price]
    counts = {"rows_read": int(len(events))}
    p = pd.to_numeric(raw, errors="coerce")
    textual = raw.map(lambda v: isinstance(v, str)).to_numpy(bool) if raw.dtype == object else np.zeros(len(raw), bool)
    missing = raw.isna().to_numpy()
    p = p.to_numpy(np.float64)
    bad_text = np.isnan(p) & ~missing
    nonpos = ~np.isnan(p) & (p <= 0)
    inf = np.isinf(p)
    counts.update(skipped_missing_price=int(missing.sum()), skipped_not_a_number=int(bad_text.sum()),
                  skipped_not_finite=int(inf.sum()), skipped_not_positive=int((nonpos & ~inf).sum()),
                  parsed_from_text=int((textual & ~np.isnan(p)).sum()))
    ts = pd.to_numeric(events[timestamp], errors="coerce").to_numpy(np.float64)
    bad_t = np.isnan(ts)
    counts["skipped_no_time"] = int((bad_t & ~(missing | bad_text | nonpos | inf)).sum())
    keep = ~(missing | bad_text | nonpos | inf | bad_t)
    q = (pd.to_numeric(events[quantity], errors="coerce").to_numpy(np.float64)
         if quantity and quantity in events.columns else np.ones(len(events)))
    q = np.where(np.isfinite(q) & (q > 0), q, 0.0)
    df = pd.DataFrame({"item": events[item].to_numpy()[keep], "t": np.floor(ts[keep] / period_seconds) * period_seconds,
                       "price": p[keep], "q": q[keep]})
    counts["rows_kept"] = int(keep.sum())
    if df.empty:
        return pd.DataFrame(columns=["item", "t", "price", "quantity", "lines"]), counts
    per = df.groupby(["item", "t", "price"], sort=False).agg(n=("q", "size"), q=("q", "sum")).reset_index()
    per = per.sort_values(["item", "t", "n", "price"], ascending=[True, True, False, True], kind="stable")
    tot = per.groupby(["item", "t"], sort=False).agg(quantity=("q", "sum"), lines=("n", "sum"))
    mode = per.drop_duplicates(["item", "t"], keep="first").set_index(["item", "t"])["price"]
    out = tot.join(mode).reset_index()[["item", "t", "price", "quantity", "lines"]]
    out = out.sort_values(["item", "t"], kind="stable").reset_index(drop=True)
    counts["observations"] = len(out)
    counts["items"] = int(out["item"].nunique())
    return out, counts


@dataclass(frozen=True)
class PriceConfig:
    """The detectors' thresholds (module docstring); the defaults were set on Online Retail seed 1."""

    window: int = 30
    min_history: int = 5
    min_spread: float = float(np.log(1.05))
    z: float = 4.0
    level_tolerance: float = float(np.log(1.1))
    known_level_count: int = 1
    spike_ratio: float = 2.5
    drop_ratio: float = 0.5
    subsidy_cut: float = 0.8
    subsidy_volume: float = 2.5
    creep_ratio: float = 1.3
    creep_recent: int = 5
    creep_steps: int = 3
    peer_min: int = 10
    peer_z: float = 3.5
    peer_ratio: float = 3.0
    peer_min_spread: float = float(np.log(1.2))


class PriceSupervisor:
    """Scans price series for spikes, drops, subsidies and creeps (module docstring)."""

    def __init__(self, config: PriceConfig | None = None, **params) -> None:
        self.config = config or PriceConfig(**params)

    @staticmethod
    def _lags(x: np.ndarray, pos: np.ndarray, start: int, stop: int) -> np.ndarray:
        """(n, stop − start): x at lags start..stop−1 within each item's series (NaN before its start)."""
        n = len(x)
        out = np.full((n, stop - start), np.nan)
        for j, lag in enumerate(range(start, stop)):
            if lag >= n:
                break
            col = out[:, j]
            col[lag:] = x[:-lag]
            col[pos < lag] = np.nan
        return out

    def scan(self, series: pd.DataFrame) -> Flags:
        """Every flag of ``series`` (as :func:`price_series` gives it)."""
        c = self.config
        n = len(series)
        if n == 0:
            return Flags(checked={"observations": 0, "items": 0})
        series = series.sort_values(["item", "t"], kind="stable").reset_index(drop=True)
        item = series["item"].to_numpy()
        codes = pd.factorize(item)[0]
        first = np.r_[0, np.flatnonzero(codes[1:] != codes[:-1]) + 1]
        pos = np.arange(n) - np.repeat(first, np.diff(np.r_[first, n]))
        lp = np.log(series["price"].to_numpy(np.float64))
        q = series["quantity"].to_numpy(np.float64)
        t = series["t"].to_numpy(np.float64)

        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)     # all-NaN windows: no history yet
            have, base, spread, known = history_stats(self._lags(lp, pos, 1, c.window + 1), lp, c)
            qhist = self._lags(q, pos, 1, c.window + 1)
            qbase = np.nanmedian(qhist, 1)
            # creep: the recent level against the window before it
            R = c.creep_recent
            recent = np.column_stack([lp, self._lags(lp, pos, 1, R)])
            level = np.nanmedian(recent, 1)
            old = self._lags(lp, pos, R, R + c.window)
            old_base = np.nanmedian(old, 1)
            old_have = np.sum(~np.isnan(old), 1)
            path = np.column_stack([lp, self._lags(lp, pos, 1, 2 * R)])
        ok = have >= c.min_history
        d = lp - base
        z = d / spread
        novel = ~known
        spike = ok & novel & (d >= np.log(c.spike_ratio)) & (z >= c.z)
        drop = ok & novel & (d <= np.log(c.drop_ratio)) & (z <= -c.z)
        volume = q >= c.subsidy_volume * np.maximum(qbase, 1e-12)
        # a cut past the drop ratio is a drop whatever the volume (a dump or a typo); a milder one
        # with a volume spike is a subsidy
        subsidy = ok & novel & (d <= np.log(c.subsidy_cut)) & (d > np.log(c.drop_ratio)) & volume & (z <= -c.z / 2)
        rise = level - old_base
        between = np.sum((path > old_base[:, None] + c.level_tolerance / 2) &
                         (path < level[:, None] - c.level_tolerance / 2), 1)
        creep = ((old_have >= c.min_history) & (pos >= 2 * R) & (rise >= np.log(c.creep_ratio))
                 & (between >= c.creep_steps) & ~spike)
        creep = self._once(creep, codes, c.window)

        rows = []
        price = np.exp(lp)
        usual = np.exp(base)
        for kind, mask, expected, score in (
                ("spike", spike, usual, d / np.log(c.spike_ratio)),
                ("drop", drop, usual, d / np.log(c.drop_ratio)),
                ("subsidy", subsidy, usual, np.minimum(d / np.log(c.subsidy_cut), q / np.maximum(qbase, 1e-12) / c.subsidy_volume)),
                ("creep", creep, np.exp(old_base), rise / np.log(c.creep_ratio))):
            idx = np.flatnonzero(mask)
            if not len(idx):
                continue
            rows.append(pd.DataFrame({"subject": "item", "key": item[idx].astype(str), "detector": "price", "kind": kind,
                                      "at": t[idx], "score": score[idx], "value": price[idx],
                                      "expected": expected[idx]}))
        frame = pd.concat(rows, ignore_index=True) if rows else Flags().frame.drop(columns="reason")
        frame["reason"] = [_reason(k, v, e) for k, v, e in zip(frame["kind"], frame["value"], frame["expected"])]
        frame = frame[list(FLAG_COLUMNS)].sort_values(["at", "key"], kind="stable").reset_index(drop=True)
        checked = {"observations": int(n), "items": int(codes.max() + 1),
                   "without_history": int((~ok).sum())}
        return Flags(frame, checked)

    def peers(self, prices: pd.DataFrame, *, at: float = 0.0) -> Flags:
        """Flags of items priced far from their category's peers; ``prices`` has ``item``, ``price``
        and ``category`` (an item without a category or a usable price is counted, not judged)."""
        c = self.config
        p = pd.to_numeric(prices["price"], errors="coerce").to_numpy(np.float64)
        cat = prices["category"]
        usable = np.isfinite(p) & (p > 0) & cat.notna().to_numpy()
        df = pd.DataFrame({"item": prices["item"].to_numpy()[usable], "cat": cat.to_numpy()[usable],
                           "lp": np.log(p[usable])})
        g = df.groupby("cat")["lp"]
        size = g.transform("size").to_numpy()
        med = g.transform("median").to_numpy()
        mad = (df["lp"] - med).abs().groupby(df["cat"]).transform("median").to_numpy() * 1.4826
        spread = np.maximum(mad, c.peer_min_spread)
        d = df["lp"].to_numpy() - med
        z = d / spread
        enough = size >= c.peer_min
        below = enough & (z <= -c.peer_z) & (d <= -np.log(c.peer_ratio))
        above = enough & (z >= c.peer_z) & (d >= np.log(c.peer_ratio))
        rows = []
        for kind, mask in (("below_peers", below), ("above_peers", above)):
            idx = np.flatnonzero(mask)
            if len(idx):
                rows.append(pd.DataFrame({"subject": "item", "key": df["item"].to_numpy()[idx].astype(str),
                                          "detector": "price", "kind": kind, "at": float(at),
                                          "score": np.abs(z[idx]) / c.peer_z, "value": np.exp(df["lp"].to_numpy()[idx]),
                                          "expected": np.exp(med[idx])}))
        frame = pd.concat(rows, ignore_index=True) if rows else Flags().frame.drop(columns="reason")
        frame["reason"] = [_reason(k, v, e) for k, v, e in zip(frame["kind"], frame["value"], frame["expected"])]
        checked = {"items": int(len(prices)), "unusable": int((~usable).sum()),
                   "in_small_categories": int((~enough).sum())}
        return Flags(frame[list(FLAG_COLUMNS)].reset_index(drop=True), checked)

    @staticmethod
    def _once(mask: np.ndarray, codes: np.ndarray, gap: int) -> np.ndarray:
        """``mask`` thinned to its first hit per item and run (no second hit within ``gap`` observations)."""
        out = np.zeros_like(mask)
        last_code, last_at = -1, -10 ** 9
        for i in np.flatnonzero(mask):          # hits are rare: a loop over them only
            if codes[i] != last_code or i - last_at > gap:
                out[i] = True
            last_code, last_at = codes[i], i     # a run that continues stays quiet
        return out


def history_stats(hist: np.ndarray, lp: np.ndarray, c: PriceConfig
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``hist`` (log prices of the item's previous observations, NaN where none) and its
    new log price ``lp``: (observations in the history, usual log price, spread, whether ``lp`` is at
    a known level) (module docstring). Call under ``warnings`` suppression of all-NaN rows."""
    have = np.sum(~np.isnan(hist), 1)
    base = np.nanmedian(hist, 1)
    spread = np.maximum(np.nanmedian(np.abs(hist - base[:, None]), 1) * 1.4826, c.min_spread)
    known = np.sum(np.abs(hist - lp[:, None]) <= c.level_tolerance, 1) >= c.known_level_count
    return have, base, spread, known


def _reason(kind: str, value: float, expected: float) -> str:
    ratio = value / expected if expected else float("nan")
    if kind == "spike":
        return f"price {value:.2f} is {ratio:.1f}× its usual {expected:.2f}"
    if kind == "drop":
        return f"price {value:.2f} is {1 - ratio:.0%} below its usual {expected:.2f}"
    if kind == "subsidy":
        return f"price cut {1 - ratio:.0%} below its usual {expected:.2f} with a volume spike"
    if kind == "below_peers":
        return f"price {value:.2f} is {1 - ratio:.0%} below its category's typical {expected:.2f}"
    if kind == "above_peers":
        return f"price {value:.2f} is {ratio:.1f}× its category's typical {expected:.2f}"
    return f"price crept up to {value:.2f}, {ratio - 1:.0%} above its earlier {expected:.2f}"
