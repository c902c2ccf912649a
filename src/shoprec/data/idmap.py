"""Mapping of external string ids to contiguous int32 indices, done once at the edge."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd


class IdMap:
    """A bijection between external ids (strings) and internal indices ``0..n-1``.

    Parameters
    ----------
    external_ids : array-like of str
        Unique external ids, in index order.
    """

    __slots__ = ("_ids", "_index", "_lookup")

    def __init__(self, external_ids: Iterable[str]) -> None:
        ids = np.asarray(list(external_ids) if not isinstance(external_ids, (np.ndarray, pd.Index))
                         else external_ids, dtype=object)
        index = pd.Index(ids)
        if not index.is_unique:
            dup = index[index.duplicated()][0]
            raise ValueError(f"external ids must be unique; {dup!r} occurs more than once")
        self._ids = ids
        # one hash table at a time, built on first use: a pandas index for long lookups (data
        # loading), a dict for a request's few ids (serving); a server never builds the first
        self._index: pd.Index | None = None
        self._lookup: dict | None = None

    @classmethod
    def from_values(cls, values: Iterable[str]) -> tuple["IdMap", np.ndarray]:
        """Build a map from (repeated) values in order of first appearance; return it and the codes."""
        codes, uniques = pd.factorize(pd.Series(values, dtype=object), sort=False)
        return cls(np.asarray(uniques, dtype=object)), codes.astype(np.int32)

    def __len__(self) -> int:
        return len(self._ids)

    def _pd_index(self) -> pd.Index:
        if self._index is None:
            self._index = pd.Index(self._ids)
        return self._index

    def __contains__(self, external_id: object) -> bool:
        if self._lookup is not None:
            return external_id in self._lookup
        return external_id in self._pd_index()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and np.array_equal(self._ids, other._ids)

    def __repr__(self) -> str:
        return f"IdMap(n={len(self)})"

    @property
    def external_ids(self) -> np.ndarray:
        """External ids in index order (object array)."""
        return self._ids

    def to_index(self, external_ids: Iterable[object], *, missing: int | None = None) -> np.ndarray:
        """Map external ids to int32 indices.

        Unknown ids raise ``KeyError`` unless ``missing`` is given, in which case they map to it.
        """
        if isinstance(external_ids, list) and len(external_ids) <= 256:
            # a request's few ids: a dict lookup, not a pandas index probe (~30 µs of overhead each)
            lookup = self._lookup
            if lookup is None:
                lookup = self._lookup = {k: i for i, k in enumerate(self._ids.tolist())}
            idx = np.fromiter((lookup.get(x, -1) for x in external_ids), dtype=np.int64, count=len(external_ids))
            values = external_ids
        else:
            values = external_ids if isinstance(external_ids, (np.ndarray, pd.Index, pd.Series)) \
                else np.asarray(list(external_ids), dtype=object)
            idx = self._pd_index().get_indexer(values)
        if missing is None and (idx < 0).any():
            bad = np.asarray(values, dtype=object)[idx < 0][:5]
            raise KeyError(f"unknown ids: {list(bad)}")
        if missing is not None:
            idx = np.where(idx < 0, missing, idx)
        return idx.astype(np.int32)

    def to_external(self, indices: np.ndarray) -> np.ndarray:
        """Map int indices back to external ids; ``-1`` maps to ``None``."""
        indices = np.asarray(indices)
        out = self._ids[np.clip(indices, 0, max(len(self._ids) - 1, 0))] if len(self._ids) else \
            np.full(indices.shape, None, dtype=object)
        if (indices < 0).any():
            out = out.copy()
            out[indices < 0] = None
        return out

    def extend(self, external_ids: Iterable[str]) -> "IdMap":
        """A new map with the unseen ids appended (existing indices keep their values)."""
        values = pd.Index(pd.unique(pd.Series(list(external_ids), dtype=object)))
        new = values[~values.isin(self._pd_index())]
        return IdMap(np.concatenate([self._ids, np.asarray(new, dtype=object)]))
