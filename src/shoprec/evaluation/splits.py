"""Evaluation tasks and the splits that make them.

An :class:`EvalTask` is everything an offline evaluation needs: the training data, one query per
test case, the relevant items of each query, and what must be excluded from the ranking. Splits:

* :func:`from_train_test` — the split given by the files (LightGCN format): every user with a test
  item is a query, training items are excluded (all-ranking protocol of LightGCN / BARS).
* :func:`leave_one_out` — time-ordered user sequences: last item = test, second-to-last = validation
  (SASRec protocol); history items are excluded.
* :func:`temporal_split` — a global cut in time; users' later events are the test.
* :func:`session_next_item` — in-session next item from given prefixes (SR-GNN protocol); nothing is
  excluded, since repeat views are legitimate targets.
* :func:`basket_hold_one_out` — hide one item of each test basket and recommend from the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data import Behaviour, Ragged, SessionCases, ShopData, TrainTest
from ..strategies.base import Queries


@dataclass(frozen=True)
class EvalTask:
    """Training data plus test queries with their relevant items (one row per query)."""

    name: str
    train: ShopData
    queries: Queries
    relevant: sp.csr_matrix
    exclude: sp.csr_matrix | None
    protocol: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.relevant.shape != (len(self.queries), self.train.n_items):
            raise ValueError(f"relevant has shape {self.relevant.shape}, expected "
                             f"({len(self.queries)}, {self.train.n_items})")

    @property
    def n_queries(self) -> int:
        return len(self.queries)


def _rows_to_csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def from_train_test(split: TrainTest, *, exclude_train: bool = True) -> EvalTask:
    """All-ranking evaluation of a given split: each user with a test item is one query."""
    train, test = split.train, split.test
    rel_all = test.interactions(binary=True)
    users = np.flatnonzero(np.diff(rel_all.indptr) > 0).astype(np.int32)
    relevant = rel_all[users]
    exclude = train.interactions(binary=True)[users] if exclude_train else None
    return EvalTask(split.name, train, Queries.for_users(users), relevant, exclude,
                    protocol="split given by the files; every user with a test item; full ranking"
                             + (", training items excluded" if exclude_train else ""))


def leave_one_out(data: ShopData, *, validation: bool = False, min_events: int = 3) -> EvalTask:
    """Leave-one-out on time-ordered user sequences (SASRec protocol).

    ``validation=False``: train on all but the last event of each user, test on the last.
    ``validation=True``: train on all but the last two, test on the second-to-last.
    Users with fewer than ``min_events`` events stay wholly in training and are not queried.
    Ties in time keep the source order.
    """
    ev = data.events
    order = np.lexsort((np.arange(len(ev)), ev["timestamp"].to_numpy(), ev["user_idx"].to_numpy()))
    users_sorted = ev["user_idx"].to_numpy()[order]
    counts = np.bincount(users_sorted, minlength=data.n_users)
    # position from the end of each user's sequence: 0 = last
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos_from_end = counts[users_sorted] - 1 - (np.arange(len(order)) - starts[users_sorted])
    eligible = counts[users_sorted] >= min_events
    held = 1 if validation else 0
    test_mask_sorted = eligible & (pos_from_end == held)
    train_mask_sorted = ~eligible | (pos_from_end > held)
    train_idx = np.sort(order[train_mask_sorted])
    test_idx = order[test_mask_sorted]
    train = data.with_events(ev.iloc[train_idx], name=f"{data.name}-train")
    test_users = ev["user_idx"].to_numpy()[test_idx]
    test_items = ev["item_idx"].to_numpy()[test_idx]
    order_u = np.argsort(test_users, kind="stable")
    users = test_users[order_u].astype(np.int32)
    relevant = _rows_to_csr(np.arange(len(users)), test_items[order_u], (len(users), data.n_items))
    exclude = train.interactions(binary=True)[users]
    side = "validation (second-to-last)" if validation else "test (last)"
    return EvalTask(f"{data.name}-loo", train, Queries.for_users(users), relevant, exclude,
                    protocol=f"leave-one-out, {side} item per user, full ranking over all items, "
                             "history items excluded")


def temporal_split(data: ShopData, *, cut: int | None = None, test_fraction: float = 0.1,
                   behaviours: tuple[Behaviour, ...] | None = (Behaviour.PURCHASE,),
                   exclude_train: bool = False, known_users_only: bool = True) -> EvalTask:
    """Global temporal cut: events before ``cut`` (unix seconds; default: the time that leaves
    ``test_fraction`` of events after it) train; each user's later events of ``behaviours`` are
    the relevant items. New users (no training events) are queries with an empty history unless
    ``known_users_only``."""
    ev = data.events
    ts = ev["timestamp"].to_numpy()
    if (ts < 0).any():
        raise ValueError(f"{data.name}: temporal split needs a timestamp on every event")
    if cut is None:
        cut = int(np.quantile(ts, 1.0 - test_fraction))
    train_mask = ts < cut
    train = data.filter_events(train_mask, name=f"{data.name}-train")
    test = ev[~train_mask]
    if behaviours is not None:
        test = test[test["behaviour"].isin([int(b) for b in behaviours])]
    seen = np.zeros(data.n_users, dtype=bool)
    seen[train.events["user_idx"].to_numpy()] = True
    if known_users_only:
        test = test[seen[test["user_idx"].to_numpy()]]
    users, inv = np.unique(test["user_idx"].to_numpy(), return_inverse=True)
    relevant = _rows_to_csr(inv, test["item_idx"].to_numpy(), (len(users), data.n_items))
    q = Queries.for_users(np.where(seen[users], users, -1).astype(np.int32))
    exclude = train.interactions(binary=True)[users] if exclude_train else None
    return EvalTask(f"{data.name}-temporal", train, q, relevant, exclude,
                    protocol=f"global temporal cut at {pd.Timestamp(cut, unit='s')}; "
                             f"test = later events of {[b.name.lower() for b in behaviours or []] or 'any kind'}",
                    meta={"cut": cut})


def session_next_item(cases: SessionCases) -> EvalTask:
    """Next item of each given session prefix (SR-GNN / GCE-GNN protocol); nothing excluded."""
    n = len(cases.prefixes)
    relevant = _rows_to_csr(np.arange(n), cases.targets, (n, cases.train.n_items))
    return EvalTask(cases.name, cases.train, Queries.for_sessions(cases.prefixes), relevant, None,
                    protocol="in-session next item of every test prefix, full ranking, "
                             "prefix items not excluded")


def basket_hold_one_out(data: ShopData, *, cut: int | None = None, test_fraction: float = 0.1,
                        seed: int = 0) -> EvalTask:
    """Baskets (sessions) that start after the temporal ``cut`` are test baskets: one random distinct
    item of each is hidden, the rest is the query's basket; training = events before the cut.
    Baskets with fewer than two distinct items are not queried."""
    if data.sessions is None:
        raise ValueError(f"{data.name}: basket split needs session (basket) ids")
    ev = data.events
    ts = ev["timestamp"].to_numpy()
    if cut is None:
        cut = int(np.quantile(ts, 1.0 - test_fraction))
    train = data.filter_events(ts < cut, name=f"{data.name}-train")
    test = ev[(ts >= cut) & (ev["session_idx"] >= 0) & (ev["behaviour"] == int(Behaviour.PURCHASE))]
    test = test.drop_duplicates(["session_idx", "item_idx"])
    sizes = test.groupby("session_idx")["item_idx"].transform("size").to_numpy()
    test = test[sizes >= 2]
    sess, inv = np.unique(test["session_idx"].to_numpy(), return_inverse=True)
    rng = np.random.default_rng(seed)
    pick_rank = rng.random(len(test))
    # hide the item with the smallest random key in each basket
    order = np.lexsort((pick_rank, inv))
    first = np.ones(len(order), dtype=bool)
    first[1:] = inv[order][1:] != inv[order][:-1]
    hidden = np.zeros(len(test), dtype=bool)
    hidden[order[first]] = True
    items = test["item_idx"].to_numpy()
    basket = Ragged.from_groups(inv[~hidden], items[~hidden], len(sess))
    relevant = _rows_to_csr(inv[hidden], items[hidden], (len(sess), data.n_items))
    user_of = test.groupby(inv)["user_idx"].first().to_numpy()
    seen = np.zeros(data.n_users, dtype=bool)
    seen[train.events["user_idx"].to_numpy()] = True
    users = np.where(seen[user_of], user_of, -1).astype(np.int32)
    q = Queries(users, Ragged.empty(len(sess)), np.full(len(sess), -1, np.int32), basket)
    exclude = basket.to_csr(data.n_items, binary=True)
    return EvalTask(f"{data.name}-basket", train, q, relevant, exclude,
                    protocol="baskets after a temporal cut; one item hidden per basket, the rest "
                             "given; basket items excluded")


def next_basket(data: ShopData, *, cut: int | None = None, test_fraction: float = 0.1) -> EvalTask:
    """Post-purchase: for every known customer with a basket (session of purchases) after the temporal
    ``cut``, the items of their first basket after the cut are relevant; the query is the customer
    with their history before the cut and their last basket before the cut as context (the order just
    placed). Training = events before the cut. Repurchases count: nothing is excluded."""
    if data.sessions is None:
        raise ValueError(f"{data.name}: next-basket split needs session (basket) ids")
    ev = data.events
    ts = ev["timestamp"].to_numpy()
    if cut is None:
        cut = int(np.quantile(ts, 1.0 - test_fraction))
    train = data.filter_events(ts < cut, name=f"{data.name}-train")
    buy = ev["behaviour"].to_numpy() == int(Behaviour.PURCHASE)
    seen = np.zeros(data.n_users, dtype=bool)
    seen[train.events["user_idx"].to_numpy()] = True
    after = ev[(ts >= cut) & buy & (ev["session_idx"].to_numpy() >= 0) & seen[ev["user_idx"].to_numpy()]]
    after = after.sort_values(["user_idx", "timestamp", "session_idx"], kind="stable")
    first_sess = after.groupby("user_idx")["session_idx"].transform("first")
    after = after[after["session_idx"] == first_sess]
    users, inv = np.unique(after["user_idx"].to_numpy(), return_inverse=True)
    relevant = _rows_to_csr(inv, after["item_idx"].to_numpy(), (len(users), data.n_items))
    before = train.events[train.events["behaviour"].to_numpy() == int(Behaviour.PURCHASE)]
    before = before[before["session_idx"].to_numpy() >= 0].sort_values(["user_idx", "timestamp"], kind="stable")
    last_sess = before.groupby("user_idx")["session_idx"].last()
    last_of = np.full(data.n_users, -1, np.int64)
    last_of[last_sess.index.to_numpy()] = last_sess.to_numpy()
    lb = before[before["session_idx"].to_numpy() == last_of[before["user_idx"].to_numpy()]]
    lb = lb.drop_duplicates(["user_idx", "item_idx"])
    pos = np.searchsorted(users, lb["user_idx"].to_numpy())
    ok = (pos < len(users)) & (users[np.minimum(pos, len(users) - 1)] == lb["user_idx"].to_numpy())
    order = np.argsort(pos[ok], kind="stable")
    last_basket = Ragged.from_groups(pos[ok][order], lb["item_idx"].to_numpy()[ok][order], len(users))
    q = Queries(users.astype(np.int32), last_basket, np.full(len(users), -1, np.int32), Ragged.empty(len(users)),
                context={"timestamp": np.full(len(users), float(cut))})
    return EvalTask(f"{data.name}-next-basket", train, q, relevant, None,
                    protocol=f"customers' first basket after the temporal cut {pd.Timestamp(cut, unit='s')}; "
                             "history before the cut, the last order as context; repurchases count",
                    meta={"cut": cut})
