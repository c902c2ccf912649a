"""How long an item takes to arrive, and how likely it is to arrive late, per customer region.

:func:`delivery_estimates` reads the delivery outcomes a loader attaches as ``data.meta["orders"]``
(one row per order: ``session_id``, ``purchased`` and ``delivered`` in unix seconds, ``estimated``
or ``days_late``, and the customer's region as ``customer_state`` or ``region``: the Olist loader
gives them all) and the item table's ``seller`` and ``seller_state``. A delivery is one (order,
seller) pair of the data's purchase events whose order was delivered by the data's last event (a
temporal split never sees the future's deliveries); its time is ``delivered − purchased`` in days
(the order's first purchase event when ``purchased`` is missing), late when it came after the date
the shop promised. Everything is counted at once (``np.bincount`` over combined codes), per

* **shop**: the mean log-days ``μ`` and the late share ``ρ``;
* **destination** region ``r`` and **origin** state ``o`` (the seller's state; unknown is a state of
  its own), each shrunk toward the shop;
* **route** ``o → r``, shrunk toward ``μ_o + μ_r − μ`` (late share: ``ρ_o · ρ_r / ρ`` on the logit
  scale);
* **seller** ``s``: its overall mean (all its deliveries, any region) shrunk toward its origin state's
  (what a request with no region is told), and its *effect* against the routes it ships on: the mean
  residual of its log-days under the route model (shrunk toward 0), and its late deliveries over those
  the routes would predict ((observed + k·ρ_o) / (expected + k·ρ_o));
* **cell** ``s × r``: its own deliveries shrunk toward the route times the seller's effect, so a cell
  with few orders is judged by how this seller does against its routes and how long that route
  takes, and a seller's first order to a far state is expected to take as long as that route does
  for it.

Shrinkage: value = (sum + k · prior) / (n + k), ``k`` = ``prior_days`` (log-days) or ``prior_risk``
(late shares) pseudo-deliveries. Expected days are ``exp`` of the shrunk mean log-days (a geometric
mean: robust to the odd 100-day delivery, about the median of a log-normal). A seller with fewer than
``min_orders`` deliveries has no estimate (NaN): its items are neither held nor noted, and the ranker
sees a missing value. Items whose table names no seller are shipped by the shop itself (one pseudo
seller), so a shop without marketplace sellers gets its per-region figures.

The :mod:`~shoprec.scenarios.rerank.delivery` re-ranker holds, demotes and notes by these; the
learned ranker reads the unknown-region figures of each item (:mod:`.facts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from ..data import Behaviour, ShopData

__all__ = ["DeliveryEstimates", "deliveries", "delivery_estimates", "region_codes"]

DAY = 86_400.0
#: meta["orders"] columns that name the customer's region, first found wins
REGION_COLUMNS = ("customer_state", "region")
#: the pseudo seller of items without one (the shop ships them)
SHOP_SELLER = "(shop)"
#: backfitting sweeps of the additive model (it converges in a few; each is a handful of bincounts)
_SWEEPS = 20


@dataclass
class DeliveryEstimates:
    """Per seller (rows) and customer region (columns, the last one: region unknown = the seller's
    overall), float32: expected days, late risk and the deliveries behind them; per item its seller's
    code (-1: none). NaN: no estimate. :attr:`days` / :attr:`risk` give the per-item arrays."""

    regions: list[str]
    seller: np.ndarray            # int32 (n_items,)
    seller_names: list[str]
    seller_days: np.ndarray       # float32 (n_sellers, R + 1)
    seller_risk: np.ndarray       # float32 (n_sellers, R + 1)
    seller_orders: np.ndarray     # float32 (n_sellers, R + 1): the cell's own deliveries (last: all)
    shop_days: float = float("nan")
    shop_risk: float = float("nan")
    n_deliveries: int = 0         # (order, seller) deliveries read
    n_with_region: int = 0        # … of those, with the customer's region

    @property
    def n_regions(self) -> int:
        return len(self.regions)

    @property
    def n_items(self) -> int:
        return len(self.seller)

    def _per_item(self, a: np.ndarray) -> np.ndarray:
        out = np.full((self.n_items, a.shape[1]), np.nan, np.float32)
        has = self.seller >= 0
        out[has] = a[self.seller[has]]
        return out

    @property
    def days(self) -> np.ndarray:
        """float32 (n_items, R): expected days of each item to each region."""
        return self._per_item(self.seller_days)[:, :-1]

    @property
    def risk(self) -> np.ndarray:
        """float32 (n_items, R): the late risk of each item to each region."""
        return self._per_item(self.seller_risk)[:, :-1]

    @property
    def days_unknown(self) -> np.ndarray:
        """float32 (n_items,): expected days when the region is unknown (the seller's overall)."""
        return self._per_item(self.seller_days[:, -1:])[:, 0]

    @property
    def risk_unknown(self) -> np.ndarray:
        """float32 (n_items,): late risk when the region is unknown (the seller's overall)."""
        return self._per_item(self.seller_risk[:, -1:])[:, 0]

    def region_index(self, values) -> np.ndarray:
        """Region names (any case, "" / None = unknown) → column codes, ``n_regions`` for unknown."""
        return region_codes(self.regions, values)

    def assign(self, table: pd.DataFrame | None, idx: np.ndarray, n_items: int) -> None:
        """The live catalogue grew to ``n_items`` or the items ``idx`` changed: those items take their
        seller's estimates by the table's ``seller`` (a seller without deliveries: none; no seller
        named: the shop's, as at fit); items added without a row here have none."""
        seller = self.seller
        if len(seller) < n_items:
            seller = np.concatenate([seller, np.full(n_items - len(seller), -1, np.int32)])
        idx = np.asarray(idx, np.int64)
        idx = idx[(idx >= 0) & (idx < n_items)]
        if len(idx):
            names = _column(table, "seller", n_items).fillna(SHOP_SELLER).to_numpy(dtype=object)[idx]
            seller = seller.copy()
            seller[idx] = pd.Index(self.seller_names).get_indexer(names).astype(np.int32)
        self.seller = seller

    # ------------------------------------------------------------------ artifact
    def state(self) -> dict[str, np.ndarray]:
        return {"regions": np.asarray(self.regions, dtype=str), "seller": self.seller.astype(np.int32),
                "seller_names": np.asarray(self.seller_names, dtype=str),
                "seller_days": self.seller_days, "seller_risk": self.seller_risk,
                "seller_orders": self.seller_orders,
                "shop": np.asarray([self.shop_days, self.shop_risk, self.n_deliveries, self.n_with_region],
                                   np.float64)}

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> "DeliveryEstimates":
        shop = np.asarray(state["shop"], np.float64)
        return cls([str(x) for x in np.asarray(state["regions"]).tolist()], np.asarray(state["seller"], np.int32),
                   [str(x) for x in np.asarray(state["seller_names"]).tolist()],
                   np.asarray(state["seller_days"], np.float32), np.asarray(state["seller_risk"], np.float32),
                   np.asarray(state["seller_orders"], np.float32), float(shop[0]), float(shop[1]),
                   int(shop[2]), int(shop[3]))


def region_codes(regions: list[str], values) -> np.ndarray:
    """Region names → codes into ``regions`` (matched case- and space-insensitively), ``len(regions)``
    for unknown, missing or empty values."""
    n = len(regions)
    if values is None:
        return np.zeros(0, np.int64)
    v = pd.Series(np.asarray(values, dtype=object)).astype("string").str.strip().str.upper()
    lookup = pd.Index([str(r).strip().upper() for r in regions])
    codes = lookup.get_indexer(v.fillna("").to_numpy(dtype=object)) if n else np.full(len(v), -1)
    return np.where(codes >= 0, codes, n).astype(np.int64)


def _column(table: pd.DataFrame | None, name: str, n: int) -> pd.Series:
    """The item table's column ``name`` by item index (stripped text, NA where missing or empty)."""
    if table is None or name not in table.columns:
        return pd.Series([pd.NA] * n, dtype="string")
    v = table[name].astype("string").str.strip().replace("", pd.NA).to_numpy(dtype=object)[:n]
    if len(v) < n:
        v = np.concatenate([v, np.full(n - len(v), pd.NA, dtype=object)])
    return pd.Series(v, dtype="string")


def _sellers(data: ShopData) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(seller code per item, seller names, origin-state name per seller ("" unknown)); items without
    a seller belong to :data:`SHOP_SELLER`."""
    n = data.n_items
    names = _column(data.item_table, "seller", n).fillna(SHOP_SELLER)
    codes, uniq = pd.factorize(names.to_numpy(dtype=object))
    seller_names = [str(x) for x in uniq]
    origin = np.full(len(seller_names), "", dtype=object)
    st = _column(data.item_table, "seller_state", n).str.upper()
    known = st.notna().to_numpy()
    if known.any():
        first = pd.Series(st.to_numpy(dtype=object)[known]).groupby(codes[known]).first()
        origin[first.index.to_numpy()] = first.to_numpy(dtype=object)
    return codes.astype(np.int32), seller_names, origin


def deliveries(data: ShopData, seller: np.ndarray | None = None, region_column: str | None = None
               ) -> pd.DataFrame | None:
    """One row per (order, seller) of ``data``'s purchases delivered by its last event: ``seller`` (the
    code of :func:`delivery_estimates`' ``seller`` per item, or of ``seller`` given), ``region``
    (upper case, NA unknown), ``days``, ``late`` (1.0 / 0.0, NaN: no promised date); None without
    delivery outcomes."""
    n_sellers_codes = _sellers(data)[0] if seller is None else np.asarray(seller)
    orders = data.meta.get("orders") if isinstance(getattr(data, "meta", None), Mapping) else None
    ev = data.events
    if orders is None or not len(orders) or data.sessions is None or not len(ev) or "delivered" not in orders:
        return None
    buy = (ev["behaviour"].to_numpy() == int(Behaviour.PURCHASE)) & (ev["session_idx"].to_numpy() >= 0)
    if not buy.any():
        return None
    now = float(ev["timestamp"].to_numpy(np.float64).max())
    sess = ev["session_idx"].to_numpy()[buy].astype(np.int64)
    lines = pd.DataFrame({"sess": sess, "seller": n_sellers_codes[ev["item_idx"].to_numpy()[buy]],
                          "t": ev["timestamp"].to_numpy(np.float64)[buy]})
    first_t = lines.groupby("sess", sort=False)["t"].min()
    pairs = lines.drop_duplicates(["sess", "seller"])
    sidx = data.sessions.to_index(orders["session_id"].astype(str).to_numpy(dtype=object), missing=-1)
    ok = sidx >= 0
    o = orders.loc[ok]
    sidx = sidx[ok].astype(np.int64)
    delivered = o["delivered"].to_numpy(np.float64)
    purchased = (o["purchased"].to_numpy(np.float64) if "purchased" in o.columns else np.full(len(o), np.nan))
    purchased = np.where(np.isfinite(purchased), purchased, first_t.reindex(sidx).to_numpy(np.float64))
    if "estimated" in o.columns:
        est = o["estimated"].to_numpy(np.float64)
        late = np.where(np.isfinite(est), (delivered > est).astype(np.float64), np.nan)
    elif "days_late" in o.columns:
        dl = o["days_late"].to_numpy(np.float64)
        late = np.where(np.isfinite(dl), (dl > 0).astype(np.float64), np.nan)
    else:
        late = np.full(len(o), np.nan)
    col = region_column or next((c for c in REGION_COLUMNS if c in o.columns), None)
    region = (o[col].astype("string").str.strip().str.upper().replace("", pd.NA).to_numpy(dtype=object)
              if col is not None and col in o.columns else np.full(len(o), None, dtype=object))
    days = (delivered - purchased) / DAY
    good = np.isfinite(delivered) & (delivered <= now) & np.isfinite(days) & (days >= 0)
    per_order = pd.DataFrame({"sess": sidx[good], "days": days[good], "late": late[good],
                              "region": region[good]}).drop_duplicates("sess", keep="last")
    out = pairs.merge(per_order, on="sess", how="inner")
    return out[["seller", "region", "days", "late"]]


def _shrink(total: np.ndarray, n: np.ndarray, prior: np.ndarray, k: float) -> np.ndarray:
    denom = n + k
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (total + k * prior) / np.where(denom > 0, denom, 1.0), prior)


def delivery_estimates(data: ShopData, *, prior_days: float = 5.0, prior_risk: float = 20.0,
                       min_orders: int = 1, region_column: str | None = None) -> DeliveryEstimates:
    """The expected days and late risk of every seller to every region of ``data`` (module docstring)."""
    seller, names, origin_name = _sellers(data)
    n_s = len(names)
    d = deliveries(data, seller, region_column)
    if d is None or not len(d):
        empty = np.full((n_s, 1), np.nan, np.float32)
        return DeliveryEstimates([], seller, names, empty, empty.copy(), np.zeros((n_s, 1), np.float32))
    o_codes, o_names = pd.factorize(origin_name)
    n_o = len(o_names)
    s_origin = o_codes.astype(np.int64)                      # origin code per seller
    has_region = pd.notna(d["region"]).to_numpy()
    regions = sorted({str(x) for x in d["region"].to_numpy(dtype=object)[has_region]})
    n_r = len(regions)
    s = d["seller"].to_numpy().astype(np.int64)
    r = np.where(has_region, region_codes(regions, d["region"].to_numpy(dtype=object)), n_r)   # n_r: unknown
    o = s_origin[s]
    y = np.log(np.maximum(d["days"].to_numpy(np.float64), 0.25))
    z = d["late"].to_numpy(np.float64)
    zk = np.isfinite(z)                                      # a promised date to be late against
    z0 = np.where(zk, z, 0.0)

    n_rc = max(n_r, 1)
    rc = np.minimum(r, n_rc - 1)                             # rows without a region are weighted out below
    everywhere, regional = np.ones(len(d)), has_region.astype(np.float64)
    groups = [(o, n_o, everywhere), (rc, n_rc, regional), (o * n_rc + rc, n_o * n_rc, regional),
              (s, n_s, everywhere)]

    def effects(v: np.ndarray, w: np.ndarray, k: float) -> tuple[float, list[np.ndarray]]:
        """The shop's mean of ``v`` (rows weighted by ``w``) and the origin, destination, route and
        seller effects of the additive model, each ridge-shrunk by ``k`` pseudo-deliveries
        (Gauss–Seidel backfitting, all rows at once per sweep)."""
        base = float((v * w).sum() / w.sum())
        eff = [np.zeros(size) for _, size, _ in groups]
        pred = np.zeros(len(v))
        for _ in range(_SWEEPS):
            for g, (code, size, gw) in enumerate(groups):
                ww = w * gw
                other = pred - eff[g][code] * gw
                n = np.bincount(code, weights=ww, minlength=size)
                eff[g] = np.bincount(code, weights=ww * (v - base - other), minlength=size) / np.maximum(n + k, 1e-12)
                pred = other + eff[g][code] * gw
        return base, eff

    def estimate(v: np.ndarray, w: np.ndarray, k: float, clip: tuple[float, float] | None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """(per cell (n_s, n_r), per seller overall (n_s,), cell evidence, seller evidence, shop mean)."""
        base, (a, b, c, e) = effects(v, w, k)
        so = s_origin
        prior = (base + a[so][:, None] + b[None, :n_r] + c.reshape(n_o, n_rc)[so][:, :n_r] + e[:, None])
        prior_s = base + a[so]
        if clip is not None:
            prior, prior_s = np.clip(prior, *clip), np.clip(prior_s, *clip)
        cell_sum = np.bincount(s * n_rc + rc, weights=v * w * regional, minlength=n_s * n_rc)
        cell_n = np.bincount(s * n_rc + rc, weights=w * regional, minlength=n_s * n_rc)
        cell_sum, cell_n = (x.reshape(n_s, n_rc)[:, :n_r] for x in (cell_sum, cell_n))
        s_sum, s_n = np.bincount(s, weights=v * w, minlength=n_s), np.bincount(s, weights=w, minlength=n_s)
        return _shrink(cell_sum, cell_n, prior, k), _shrink(s_sum, s_n, prior_s, k), cell_n, s_n, base

    mu_sr, mu_s, cn, sn, mu = estimate(y, everywhere, float(prior_days), None)
    if zk.any():
        rho_sr, rho_s, _, _, rho = estimate(z0, zk.astype(np.float64), float(prior_risk), (0.0, 1.0))
    else:                                                    # no promised dates: nothing to be late against
        rho_sr, rho_s, rho = np.full((n_s, n_r), np.nan), np.full(n_s, np.nan), float("nan")

    days = np.column_stack([np.exp(mu_sr), np.exp(mu_s)]).astype(np.float32)
    risk = np.column_stack([rho_sr, rho_s]).astype(np.float32)
    orders = np.column_stack([cn, sn]).astype(np.float32)
    none = sn < max(min_orders, 0) if min_orders > 0 else np.zeros(n_s, bool)
    days[none] = np.nan
    risk[none] = np.nan
    return DeliveryEstimates(regions, seller, names, days, risk, orders, float(np.exp(mu)), rho,
                             int(len(d)), int(has_region.sum()))
