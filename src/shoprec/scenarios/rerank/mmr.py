"""Diversity by maximal marginal relevance (Carbonell & Goldstein 1998) over the fused pool."""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from ..stages import Ranked, ReRanker, StageConfig


class MMRConfig(StageConfig):
    trade_off: float = Field(default=0.8, ge=0, le=1, description="MMR λ: 1 = relevance only, 0 = diversity only.")
    by: Literal["category", "content"] = Field(default="category", description="Similarity used by MMR.")
    pool: int = Field(default=50, ge=1, description="Re-rank the top `pool` fused items.")


class MMRReRanker(ReRanker):
    """Pick ``argmax λ·rel − (1−λ)·max sim(picked)`` K times, all rows at once; relevance is the
    fused score min-max normalised per request, similarity the dot product of category one-hots or
    content (TF-IDF) vectors."""

    name = "mmr"
    Config = MMRConfig

    def needs_text(self) -> bool:
        return self.config.by == "content"

    def pool(self, k: int) -> int:
        return max(k, self.config.pool)

    def rerank(self, ranked: Ranked, queries, k: int) -> Ranked:
        lam = self.config.trade_off
        idx, val, src = ranked.item_idx, ranked.scores, ranked.sources
        n, P = idx.shape
        valid = idx >= 0
        rel = np.where(valid, val, -np.inf)
        lo = np.where(valid, rel, np.inf).min(axis=1, keepdims=True)
        hi = np.where(valid, rel, -np.inf).max(axis=1, keepdims=True)
        rel = np.where(valid, (rel - lo) / np.maximum(hi - lo, 1e-9), -np.inf)
        vecs = self._sim_vectors(idx)
        chosen = np.full((n, k), -1, np.int64)
        max_sim = np.zeros((n, P), np.float32)
        taken = ~valid
        rows = np.arange(n)
        for j in range(min(k, P)):
            gain = np.where(taken, -np.inf, lam * rel - (1 - lam) * max_sim)
            pick = gain.argmax(axis=1)
            ok = np.isfinite(gain[rows, pick])
            chosen[ok, j] = pick[ok]
            taken[rows[ok], pick[ok]] = True
            sim = np.einsum("npd,nd->np", vecs, vecs[rows, pick])
            max_sim = np.where(ok[:, None], np.maximum(max_sim, sim), max_sim)
        have = chosen >= 0
        safe = np.where(have, chosen, 0)
        out_idx = np.where(have, np.take_along_axis(idx, safe, 1), -1).astype(np.int32)
        out_val = np.where(have, np.take_along_axis(val, safe, 1), -np.inf).astype(np.float32)
        out_src = np.where(have, np.take_along_axis(src, safe, 1), 0)
        return Ranked(out_idx, out_val, out_src)

    def _sim_vectors(self, idx: np.ndarray) -> np.ndarray:
        """(n, P, d) unit vectors whose dot products are the MMR similarity."""
        safe = np.maximum(idx, 0)
        text = self.env.text
        if self.config.by == "content" and text is not None:
            v = text.item_vectors()
            flat = v[safe.ravel()]
            flat = flat.toarray() if sp.issparse(flat) else np.asarray(flat)
            vec = flat.reshape(*idx.shape, -1).astype(np.float32)
        else:
            cat = self.env.facts.category
            n_cat = int(cat.max(initial=-1)) + 1
            if n_cat == 0:
                return np.zeros((*idx.shape, 1), np.float32)
            c = cat[safe]
            vec = np.zeros((*idx.shape, n_cat), np.float32)
            has = (c >= 0) & (idx >= 0)
            vec[has, c[has]] = 1.0
        vec[idx < 0] = 0.0
        return vec
