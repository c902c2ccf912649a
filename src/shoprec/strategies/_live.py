"""Co-occurrence counts learned online, after fit: what a live service adds to an item×item matrix.

:class:`LiveCooccurrence` keeps the increments of an ``n × n`` matrix as an append buffer of
``(i, j, w)`` triples, merged into one CSR matrix when the buffer passes ``merge_every`` entries, so
an event costs O(its context) and a query one sparse product with the merged part plus one with the
(small) buffer.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..data import Ragged


class LiveCooccurrence:
    """An ``n × n`` float32 matrix built from increments (see the module docstring)."""

    def __init__(self, n: int, merge_every: int = 50_000) -> None:
        self.n = n
        self.merge_every = merge_every
        self.merged = sp.csr_matrix((n, n), dtype=np.float32)
        self._rows: list[np.ndarray] = []
        self._cols: list[np.ndarray] = []
        self._vals: list[np.ndarray] = []
        self._buffered = 0
        self._tail: sp.csr_matrix | None = None
        self._sum: sp.csr_matrix | None = None   # merged + buffer, for matrix()
        self.entries = 0

    @property
    def empty(self) -> bool:
        return self.entries == 0

    def add(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> None:
        if not len(rows):
            return
        self._rows.append(np.asarray(rows, np.int64))
        self._cols.append(np.asarray(cols, np.int64))
        self._vals.append(np.asarray(vals, np.float32))
        self._buffered += len(rows)
        self.entries += len(rows)
        self._tail = self._sum = None
        if self._buffered >= self.merge_every:
            self.merge()

    def _buffer_csr(self) -> sp.csr_matrix:
        if self._tail is None:
            if self._buffered:
                self._tail = sp.csr_matrix(
                    (np.concatenate(self._vals), (np.concatenate(self._rows), np.concatenate(self._cols))),
                    shape=(self.n, self.n), dtype=np.float32)
            else:
                self._tail = sp.csr_matrix((self.n, self.n), dtype=np.float32)
        return self._tail

    def merge(self) -> None:
        if self._buffered:
            self.merged = sp.csr_matrix(self.merged + self._buffer_csr(), dtype=np.float32)
        self._rows, self._cols, self._vals = [], [], []
        self._buffered = 0
        self._tail = self._sum = None

    def grow(self, n: int) -> None:
        if n <= self.n:
            return
        self.merge()
        m = self.merged.copy()
        m.resize((n, n))
        self.merged = m
        self.n = n

    def matrix(self) -> sp.csr_matrix:
        """Everything added so far as one CSR matrix (the merged part plus the buffer; cached until
        the next addition), for the serving kernels."""
        if not self._buffered:
            return self.merged
        if getattr(self, "_sum", None) is None:   # (an instance pickled before the cache existed)
            self._sum = sp.csr_matrix(self.merged + self._buffer_csr(), dtype=np.float32)
        return self._sum

    def product(self, h: sp.csr_matrix) -> sp.csr_matrix:
        """``h @ M`` for a (q, n') history with n' <= n columns."""
        if h.shape[1] < self.n:
            h = h.copy()
            h.resize((h.shape[0], self.n))
        out = h @ self.merged
        if self._buffered:
            out = out + h @ self._buffer_csr()
        return sp.csr_matrix(out)

    def add_context_pairs(self, context: Ragged, items: np.ndarray, weights: np.ndarray,
                          norm: np.ndarray | None = None, shrink: float = 0.0, symmetric: bool = True) -> int:
        """For every event ``e`` (item ``items[e]``, weight ``weights[e]``) and every item ``i`` of its
        context row, add ``w / (norm[i]·norm[j] + shrink)`` at ``(i, j)`` (and ``(j, i)``). Context
        items equal to the event's item are skipped. Returns the number of pairs added."""
        lengths = context.lengths
        ev = np.repeat(np.arange(len(items)), lengths)
        i = context.values.astype(np.int64)
        j = np.asarray(items, np.int64)[ev]
        w = np.asarray(weights, np.float32)[ev]
        ok = (i != j) & (w > 0) & (i < self.n) & (j < self.n)
        i, j, w = i[ok], j[ok], w[ok]
        if norm is not None:
            nn = np.zeros(self.n, np.float32)
            nn[:len(norm)] = norm[:self.n]
            w = w / (nn[i] * nn[j] + shrink + 1e-12)
        if symmetric:
            i, j, w = np.concatenate([i, j]), np.concatenate([j, i]), np.concatenate([w, w])
        self.add(i, j, w)
        return len(i)
