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
* :func:`cosine_anchor` — the reason's anchor by cosine co-occurrence, one sorted-row intersection
  per (recommended item, anchor) pair instead of a product over the whole batch.
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
        heap_i = np.empty((1, k), np.int64)
        heap_v = np.empty((1, k), np.float32)
        out_i2 = np.empty((1, k), np.int64)
        out_v2 = np.empty((1, k), np.float32)
        fill = np.zeros(1, np.int64)
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
            fill[0] = 0
            for q in range(t):
                j = touched[q]
                v = acc[j]
                acc[j] = 0.0
                seen[j] = False
                if v > 0 and (not use_allowed or allowed[r, j]):
                    _heap_push(heap_i, heap_v, fill, 0, k, v, j)
            _sorted_heap(heap_i, heap_v, fill, 0, out_i2, out_v2)
            for q in range(fill[0]):
                out_idx[r, q] = out_i2[0, q]
                out_val[r, q] = out_v2[0, q]

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
    def _row_dot(ptr, idx, val, i, a):
        """Dot product of rows i and a (sorted indices): each entry of the shorter row is found by a
        binary search in the rest of the longer one."""
        if ptr[i + 1] - ptr[i] > ptr[a + 1] - ptr[a]:
            i, a = a, i
        lo = ptr[a]
        end = ptr[a + 1]
        total = 0.0
        for p in range(ptr[i], ptr[i + 1]):
            u = idx[p]
            hi = end
            while lo < hi:
                mid = (lo + hi) >> 1
                if idx[mid] < u:
                    lo = mid + 1
                else:
                    hi = mid
            if lo == end:
                break
            if idx[lo] == u:
                total += val[p] * val[lo]
                lo += 1
        return total

    @_nb.njit(**_JIT)
    def _cosine_anchor(items, pool_ptr, pool, ptr, idx, val, norms, n_known, out):
        n, k = items.shape
        for r in range(n):
            if pool_ptr[r] == pool_ptr[r + 1]:
                continue
            first = pool[pool_ptr[r]]
            for q in range(k):
                j = items[r, q]
                if j < 0:
                    continue
                src = first
                if j < n_known:
                    best = 0.0
                    for p in range(pool_ptr[r], pool_ptr[r + 1]):   # pool order: ties to the earlier
                        a = pool[p]
                        d = _row_dot(ptr, idx, val, j, a)
                        if d > 0:
                            d = d / max(norms[a] * norms[j], 1e-12)
                            if d > best:
                                best = d
                                src = a
                out[r, q] = src



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
    left out. Each pair is one sorted-row intersection: no product over the batch is formed."""
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
                   np.asarray(norms, dtype=np.float64), n_known, out)
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
