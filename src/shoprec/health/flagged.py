"""What the health re-rankers share: a set of flagged items (``flagged()``, bool per item index) that
``action`` holds back (``hold``: never shown, a rule applied before candidates) or moves after every
unflagged item of the fused pool (``demote``, their order kept)."""

from __future__ import annotations

import numpy as np

from ..scenarios.stages import Ranked, ReRanker

__all__ = ["FlaggedItemsReRanker", "demote"]


def demote(ranked: Ranked, flagged: np.ndarray) -> Ranked:
    """``ranked`` with the ``flagged`` items (bool per item index) after every unflagged one, the
    order kept within each (and the -1 padding last)."""
    idx = ranked.item_idx
    bad = np.zeros(idx.shape, bool)
    valid = idx >= 0
    inside = valid & (idx < len(flagged))
    bad[inside] = flagged[idx[inside]]
    if not bad.any():
        return ranked
    key = np.where(~valid, 2, bad.astype(np.int8))
    order = np.argsort(key, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order, axis=1)     # noqa: E731
    return Ranked(take(ranked.item_idx), take(ranked.scores), take(ranked.sources))


class FlaggedItemsReRanker(ReRanker):
    """A re-ranker over flagged items (module docstring); subclasses give ``flagged()``."""

    def flagged(self) -> np.ndarray:
        raise NotImplementedError

    def constrain(self, queries, allowed: np.ndarray) -> None:
        if self.config.action == "hold":
            f = self.flagged()
            m = min(len(f), allowed.shape[1])
            allowed[:, :m] &= ~f[:m]

    def rerank(self, ranked: Ranked, queries, k: int) -> Ranked:
        if self.config.action != "demote":
            return ranked
        return demote(ranked, self.flagged())
