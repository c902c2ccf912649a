"""`ShopData`: the one data object every strategy is fitted on.

It holds the event log with internal indices, the id maps, and the optional item and user tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .idmap import IdMap
from .ragged import Ragged
from .schema import DEFAULT_WEIGHTS, INTERNAL_EVENT_DTYPES, Behaviour


def empty_events(n: int = 0) -> pd.DataFrame:
    """An event table of ``n`` rows with every internal column at its 'unknown' value."""
    cols = {}
    for name, dtype in INTERNAL_EVENT_DTYPES.items():
        fill = -1 if name in ("timestamp", "session_idx") else (np.nan if dtype.startswith("float") else 0)
        cols[name] = np.full(n, fill, dtype=dtype)
    cols["behaviour"][:] = int(Behaviour.INTERACTION)
    return pd.DataFrame(cols)


@dataclass(frozen=True)
class ShopData:
    """Events, items and users of a shop, with external ids mapped to contiguous int32 indices.

    Attributes
    ----------
    events : pandas.DataFrame
        One row per event, with the internal columns of
        :data:`shoprec.data.schema.INTERNAL_EVENT_DTYPES` (``user_idx``, ``item_idx``, ``behaviour``,
        ``timestamp`` in unix seconds or -1, ``session_idx`` or -1, ``quantity``, ``price``, ``rating``)
        and optionally the context columns ``scenario``, ``country``, ``device`` (categoricals).
        Rows are in the order of the source unless a split sorted them.
    users, items : IdMap
        External ids ↔ indices. Every index in ``events`` is valid for them; the maps may hold users or
        items without events (a catalogue item never bought, a registered user without history).
    sessions : IdMap or None
        Session ids, when the source has them.
    item_table : pandas.DataFrame or None
        Item attributes indexed by ``item_idx`` (columns of :data:`shoprec.data.schema.ITEM_COLUMNS`).
    user_table : pandas.DataFrame or None
        User attributes indexed by ``user_idx``.
    name : str
        A label used in reports.
    """

    events: pd.DataFrame
    users: IdMap
    items: IdMap
    sessions: IdMap | None = None
    item_table: pd.DataFrame | None = None
    user_table: pd.DataFrame | None = None
    name: str = "shop"
    meta: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in INTERNAL_EVENT_DTYPES if c not in self.events.columns]
        if missing:
            raise ValueError(f"events table lacks internal columns {missing}")
        if len(self.events):
            u = self.events["user_idx"].to_numpy()
            i = self.events["item_idx"].to_numpy()
            if u.min() < 0 or u.max() >= len(self.users):
                raise ValueError("user_idx out of range of the user id map")
            if i.min() < 0 or i.max() >= len(self.items):
                raise ValueError("item_idx out of range of the item id map")

    # ------------------------------------------------------------------ sizes
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_events(self) -> int:
        return len(self.events)

    @property
    def has_sessions(self) -> bool:
        """Whether any event carries a session id."""
        return self.sessions is not None and bool((self.events["session_idx"].to_numpy() >= 0).any())

    @property
    def has_order(self) -> bool:
        """Whether events carry an order (a timestamp or a position ≥ 0); LightGCN-style splits and
        MovieLens without timestamps do not, so their "sequences" are only the files' item order."""
        return bool((self.events["timestamp"].to_numpy() >= 0).any())

    def __repr__(self) -> str:
        return (f"ShopData(name={self.name!r}, n_users={self.n_users}, n_items={self.n_items}, "
                f"n_events={self.n_events})")

    # ------------------------------------------------------------- matrices
    def interactions(self, weights: Mapping[Behaviour, float] | None = None, *,
                     binary: bool = False, aggregate: str = "sum") -> sp.csr_matrix:
        """The users×items float32 CSR matrix of behaviour-weighted events.

        Parameters
        ----------
        weights : mapping Behaviour → float, optional
            Weight of each behaviour; defaults to :data:`DEFAULT_WEIGHTS` (view < cart < purchase).
            Events whose weight is 0 are left out.
        binary : bool
            Every kept (user, item) pair becomes 1.
        aggregate : ``"sum"`` or ``"max"``
            How repeated events of one pair combine.
        """
        w = self.behaviour_weights(weights)
        keep = w > 0
        rows = self.events["user_idx"].to_numpy()[keep]
        cols = self.events["item_idx"].to_numpy()[keep]
        data = w[keep]
        shape = (self.n_users, self.n_items)
        if aggregate == "max":
            key = rows.astype(np.int64) * self.n_items + cols
            order = np.lexsort((-data, key))
            first = np.ones(len(order), dtype=bool)
            first[1:] = key[order][1:] != key[order][:-1]
            sel = order[first]
            rows, cols, data = rows[sel], cols[sel], data[sel]
        elif aggregate != "sum":
            raise ValueError(f"aggregate must be 'sum' or 'max', not {aggregate!r}")
        m = sp.csr_matrix((data, (rows, cols)), shape=shape, dtype=np.float32)
        m.sum_duplicates()
        m.sort_indices()
        if binary:
            m.data[:] = 1.0
        return m

    def behaviour_weights(self, weights: Mapping[Behaviour, float] | None = None) -> np.ndarray:
        """The weight of every event (float32 array aligned with ``events``)."""
        table = np.zeros(max(int(b) for b in Behaviour) + 1, dtype=np.float32)
        for b, v in (DEFAULT_WEIGHTS if weights is None else weights).items():
            table[int(Behaviour(b) if not isinstance(b, str) else Behaviour.parse(b))] = v
        return table[self.events["behaviour"].to_numpy().astype(np.int64)]

    def item_popularity(self) -> np.ndarray:
        """Number of distinct users per item (int64, length n_items)."""
        m = self.interactions(binary=True)
        return np.asarray((m > 0).sum(axis=0)).ravel().astype(np.int64)

    def sequences(self, by: str = "user", *, behaviours: tuple[Behaviour, ...] | None = None) -> Ragged:
        """Item sequences in time order (source order breaks ties), one row per user or per session.

        ``by="session"`` needs ``session_idx``; events without a session are left out.
        """
        ev = self.events
        if behaviours is not None:
            ev = ev[ev["behaviour"].isin([int(b) for b in behaviours])]
        if by == "user":
            group, n = ev["user_idx"].to_numpy(), self.n_users
        elif by == "session":
            if self.sessions is None:
                raise ValueError(f"{self.name}: no session ids in this data")
            ev = ev[ev["session_idx"] >= 0]
            group, n = ev["session_idx"].to_numpy(), len(self.sessions)
        else:
            raise ValueError(f"by must be 'user' or 'session', not {by!r}")
        ts = ev["timestamp"].to_numpy()
        order = np.lexsort((np.arange(len(ev)), ts, group))
        return Ragged.from_groups(group[order], ev["item_idx"].to_numpy()[order], n)

    # -------------------------------------------------------------- subsets
    def with_events(self, events: pd.DataFrame, name: str | None = None) -> "ShopData":
        """Same id maps and tables, other events (a split side)."""
        return replace(self, events=events.reset_index(drop=True), name=name or self.name)

    def filter_events(self, mask: np.ndarray, name: str | None = None) -> "ShopData":
        return self.with_events(self.events[np.asarray(mask, dtype=bool)], name)

    # ------------------------------------------------------------ building
    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, name: str = "shop",
                   item_table: pd.DataFrame | None = None,
                   user_table: pd.DataFrame | None = None,
                   items: IdMap | None = None, users: IdMap | None = None) -> "ShopData":
        """Build from a frame of *validated* events with external ids.

        ``frame`` has ``user_id``, ``item_id`` and optionally the other columns of
        :data:`shoprec.data.schema.EVENT_COLUMNS` already in internal types (``behaviour`` as int codes,
        ``timestamp`` as int64 unix seconds). Use :mod:`shoprec.data.readers` to get there from files.
        ``item_table`` / ``user_table`` are indexed by external id; their ids are added to the maps.
        """
        item_ids = frame["item_id"].astype(str)
        user_ids = frame["user_id"].astype(str)
        if items is None:
            items = IdMap(pd.unique(pd.concat([item_ids, pd.Series(
                item_table.index.astype(str) if item_table is not None else [], dtype=object)])))
        if users is None:
            users = IdMap(pd.unique(pd.concat([user_ids, pd.Series(
                user_table.index.astype(str) if user_table is not None else [], dtype=object)])))
        events = empty_events(len(frame))
        events["user_idx"] = users.to_index(user_ids.to_numpy(dtype=object))
        events["item_idx"] = items.to_index(item_ids.to_numpy(dtype=object))
        sessions = None
        for col in ("behaviour", "timestamp", "quantity", "price", "rating"):
            if col in frame.columns:
                events[col] = frame[col].to_numpy().astype(INTERNAL_EVENT_DTYPES[col])
        if "session_id" in frame.columns:
            sessions, codes = IdMap.from_values(frame["session_id"].astype(str).to_numpy(dtype=object))
            events["session_idx"] = codes
        for col in ("scenario", "country", "device"):
            if col in frame.columns:
                events[col] = pd.Categorical(frame[col].to_numpy())
        it = _reindex_table(item_table, items)
        ut = _reindex_table(user_table, users)
        return cls(events=events, users=users, items=items, sessions=sessions, item_table=it,
                   user_table=ut, name=name)


def _reindex_table(table: pd.DataFrame | None, ids: IdMap) -> pd.DataFrame | None:
    if table is None:
        return None
    t = table.copy()
    t.index = t.index.astype(str)
    t = t[~t.index.duplicated(keep="last")]
    t = t.reindex(pd.Index(ids.external_ids, dtype=object))
    t.index = pd.RangeIndex(len(ids))
    return t


@dataclass(frozen=True)
class TrainTest:
    """A split given by the source files: two event sets over the same id maps."""

    train: ShopData
    test: ShopData
    name: str = "split"


@dataclass(frozen=True)
class SessionCases:
    """In-session next-item test cases given by the source: each ``prefixes[i]`` (item indices,
    oldest first) is followed by ``targets[i]``. ``train`` holds the training sessions."""

    train: ShopData
    prefixes: Ragged
    targets: np.ndarray
    name: str = "sessions"
