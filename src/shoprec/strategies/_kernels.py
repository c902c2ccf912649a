"""Compiled kernels of the serving hot path (numba, ``nogil``: the engine thread computes on one
core while the HTTP loop runs on the other).

Each kernel has a NumPy/SciPy reference in the module that uses it (the same answer, ties and
padding included; the tests check them against each other on random inputs), and is compiled on
first use (cached on disk by numba, so a restart reuses the machine code); the service's warm-up
makes that first use happen before the first customer's request.

* :func:`product_topk` — the top-``k`` positive entries of ``h @ (S₁ + S₂ + …)`` per row, under an
  ``allowed`` mask, without forming the product: per request, the history's neighbour rows are
  accumulated into one dense scratch row and only the touched entries are ranked. Replaces a sparse
  product plus a lexsort over every stored entry (item-kNN, co-visitation, session-kNN, content).
* :func:`product_anchor` — for each recommended item, the history item contributing most to its
  score, ``argmax_i h(q, i) · S(i, item)``, by binary search in the history items' sorted rows (no
  transposed copy of the similarity is kept).
* :func:`cosine_anchor` — the reason's anchor by cosine co-occurrence: per request, the anchors' rows
  indexed by user once, each recommended item's row read once against them, instead of a product
  over the whole batch.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

try:  # numba is a dependency; the import is lazy so that the command line starts fast
    import numba as _nb
except ImportError:  # pragma: no cover - only a broken install lacks it
    _nb = None

_JIT = dict(nogil=True, cache=True, fastmath=False, boundscheck=False)


def available() -> bool:
    return _nb is not None


def _csr(x) -> sp.csr_matrix:
    x = x if sp.isspmatrix_csr(x) or isinstance(x, sp.csr_array) else sp.csr_matrix(x)
    if not x.has_sorted_indices:
        x = x.copy()
        x.sort_indices()
    return x


def _two(mats) -> tuple:
    """One or two CSR matrices of the same shape (a model's similarity, its live additions) as the
    kernels' arguments: (indptr, indices, data) of each and whether there is a second; no copy of
    the arrays (numba compiles a version per index dtype)."""
    mats = [mats] if sp.issparse(mats) else [m for m in mats if m is not None]
    if len(mats) > 2:
        raise ValueError("the kernels take a matrix and at most one matrix of additions")
    a = _csr(mats[0])
    n_cols = a.shape[1]
    if len(mats) == 2 and mats[1].nnz:
        b = _csr(mats[1])
        n_cols = max(n_cols, b.shape[1])
        return a.indptr, a.indices, a.data, b.indptr, b.indices, b.data, True, n_cols
    return a.indptr, a.indices, a.data, a.indptr[:1], a.indices[:1], a.data[:1], False, n_cols


if _nb is not None:
    @_nb.njit(**_JIT)
    def _worse(v1, j1, v2, j2):
        """Whether (v1, j1) ranks below (v2, j2): a lower score, or the same score and a higher index."""
        return v1 < v2 or (v1 == v2 and j1 > j2)

    @_nb.njit(**_JIT)
    def _swap(hi, hv, r, a, b):
        tv = hv[r, a]
        ti = hi[r, a]
        hv[r, a] = hv[r, b]
        hi[r, a] = hi[r, b]
        hv[r, b] = tv
        hi[r, b] = ti

    @_nb.njit(**_JIT)
    def _sift_down(hi, hv, r, pos, size):
        while True:
            c = 2 * pos + 1
            if c >= size:
                return
            if c + 1 < size and _worse(hv[r, c + 1], hi[r, c + 1], hv[r, c], hi[r, c]):
                c += 1
            if _worse(hv[r, c], hi[r, c], hv[r, pos], hi[r, pos]):
                _swap(hi, hv, r, c, pos)
                pos = c
            else:
                return

    @_nb.njit(**_JIT)
    def _heap_push(best_i, best_v, fill, r, k, v, j):
        """Add (v, j) to row r's min-heap of the k best (the worst at the root), when it belongs."""
        if fill[r] < k:   # sift up
            pos = fill[r]
            fill[r] += 1
            best_v[r, pos] = v
            best_i[r, pos] = j
            while pos > 0:
                parent = (pos - 1) >> 1
                if _worse(best_v[r, pos], best_i[r, pos], best_v[r, parent], best_i[r, parent]):
                    _swap(best_i, best_v, r, parent, pos)
                    pos = parent
                else:
                    break
        elif _worse(best_v[r, 0], best_i[r, 0], v, j):
            best_v[r, 0] = v
            best_i[r, 0] = j
            _sift_down(best_i, best_v, r, 0, k)

    @_nb.njit(**_JIT)
    def _sorted_heap(best_i, best_v, fill, r, out_idx, out_val):
        """Row r's heap, best first (ties to the lower index), into out_idx[r] / out_val[r]."""
        c = fill[r]
        size = c
        while size > 0:                       # heap sort: pop the worst to the end
            size -= 1
            _swap(best_i, best_v, r, 0, size)
            _sift_down(best_i, best_v, r, 0, size)
        for q in range(c):
            out_idx[r, q] = best_i[r, q]
            out_val[r, q] = best_v[r, q]

    @_nb.njit(**_JIT)
    def _heap_scratch(k):
        """A one-row heap of the k best and its sorted output (see :func:`_touched_topk`)."""
        return (np.empty((1, k), np.int64), np.empty((1, k), np.float32), np.zeros(1, np.int64),
                np.empty((1, k), np.int64), np.empty((1, k), np.float32))

    @_nb.njit(**_JIT)
    def _touched_topk(acc, seen, touched, t, allowed, use_allowed, r, k, scratch, out_idx, out_val):
        """Row r's k best positive, allowed entries among the ``t`` touched ones of the scratch row
        ``acc`` into out_idx[r] / out_val[r] (best first, ties to the lower index); resets ``acc``
        and ``seen`` for the next row."""
        heap_i, heap_v, fill, out_i2, out_v2 = scratch
        fill[0] = 0
        for q in range(t):
            j = touched[q]
            v = np.float32(acc[j])
            acc[j] = 0.0
            seen[j] = False
            if v > 0 and (not use_allowed or allowed[r, j]):
                _heap_push(heap_i, heap_v, fill, 0, k, v, j)
        _sorted_heap(heap_i, heap_v, fill, 0, out_i2, out_v2)
        for q in range(fill[0]):
            out_idx[r, q] = out_i2[0, q]
            out_val[r, q] = out_v2[0, q]

    @_nb.njit(**_JIT)
    def _merge_block(sc, rows, items, allowed, best_i, best_v, fill):
        k = best_i.shape[1]
        for a in range(len(rows)):
            r = rows[a]
            for b in range(sc.shape[1]):
                v = sc[a, b]
                j = items[b]
                if fill[r] == k and not _worse(best_v[r, 0], best_i[r, 0], v, j):
                    continue      # not better than the worst held (the heap's root)
                if not allowed[r, j]:
                    continue
                _heap_push(best_i, best_v, fill, r, k, v, j)


    @_nb.njit(**_JIT)
    def _product_topk(h_ptr, h_idx, h_val, a_ptr, a_idx, a_val, b_ptr, b_idx, b_val, two, allowed,
                      use_allowed, floor, use_floor, n_cols, k, out_idx, out_val):
        n = len(h_ptr) - 1
        a_rows = len(a_ptr) - 1
        b_rows = len(b_ptr) - 1
        acc = np.zeros(n_cols, np.float32)
        seen = np.zeros(n_cols, np.bool_)
        touched = np.empty(n_cols, np.int32)
        scratch = _heap_scratch(k)
        for r in range(n):
            t = 0
            for a in range(h_ptr[r], h_ptr[r + 1]):
                i = h_idx[a]
                w = h_val[a]
                if i < a_rows:
                    lim = floor[i] if use_floor and i < len(floor) else -np.inf
                    for b in range(a_ptr[i], a_ptr[i + 1]):
                        if a_val[b] < lim:
                            continue
                        j = a_idx[b]
                        if not seen[j]:
                            seen[j] = True
                            touched[t] = j
                            t += 1
                        acc[j] += w * a_val[b]
                if two and i < b_rows:
                    for b in range(b_ptr[i], b_ptr[i + 1]):
                        j = b_idx[b]
                        if not seen[j]:
                            seen[j] = True
                            touched[t] = j
                            t += 1
                        acc[j] += w * b_val[b]
            # the touched entries that are positive and allowed, through a heap of the k best
            _touched_topk(acc, seen, touched, t, allowed, use_allowed, r, k, scratch, out_idx, out_val)

    @_nb.njit(**_JIT)
    def _lookup(ptr, idx, val, i, j):
        lo = ptr[i]
        end = ptr[i + 1]
        hi = end
        while lo < hi:                     # binary search of j in row i (sorted indices)
            mid = (lo + hi) >> 1
            if idx[mid] < j:
                lo = mid + 1
            else:
                hi = mid
        if lo < end and idx[lo] == j:
            return val[lo]
        return 0.0

    @_nb.njit(**_JIT)
    def _product_anchor(h_ptr, h_idx, h_val, a_ptr, a_idx, a_val, b_ptr, b_idx, b_val, two, items, out):
        n, k = items.shape
        a_rows = len(a_ptr) - 1
        b_rows = len(b_ptr) - 1
        for r in range(n):
            for q in range(k):
                j = items[r, q]
                if j < 0:
                    continue
                best = 0.0
                src = -1
                for a in range(h_ptr[r], h_ptr[r + 1]):   # ascending history index: ties to the lower
                    i = h_idx[a]
                    total = 0.0
                    if i < a_rows:
                        total += _lookup(a_ptr, a_idx, a_val, i, j)
                    if two and i < b_rows:
                        total += _lookup(b_ptr, b_idx, b_val, i, j)
                    contrib = h_val[a] * total
                    if contrib > best:
                        best = contrib
                        src = i
                out[r, q] = src

    @_nb.njit(**_JIT)
    def _cosine_anchor(items, pool_ptr, pool, ptr, idx, val, norms, n_known, n_users, out):
        n, k = items.shape
        most = 0
        for r in range(n):                       # the largest pool, in stored entries
            size = 0
            for p in range(pool_ptr[r], pool_ptr[r + 1]):
                size += ptr[pool[p] + 1] - ptr[pool[p]]
            most = max(most, size)
        head = np.full(n_users, -1, np.int64)    # user → the last pool entry holding them
        nxt = np.empty(most, np.int64)
        slot = np.empty(most, np.int64)
        weight = np.empty(most, np.float64)
        dots = np.zeros(max(1, int(np.max(pool_ptr[1:] - pool_ptr[:-1]))), np.float64)
        for r in range(n):
            lo, hi = pool_ptr[r], pool_ptr[r + 1]
            if lo == hi:
                continue
            first = pool[lo]
            e = 0
            for p in range(lo, hi):              # the pool's users, as linked lists per user
                a = pool[p]
                for b in range(ptr[a], ptr[a + 1]):
                    u = idx[b]
                    slot[e] = p - lo
                    weight[e] = val[b]
                    nxt[e] = head[u]
                    head[u] = e
                    e += 1
            for q in range(k):
                j = items[r, q]
                if j < 0:
                    continue
                src = first
                if j < n_known:
                    for s in range(hi - lo):
                        dots[s] = 0.0
                    for b in range(ptr[j], ptr[j + 1]):   # one pass over the item's users
                        x = val[b]
                        f = head[idx[b]]
                        while f >= 0:
                            dots[slot[f]] += x * weight[f]
                            f = nxt[f]
                    best = 0.0
                    for s in range(hi - lo):              # pool order: ties to the earlier
                        d = dots[s]
                        if d > 0:
                            a = pool[lo + s]
                            d = d / max(norms[a] * norms[j], 1e-12)
                            if d > best:
                                best = d
                                src = a
                out[r, q] = src
            for p in range(lo, hi):              # reset the scratch for the next request
                a = pool[p]
                for b in range(ptr[a], ptr[a + 1]):
                    head[idx[b]] = -1

    @_nb.njit(**_JIT)
    def _session_knn_topk(q_ptr, q_item, q_w, q_age, q_norm, q_user, is_ptr, is_sess, s_ptr, s_item, s_pos,
                          s_user, s_factor, idf, exclude_own, sample, n_neigh, lam_nb, lam_rec, lam_idf,
                          allowed, use_allowed, k, out_idx, out_val):
        n = len(q_ptr) - 1
        n_items = len(idf)
        n_sess = len(s_factor)
        qslot = np.full(n_items, -1, np.int64)
        seen = np.zeros(n_sess, np.bool_)
        cand = np.empty(n_sess, np.int64)
        acc = np.zeros(n_items, np.float64)
        hit = np.zeros(n_items, np.bool_)
        touched = np.empty(n_items, np.int64)
        scratch = _heap_scratch(k)
        big = np.iinfo(np.int64).max
        for r in range(n):
            lo, hi = q_ptr[r], q_ptr[r + 1]
            if lo == hi:
                continue
            for a in range(lo, hi):
                qslot[q_item[a]] = a
            # candidates: the training sessions holding a query item, not the user's own
            c = 0
            for a in range(lo, hi):
                i = q_item[a]
                for b in range(is_ptr[i], is_ptr[i + 1]):
                    ss = is_sess[b]
                    if seen[ss]:
                        continue
                    seen[ss] = True
                    if exclude_own and q_user[r] >= 0 and s_user[ss] == q_user[r]:
                        continue
                    cand[c] = ss
                    c += 1
            for a in range(lo, hi):
                i = q_item[a]
                for b in range(is_ptr[i], is_ptr[i + 1]):
                    seen[is_sess[b]] = False
            cs = np.sort(cand[:c])[::-1]            # the most recent first
            if sample > 0 and len(cs) > sample:
                cs = cs[:sample]
            m = len(cs)
            sim = np.zeros(m, np.float64)
            pos_star = np.zeros(m, np.int64)
            age_star = np.full(m, big, np.int64)
            for t in range(m):
                ss = cs[t]
                total = 0.0
                for b in range(s_ptr[ss], s_ptr[ss + 1]):
                    a = qslot[s_item[b]]
                    if a >= 0:
                        total += q_w[a]
                        if s_pos[b] > pos_star[t]:
                            pos_star[t] = s_pos[b]
                        if q_age[a] < age_star[t]:
                            age_star[t] = q_age[a]
                sim[t] = total / max(q_norm[r], 1e-12) * s_factor[ss]
            for a in range(lo, hi):
                qslot[q_item[a]] = -1
            # the n_neigh most similar with sim > 0 (ties: the more recent, earlier in cs: a stable sort)
            order = np.argsort(-sim, kind="mergesort")
            n_t = 0
            for o in order[:min(n_neigh, m)]:
                if sim[o] <= 0:
                    break
                ss = cs[o]
                w = sim[o]
                if lam_rec > 0:
                    w = w * np.exp(-age_star[o] / lam_rec)
                for b in range(s_ptr[ss], s_ptr[ss + 1]):
                    j = s_item[b]
                    x = w
                    if lam_nb > 0:
                        x = x * np.exp(-abs(s_pos[b] - pos_star[o]) / lam_nb)
                    if lam_idf >= 0:
                        x = x * (1.0 + lam_idf * idf[j])
                    if not hit[j]:
                        hit[j] = True
                        touched[n_t] = j
                        n_t += 1
                    acc[j] += x
            _touched_topk(acc, hit, touched, n_t, allowed, use_allowed, r, k, scratch, out_idx, out_val)


def merge_block(sc: np.ndarray, rows: np.ndarray, items: np.ndarray, allowed: np.ndarray, best_i: np.ndarray,
                best_v: np.ndarray, fill: np.ndarray) -> None:
    """Fold a block of scores (``sc[a, b]``: request ``rows[a]``, item ``items[b]``) into each
    request's running top-k, allowed items only, ties to the lower index. ``best_i`` / ``best_v``
    (n, k) hold each request's best as a binary min-heap (the worst held at position 0), ``fill``
    how many are held. In place."""
    _merge_block(np.ascontiguousarray(sc, dtype=np.float32), rows.astype(np.int64, copy=False),
                 items.astype(np.int64, copy=False), allowed, best_i, best_v, fill)


def product_topk(history, mats, k: int, allowed: np.ndarray | None = None,
                 floor: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` positive entries of each row of ``history @ sum(mats)`` (only where ``allowed``, a
    bool (n, >= n_cols) mask): item indices int32 (n, k) and scores float32 (n, k), best first, ties
    to the lower index, ``-1`` / ``-inf`` padding — what :func:`~shoprec.strategies.topk.sparse_topk`
    gives on the materialised product. ``floor`` (per row of the first matrix): its entries below
    ``floor[i]`` are left out (a fan-out by value: see :func:`row_floor`); the second matrix is
    always read whole."""
    h = _csr(history)
    *parts, two, n_cols = _two(mats)
    n = h.shape[0]
    out_idx = np.full((n, k), -1, np.int32)
    out_val = np.full((n, k), -np.inf, np.float32)
    if n == 0 or k == 0 or h.nnz == 0:
        return out_idx, out_val
    use = allowed is not None
    mask = np.ascontiguousarray(allowed, dtype=np.bool_) if use else np.ones((1, 1), np.bool_)
    if use and mask.shape[1] < n_cols:
        raise ValueError(f"allowed has {mask.shape[1]} columns, the product {n_cols}")
    use_floor = floor is not None
    lim = np.asarray(floor, np.float32) if use_floor else np.zeros(1, np.float32)
    _product_topk(h.indptr, h.indices, h.data.astype(np.float32, copy=False), *parts, two, mask, use,
                  lim, use_floor, n_cols, k, out_idx, out_val)
    return out_idx, out_val


def product_anchor(history, mats, item_idx: np.ndarray) -> np.ndarray:
    """For each ``item_idx[r, q]`` (-1 padded), the history item ``i`` of row ``r`` maximising
    ``history(r, i) · sum(mats)(i, item)`` (ties to the lower ``i``), -1 when none contributes."""
    h = _csr(history)
    *parts, two, _ = _two(mats)
    items = np.ascontiguousarray(item_idx, dtype=np.int64)
    out = np.full(items.shape, -1, np.int64)
    if h.nnz == 0 or items.size == 0:
        return out
    _product_anchor(h.indptr, h.indices, h.data.astype(np.float32, copy=False), *parts, two, items, out)
    return out


def cosine_anchor(item_idx: np.ndarray, pools: list[np.ndarray], item_users, norms: np.ndarray) -> np.ndarray:
    """For each recommended ``item_idx[r, q]`` (-1 padded), the item of ``pools[r]`` with the highest
    cosine co-occurrence ``<x_item, x_a> / (‖x_item‖ ‖x_a‖)`` over ``item_users``' rows (ties and
    items co-occurring with none: the pool's earlier / first item; items beyond ``item_users``,
    added after fit: the first); -1 where the pool is empty. Pool items beyond ``item_users`` are
    left out. Per request the pool's rows are laid out once as a list per user (column), then each
    recommended item's row is read once against it: no product over the batch is formed, and a
    pair of popular items costs no more than their rows' length."""
    x = _csr(item_users)
    n_known = x.shape[0]
    items = np.ascontiguousarray(item_idx, dtype=np.int64)
    out = np.full(items.shape, -1, np.int64)
    pools = [np.asarray(p, dtype=np.int64) for p in pools]
    pools = [p[(p >= 0) & (p < n_known)] for p in pools]
    sizes = np.array([len(p) for p in pools], dtype=np.int64)
    if not sizes.any() or items.size == 0:
        return out
    pool_ptr = np.zeros(len(pools) + 1, np.int64)
    np.cumsum(sizes, out=pool_ptr[1:])
    _cosine_anchor(items, pool_ptr, np.concatenate(pools), x.indptr, x.indices, x.data.astype(np.float32, copy=False),
                   np.asarray(norms, dtype=np.float64), n_known, x.shape[1], out)
    return out


def row_floor(x, fan: int) -> np.ndarray:
    """Per row of ``x`` (CSR), the ``fan``-th largest stored value (float32; ``-inf`` for rows with
    fewer entries): the entries at or above it are the row's ``fan`` largest (more on ties at the
    boundary). One float per row instead of a second, pruned copy of the matrix."""
    x = sp.csr_matrix(x)
    n = x.shape[0]
    out = np.full(n, -np.inf, np.float32)
    lens = np.diff(x.indptr)
    rows = np.flatnonzero(lens >= fan)
    if fan <= 0 or not len(rows):
        return out
    row_of = np.repeat(np.arange(n), lens)
    order = np.lexsort((-x.data, row_of))            # per row, largest first
    out[rows] = x.data[order][x.indptr[rows] + fan - 1]
    return out


def session_knn_topk(model, q_ptr: np.ndarray, q_item: np.ndarray, q_w: np.ndarray, q_age: np.ndarray,
                     q_norm: np.ndarray, q_user: np.ndarray, k: int, allowed: np.ndarray | None,
                     exclude_own: bool) -> tuple[np.ndarray, np.ndarray]:
    """Session-kNN's top-``k`` neighbour-based items per query straight from the fitted arrays of a
    :class:`~shoprec.strategies.session_knn.SessionKNNStrategy` (``model``), what its sparse
    reference ``_sparse_scores`` followed by ``sparse_topk`` gives: per query, the candidate
    sessions, their similarity, the ``k`` neighbours and the item scores in one pass over
    scratch arrays. The query items (``q_ptr``/``q_item``: distinct per query, with their position
    weight, age and the query's norm) are prepared by the strategy."""
    cfg = model.config
    n = len(q_ptr) - 1
    out_idx = np.full((n, k), -1, np.int32)
    out_val = np.full((n, k), -np.inf, np.float32)
    if n == 0 or k == 0:
        return out_idx, out_val
    x = model.item_sessions_          # any order within a row: no sorted copy needed
    use = allowed is not None
    mask = np.ascontiguousarray(allowed, dtype=np.bool_) if use else np.ones((1, 1), np.bool_)
    _session_knn_topk(q_ptr.astype(np.int64), q_item.astype(np.int64), q_w.astype(np.float64),
                      q_age.astype(np.int64), q_norm.astype(np.float64), q_user.astype(np.int64),
                      # the model's arrays as they are (numba compiles per dtype): no copy per batch
                      x.indptr, x.indices, model.sess_indptr_, model.sess_items_, model.sess_pos_,
                      model.sess_user_, model.sess_factor_, model.idf_,
                      exclude_own, int(cfg.sample_size), int(cfg.k),
                      float(cfg.lambda_neighbour or 0.0), float(cfg.lambda_recency or 0.0),
                      -1.0 if cfg.lambda_idf is None else float(cfg.lambda_idf),
                      mask, use, k, out_idx, out_val)
    return out_idx, out_val
