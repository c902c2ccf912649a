"""The report's section on the shop simulator: regret and reward curves per policy, from
``online-sim*.json`` (``benchmarks/online.py --parts sim``) or a ``shoprec simulate --json`` file.
Part of :mod:`shoprec.report`."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import DataError

__all__ = ["read_simulation", "simulation_section"]


def read_simulation(path: Path) -> list[dict[str, Any]]:
    """The cases of a simulator result file: per (seed, drift) the runs with their curves."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    runs = obj.get("runs")
    if not isinstance(runs, list) or not runs:
        raise DataError(f"{path}: no 'runs' list (expected the output of benchmarks/online.py --parts sim or "
                        "shoprec simulate --json)")
    cases: dict[tuple, list] = {}
    for i, r in enumerate(runs):
        for key in ("policy", "impressions", "cumulative_reward"):
            if key not in r:
                raise DataError(f"{path}: runs[{i}] has no {key!r}")
        seed = r.get("seed", obj.get("seed"))
        drift = bool(r.get("drift", obj.get("drift_at") is not None))
        cases.setdefault((seed, drift), []).append(r)
    return [{"seed": s, "drift": d, "drift_at": obj.get("drift_at"), "runs": rs, "path": Path(path)}
            for (s, d), rs in sorted(cases.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))]


def _chart(case: dict[str, Any]) -> str:
    from .plots import _figure, _png

    runs = case["runs"]
    fixed = [r for r in runs if r["policy"].startswith("fixed")]
    best = max(fixed or runs, key=lambda r: r["cumulative_reward"][-1])
    x_best = np.asarray(best["impressions"], np.float64)
    y_best = np.asarray(best["cumulative_reward"], np.float64)
    fig = _figure(3.0)
    ax1, ax2 = fig.subplots(1, 2)
    for r in runs:
        x = np.asarray(r["impressions"], np.float64)
        y = np.asarray(r["cumulative_reward"], np.float64)
        style = "--" if r["policy"].startswith("fixed") else "-"
        ax1.plot(x, np.interp(x, x_best, y_best) - y, style, label=r["policy"], linewidth=1.2)
        rate = np.diff(np.concatenate([[0.0], y])) / np.diff(np.concatenate([[0.0], x]))
        k = max(1, len(rate) // 10)     # a moving mean over a tenth of the run
        smooth = np.convolve(rate, np.ones(k) / k, mode="valid")
        ax2.plot(x[k - 1:], smooth, style, linewidth=1.2)
    for ax in (ax1, ax2):
        if case["drift"] and case.get("drift_at"):
            ax.axvline(case["drift_at"], color="#999999", linewidth=0.8)
        ax.set_xlabel("impressions")
    ax1.axhline(0, color="#888888", linewidth=0.6)
    ax1.set_title(f"regret against {best['policy']}")
    ax1.set_ylabel("cumulative reward behind")
    ax2.set_title("reward per impression (moving mean)")
    ax1.legend(loc="upper left", frameon=False)
    what = "with drift" if case["drift"] else "no drift"
    return _png(fig, f"simulator regret and reward curves, seed {case['seed']}, {what}")


def simulation_section(paths: list[Path], sid: str) -> tuple[str, tuple[str, str, list]]:
    """(the HTML section, its table-of-contents entry) for the simulator result files."""
    parts = [f'<section id="{sid}"><h2>The shop simulator: policies over the home mix</h2>',
             "<p>Regret is the best fixed arm's cumulative reward minus the policy's, at the same number of "
             "impressions (dashed: the fixed arms); with drift, a category's popularity shifts at the grey "
             "line and the best arm changes.</p>"]
    for p in paths:
        for case in read_simulation(p):
            what = "with drift" if case["drift"] else "no drift"
            parts.append(f"<h3>{html.escape(p.name)}: seed {html.escape(str(case['seed']))}, {what}</h3>")
            parts.append(_chart(case))
            rows = sorted(case["runs"], key=lambda r: -r["cumulative_reward"][-1])
            parts.append("<table><tr><th>policy</th><th>cumulative reward</th><th>impressions</th></tr>"
                         + "".join(f"<tr><td>{html.escape(r['policy'])}</td><td>{r['cumulative_reward'][-1]:,.1f}</td>"
                                   f"<td>{r['impressions'][-1]:,}</td></tr>" for r in rows) + "</table>")
    parts.append("</section>")
    return "\n".join(parts), (sid, "Shop simulator", [])
