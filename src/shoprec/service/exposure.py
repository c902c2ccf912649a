"""The live exposure audit: how the attention of the answers served is shared among sellers (or
brands, or categories), from the impression log as it is written (``/metrics``, ``GET
/v1/health/exposure``, the marketplace page).

Each logged answer adds its items' position weights (``1 / log2(position + 1)``, as the offline
audit of :mod:`shoprec.evaluation.exposure`) to its scenario's per-item exposure, decayed with a
half-life of ``half_life`` answers so the figures follow the current traffic. The report groups
items by the first of ``seller``, ``brand``, ``category`` the served model's catalogue has: the Gini
of exposure over all groups, the share of the largest group, and the share reaching small or new
groups (:func:`~shoprec.evaluation.exposure.small_groups` on the model's training data).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..evaluation.evaluator import EXPOSURE_GROUPS
from ..evaluation.exposure import gini, group_codes, position_weights, small_groups

__all__ = ["LiveExposure"]


class LiveExposure:
    """Per scenario, the decayed exposure of every item in the answers logged (module docstring)."""

    def __init__(self, rec, half_life: float = 10_000.0, max_k: int = 100) -> None:
        self.half_life = half_life
        self.weights = position_weights(max_k)
        self.lock = threading.Lock()
        self.bind(rec)

    def bind(self, rec) -> None:
        """Group the items of the served model (again after a swap; the counts start over)."""
        data = rec.data_
        table = data.item_table
        self.column = next((c for c in EXPOSURE_GROUPS if table is not None and c in table.columns), None)
        self.items = data.items
        if self.column is None:
            self.codes, self.names, self.small = None, [], np.zeros(0, bool)
        else:
            self.codes, self.names = group_codes(table, self.column, data.n_items)
            self.small, _ = small_groups(data, self.codes, len(self.names))
        with self.lock:
            self.exposure: dict[str, np.ndarray] = {}
            self.answers: dict[str, float] = {}

    def add(self, rows) -> None:
        """Logged answers (ImpressionRecords) into their scenarios' exposure."""
        if self.codes is None:
            return
        by: dict[str, tuple[list[str], list[int]]] = {}
        counted: dict[str, int] = {}
        for r in rows:
            if r.context.get("bot") or not r.items:
                continue
            counted[r.scenario] = counted.get(r.scenario, 0) + 1
            ids, pos = by.setdefault(r.scenario, ([], []))
            for it in r.items:
                ids.append(it["item_id"])
                pos.append(int(it["position"]))
        with self.lock:
            for scenario, (ids, pos) in by.items():
                idx = self.items.to_index(ids, missing=-1)
                p = np.clip(np.asarray(pos) - 1, 0, len(self.weights) - 1)
                ok = (idx >= 0) & (idx < len(self.codes))
                n_answers = counted[scenario]
                cur = self.exposure.get(scenario)
                if cur is None:
                    cur = np.zeros(len(self.codes))
                cur *= 0.5 ** (n_answers / self.half_life)
                cur += np.bincount(idx[ok], weights=self.weights[p[ok]], minlength=len(self.codes))
                self.exposure[scenario] = cur
                self.answers[scenario] = self.answers.get(scenario, 0.0) * 0.5 ** (n_answers / self.half_life) \
                    + n_answers

    def report(self, top: int = 5) -> dict[str, Any]:
        """Per scenario: answers counted (decayed), Gini over the groups, top groups, small groups' share."""
        out: dict[str, Any] = {"group_by": self.column, "groups": len(self.names), "scenarios": {}}
        if self.codes is None:
            return out
        with self.lock:
            items = {s: e.copy() for s, e in self.exposure.items()}
            answers = dict(self.answers)
        ok = self.codes >= 0
        for scenario, e in items.items():
            g = np.bincount(self.codes[ok], weights=e[ok], minlength=len(self.names))
            total = g.sum()
            share = g / total if total > 0 else g
            order = np.argsort(-share, kind="stable")[:top]
            out["scenarios"][scenario] = {
                "answers": round(answers.get(scenario, 0.0), 1), "gini": round(gini(g), 4) if len(g) else 0.0,
                "small_groups_share": round(float(share[self.small].sum()), 4),
                "groups_shown": int((g > 0).sum()),
                "top": [{"group": self.names[i], "share": round(float(share[i]), 4)} for i in order if share[i] > 0]}
        return out
