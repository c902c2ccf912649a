"""Fair exposure (issue 13): seller / category exposure Gini against NDCG@10, on real logs.

Protocol
--------
* **Online Retail** (full, 2010–2011): global temporal cut, last 10 % of events as test, the
  purchases of customers seen in training are relevant; groups = **product type**, the last word
  of the item's title (HOLDER, BAG, MUG, …: the data has no category column). Candidate pool: EASE
  (λ = 200), top 100 per user, training items excluded.
* **Amazon Beauty** (SASRec files): leave-one-out; groups = the item's first attribute id (the
  files' attribute vocabulary is not published; in S3-Rec's preprocessing the first ids are the
  sub-categories, brand last). Pool: EASE (λ = 500), top 100.
* **Olist** (`../shared/data/olist`, the ~10k-line sample): groups = **sellers**. Its buyers
  almost never come back (2 of 8,796 would be test users under the temporal cut), so the case is
  the cold-start page: a global temporal cut at 80 % of orders; every later order is a request of
  an unknown visitor, its items relevant; pool: trending popularity (14-day half-life), top 200.
  Every request has the same pool, so only amortised exposure (which spreads attention across
  requests) can change the Gini there.

Each pool is re-ranked by the ``fair_exposure`` stage exactly as a scenario's ``[fairness]``
section runs it (same class, same pool → K = 10), sweeping its parameters: ``exposure`` (static
and amortised, strength 0 … 3) and ``fair`` (FA*IR, target proportion .1 … .8 of small groups).
Gini = the Gini coefficient of position-weighted exposure over **all** groups of the catalogue
(``shoprec.evaluation.exposure``); NDCG@10 full ranking.

Tuning vs reporting: the test requests are split into three seeded folds (seed 1); the operating
point (the setting with the largest Gini reduction whose NDCG@10 loss ≤ 3 %) is chosen on fold 1
and reported on folds 2 and 3 (and on all requests).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from shoprec.evaluation.exposure import exposure_audit, group_codes
from shoprec.evaluation.metrics import ranking_metrics
from shoprec.scenarios.rerank.fairness import FairExposureReRanker
from shoprec.scenarios.stages import Ranked, StageEnv
from shoprec.strategies.base import Queries, make_strategy

K = 10
MAX_LOSS = 0.03


def _sweep() -> list[dict]:
    out = [{"method": "exposure", "strength": 0.0}]
    for s in (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.8, 1.2, 2.0, 3.0):
        out.append({"method": "exposure", "strength": s})
        out.append({"method": "exposure", "strength": s, "amortize": True})
    for p in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        out.append({"method": "fair", "min_proportion": p})
    return out


def _label(params: dict) -> str:
    if params["method"] == "fair":
        return f"FA*IR p={params['min_proportion']:.1f}"
    return f"exposure{' amortised' if params.get('amortize') else ''} λ={params['strength']:g}"


# --------------------------------------------------------------------------- cases
def _online_retail(root: Path) -> dict:
    from shoprec.data.adapters import load_online_retail
    from shoprec.evaluation.splits import temporal_split

    data, _ = load_online_retail(root / "online-retail" / "online_retail_2010_2011.parquet")
    table = data.item_table.copy()
    table["product_type"] = table["title"].astype("string").str.strip().str.split().str[-1]
    data = replace(data, item_table=table)
    task = temporal_split(data, test_fraction=0.1)
    return {"name": "Online Retail", "groups": "product type", "column": "product_type", "task": task,
            "strategy": ("ease", {"l2": 200.0}), "pool": 100}


def _beauty(root: Path) -> dict:
    from shoprec.data.adapters import load_sasrec
    from shoprec.evaluation.splits import leave_one_out

    data = load_sasrec(root / "amazon-beauty" / "Beauty.txt")
    table = data.item_table.copy()
    table["category"] = table["attributes"].astype("string").str.split().str[0]
    data = replace(data, item_table=table)
    task = leave_one_out(data)
    return {"name": "Amazon Beauty", "groups": "first attribute (category)", "column": "category", "task": task,
            "strategy": ("ease", {"l2": 500.0}), "pool": 100}


def _olist(root: Path) -> dict:
    from shoprec.data.adapters.olist import load_olist
    from shoprec.evaluation.splits import EvalTask

    data, _ = load_olist(root / "olist")
    ev = data.events.sort_values("timestamp", kind="stable")
    cut = float(ev["timestamp"].quantile(0.8))
    train_ev = ev[ev["timestamp"] < cut]
    test_ev = ev[ev["timestamp"] >= cut]
    train = replace(data, events=train_ev.reset_index(drop=True))
    # one request per later order (its session), as an unknown visitor
    sess = test_ev["session_id"].to_numpy() if "session_id" in test_ev.columns else test_ev["user_idx"].to_numpy()
    codes, _ = pd.factorize(pd.Series(sess))
    rel = sp.csr_matrix((np.ones(len(codes), np.float32), (codes, test_ev["item_idx"].to_numpy())),
                        shape=(codes.max() + 1, data.n_items))
    rel.data[:] = 1.0
    q = Queries.for_users(np.full(rel.shape[0], -1, np.int64))
    task = EvalTask("olist", train, q, rel, None, "cold start: later orders as unknown visitors")
    return {"name": "Olist", "groups": "seller", "column": "seller", "task": task,
            "strategy": ("popularity", {"mode": "trending", "half_life_days": 14.0}), "pool": 200}


CASES = {"online-retail": _online_retail, "beauty": _beauty, "olist": _olist}


# --------------------------------------------------------------------------- measuring
def _pool(case: dict) -> tuple[np.ndarray, np.ndarray, float]:
    task = case["task"]
    name, params = case["strategy"]
    t = time.perf_counter()
    model = make_strategy(name, **params).fit(task.train)
    cand = model.recommend(task.queries, case["pool"], exclude=task.exclude)
    return cand.item_idx, cand.scores, time.perf_counter() - t


def _stage(case: dict, params: dict) -> FairExposureReRanker:
    task = case["task"]
    n_q = len(task.queries)
    full = {"group": case["column"], "pool": case["pool"], "half_life": max(n_q / 4.0, 50.0), **params}
    stage = FairExposureReRanker(**full)
    stage.fit(task.train, StageEnv(task.train, None, [], []))
    return stage


def _evaluate(case, idx, val, rows, params, codes) -> dict:
    stage = _stage(case, params)
    ranked = Ranked(idx[rows], val[rows], np.ones(idx[rows].shape, np.int64))
    t = time.perf_counter()
    out = stage.rerank(ranked, None, K)
    seconds = time.perf_counter() - t
    rel = case["task"].relevant[rows]
    ndcg = float(ranking_metrics(out.item_idx, rel, ks=(K,))[f"ndcg@{K}"].mean())
    audit = exposure_audit(out.item_idx, codes, relevant=rel, small=stage.small_)
    return {"label": _label(params), "params": params, "ndcg": ndcg, "gini": audit.gini,
            "small_share": audit.small_share, "ms_per_1k": 1000 * seconds / max(len(rows), 1) * 1000}


def run_case(key: str, root: Path, seed: int = 1) -> dict:
    case = CASES[key](root)
    task = case["task"]
    t0 = time.perf_counter()
    idx, val, fit_s = _pool(case)
    codes, names = group_codes(task.train.item_table, case["column"], task.train.n_items)
    n = len(task.queries)
    has_rel = np.flatnonzero(np.diff(task.relevant.indptr) > 0)
    fold = np.random.default_rng(seed).integers(0, 3, len(has_rel))
    folds = {f"fold {f + 1}": has_rel[fold == f] for f in range(3)}
    sweep = _sweep()
    curve = {name: [_evaluate(case, idx, val, rows, p, codes) for p in sweep] for name, rows in
             [("fold 1", folds["fold 1"])]}
    base1 = curve["fold 1"][0]
    ok = [r for r in curve["fold 1"] if r["ndcg"] >= (1 - MAX_LOSS) * base1["ndcg"]]
    chosen = min(ok, key=lambda r: r["gini"])
    report = {}
    for name in ("fold 2", "fold 3"):
        rows = folds[name]
        base = _evaluate(case, idx, val, rows, sweep[0], codes)
        got = _evaluate(case, idx, val, rows, chosen["params"], codes)
        report[name] = {"base": base, "fair": got, "gini_change": got["gini"] / base["gini"] - 1 if base["gini"] else 0.0,
                        "ndcg_change": got["ndcg"] / base["ndcg"] - 1 if base["ndcg"] else 0.0}
    everyone = has_rel
    full_curve = [_evaluate(case, idx, val, everyone, p, codes) for p in sweep]
    return {"case": case["name"], "groups": case["groups"], "n_groups": len(names), "queries": int(n),
            "queries_with_relevant": int(len(has_rel)), "pool_strategy": case["strategy"][0],
            "pool_params": case["strategy"][1], "pool_size": case["pool"], "fit_seconds": fit_s,
            "chosen": chosen["label"], "chosen_params": chosen["params"], "tuning": base1 | {"chosen": chosen},
            "report": report, "curve": full_curve, "seconds": time.perf_counter() - t0,
            "protocol": task.protocol}


def run(root: Path, cases=("online-retail", "beauty", "olist"), seed: int = 1) -> dict:
    return {key: run_case(key, root, seed) for key in cases}


def table_lines(res: dict) -> list[str]:
    lines = ["| case (groups) | operating point (chosen on fold 1) | fold | Gini base → fair | change | "
             "NDCG@10 base → fair | change | small groups' share |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res.values():
        for fold, x in r["report"].items():
            lines.append(f"| {r['case']} ({r['groups']}, {r['n_groups']:,}) | {r['chosen']} | {fold} | "
                         f"{x['base']['gini']:.3f} → {x['fair']['gini']:.3f} | {x['gini_change']:+.1%} | "
                         f"{x['base']['ndcg']:.4f} → {x['fair']['ndcg']:.4f} | {x['ndcg_change']:+.1%} | "
                         f"{x['base']['small_share']:.1%} → {x['fair']['small_share']:.1%} |")
    return lines


def curve_lines(res: dict) -> list[str]:
    lines = []
    for r in res.values():
        base = r["curve"][0]
        lines += [f"**{r['case']}** ({r['groups']}; {r['queries_with_relevant']:,} requests with a relevant item, "
                  f"pool: {r['pool_strategy']} top {r['pool_size']}), all requests:", "",
                  "| setting | Gini | Δ Gini | NDCG@10 | Δ NDCG | small groups' share | ms / 1k requests |",
                  "|---|---|---|---|---|---|---|"]
        for c in r["curve"]:
            dg = c["gini"] / base["gini"] - 1 if base["gini"] else 0.0
            dn = c["ndcg"] / base["ndcg"] - 1 if base["ndcg"] else 0.0
            lines.append(f"| {c['label']} | {c['gini']:.3f} | {dg:+.1%} | {c['ndcg']:.4f} | {dn:+.1%} | "
                         f"{c['small_share']:.1%} | {c['ms_per_1k']:.0f} |")
        lines.append("")
    return lines
