"""The report's section on fair exposure: the trade-off curve of exposure Gini against NDCG@10 per
case and method, from ``marketplace-fairness.json`` (``benchmarks/marketplace.py --parts fairness``).
Part of :mod:`shoprec.report`."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..exceptions import DataError

__all__ = ["fairness_section", "read_fairness"]


def read_fairness(path: Path) -> dict[str, Any]:
    """The cases of a fairness result file, each with its curve (list of settings with gini, ndcg)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    cases = obj.get("result", obj)
    if not isinstance(cases, dict) or not cases:
        raise DataError(f"{path}: no cases (expected the output of benchmarks/marketplace.py --parts fairness)")
    for key, case in cases.items():
        for field in ("case", "groups", "curve"):
            if field not in case:
                raise DataError(f"{path}: case {key!r} has no {field!r}")
        for i, c in enumerate(case["curve"]):
            if not {"gini", "ndcg", "params"} <= set(c):
                raise DataError(f"{path}: case {key!r}, curve[{i}] needs gini, ndcg and params")
    return cases


def _family(params: dict) -> str:
    if params.get("method") == "fair":
        return "FA*IR"
    return "amortised exposure" if params.get("amortize") else "exposure (static)"


def _chart(case: dict[str, Any]) -> str:
    from .plots import _figure, _png

    curve = case["curve"]
    base = curve[0]
    fig = _figure(3.0)
    ax = fig.subplots(1, 1)
    fams: dict[str, list] = {}
    for c in curve:
        fams.setdefault(_family(c["params"]), []).append(c)
    for name, pts in fams.items():
        pts = sorted(pts, key=lambda c: -c["gini"])
        xs = [100 * (c["gini"] / base["gini"] - 1) if base["gini"] else 0.0 for c in pts]
        ys = [100 * (c["ndcg"] / base["ndcg"] - 1) if base["ndcg"] else 0.0 for c in pts]
        ax.plot(xs, ys, "o-", markersize=3, linewidth=1.2, label=name)
    ax.axhline(-3, color="#999999", linewidth=0.8, linestyle="--")
    ax.axvline(-30, color="#999999", linewidth=0.8, linestyle="--")
    ax.set_xlabel("exposure Gini change (%)")
    ax.set_ylabel("NDCG@10 change (%)")
    ax.set_title(f"{case['case']}: groups = {case['groups']}")
    ax.legend(loc="lower left", frameon=False)
    return _png(fig, f"exposure Gini against NDCG@10, {case['case']}")


def fairness_section(path: Path, sid: str) -> tuple[str, tuple[str, str, list]]:
    """(the HTML section, its table-of-contents entry)."""
    cases = read_fairness(path)
    parts = [f'<section id="{sid}"><h2>Fair exposure: Gini of exposure against NDCG@10</h2>',
             "<p>Each point is one setting of the <code>fair_exposure</code> re-ranker on the same candidate "
             "pools; the dashed lines are the target (Gini −30 % at no more than −3 % NDCG@10).</p>"]
    for case in cases.values():
        parts.append(f"<h3>{html.escape(case['case'])}</h3>")
        parts.append(_chart(case))
    parts.append("</section>")
    return "\n".join(parts), (sid, "Fair exposure", [])
