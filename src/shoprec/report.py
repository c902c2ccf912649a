"""``shoprec report``: one self-contained HTML page with plots of the benchmark results.

Reads the JSON files a benchmark run leaves in a results folder and renders them into a single HTML
file a person can open offline and send around: every plot is an inline base64 PNG drawn by
matplotlib's Agg canvas, the style sheet is inline, and there is no JavaScript and no network access.

Two kinds of files are read, everything else in the folder is ignored:

``accuracy-*.json``
    one dataset, a list of single strategies under ``results`` (written by ``benchmarks/``).
``scenarios-*.json``
    one shop scenario (cart, product page, …), a list of ``rows`` each of kind ``single``, ``fusion``
    or ``pipeline`` with a ``metrics`` mapping and, optionally, timings, the share of recommended
    slots each strategy ``contribution`` made, and ``exposure_by_popularity_decile``.

Only ``label``, ``kind`` and ``metrics`` of a scenario row are required; a plot whose data is absent
is skipped with a sentence saying so. A missing folder, a folder without result files, or a file
that is not valid JSON or lacks a required key is an error that names the file and the key.

The popularity curve is the Lorenz curve of exposure over items sorted by popularity, the usual
picture of popularity bias in recommender systems (Abdollahpouri et al., "Managing Popularity Bias
in Recommender Systems with Personalized Re-ranking", FLAIRS 2019).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .exceptions import DataError

__all__ = ["build_report", "load_results", "lift", "ScenarioResult", "ScenarioRow", "AccuracyResult",
           "AccuracyRow"]

KINDS = ("single", "fusion", "pipeline")
KIND_COLOURS = {"single": "#56B4E9", "fusion": "#E69F00", "pipeline": "#009E73"}  # Okabe–Ito
_BAR = "#A9BEDB"
_BAR_BEST = "#1F4E8C"
_METRIC_RE = re.compile(r"^([a-z_]+)@(\d+)$")
# display order of metric families in tables; unknown families go last, alphabetically
_FAMILY_ORDER = ("ndcg", "recall", "hr", "mrr", "map", "precision", "coverage", "ild", "gini", "novelty")
_PRETTY = {"ndcg": "NDCG", "recall": "Recall", "hr": "HR", "mrr": "MRR", "map": "MAP", "precision": "P",
           "coverage": "Coverage", "ild": "ILD", "gini": "Gini", "novelty": "Novelty"}
_LOWER_IS_BETTER_FAMILIES = {"gini"}
_FIG_W = 7.0
_DPI = 100
_RC = {
    "text.parse_math": False,  # a "$" in a strategy label is text, not TeX
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.titleweight": "bold",
    "axes.labelsize": 8.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 7.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#888888",
    "xtick.color": "#444444",
    "ytick.color": "#222222",
    "path.simplify": True,
}


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


# ------------------------------------------------------------------------------------------- plots
def _figure(height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(_FIG_W, height), dpi=_DPI, layout="constrained")


def _png(fig, alt: str) -> str:
    """Render a figure with the Agg canvas into an ``<img>`` with an inline base64 PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, facecolor="white", metadata={"Software": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    w, h = (int(round(x * _DPI)) for x in fig.get_size_inches())
    return (f'<img src="data:image/png;base64,{data}" width="{w}" height="{h}" '
            f'alt="{html.escape(alt)}">')


def _style():
    """Matplotlib defaults plus the report's rc, whatever the user's matplotlibrc says."""
    import contextlib

    import matplotlib
    import matplotlib.style

    stack = contextlib.ExitStack()
    stack.enter_context(matplotlib.style.context("default"))
    stack.enter_context(matplotlib.rc_context(_RC))
    return stack


def _row_colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _text_colour(rgba) -> str:
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.6 else "white"


def _bar_height(n: int, base: float = 1.3, per_row: float = 0.3, minimum: float = 2.4) -> float:
    return max(minimum, base + per_row * n)


def _scenario_chart(res: ScenarioResult, panels: Sequence[str]) -> tuple[str, list[str]]:
    """NDCG/Recall bars per row coloured by kind, best single as a dashed line, pipeline lift written."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = res.rows
    n = len(rows)
    captions, headline = [], []
    fig = _figure(_bar_height(n, base=1.7, minimum=2.2))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    ys = list(range(n))
    for ax, metric in zip(axes, panels):
        vals = [r.metrics.get(metric, math.nan) for r in rows]
        finite = [v for v in vals if not math.isnan(v)]
        top = max(finite) if finite else 1.0
        top = top if top > 0 else 1.0
        ax.barh(ys, [0 if math.isnan(v) else v for v in vals], height=0.7,
                color=[KIND_COLOURS[r.kind] for r in rows], edgecolor="white", linewidth=0.5)
        lifts = {id(p): (value, best) for p, value, best in lift(rows, metric)}
        if lifts:
            best_row = next(iter(lifts.values()))[1]
            ax.axvline(best_row.metrics[metric], color="#555555", linestyle="--", linewidth=0.9, zorder=1.5)
            best_value = max((v for v, _ in lifts.values()), key=lambda v: -math.inf if math.isnan(v) else v)
            headline.append(f"{_pretty(metric)} {_fmt_lift(best_value)} over {_short(best_row.label, 24)}")
            captions.append(f"{_pretty(metric)}: pipeline {_fmt_lift(best_value)} over the best single "
                            f"strategy, {best_row.label} ({best_row.metrics[metric]:.4f})")
        for y, r, v in zip(ys, rows, vals):
            text = "n/a" if math.isnan(v) else f"{v:.3f}"
            pipeline = id(r) in lifts
            if pipeline:
                text += f"  {_fmt_lift(lifts[id(r)][0])}"
            ax.text((0 if math.isnan(v) else v) + top * 0.02, y, text, va="center", fontsize=7.5, zorder=4,
                    fontweight="bold" if pipeline else "normal", color="#00573F" if pipeline else "#222222",
                    bbox=dict(facecolor="white", edgecolor="none", pad=0.6, alpha=0.85))
        ax.set_title(_pretty(metric), loc="left")
        ax.set_xlim(0, top * (1.45 if lifts else 1.3))
        ax.xaxis.set_major_locator(_max_ticks(4))
        ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(axis="y", length=0)
    axes[0].set_yticks(ys, [_short(r.label, 26) for r in rows])
    axes[0].invert_yaxis()
    if headline:
        fig.suptitle("Pipeline: " + " · ".join(headline), x=0.01, ha="left", fontsize=10,
                     fontweight="bold", color="#00573F")
    present = [k for k in KINDS if any(r.kind == k for r in rows)]
    handles = [Patch(color=KIND_COLOURS[k], label=k) for k in present]
    if headline:
        handles.append(Line2D([], [], color="#555555", linestyle="--", linewidth=0.9, label="best single"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    alt = f"{res.scenario}: " + ", ".join(_pretty(m) for m in panels) + " per strategy"
    if captions:
        alt += "; " + "; ".join(captions)
    return _png(fig, alt), captions


def _max_ticks(n: int):
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=n, min_n_ticks=2)


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _contribution_chart(res: ScenarioResult) -> str:
    """Stacked horizontal bars: which strategy proposed which share of the recommended slots."""
    rows = [r for r in res.rows if r.contribution]
    strategies: list[str] = []
    for r in rows:
        for s in r.contribution:
            if s not in strategies:
                strategies.append(s)
    colours = _palette(res)
    n = len(rows)
    fig = _figure(_bar_height(n, base=1.45, per_row=0.42, minimum=1.9))
    ax = fig.subplots()
    ys = list(range(n))
    left = [0.0] * n
    total_max = max(sum(r.contribution.values()) for r in rows)
    for s in strategies:
        widths = [r.contribution.get(s, 0.0) for r in rows]
        ax.barh(ys, widths, left=left, height=0.62, color=colours[s], label=_short(s, 24),
                edgecolor="white", linewidth=0.8)
        for y, lft, w in zip(ys, left, widths):
            if w > 0 and w >= 0.06 * total_max:
                ax.text(lft + w / 2, y, f"{100 * w:.0f} %", ha="center", va="center", fontsize=7.5,
                        color=_text_colour(colours[s]))
        left = [a + b for a, b in zip(left, widths)]
    ax.set_yticks(ys, [_short(r.label, 26) for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, max(1.0, total_max) * 1.01)
    ax.xaxis.set_major_formatter(_percent())
    ax.set_xlabel("share of recommended slots proposed by each strategy")
    ax.tick_params(axis="y", length=0)
    fig.legend(loc="outside lower center", ncol=min(len(strategies), 6), frameon=False)
    alt = f"{res.scenario}: share of recommended slots by strategy for " + ", ".join(r.label for r in rows)
    return _png(fig, alt)


def _percent():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)


def _exposure_chart(res: ScenarioResult) -> str:
    """Lorenz-style curve: cumulative share of slots over items sorted by training popularity."""
    rows = [r for r in res.rows if r.exposure]
    colours = _colours_by_row(res)
    fig = _figure(3.5)
    ax = fig.subplots()
    xs = [i / 10 for i in range(11)]
    ax.plot([0, 1], [0, 1], color="#999999", linestyle=":", linewidth=1.2, label="equal exposure")
    alt = []
    for r in rows:
        cum = _cumulative(r.exposure)
        style = {"pipeline": dict(linewidth=2.8, zorder=4), "fusion": dict(linewidth=1.3, linestyle="--"),
                 "single": dict(linewidth=1.1, alpha=0.9)}[r.kind]
        ax.plot(xs, cum, color=colours[id(r)], marker="o", markersize=2.2,
                label=f"{_short(r.label, 22)}  ({100 * cum[1]:.0f} %)", **style)
        alt.append(f"{r.label}: {100 * cum[1]:.0f} % of slots to the 10 % most popular items")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.xaxis.set_major_formatter(_percent())
    ax.yaxis.set_major_formatter(_percent())
    ax.set_xlabel("items, most popular first (training-popularity deciles)")
    ax.set_ylabel("cumulative share of slots")
    ax.set_title("Exposure by item popularity", loc="left")
    ax.grid(color="#eeeeee", linewidth=0.6)
    fig.legend(loc="outside right upper", frameon=False, title="row  (share to top 10 %)",
              title_fontsize=7.5, fontsize=7.2 if len(rows) > 8 else 7.8, handlelength=2.2)
    return _png(fig, f"{res.scenario}: exposure curve; " + "; ".join(alt))


def _cumulative(exposure: Sequence[float]) -> list[float]:
    total = sum(exposure)
    cum = [0.0]
    for v in exposure:
        cum.append(cum[-1] + v / total)
    return cum


def _palette(res: ScenarioResult) -> dict[str, Any]:
    """One colour per name across a scenario's charts: a single strategy's row, its share in the
    contribution bars and its curve get the same colour."""
    names: list[str] = []
    for name in ([r.label for r in res.rows if r.kind == "single"]
                 + [s for r in res.rows if r.contribution for s in r.contribution]
                 + [r.label for r in res.rows if r.kind != "single"]):
        if name not in names:
            names.append(name)
    return dict(zip(names, _row_colours(len(names))))


def _colours_by_row(res: ScenarioResult) -> dict[int, Any]:
    palette = _palette(res)
    return {id(r): palette[r.label] for r in res.rows}


def _coverage_chart(res: ScenarioResult, coverage_key: str | None) -> str:
    """Per row: share of slots going to the 10 % most popular items, and catalogue coverage."""
    colours = _colours_by_row(res)
    panels = []
    if any(r.exposure for r in res.rows):
        panels.append(("top", "Slots to the top 10 % items", lambda r: _cumulative(r.exposure)[1] if r.exposure
                       else math.nan))
    if coverage_key:
        panels.append((coverage_key, f"Catalogue {_pretty(coverage_key)}",
                       lambda r: r.metrics.get(coverage_key, math.nan)))
    rows = [r for r in res.rows if any(not math.isnan(get(r)) for _, _, get in panels)]
    n = len(rows)
    fig = _figure(_bar_height(n, base=1.1, per_row=0.27, minimum=2.0))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    ys = list(range(n))
    alt = []
    for ax, (key, title, get) in zip(axes, panels):
        vals = [get(r) for r in rows]
        finite = [v for v in vals if not math.isnan(v)]
        top = max(max(finite), 1e-9)
        ax.barh(ys, [0 if math.isnan(v) else v for v in vals], height=0.68,
                color=[colours[id(r)] for r in rows])
        for y, v in zip(ys, vals):
            ax.text((0 if math.isnan(v) else v) + top * 0.02, y, "n/a" if math.isnan(v) else f"{100 * v:.1f} %",
                    va="center", fontsize=7.5)
        ax.set_xlim(0, top * 1.3)
        ax.xaxis.set_major_formatter(_percent())
        ax.xaxis.set_major_locator(_max_ticks(3))
        ax.tick_params(axis="y", length=0)
        ax.grid(axis="x", color="#eeeeee", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_title(title, loc="left")
        alt.append(title + ": " + ", ".join(f"{r.label} {_fmt_value(key, v)}" for r, v in zip(rows, vals)))
    axes[0].set_yticks(ys, [_short(r.label, 26) for r in rows])
    axes[0].invert_yaxis()
    return _png(fig, f"{res.scenario}: " + "; ".join(alt))


def _accuracy_chart(res: AccuracyResult, panels: Sequence[str]) -> str:
    """Main metric per strategy (best bar dark), fit time written beside the first panel's bars."""
    rows = res.rows
    n = len(rows)
    fig = _figure(_bar_height(n, base=1.2, minimum=1.9))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    ys = list(range(n))
    for j, (ax, metric) in enumerate(zip(axes, panels)):
        vals = [r.metrics.get(metric, math.nan) for r in rows]
        finite = [v for v in vals if not math.isnan(v)]
        top = max(finite) if finite and max(finite) > 0 else 1.0
        best = max(finite) if finite else math.nan
        ax.barh(ys, [0 if math.isnan(v) else v for v in vals], height=0.7,
                color=[_BAR_BEST if v == best else _BAR for v in vals])
        for y, r, v in zip(ys, rows, vals):
            text = "n/a" if math.isnan(v) else f"{v:.4f}"
            ax.text((0 if math.isnan(v) else v) + top * 0.02, y, text, va="center", fontsize=7.5,
                    fontweight="bold" if v == best else "normal")
            if j == 0 and r.fit_seconds is not None:
                ax.text(top * 1.62, y, f"fit {_fmt_seconds(r.fit_seconds)}", va="center", ha="right",
                        fontsize=7, color="#777777")
        ax.set_xlim(0, top * (1.65 if j == 0 else 1.3))
        ax.xaxis.set_major_locator(_max_ticks(4))
        ax.set_title(_pretty(metric), loc="left")
        ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(axis="y", length=0)
    axes[0].set_yticks(ys, [_short(r.strategy, 26) for r in rows])
    axes[0].invert_yaxis()
    alt = f"{res.dataset}: " + "; ".join(
        f"{r.strategy} " + ", ".join(f"{_pretty(m)} {_fmt_value(m, r.metrics.get(m))}" for m in panels)
        for r in rows)
    return _png(fig, alt)


# -------------------------------------------------------------------------------------------- html
_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;background:#fafafa;margin:0}
main{max-width:980px;margin:0 auto;padding:24px 28px 60px;background:#fff;box-shadow:0 0 0 1px #eee}
h1{font-size:28px;margin:8px 0 4px} h2{font-size:21px;margin:40px 0 6px;border-bottom:2px solid #eee;
padding-bottom:4px} h3{font-size:16px;margin:26px 0 6px;color:#333}
.meta{color:#555;margin:0 0 14px;font-size:14px} .muted{color:#666;font-size:13.5px}
.howto{background:#f3f7fb;border-left:4px solid #56B4E9;padding:8px 16px;margin:14px 0;font-size:14px}
.howto ul{margin:4px 0;padding-left:20px} nav ol{margin:4px 0;padding-left:22px} nav li{margin:1px 0}
nav{font-size:14px} .callout{background:#eaf6f1;border-left:4px solid #009E73;padding:6px 14px;
margin:10px 0;font-size:14.5px} .skip{color:#8a6d00;background:#fff8e1;padding:4px 10px;font-size:13.5px;
border-left:4px solid #E69F00} figure{margin:10px 0} figure img{max-width:100%;height:auto}
.tablewrap{overflow-x:auto} table{border-collapse:collapse;font-size:12.5px;margin:6px 0 4px;
font-variant-numeric:tabular-nums} th,td{padding:3px 8px;text-align:right;white-space:nowrap}
th{border-bottom:1px solid #bbb;font-weight:600;color:#333} td:first-child,th:first-child{text-align:left}
tbody tr:nth-child(even){background:#f7f7f7} td b{color:#000}
.kind{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:6px}
code{background:#f2f2f2;padding:0 3px;border-radius:3px;font-size:90%}
footer{margin-top:40px;color:#777;font-size:12.5px}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


class _Ids:
    """Unique, stable anchors from names."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, *parts: str) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-") or "section"
        slug, i = base, 2
        while slug in self.seen:
            slug, i = f"{base}-{i}", i + 1
        self.seen.add(slug)
        return slug


def _table(label_header: str, labels: Sequence[str], columns: Sequence[str],
           values: Sequence[Mapping[str, float | None]], headers: Mapping[str, str],
           prefix_cells: Sequence[str] | None = None, prefix_header: str | None = None) -> str:
    """A numeric table, the best value of each column in bold (lowest for times, memory, Gini)."""
    best: dict[str, float] = {}
    for c in columns:
        col = [v[c] for v in values if v.get(c) is not None and not math.isnan(v[c])]
        if len(col) > 1 and min(col) != max(col):  # a column of equal values has no best
            best[c] = min(col) if _lower_is_better(c) else max(col)
    head = [f"<th>{_e(label_header)}</th>"]
    if prefix_header is not None:
        head.append(f"<th>{_e(prefix_header)}</th>")
    head += [f'<th title="{_e(c)}">{_e(headers.get(c, c))}</th>' for c in columns]
    body = []
    for i, (label, vals) in enumerate(zip(labels, values)):
        cells = [f"<td>{_e(label)}</td>"]
        if prefix_cells is not None:
            cells.append(f"<td>{prefix_cells[i]}</td>")
        for c in columns:
            v = vals.get(c)
            text = _e(_fmt_value(c, v))
            cells.append(f"<td><b>{text}</b></td>" if c in best and v == best[c] else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ('<div class="tablewrap"><table><thead><tr>' + "".join(head) + "</tr></thead><tbody>\n"
            + "\n".join(body) + "\n</tbody></table></div>")


def _skip(text: str) -> str:
    return f'<p class="skip">{_e(text)}</p>'


def _meta_line(parts: Sequence[tuple[str, Any]]) -> str:
    shown = [f"{_e(k)} {_e(v)}" for k, v in parts if v not in (None, "", ())]
    return f'<p class="muted">{" · ".join(shown)}</p>' if shown else ""


def _scenario_section(res: ScenarioResult, ids: _Ids, toc: list, name_case: bool = False) -> str:
    sid = ids("scenario", res.scenario)
    where = ", ".join(x for x in (res.dataset, f"case {res.case}" if name_case and res.case else None) if x)
    title = f"Scenario: {res.scenario}" + (f" ({where})" if where else "")
    subs: list[tuple[str, str]] = []
    out = [f'<section id="{sid}"><h2>{_e(title)}</h2>',
           _meta_line([("file", res.path.name), ("queries", f"{res.n_queries:,}" if res.n_queries else None),
                       ("date", res.date), ("protocol", res.protocol)])]
    keys = [k for r in res.rows for k in r.metrics]
    k = _main_k(keys, res.ks) or _main_k(keys, res.ks, family="recall")
    panels = [m for m in (f"ndcg@{k}", f"recall@{k}") if k is not None and any(m in r.metrics for r in res.rows)]

    # 1. accuracy bars + table
    aid = ids(sid, "accuracy")
    subs.append((aid, "Accuracy and lift"))
    out.append(f'<h3 id="{aid}">Accuracy: single strategies, fusion methods, pipeline</h3>')
    if panels:
        img, captions = _scenario_chart(res, panels)
        headline = lift(res.rows, panels[0])
        if headline:
            for p, value, best in headline:
                out.append(f'<p class="callout"><b>{_e(p.label)}</b> reaches {_e(_pretty(panels[0]))} '
                           f'{p.metrics[panels[0]]:.4f}: <b>{_e(_fmt_lift(value))} over {_e(best.label)}</b>, '
                           f'the best single strategy ({best.metrics[panels[0]]:.4f}).</p>')
        elif not any(r.kind == "pipeline" for r in res.rows):
            out.append(_skip("No pipeline row in this file, so no lift over the best single strategy."))
        else:
            out.append(_skip(f"No single-strategy row with {_pretty(panels[0])}, so no lift to report."))
        out.append(f"<figure>{img}</figure>")
    else:
        out.append(_skip("Chart skipped: no row has NDCG@k or Recall@k."))
    columns = sorted({c for r in res.rows for c in r.metrics}, key=_metric_sort_key)
    columns += [c for c in ("fit_seconds", "recommend_seconds")
                if any(getattr(r, c) is not None for r in res.rows)]
    values = [dict(r.metrics, fit_seconds=r.fit_seconds, recommend_seconds=r.recommend_seconds) for r in res.rows]
    headers = {c: _pretty(c) for c in columns} | {"fit_seconds": "fit s", "recommend_seconds": "rank s"}
    kinds = [f'<span class="kind" style="background:{KIND_COLOURS[r.kind]}"></span>{_e(r.kind)}' for r in res.rows]
    out.append(_table("row", [r.label for r in res.rows], columns, values, headers,
                      prefix_cells=kinds, prefix_header="kind"))

    # 2. contributions
    cid = ids(sid, "contribution")
    subs.append((cid, "What each strategy contributes"))
    out.append(f'<h3 id="{cid}">What each strategy contributes</h3>')
    if any(r.contribution for r in res.rows):
        out.append('<p class="muted">Share of the recommended slots that each candidate strategy '
                   'proposed, per fusion method and pipeline.</p>')
        out.append(f"<figure>{_contribution_chart(res)}</figure>")
        sums = [(r.label, sum(r.contribution.values())) for r in res.rows if r.contribution]
        off = [f"{lbl} ({100 * s:.0f} %)" for lbl, s in sums if abs(s - 1) > 0.01]
        if off:
            out.append(f'<p class="muted">Shares do not add up to 100 % for {_e(", ".join(off))}: '
                       'slots proposed by several strategies or filled by none.</p>')
    else:
        out.append(_skip("Skipped: no row of this file has a \"contribution\" field."))

    # 3. popularity / coverage
    pid = ids(sid, "popularity")
    subs.append((pid, "Popularity and coverage"))
    out.append(f'<h3 id="{pid}">Popularity bias and catalogue coverage</h3>')
    cov_key = None
    cov_ks = sorted(p[1] for p in map(_split_metric, set(keys)) if p and p[0] == "coverage")
    if cov_ks:
        cov_key = f"coverage@{k}" if k in cov_ks else f"coverage@{cov_ks[-1]}"
    has_exposure = any(r.exposure for r in res.rows)
    if has_exposure:
        out.append('<p class="muted">Each curve sorts the items from most to least popular in training '
                   'and adds up the share of recommended slots they get; the dotted diagonal is an even '
                   'spread. Bar colours below match the curves.</p>')
        out.append(f"<figure>{_exposure_chart(res)}</figure>")
    else:
        out.append(_skip("Exposure curve skipped: no row has \"exposure_by_popularity_decile\"."))
    if has_exposure or cov_key:
        out.append(f"<figure>{_coverage_chart(res, cov_key)}</figure>")
    if not cov_key:
        out.append(_skip("Coverage bars skipped: no row has a coverage@k metric."))
    out.append("</section>")
    toc.append((sid, title, subs))
    return "\n".join(x for x in out if x)


def _accuracy_section(res: AccuracyResult, ids: _Ids, toc: list) -> str:
    sid = ids("accuracy", res.dataset)
    title = f"Accuracy: {res.dataset}"
    keys = [k for r in res.rows for k in r.metrics]
    k = _main_k(keys, res.ks, prefer=min(res.ks) if res.ks else 10)
    if k is None:
        k = _main_k(keys, res.ks, family="recall", prefer=min(res.ks) if res.ks else 10)
    panels = [m for m in (f"ndcg@{k}", f"recall@{k}" if any(f"recall@{k}" in r.metrics for r in res.rows)
                          else f"hr@{k}") if any(m in r.metrics for r in res.rows)] if k else []
    out = [f'<section id="{sid}"><h2>{_e(title)}</h2>',
           _meta_line([("file", res.path.name), ("queries", f"{res.n_queries:,}" if res.n_queries else None),
                       ("users", f"{res.extra['n_users']:,}" if "n_users" in res.extra else None),
                       ("items", f"{res.extra['n_items']:,}" if "n_items" in res.extra else None),
                       ("date", res.date)])]
    if res.protocol:
        out.append(f'<p class="muted">Protocol: {_e(res.protocol)}</p>')
    if panels:
        scored = [r for r in res.rows if panels[0] in r.metrics]
        best = max(scored, key=lambda r: r.metrics[panels[0]])
        out.append(f'<p class="callout">Best {_e(_pretty(panels[0]))} here: <b>{_e(best.strategy)}</b> '
                   f'({best.metrics[panels[0]]:.4f}'
                   + (f", fit in {_e(_fmt_seconds(best.fit_seconds))}" if best.fit_seconds is not None else "")
                   + ").</p>")
        out.append(f"<figure>{_accuracy_chart(res, panels)}</figure>")
    else:
        out.append(_skip("Chart skipped: no strategy has NDCG@k, Recall@k or HR@k."))
    out.append(f'<p class="muted"><b>Published:</b> {_e(res.published)}</p>' if res.published
               else _skip("No published numbers in this file."))
    families = ("ndcg", "recall", "hr", "mrr", "coverage", "gini", "novelty", "ild")
    columns = sorted({c for c in keys if (_split_metric(c) or ("", 0))[0] in families}, key=_metric_sort_key)
    columns += [c for c in ("fit_seconds", "recommend_seconds", "peak_rss_gib")
                if any(getattr(r, c) is not None for r in res.rows)]
    values = [dict(r.metrics, fit_seconds=r.fit_seconds, recommend_seconds=r.recommend_seconds,
                   peak_rss_gib=r.peak_rss_gib) for r in res.rows]
    headers = ({c: _pretty(c) for c in columns}
               | {"fit_seconds": "fit s", "recommend_seconds": "rank s", "peak_rss_gib": "GiB"})
    out.append(_table("strategy", [r.strategy for r in res.rows], columns, values, headers))
    out.append("</section>")
    toc.append((sid, title, []))
    return "\n".join(x for x in out if x)


def _how_to_read(has_scenarios: bool, has_accuracy: bool) -> str:
    items = ["Every number is an offline, full-ranking metric on held-out behaviour; higher is better "
             "unless noted. <b>NDCG@k</b> rewards putting the item the shopper went on to choose near the "
             "top, <b>Recall@k</b> / <b>HR@k</b> only whether it appears in the top k at all, "
             "<b>Coverage@k</b> is the share of the catalogue that is ever recommended."]
    if has_scenarios:
        swatch = "".join(f'<span class="kind" style="background:{c}"></span>{k} ' for k, c in KIND_COLOURS.items())
        items += [
            f"Colours by kind: {swatch}&mdash; one candidate strategy alone, a fusion method merging "
            "several, and the full pipeline (fusion plus filters and re-ranking).",
            "<b>Lift</b> is the pipeline's relative gain over the best single strategy of the same "
            "scenario (dashed line): +14&nbsp;% means 1.14 times its score.",
            "<b>Exposure curves</b>: items are sorted from most to least popular in training; a curve on "
            "the dotted diagonal shares the slots evenly, a curve that shoots up on the left sends most "
            "slots to best-sellers."]
    if has_accuracy:
        items.append("Accuracy sections compare single strategies on public datasets; the best bar is "
                     "dark. Published numbers come from papers with their own protocols, so compare "
                     "with care.")
    items.append("In tables the best value of each column is <b>bold</b> (the lowest for time, memory "
                 "and Gini).")
    return ('<div class="howto"><b>How to read this</b><ul>' + "".join(f"<li>{i}</li>" for i in items)
            + "</ul></div>")


def _span(values: Iterable[str | None]) -> str:
    seen = sorted({v for v in values if v})
    if not seen:
        return "unknown"
    return seen[0] if len(seen) == 1 else f"{seen[0]} to {seen[-1]}"


def build_report(results_dir: Path, out: Path, *, title: str = "shoprec benchmarks") -> Path:
    """Render every result file of a folder into one self-contained HTML page.

    Per scenario file: bars of NDCG@10 and Recall@10 for each single strategy, fusion method and
    pipeline coloured by kind, with the pipeline's lift over the best single strategy written on the
    chart and in a call-out; a table of all metrics (best per column in bold); stacked bars of the
    share of slots each strategy contributed; the Lorenz-style exposure curve over popularity deciles
    and the coverage per row. Per accuracy file: bars of NDCG and Recall at the file's first cut-off
    with the fit time, the published numbers as text and a table. Plots are base64 PNGs drawn with
    matplotlib's Agg canvas; the page has no script, no external style sheet and no network fetch,
    and the same input gives the same bytes.

    Parameters
    ----------
    results_dir
        Folder with ``scenarios-*.json`` and/or ``accuracy-*.json`` (other files are ignored).
    out
        The HTML file to write; its folder is created if needed.
    title
        Page title.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    FileNotFoundError
        ``results_dir`` does not exist or holds no result file.
    DataError (a ValueError)
        A file is malformed; the message names the file and the missing or wrong key.
    """
    scenarios, accuracy = load_results(Path(results_dir))
    ids = _Ids()
    toc: list = []
    sections = []
    with _style():
        # results of one scenario on one dataset (e.g. with and without a rule) are told apart by case
        seen = Counter((r.scenario, r.dataset) for r in scenarios)
        for res in scenarios:
            sections.append(_scenario_section(res, ids, toc, name_case=seen[(res.scenario, res.dataset)] > 1))
        acc_toc: list = []
        for res in accuracy:
            sections.append(_accuracy_section(res, ids, acc_toc))
    toc += acc_toc
    every = [*scenarios, *accuracy]
    dates = _span(r.date for r in every)
    machines = sorted({r.machine for r in every if r.machine})
    counts = []
    if scenarios:
        counts.append(f"{len(scenarios)} scenario file{'s' if len(scenarios) != 1 else ''}")
    if accuracy:
        counts.append(f"{len(accuracy)} accuracy file{'s' if len(accuracy) != 1 else ''}")
    toc_html = ["<nav><b>Contents</b><ol>"]
    for sid, name, subs in toc:
        toc_html.append(f'<li><a href="#{sid}">{_e(name)}</a>')
        if subs:
            toc_html.append("<ul>" + "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t in subs) + "</ul>")
        toc_html.append("</li>")
    toc_html.append("</ol></nav>")
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="meta">Results dated {_e(dates)} · machine: {_e("; ".join(machines) or "unknown")} · '
        f'{_e(", ".join(counts))} from <code>{_e(Path(results_dir).name or str(results_dir))}</code></p>',
        _how_to_read(bool(scenarios), bool(accuracy)),
        "</header>",
        "\n".join(toc_html),
        *sections,
        "<footer>Generated by <code>shoprec report</code> from: "
        + ", ".join(f"<code>{_e(r.path.name)}</code>" for r in every) + ".</footer>",
        "</main></body></html>",
    ]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(page) + "\n", encoding="utf-8")
    return out
