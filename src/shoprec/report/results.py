"""The result files a benchmark run leaves (``scenarios-*.json``, ``accuracy-*.json``) read into
typed rows, with errors that name the file and the key; and the numbers of the report (metric
names, lift over the best single strategy, formatting). Part of :mod:`shoprec.report`."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..exceptions import DataError

KINDS = ("single", "fusion", "pipeline")
_METRIC_RE = re.compile(r"^([a-z_]+)@(\d+)$")
_FAMILY_ORDER = ("ndcg", "recall", "hr", "mrr", "map", "precision", "coverage", "ild", "gini", "novelty")
_PRETTY = {"ndcg": "NDCG", "recall": "Recall", "hr": "HR", "mrr": "MRR", "map": "MAP", "precision": "P",
           "coverage": "Coverage", "ild": "ILD", "gini": "Gini", "novelty": "Novelty"}
_LOWER_IS_BETTER_FAMILIES = {"gini"}


# --------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class ScenarioRow:
    """One line of a scenario benchmark: a single strategy, a fusion method or the full pipeline."""

    label: str
    kind: str
    metrics: Mapping[str, float]
    fit_seconds: float | None = None
    recommend_seconds: float | None = None
    contribution: Mapping[str, float] | None = None
    exposure: tuple[float, ...] | None = None  # share of slots per training-popularity decile, top first


@dataclass(frozen=True)
class ScenarioResult:
    """A parsed ``scenarios-*.json`` file."""

    path: Path
    scenario: str
    rows: tuple[ScenarioRow, ...]
    dataset: str | None = None
    protocol: str | None = None
    date: str | None = None
    machine: str | None = None
    n_queries: int | None = None
    ks: tuple[int, ...] = ()
    case: str | None = None      # the benchmark case (one scenario may have several on one dataset)


@dataclass(frozen=True)
class AccuracyRow:
    """One strategy of an accuracy benchmark."""

    strategy: str
    metrics: Mapping[str, float]
    fit_seconds: float | None = None
    recommend_seconds: float | None = None
    peak_rss_gib: float | None = None


@dataclass(frozen=True)
class AccuracyResult:
    """A parsed ``accuracy-*.json`` file."""

    path: Path
    dataset: str
    rows: tuple[AccuracyRow, ...]
    protocol: str | None = None
    published: str | None = None
    date: str | None = None
    machine: str | None = None
    n_queries: int | None = None
    ks: tuple[int, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # n_users, n_items, n_train_events


def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason})", path=str(path)) from None
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}",
                        path=str(path)) from None
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object at the top level, found {type(obj).__name__}",
                        path=str(path))
    return obj


def _require(obj: Mapping, key: str, path: Path, where: str = "") -> Any:
    if key not in obj:
        name = f"{where}.{key}" if where else key
        raise DataError(f"required key {name!r} is missing", path=str(path), field=name)
    return obj[key]


def _str(value: Any, path: Path, name: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise DataError(f"expected a non-empty string, found {value!r}", path=str(path), field=name)
    return value


def _num(value: Any, path: Path, name: str, *, optional: bool = True) -> float | None:
    """A finite-or-NaN float; ``None`` (JSON null) is "not measured" when optional."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"expected a number, found {value!r}", path=str(path), field=name)
    return float(value)


def _ks(value: Any, path: Path, name: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(k, int) and not isinstance(k, bool) and k > 0
                                              for k in value):
        raise DataError(f"expected a list of positive integers, found {value!r}", path=str(path),
                        field=name)
    return tuple(value)


def _metrics(obj: Mapping, path: Path, name: str, *, only_metric_keys: bool) -> dict[str, float]:
    """``name@k`` → float; ``None`` values are dropped (not measured)."""
    out: dict[str, float] = {}
    for key, value in obj.items():
        if only_metric_keys and not (isinstance(key, str) and _METRIC_RE.match(key)):
            continue
        v = _num(value, path, f"{name}.{key}" if name else key)
        if v is not None and not math.isnan(v):
            out[key] = v
    return out


def _parse_scenario(path: Path) -> ScenarioResult:
    obj = _read_json(path)
    bench = obj.get("benchmark")
    if bench is not None and bench != "scenarios":
        raise DataError(f"expected \"benchmark\": \"scenarios\", found {bench!r}", path=str(path),
                        field="benchmark")
    scenario = _str(_require(obj, "scenario", path), path, "scenario")
    raw_rows = _require(obj, "rows", path)
    if not isinstance(raw_rows, list) or not raw_rows:
        raise DataError("expected a non-empty list of rows", path=str(path), field="rows")
    rows = []
    for i, raw in enumerate(raw_rows):
        where = f"rows[{i}]"
        if not isinstance(raw, dict):
            raise DataError(f"expected an object, found {raw!r}", path=str(path), field=where)
        label = _str(_require(raw, "label", path, where), path, f"{where}.label")
        kind = _require(raw, "kind", path, where)
        if kind not in KINDS:
            raise DataError(f"expected one of {', '.join(KINDS)}, found {kind!r}", path=str(path),
                            field=f"{where}.kind")
        metrics = _require(raw, "metrics", path, where)
        if not isinstance(metrics, dict):
            raise DataError(f"expected an object of name@k: number, found {metrics!r}", path=str(path),
                            field=f"{where}.metrics")
        contribution = raw.get("contribution")
        if contribution is not None:
            if not isinstance(contribution, dict):
                raise DataError(f"expected an object of strategy: share, found {contribution!r}",
                                path=str(path), field=f"{where}.contribution")
            contribution = _metrics(contribution, path, f"{where}.contribution", only_metric_keys=False)
            if any(v < 0 for v in contribution.values()):
                raise DataError("shares must not be negative", path=str(path), field=f"{where}.contribution")
        exposure = raw.get("exposure_by_popularity_decile")
        if exposure is not None:
            name = f"{where}.exposure_by_popularity_decile"
            if not isinstance(exposure, list) or len(exposure) != 10:
                raise DataError(f"expected a list of 10 shares (one per popularity decile), found {exposure!r}",
                                path=str(path), field=name)
            exposure = tuple(_num(v, path, name, optional=False) for v in exposure)
            if any(v < 0 or math.isnan(v) for v in exposure) or sum(exposure) <= 0:
                raise DataError(f"shares must be non-negative numbers with a positive sum, found {exposure!r}",
                                path=str(path), field=name)
        rows.append(ScenarioRow(
            label=label, kind=kind,
            metrics=_metrics(metrics, path, f"{where}.metrics", only_metric_keys=False),
            fit_seconds=_num(raw.get("fit_seconds"), path, f"{where}.fit_seconds"),
            recommend_seconds=_num(raw.get("recommend_seconds"), path, f"{where}.recommend_seconds"),
            contribution=contribution or None, exposure=exposure))
    n_queries = _num(obj.get("n_queries"), path, "n_queries")
    return ScenarioResult(
        path=path, scenario=scenario, rows=tuple(rows),
        dataset=_str(obj.get("dataset"), path, "dataset", optional=True),
        case=_str(obj.get("case"), path, "case", optional=True),
        protocol=_str(obj.get("protocol"), path, "protocol", optional=True),
        date=_str(obj.get("date"), path, "date", optional=True),
        machine=_str(obj.get("machine"), path, "machine", optional=True),
        n_queries=None if n_queries is None else int(n_queries),
        ks=_ks(obj.get("ks"), path, "ks"))


def _parse_accuracy(path: Path) -> AccuracyResult:
    obj = _read_json(path)
    dataset = _str(_require(obj, "dataset", path), path, "dataset")
    raw_rows = _require(obj, "results", path)
    if not isinstance(raw_rows, list) or not raw_rows:
        raise DataError("expected a non-empty list of strategy results", path=str(path), field="results")
    rows = []
    for i, raw in enumerate(raw_rows):
        where = f"results[{i}]"
        if not isinstance(raw, dict):
            raise DataError(f"expected an object, found {raw!r}", path=str(path), field=where)
        rows.append(AccuracyRow(
            strategy=_str(_require(raw, "strategy", path, where), path, f"{where}.strategy"),
            metrics=_metrics(raw, path, where, only_metric_keys=True),
            fit_seconds=_num(raw.get("fit_seconds"), path, f"{where}.fit_seconds"),
            recommend_seconds=_num(raw.get("recommend_seconds"), path, f"{where}.recommend_seconds"),
            peak_rss_gib=_num(raw.get("peak_rss_gib"), path, f"{where}.peak_rss_gib")))
    n_queries = _num(obj.get("n_queries"), path, "n_queries")
    extra = {k: obj[k] for k in ("n_users", "n_items", "n_train_events")
             if isinstance(obj.get(k), int) and not isinstance(obj.get(k), bool)}
    return AccuracyResult(
        path=path, dataset=dataset, rows=tuple(rows),
        protocol=_str(obj.get("protocol"), path, "protocol", optional=True),
        published=_str(obj.get("published"), path, "published", optional=True),
        date=_str(obj.get("date"), path, "date", optional=True),
        machine=_str(obj.get("machine"), path, "machine", optional=True),
        n_queries=None if n_queries is None else int(n_queries),
        ks=_ks(obj.get("ks"), path, "ks"), extra=extra)


def load_results(results_dir: Path) -> tuple[list[ScenarioResult], list[AccuracyResult]]:
    """Parse every ``scenarios-*.json`` and ``accuracy-*.json`` in a folder, sorted by file name.

    Parameters
    ----------
    results_dir
        The folder a benchmark run writes to (e.g. ``benchmarks/results``).

    Returns
    -------
    (scenarios, accuracy)
        The parsed files, each list in file-name order; rows keep the order of the file.

    Raises
    ------
    FileNotFoundError
        The folder does not exist or holds no result file.
    DataError (a ValueError)
        A file is not valid JSON or misses a required key; the message names the file and the key.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist (or is not a folder)")
    scenario_files = sorted(results_dir.glob("scenarios-*.json"))
    accuracy_files = sorted(results_dir.glob("accuracy-*.json"))
    if not scenario_files and not accuracy_files:
        raise FileNotFoundError(f"{results_dir} holds no result files: expected scenarios-*.json or "
                                f"accuracy-*.json written by the benchmarks")
    return [_parse_scenario(p) for p in scenario_files], [_parse_accuracy(p) for p in accuracy_files]


# ------------------------------------------------------------------------------------------ numbers
def _split_metric(key: str) -> tuple[str, int] | None:
    m = _METRIC_RE.match(key)
    return (m.group(1), int(m.group(2))) if m else None


def _metric_sort_key(key: str) -> tuple:
    parsed = _split_metric(key)
    if parsed is None:
        return (len(_FAMILY_ORDER) + 1, key, 0)
    family, k = parsed
    rank = _FAMILY_ORDER.index(family) if family in _FAMILY_ORDER else len(_FAMILY_ORDER)
    return (rank, family, k)


def _pretty(key: str) -> str:
    parsed = _split_metric(key)
    if parsed is None:
        return key
    family, k = parsed
    return f"{_PRETTY.get(family, family)}@{k}"


def _main_k(keys: Iterable[str], ks: Sequence[int], family: str = "ndcg", prefer: int = 10) -> int | None:
    """The cut-off of the headline metric: ``prefer`` if measured, else the smallest measured one."""
    available = sorted({p[1] for p in map(_split_metric, keys) if p and p[0] == family})
    if not available:
        return None
    if prefer in available:
        return prefer
    for k in ks:  # the file's own first cut-off, if measured
        if k in available:
            return k
    return available[0]


def lift(rows: Sequence[ScenarioRow], metric: str) -> list[tuple[ScenarioRow, float, ScenarioRow]]:
    """Relative gain of every pipeline row over the best single strategy on one metric.

    Parameters
    ----------
    rows
        The rows of one scenario.
    metric
        A key of ``row.metrics`` such as ``"ndcg@10"``.

    Returns
    -------
    list of (pipeline row, lift, best single row)
        ``lift = pipeline / best_single - 1`` (0.14 means 14 % better); ``nan`` when the best single
        strategy scores 0. Empty when there is no pipeline row or no single row with the metric.
    """
    singles = [r for r in rows if r.kind == "single" and metric in r.metrics]
    if not singles:
        return []
    best = max(singles, key=lambda r: r.metrics[metric])  # first of equals, file order
    base = best.metrics[metric]
    out = []
    for r in rows:
        if r.kind == "pipeline" and metric in r.metrics:
            out.append((r, r.metrics[metric] / base - 1.0 if base > 0 else math.nan, best))
    return out


def _fmt_lift(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    pct = 100.0 * value
    return f"{pct:+.1f} %" if abs(pct) < 10 else f"{pct:+.0f} %"


def _fmt_value(key: str, v: float | None) -> str:
    if v is None or math.isnan(v):
        return "–"
    if key in ("fit_seconds", "recommend_seconds"):
        return _fmt_seconds(v, unit=False)
    if key == "peak_rss_gib":
        return f"{v:.2f}"
    if abs(v) < 1:
        return f"{v:.4f}"
    return f"{v:.2f}" if abs(v) < 100 else f"{v:.1f}"


def _fmt_seconds(v: float, unit: bool = True) -> str:
    if v < 10:
        s = f"{v:.2f}" if v < 1 else f"{v:.1f}"
    else:
        s = f"{v:,.0f}"
    return f"{s} s" if unit else s


def _lower_is_better(key: str) -> bool:
    if key in ("fit_seconds", "recommend_seconds", "peak_rss_gib"):
        return True
    parsed = _split_metric(key)
    return parsed is not None and parsed[0] in _LOWER_IS_BETTER_FAMILIES
