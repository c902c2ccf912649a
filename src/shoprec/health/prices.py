"""Price supervision: each item's price series, and the abnormal prices in it.

**The series.** :func:`price_series` turns events (or catalogue upserts) with a price into one
observation per item and period (a day by default): the period's *list price* is the price most
lines had (the mode, the lower one on a tie: a wholesale shop such as Online Retail sells one item at
a few tiers the same day, and the mode is the tier most buyers paid), its quantity the units sold.
Rows whose price is missing, not a number, not finite or ≤ 0 are counted by reason and left out;
prices given as text that parse as numbers are kept and counted. A shop that sells from two price
lists should give one of them: Online Retail's lines without a customer (a quarter of them) are a
walk-in list, typically twice as dear, and a day on which only those sold would have that list's
price as its mode (the benchmark keeps the registered customers' lines).

**The detectors** (:class:`PriceSupervisor`, vectorised over every observation of every item at once):

* the item's *usual price* at an observation is the median log price of its previous ``window``
  observations (at least ``min_history``), its spread the MAD of those (×1.4826, floored at
  ``min_spread``); a price within ``level_tolerance`` of one the item had in its previous
  ``level_memory`` observations (``known_level_count`` times or more) is at a *known level*, never a
  spike, drop or subsidy: a wholesale shop's tiers (a quantity break, a clearance price) come back
  months apart, long after they have left the window;
* a new price the item then *keeps* (each of its next ``settle`` observations within
  ``level_tolerance`` of it) is a repricing (a markdown, a new tier), not a one-off spike, drop or
  subsidy. This one test looks ahead, so a scan of a whole history can tell them apart; the newest
  ``settle`` prices of an item, like a live price, are judged on the past alone;
* **spike**: ≥ ``spike_ratio`` × the usual price, robust z ≥ ``z``, at a level not known and not kept;
* **drop**: ≤ ``drop_ratio`` × the usual price, robust z ≤ −``z``, likewise;
* **subsidy**: a cut to ≤ ``subsidy_cut`` × (but above ``drop_ratio`` ×) the usual price, robust
  z ≤ −``z`` / 2, together with a volume spike (units ≥ ``subsidy_volume`` × the window's median
  units), likewise. The cut must be deeper than a wholesale quantity break: Online Retail sells a large
  order 20–25 % cheaper as a matter of course (0.85 → 0.64, 0.55 → 0.42), a price cut with a volume
  spike that is no subsidy; a deeper cut past ``drop_ratio`` is a drop whatever the volume;
* **creep**: a gradual rise: the median of the last ``creep_recent`` observations ≥ ``creep_ratio`` ×
  the usual price of the window before them, reached through intermediate levels (at least
  ``creep_steps`` of the last ``2 × creep_recent`` observations lie between the old and the new level:
  a one-step repricing has none), flagged once per ``window`` observations.

The live check of a new price (``stage.check_prices``, through :func:`history_stats`) sees the last
``window`` prices only: the longer memory of levels and the look-ahead are the scan's.

**Peers** (:meth:`PriceSupervisor.peers`): an item's current price against what the *alike* items
of its category cost (a category of fewer than ``peer_min`` items is not judged). With attributes
(weight, the sides or volume, photo count, description length…, each as log(1 + x), standardised):
a robust regression of log price on them per category, Huber-weighted (``peer_huber``) so the
outliers it looks for do not pull it, with the slopes shrunk towards the slopes common to every
category (a ridge worth ``peer_shrink`` items: a small category borrows them, a large one keeps its
own), fitted for all categories at once by iteratively reweighted least squares (``peer_iterations``
batched solves); the item's *expected price* is its fitted value. Without attributes the expected
price is the category's median. The spread is the MAD of the category's residuals (floored at
``peer_min_spread``); **below_peers** (dumping, or a counterfeit's give-away price) at robust z ≤
−``peer_z`` and ≤ ``1 / peer_ratio`` × the expected price, **above_peers** (gouging) at z ≥ ``peer_z``
and ≥ ``peer_ratio`` × it. Olist's categories span wide price ranges (a category's MAD is ×2.3 in
price), so 5 × the category's median is not far for a heavy item; against alike items the spread is
×1.8 (the regression's residual MAD), which is still wide: about 3 % of Olist's products already
cost ≥ 5 × their alike peers, so no peer test is both sensitive and precise there (BENCHMARKS.md).

Libraries: ``ruptures`` (change points) was considered for creep and level shifts; it fits one series
at a time in Python, while these rolling tests run over all items in a few numpy passes, and a creep
is defined here by its path (intermediate levels), which a change point alone does not give. For
peers, scikit-learn's ``HuberRegressor`` would fit one category at a time, and its penalty shrinks
slopes to zero rather than to the common slopes a ten-item category needs; ``IsolationForest`` (or
PyOD's detectors) scores how unusual an item is in all its attributes at once (an odd size as much as
an odd price) and gives neither a direction nor an expected price to show the merchant. Both
detectors are therefore numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    level_memory: int = 250
    settle: int = 2
    spike_ratio: float = 2.5
    drop_ratio: float = 0.5
    subsidy_cut: float = 0.72
    subsidy_volume: float = 2.5
    creep_ratio: float = 1.3
    creep_recent: int = 5
    creep_steps: int = 3
    peer_min: int = 10
    peer_z: float = 2.0
    peer_ratio: float = 4.0
    peer_min_spread: float = float(np.log(1.2))
    peer_huber: float = 1.345
    peer_shrink: float = 20.0
    peer_iterations: int = 10


class PriceSupervisor:
    """Scans price series for spikes, drops, subsidies and creeps (module docstring)."""

    def __init__(self, config: PriceConfig | None = None, **params) -> None:
        self.config = config or PriceConfig(**params)

    @staticmethod
    def _near_count(lp: np.ndarray, pos: np.ndarray, lags: int, tol: float) -> np.ndarray:
        """Per observation: how many of the item's previous ``lags`` observations lie within ``tol``
        of its log price (one vectorised pass per lag, nothing of size n × lags is built)."""
        n = len(lp)
        out = np.zeros(n, np.int64)
        for lag in range(1, min(lags, n - 1) + 1):
            out[lag:] += (np.abs(lp[lag:] - lp[:-lag]) <= tol) & (pos[lag:] >= lag)
        return out

    @staticmethod
    def _kept(lp: np.ndarray, codes: np.ndarray, ahead: int, tol: float) -> np.ndarray:
        """Per observation: whether the item's next ``ahead`` observations all stay within ``tol`` of
        its log price (False when fewer follow: the newest prices are judged as live)."""
        n = len(lp)
        out = np.full(n, ahead > 0)
        for k in range(1, ahead + 1):
            if k >= n:
                return np.zeros(n, bool)
            same = np.zeros(n, bool)
            same[:-k] = (codes[k:] == codes[:-k]) & (np.abs(lp[k:] - lp[:-k]) <= tol)
            out &= same
        return out

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
        # a level is known when seen in the window (history_stats) or, over the longer memory, often
        # enough: a wholesale shop's quantity-break and clearance tiers come back months apart
        if c.level_memory > c.window:
            known |= self._near_count(lp, pos, c.level_memory, c.level_tolerance) >= c.known_level_count
        # a new price the item keeps for the next `settle` observations is a repricing (a markdown, a
        # new tier), not a one-off spike, drop or subsidy; the newest prices cannot be told apart yet
        novel = ~known & ~self._kept(lp, codes, c.settle, c.level_tolerance)
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

    def peers(self, prices: pd.DataFrame, *, at: float = 0.0, attributes: Sequence[str] | None = None) -> Flags:
        """Flags of items priced far from the alike items of their category (module docstring).

        ``prices`` has ``item``, ``price`` and ``category``, and optionally numeric attributes of the
        items (``attributes``: their columns; by default every other column), such as weight, volume,
        photo count or description length: positive sizes or counts, used as log(1 + x); a missing or
        negative one counts as the category's median. Without attributes an item's expected price is
        its category's median. An item without a category or a usable price is counted, not judged."""
        c = self.config
        for col in ("item", "price", "category"):
            if col not in prices.columns:
                raise ValueError(f"peers: no column {col!r} (expected item, price, category and optional "
                                 f"attributes; the columns are {list(prices.columns)})")
        if attributes is None:
            attributes = [a for a in prices.columns if a not in ("item", "price", "category")]
        missing = [a for a in attributes if a not in prices.columns]
        if missing:
            raise ValueError(f"peers: no attribute column {missing} (the columns are {list(prices.columns)})")
        p = pd.to_numeric(prices["price"], errors="coerce").to_numpy(np.float64)
        cat = prices["category"]
        usable = np.isfinite(p) & (p > 0) & cat.notna().to_numpy()
        codes, _ = pd.factorize(cat.to_numpy()[usable])
        lp = np.log(p[usable])
        raw = np.column_stack([pd.to_numeric(prices[a], errors="coerce").to_numpy(np.float64)[usable]
                               for a in attributes]) if len(attributes) else np.zeros((len(lp), 0))
        expected, spread = peer_expectation(lp, codes, raw, c)
        size = np.bincount(codes, minlength=codes.max() + 1 if len(codes) else 0)[codes]
        d = lp - expected
        z = d / spread
        enough = size >= c.peer_min
        below = enough & (z <= -c.peer_z) & (d <= -np.log(c.peer_ratio))
        above = enough & (z >= c.peer_z) & (d >= np.log(c.peer_ratio))
        items = prices["item"].to_numpy()[usable]
        rows = []
        for kind, mask in (("below_peers", below), ("above_peers", above)):
            idx = np.flatnonzero(mask)
            if len(idx):
                rows.append(pd.DataFrame({"subject": "item", "key": items[idx].astype(str),
                                          "detector": "price", "kind": kind, "at": float(at),
                                          "score": np.abs(z[idx]) / c.peer_z, "value": p[usable][idx],
                                          "expected": np.exp(expected[idx])}))
        frame = pd.concat(rows, ignore_index=True) if rows else Flags().frame.drop(columns="reason")
        frame["reason"] = [_reason(k, v, e, alike=bool(len(attributes)))
                           for k, v, e in zip(frame["kind"], frame["value"], frame["expected"])]
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


def peer_expectation(lp: np.ndarray, codes: np.ndarray, raw: np.ndarray, c: PriceConfig
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(expected log price, spread) of each item from the items of its category (``codes``): without
    attributes (``raw`` has no columns) the category's median log price and MAD; with them a robust
    (Huber, ``peer_huber``) regression of log price on log(1 + attribute) per category, its slopes
    shrunk towards the slopes common to all categories (a ridge of ``peer_shrink`` items' weight, so a
    category of ten items borrows most of its slopes), fitted by iteratively reweighted least squares
    over every category at once; the spread is the MAD of the category's residuals. Both spreads are
    floored at ``peer_min_spread``."""
    n = len(lp)
    if n == 0:
        return np.zeros(0), np.zeros(0)
    C = int(codes.max()) + 1

    def cat_median(x: np.ndarray) -> np.ndarray:
        return pd.Series(x).groupby(codes).transform("median").to_numpy()

    if raw.shape[1] == 0:
        med = cat_median(lp)
        return med, np.maximum(1.4826 * cat_median(np.abs(lp - med)), c.peer_min_spread)
    x = np.log1p(np.where(np.isfinite(raw) & (raw >= 0), raw, np.nan))
    for j in range(x.shape[1]):                       # a missing attribute: the category's median
        col = x[:, j]
        fill = pd.Series(col).groupby(codes).transform("median").to_numpy()
        col[np.isnan(col)] = fill[np.isnan(col)]
        col[np.isnan(col)] = np.nanmedian(col) if np.isfinite(col).any() else 0.0
    sd = x.std(0)
    x = (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)
    k = x.shape[1]
    Z = np.column_stack([np.ones(n), x])
    pairs = [(a, b) for a in range(k + 1) for b in range(a, k + 1)]

    def sums(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per category: Σ w z zᵀ (C, k+1, k+1) and Σ w z y (C, k+1)."""
        A = np.empty((C, k + 1, k + 1))
        for a, b in pairs:
            A[:, a, b] = A[:, b, a] = np.bincount(codes, w * Z[:, a] * Z[:, b], minlength=C)
        r = np.column_stack([np.bincount(codes, w * Z[:, a] * lp, minlength=C) for a in range(k + 1)])
        return A, r

    w = np.ones(n)
    pen = np.eye(k + 1)
    pen[0, 0] = 0.0
    for _ in range(c.peer_iterations):
        A, r = sums(w)
        # the common slopes: the within-category regression pooled over the categories
        sw = np.maximum(A[:, 0, 0], 1e-12)
        Sxx = (A[:, 1:, 1:] - A[:, 1:, :1] * A[:, :1, 1:] / sw[:, None, None]).sum(0)
        Sxy = (r[:, 1:] - A[:, 1:, 0] * r[:, :1] / sw[:, None]).sum(0)
        common = np.linalg.lstsq(Sxx + 1e-9 * np.eye(k), Sxy, rcond=None)[0]
        prior = np.r_[0.0, common]
        beta = np.linalg.solve(A + c.peer_shrink * pen + 1e-9 * np.eye(k + 1),
                               (r + c.peer_shrink * pen @ prior)[..., None])[..., 0]
        fit = np.einsum("ij,ij->i", Z, beta[codes])
        res = lp - fit
        s = np.maximum(1.4826 * cat_median(np.abs(res - cat_median(res))), c.peer_min_spread)
        u = np.abs(res) / (c.peer_huber * s)
        w = np.where(u <= 1, 1.0, 1.0 / np.maximum(u, 1e-12))
    return fit, s


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


def _reason(kind: str, value: float, expected: float, alike: bool = False) -> str:
    ratio = value / expected if expected else float("nan")
    if alike and kind in ("below_peers", "above_peers"):
        how = f"{1 - ratio:.0%} below" if kind == "below_peers" else f"{ratio:.1f}×"
        return f"price {value:.2f} is {how} what alike items of its category cost ({expected:.2f})"
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
