"""A reason for every recommended item: which strategies proposed it, and the anchor (the viewed
item, the basket item, the country trend, the search text) in words a shopper reads.

Anchors: strategies that know their own anchor expose ``top_anchor(queries, item_idx)`` (FBT) or
``top_segment(queries, item_idx)`` (cold start); for the other history-based strategies the anchor is
the request's item (basket, current item, session, recent history) that co-occurs most with the
recommended item in the training data (cosine over users), or is most similar in content.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..strategies._kernels import cosine_anchor
from ..strategies.base import Queries

TEMPLATES: dict[str, tuple[str, str]] = {
    # name: (with anchor, without anchor)
    "fbt": ("frequently bought together with {anchor}", "frequently bought together with your basket"),
    "item_knn": ("shoppers who chose {anchor} also chose this", "popular with shoppers like you"),
    "session_knn": ("seen in sessions like yours, with {anchor}", "seen in sessions like yours"),
    "sequential": ("often chosen next after {anchor}", "often chosen next in sessions like yours"),
    "sasrec": ("follows what you viewed, after {anchor}", "follows what you viewed"),
    "content_tfidf": ("similar to {anchor}", "matches what you looked at"),
    "content_embedding": ("similar to {anchor}", "matches what you looked at"),
    "ease": ("because you showed interest in {anchor}", "picked for your taste"),
    "als": ("because you showed interest in {anchor}", "picked for your taste"),
    "bpr": ("because you showed interest in {anchor}", "picked for your taste"),
    "linear_filter": ("because you showed interest in {anchor}", "picked for your taste"),
    "cold_start": ("popular with shoppers like you ({segment})", "popular right now"),
    "popularity": ("popular in the shop", "popular in the shop"),
}
TRENDING = "trending this week"
SEARCH = "matches “{query}”"


def anchor_candidates(queries: Queries, user_items: sp.csr_matrix, recent: int = 20) -> list[np.ndarray]:
    """Per request, the items a reason may point to: basket, current item, session (latest first), then
    the user's most weighted training items."""
    out = []
    for r in range(len(queries)):
        items = list(queries.basket[r]) + ([int(queries.current_item[r])] if queries.current_item[r] >= 0 else [])
        items += list(queries.items[r][::-1])
        u = int(queries.user_idx[r])
        if u >= 0 and u < user_items.shape[0]:
            row = user_items[u]
            top = row.indices[np.argsort(-row.data, kind="stable")[:recent]]
            items += list(top)
        seen, uniq = set(), []
        for i in items:
            if i not in seen:
                seen.add(i)
                uniq.append(int(i))
        out.append(np.asarray(uniq[:recent], dtype=np.int64))
    return out


def cooccurrence_anchor(item: int, cands: np.ndarray, item_users: sp.csr_matrix,
                        norms: np.ndarray) -> int:
    """The candidate anchor with the highest cosine co-occurrence with ``item`` (-1 if none)."""
    cands = cands[cands < item_users.shape[0]]
    if not len(cands):
        return -1
    if item >= item_users.shape[0]:  # an item added after fit: no co-occurrence known yet
        return int(cands[0])
    sims = np.asarray((item_users[cands] @ item_users[item].T).todense()).ravel()
    sims = sims / np.maximum(norms[cands] * norms[item], 1e-12)
    best = int(np.argmax(sims))
    return int(cands[best]) if sims[best] > 0 else int(cands[0])


def fill(template: str, **values: str | None) -> str:
    try:
        return template.format(**{k: (v or "") for k, v in values.items()})
    except (KeyError, IndexError):
        return template


def cooccurrence_anchors(item_idx: np.ndarray, pools: list[np.ndarray], item_users: sp.csr_matrix,
                         norms: np.ndarray) -> np.ndarray:
    """:func:`cooccurrence_anchor` for every recommended item of a batch (``item_idx`` (n, k), -1
    padded). Items unknown to ``item_users`` (added after fit), and items that co-occur with no
    anchor, get the request's first anchor; -1 where a request has no anchor at all. The compiled
    kernel (the pool indexed by user once per request); :func:`cooccurrence_anchors_sparse` is its
    SciPy reference."""
    return cosine_anchor(item_idx, pools, item_users, norms)


def cooccurrence_anchors_sparse(item_idx: np.ndarray, pools: list[np.ndarray], item_users: sp.csr_matrix,
                                norms: np.ndarray) -> np.ndarray:
    """:func:`cooccurrence_anchors` with one sparse product for the whole batch (the reference the
    kernel is tested against; its cost grows with the batch squared)."""
    n, k = item_idx.shape
    out = np.full((n, k), -1, dtype=np.int64)
    n_known = item_users.shape[0]
    pools = [p[p < n_known] for p in pools]
    sizes = np.array([len(p) for p in pools], dtype=np.int64)
    if not sizes.any():
        return out
    first = np.array([p[0] if len(p) else -1 for p in pools], dtype=np.int64)
    out[:] = first[:, None]
    out[item_idx < 0] = -1
    pool_req = np.repeat(np.arange(n), sizes)
    pool_items = np.concatenate(pools)
    flat = item_idx.ravel()
    req = np.repeat(np.arange(n), k)
    ok = np.flatnonzero((flat >= 0) & (flat < n_known) & (sizes[req] > 0))
    if not len(ok):
        return out
    prod = (item_users[flat[ok]] @ item_users[pool_items].T).tocoo()
    same = req[ok][prod.row] == pool_req[prod.col]
    rows, cols, vals = prod.row[same], prod.col[same], prod.data[same]
    vals = vals / np.maximum(norms[flat[ok]][rows] * norms[pool_items][cols], 1e-12)
    good = vals > 0
    rows, cols, vals = rows[good], cols[good], vals[good]
    if not len(rows):
        return out
    order = np.lexsort((cols, -vals, rows))   # per item: the best anchor, the earlier one on ties
    rows, cols = rows[order], cols[order]
    head = np.ones(len(rows), dtype=bool)
    head[1:] = rows[1:] != rows[:-1]
    flat_out = out.ravel()
    flat_out[ok[rows[head]]] = pool_items[cols[head]]
    return flat_out.reshape(n, k)
