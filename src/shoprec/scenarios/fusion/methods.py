"""The fusions that learn nothing: weighted sum and reciprocal-rank fusion, pure functions over pairs."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from ..stages import Fusion, StageConfig, row_weights


class WeightedConfig(StageConfig):
    pass


class WeightedFusion(Fusion):
    """Σ_s weight_s · normalised score_s (0 where strategy s did not propose the item)."""

    name = "weighted"
    Config = WeightedConfig

    def fuse(self, pairs, weights, queries) -> np.ndarray:
        w = row_weights(weights, pairs.row)
        if w.ndim == 1:
            return (pairs.norm @ w).astype(np.float32)
        return np.einsum("ms,ms->m", pairs.norm, w).astype(np.float32)


class RRFConfig(StageConfig):
    rrf_k: float = Field(default=60.0, gt=0, description="Reciprocal-rank fusion constant (Cormack et al. 2009).")


class RRFFusion(Fusion):
    """Σ_s weight_s / (rrf_k + rank_s) over the strategies that proposed the item (Cormack, Clarke &
    Büttcher 2009)."""

    name = "rrf"
    Config = RRFConfig

    def fuse(self, pairs, weights, queries) -> np.ndarray:
        contrib = np.where(np.isnan(pairs.rank), 0.0, 1.0 / (self.config.rrf_k + np.nan_to_num(pairs.rank)))
        w = row_weights(weights, pairs.row)
        return (contrib * w).sum(axis=1).astype(np.float32)
