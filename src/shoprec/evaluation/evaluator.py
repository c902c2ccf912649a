"""Fit strategies and measure them on an :class:`~shoprec.evaluation.splits.EvalTask`.

Full ranking over the whole catalogue, the task's exclusions applied, metrics vectorised over
queries. Fit time and the peak resident memory during fit are measured for each strategy.

The test queries are ranked in blocks (at most a strategy's ``block_cells`` scores at a time, and
about a twentieth of the queries, so that a long ranking shows its progress); each block's dense
scores also give each query's ROC AUC over the whole catalogue (``auc``) before only its top K is
kept. Fitting and ranking are :mod:`shoprec.progress` steps.
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
import scipy.sparse as sp

from .. import progress
from ..strategies.base import Strategy, make_strategy
from ..strategies.topk import mask_scores, topk
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

    @property
    def failed(self) -> bool:
        return False

    def as_dict(self) -> dict[str, float | str | int]:
        return {"strategy": self.strategy, "task": self.task, **self.metrics,
                "fit_seconds": round(self.fit_seconds, 3),
                "recommend_seconds": round(self.recommend_seconds, 3),
                "peak_rss_gib": round(self.peak_rss_gib, 3), "n_queries": self.n_queries, **self.extra}


@dataclass
class EvalFailure:
    """A strategy whose fit or ranking raised: its label, the error's type and message, and how far
    it got (``"fit"`` or ``"ranking"``)."""

    strategy: str
    task: str
    stage: str
    error_type: str
    message: str
    extra: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return True

    @property
    def error(self) -> str:
        return f"{self.error_type}: {self.message}" if self.message else self.error_type

    def as_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "task": self.task, "stage": self.stage, "error_type": self.error_type,
                "error": self.message, **self.extra}


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


#: item-table columns the exposure audit groups by, the first present (``task.meta["exposure_by"]`` wins)
EXPOSURE_GROUPS = ("seller", "brand", "category")


def exposure_column(task: EvalTask) -> str | None:
    """The item-table column the exposure audit of ``task`` groups by (None: no such column)."""
    table = task.train.item_table
    if table is None:
        return None
    wanted = task.meta.get("exposure_by") if isinstance(task.meta, dict) else None
    if wanted:
        if wanted not in table.columns:
            raise ValueError(f"exposure audit by {wanted!r}: the item table has no such column "
                             f"(columns: {', '.join(map(str, table.columns))})")
        return wanted
    return next((c for c in EXPOSURE_GROUPS if c in table.columns), None)


def measure(recommended: np.ndarray, task: EvalTask, ks: Sequence[int],
            popularity: np.ndarray | None = None, categories: np.ndarray | None = None,
            auc: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy at each k (averaged over queries with a relevant item), the mean per-query ``auc`` when
    given (over the queries where it is defined), and beyond-accuracy at max k."""
    per_user = M.ranking_metrics(recommended, task.relevant, ks)
    if auc is not None:
        per_user["auc"] = auc
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
    column = exposure_column(task)
    if column is not None:
        from .exposure import exposure_audit, group_codes, small_groups

        codes, names = group_codes(task.train.item_table, column, n_items)
        small, _ = small_groups(task.train, codes, len(names))
        audit = exposure_audit(recommended[:, :k], codes, names=names, relevant=task.relevant, small=small)
        out[f"exposure_gini@{k}"] = audit.gini
        out[f"small_group_share@{k}"] = audit.small_share
        top = audit.groups.iloc[0] if len(audit.groups) else None
        if top is not None:
            out[f"top_group_share@{k}"] = float(top["exposure_share"])
    return out


#: at least this many queries per ranking block (small blocks cost per-call overhead)
MIN_BLOCK_QUERIES = 1024
#: scores converted for the AUC at once (its float64 copies stay ~64 MB)
AUC_CELLS = 1 << 23


def _check_queries(task: EvalTask) -> None:
    if task.n_queries == 0:
        raise ValueError(f"{task.name}: the split left no test queries ({task.protocol}); "
                         "choose another split or cut")


def _block_rows(strategy: Strategy, n_queries: int, n_items: int) -> int:
    by_memory = max(1, strategy.block_cells // max(n_items, 1))
    return max(1, min(by_memory, max(MIN_BLOCK_QUERIES, -(-n_queries // 20))))


def _ranked_blocks(strategy: Strategy, task: EvalTask, k: int, want_scores: bool):
    """(query rows, top-k item_idx, dense scores or None) block by block; each block is scored and
    masked as :meth:`Strategy.recommend` does it."""
    n = task.n_queries
    step = _block_rows(strategy, n, task.train.n_items)
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step))
        q = task.queries.take(rows) if (start or len(rows) < n) else task.queries
        scores = strategy.score(q)
        exclude = task.exclude[rows] if task.exclude is not None else None
        if exclude is not None:
            mask_scores(scores, exclude)
        top, _ = topk(scores, k)
        yield rows, top, (scores if want_scores else None)


def block_auc(scores: np.ndarray, relevant: sp.csr_matrix, exclude: sp.csr_matrix | None) -> np.ndarray:
    """Per-query ROC AUC of a dense score block over all items, excluded items left out (in row chunks
    of at most :data:`AUC_CELLS` scores, so the float64 copies stay small)."""
    n, n_items = scores.shape
    step = max(1, AUC_CELLS // max(n_items, 1))
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, step):
        e = min(n, s + step)
        chunk = scores[s:e]
        if np.isnan(chunk).any():  # a strategy's NaN ranks last, as in its top-k
            chunk = np.where(np.isnan(chunk), -np.inf, chunk)
        out[s:e] = M.auc(chunk, relevant[s:e], None if exclude is None else exclude[s:e])
    return out


def evaluate_strategy(strategy: Strategy, task: EvalTask, ks: Sequence[int] = (10, 20), *,
                      name: str | None = None, fit: bool = True, auc: bool = True) -> EvalResult:
    """Fit ``strategy`` on ``task.train`` (unless ``fit=False``), rank the full catalogue for every
    query in blocks, and measure (with ``auc``, also each query's ROC AUC over the whole catalogue).

    ``recommend_seconds`` is the time to score and take the top K; the AUC's own time is
    ``extra["auc_seconds"]``."""
    return _evaluate(strategy, task, ks, name or strategy.name, fit, auc, {})


def _evaluate(strategy: Strategy, task: EvalTask, ks: Sequence[int], label: str, fit: bool, auc: bool,
              where: dict[str, str]) -> EvalResult:
    """:func:`evaluate_strategy`; ``where["stage"]`` says what ran when it raised (fit or ranking)."""
    _check_queries(task)
    gc.collect()
    fit_seconds = 0.0
    where["stage"] = "fit"
    with PeakMemory() as mem:
        if fit:
            with progress.step(f"{label}: fitting"):
                start = time.perf_counter()
                strategy.fit(task.train)
                fit_seconds = time.perf_counter() - start
    where["stage"] = "ranking"
    k = max(ks)
    n = task.n_queries
    recommended = np.empty((n, k), dtype=np.int32)
    per_query_auc = np.full(n, np.nan) if auc else None
    rank_seconds = auc_seconds = 0.0
    with progress.step(f"{label}: ranking {task.train.n_items:,} items", total=n, unit="query") as p:
        start = time.perf_counter()
        for rows, top, scores in _ranked_blocks(strategy, task, k, want_scores=auc):
            recommended[rows] = top
            if auc:
                t = time.perf_counter()
                exclude = task.exclude[rows] if task.exclude is not None else None
                per_query_auc[rows] = block_auc(scores, task.relevant[rows], exclude)
                auc_seconds += time.perf_counter() - t
            del scores
            p.advance(len(rows))
        rank_seconds = time.perf_counter() - start - auc_seconds
    metrics = measure(recommended, task, ks, categories=item_categories(task), auc=per_query_auc)
    res = EvalResult(label, task.name, metrics, fit_seconds, rank_seconds, mem.peak_gib, task.n_queries)
    column = exposure_column(task)
    if column is not None:
        res.extra["exposure_by"] = column
    if auc:
        res.extra["auc_seconds"] = round(auc_seconds, 3)
    return res


def evaluate(specs: Iterable[tuple[str, str, Mapping[str, Any]]], task: EvalTask,
             ks: Sequence[int] = (10, 20), *,
             on_start: Callable[[str], None] | None = None,
             on_result: Callable[[EvalResult], None] | None = None,
             on_error: Callable[[EvalFailure], None] | None = None,
             auc: bool = True) -> list[EvalResult | EvalFailure]:
    """Evaluate ``(label, strategy name, parameters)`` specs on one task, one after the other.

    Each strategy is built just before its turn and dropped after it, so the peak memory is that of
    the largest strategy, not the sum. ``on_start(label)`` and ``on_result(result)`` report progress.

    Without ``on_error`` the first strategy that raises stops the evaluation (the exception
    propagates). With it, a strategy that raises (an invalid parameter, a missing extra, a failing
    fit or ranking) becomes an :class:`EvalFailure` in the returned list, is passed to
    ``on_error``, and the next strategy runs. ``KeyboardInterrupt`` always stops.
    """
    specs = list(specs)
    _check_queries(task)
    results: list[EvalResult | EvalFailure] = []
    with progress.step(f"evaluating {len(specs)} strateg{'y' if len(specs) == 1 else 'ies'} on {task.name}",
                       total=len(specs), unit="strategy") as overall:
        for label, name, params in specs:
            if on_start is not None:
                on_start(label)
            where = {"stage": "fit"}
            try:
                res = _evaluate(make_strategy(name, **params), task, ks, label, True, auc, where)
            except Exception as e:  # noqa: BLE001 - reported per strategy, the others go on
                if on_error is None:
                    raise
                failure = EvalFailure(label, task.name, where["stage"], type(e).__name__, str(e),
                                      {"strategy_name": name, "params": dict(params)})
                results.append(failure)
                on_error(failure)
            else:
                res.extra.update(strategy_name=name, params=dict(params))
                results.append(res)
                if on_result is not None:
                    on_result(res)
            overall.advance()
    return results
