"""Exposure audit of a ranking: how the attention of the shown lists is shared among groups of items
(sellers, brands, categories), against how relevance is shared.

For lists ``item_idx`` (n requests × k slots, -1 padding) a slot at rank r (1-based) gets the
position weight ``1 / log2(r + 1)`` (the DCG discount: the attention a shopper gives a slot); an item's
**exposure** is the sum of the weights of the slots it holds, a group's the sum over its items, and
the **exposure share** a group's part of the total. Given the test's relevant items (a users × items
matrix), the **relevance share** is the group's part of the relevant (user, item) pairs: a fair
ranking gives each group about the attention its relevance earns. Reported:

* ``gini``: the Gini coefficient of exposure over all groups (0: every group the same, → 1: one group
  gets everything); ``gini_items`` likewise over items;
* per group: exposure and relevance shares and their ratio;
* the share of exposure that reaches ``small`` groups (a mask: new or small sellers).

Everything is vectorised (bincounts over the slots).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["ExposureAudit", "exposure_audit", "gini", "group_codes", "position_weights", "small_groups"]


def position_weights(k: int) -> np.ndarray:
    """(k,) float64: ``1 / log2(rank + 1)`` for ranks 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative ``values`` (0 when all are equal or all zero)."""
    v = np.sort(np.asarray(values, np.float64))
    if v.size == 0:
        raise ValueError("gini of no values")
    if (v < 0).any():
        raise ValueError("gini needs non-negative values")
    total = v.sum()
    if total <= 0:
        return 0.0
    n = v.size
    return float((2.0 * np.sum(np.arange(1, n + 1) * v) / (n * total)) - (n + 1.0) / n)


@dataclass
class ExposureAudit:
    """What :func:`exposure_audit` measured (module docstring)."""

    gini: float
    gini_items: float
    small_share: float
    groups: pd.DataFrame          # group, exposure_share, relevance_share, ratio, items_shown

    def summary(self) -> str:
        return (f"exposure Gini {self.gini:.3f} over {len(self.groups):,} groups (items {self.gini_items:.3f}); "
                f"small groups' share {self.small_share:.1%}")


def exposure_audit(item_idx: np.ndarray, group: np.ndarray, *, names: list[str] | None = None,
                   relevant: sp.spmatrix | None = None, small: np.ndarray | None = None) -> ExposureAudit:
    """The audit of the lists ``item_idx`` ((n, k) int, -1 padding) with ``group`` the group code of
    every item (int, -1: none; such items' exposure counts toward no group), ``names`` the groups'
    names, ``relevant`` the test's users × items relevance (rows aligned with the lists; any non-zero
    is relevant) and ``small`` a bool mask over the groups."""
    item_idx = np.asarray(item_idx)
    if item_idx.ndim != 2:
        raise ValueError(f"item_idx must be (requests, k); got shape {item_idx.shape}")
    group = np.asarray(group, np.int64)
    n_items = len(group)
    n_groups = int(group.max(initial=-1)) + 1
    if names is not None and len(names) < n_groups:
        raise ValueError(f"{n_groups} groups but {len(names)} names")
    if item_idx.size and item_idx.max(initial=-1) >= n_items:
        raise ValueError(f"an item index {int(item_idx.max())} beyond the {n_items} items the groups cover")
    w = np.broadcast_to(position_weights(item_idx.shape[1]), item_idx.shape)
    shown = item_idx >= 0
    items = item_idx[shown]
    item_exp = np.bincount(items, weights=w[shown], minlength=n_items)
    g = group[items]
    ok = g >= 0
    group_exp = np.bincount(g[ok], weights=w[shown][ok], minlength=n_groups)
    items_shown = np.bincount(group[np.unique(items)][group[np.unique(items)] >= 0], minlength=n_groups)
    total = group_exp.sum()
    exp_share = group_exp / total if total else np.zeros(n_groups)
    rel_share = np.full(n_groups, np.nan)
    if relevant is not None:
        rel = sp.csr_matrix(relevant)
        if rel.shape[0] != item_idx.shape[0]:
            raise ValueError(f"relevant has {rel.shape[0]} rows for {item_idx.shape[0]} lists")
        cols = rel.indices[rel.indices < n_items]
        rg = group[cols]
        counts = np.bincount(rg[rg >= 0], minlength=n_groups).astype(np.float64)
        rel_share = counts / counts.sum() if counts.sum() else np.zeros(n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = exp_share / rel_share
    frame = pd.DataFrame({"group": names[:n_groups] if names is not None else np.arange(n_groups),
                          "exposure_share": exp_share, "relevance_share": rel_share, "ratio": ratio,
                          "items_shown": items_shown})
    small_share = float(exp_share[np.asarray(small, bool)].sum()) if small is not None else float("nan")
    return ExposureAudit(gini(group_exp) if n_groups else 0.0, gini(item_exp) if n_items else 0.0, small_share,
                         frame.sort_values("exposure_share", ascending=False, kind="stable").reset_index(drop=True))


def group_codes(item_table: pd.DataFrame, column: str, n_items: int) -> tuple[np.ndarray, list[str]]:
    """(n_items,) int64 group code of every item from ``item_table[column]`` (-1: missing value, or an
    item beyond the table) and the groups' names."""
    if column not in item_table.columns:
        raise KeyError(f"no column {column!r} in the item table (columns: {', '.join(map(str, item_table.columns))})")
    codes, names = pd.factorize(item_table[column].astype("string"), use_na_sentinel=True)
    out = np.full(n_items, -1, np.int64)
    m = min(n_items, len(codes))
    out[:m] = codes[:m]
    return out, [str(x) for x in names]


def small_groups(data, codes: np.ndarray, n_groups: int, *, big_share: float = 0.5,
                 new_days: float = 90.0) -> tuple[np.ndarray, np.ndarray]:
    """(small mask over the groups, each group's behaviour-weighted interaction volume) in ``data``:
    a group is **small** when it is outside the largest groups that together hold ``big_share`` of
    the volume, or **new** when its first event is within ``new_days`` of the data's last."""
    ev = data.events
    items = ev["item_idx"].to_numpy().astype(np.int64)
    g = codes[items]
    ok = g >= 0
    weights = data.interactions().sum(axis=0).A1 if data.n_users else np.zeros(data.n_items)
    volume = np.bincount(codes[codes >= 0], weights=np.asarray(weights, np.float64)[:len(codes)][codes >= 0],
                         minlength=n_groups)[:n_groups]
    order = np.argsort(-volume, kind="stable")
    cum = np.cumsum(volume[order])
    total = cum[-1] if len(cum) else 0.0
    big = np.zeros(n_groups, bool)
    if total > 0:
        n_big = int(np.searchsorted(cum, big_share * total) + 1)
        big[order[:n_big]] = True
    small = ~big
    t = ev["timestamp"].to_numpy(np.float64) if "timestamp" in ev.columns and len(ev) else None
    # new groups only where the timestamps are times spanning more than twice the window (not positions)
    if new_days > 0 and ok.any() and t is not None and np.ptp(t) > 2 * new_days * 86400.0:
        first = np.full(n_groups, np.inf)
        np.minimum.at(first, g[ok], t[ok])
        small |= first >= t.max() - new_days * 86400.0
    return small, volume
