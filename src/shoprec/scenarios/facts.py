"""What the pipeline knows about items and users beyond the strategies: stock, price, category,
popularity and recency, purchases and repurchase intervals, the text index for near-duplicates and
search. Computed once per fit, vectorised."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data import Behaviour, ShopData

DAY = 86400.0


@dataclass
class ItemFacts:
    """Per-item arrays (length n_items) and per-user purchase state."""

    n_items: int
    popularity: np.ndarray        # distinct users per item
    trend: np.ndarray             # 7-day half-life decayed weight, normalised to max 1
    days_since_last: np.ndarray   # days between the item's last event and the data's last event (nan: none)
    days_since_first: np.ndarray
    price: np.ndarray             # item_table price, else median event price, nan if unknown
    category: np.ndarray          # int codes, -1 unknown
    category_names: list[str]
    in_stock: np.ndarray          # bool
    repurchase_days: np.ndarray   # median days between repeat purchases of consumables, nan for durables
    purchased: sp.csr_matrix      # users × items, last purchase time (unix seconds + 1), 0 = never
    now: float                    # the data's last timestamp (or 0)
    titles: np.ndarray | None     # object array of item titles, for reasons
    #: shrunk return, poor-review and late-delivery rates (:mod:`.complaints`); NaN for items added live
    return_rate: np.ndarray | None = field(default=None)
    poor_review_rate: np.ndarray | None = field(default=None)
    late_rate: np.ndarray | None = field(default=None)
    #: expected delivery days and late risk to a shopper of unknown region (:mod:`.delivery`: the
    #: seller's overall); NaN without an estimate
    delivery_days: np.ndarray | None = field(default=None)
    late_risk: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        for name in ("return_rate", "poor_review_rate", "late_rate", "delivery_days", "late_risk"):
            if getattr(self, name) is None:
                setattr(self, name, np.full(self.n_items, np.nan, np.float32))

    @classmethod
    def from_data(cls, data: ShopData, *, consumable_min_repeat: float = 0.1) -> "ItemFacts":
        ev = data.events
        n = data.n_items
        items = ev["item_idx"].to_numpy()
        users = ev["user_idx"].to_numpy()
        ts = ev["timestamp"].to_numpy().astype(np.float64)
        has_time = len(ts) > 0 and bool((ts >= 0).all())
        ui = sp.csr_matrix((np.ones(len(items), np.float32), (users, items)), shape=(data.n_users, n))
        ui.sum_duplicates()
        popularity = np.diff(ui.tocsc().indptr).astype(np.float32)
        now = float(ts.max()) if has_time else 0.0
        if has_time:
            w = data.behaviour_weights() * np.power(0.5, (now - ts) / (7 * DAY))
            trend = np.bincount(items, weights=w, minlength=n)
            trend = (trend / max(trend.max(initial=0), 1e-12)).astype(np.float32)
            last = np.full(n, -np.inf)
            np.maximum.at(last, items, ts)
            first = np.full(n, np.inf)
            np.minimum.at(first, items, ts)
            days_last = np.where(np.isfinite(last), (now - last) / DAY, np.nan).astype(np.float32)
            days_first = np.where(np.isfinite(first), (now - first) / DAY, np.nan).astype(np.float32)
        else:
            trend = (popularity / max(popularity.max(initial=0), 1)).astype(np.float32)
            days_last = np.full(n, np.nan, np.float32)
            days_first = np.full(n, np.nan, np.float32)

        table = data.item_table
        price = np.full(n, np.nan, np.float32)
        ev_price = ev["price"].to_numpy().astype(np.float64)
        ok = np.isfinite(ev_price) & (ev_price > 0)
        if ok.any():
            med = pd.Series(ev_price[ok]).groupby(items[ok]).median()
            price[med.index.to_numpy()] = med.to_numpy()
        category = np.full(n, -1, np.int32)
        names: list[str] = []
        in_stock = np.ones(n, dtype=bool)
        titles = None
        if table is not None:
            if "price" in table.columns:
                p = pd.to_numeric(table["price"], errors="coerce").to_numpy(dtype=np.float64)
                price = np.where(np.isfinite(p), p, price).astype(np.float32)
            if "category" in table.columns:
                codes, uniq = pd.factorize(table["category"].astype("string"), use_na_sentinel=True)
                category = codes.astype(np.int32)
                names = [str(u) for u in uniq]
            for col in ("in_stock", "stock"):
                if col in table.columns:
                    v = table[col]
                    if col == "in_stock":
                        in_stock = v.fillna(True).astype(bool).to_numpy()
                    else:
                        in_stock = (pd.to_numeric(v, errors="coerce").fillna(1).to_numpy() > 0)
                    break
            if "title" in table.columns:
                titles = table["title"].astype(object).to_numpy()

        purchased, repurchase = _purchases(data, has_time, consumable_min_repeat)
        from .complaints import consumer_signals

        from .delivery import delivery_estimates

        rates = consumer_signals(data).rates
        est = delivery_estimates(data)
        return cls(n, popularity, trend, days_last, days_first, price, category, names, in_stock,
                   repurchase, purchased, now, titles, **rates, delivery_days=est.days_unknown,
                   late_risk=est.risk_unknown)

    # ------------------------------------------------------------------ live catalogue
    def grow(self, n_items: int) -> None:
        """Room for items added to the catalogue after fit: no events yet (popularity and trend 0,
        ages unknown), price and category unknown, in stock, never purchased."""
        extra = n_items - self.n_items
        if extra <= 0:
            return

        def pad(a: np.ndarray, fill) -> np.ndarray:
            return np.concatenate([a, np.full(extra, fill, dtype=a.dtype)])

        self.popularity = pad(self.popularity, 0)
        self.trend = pad(self.trend, 0)
        self.days_since_last = pad(self.days_since_last, np.nan)
        self.days_since_first = pad(self.days_since_first, np.nan)
        self.price = pad(self.price, np.nan)
        self.category = pad(self.category, -1)
        self.in_stock = pad(self.in_stock, True)
        self.repurchase_days = pad(self.repurchase_days, np.nan)
        self.return_rate = pad(self.return_rate, np.nan)
        self.poor_review_rate = pad(self.poor_review_rate, np.nan)
        self.late_rate = pad(self.late_rate, np.nan)
        self.delivery_days = pad(self.delivery_days, np.nan)
        self.late_risk = pad(self.late_risk, np.nan)
        if self.titles is not None:
            self.titles = pad(self.titles.astype(object), None)
        purchased = self.purchased.copy()
        purchased.resize((purchased.shape[0], n_items))
        self.purchased = sp.csr_matrix(purchased)
        self.n_items = n_items

    def update(self, idx: np.ndarray, table: pd.DataFrame) -> None:
        """New attribute values for the items ``idx`` from the rows of ``table`` (aligned with
        ``idx``; columns ``price``, ``in_stock`` / ``stock``, ``category``, ``title``; missing values
        keep what was known). Arrays are replaced, not written in place, so a reader holding the old
        ones sees a consistent catalogue."""
        idx = np.asarray(idx, np.int64)
        if not len(idx):
            return
        if "price" in table.columns:
            p = pd.to_numeric(table["price"], errors="coerce").to_numpy(np.float64)
            price = self.price.copy()
            ok = np.isfinite(p)
            price[idx[ok]] = p[ok]
            self.price = price
        stock_col = "in_stock" if "in_stock" in table.columns else ("stock" if "stock" in table.columns else None)
        if stock_col is not None:
            v = table[stock_col]
            known = v.notna().to_numpy()
            vals = (v.fillna(True).astype(bool).to_numpy() if stock_col == "in_stock"
                    else pd.to_numeric(v, errors="coerce").fillna(1).to_numpy() > 0)
            stock = self.in_stock.copy()
            stock[idx[known]] = vals[known]
            self.in_stock = stock
        if "category" in table.columns:
            v = table["category"]
            known = v.notna().to_numpy()
            names = {n: i for i, n in enumerate(self.category_names)}
            cat = self.category.copy()
            for i, name in zip(idx[known], v[known].astype(str)):
                if name not in names:
                    names[name] = len(self.category_names)
                    self.category_names.append(name)
                cat[i] = names[name]
            self.category = cat
        if "title" in table.columns:
            v = table["title"]
            known = v.notna().to_numpy()
            titles = (np.full(self.n_items, None, dtype=object) if self.titles is None
                      else self.titles.astype(object).copy())
            titles[idx[known]] = v[known].astype(str).to_numpy()
            self.titles = titles

    def title(self, idx: int) -> str | None:
        if self.titles is None or idx < 0:
            return None
        t = self.titles[idx]
        return None if t is None or t is pd.NA or (isinstance(t, float) and np.isnan(t)) else str(t)


def _purchases(data: ShopData, has_time: bool, min_repeat: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """Last purchase time per (user, item) and, per item, the median repurchase interval in days
    (nan unless at least ``min_repeat`` of its buyers bought it on two different days)."""
    ev = data.events
    buy = ev[ev["behaviour"].to_numpy() == int(Behaviour.PURCHASE)]
    n = data.n_items
    repurchase = np.full(n, np.nan, np.float32)
    if not len(buy):
        return sp.csr_matrix((data.n_users, n), dtype=np.float64), repurchase
    u = buy["user_idx"].to_numpy()
    i = buy["item_idx"].to_numpy()
    t = buy["timestamp"].to_numpy().astype(np.float64) if has_time else np.zeros(len(buy))
    frame = pd.DataFrame({"u": u, "i": i, "day": np.floor(t / DAY), "t": t})
    last = frame.groupby(["u", "i"], sort=False)["t"].max()
    ui = last.index.to_frame(index=False)
    purchased = sp.csr_matrix((last.to_numpy() + 1.0, (ui["u"].to_numpy(), ui["i"].to_numpy())),
                              shape=(data.n_users, n), dtype=np.float64)
    if has_time:
        days = frame.drop_duplicates(["u", "i", "day"]).sort_values(["u", "i", "day"], kind="stable")
        gap = days.groupby(["u", "i"], sort=False)["day"].diff().dropna()
        if len(gap):
            gi = days.loc[gap.index, "i"].to_numpy()
            med = pd.Series(gap.to_numpy()).groupby(gi).median()
            buyers = np.bincount(ui["i"].to_numpy(), minlength=n)
            repeaters = np.bincount(np.unique(days.loc[gap.index, ["u", "i"]].to_numpy(), axis=0)[:, 1],
                                    minlength=n)
            share = repeaters / np.maximum(buyers, 1)
            idx = med.index.to_numpy()
            keep = share[idx] >= min_repeat
            repurchase[idx[keep]] = med.to_numpy()[keep]
    return purchased, repurchase
