"""The business rules of a scenario (``[rules]``) as a re-ranker whose work is all in ``constrain``:
one dense (n, n_items) mask from stock, basket, current item, history (purchased durables; consumables
come back after ``tolerance × median repurchase interval``), checkout price ratio, search-text match,
near-duplicates of basket items (content cosine ≥ threshold, a sparse item×item matrix built at fit)
and, for complements, a basket item's category. Applied before the strategies take their candidates,
so a rule never empties a list the catalogue can fill."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from ..facts import DAY
from ..stages import ReRanker, StageConfig


class RulesConfig(StageConfig):
    exclude_basket: bool = Field(default=True, description="Never recommend what is in the basket.")
    exclude_current_item: bool = Field(default=True, description="Never recommend the item on the page.")
    exclude_history: Literal["none", "purchased", "all"] = Field(
        default="none", description="Items of the user's history never to re-offer (see repurchase).")
    in_stock_only: bool = Field(default=True, description="Out-of-stock items never appear.")
    complements_only: bool = Field(
        default=False, description="Drop near-duplicates of basket items (content cosine above the threshold) "
                                   "and, where items have categories, items of a basket item's category.")
    max_similarity_to_basket: float = Field(default=0.8, gt=0, le=1)
    same_category_allowed: bool = Field(default=True, description="With complements_only: allow a basket item's category.")
    max_price_ratio: float | None = Field(
        default=None, gt=0, description="Checkout add-ons: price at most this fraction of the basket's value.")
    repurchase: bool = Field(
        default=False, description="With exclude_history: re-offer consumables once their repurchase interval "
                                   "has nearly passed (tolerance × median interval).")
    repurchase_tolerance: float = Field(default=0.8, gt=0)
    require_query_match: bool = Field(default=False, description="Search: only items whose text matches the query.")
    consumable_min_repeat: float = Field(
        default=0.1, ge=0, le=1, description="An item is consumable when at least this share of its buyers rebought it.")
    price_flags: Literal["off", "ignore", "note", "demote", "hold"] = Field(
        default="off", description="Items whose current price is abnormal (shoprec.health: spike, drop, subsidy, "
                                   "creep): demote after every other, hold back, note the reason, or ignore (flagged "
                                   "and reported, shown as ranked); off: not checked.")
    consumer_protection: Literal["off", "note", "demote", "hold"] = Field(
        default="off", description="Items often returned, poorly reviewed, late, or at counterfeit risk "
                                   "(shoprec.health.protection): note the reason, demote, hold back; off: not judged.")
    max_delivery_days: float | None = Field(
        default=None, gt=0, description="Never show items expected to take longer than this to the request's region "
                                        "(the delivery re-ranker, rerank/delivery.py, with its notes); None: not judged.")


class RulesReRanker(ReRanker):
    """``[rules]`` of a scenario (see the module docstring)."""

    name = "rules"
    Config = RulesConfig

    def needs_text(self) -> bool:
        c = self.config
        return c.complements_only or c.require_query_match

    def fit(self, data, env) -> "RulesReRanker":
        self.bind(env)
        self.near_dup_ = None
        if self.config.complements_only and env.text is not None:
            self.near_dup_ = near_duplicates(env.text.item_vectors(), self.config.max_similarity_to_basket)
        return self

    def bind(self, env) -> None:
        super().bind(env)
        self.__dict__.setdefault("near_dup_", None)

    def state(self) -> dict[str, np.ndarray]:
        if self.near_dup_ is None:
            return {}
        m = sp.csr_matrix(self.near_dup_)
        return {"near_dup.data": m.data, "near_dup.indices": m.indices, "near_dup.indptr": m.indptr,
                "near_dup.shape": np.asarray(m.shape, np.int64)}

    def set_state(self, state) -> None:
        if "near_dup.data" in state:
            self.near_dup_ = sp.csr_matrix((state["near_dup.data"], state["near_dup.indices"],
                                            state["near_dup.indptr"]), shape=tuple(state["near_dup.shape"]))

    def constrain(self, queries, allowed: np.ndarray) -> None:
        rules = self.config
        facts = self.env.facts
        ok = allowed
        n, m = len(queries), facts.n_items
        if rules.in_stock_only:
            ok &= facts.in_stock[None, :]
        rows_b = queries.basket.rows()
        if rules.exclude_basket and len(rows_b):
            ok[rows_b, queries.basket.values] = False
        if rules.exclude_current_item:
            cur = queries.current_item
            has = cur >= 0
            ok[np.flatnonzero(has), cur[has]] = False
        if rules.exclude_history != "none":
            self._mask_history(ok, queries)
        if rules.max_price_ratio is not None and len(rows_b):
            price = np.nan_to_num(facts.price[queries.basket.values], nan=0.0)
            value = np.bincount(rows_b, weights=price, minlength=n)
            limit = np.where(value > 0, value * rules.max_price_ratio, np.inf)
            known = np.isfinite(facts.price)
            ok &= ~known[None, :] | (facts.price[None, :] <= limit[:, None])
        if rules.complements_only and len(rows_b):
            basket = queries.basket.to_csr(m, binary=True)
            if self.near_dup_ is not None:
                dup = basket @ self.near_dup_
                ok[dup.nonzero()] = False
            if not rules.same_category_allowed and (facts.category >= 0).any():
                cat = facts.category
                has_cat = cat >= 0
                onehot = sp.csr_matrix((np.ones(has_cat.sum(), np.float32),
                                        (np.flatnonzero(has_cat), cat[has_cat])), shape=(m, cat.max() + 1))
                same = (basket @ onehot) @ onehot.T
                ok[same.nonzero()] = False
        text_index = self.env.text
        if rules.require_query_match and text_index is not None:
            text = queries.get_context("query")
            if text is not None:
                has_q = np.array([bool(t) for t in text])
                if has_q.any():
                    ok[has_q] &= text_index.query_matches([str(t) for t in text[has_q]], m)

    def _mask_history(self, ok: np.ndarray, queries) -> None:
        rules = self.config
        facts = self.env.facts
        n = len(queries)
        known = queries.user_idx >= 0
        if rules.exclude_history == "all":
            model = self.env.history_model()
            if model is not None:
                ok[model.history(queries, include_basket=False).nonzero()] = False
            return
        # purchased: the user's purchases before now, and purchases in the request's session
        bought = facts.purchased[np.where(known, queries.user_idx, 0)]
        if not known.all():
            bought = sp.diags(known.astype(np.float64)) @ bought
        bought = sp.csr_matrix(bought)
        r = np.repeat(np.arange(n), np.diff(bought.indptr))
        c = bought.indices
        if rules.repurchase and len(c):
            now = queries.get_context("timestamp")
            now_r = np.full(n, facts.now) if now is None else np.where(np.asarray(now, float) > 0, now, facts.now)
            since = (now_r[r] - (bought.data - 1.0)) / DAY
            interval = facts.repurchase_days[c]
            due = np.isfinite(interval) & (since >= rules.repurchase_tolerance * interval)
            r, c = r[~due], c[~due]
        ok[r, c] = False

    def refresh_items(self, changed: np.ndarray) -> None:
        """The near-duplicate rows of ``changed`` items from their new text vectors."""
        if self.near_dup_ is None or self.env.text is None:
            return
        m = self.env.facts.n_items
        vec = self.env.text.item_vectors()
        nd = self.near_dup_.copy()
        if nd.shape[0] < m:
            nd.resize((m, m))
        changed = np.asarray(changed, np.int64)
        if len(changed):
            keep = np.ones(m, np.float32)
            keep[changed] = 0.0
            d = sp.diags(keep)
            nd = sp.csr_matrix(d @ nd @ d)
            v = sp.csr_matrix(vec, dtype=np.float32) if sp.issparse(vec) else np.asarray(vec, np.float32)
            block = v[changed] @ v.T
            block = sp.csr_matrix(block)
            block.data = (block.data >= self.config.max_similarity_to_basket - 1e-6).astype(np.float32)
            block.eliminate_zeros()
            rows = sp.csr_matrix((np.ones(len(changed), np.float32), (changed, np.arange(len(changed)))),
                                 shape=(m, len(changed))) @ block
            nd = sp.csr_matrix(nd.maximum(rows).maximum(rows.T))
        self.near_dup_ = nd


def near_duplicates(vectors, threshold: float) -> sp.csr_matrix:
    """Sparse bool item×item: cosine ≥ threshold (the diagonal included), computed in row blocks."""
    v = sp.csr_matrix(vectors, dtype=np.float32) if sp.issparse(vectors) else np.asarray(vectors, np.float32)
    n = v.shape[0]
    parts = []
    for start in range(0, n, 2048):
        block = v[start:start + 2048] @ v.T
        block = sp.csr_matrix(block) if not sp.issparse(block) else block.tocsr()
        block.data = (block.data >= threshold - 1e-6).astype(np.float32)
        block.eliminate_zeros()
        parts.append(block)
    return sp.vstack(parts).tocsr() if parts else sp.csr_matrix((0, 0), dtype=np.float32)
