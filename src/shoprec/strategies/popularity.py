"""Popularity: global, per category of what the query looked at, and time-decayed trending.

The counts can be released with differential privacy (``dp_epsilon``; OpenDP, the ``privacy`` extra):
see :class:`PopularityStrategy`.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from ..data import ShopData
from ..exceptions import ConfigError
from .base import LiveEvents, Queries, Strategy, StrategyConfig, register

log = logging.getLogger(__name__)

#: Trending scores are kept relative to a reference time; past 2**60 they are rebased.
_REBASE = 2.0 ** 60

PRIVACY_HINT = 'pip install "shoprec[privacy]"'


class PopularityConfig(StrategyConfig):
    mode: Literal["global", "category", "trending"] = Field(
        default="global",
        description="global: most users; category: popular within the categories of the query's "
                    "history (global popularity breaks ties and fills); trending: exponentially "
                    "time-decayed behaviour weight.",
    )
    half_life_days: float = Field(default=7.0, gt=0, description="Trending: half-life of an event's weight.")
    category_boost: float = Field(default=1.0, ge=0,
                                  description="Category mode: weight of the query's category affinity.")
    # ---------------------------------------------------------------- differential privacy
    dp_epsilon: float | None = Field(
        default=None, gt=0, allow_inf_nan=False,
        description="Differential privacy of the published counts: the privacy loss ε of one release "
                    "(per fit) at the user level. None: exact counts (no privacy).")
    dp_delta: float | None = Field(
        default=None, gt=0, lt=1,
        description="Gaussian mechanism only (required there): the δ of (ε, δ)-DP, well below 1/n_users.")
    dp_mechanism: Literal["laplace", "gaussian"] = Field(
        default="laplace",
        description="laplace: ε-DP, noise scale L1-sensitivity/ε; gaussian: (ε, δ)-DP calibrated on the "
                    "L2 sensitivity (better when dp_max_items is large).")
    dp_max_items: int = Field(
        default=2, ge=1,
        description="Contribution bound: each user counts towards at most this many distinct items (the "
                    "user's strongest ones; a user's events on the other items are dropped). 2 kept the "
                    "most NDCG@10 across both modes on Online Retail at ε = 1 (benchmarks/marketplace_dp.py).")
    dp_reference_time: float | None = Field(
        default=None,
        description="Trending with DP: the unix time ages are measured from. It must not come from the "
                    "data (one user's late event would move every count); None: the time of the fit. "
                    "An offline evaluation sets it to the split's cut.")
    dp_seed: int | None = Field(
        default=None,
        description="Seed of the noise. None: OpenDP draws the noise from the OS (exact, resists "
                    "floating-point attacks; the production setting). An int: numpy draws it with the "
                    "same calibrated scale, reproducibly (tests, benchmarks) — whoever knows the seed "
                    "can remove the noise.")
    dp_bound_seed: int = Field(
        default=0, description="Seed of the rule that orders a user's equally strong items for the bound.")

    @model_validator(mode="after")
    def _check_dp(self) -> "PopularityConfig":
        if self.dp_mechanism == "gaussian" and self.dp_epsilon is not None and self.dp_delta is None:
            raise ValueError("dp_mechanism 'gaussian' needs dp_delta (e.g. 1e-6, well below 1/n_users)")
        if self.dp_mechanism == "laplace" and self.dp_delta is not None:
            raise ValueError("dp_delta is for dp_mechanism 'gaussian'; the laplace mechanism is pure ε-DP")
        return self


@register
class PopularityStrategy(Strategy):
    """Most popular items, optionally within the query's categories or decayed in time.

    ``global`` counts distinct users per item (weighted by behaviour when ``binary`` is false, the
    count of users is used as tie-breaker). ``trending`` weights each event by
    ``0.5 ** (age / half_life)`` with age measured from the newest event in the data; data without
    timestamps falls back to ``global``. ``category`` needs ``item_table['category']``; the score of an
    item is its normalised popularity times ``1 + boost * share of the query's history in the item's
    category``, so the query's categories come first and the rest stays ranked by popularity.

    **Differential privacy** (``dp_epsilon`` set; needs the ``privacy`` extra, OpenDP). The per-item
    counts — what a shop publishes as a "trending" list — are released with user-level DP, neighbouring
    data sets differing by all the events of one user (add/remove; replacing a user doubles the bounds):

    * *contribution bound*: a user's contribution to one item is 1 (``global``/``category``: distinct
      users) or, for ``trending``, the sum of the user's decayed event weights on the item capped at
      ``c`` = the largest behaviour weight of the table. A user counts towards at most
      ``m = dp_max_items`` items: the ones with the largest (decayed) weight, ties ordered by a keyed hash
      of the user's and the item's external ids (``dp_bound_seed``) — a rule that reads only the user's
      own events, so it does not couple users. The events on the other items are dropped
      (``dp_report_`` counts them).
    * *sensitivity*: L1 ``Δ₁ = m·c``, L2 ``Δ₂ = √m·c``. Decay does not raise it: a decayed weight is at
      most the weight, and ages are measured from ``dp_reference_time`` (not from the data's newest
      event, which one user could move and so shift every count), ages below 0 counted as 0.
    * *noise*: Laplace with scale ``Δ₁/ε`` (ε-DP) or Gaussian with the σ OpenDP's privacy map
      (zCDP → (ε, δ) conversion) calibrates for ``Δ₂`` — the library does the accounting
      (``binary_search_param`` over the measurement's map). One draw per catalogue item, every item (the
      catalogue is public; items nobody touched get noise too). Negative noisy counts are clipped to 0
      (post-processing). With ``dp_seed`` the draw is numpy's with that scale (vectorised, reproducible);
      without, OpenDP's own sampler (exact, OS randomness; ~3.5 s Laplace / ~8 s Gaussian per 100k
      items, which is why seeded runs do not use it).
    * only the noisy counts reach the scores: no exact tie-breakers; ties go to the lower item index.
    * *live updates are off*: :meth:`observe` learns nothing while DP is on, because an exact increment
      would publish exact counts of the new events. The release changes at the next fit, which is a new
      release: its ε adds to the earlier ones (k fits over overlapping data cost up to k·ε in total).
    * not covered: ``user_items_`` (kept for the category mode's query histories, saved with the
      artifact) and ``dp_report_`` are exact and for the operator only; a query's own history in
      ``category`` mode is the querying user's data.
    """

    name = "popularity"
    Config = PopularityConfig

    def unusable(self, data: ShopData) -> str | None:
        if self.config.mode == "category" and (data.item_table is None or "category" not in data.item_table.columns):
            return f"{data.name}: popularity mode 'category' needs item_table['category']"
        return None

    def _fit(self, data: ShopData) -> None:
        cfg = self.config
        ts = data.events["timestamp"].to_numpy()
        timed = bool(len(ts)) and bool((ts >= 0).all())
        self.dp_report_ = None
        if cfg.dp_epsilon is not None:
            base, self.ref_time_ = self._private_counts(data, timed)
        else:
            users_per_item = np.asarray((self.user_items_ > 0).sum(axis=0)).ravel().astype(np.float64)
            weight = np.asarray(self.user_items_.sum(axis=0)).ravel().astype(np.float64)
            base = users_per_item + 1e-6 * weight / max(weight.max(initial=0.0), 1.0)
            if cfg.mode == "trending" and timed:
                age_days = (ts.max() - ts) / 86400.0
                w = data.behaviour_weights(cfg.weights()) * np.power(0.5, age_days / cfg.half_life_days)
                trend = np.bincount(data.events["item_idx"].to_numpy(), weights=w, minlength=data.n_items)
                base = trend + 1e-9 * base / max(base.max(initial=0.0), 1.0)
            self.ref_time_ = float(ts.max()) if timed else 0.0
        self.scale_ = 1.0 / max(float(base.max(initial=0.0)), 1e-12)
        self.scores_ = (base * self.scale_).astype(np.float32)
        self.item_category_ = np.full(data.n_items, -1, dtype=np.int32)
        if cfg.mode == "category":
            why = self.unusable(data)
            if why is not None:
                raise ValueError(why)
            codes, _ = pd.factorize(data.item_table["category"], use_na_sentinel=True)
            self.item_category_ = codes.astype(np.int32)

    # ------------------------------------------------------------ privacy
    def _private_counts(self, data: ShopData, timed: bool) -> tuple[np.ndarray, float]:
        """The DP release of the per-item counts (float64, ≥ 0) and the reference time of the decay;
        fills ``dp_report_`` (see the class docstring)."""
        cfg = self.config
        dp = _opendp()
        trending = cfg.mode == "trending" and timed
        w = data.behaviour_weights(cfg.weights()).astype(np.float64)
        ref = 0.0
        if trending:
            ref = float(time.time() if cfg.dp_reference_time is None else cfg.dp_reference_time)
            ts = data.events["timestamp"].to_numpy().astype(np.float64)
            stale = (ref - ts.max()) / 86400.0 / cfg.half_life_days
            if stale > 10:  # for the operator's log, not part of the release
                log.warning("popularity (trending, DP): the newest event is %.0f half-lives before the "
                            "reference time, so decayed counts are ~0 and the release is mostly noise; "
                            "set dp_reference_time (an evaluation: the split's cut)", stale)
            w = w * np.power(0.5, np.maximum(ref - ts, 0.0) / 86400.0 / cfg.half_life_days)
        cap = _largest_weight(cfg) if trending else 1.0
        counts, report = bounded_counts(data, w, cap=cap, max_items=cfg.dp_max_items,
                                        per_user=not trending, seed=cfg.dp_bound_seed)
        l1, l2 = cfg.dp_max_items * cap, math.sqrt(cfg.dp_max_items) * cap
        scale, measurement = calibrate(dp, cfg.dp_mechanism, cfg.dp_epsilon, cfg.dp_delta, l1, l2)
        if scale == 0.0:
            noisy = counts.copy()
        elif cfg.dp_seed is not None:
            rng = np.random.default_rng(cfg.dp_seed)
            noise = (rng.laplace(0.0, scale, len(counts)) if cfg.dp_mechanism == "laplace"
                     else rng.normal(0.0, scale, len(counts)))
            noisy = counts + noise
        else:
            noisy = np.asarray(measurement(counts.tolist()), dtype=np.float64)
        report.update({"mechanism": cfg.dp_mechanism, "epsilon": cfg.dp_epsilon, "delta": cfg.dp_delta,
                       "sensitivity_l1": l1, "sensitivity_l2": l2, "noise_scale": scale,
                       "max_items": cfg.dp_max_items, "contribution_cap": cap, "reference_time": ref,
                       "sampler": "opendp" if cfg.dp_seed is None else "numpy (seeded)"})
        self.dp_report_ = report
        return np.maximum(noisy, 0.0), ref

    def _score(self, queries: Queries) -> np.ndarray:
        n = len(queries)
        scores = np.broadcast_to(self.scores_, (n, self.n_items_)).copy()
        if self.config.mode == "category":
            hist = self.history(queries)
            cats = self.item_category_
            n_cat = int(cats.max(initial=-1)) + 1
            if n_cat and hist.nnz:
                rows = np.repeat(np.arange(n), np.diff(hist.indptr))
                c = cats[hist.indices]
                ok = c >= 0
                aff = np.zeros((n, n_cat), dtype=np.float32)
                np.add.at(aff, (rows[ok], c[ok]), hist.data[ok])
                aff /= np.maximum(aff.sum(axis=1, keepdims=True), 1e-12)
                item_aff = np.where(cats >= 0, aff[:, np.maximum(cats, 0)], 0.0)
                scores *= 1.0 + self.config.category_boost * item_aff
        return scores

    def _top(self, t: int) -> np.ndarray:
        """The ``t`` best items, best first, ties to the lower index (cached until scores change)."""
        cache = getattr(self, "_top_cache_", None)
        if cache is None or len(cache) < min(t, len(self.scores_)):
            t = min(max(t, 1024), len(self.scores_))
            s = self.scores_
            part = np.argpartition(-s, t - 1)[:t] if t < len(s) else np.arange(len(s))
            # argpartition may cut ties at the boundary arbitrarily: take every item tied with the t-th
            boundary = s[part].min()
            part = np.union1d(part, np.flatnonzero(s == boundary)) if (s == boundary).sum() > 1 else part
            cache = part[np.lexsort((part, -s[part]))]
            self._top_cache_ = cache
        return cache

    def candidates(self, queries: Queries, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` allowed items of the popularity order (global and trending modes; the
        category mode depends on the query and scores densely)."""
        if self.config.mode == "category":
            return super().candidates(queries, k, allowed)
        n = len(queries)
        idx = np.full((n, k), -1, dtype=np.int32)
        val = np.full((n, k), -np.inf, dtype=np.float32)
        top = self._top(4 * k + 256)
        ok = allowed[:, top]
        enough = ok.sum(axis=1) >= min(k, len(top))
        if enough.any():
            rows = np.flatnonzero(enough)
            first = np.argsort(~ok[rows], axis=1, kind="stable")[:, :k]
            got = np.take_along_axis(ok[rows], first, axis=1)
            items = np.where(got, top[first], -1)
            idx[rows, :items.shape[1]] = items
            val[rows, :items.shape[1]] = np.where(got, self.scores_[np.maximum(items, 0)], -np.inf)
        if not enough.all():  # heavily filtered requests: the dense path
            rows = np.flatnonzero(~enough)
            idx[rows], val[rows] = super().candidates(queries.take(rows), k, allowed[rows])
        return idx, val

    # ------------------------------------------------------------------ online
    def observe(self, events: LiveEvents) -> bool:
        if self.config.dp_epsilon is not None:  # the release is fixed at fit (class docstring)
            return False
        w = events.weights(self.config.weights())
        keep = (w > 0) & (events.item_idx < len(self.scores_))
        if not keep.any():
            return False
        items, w = events.item_idx[keep], w[keep].astype(np.float64)
        if self.config.mode == "trending" and self.ref_time_ > 0:
            t = events.timestamp[keep]
            exponent = (t - self.ref_time_) / (self.config.half_life_days * 86400.0)
            if exponent.max() > 60:  # rebase: every score shrinks by the same factor
                shift = float(np.floor(exponent.max())) - 30.0
                self.scores_ = (self.scores_ * 2.0 ** -shift).astype(np.float32)
                self.ref_time_ += shift * self.config.half_life_days * 86400.0
                exponent = exponent - shift
            inc = w * np.power(2.0, exponent)
        else:
            inc = np.ones(len(items))
        scores = self.scores_.copy()  # readers keep a consistent array
        np.add.at(scores, items, (inc * self.scale_).astype(np.float32))
        self.scores_ = scores
        self._top_cache_ = None
        return True

    def refresh_items(self, n_items: int, changed: np.ndarray, item_table=None) -> bool:
        old = len(self.scores_)
        if n_items > old:
            self.scores_ = np.concatenate([self.scores_, np.zeros(n_items - old, np.float32)])
            self.item_category_ = np.concatenate([self.item_category_, np.full(n_items - old, -1, np.int32)])
            self._resize_users_items(n_items)
        self._top_cache_ = None
        if self.config.mode == "category" and item_table is not None and "category" in item_table.columns:
            codes, _ = pd.factorize(item_table["category"], use_na_sentinel=True)
            self.item_category_ = codes.astype(np.int32)[:n_items]
        return True

    def _state(self) -> dict[str, Any]:
        state = {"scores_": self.scores_, "item_category_": self.item_category_, "scale_": self.scale_,
                 "ref_time_": self.ref_time_}
        if self.dp_report_ is not None:
            state["dp_report_"] = self.dp_report_
        return state

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self.scores_ = state["scores_"]
        self.item_category_ = state["item_category_"]
        self.scale_ = float(state.get("scale_", 1.0))
        self.ref_time_ = float(state.get("ref_time_", 0.0))
        self.dp_report_ = state.get("dp_report_")


# ------------------------------------------------------------------------ privacy helpers
def _opendp():
    """OpenDP's prelude, imported on first use (the ``privacy`` extra). Its measurements on float vectors
    are in the ``contrib`` feature set, which is switched on here."""
    try:
        import opendp.prelude as dp
    except ImportError:
        raise ConfigError("popularity: dp_epsilon (differentially private counts) needs OpenDP, the "
                          f"'privacy' extra: {PRIVACY_HINT}") from None
    dp.enable_features("contrib")
    return dp


def _largest_weight(cfg: PopularityConfig) -> float:
    """The largest behaviour weight of the config's table: the cap of one user's weight on one item."""
    from ..data.schema import DEFAULT_WEIGHTS

    table = cfg.weights() or DEFAULT_WEIGHTS
    return max([float(v) for v in table.values()] + [0.0])


def _pair_keys(data: ShopData, users: np.ndarray, items: np.ndarray, seed: int) -> np.ndarray:
    """A keyed hash (uint64) of each (user, item) pair from the external ids: an order of a user's items
    that depends on nothing but that user and the seed (internal indices depend on the whole data)."""
    key = f"{seed & 0xFFFF_FFFF_FFFF_FFFF:016x}"[-16:]
    hu = pd.util.hash_array(np.asarray(data.users.external_ids, dtype=object), hash_key=key)
    hi = pd.util.hash_array(np.asarray(data.items.external_ids, dtype=object), hash_key=key[::-1])
    mixed = hu[users] ^ (hi[items] * np.uint64(0x9E3779B97F4A7C15))
    return pd.util.hash_array(mixed)


def bounded_counts(data: ShopData, weights: np.ndarray, *, cap: float, max_items: int, per_user: bool,
                   seed: int = 0) -> tuple[np.ndarray, dict[str, int]]:
    """Per-item counts with each user's contribution bounded, and what the bound dropped.

    ``weights`` is each event's (possibly decayed) weight; events of weight ≤ 0 count for nothing. A
    user's contribution to an item is 1 (``per_user``: distinct users) or the sum of the weights of the
    user's events on it, capped at ``cap``. Each user keeps at most ``max_items`` items: the ones of
    largest summed weight, ties by :func:`_pair_keys`. So one user changes the counts by at most
    ``max_items · cap`` in L1 and ``√max_items · cap`` in L2 (``cap`` = 1 with ``per_user``).

    Returns the float64 counts (n_items,) and ``{"dropped_events", "dropped_items", "capped_items",
    "users_over_bound", "events", "users"}`` (items = user-item pairs)."""
    ev = data.events
    keep = weights > 0
    users = ev["user_idx"].to_numpy()[keep].astype(np.int64)
    items = ev["item_idx"].to_numpy()[keep].astype(np.int64)
    pairs, inv = np.unique(users * data.n_items + items, return_inverse=True)
    total = np.bincount(inv, weights=weights[keep], minlength=len(pairs))
    pu, pi = pairs // data.n_items, pairs % data.n_items
    contribution = np.ones(len(pairs)) if per_user else np.minimum(total, cap)
    order = np.lexsort((_pair_keys(data, pu, pi, seed), -total, pu))  # by user, strongest first
    pu_sorted = pu[order]
    rank = np.arange(len(order)) - np.searchsorted(pu_sorted, pu_sorted, side="left")
    kept = np.zeros(len(pairs), dtype=bool)
    kept[order[rank < max_items]] = True
    counts = np.bincount(pi[kept], weights=contribution[kept], minlength=data.n_items)
    n_pairs = np.bincount(pu, minlength=data.n_users)
    report = {"events": int(keep.sum()), "users": int((n_pairs > 0).sum()),
              "dropped_events": int((~kept[inv]).sum()), "dropped_items": int((~kept).sum()),
              "capped_items": 0 if per_user else int((kept & (total > cap)).sum()),
              "users_over_bound": int((n_pairs > max_items).sum())}
    return counts, report


def calibrate(dp, mechanism: str, epsilon: float, delta: float | None, l1: float, l2: float):
    """The noise scale OpenDP's privacy map calibrates for ``epsilon`` (and ``delta``) at the given
    sensitivity, and the measurement itself (a vector of float counts → noisy counts): Laplace on the
    L1 distance (ε-DP), or Gaussian on the L2 distance, its zCDP converted to (ε, δ)."""
    if l1 <= 0.0:  # nothing can count: the counts are 0 whatever the data
        return 0.0, None
    if mechanism == "laplace":
        space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float)

        def make(scale: float):
            return dp.m.make_laplace(*space, scale=scale)
        d_in, d_out = l1, epsilon
    else:
        space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l2_distance(T=float)

        def make(scale: float):
            return dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(dp.m.make_gaussian(*space, scale=scale)),
                                       delta)
        d_in, d_out = l2, (epsilon, delta)
    try:
        scale = float(dp.binary_search_param(make, d_in=d_in, d_out=d_out))
    except dp.OpenDPException as e:  # e.g. the zCDP conversion overflows at an absurd ε
        raise ConfigError(f"popularity: OpenDP cannot calibrate the {mechanism} mechanism at ε={epsilon:g}"
                          f"{'' if delta is None else f', δ={delta:g}'}: {str(e).strip()}") from None
    return scale, make(scale)
