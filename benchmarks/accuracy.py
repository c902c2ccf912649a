"""Accuracy benchmark: every strategy on the real datasets, full ranking, beside published numbers.

    python benchmarks/accuracy.py                      # all datasets (≈ 25 min on 2 cores)
    python benchmarks/accuracy.py --datasets beauty,diginetica
    python benchmarks/accuracy.py --datasets yelp2018 --only "als,bpr"   # re-run some rows, keep the rest
    python benchmarks/accuracy.py --datasets beauty --write   # … and rewrite BENCHMARKS.md
    python benchmarks/accuracy.py --write-only         # rebuild BENCHMARKS.md from benchmarks/results/

Each dataset's results are saved to ``benchmarks/results/accuracy-<dataset>.json``; with ``--write``
BENCHMARKS.md is rebuilt from all saved results, so datasets can be re-run one at a time. Datasets are read from
``../shared/data`` (override with ``--data-root``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import psutil
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from benchmarks_md import add_write_options, finish  # noqa: E402  (beside this script)
from shoprec.cli import result_line, results_table  # noqa: E402
from shoprec.data.adapters import load_lightgcn, load_online_retail, load_sasrec, load_sessions  # noqa: E402
from shoprec.evaluation.evaluator import evaluate  # noqa: E402
from shoprec.evaluation.splits import (from_train_test, leave_one_out, session_next_item,  # noqa: E402
                                       temporal_split)

console = Console()
RESULTS = ROOT / "benchmarks" / "results"

CF_STRATEGIES = [
    ("popularity", "popularity", {}),
    ("item_knn (cosine)", "item_knn", {"similarity": "cosine", "neighbours": 200, "shrink": 10.0, "alpha": 0.7}),
    ("item_knn (bm25)", "item_knn", {"similarity": "bm25", "neighbours": 200}),
    ("ease (20k items)", "ease", {"l2": 500.0}),
    ("ease (all items)", "ease", {"l2": 500.0, "max_items": None}),
    ("als", "als", {"factors": 256, "alpha": 20.0, "regularization": 1.0, "iterations": 15}),
    ("bpr", "bpr", {}),
    ("linear_filter", "linear_filter", {}),
]

DATASETS = {
    "yelp2018": {
        "load": lambda root: from_train_test(load_lightgcn(root / "yelp2018")),
        "ks": (20,),
        "strategies": CF_STRATEGIES,
        "published": "BARS re-runs, Recall@20 / NDCG@20: MF-BPR .0576/.0468, ItemKNN .0639/.0531, "
                     "EASE .0657/.0552, LightGCN .0653/.0532, GF-CF .0697/.0571, BSPM .0720/.0593; "
                     "best seen XSimGCL .0723/.0604.",
    },
    "amazon-book-kgat": {
        "load": lambda root: from_train_test(load_lightgcn(root / "amazon-book-kgat")),
        "ks": (20,),
        "strategies": [s for s in CF_STRATEGIES],
        "published": "Recall@20 / NDCG@20 (KGIN/KGCL logs): BPR-MF .1244/.0658, LightGCN .1398/.0736, "
                     "SGL .1445/.0766, KGCL .1496/.0791, KGIN .1688/.0915 (uses the knowledge graph).",
    },
    "beauty": {
        "load": lambda root: leave_one_out(load_sasrec(root / "amazon-beauty" / "Beauty.txt")),
        "ks": (10, 20),
        "strategies": [
            ("popularity", "popularity", {}),
            ("item_knn (cosine)", "item_knn", {}),
            ("ease", "ease", {"l2": 100.0}),
            ("als", "als", {"factors": 128, "alpha": 20.0, "regularization": 1.0}),
            ("linear_filter", "linear_filter", {}),
            ("sequential", "sequential", {}),
            ("session_knn", "session_knn", {}),
        ],
        "published": "leave-one-out, full ranking, HR@10 / NDCG@10: GRU4Rec .0283/.0137, SASRec .0605/.0318, "
                     "S3-Rec .0647/.0327, DuoRec .0845/.0443, BSARec .1008/.0611.",
    },
    "diginetica": {
        "load": lambda root: session_next_item(load_sessions(root / "diginetica" / "sessions")),
        "ks": (20,),
        "strategies": [
            ("popularity", "popularity", {}),
            ("item_knn (covisit)", "item_knn", {"similarity": "covisit"}),
            ("sequential", "sequential", {}),
            ("session_knn", "session_knn", {}),
        ],
        "published": "P@20 (= HR@20) / MRR@20 in %: SR-GNN 50.73/17.59, GCE-GNN 54.22/19.04, "
                     "Mssen 55.17/19.64.",
    },
    "online-retail": {
        "load": lambda root: temporal_split(load_online_retail(
            root / "online-retail" / "online_retail_2010_2011.parquet")[0], test_fraction=0.1),
        "ks": (10, 20),
        "strategies": [
            ("popularity", "popularity", {}),
            ("popularity (trending)", "popularity", {"mode": "trending", "half_life_days": 14.0}),
            ("item_knn (covisit)", "item_knn", {"similarity": "covisit"}),
            ("ease", "ease", {"l2": 200.0}),
            ("als", "als", {"factors": 128, "alpha": 20.0, "regularization": 1.0}),
            ("linear_filter", "linear_filter", {}),
            ("sequential", "sequential", {}),
            ("session_knn", "session_knn", {}),
        ],
        "published": "no published full-ranking numbers for this split.",
    },
}


def run_dataset(name: str, root: Path, only: set[str] | None = None) -> dict:
    """Run the dataset's strategies (those labelled in ``only``, if given, replacing their rows in
    the saved results and keeping the others)."""
    spec = DATASETS[name]
    start = time.perf_counter()
    task = spec["load"](root)
    load_seconds = time.perf_counter() - start
    console.print(f"[bold]{name}[/]: {task.train.n_users:,} users, {task.train.n_items:,} items, "
                  f"{task.train.n_events:,} train events, {task.n_queries:,} queries "
                  f"(loaded in {load_seconds:.1f} s)\n  protocol: {task.protocol}")
    specs = [s for s in spec["strategies"] if only is None or s[0] in only]
    with console.status("") as status:
        results = evaluate(specs, task, spec["ks"],
                           on_start=lambda label: status.update(f"{name}: {label}…"),
                           on_result=lambda res: console.print(result_line(res, spec["ks"])))
    console.print(results_table(results, spec["ks"], name))
    out = RESULTS / f"accuracy-{name}.json"
    rows = [r.as_dict() for r in results]
    if only is not None and out.exists():
        new = {r["strategy"]: r for r in rows}
        old = {r["strategy"]: r for r in json.loads(out.read_text())["results"]}
        rows = [new.get(label) or old.get(label) for label, _, _ in spec["strategies"]
                if (new.get(label) or old.get(label)) is not None]
    payload = {
        "dataset": name, "protocol": task.protocol, "ks": list(spec["ks"]),
        "n_users": task.train.n_users, "n_items": task.train.n_items,
        "n_train_events": task.train.n_events, "n_queries": task.n_queries,
        "published": spec["published"], "date": dt.date.today().isoformat(),
        "machine": machine(), "results": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=float))
    return payload


def machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return (f"{psutil.cpu_count(logical=True)} cores, {mem:.0f} GiB, {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--only", help="Comma-separated strategy labels to (re)run; other saved rows are kept.")
    add_write_options(ap)
    args = ap.parse_args()
    if not args.write_only:
        for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
            if name not in DATASETS:
                ap.error(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
            only = {x.strip() for x in args.only.split(",")} if args.only else None
            run_dataset(name, args.data_root.resolve(), only)
    finish(args)


if __name__ == "__main__":
    main()
