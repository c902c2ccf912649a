"""The report's plots: matplotlib's Agg canvas drawn into inline base64 PNGs (scenario bars,
contributions, exposure over popularity deciles, coverage, accuracy). Part of :mod:`shoprec.report`."""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any, Sequence

from .results import KINDS, AccuracyResult, ScenarioResult, _fmt_lift, _fmt_seconds, _fmt_value, _pretty, lift

KIND_COLOURS = {"single": "#56B4E9", "fusion": "#E69F00", "pipeline": "#009E73"}  # Okabe–Ito
_BAR = "#A9BEDB"
_BAR_BEST = "#1F4E8C"
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
