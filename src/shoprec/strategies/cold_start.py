"""Cold start: recommendations for users without history, from context and user attributes only.

For every configured attribute that the training data carries the strategy learns, per attribute
value ``v``, the item distribution of the users with that value — each (user, item) pair counts
once, with the largest behaviour weight of its events — shrunk towards the global distribution with
a Dirichlet prior worth ``prior_strength`` average users (Bayesian smoothing of segment popularity)::

    p(i)     = (c(i) + ε) / (Σ c + ε · n_items)
    p(i | v) = (c(v, i) + α · p(i)) / (Σ_j c(v, j) + α),   α = prior_strength · Σ c / #users

Attributes come from three places: categorical event columns (``country``, ``device``: a user counts
for each value seen on their events), ``data.user_table`` columns (``gender``, ``age``,
``occupation``, …) and the event timestamps (``hour`` of day and ``weekday``, UTC). A query's values
come from ``queries.get_context(attr)`` (``hour`` / ``weekday`` from the context ``timestamp`` when
not given; ``""``, None, NaN and -1 mean unknown) or, for a known user, from the user table (the
user's latest ``country`` / ``device`` for event attributes). Values the training data did not hold
are unknown too.

The segment distributions are combined as a product of experts (``combine="log_linear"``, the
naive-Bayes posterior when attributes are independent given the item)::

    score(i) = log p(i) + λ · Σ_attr log(p(i | v_attr) / p(i)) + τ · log(p_trend(i) / p(i))

or as a mixture (``combine="mixture"``), ``log mean_attr p(i | v_attr)``. On MovieLens-1M new users
(:func:`shoprec.evaluation.cold_splits.new_users`, gender, age and occupation, mean of seeds 0–2) the
log-linear form measured better — NDCG@10 .5051 with ``lift_weight`` 0.7 and ``prior_strength`` 50,
against .5000 for the mixture and .4873 for global popularity — so it is the default. ``lift_weight``
below 1 tempers the naive-Bayes over-counting of correlated attributes (1.0: .4922). A query whose
attributes are all unknown gets the global popularity order; an item the training data never saw
scores lowest but is still ranked (lists are never empty). The optional trending term
(``trend_weight`` τ, off by default) uses the behaviour weights of the events decayed with
``half_life_days`` from the newest training event, smoothed like a segment (same α). In a seasonal shop it
matters more than the segments: first visits on Online Retail
(:func:`~shoprec.evaluation.cold_splits.first_visit`, country) measured NDCG@10 .057 for global
popularity, .063 for country segments and .112 for country segments with ``trend_weight=1``.

:meth:`ColdStartStrategy.top_segment` names, per recommended item, the attribute value with the
largest lift, e.g. ``"country=Germany"`` ("popular with customers from Germany").
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field, field_validator

from ..data import ShopData
from ..data.schema import INTERNAL_EVENT_DTYPES
from .base import Queries, Strategy, StrategyConfig, register
from .topk import topk

TIME_ATTRIBUTES = ("hour", "weekday")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_WEEKDAY_NAMES = {**{str(i): d for i, d in enumerate(WEEKDAYS)}, **{d.lower(): d for d in WEEKDAYS},
                  **{n: d for n, d in zip(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                             "sunday"), WEEKDAYS)}}
_EPS = 0.01  # pseudo-count of every item in the global distribution


class ColdStartConfig(StrategyConfig):
    attributes: tuple[str, ...] = Field(
        default=("country", "device", "gender", "age", "occupation", "hour", "weekday"),
        description="Attributes to learn segments for; those the training data lacks are ignored. Event "
                    "columns, user_table columns, or hour/weekday (from timestamps).")
    prior_strength: float = Field(
        default=50.0, ge=0,
        description="Strength of the global distribution in each segment's, in pseudo-users (each worth "
                    "the mean user's weighted item count); larger = small segments stay closer to global.")
    combine: Literal["log_linear", "mixture"] = Field(
        default="log_linear",
        description="log_linear: log p(i) + lift_weight·Σ log(p(i|v)/p(i)) (product of experts); "
                    "mixture: log of the mean of the known segments' p(i|v).")
    lift_weight: float = Field(default=0.7, ge=0,
                               description="log_linear: multiplier of each attribute's log-lift.")
    trend_weight: float = Field(default=0.0, ge=0,
                                description="Weight of the trending log-lift (time-decayed popularity); 0 = off.")
    half_life_days: float = Field(default=7.0, gt=0, description="Trending: half-life of an event's weight.")
    max_values: int = Field(default=200, ge=1,
                            description="Values kept per attribute (the most frequent); the rest are unknown. "
                                        "The model holds a dense float32 values × items table per attribute.")

    @field_validator("attributes")
    @classmethod
    def _distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"attributes must be distinct, got {v}")
        return v


# ------------------------------------------------------------------------ values
def canonical_values(values: Any) -> np.ndarray:
    """Attribute values as canonical text (object array): numbers without a trailing ``.0``,
    surrounding spaces stripped; ``""`` for unknown (``""``, None, NaN, pandas NA, -1)."""
    if isinstance(values, (pd.Series, pd.Index)):
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
            values = values.astype("float64").to_numpy()
        else:
            values = values.to_numpy(dtype=object)
    arr = np.asarray(values)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    out = np.full(len(arr), "", dtype=object)
    if arr.dtype.kind in "iu":
        ok = arr != -1
        out[ok] = arr[ok].astype(np.int64).astype(str)
    elif arr.dtype.kind == "f":
        ok = np.isfinite(arr) & (arr != -1)
        integral = ok & (arr == np.round(arr))
        out[integral] = arr[integral].astype(np.int64).astype(str)
        other = ok & ~integral
        out[other] = arr[other].astype(str)
    elif arr.dtype.kind == "b":
        out[:] = np.where(arr, "True", "False")
    else:
        s = pd.Series(arr.astype(object), dtype=object)
        na = s.isna().to_numpy()
        t = s.astype(str).str.strip().str.replace(r"^(-?\d+)\.0*$", r"\1", regex=True)
        bad = na | t.isin(["-1", "nan", "NaN", "None", "<NA>"]).to_numpy()
        out[:] = t.to_numpy(dtype=object)
        out[bad] = ""
    return out


def _time_values(attr: str, ts: np.ndarray) -> np.ndarray:
    """``hour`` ("0".."23") or ``weekday`` ("Mon".."Sun") of unix seconds (UTC); "" where ts < 0."""
    ts = np.asarray(ts, dtype=np.int64)
    out = np.full(len(ts), "", dtype=object)
    ok = ts >= 0
    if attr == "hour":
        out[ok] = ((ts[ok] // 3600) % 24).astype(str)
    else:
        out[ok] = np.asarray(WEEKDAYS, dtype=object)[(ts[ok] // 86_400 + 3) % 7]  # 1970-01-01 was a Thursday
    return out


def _normalise(attr: str, canon: np.ndarray) -> np.ndarray:
    """Time attributes in their canonical spelling (weekday names; hours 0–23); others unchanged."""
    if attr == "weekday":
        return pd.Series(canon, dtype=object).str.lower().map(_WEEKDAY_NAMES).fillna("").to_numpy(dtype=object)
    if attr == "hour":
        ok = pd.Series(canon, dtype=object).isin([str(h) for h in range(24)]).to_numpy()
        return np.where(ok, canon, "").astype(object)
    return canon


# ---------------------------------------------------------------------- strategy
@register
class ColdStartStrategy(Strategy):
    """Segment popularity for users without history (see the module docstring)."""

    name = "cold_start"
    Config = ColdStartConfig

    # ------------------------------------------------------------------ fit
    def _fit(self, data: ShopData) -> None:
        cfg = self.config
        n_users, n_items = data.n_users, data.n_items
        x = data.interactions(cfg.weights(), binary=cfg.binary, aggregate="max")
        counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
        p = (counts + _EPS) / (counts.sum() + _EPS * n_items)
        log_p = np.log(p)
        self.log_prior_ = log_p.astype(np.float32)
        p32, log_p32 = p.astype(np.float32), self.log_prior_
        # the prior in pseudo-users: α users of the mean user's weighted number of items
        active = np.diff(x.indptr) > 0
        alpha = cfg.prior_strength * float(counts.sum()) / max(int(active.sum()), 1)

        ev = data.events
        w = data.behaviour_weights(cfg.weights())
        if cfg.binary:
            w = (w > 0).astype(np.float32)
        ts = ev["timestamp"].to_numpy()
        names, sources, vocab, lifts, user_codes = [], [], [], [], []
        for attr in cfg.attributes:
            source, per = self._values(data, attr)
            if source is None:
                continue
            if source == "user":
                codes, values = self._vocabulary(per, np.arange(n_users), x)
                known = codes >= 0
                onehot = sp.csr_matrix((np.ones(int(known.sum()), np.float32),
                                        (codes[known], np.flatnonzero(known))), shape=(len(values), n_users))
                c = onehot @ x
                ucode = codes.astype(np.int32)
            else:
                codes, values = self._vocabulary(per, ev["user_idx"].to_numpy(), None, weights=w)
                c = self._event_counts(codes, ev, w, len(values), n_users, n_items)
                ucode = self._latest_code(codes, ev, ts, n_users) if source == "event" else \
                    np.full(n_users, -1, np.int32)
            if not len(values):
                continue
            c = sp.csr_matrix(c, dtype=np.float32).toarray()  # values × items, dense (max_values bounds it)
            total = c.sum(axis=1, dtype=np.float64, keepdims=True)
            c += np.float32(alpha) * p32
            c /= (total + alpha).astype(np.float32)
            np.maximum(c, np.float32(1e-30), out=c)
            np.log(c, out=c)
            c -= log_p32
            names.append(attr)
            sources.append(source)
            vocab.append(np.asarray(values, dtype=object))
            lifts.append(c)
            user_codes.append(ucode)
        sizes = [len(v) for v in vocab]
        self.attributes_ = np.asarray(names, dtype=str)
        self.sources_ = np.asarray(sources, dtype=str)
        self.offsets_ = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.values_ = np.asarray(np.concatenate(vocab) if vocab else [], dtype=str)
        self.lift_ = np.concatenate(lifts) if lifts else np.zeros((0, n_items), dtype=np.float32)
        self.user_codes_ = (np.stack(user_codes, axis=1) if user_codes
                            else np.zeros((n_users, 0), dtype=np.int32)).astype(np.int32)

        self.trend_lift_ = np.zeros(n_items, dtype=np.float32)
        if cfg.trend_weight > 0 and len(ts) and (ts >= 0).all():
            age_days = (ts.max() - ts) / 86_400.0
            t = np.bincount(ev["item_idx"].to_numpy(), weights=w * np.power(0.5, age_days / cfg.half_life_days),
                            minlength=n_items)
            pt = (t + alpha * p) / (t.sum() + alpha)
            self.trend_lift_ = (np.log(np.maximum(pt, 1e-30)) - log_p).astype(np.float32)
        self._set_derived()

    @staticmethod
    def _values(data: ShopData, attr: str) -> tuple[str | None, np.ndarray | None]:
        """Where ``attr`` comes from (``"event"``, ``"time"``, ``"user"`` or None when absent) and its
        canonical values, one per event (event, time) or per user (user)."""
        ev = data.events
        if attr in TIME_ATTRIBUTES:
            ts = ev["timestamp"].to_numpy()
            if not (ts >= 0).any():
                return None, None
            return "time", _time_values(attr, ts)
        if attr in ev.columns and attr not in INTERNAL_EVENT_DTYPES:
            col = ev[attr]
            if isinstance(col.dtype, pd.CategoricalDtype):
                cats = canonical_values(pd.Series(col.cat.categories.to_numpy(dtype=object), dtype=object))
                codes = col.cat.codes.to_numpy()
                vals = np.where(codes >= 0, cats[np.maximum(codes, 0)] if len(cats) else "", "").astype(object)
            else:
                vals = canonical_values(col)
            vals = _normalise(attr, vals)
            return ("event", vals) if (vals != "").any() else (None, None)
        table = data.user_table
        if table is not None and attr in table.columns:
            vals = _normalise(attr, canonical_values(table[attr]))
            if len(vals) != data.n_users:
                raise ValueError(f"{data.name}: user_table has {len(vals)} rows for {data.n_users} users")
            return ("user", vals) if (vals != "").any() else (None, None)
        return None, None

    def _vocabulary(self, vals: np.ndarray, users: np.ndarray, x: sp.csr_matrix | None,
                    weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Codes of the ``max_values`` most frequent values (by distinct users; ties by name), -1 for
        the rest and for unknown; returns ``(codes, values)``."""
        ok = vals != ""
        if x is not None:  # per-user values: only users with events count
            ok = ok & (np.diff(x.indptr) > 0)
        if weights is not None:
            ok = ok & (weights > 0)
        uniq, inv = np.unique(vals[ok].astype(str), return_inverse=True)
        inv = inv.ravel()
        pairs = np.unique(inv.astype(np.int64) * (int(users.max(initial=0)) + 1) + users[ok])
        n_users = np.bincount(pairs // (int(users.max(initial=0)) + 1), minlength=len(uniq))
        order = np.lexsort((uniq, -n_users))[: self.config.max_values]
        kept = np.sort(order)  # values in name order
        code_of = np.full(len(uniq), -1, dtype=np.int64)
        code_of[kept] = np.arange(len(kept))
        codes = np.full(len(vals), -1, dtype=np.int64)
        codes[np.flatnonzero(ok)] = code_of[inv]
        return codes, uniq[kept]

    @staticmethod
    def _event_counts(codes: np.ndarray, ev: pd.DataFrame, w: np.ndarray, n_values: int, n_users: int,
                      n_items: int) -> sp.csr_matrix:
        """values × items: Σ over users of the largest weight of the user's events of that value on the item."""
        keep = (codes >= 0) & (w > 0)
        c = codes[keep]
        u = ev["user_idx"].to_numpy()[keep].astype(np.int64)
        i = ev["item_idx"].to_numpy()[keep].astype(np.int64)
        wk = w[keep]
        key = (c * n_users + u) * n_items + i
        order = np.lexsort((-wk, key))
        first = np.ones(len(order), dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        sel = order[first]
        m = sp.csr_matrix((wk[sel].astype(np.float32), (c[sel], i[sel])), shape=(n_values, n_items),
                          dtype=np.float32)
        m.sum_duplicates()
        return m

    @staticmethod
    def _latest_code(codes: np.ndarray, ev: pd.DataFrame, ts: np.ndarray, n_users: int) -> np.ndarray:
        """Each user's value code on their latest event with a known value (-1 if none)."""
        out = np.full(n_users, -1, dtype=np.int32)
        ok = np.flatnonzero(codes >= 0)
        if len(ok):
            u = ev["user_idx"].to_numpy()[ok]
            order = np.lexsort((ok, ts[ok], u))  # by user, then time, then row: the last one wins
            out[u[order]] = codes[ok][order]
        return out

    def _set_derived(self) -> None:
        """Per-attribute value lookups and explanation labels (recomputed, never saved)."""
        self.lookup_ = [pd.Index(self.values_[a:b].astype(object))
                        for a, b in zip(self.offsets_[:-1], self.offsets_[1:])]
        labels = [f"{name}={v}" for name, a, b in zip(self.attributes_, self.offsets_[:-1], self.offsets_[1:])
                  for v in self.values_[a:b]]
        self.labels_ = np.asarray(labels + [""], dtype=object)  # last = no segment

    # ------------------------------------------------------------ scoring
    def query_codes(self, queries: Queries) -> np.ndarray:
        """(n, n_attributes) int64 row of ``lift_`` of each query's value of each attribute, -1 if unknown:
        the context value first, else (known users) the value stored for the user."""
        self._check_fitted()
        n = len(queries)
        out = np.full((n, len(self.attributes_)), -1, dtype=np.int64)
        ts = queries.get_context("timestamp")
        known = queries.user_idx >= 0
        for j, attr in enumerate(self.attributes_):
            raw = queries.get_context(str(attr))
            canon = np.full(n, "", dtype=object) if raw is None else _normalise(attr, canonical_values(raw))
            if attr in TIME_ATTRIBUTES and ts is not None:
                derived = _time_values(attr, canonical_to_int(ts))
                canon = np.where(canon == "", derived, canon)
            local = self.lookup_[j].get_indexer(canon.astype(object)) if len(canon) else np.zeros(0, np.int64)
            fill = (local < 0) & known
            if fill.any():
                local[fill] = self.user_codes_[queries.user_idx[fill], j]
            out[:, j] = np.where(local >= 0, local + self.offsets_[j], -1)
        return out

    def _score(self, queries: Queries) -> np.ndarray:
        return self._score_codes(self.query_codes(queries))

    #: how many items each segment combination's presorted list holds (at least 4 k)
    presorted_depth = 256

    def candidates(self, queries: Queries, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The dense top-k under ``allowed``, from each segment combination's presorted top items:
        requests are grouped by their segment codes (a shop has few combinations: country ×
        device …), each combination scored and sorted once and cached; a request takes the first
        ``k`` allowed items of its list, and only one whose rules leave too few of them is scored
        densely."""
        self._check_fitted()
        queries = queries.within(self.n_items_)
        n = len(queries)
        codes = self.query_codes(queries)
        uniq, inv = np.unique(codes, axis=0, return_inverse=True)
        inv = np.asarray(inv).ravel()
        depth = min(self.n_items_, max(4 * k, self.presorted_depth))
        cache = getattr(self, "_top_cache_", None)
        if cache is None or cache.get("shape") != (self.n_items_, depth) or len(cache) > 4096:
            cache = self._top_cache_ = {"shape": (self.n_items_, depth)}
        keys = [u.tobytes() for u in uniq]
        missing = [u for u, key in enumerate(keys) if key not in cache]
        if missing:
            ti, tv = topk(self._score_codes(uniq[missing]), depth)
            for u, a, b in zip(missing, ti, tv):
                cache[keys[u]] = (a, b)
        top_i = np.stack([cache[keys[u]][0] for u in range(len(uniq))])[inv]
        top_v = np.stack([cache[keys[u]][1] for u in range(len(uniq))])[inv]
        ok = np.take_along_axis(allowed, top_i.astype(np.int64), axis=1)
        first = np.argsort(~ok, axis=1, kind="stable")[:, :k]
        good = np.take_along_axis(ok, first, axis=1)
        idx = np.where(good, np.take_along_axis(top_i, first, axis=1), -1).astype(np.int32)
        val = np.where(good, np.take_along_axis(top_v, first, axis=1), -np.inf).astype(np.float32)
        if idx.shape[1] < k:
            idx = np.hstack([idx, np.full((n, k - idx.shape[1]), -1, np.int32)])
            val = np.hstack([val, np.full((n, k - val.shape[1]), -np.inf, np.float32)])
        short = (good.sum(axis=1) < min(k, self.n_items_)) & (depth < self.n_items_)
        if short.any():
            rows = np.flatnonzero(short)
            idx[rows], val[rows] = super().candidates(queries.take(rows), k, allowed[rows])
        return idx, val

    def _score_codes(self, codes: np.ndarray) -> np.ndarray:
        cfg = self.config
        n = len(codes)
        if cfg.combine == "log_linear":
            scores = np.broadcast_to(self.log_prior_, (n, self.n_items_)).copy()
            for j in range(codes.shape[1]):
                has = codes[:, j] >= 0
                if has.any():
                    scores[has] += np.float32(cfg.lift_weight) * self.lift_[codes[has, j]]
        else:
            prior = np.exp(self.log_prior_.astype(np.float64))
            mix = np.zeros((n, self.n_items_), dtype=np.float64)
            n_known = (codes >= 0).sum(axis=1)
            for j in range(codes.shape[1]):
                has = codes[:, j] >= 0
                if has.any():
                    mix[has] += prior * np.exp(self.lift_[codes[has, j]].astype(np.float64))
            mix[n_known == 0] = prior
            mix /= np.maximum(n_known, 1)[:, None]
            scores = np.log(mix).astype(np.float32)
        if cfg.trend_weight > 0:
            scores += np.float32(cfg.trend_weight) * self.trend_lift_
        return scores

    # ----------------------------------------------------------- explain
    def top_segment(self, queries: Queries, item_idx: np.ndarray) -> np.ndarray:
        """For each recommended item (``item_idx`` (n, k), -1 padded) the ``"attribute=value"`` of the
        query whose log-lift for the item is largest and positive, ``""`` when none is (the item is
        there for its global popularity). Returns an object array (n, k) of str."""
        item_idx = np.asarray(item_idx)
        if item_idx.ndim != 2 or item_idx.shape[0] != len(queries):
            raise ValueError(f"item_idx must be (n_queries, k) = ({len(queries)}, k), got {item_idx.shape}")
        codes = self.query_codes(queries)
        n, k = item_idx.shape
        best = np.zeros((n, k), dtype=np.float32)
        label = np.full((n, k), len(self.labels_) - 1, dtype=np.int64)
        items = np.maximum(item_idx, 0)
        for j in range(codes.shape[1]):
            has = codes[:, j] >= 0
            if not has.any():
                continue
            lift = np.zeros((n, k), dtype=np.float32)
            lift[has] = self.lift_[codes[has, j][:, None], items[has]]
            better = (lift > best) & (item_idx >= 0)
            best[better] = lift[better]
            label[better] = np.broadcast_to(codes[:, j][:, None], (n, k))[better]
        return self.labels_[label]

    # --------------------------------------------------------- save/load
    def _state(self) -> dict[str, Any]:
        return {"log_prior_": self.log_prior_, "attributes_": self.attributes_, "sources_": self.sources_,
                "offsets_": self.offsets_, "values_": self.values_, "lift_": self.lift_,
                "user_codes_": self.user_codes_, "trend_lift_": self.trend_lift_}

    def _set_state(self, state: Mapping[str, Any]) -> None:
        for key in ("log_prior_", "attributes_", "sources_", "offsets_", "values_", "lift_", "user_codes_",
                    "trend_lift_"):
            setattr(self, key, state[key])
        self._set_derived()


def canonical_to_int(values: Any) -> np.ndarray:
    """Unix-second timestamps from a context array (numbers, or text of numbers); -1 where unknown."""
    arr = pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce").to_numpy(dtype=np.float64)
    return np.where(np.isfinite(arr), arr, -1).astype(np.int64)
