"""Cold-start evaluation splits: users the model has never seen, known only by their attributes.

* :func:`new_users` — split by user: a random share of the users is removed from training entirely;
  each is a query with no history and only its user-table attributes (gender, age, occupation of
  MovieLens-1M); relevant = all its items.
* :func:`first_visit` — customers whose first event comes after a temporal cut (Online Retail): the
  query knows the context of that first visit (country, time); relevant = the items bought in it.

Both give anonymous queries (``user_idx = -1``, no items, no basket, nothing excluded) whose
``Queries.context`` carries the attributes, as a cold-start strategy receives them in production.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import Behaviour, Ragged, ShopData
from ..data.schema import INTERNAL_EVENT_DTYPES
from ..strategies.base import Queries
from .splits import EvalTask, _rows_to_csr

#: Prefixes the readers give users made from a guest order or session (``guest:<InvoiceNo>`` in the
#: Online Retail adapter, ``session:<id>`` in the generic readers).
GUEST_PREFIXES = ("guest:", "session:")

_INTERNAL = tuple(INTERNAL_EVENT_DTYPES)


def _context_array(values: pd.Series | np.ndarray) -> np.ndarray:
    """One context column: int64 with -1 for missing integers, float64 with NaN for other numbers,
    object array of str with "" for missing text."""
    s = pd.Series(values).reset_index(drop=True)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.fillna(False).to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(s.dtype):
        f = s.astype("float64").to_numpy()
        finite = np.isfinite(f)
        if (f[finite] == np.round(f[finite])).all():
            return np.where(finite, f, -1).astype(np.int64)
        return f
    out = s.astype(object).where(s.notna(), "").astype(str).to_numpy(dtype=object)
    return out


def _positive_events(data: ShopData, behaviours: tuple[Behaviour, ...] | None) -> np.ndarray:
    """Mask of events that count as relevant: of ``behaviours``, or any positive-weight behaviour."""
    if behaviours is None:
        return data.behaviour_weights() > 0
    return data.events["behaviour"].isin([int(b) for b in behaviours]).to_numpy()


def new_users(data: ShopData, test_fraction: float = 0.1, seed: int = 0,
              attributes: tuple[str, ...] = ("gender", "age", "occupation"),
              behaviours: tuple[Behaviour, ...] | None = None) -> EvalTask:
    """Split by user: ``test_fraction`` of the users with events (chosen at random with ``seed``) are
    removed from training entirely and queried as new users.

    Each query has ``user_idx = -1``, no items and no basket, and ``context`` holds the user's
    ``attributes`` from ``data.user_table`` (text: "" when missing; integer codes: -1). Relevant = every
    item of the user's events of ``behaviours`` (default: every behaviour with a positive default
    weight, i.e. all but remove-from-cart and search). Nothing is excluded. Works without timestamps
    (MovieLens-1M here has none).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    table = data.user_table
    missing = [a for a in attributes if table is None or a not in table.columns]
    if missing:
        have = [] if table is None else list(table.columns)
        raise ValueError(f"{data.name}: new_users needs user_table columns {missing}; the user table has {have}")
    ev = data.events
    user = ev["user_idx"].to_numpy()
    active = np.flatnonzero(np.bincount(user, minlength=data.n_users) > 0)
    n_test = int(round(test_fraction * len(active)))
    if n_test == 0 or n_test == len(active):
        raise ValueError(f"{data.name}: test_fraction {test_fraction} of {len(active)} users leaves "
                         f"{n_test} test users; need at least one test and one training user")
    rng = np.random.default_rng(seed)
    test_users = np.sort(rng.choice(active, size=n_test, replace=False))
    is_test = np.zeros(data.n_users, dtype=bool)
    is_test[test_users] = True
    train = data.filter_events(~is_test[user], name=f"{data.name}-train")
    rel = ev[is_test[user] & _positive_events(data, behaviours)]
    users, inv = np.unique(rel["user_idx"].to_numpy(), return_inverse=True)
    relevant = _rows_to_csr(inv.ravel(), rel["item_idx"].to_numpy(), (len(users), data.n_items))
    context = {a: _context_array(table[a].iloc[users]) for a in attributes}
    n = len(users)
    q = Queries(np.full(n, -1, np.int32), Ragged.empty(n), np.full(n, -1, np.int32), Ragged.empty(n),
                context=context)
    return EvalTask(f"{data.name}-new-users", train, q, relevant, None,
                    protocol=f"split by user, new users given only {', '.join(attributes) or 'nothing'} "
                             f"({test_fraction:.0%} of users, seed {seed}; their events removed from training); "
                             "relevant = all their items; full ranking, nothing excluded",
                    meta={"test_users": users.astype(np.int32), "seed": seed})


def first_visit(data: ShopData, cut: int | None = None, test_fraction: float = 0.1,
                attributes: tuple[str, ...] = ("country",),
                behaviours: tuple[Behaviour, ...] = (Behaviour.PURCHASE,),
                include_guests: bool = False) -> EvalTask:
    """First visits of new customers after a temporal cut.

    Training = every event before ``cut`` (unix seconds; default: the time that leaves
    ``test_fraction`` of the events after it). Users whose first event is at or after the cut are
    queried (users whose external id starts with one of :data:`GUEST_PREFIXES`, one-off guest orders,
    only with ``include_guests``): ``user_idx = -1``, no items, and ``context`` = the ``attributes`` of
    their first event (event columns such as ``country``; else user-table columns), its ``timestamp``,
    ``hour`` (0–23, UTC) and ``weekday`` (0 = Monday). Relevant = the distinct items of ``behaviours``
    in their first basket: the session of their first event, or — without a session id — their events
    of the same calendar day. Users whose first basket holds no such item are not queried. Nothing is
    excluded.
    """
    ev = data.events
    ts = ev["timestamp"].to_numpy()
    if len(ts) == 0 or (ts < 0).any():
        raise ValueError(f"{data.name}: first_visit needs a timestamp on every event")
    for a in attributes:
        in_events = a in ev.columns and a not in _INTERNAL
        in_users = data.user_table is not None and a in data.user_table.columns
        if not (in_events or in_users):
            raise ValueError(f"{data.name}: attribute {a!r} is neither an event column nor a user_table column; "
                             f"event columns: {[c for c in ev.columns if c not in _INTERNAL]}")
    if cut is None:
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        cut = int(np.quantile(ts, 1.0 - test_fraction))
    train = data.filter_events(ts < cut, name=f"{data.name}-train")

    user = ev["user_idx"].to_numpy()
    order = np.lexsort((np.arange(len(ev)), ts, user))  # by user, time, source order
    u_sorted = user[order]
    is_first = np.ones(len(order), dtype=bool)
    is_first[1:] = u_sorted[1:] != u_sorted[:-1]
    first_row = order[is_first]  # each user's first event (row of ev)
    first_user = user[first_row]
    new = ts[first_row] >= cut
    if not include_guests:
        ext = pd.Series(data.users.external_ids[first_user], dtype=object).astype(str)
        new &= ~ext.str.startswith(GUEST_PREFIXES).to_numpy()
    first_row, first_user = first_row[new], first_user[new]

    # the first basket: the first event's session, else the same user and calendar day
    first_of = np.full(data.n_users, -1, dtype=np.int64)
    first_of[first_user] = first_row
    cand = np.flatnonzero((first_of[user] >= 0) & _positive_events(data, behaviours))
    f = first_of[user[cand]]
    sess = ev["session_idx"].to_numpy()
    same_session = (sess[f] >= 0) & (sess[cand] == sess[f])
    same_day = (sess[f] < 0) & (ts[cand] // 86_400 == ts[f] // 86_400)
    cand = cand[same_session | same_day]

    users, inv = np.unique(user[cand], return_inverse=True)
    relevant = _rows_to_csr(inv.ravel(), ev["item_idx"].to_numpy()[cand], (len(users), data.n_items))
    rows = first_of[users]
    context: dict[str, np.ndarray] = {}
    for a in attributes:
        if a in ev.columns and a not in _INTERNAL:
            context[a] = _context_array(ev[a].iloc[rows])
        else:
            context[a] = _context_array(data.user_table[a].iloc[users])
    t0 = ts[rows].astype(np.int64)
    context["timestamp"] = t0
    context["hour"] = (t0 // 3600) % 24
    context["weekday"] = (t0 // 86_400 + 3) % 7  # 1970-01-01 was a Thursday
    n = len(users)
    q = Queries(np.full(n, -1, np.int32), Ragged.empty(n), np.full(n, -1, np.int32), Ragged.empty(n),
                context=context)
    what = ", ".join([*attributes, "time"])
    return EvalTask(f"{data.name}-first-visit", train, q, relevant, None,
                    protocol=f"new customers whose first event is after the temporal cut at "
                             f"{pd.Timestamp(cut, unit='s')}, given only {what} of their first visit; relevant = "
                             f"the {'/'.join(b.name.lower() for b in behaviours)} items of their first basket; "
                             "full ranking, nothing excluded",
                    meta={"cut": cut, "test_users": users.astype(np.int32)})
