"""The strategy protocol: ``fit(data) -> self``, ``recommend(queries, k, exclude) -> Candidates``.

Every candidate strategy (popularity, item-kNN, EASE, ALS, session-kNN, …) subclasses
:class:`Strategy`, declares a frozen pydantic :class:`StrategyConfig`, and implements

* ``_fit(data)`` — learn from a :class:`~shoprec.data.ShopData`, storing learned state in attributes
  ending in ``_``;
* ``_score(queries)`` — a dense float32 (n, n_items) score block for a batch of queries
  (``-inf`` = cannot recommend);
* ``_state()`` / ``_set_state()`` — the learned arrays, for save/load without pickle.

The public methods do the bookkeeping: the history of each query, batching to bound memory,
exclusion, the shared top-k kernel, saving.
"""

from __future__ import annotations

import importlib
import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping, Sequence, TypeVar

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from ..data import Behaviour, Ragged, ShopData
from ..exceptions import ArtifactError, ConfigError, NotFittedError
from .topk import mask_scores, topk

S = TypeVar("S", bound="Strategy")

ARTIFACT_FORMAT = 1


# ---------------------------------------------------------------------------- queries
@dataclass(frozen=True)
class Queries:
    """A batch of recommendation requests: what each caller knows, as internal indices.

    Attributes
    ----------
    user_idx : int32 (n,)
        Known user, or -1 for an unknown user / anonymous session.
    items : Ragged
        Items the caller saw this user interact with and that the model may not know yet (the
        session so far, oldest first). For a known user it adds to the training history.
    weights : float32 array aligned with ``items.values``, optional
        Behaviour weight of each of those events (default 1).
    current_item : int32 (n,)
        The item on the page (item page), or -1.
    basket : Ragged
        Items in the cart.
    context : mapping of str to array (n,), optional
        What else the page knows, one value per query: ``country``, ``device`` (str, "" = unknown),
        ``query`` (search text), ``timestamp`` (unix seconds, -1 = unknown), and user attributes such
        as ``gender``, ``age``, ``occupation`` for users the model does not know. Strategies read
        the keys they understand and ignore the rest.
    """

    user_idx: np.ndarray
    items: Ragged
    current_item: np.ndarray
    basket: Ragged
    weights: np.ndarray | None = None
    context: Mapping[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        n = len(self.user_idx)
        if len(self.items) != n or len(self.current_item) != n or len(self.basket) != n:
            raise ValueError("all query fields must have one row per query")
        for key, value in (self.context or {}).items():
            if len(value) != n:
                raise ValueError(f"context[{key!r}] has {len(value)} values for {n} queries")

    def get_context(self, key: str) -> np.ndarray | None:
        """The per-query values of one context key, or None when the batch does not carry it."""
        return None if self.context is None else self.context.get(key)

    def __len__(self) -> int:
        return len(self.user_idx)

    @classmethod
    def for_users(cls, user_idx: Sequence[int] | np.ndarray) -> "Queries":
        """Queries for known users with nothing but their training history."""
        u = np.asarray(user_idx, dtype=np.int32)
        return cls(u, Ragged.empty(len(u)), np.full(len(u), -1, np.int32), Ragged.empty(len(u)))

    @classmethod
    def for_sessions(cls, sessions: Ragged, user_idx: np.ndarray | None = None) -> "Queries":
        """Queries from sessions in progress (the last item is the current one)."""
        n = len(sessions)
        u = np.full(n, -1, np.int32) if user_idx is None else np.asarray(user_idx, np.int32)
        return cls(u, sessions, sessions.last(), Ragged.empty(n))

    def within(self, n_items: int) -> "Queries":
        """These queries without the item indices ``>= n_items`` (items added to the catalogue after a
        strategy was fitted, which it cannot know): they leave the session, basket and current item."""
        def clip(r: Ragged, w: np.ndarray | None) -> tuple[Ragged, np.ndarray | None]:
            keep = r.values < n_items
            if keep.all():
                return r, w
            rows = r.rows()[keep]
            indptr = np.zeros(len(r) + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows, minlength=len(r)), out=indptr[1:])
            return Ragged(indptr, r.values[keep]), None if w is None else w[keep]

        items, w = clip(self.items, self.weights)
        basket, _ = clip(self.basket, None)
        cur = np.where(self.current_item < n_items, self.current_item, -1).astype(np.int32)
        if items is self.items and basket is self.basket and (cur == self.current_item).all():
            return self
        return Queries(self.user_idx, items, cur, basket, w, self.context)

    def take(self, idx: np.ndarray) -> "Queries":
        idx = np.asarray(idx, dtype=np.int64)
        w = None
        if self.weights is not None:
            w = Ragged(self.items.indptr, self.weights).take(idx).values
        ctx = None if self.context is None else {k: np.asarray(v)[idx] for k, v in self.context.items()}
        return Queries(self.user_idx[idx], self.items.take(idx), self.current_item[idx],
                       self.basket.take(idx), w, ctx)


@dataclass(frozen=True)
class LiveEvents:
    """Events that arrived after a strategy was fitted (a live service's stream), oldest first, in
    internal indices: what :meth:`Strategy.observe` learns from.

    Attributes
    ----------
    user_idx : int32 (n,)   the user, -1 for a visitor the model does not know
    item_idx : int32 (n,)
    behaviour : int8 (n,)   :class:`~shoprec.data.Behaviour` codes
    timestamp : float64 (n,) unix seconds
    context : Ragged        per event, the visitor's recent items before it (oldest first): the
                            session the event co-occurs with
    price : float64 (n,) or None  the price the event names (NaN where none), for the price checks
    """

    user_idx: np.ndarray
    item_idx: np.ndarray
    behaviour: np.ndarray
    timestamp: np.ndarray
    context: Ragged
    price: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.item_idx)

    def weights(self, table: Mapping[Behaviour, float] | None = None) -> np.ndarray:
        """Behaviour weight of each event (default: view < cart < purchase)."""
        from ..data.schema import DEFAULT_WEIGHTS

        table = DEFAULT_WEIGHTS if table is None else table
        lut = np.zeros(max(int(b) for b in Behaviour) + 1, dtype=np.float32)
        for b, w in table.items():
            lut[int(b)] = w
        return lut[self.behaviour.astype(np.int64)]


@dataclass(frozen=True)
class Candidates:
    """Top-k answer for a batch: ``item_idx`` int32 (n, k), -1 padded; ``scores`` float32 (n, k)."""

    item_idx: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.item_idx)


# ----------------------------------------------------------------------------- config
class StrategyConfig(BaseModel):
    """Base of every strategy config: frozen, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    behaviour_weights: dict[str, float] | None = Field(
        default=None,
        description="Weight per behaviour name in the user×item matrix; default view<cart<purchase.",
    )
    binary: bool = Field(default=False, description="Count each (user, item) pair once.")

    def weights(self) -> dict[Behaviour, float] | None:
        if self.behaviour_weights is None:
            return None
        return {Behaviour.parse(k): v for k, v in self.behaviour_weights.items()}


# --------------------------------------------------------------------------- registry
#: The shipped strategies: short name → module of this package that defines it. A module is imported
#: the first time one of its strategies is asked for, so that `import shoprec.strategies` (and every
#: command line call) does not pay for scipy.linalg, torch glue or the like of strategies it never uses.
BUILTIN_STRATEGIES: dict[str, str] = {
    "popularity": "popularity", "item_knn": "item_knn", "ease": "ease", "als": "factorization",
    "bpr": "factorization", "linear_filter": "linear_filter", "session_knn": "session_knn",
    "sequential": "sequential", "sasrec": "sasrec", "content_tfidf": "content", "content_embedding": "content",
    "fbt": "fbt", "cold_start": "cold_start",
}


class StrategyRegistry(Mapping[str, type["Strategy"]]):
    """Short name → strategy class. The shipped strategies are known by name from the start and
    imported on first lookup; :func:`register` adds any other (a plug-in's). ``name in STRATEGIES``,
    ``len`` and iterating over the names import nothing; ``STRATEGIES[name]``, ``.get``, ``.items()``
    and ``.values()`` import what they return."""

    def __init__(self, lazy: Mapping[str, str]) -> None:
        self._lazy = {name: f"{__package__}.{module}" for name, module in lazy.items()}
        self._classes: dict[str, type[Strategy]] = {}

    def __getitem__(self, name: str) -> type["Strategy"]:
        cls = self._classes.get(name)
        if cls is None:
            module = self._lazy.get(name)
            if module is None:
                raise KeyError(name)
            importlib.import_module(module)  # its @register fills in the class
            cls = self._classes.get(name)
            if cls is None:
                raise ImportError(f"{module} does not register a strategy named {name!r}")
        return cls

    def __contains__(self, name: object) -> bool:
        return name in self._classes or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        yield from self._lazy
        yield from (n for n in self._classes if n not in self._lazy)

    def __len__(self) -> int:
        return len(self._lazy) + sum(1 for n in self._classes if n not in self._lazy)

    def module_of(self, name: str) -> str | None:
        """The module a shipped strategy lives in (None for registered plug-ins and unknown names)."""
        return self._lazy.get(name)

    def add(self, cls: type["Strategy"]) -> None:
        known = self._classes.get(cls.name)
        lazy = self._lazy.get(cls.name)
        if (known is not None and known is not cls) or (known is None and lazy is not None
                                                           and cls.__module__ != lazy):
            raise ValueError(f"strategy name {cls.name!r} registered twice")
        self._classes[cls.name] = cls

    def __repr__(self) -> str:
        return f"StrategyRegistry({sorted(self)})"


STRATEGIES = StrategyRegistry(BUILTIN_STRATEGIES)


def register(cls: type[S]) -> type[S]:
    """Class decorator: make a strategy known by its short ``name``."""
    STRATEGIES.add(cls)
    return cls


def make_strategy(name: str, **params: Any) -> "Strategy":
    """Build a registered strategy by its short name, validating the parameters."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}") from None
    try:
        return cls(cls.Config(**params))
    except ValueError as e:  # pydantic ValidationError is a ValueError
        raise ConfigError(f"strategy {name!r}: {e}") from None


# --------------------------------------------------------------------------- strategy
class Strategy(ABC):
    """Base class of all candidate strategies (see the module docstring)."""

    name: ClassVar[str]
    Config: ClassVar[type[StrategyConfig]] = StrategyConfig
    #: memory budget for one dense score block, in float32 cells
    block_cells: ClassVar[int] = 1 << 26

    def __init__(self, config: StrategyConfig | None = None, **params: Any) -> None:
        if config is not None and params:
            raise TypeError("pass either a config or keyword parameters, not both")
        self.config = config if config is not None else self.Config(**params)
        if not isinstance(self.config, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    # ------------------------------------------------------------------ fit
    def fit(self: S, data: ShopData) -> S:
        """Learn from ``data``; replaces everything learned before. Returns ``self``."""
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
            delattr(self, attr)
        start = self._fit_started = time.perf_counter()
        self.n_users_ = data.n_users
        self.n_items_ = data.n_items
        self.user_items_ = data.interactions(self.config.weights(), binary=self.config.binary)
        self._fit(data)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    @abstractmethod
    def _fit(self, data: ShopData) -> None: ...

    def _fit_elapsed(self) -> float:
        """Seconds since the running :meth:`fit` began (its bookkeeping included): what a time budget
        of a strategy counts against."""
        return time.perf_counter() - getattr(self, "_fit_started", time.perf_counter())

    def unusable(self, data: ShopData) -> str | None:
        """Why this strategy, as configured, cannot be fitted on ``data`` (say, content strategies on
        a shop without item texts), or None when it can. Scenarios skip such a strategy with this as
        the note, so one shipped scenario file serves shops with and without texts, baskets, …"""
        return None

    def _needs_order(self, data: ShopData) -> str | None:
        """:meth:`unusable` of strategies that learn from the order of events."""
        if not data.has_order:
            return f"{data.name}: {self.name} needs ordered events (timestamps or positions); this data has none"
        return None

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_items_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(data) first")

    # ------------------------------------------------------------ recommend
    def recommend(self, queries: Queries, k: int, exclude: sp.csr_matrix | None = None,
                  *, filter_history: bool = False) -> Candidates:
        """Top-``k`` items for each query, best first.

        Parameters
        ----------
        queries : Queries
        k : int
        exclude : csr_matrix (n_queries, n_items), optional
            Items never to return for each query.
        filter_history : bool
            Also exclude what each query's history holds (training items of a known user and the
            items of the query).
        """
        self._check_fitted()
        n = len(queries)
        out_idx = np.empty((n, k), dtype=np.int32)
        out_val = np.empty((n, k), dtype=np.float32)
        step = max(1, self.block_cells // max(self.n_items_, 1))
        for start in range(0, n, step):
            sel = np.arange(start, min(n, start + step))
            q = queries.take(sel) if (start or len(sel) < n) else queries
            scores = np.asarray(self._score(q), dtype=np.float32)
            if exclude is not None:
                mask_scores(scores, exclude[sel])
            if filter_history:
                mask_scores(scores, self.history(q))
            out_idx[sel], out_val[sel] = topk(scores, k)
        return Candidates(out_idx, out_val)

    def score(self, queries: Queries) -> np.ndarray:
        """Dense float32 (n, n_items) scores; ``-inf`` where the strategy cannot recommend."""
        self._check_fitted()
        return np.asarray(self._score(queries.within(self.n_items_)), dtype=np.float32)

    @abstractmethod
    def _score(self, queries: Queries) -> np.ndarray: ...

    def candidates(self, queries: Queries, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The top-``k`` items of each query among ``allowed`` (bool (n, m), ``m >= n_items_``: the
        catalogue may have grown; items this strategy cannot score are never returned), as
        ``topk`` gives them: (item_idx int32 (n, k), scores float32 (n, k)), ``-1`` padded.

        The default scores densely, masks and takes the top-k. Strategies whose scores are sparse
        (neighbourhoods) or a fixed order (popularity) override it with a path that never builds
        the dense row; they return only items with a positive score."""
        scores = self.score(queries)
        m = allowed.shape[1]
        if scores.shape[1] < m:
            scores = np.hstack([scores, np.full((scores.shape[0], m - scores.shape[1]), -np.inf, np.float32)])
        scores[~allowed] = -np.inf
        return topk(scores, k)

    def _with_fallback(self, queries: Queries, idx: np.ndarray, val: np.ndarray, allowed: np.ndarray,
                       row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positive-only candidates completed with the strategy's fallback ``row`` (one score per
        item, all below the positives: a popularity order), as the dense path ranks them
        (:func:`~shoprec.strategies.topk.fill_from_order`); requests the first part of the order
        cannot complete are scored densely."""
        from .topk import fill_from_order

        got = self.__dict__.get("_fallback_order_")
        if got is None or got[0] is not row:
            got = self._fallback_order_ = (row, np.argsort(-row, kind="stable"))
        order = got[1]
        idx, val, short = fill_from_order(idx, val, allowed, order, row[order])
        if len(short):
            idx[short], val[short] = Strategy.candidates(self, queries.take(short), idx.shape[1], allowed[short])
        return idx, val

    def history(self, queries: Queries, *, include_basket: bool = True) -> sp.csr_matrix:
        """Behaviour-weighted (n, n_items) history of each query: training rows of known users plus
        the query's own items, the item on the page (as a view, unless it is already the session's
        last item) and the basket."""
        queries = queries.within(self.n_items_)
        known = queries.user_idx >= 0
        rows = np.where(known, queries.user_idx, 0)
        hist = self.user_items_[rows]
        if not known.all():
            hist = sp.diags(known.astype(np.float32)) @ hist
        extra = queries.items.to_csr(self.n_items_, queries.weights) if queries.items.indptr[-1] else None
        cur = queries.current_item
        page = (cur >= 0) & (queries.items.last() != cur)  # the item on the page, when not the session's last
        if page.any():
            c = sp.csr_matrix((np.ones(int(page.sum()), np.float32), (np.flatnonzero(page), cur[page])),
                              shape=(len(queries), self.n_items_))
            extra = c if extra is None else extra + c
        if include_basket and queries.basket.indptr[-1]:
            b = queries.basket.to_csr(self.n_items_)
            extra = b if extra is None else extra + b
        if extra is not None:
            hist = hist + extra
        return sp.csr_matrix(hist, dtype=np.float32)

    # ------------------------------------------------------------- online
    def evidence_floor(self) -> float | None:
        """Scores below this value are the strategy's own filler (e.g. an order by popularity so that
        a list standing alone is full), not evidence about the request: a scenario pipeline drops
        them and fills short lists from its fallback chain, which says why. None: every score is
        evidence."""
        return None

    def observe(self, events: LiveEvents) -> bool:
        """Learn from events that arrived after ``fit`` without refitting (a live service calls this
        for every acknowledged batch). Returns whether the strategy changed. The default learns
        nothing; strategies with counters (popularity, co-visitation) override it."""
        return False

    def refresh_items(self, n_items: int, changed: np.ndarray, item_table=None) -> bool:
        """The catalogue now holds ``n_items`` items (``>= n_items_``); the items ``changed`` are new or
        have new attributes; ``item_table`` is the whole catalogue's table (one row per item index, as
        ``ShopData.item_table``), or None. Returns whether the strategy
        now scores all ``n_items`` items. The default cannot score items added after fit: the
        scenario pipeline gives them ``-inf`` from this strategy."""
        return False

    def _resize_users_items(self, n_items: int) -> None:
        """Grow ``user_items_`` (and ``n_items_``) to ``n_items`` columns, for :meth:`refresh_items`."""
        if n_items > self.n_items_:
            ui = sp.csr_matrix(self.user_items_, copy=True)
            ui.resize((ui.shape[0], n_items))
            self.user_items_ = ui
            self.n_items_ = n_items

    # ------------------------------------------------------------ save/load
    @abstractmethod
    def _state(self) -> dict[str, Any]:
        """Learned state as arrays / sparse matrices / JSON-able scalars (no user_items_)."""

    @abstractmethod
    def _set_state(self, state: Mapping[str, Any]) -> None: ...

    def save(self, path: str | Path) -> Path:
        """Write a manifest (JSON) and arrays (an uncompressed npz, no pickle: :func:`npz_arrays`
        memory-maps it back) into the folder ``path``."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = dict(self._state())
        state["user_items_"] = self.user_items_
        arrays: dict[str, np.ndarray] = {}
        scalars: dict[str, Any] = {}
        sparse_keys = []
        for key, value in state.items():
            if sp.issparse(value):
                value = sp.csr_matrix(value)
                sparse_keys.append(key)
                arrays[f"{key}.data"] = value.data
                arrays[f"{key}.indices"] = value.indices
                arrays[f"{key}.indptr"] = value.indptr
                arrays[f"{key}.shape"] = np.asarray(value.shape, dtype=np.int64)
            elif isinstance(value, np.ndarray):
                arrays[key] = value
            else:
                scalars[key] = value
        manifest = {
            "format": ARTIFACT_FORMAT,
            "strategy": self.name,
            "config": self.config.model_dump(mode="json"),
            "n_users": self.n_users_,
            "n_items": self.n_items_,
            "sparse": sparse_keys,
            "scalars": scalars,
        }
        np.savez(path / "arrays.npz", **arrays)
        (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Strategy":
        """Load a strategy written by :meth:`save` (any registered strategy when called on the base)."""
        path = Path(path)
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except FileNotFoundError:
            raise ArtifactError(f"{path}: no manifest.json; not a saved strategy") from None
        if manifest.get("format") != ARTIFACT_FORMAT:
            raise ArtifactError(f"{path}: artifact format {manifest.get('format')}, expected {ARTIFACT_FORMAT}")
        target = STRATEGIES.get(manifest["strategy"])
        if target is None:
            raise ArtifactError(f"{path}: unknown strategy {manifest['strategy']!r}")
        if cls is not Strategy and target is not cls:
            raise ArtifactError(f"{path}: holds a {target.__name__}, not a {cls.__name__}")
        obj = target(target.Config(**manifest["config"]))
        arrays = npz_arrays(path / "arrays.npz")
        state: dict[str, Any] = dict(manifest["scalars"])
        for key in manifest["sparse"]:
            state[key] = sp.csr_matrix(
                (arrays.pop(f"{key}.data"), arrays.pop(f"{key}.indices"), arrays.pop(f"{key}.indptr")),
                shape=tuple(arrays.pop(f"{key}.shape")))
        state.update(arrays)
        obj.n_users_ = int(manifest["n_users"])
        obj.n_items_ = int(manifest["n_items"])
        obj.user_items_ = state.pop("user_items_")
        obj._set_state(state)
        return obj


def npz_arrays(path: str | Path, mmap: bool = True) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file. Members stored uncompressed (``np.savez``) are memory-mapped
    copy-on-write: the pages come from the operating system's file cache, so server processes that
    load the same model share one copy in memory, and a strategy that changes an array in place
    (online updates) gets private pages for what it changes only. Compressed members, object
    arrays and ``mmap=False`` are read into memory as :func:`numpy.load` does."""
    import zipfile

    path = Path(path)
    if not mmap:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    out: dict[str, np.ndarray] = {}
    rest: list[str] = []
    with open(path, "rb") as fh, zipfile.ZipFile(fh) as zf:
        for info in zf.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.compress_type != zipfile.ZIP_STORED:
                rest.append(key)
                continue
            fh.seek(info.header_offset)
            local = fh.read(30)                         # the member's local header: its data follows
            name_len = int.from_bytes(local[26:28], "little")
            extra_len = int.from_bytes(local[28:30], "little")
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            if dtype.hasobject:
                rest.append(key)
                continue
            offset = fh.tell()
            if int(np.prod(shape)) == 0:
                out[key] = np.zeros(shape, dtype=dtype)
            else:
                # a plain ndarray view of the map (np.memmap's Python-level indexing is slow)
                out[key] = np.asarray(np.memmap(path, dtype=dtype, mode="c", offset=offset, shape=shape,
                                                order="F" if fortran else "C"))
    if rest:
        with np.load(path, allow_pickle=False) as z:
            out.update({k: z[k] for k in rest})
    return out
