"""Whole-stack fit: ``Recommender().fit(data)`` with every shipped scenario, timed, with peak memory.

    python benchmarks/fit_stack.py                          # demo, online-retail and yelp2018
    python benchmarks/fit_stack.py --datasets yelp2018
    python benchmarks/fit_stack.py --tag before             # results/runs/fit_stack-<dataset>-before.json
    python benchmarks/fit_stack.py --note "measured while another job shared the cores"

This is what a shop pays to (re)fit shoprec: every scenario of ``shoprec/scenarios/defaults``, the
strategies they share fitted once (``ModelCache``), and whatever validation / ranker training the
shipped files ask for. After the fit, one batch of requests per scenario is answered (known users,
and each scenario's natural context) to show that every page works on the data. Writes
``benchmarks/results/fit_stack-<dataset>.json`` (with ``--tag T``: ``benchmarks/results/runs/fit_stack-<dataset>-T.json``,
which BENCHMARKS.md does not read: for before/after comparisons); with ``--write``, BENCHMARKS.md is re-rendered from all results.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"

from shoprec.data import Ragged  # noqa: E402
from shoprec.data.adapters import load  # noqa: E402
from shoprec.evaluation.evaluator import PeakMemory  # noqa: E402
from shoprec.scenarios import Recommender  # noqa: E402
from shoprec.strategies.base import Queries  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from benchmarks_md import add_write_options, finish  # noqa: E402
from machine import CoreShare  # noqa: E402

#: issue 3: ≤ 5 min, ≤ 15 min, peak ≤ 12 GiB; issue 14: the demo shop ≤ 90 s, yelp2018 ≤ 5 min
LIMITS = {"demo": 90.0, "online-retail": 300.0, "yelp2018": 300.0}
PEAK_LIMIT_GIB = 12.0


def _demo():
    from shoprec.data.adapters import load_online_retail
    from shoprec.demo_data import DEMO_PATH

    data, _ = load_online_retail(DEMO_PATH)
    return data, "the embedded demo shop (Online Retail 2011-09-01 … 2011-12-09), what `shoprec demo` trains"


def _online_retail():
    data, _ = load(f"online_retail:{DATA}/online-retail/online_retail_2010_2011.parquet")
    return data, "the whole log (2010-12-01 … 2011-12-09)"


def _yelp():
    return load(f"lightgcn:{DATA}/yelp2018").train, "train.txt of the LightGCN split"


DATASETS = {"demo": _demo, "online-retail": _online_retail, "yelp2018": _yelp}


def sample_queries(data, n: int = 200, seed: int = 0) -> Queries:
    """Known users with their last item as the page's item and the one before in the basket."""
    rng = np.random.default_rng(seed)
    seqs = data.sequences(by="user")
    users = np.sort(rng.choice(np.flatnonzero(seqs.lengths >= 2), size=n, replace=False)).astype(np.int32)
    tail = seqs.take(users).tail(2)
    last = tail.last()
    first = tail.values[tail.indptr[:-1]]
    return Queries(users, Ragged.from_lists([[x] for x in last]), last.astype(np.int32),
                   Ragged.from_lists([[x] for x in first]))


def run(name: str, note: str) -> dict:
    t0 = time.perf_counter()
    data, what = DATASETS[name]()
    load_s = time.perf_counter() - t0
    print(f"\n== {name}: {data!r} (loaded in {load_s:.0f} s)", flush=True)
    rec = Recommender()
    with PeakMemory() as mem, CoreShare() as share:
        start = time.perf_counter()
        cpu0 = time.process_time()
        rec.fit(data, progress=lambda s, sec: print(f"   {s:14s} {sec:6.1f} s", flush=True))
        fit_s = time.perf_counter() - start
        cpu_s = time.process_time() - cpu0   # every thread's CPU time: less sensitive to a shared machine
    note = "; ".join(x for x in (note, share.note()) if x)
    print(f"   whole stack {fit_s:.0f} s, peak {mem.peak_gib:.2f} GiB", flush=True)
    models = {k.split(":")[0] + ("" if k.endswith(":{}") else " " + k.split(":", 1)[1]): round(v, 1)
              for k, v in rec.cache_.fit_seconds.items()}
    q = sample_queries(data)
    answered = {}
    for scen, pipe in rec.pipelines.items():
        start = time.perf_counter()
        out = pipe.recommend(q)
        answered[scen] = {"seconds": round(time.perf_counter() - start, 2),
                          "full_lists": float((out.item_idx >= 0).all(axis=1).mean()),
                          "notes": list(pipe.notes_)}
        print(f"   {scen:14s} {len(q)} requests in {answered[scen]['seconds']:.1f} s, "
              f"{answered[scen]['full_lists']:.0%} full; {'; '.join(pipe.notes_)[:150]}", flush=True)
    validation = {scen: pipe.validation_ for scen, pipe in rec.pipelines.items() if pipe.validation_}
    return {
        "benchmark": "fit_stack", "dataset": name, "data": what,
        "n_users": int(data.n_users), "n_items": int(data.n_items), "n_events": int(data.n_events),
        "date": date.today().isoformat(),
        "machine": f"2 cores, 24 GiB, {platform.machine()}, Python {platform.python_version()}",
        "note": note, "other_cores": round(share.other_cores, 2),
        "fit_seconds": round(fit_s, 1), "peak_rss_gib": round(mem.peak_gib, 2),
        "limit_seconds": LIMITS.get(name), "scenario_seconds": {k: round(v, 1) for k, v in rec.fit_seconds_.items()},
        "model_seconds": models, "skipped": dict(rec.cache_.skipped), "answered": answered,
        # what fusion learned on each scenario's validation slice (held-out NDCG@10 per method, the
        # tuned weights, the method chosen): the accuracy side of a faster fit
        "validation": json.loads(json.dumps(validation, default=float)),
        "methods": {scen: pipe.method_ for scen, pipe in rec.pipelines.items()},
        "cpu_seconds": round(cpu_s, 1),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--note", default="", help="e.g. that another job shared the 2 cores")
    ap.add_argument("--tag", default="", help="write results/runs/fit_stack-<dataset>-TAG.json instead (a "
                                              "before/after run that BENCHMARKS.md does not read)")
    add_write_options(ap)
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.write_only:
        for name in args.datasets.split(","):
            if name not in DATASETS:
                raise SystemExit(f"unknown dataset {name!r}; known: {list(DATASETS)}")
            out = run(name, args.note)
            if args.tag:
                (RESULTS / "runs").mkdir(exist_ok=True)
                path = RESULTS / "runs" / f"fit_stack-{name}-{args.tag}.json"
            else:
                path = RESULTS / f"fit_stack-{name}.json"
            path.write_text(json.dumps(out, indent=2))
            print(f"   wrote {path.relative_to(ROOT)}", flush=True)
    finish(args)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
