"""Fit strategies and measure them on an :class:`~shoprec.evaluation.splits.EvalTask`.

Full ranking over the whole catalogue, the task's exclusions applied, metrics vectorised over
queries. Fit time and the peak resident memory during fit are measured for each strategy.
"""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import psutil

from ..strategies.base import Strategy, make_strategy
from . import metrics as M
from .splits import EvalTask


@dataclass
class EvalResult:
    """The measurements of one strategy on one task."""

    strategy: str
    task: str
    metrics: dict[str, float]
    fit_seconds: float
    recommend_seconds: float
    peak_rss_gib: float
    n_queries: int
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict[str, float | str | int]:
        return {"strategy": self.strategy, "task": self.task, **self.metrics,
                "fit_seconds": round(self.fit_seconds, 3),
                "recommend_seconds": round(self.recommend_seconds, 3),
                "peak_rss_gib": round(self.peak_rss_gib, 3), "n_queries": self.n_queries, **self.extra}


class PeakMemory:
    """Context manager sampling this process's resident memory every ``interval`` seconds."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def peak_gib(self) -> float:
        return self.peak / 2**30


def item_categories(task: EvalTask) -> np.ndarray | None:
    """Category code per item (top level of the path) for intra-list diversity, if known."""
    table = task.train.item_table
    if table is None or "category" not in table.columns:
        return None
    top = table["category"].astype("string").str.split(r"\s*(?:>|/)\s*", regex=True).str[0]
    codes, _ = pd.factorize(top, use_na_sentinel=True)
    return codes.astype(np.int64)


def measure(recommended: np.ndarray, task: EvalTask, ks: Sequence[int],
            popularity: np.ndarray | None = None, categories: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy at each k (averaged over queries with a relevant item) and beyond-accuracy at max k."""
    per_user = M.ranking_metrics(recommended, task.relevant, ks)
    out = M.summarise(per_user)
    k = max(ks)
    n_items = task.train.n_items
    out[f"coverage@{k}"] = M.catalogue_coverage(recommended, n_items, k)
    out[f"gini@{k}"] = M.gini_index(recommended, n_items, k)
    if popularity is None:
        popularity = task.train.item_popularity()
    out[f"novelty@{k}"] = float(np.nanmean(M.novelty(recommended, popularity, max(task.train.n_users, 1), k)))
    if categories is not None:
        ild = M.intra_list_diversity(recommended, categories, k)
        out[f"diversity@{k}"] = float(np.nanmean(ild)) if np.isfinite(ild).any() else float("nan")
    return out


def evaluate_strategy(strategy: Strategy, task: EvalTask, ks: Sequence[int] = (10, 20), *,
                      name: str | None = None, fit: bool = True) -> EvalResult:
    """Fit ``strategy`` on ``task.train`` (unless ``fit=False``), rank the full catalogue for every
    query, and measure."""
    if task.n_queries == 0:
        raise ValueError(f"{task.name}: the split left no test queries ({task.protocol}); "
                         "choose another split or cut")
    gc.collect()
    fit_seconds = 0.0
    with PeakMemory() as mem:
        if fit:
            start = time.perf_counter()
            strategy.fit(task.train)
            fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    cands = strategy.recommend(task.queries, max(ks), exclude=task.exclude)
    rec_seconds = time.perf_counter() - start
    metrics = measure(cands.item_idx, task, ks, categories=item_categories(task))
    return EvalResult(name or strategy.name, task.name, metrics, fit_seconds, rec_seconds,
                      mem.peak_gib, task.n_queries)


def evaluate(specs: Iterable[tuple[str, str, Mapping[str, Any]]], task: EvalTask,
             ks: Sequence[int] = (10, 20), *,
             on_start: Callable[[str], None] | None = None,
             on_result: Callable[[EvalResult], None] | None = None) -> list[EvalResult]:
    """Evaluate ``(label, strategy name, parameters)`` specs on one task, one after the other.

    Each strategy is built just before its turn and dropped after it, so the peak memory is that of
    the largest strategy, not the sum. ``on_start(label)`` and ``on_result(result)`` report progress.
    """
    results = []
    for label, name, params in specs:
        if on_start is not None:
            on_start(label)
        res = evaluate_strategy(make_strategy(name, **params), task, ks, name=label)
        res.extra.update(strategy_name=name, params=dict(params))
        results.append(res)
        if on_result is not None:
            on_result(res)
    return results
