"""Ragged int arrays (one variable-length list per row) in CSR-like form, for batches of queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Ragged:
    """Rows of variable length: row ``i`` is ``values[indptr[i]:indptr[i+1]]``, order kept."""

    indptr: np.ndarray  # int64, shape (n + 1,)
    values: np.ndarray  # shape (nnz,)

    @classmethod
    def from_lists(cls, rows: Iterable[Sequence[int]], dtype=np.int32) -> "Ragged":
        rows = [np.asarray(r, dtype=dtype).ravel() for r in rows]
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        values = np.concatenate(rows).astype(dtype) if rows else np.zeros(0, dtype=dtype)
        return cls(indptr, values)

    @classmethod
    def empty(cls, n: int, dtype=np.int32) -> "Ragged":
        return cls(np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=dtype))

    @classmethod
    def from_groups(cls, group: np.ndarray, values: np.ndarray, n_groups: int) -> "Ragged":
        """Rows from a group label per value; ``values`` must already be in the wanted order within groups."""
        order = np.argsort(group, kind="stable")
        counts = np.bincount(group, minlength=n_groups)
        indptr = np.zeros(n_groups + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr, np.asarray(values)[order])

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[self.indptr[i]:self.indptr[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def rows(self) -> np.ndarray:
        """Row number of every value."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def take(self, idx: np.ndarray) -> "Ragged":
        """The rows ``idx``, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        starts, ends = self.indptr[idx], self.indptr[idx + 1]
        lengths = ends - starts
        indptr = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        pos = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return Ragged(indptr, self.values[pos])

    def tail(self, n: int) -> "Ragged":
        """The last ``n`` values of each row."""
        lengths = np.minimum(self.lengths, n)
        starts = self.indptr[1:] - lengths
        indptr = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        pos = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return Ragged(indptr, self.values[pos])

    def last(self, fill: int = -1) -> np.ndarray:
        """Last value of each row (``fill`` for empty rows)."""
        out = np.full(len(self), fill, dtype=self.values.dtype)
        nz = self.lengths > 0
        out[nz] = self.values[self.indptr[1:][nz] - 1]
        return out

    def to_csr(self, n_cols: int, weights: np.ndarray | None = None, binary: bool = False) -> sp.csr_matrix:
        """A (n_rows, n_cols) float32 matrix; repeated values add up unless ``binary``."""
        data = np.ones(len(self.values), dtype=np.float32) if weights is None else \
            np.asarray(weights, dtype=np.float32)
        m = sp.csr_matrix((data, (self.rows(), self.values.astype(np.int64))), shape=(len(self), n_cols),
                          dtype=np.float32)
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m

    @classmethod
    def stack(cls, parts: "Sequence[Ragged]") -> "Ragged":
        """The rows of several ragged arrays, one after the other."""
        indptr = [np.zeros(1, dtype=np.int64)]
        offset = 0
        for p in parts:
            indptr.append(np.asarray(p.indptr[1:], dtype=np.int64) + offset)
            offset += int(p.indptr[-1])
        return cls(np.concatenate(indptr), np.concatenate([p.values for p in parts]))

    def concat(self, other: "Ragged") -> "Ragged":
        """Row-wise concatenation of two ragged arrays with the same number of rows."""
        if len(other) != len(self):
            raise ValueError("row counts differ")
        lengths = self.lengths + other.lengths
        indptr = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        values = np.empty(indptr[-1], dtype=np.result_type(self.values, other.values))
        a_pos = np.repeat(indptr[:-1] - self.indptr[:-1], self.lengths) + np.arange(len(self.values))
        values[a_pos] = self.values
        b_pos = np.repeat(indptr[:-1] + self.lengths - other.indptr[:-1], other.lengths) + \
            np.arange(len(other.values))
        values[b_pos] = other.values
        return Ragged(indptr, values)
