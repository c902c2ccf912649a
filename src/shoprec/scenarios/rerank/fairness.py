"""Fair exposure of groups of items (sellers, brands, categories): the ``[fairness]`` re-ranker.

A recommender gives most of a page's attention to a few sellers, because their items are the ones
most bought. This stage spreads the attention of the shown lists (the position-weighted exposure of
:mod:`shoprec.evaluation.exposure`) over the groups of an item-table column, choosing K items from a
larger fused pool::

    [fairness]
    method = "exposure"      # or "fair" (FA*IR), or "none" (the default)
    group = "seller"         # an item-table column: seller, brand, category, …
    strength = 0.3           # exposure: how far relevance gives way to the group's exposure deficit
    target = "equal"         # exposure: each group the same share, or "relevance" (its share of interactions)
    amortize = true          # exposure: track what was served, across requests
    pool = 100

Two methods:

* ``exposure`` — **amortised exposure** (in the spirit of Biega et al., SIGIR 2018, "Equity of
  attention", and Singh & Joachims, KDD 2018): each candidate's relevance (its fused score min-max
  normalised per request) is moved by ``strength · clip(log(target_g / share_g), ±max_shift)``,
  where ``share_g`` is the exposure share group ``g`` is getting and ``target_g`` what it should get
  (``equal``: 1 / the number of groups; ``relevance``: its share of the training interactions).
  Without ``amortize`` the share is estimated from the training interactions alone (what a
  popularity-led recommender gives each group), so the stage is a pure function of the request;
  with ``amortize`` the stage also counts the exposure it has served (an exponentially decayed sum
  with a half-life of ``half_life`` requests), requests taken in chunks of ``chunk`` in order, so a
  group that has had its share gives way to the next. Amortised answers depend on what was served
  before them (that is the point), so they are not a pure function of one request.
* ``fair`` — **FA*IR** (Zehlike et al., CIKM 2017): the items of "protected" groups (the small groups
  below, or the groups named in ``protected``) must make up, in every prefix of the top K, at least
  the minimum number the binomial test at significance ``alpha`` allows for a target proportion
  ``min_proportion`` (the *m-table*, with the paper's multiple-testing adjustment of ``alpha``;
  tested against the paper's Table 2 and the worked example of ``fairsearchcore``, the authors'
  package, which no longer runs on current pandas); otherwise the
  order is by relevance. The re-ranking itself is the paper's ``FA*IR`` merge of the protected and
  non-protected lists, vectorised over requests (K steps over all rows at once).

**Small groups** (:func:`shoprec.evaluation.exposure.small_groups`): those outside the largest groups
that together hold ``big_share`` of the training interactions, plus groups whose first interaction
is within ``new_days`` of the data's end (new sellers).

Items without a group (missing value, or added to the catalogue after the fit) are neither
penalised nor protected. A scenario whose ``group`` column is not in the catalogue is a
:class:`~shoprec.exceptions.ConfigError` at fit naming the columns there are.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import Field

from ...evaluation.exposure import group_codes, position_weights, small_groups
from ...exceptions import ConfigError
from ..stages import Ranked, ReRanker, StageConfig

__all__ = ["FairExposureConfig", "FairExposureReRanker", "fa_ir_merge", "fail_probability", "fair_mtable", "mtable"]


class FairExposureConfig(StageConfig):
    method: Literal["exposure", "fair"] = Field(default="exposure", description="Amortised exposure or FA*IR.")
    group: str = Field(default="seller", min_length=1, description="The item-table column whose values are the groups.")
    strength: float = Field(default=0.3, ge=0, description="exposure: weight of the group's log exposure deficit.")
    max_shift: float = Field(default=1.0, gt=0, description="exposure: the log ratio is clipped to ± this.")
    target: Literal["equal", "relevance"] = Field(default="equal", description="exposure: each group's target share.")
    amortize: bool = Field(default=False, description="exposure: count what was served, across requests.")
    half_life: float = Field(default=5000.0, gt=0, description="amortize: half-life of served exposure, in requests.")
    chunk: int = Field(default=32, ge=1, description="amortize: requests re-ranked together between updates.")
    min_proportion: float = Field(default=0.3, gt=0, lt=1, description="fair: target proportion of protected items.")
    alpha: float = Field(default=0.1, gt=0, lt=1, description="fair: significance of the FA*IR test.")
    protected: list[str] = Field(default_factory=list, description="fair: protected groups by name; empty = small groups.")
    big_share: float = Field(default=0.5, gt=0, le=1, description="Groups outside the largest holding this share are small.")
    new_days: float = Field(default=90.0, ge=0, description="Groups first seen within this many days of the end are new.")
    pool: int = Field(default=100, ge=1, description="Choose K from the top `pool` fused items.")


def mtable(k: int, p: float, alpha: float) -> np.ndarray:
    """FA*IR's unadjusted m-table: for each prefix length i = 1..k, ``F⁻¹(alpha; i, p)`` of the
    binomial, the fewest protected items a prefix may hold before the test rejects it (Table 2 of
    the paper)."""
    from scipy.stats import binom

    return np.maximum(binom.ppf(alpha, np.arange(1, k + 1), p), 0).astype(np.int64)


def fail_probability(table: np.ndarray, p: float) -> float:
    """The probability that a ranking whose items are protected independently with probability
    ``p`` fails the m-table at some prefix (exact, by dynamic programming over the count of
    protected items; the paper's multiple-testing correction is the ``alpha`` that makes this
    equal to the significance asked for)."""
    k = len(table)
    dist = np.zeros(k + 2)
    dist[0] = 1.0
    for i in range(k):
        nxt = dist * (1 - p)
        nxt[1:] += dist[:-1] * p
        nxt[: int(table[i])] = 0.0          # prefixes below the table fail
        dist = nxt
    return float(1.0 - dist.sum())


@lru_cache(maxsize=64)
def fair_mtable(k: int, p: float, alpha: float, adjust: bool = True) -> tuple[int, ...]:
    """The m-table of FA*IR; with ``adjust``, built with a corrected significance ``alpha_c`` for
    testing all k prefixes at once: of the tables that ``alpha_c ∈ (0, alpha]`` give, the one whose
    exact :func:`fail_probability` is closest to ``alpha`` (found by bisection at the boundary
    between tables failing a fair ranking at most and more than ``alpha`` often; a tie goes to the
    more lenient), as the authors' package ``fairsearchcore`` chooses it. (That package no longer
    runs on current pandas: its recursion hashes a list; its README's worked example is a test here.)"""
    if not adjust:
        return tuple(int(x) for x in mtable(k, p, alpha))
    top = mtable(k, p, alpha)
    if fail_probability(top, p) <= alpha:
        return tuple(int(x) for x in top)
    lo, hi = 0.0, alpha
    for _ in range(60):
        mid = (lo + hi) / 2
        if fail_probability(mtable(k, p, mid), p) <= alpha:
            lo = mid
        else:
            hi = mid
    lenient, strict = mtable(k, p, max(lo, 1e-15)), mtable(k, p, hi)
    f_len, f_str = fail_probability(lenient, p), fail_probability(strict, p)
    best = lenient if abs(f_len - alpha) <= abs(f_str - alpha) else strict
    return tuple(int(x) for x in best)


def fa_ir_merge(rel: np.ndarray, protected: np.ndarray, mtable: np.ndarray, k: int) -> np.ndarray:
    """The FA*IR merge (Zehlike et al. 2017, Algorithm 2) of every row at once: ``rel`` (n, P) float
    with -inf for empty slots, ``protected`` (n, P) bool; returns (n, k) positions into the pool
    (-1 where the pool ran out). At prefix i, a protected item is taken when fewer than
    ``mtable[i]`` have been; otherwise the better of the best protected and the best
    non-protected remaining, a tie going to the protected one (as the reference implementation)."""
    n, P = rel.shape
    valid = np.isfinite(rel)
    order = np.argsort(-np.where(valid, rel, -np.inf), axis=1, kind="stable")
    srel = np.take_along_axis(np.where(valid, rel, -np.inf), order, 1)
    sprot = np.take_along_axis(protected & valid, order, 1)
    snon = np.take_along_axis(~protected & valid, order, 1)
    # per row, the sorted positions of protected and of non-protected items, each list best first
    big = P + 1
    pos = np.arange(P)
    p_list = np.sort(np.where(sprot, pos, big), axis=1)
    n_list = np.sort(np.where(snon, pos, big), axis=1)
    p_list = np.concatenate([p_list, np.full((n, 1), big)], 1)
    n_list = np.concatenate([n_list, np.full((n, 1), big)], 1)
    ip = np.zeros(n, np.int64)
    inn = np.zeros(n, np.int64)
    rows = np.arange(n)
    srel_pad = np.concatenate([srel, np.full((n, 1), -np.inf)], 1)
    out = np.full((n, k), -1, np.int64)
    count = np.zeros(n, np.int64)
    for i in range(min(k, P)):
        bp = p_list[rows, np.minimum(ip, P)]
        bn = n_list[rows, np.minimum(inn, P)]
        have_p, have_n = bp < big, bn < big
        need = count < (mtable[i] if i < len(mtable) else 0)
        take_p = have_p & (~have_n | need | (srel_pad[rows, np.minimum(bp, P)] >= srel_pad[rows, np.minimum(bn, P)]))
        take_n = have_n & ~take_p
        chosen = np.where(take_p, bp, np.where(take_n, bn, -1))
        ok = chosen >= 0
        out[ok, i] = order[rows[ok], chosen[ok]]
        ip += take_p
        inn += take_n
        count += take_p
    return out


class FairExposureReRanker(ReRanker):
    """``[fairness]`` of a scenario (see the module docstring)."""

    name = "fair_exposure"
    Config = FairExposureConfig

    def pool(self, k: int) -> int:
        return max(k, self.config.pool)

    # ------------------------------------------------------------------ fit
    def fit(self, data, env) -> "FairExposureReRanker":
        self.bind(env)
        cfg = self.config
        table = data.item_table
        cols = [] if table is None else [str(c) for c in table.columns]
        if cfg.group not in cols and not (cfg.group == "category" and (env.facts.category >= 0).any()):
            raise ConfigError(f"[fairness] group = {cfg.group!r}: the catalogue has no such column "
                              f"(item columns: {', '.join(cols) or 'none'})")
        if cfg.group in cols:
            codes, names = group_codes(table, cfg.group, data.n_items)
        else:
            codes, names = env.facts.category.astype(np.int64), list(env.facts.category_names)
        if not len(names):
            raise ConfigError(f"[fairness] group = {cfg.group!r}: the column holds no values")
        self.group_ = codes.astype(np.int32)
        self.names_ = names
        G = len(names)
        small, volume = small_groups(data, codes, G, big_share=cfg.big_share, new_days=cfg.new_days)
        share = volume / volume.sum() if volume.sum() > 0 else np.full(G, 1.0 / G)
        self.prior_ = share.astype(np.float64)
        if cfg.target == "equal":
            self.target_ = np.full(G, 1.0 / G)
        else:
            self.target_ = np.maximum(share, 0.5 / max(volume.sum(), 1.0))
            self.target_ /= self.target_.sum()
        if cfg.protected:
            unknown = sorted(set(cfg.protected) - set(names))
            if unknown:
                raise ConfigError(f"[fairness] protected groups not in column {cfg.group!r}: {', '.join(unknown[:5])}")
            small = np.isin(np.asarray(names, dtype=object), cfg.protected)
        self.small_ = np.asarray(small, bool)
        self.served_ = np.zeros(G, np.float64)
        return self

    def state(self) -> dict[str, np.ndarray]:
        return {"group": self.group_, "prior": self.prior_, "target": self.target_, "small": self.small_,
                "served": self.served_, "names": np.asarray(self.names_, dtype=str)}

    def set_state(self, state) -> None:
        self.group_ = np.asarray(state["group"], np.int32)
        self.prior_ = np.asarray(state["prior"], np.float64)
        self.target_ = np.asarray(state["target"], np.float64)
        self.small_ = np.asarray(state["small"], bool)
        self.served_ = np.asarray(state["served"], np.float64).copy()
        self.names_ = [str(x) for x in state["names"]]

    def refresh_items(self, changed: np.ndarray) -> None:
        """Items added after the fit belong to no group (neither penalised nor protected)."""
        n = self.env.facts.n_items if self.env is not None else len(self.group_)
        if n > len(self.group_):
            self.group_ = np.concatenate([self.group_, np.full(n - len(self.group_), -1, np.int32)])

    # ------------------------------------------------------------------ rerank
    def _groups(self, idx: np.ndarray) -> np.ndarray:
        g = np.where(idx >= 0, self.group_[np.clip(idx, 0, len(self.group_) - 1)], -1)
        return np.where(idx < len(self.group_), g, -1)

    def rerank(self, ranked: Ranked, queries, k: int) -> Ranked:
        idx, val = ranked.item_idx, ranked.scores
        valid = (idx >= 0) & np.isfinite(val)
        rel = np.where(valid, val, np.nan).astype(np.float64)
        lo = np.nanmin(np.where(valid, rel, np.inf), axis=1, keepdims=True)
        hi = np.nanmax(np.where(valid, rel, -np.inf), axis=1, keepdims=True)
        rel = np.where(valid, (rel - lo) / np.maximum(hi - lo, 1e-9), -np.inf)
        groups = self._groups(idx)
        if self.config.method == "fair":
            m = np.asarray(fair_mtable(int(k), float(self.config.min_proportion), float(self.config.alpha)))
            prot = (groups >= 0) & self.small_[np.maximum(groups, 0)]
            picks = fa_ir_merge(rel, prot, m, k)
        elif self.config.amortize:
            picks = np.full((len(idx), min(k, idx.shape[1])), -1, np.int64)
            step = self.config.chunk
            for a in range(0, len(idx), step):
                sl = slice(a, a + step)
                picks[sl] = self._top(rel[sl], groups[sl], k, self._share())
                self._serve(groups[sl], picks[sl])
        else:
            picks = self._top(rel, groups, k, self.prior_)
        have = picks >= 0
        safe = np.where(have, picks, 0)
        out_idx = np.where(have, np.take_along_axis(idx, safe, 1), -1).astype(np.int32)
        out_val = np.where(have, np.take_along_axis(val, safe, 1), -np.inf).astype(np.float32)
        out_src = np.where(have, np.take_along_axis(ranked.sources, safe, 1), 0)
        return Ranked(out_idx, out_val, out_src)

    def _share(self) -> np.ndarray:
        """The exposure share each group is getting: what was served, and the prior for the first."""
        total = self.served_.sum()
        prior_mass = self.config.half_life / 10.0     # the prior weighs like a tenth of a half-life's lists
        return (self.served_ + prior_mass * self.prior_) / (total + prior_mass)

    def _top(self, rel: np.ndarray, groups: np.ndarray, k: int, share: np.ndarray) -> np.ndarray:
        cfg = self.config
        floor = 1e-6
        shift = np.clip(np.log(self.target_ / np.maximum(share, floor)), -cfg.max_shift, cfg.max_shift)
        adj = rel + np.where(groups >= 0, cfg.strength * shift[np.maximum(groups, 0)], 0.0)
        adj = np.where(np.isfinite(rel), adj, -np.inf)
        kk = min(k, adj.shape[1])
        order = np.argsort(-adj, axis=1, kind="stable")[:, :kk]
        ok = np.isfinite(np.take_along_axis(adj, order, 1))
        return np.where(ok, order, -1)

    def _serve(self, groups: np.ndarray, picks: np.ndarray) -> None:
        w = position_weights(picks.shape[1])
        have = picks >= 0
        g = np.take_along_axis(groups, np.where(have, picks, 0), 1)
        ok = have & (g >= 0)
        decay = 0.5 ** (len(picks) / self.config.half_life)
        self.served_ *= decay
        self.served_ += np.bincount(g[ok], weights=np.broadcast_to(w, g.shape)[ok], minlength=len(self.served_))

    def current(self) -> dict:
        """What the stage holds: groups, their targets and served shares (for audits)."""
        share = self._share()
        return {"groups": len(self.names_), "small": int(self.small_.sum()),
                "served_share": dict(zip(self.names_, share.round(6).tolist()))}
