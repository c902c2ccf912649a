"""Fusion: candidate pairs of every strategy → one score per (request, item).

* :mod:`.pairs` — the hand-off: the union of the strategies' candidate lists, normalisation, top-k.
* :mod:`.methods` — weighted sum and reciprocal-rank fusion (pure functions).
* :mod:`.ranker` — the LightGBM LambdaRank ranker as a fusion, and its features.
* :mod:`.learn` — what fusion learns from a validation slice: tuned weights, the ranker, ``auto``.
"""

from .methods import RRFFusion, WeightedFusion
from .pairs import Pairs, normalise_scores, top_pairs, union_pairs

__all__ = ["Pairs", "RRFFusion", "WeightedFusion", "normalise_scores", "top_pairs", "union_pairs"]
