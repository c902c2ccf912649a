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
                 above: float = 5.0, below: float = 0.15, alike: tuple[str, ...] = ("weight_g", "volume_cm3"),
                 k: int = 10) -> tuple[pd.DataFrame, pd.Series]:
    """(prices with ``n`` items repriced to ``above`` × (``kind`` above_peers: gouging) or ``below`` ×
    (below_peers: dumping) what their alike peers cost, their item ids).

    The items are drawn (seeded) among those of categories with ≥ ``min_peers`` items; an item's
    *alike peers* are the ``k`` other items of its category nearest to it in log(1 + x) of the
    ``alike`` columns (each scaled by its spread over all items; without those columns, the whole
    category), and what they cost is their median price (taken before any item is repriced). A fault
    is relative to what the item should cost: 5 × the category's median would be a fair price for an
    item five times as heavy as the typical one, and no fault at all."""
    rng = np.random.default_rng(seed)
    p = prices.copy()
    size = p.groupby("category")["item"].transform("size")
    eligible = np.flatnonzero((size >= min_peers).to_numpy() & p["price"].notna().to_numpy())
    chosen = rng.choice(eligible, n, replace=False)
    price = p["price"].to_numpy(np.float64).copy()
    cols = [a for a in alike if a in p.columns]
    x = np.log1p(np.column_stack([pd.to_numeric(p[a], errors="coerce").to_numpy(np.float64) for a in cols])
                 if cols else np.zeros((len(p), 0)))
    x = (x - np.nanmean(x, 0)) / np.where(np.nanstd(x, 0) > 0, np.nanstd(x, 0), 1.0)
    cat = p["category"].to_numpy()
    members = p.groupby("category").indices
    peer_price = np.empty(n)
    for j, i in enumerate(chosen):
        others = members[cat[i]]
        others = others[(others != i) & np.isfinite(price[others])]
        dist = np.nansum((x[others] - x[i]) ** 2, 1) if cols else np.zeros(len(others))
        peer_price[j] = np.median(price[others[np.argsort(dist, kind="stable")[:k]]])
    factor = {"above_peers": above, "below_peers": below}[kind]
    new = price.copy()
    new[chosen] = peer_price * factor
    p["price"] = new
    return p, p["item"].iloc[chosen].reset_index(drop=True)


#: the simulated bots of ``inject_bots`` (each a visit of its own, with a fresh id)
BOT_KINDS = ("crawler", "slow_crawler", "cart_stuffer", "click_farm")


def inject_bots(events: pd.DataFrame, share: float, seed: int, n_targets: int = 20,
                kinds: tuple[str, ...] = BOT_KINDS) -> tuple[pd.DataFrame, pd.Series]:
    """(``events`` (columns visit, item, behaviour, timestamp, optionally account) plus bot visits
    numbering ``share`` × the real visits, an equal part of each of ``kinds``, each from an account of
    its own used once; per visit id its kind, "" for the real ones).

    * ``crawler``: 20–200 views of distinct random items, a page every ~1.5 s (log-normal gaps, CV .5);
    * ``slow_crawler``: 20–100 views of distinct random items every 20–60 s, gaps with CV .1 (a
      scheduler, polite to the server);
    * ``cart_stuffer``: 10–40 add-to-carts of random items, ~15 s apart (exponential), no purchase;
    * ``click_farm``: 3–6 views of items drawn from ``n_targets`` fixed target items, ~20 s apart
      (exponential): each visit alone looks like a person's;
    * ``brushing`` (only where the log has accounts that come back, i.e. an ``account`` column): an
      order of 8–16 distinct items of the ``n_targets`` targets, each line a purchase, ~20 s apart.

    Bots start at uniformly random times within the log's span; items come from the log's items."""
    from shoprec.data import Behaviour

    rng = np.random.default_rng(seed)
    real_visits = events["visit"].unique()
    n_bots = int(round(share * len(real_visits) / (1 - share)))
    items = events["item"].unique()
    targets = rng.choice(items, min(n_targets, len(items)), replace=False)
    t_lo, t_hi = float(events["timestamp"].min()), float(events["timestamp"].max())
    V, C, P = int(Behaviour.VIEW), int(Behaviour.ADD_TO_CART), int(Behaviour.PURCHASE)
    parts, truth_kinds = [], {}
    for b in range(n_bots):
        kind = kinds[b % len(kinds)]
        if kind == "crawler":
            n = int(rng.integers(20, 201))
            gaps = rng.lognormal(np.log(1.5) - 0.5 * np.log(1.25), np.sqrt(np.log(1.25)), n - 1)
            its, beh = rng.choice(items, n, replace=len(items) < n), V
        elif kind == "slow_crawler":
            n = int(rng.integers(20, 101))
            gaps = rng.uniform(20, 60) * rng.normal(1.0, 0.1, n - 1).clip(0.5)
            its, beh = rng.choice(items, n, replace=len(items) < n), V
        elif kind == "cart_stuffer":
            n = int(rng.integers(10, 41))
            gaps = rng.exponential(15.0, n - 1)
            its, beh = rng.choice(items, n), C
        elif kind == "click_farm":
            n = int(rng.integers(3, 7))
            gaps = rng.exponential(20.0, n - 1)
            its, beh = rng.choice(targets, n), V
        elif kind == "brushing":
            n = int(rng.integers(8, 17))
            gaps = rng.exponential(20.0, n - 1)
            its, beh = rng.choice(targets, min(n, len(targets)), replace=False), P
            gaps = gaps[: len(its) - 1]
        else:
            raise ValueError(f"unknown bot kind {kind!r}")
        vid = f"bot-{seed}-{b}"
        ts = rng.uniform(t_lo, t_hi) + np.concatenate([[0.0], np.cumsum(gaps)])
        parts.append(pd.DataFrame({"visit": vid, "item": its, "behaviour": beh, "timestamp": ts, "account": vid}))
        truth_kinds[vid] = kind
    cols = ["visit", "item", "behaviour", "timestamp"] + (["account"] if "account" in events.columns else [])
    out = pd.concat([events[cols]] + [p[cols] for p in parts], ignore_index=True)
    truth = pd.Series({**{v: "" for v in real_visits}, **truth_kinds})
    return out, truth


def push_attack(train, share: float, seed: int, n_targets: int = 20, days: float = 30.0, mode: str = "orders",
                n_anchors: int = 5):
    """(``train`` (a ShopData) plus attack visits numbering ``share`` × its sessions, the target item
    indices, the anchor item indices). The ``n_targets`` targets are drawn (seeded) among the 200
    items with the fewest buyers (at least one); the ``n_anchors`` anchors among the 50 most bought,
    whose item pages the attack means to take over. Each attack visit is a new account and session
    (used once) at a uniformly random time in the last ``days`` of the data, its events ~20 s apart:

    * ``mode="orders"`` (brushing, the default): an order of 8–16 distinct targets and one anchor,
      each line a purchase (an order the size of a real one: the demo shop's median is 14 lines);
    * ``mode="views"`` (a click farm): views of 2–5 targets and one anchor, then the first one carted.
    """
    from shoprec.data import Behaviour
    from shoprec.data.dataset import ShopData
    from shoprec.data.idmap import IdMap

    rng = np.random.default_rng(seed)
    ev = train.events
    pop = train.item_popularity()
    candidates = np.flatnonzero(pop > 0)
    candidates = candidates[np.argsort(pop[candidates], kind="stable")][: max(200, n_targets)]
    targets = rng.choice(candidates, n_targets, replace=False)
    n_sessions = int(ev["session_idx"].max()) + 1 if (ev["session_idx"] >= 0).any() else train.n_users
    n_farm = int(round(share * n_sessions / (1 - share)))
    t1 = float(ev["timestamp"].max())
    rows = []
    popular = rng.choice(np.argsort(-pop, kind="stable")[:50], n_anchors, replace=False)
    for v in range(n_farm):
        # the targets, riding along with one of the most popular items ("also viewed" hijack)
        if mode == "views":
            n = int(rng.integers(3, 7))
            items = np.r_[rng.choice(targets, n - 1), rng.choice(popular)]
        else:                       # an order the size of a real one (median 14 lines): 8–16 targets
            n = int(rng.integers(9, 18))
            items = np.r_[rng.choice(targets, n - 1, replace=False) if n - 1 <= n_targets else
                          rng.choice(targets, n - 1), rng.choice(popular)]
        rng.shuffle(items)
        ts = rng.uniform(t1 - days * 86_400, t1) + np.concatenate([[0.0], np.cumsum(rng.exponential(20.0, n))])
        if mode == "views":
            beh = [int(Behaviour.VIEW)] * n + [int(Behaviour.ADD_TO_CART)]
            its = list(items) + [items[0]]
        else:                       # brushing: a one-order account buys what it pushes
            beh = [int(Behaviour.PURCHASE)] * n
            its = list(items)
        for it, b, t in zip(its, beh, ts):
            rows.append((train.n_users + v, int(it), b, int(t), n_sessions + v))
    extra = pd.DataFrame(rows, columns=["user_idx", "item_idx", "behaviour", "timestamp", "session_idx"])
    for c in ev.columns:
        if c not in extra.columns:
            extra[c] = ev[c].iloc[:0].reindex(range(len(extra))).to_numpy() if len(ev) else np.nan
        extra[c] = extra[c].astype(ev[c].dtype) if ev[c].dtype.kind in "iuf" and not extra[c].isna().any() else extra[c]
    events = pd.concat([ev, extra[ev.columns]], ignore_index=True)
    for c in ("user_idx", "item_idx", "session_idx", "behaviour"):
        events[c] = events[c].astype(ev[c].dtype)
    users = IdMap(list(train.users.external_ids) + [f"farm-{seed}-{v}" for v in range(n_farm)])
    sessions = IdMap(list(train.sessions.external_ids) + [f"farm-{seed}-{v}" for v in range(n_farm)]) \
        if train.sessions is not None else None
    user_table = train.user_table
    return ShopData(events, users, train.items, sessions, train.item_table, user_table,
                    name=f"{train.name}-attacked"), targets, popular
