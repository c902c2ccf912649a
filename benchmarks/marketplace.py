"""A healthy marketplace, part 2 (issue 13): fair exposure, erasure, differential privacy, delivery-aware
ranking, delivery routes — one command, one results file per part, one BENCHMARKS.md section.

    python benchmarks/marketplace.py                       # every part (about 15 minutes on 2 cores)
    python benchmarks/marketplace.py --parts fairness,dp   # some
    python benchmarks/marketplace.py --write               # also rewrite BENCHMARKS.md
    python benchmarks/marketplace.py --write-only          # only rewrite it from the saved results

Each part's protocol is the docstring of its module: ``marketplace_fairness.py``,
``marketplace_erasure.py``, ``marketplace_dp.py``, ``marketplace_delivery.py``,
``marketplace_routes.py``. Results: ``benchmarks/results/marketplace-<part>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from benchmarks_md import RESULTS, add_write_options, finish  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
PARTS = ("fairness", "erasure", "dp", "delivery", "routes")
TITLES = {"fairness": "Fair exposure: exposure Gini against NDCG@10",
          "erasure": "Erasure that reaches the models",
          "dp": "Differentially private popularity and trending counts",
          "delivery": "Delivery-aware ranking (Olist)",
          "routes": "Delivery routes for a warehouse's day (Olist): OR-Tools against nearest-neighbour"}
TARGETS = {"fairness": "seller-exposure Gini −30 % at ≤ 3 % NDCG@10 loss (Olist; categories on Online Retail "
                       "and Beauty)",
           "erasure": "no trace of the id in any store, log, model file or cache; count-based answers "
                      "identical to a model fitted without the user, factor models within tolerance",
           "dp": "trending at ε = 1 keeps ≥ 95 % of its NDCG@10 at the demo shop's scale",
           "delivery": "late-arriving share −30 % at ≤ 2 % NDCG loss",
           "routes": "routes ≥ 15 % shorter than nearest-neighbour"}


def _module(part: str):
    import importlib

    return importlib.import_module(f"marketplace_{part}")


def run_part(part: str) -> dict:
    mod = _module(part)
    t = time.perf_counter()
    if part == "fairness":
        res = mod.run(DATA)
    elif part == "routes":
        res = mod.run()
    else:
        res = mod.run()
    return {"part": part, "result": res, "seconds": time.perf_counter() - t}


def _lines(part: str, res: dict) -> list[str]:
    mod = _module(part)
    lines = list(mod.table_lines(res))
    if part == "fairness":
        lines += ["", "The whole curve (all requests; each setting one pass of the `fair_exposure` stage):", "",
                  *mod.curve_lines(res)]
    return lines


def marketplace_lines() -> list[str]:
    """The BENCHMARKS.md section, from the saved results."""
    out = []
    for part in PARTS:
        p = RESULTS / f"marketplace-{part}.json"
        if not p.exists():
            continue
        saved = json.loads(p.read_text())
        m = saved.get("machine", {})
        doc = (_module(part).__doc__ or "").strip()
        out += [f"### {TITLES[part]}", "", f"Target: {TARGETS[part]}.", "",
                f"Measured {saved['date']} on {m.get('cpus', '?')} cores, {m.get('memory_gib', '?')} GiB, "
                f"Python {m.get('python', '?')}. Reproduce: `python benchmarks/marketplace.py --parts {part} --write` "
                f"({saved['seconds']:.0f} s).", "", "<details><summary>Protocol</summary>", "", doc, "", "</details>", "",
                *_lines(part, saved["result"]), ""]
    return ["", "## A healthy marketplace, part 2 (issue 13)", "", *out] if out else []


def main() -> None:
    from online import machine

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    add_write_options(ap)
    args = ap.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    bad = sorted(set(parts) - set(PARTS))
    if bad:
        ap.error(f"unknown part(s) {bad}; known: {', '.join(PARTS)}")
    if not args.write_only:
        RESULTS.mkdir(parents=True, exist_ok=True)
        for part in parts:
            print(f"== {part}", flush=True)
            got = run_part(part)
            got.update(date=str(date.today()), machine=machine())
            (RESULTS / f"marketplace-{part}.json").write_text(json.dumps(got, indent=1, default=float))
            print("\n".join(_lines(part, got["result"])), flush=True)
    finish(args)


if __name__ == "__main__":
    main()
