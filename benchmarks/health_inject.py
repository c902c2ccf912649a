"""Injected price faults with known ground truth, kept apart from the detectors they test.

Each kind is injected on its own copy of the real series (so kinds never interact), into ``n`` items
drawn (seeded) among those with at least ``min_obs`` observations, one fault per item, at an
observation drawn uniformly in [``lead``, len − ``tail``):

* ``spike``: that observation's price × 3 (one period; the next is untouched);
* ``drop``: × 0.4 (−60 %), one period;
* ``subsidy``: × 0.65 with its units raised to 5 × the item's median units per observation (a cut
  below the long-run price with a volume spike);
* ``creep``: the next 10 observations rise by 4 % of the original price each (+40 % at the tenth),
  and every later one stays at +40 % (a gradual repricing).

Ground truth: the item and the observation's time (for creep: the ten observations of the ramp and
the ten after it are where a detection counts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KINDS = ("spike", "drop", "subsidy", "creep")


def inject(series: pd.DataFrame, kind: str, n: int, seed: int, min_obs: int = 80, lead: int = 40,
           tail: int = 25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the series with ``n`` faults of ``kind``, truth: item, t_from, t_to)."""
    rng = np.random.default_rng(seed)
    s = series.sort_values(["item", "t"], kind="stable").reset_index(drop=True).copy()
    sizes = s.groupby("item", sort=False).size()
    eligible = sizes[sizes >= min_obs].index.to_numpy()
    if len(eligible) < n:
        raise ValueError(f"only {len(eligible)} items have ≥ {min_obs} observations; asked for {n}")
    chosen = rng.choice(eligible, n, replace=False)
    starts = s.groupby("item", sort=False).indices
    price = s["price"].to_numpy(np.float64).copy()
    qty = s["quantity"].to_numpy(np.float64).copy()
    t = s["t"].to_numpy()
    truth = []
    for it in chosen:
        rows = np.asarray(starts[it])
        j = int(rng.integers(lead, len(rows) - tail))
        r = rows[j]
        if kind == "spike":
            price[r] *= 3.0
            truth.append((it, t[r], t[r]))
        elif kind == "drop":
            price[r] *= 0.4
            truth.append((it, t[r], t[r]))
        elif kind == "subsidy":
            price[r] *= 0.65
            qty[r] = max(qty[r], 5.0 * float(np.median(qty[rows])))
            truth.append((it, t[r], t[r]))
        elif kind == "creep":
            ramp = rows[j:]
            factor = 1.0 + 0.04 * np.minimum(np.arange(1, len(ramp) + 1), 10)
            price[ramp] *= factor
            truth.append((it, t[rows[j]], t[rows[min(j + 19, len(rows) - 1)]]))
        else:
            raise ValueError(f"unknown kind {kind!r}; the kinds are {KINDS}")
    s["price"], s["quantity"] = price, qty
    return s, pd.DataFrame(truth, columns=["item", "t_from", "t_to"])


def inject_peers(prices: pd.DataFrame, kind: str, n: int, seed: int, min_peers: int = 10,
                 above: float = 5.0, below: float = 0.15) -> tuple[pd.DataFrame, pd.Series]:
    """(prices with ``n`` items of categories with ≥ ``min_peers`` items repriced to ``above`` ×
    (``kind`` above_peers) or ``below`` × (below_peers) their category's median, their item ids)."""
    rng = np.random.default_rng(seed)
    p = prices.copy()
    size = p.groupby("category")["item"].transform("size")
    eligible = np.flatnonzero((size >= min_peers).to_numpy() & p["price"].notna().to_numpy())
    chosen = rng.choice(eligible, n, replace=False)
    med = p.groupby("category")["price"].transform("median").to_numpy()
    factor = {"above_peers": above, "below_peers": below}[kind]
    price = p["price"].to_numpy(np.float64).copy()
    price[chosen] = med[chosen] * factor
    p["price"] = price
    return p, p["item"].iloc[chosen].reset_index(drop=True)
