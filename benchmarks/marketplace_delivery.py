"""Delivery-aware ranking on Olist: late arrivals among the recommendations and NDCG@10, with and
without the ``delivery`` re-ranker (``python benchmarks/marketplace_delivery.py``).

protocol: the Olist sample (``olist:../shared/data/olist``; ``sample/`` holds the first ~10k rows of
orders, order lines and customers, which join only in part, ``full/`` every seller with its state). A
global temporal cut leaves the last 30 % of events as test (30 % rather than 10 or 20 %: the test period
then holds about 250 deliveries, at 20 % only 170); every user with a purchase after the cut is a
query, known or not. The recommender is all-time popularity under the shipped ``[rules]`` (history
not excluded), popularity as fallback: in this sample almost no test user has a training history (the
orders sample and the order lines hardly overlap, so nearly every order line is a one-order guest),
so every personalised strategy falls back to popularity, which gives the only non-trivial NDCG@10.
With the stage, its estimates are fitted on the training events' orders only (deliveries made by
the training data's last event). Each request carries its shopper's region (``attributes["region"]``,
the customer state of their test order, where the customers sample has it); the others are judged by
each seller's overall figures. Truth: for a recommended item shown to a test user, "would arrive late"
is the late risk of its seller to the user's region estimated by the same estimator from the test
period's orders alone (every seller gets one, shrunk toward its state's and the shop's test-period
share: the main figure); also reported, the raw held-out late share of the seller over its test-period
deliveries (only items whose seller delivered in the test period), and the expected days of the
recommended items by the test period's orders. Late share = Σ truth / slots over the top 10 of every
request. Settings swept: demote by ``max_late_risk`` (thresholds × the pool K is chosen from × the
deliveries a seller needs to be judged, ``min_orders``), hold by it, hold by ``max_delivery_days``, and
one combination. Seeds: a seeded bootstrap of the test users; the setting is chosen on seed 1 (the
largest cut in late share with at most 2 % NDCG@10 lost), seeds 2 and 3 and the full test set are
reported, with a 1,000-draw bootstrap interval on the full set. Also reported, how well the training
estimates predict the test period (AUC of the late risk for test deliveries being late, Spearman of
expected against actual days).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from machine import CoreShare  # noqa: E402

from shoprec.data import Behaviour  # noqa: E402
from shoprec.data.adapters import load  # noqa: E402
from shoprec.evaluation.metrics import ranking_metrics  # noqa: E402
from shoprec.evaluation.splits import temporal_split  # noqa: E402
from shoprec.scenarios import ScenarioPipeline, scenario_from_dict  # noqa: E402
from shoprec.scenarios.delivery import deliveries, delivery_estimates  # noqa: E402
from shoprec.scenarios.stages import make_stage  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data" / "olist"
K = 10
TEST_FRACTION = 0.3
MAX_NDCG_LOSS = 0.02
TARGET_LATE_CUT = 0.30
N_BOOT = 1000


def settings() -> list[tuple[str, dict | None]]:
    out: list[tuple[str, dict | None]] = [("without the stage", None)]
    for m in (1, 3):
        for pool in (20, 50):
            for t in (0.04, 0.05, 0.06, 0.07, 0.08, 0.10, 0.12):
                out.append((f"demote late risk ≥ {t:.2f} (pool {pool}, min_orders {m})",
                            {"max_late_risk": t, "pool": pool, "min_orders": m}))
    for t in (0.06, 0.08, 0.10):
        out.append((f"hold late risk ≥ {t:.2f}", {"max_late_risk": t, "action": "hold"}))
    for dd in (8, 10, 12, 15, 20):
        out.append((f"hold expected > {dd} days", {"max_delivery_days": dd}))
    out.append(("hold > 15 days + demote late risk ≥ 0.08 (pool 20)",
                {"max_delivery_days": 15, "max_late_risk": 0.08, "pool": 20}))
    return out


def _regions(data, task, users: np.ndarray) -> np.ndarray:
    """Per query (test user), the customer state of their first test-period order that names one, else ""."""
    o = data.meta["orders"]
    state = o.set_index("session_id")["customer_state"]
    ev = data.events
    test = ev[(ev["timestamp"].to_numpy() >= task.meta["cut"]) & (ev["session_idx"].to_numpy() >= 0)]
    sess = data.sessions.to_external(test["session_idx"].to_numpy())
    frame = pd.DataFrame({"user": test["user_idx"].to_numpy(), "t": test["timestamp"].to_numpy(),
                          "state": state.reindex(sess).to_numpy(object)}).dropna().sort_values("t", kind="stable")
    first = frame.drop_duplicates("user").set_index("user")["state"]
    return first.reindex(users).fillna("").astype(str).to_numpy(object)


def _split(data):
    """(the temporal task, the data's user index of each query: new users are -1 in the queries, and the
    split orders the queries by user index)."""
    task = temporal_split(data, test_fraction=TEST_FRACTION, known_users_only=False)
    ev = data.events
    test = ev[(ev["timestamp"].to_numpy() >= task.meta["cut"])
              & (ev["behaviour"].to_numpy() == int(Behaviour.PURCHASE))]
    users = np.unique(test["user_idx"].to_numpy())
    assert len(users) == task.n_queries
    return task, users


def _per_slot(est, rec: np.ndarray, codes: np.ndarray, table: np.ndarray) -> np.ndarray:
    """float (n, K): ``table`` (seller × region, last column unknown) at each recommended item and its
    request's region; NaN for padding or no value."""
    s = np.where(rec >= 0, est.seller[np.maximum(rec, 0)], -1)
    v = table[np.maximum(s, 0), codes[:, None]]
    return np.where(s >= 0, v, np.nan)


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    ok = np.isfinite(score) & np.isfinite(label)
    y, x = label[ok] > 0, score[ok]
    if y.all() or not y.any():
        return float("nan")
    ranks = pd.Series(x).rank().to_numpy()
    return float((ranks[y].sum() - y.sum() * (y.sum() + 1) / 2) / (y.sum() * (~y).sum()))


def _predictive(train_est, test_data) -> dict:
    """How well the training estimates predict the test period's deliveries."""
    d = deliveries(test_data, train_est.seller)
    codes = train_est.region_index(d["region"].to_numpy(dtype=object))
    s = d["seller"].to_numpy()
    risk = train_est.seller_risk[s, codes]
    days = train_est.seller_days[s, codes]
    ok = np.isfinite(days)
    from scipy.stats import spearmanr

    rho = spearmanr(days[ok], d["days"].to_numpy()[ok]).statistic if ok.sum() > 2 else float("nan")
    late = d["late"].to_numpy()
    return {"test_deliveries": int(len(d)), "with_training_estimate": int(ok.sum()),
            "late": int(np.nansum(late)), "late_with_estimate": int(np.nansum(late[ok])),
            "auc_late_risk": _auc(risk, late), "spearman_days": float(rho),
            "with_region": int(pd.notna(d["region"]).sum())}


def _aggregate(per_user: dict[str, np.ndarray], w: np.ndarray) -> dict[str, float]:
    """Weighted (bootstrap) means and pooled ratios of per-user figures; ``w`` (B, n) or (n,)."""
    w = np.atleast_2d(w)
    tot = w.sum(axis=1)
    out = {"ndcg@10": (w @ per_user["ndcg"]) / tot, "hr@10": (w @ per_user["hr"]) / tot}
    for name in ("late", "late_raw", "days"):
        out[name] = (w @ per_user[name + "_sum"]) / np.maximum(w @ per_user[name + "_n"], 1e-12)
    out["late_raw_coverage"] = (w @ per_user["late_raw_n"]) / np.maximum(w @ per_user["slots"], 1e-12)
    return out


def run(seeds=(1, 2, 3), data: Path = DATA) -> dict:
    t0 = time.perf_counter()
    shop, report = load(f"olist:{data}")
    task, query_users = _split(shop)
    cut = task.meta["cut"]
    train = task.train
    test_data = shop.filter_events(shop.events["timestamp"].to_numpy() >= cut, name="olist-test")
    regions = _regions(shop, task, query_users)
    q = replace(task.queries, context={"region": regions})
    truth = delivery_estimates(test_data, min_orders=0)
    t_codes = truth.region_index(regions)
    test_d = deliveries(test_data, truth.seller)
    raw = np.full(len(truth.seller_names), np.nan)
    if test_d is not None and len(test_d):
        g = test_d.dropna(subset=["late"]).groupby("seller")["late"].mean()
        raw[g.index.to_numpy()] = g.to_numpy()
    raw_table = np.repeat(raw[:, None], truth.n_regions + 1, axis=1)
    train_est = delivery_estimates(train)
    cfg = scenario_from_dict({"scenario": {"name": "home", "k": K}, "strategies": [{"name": "popularity"}],
                              "rules": {"exclude_history": "none"}, "fallback": [{"name": "popularity"}]},
                             "marketplace_delivery")
    pipe = ScenarioPipeline(cfg).fit(train)
    rules = pipe.rerankers_[:1]
    n = task.n_queries
    rows = []
    base_rec = None
    for label, params in settings():
        if params is None:
            pipe.rerankers_ = list(rules)
        else:
            stage = make_stage("reranker", {"name": "delivery", "params": {**params, "note_days": False}})
            pipe.rerankers_ = list(rules) + [stage.fit(pipe.data_, pipe.env_)]
        rec = pipe.recommend(q, K).item_idx.copy()
        base_rec = rec.copy() if base_rec is None else base_rec
        m = ranking_metrics(rec, task.relevant, ks=(K,))
        late = _per_slot(truth, rec, t_codes, truth.seller_risk)
        late_raw = _per_slot(truth, rec, t_codes, raw_table)
        days = _per_slot(truth, rec, t_codes, truth.seller_days)
        per_user = {"ndcg": m[f"ndcg@{K}"], "hr": m[f"hr@{K}"], "slots": (rec >= 0).sum(axis=1).astype(float)}
        for name, v in (("late", late), ("late_raw", late_raw), ("days", days)):
            per_user[name + "_sum"] = np.nansum(v, axis=1)
            per_user[name + "_n"] = np.isfinite(v).sum(axis=1).astype(float)
        changed = float((np.sort(rec, axis=1) != np.sort(base_rec, axis=1)).any(axis=1).mean())
        reordered = float((rec != base_rec).any(axis=1).mean())
        rows.append({"label": label, "params": params, "per_user": per_user, "lists_changed": changed,
                     "lists_reordered": reordered, "hits": int(per_user["hr"].sum())})
    boots = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        boots[seed] = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
    draws = np.stack([np.bincount(r, minlength=n) for r in np.random.default_rng(0).integers(0, n, (N_BOOT, n))]
                     ).astype(float)
    base = rows[0]["per_user"]
    out_rows = []
    for row in rows:
        entry = {"label": row["label"], "params": row["params"], "lists_changed": row["lists_changed"],
                 "lists_reordered": row["lists_reordered"], "hits": row["hits"]}
        for key, w in [("full", np.ones(n))] + [(f"seed {s}", boots[s]) for s in seeds]:
            a = {k: float(v[0]) for k, v in _aggregate(row["per_user"], w).items()}
            b = {k: float(v[0]) for k, v in _aggregate(base, w).items()}
            a["ndcg_change"] = a["ndcg@10"] / b["ndcg@10"] - 1 if b["ndcg@10"] else float("nan")
            a["late_change"] = a["late"] / b["late"] - 1 if b["late"] else float("nan")
            a["late_raw_change"] = a["late_raw"] / b["late_raw"] - 1 if b["late_raw"] else float("nan")
            a["days_change"] = a["days"] / b["days"] - 1 if b["days"] else float("nan")
            entry[key] = a
        out_rows.append(entry)
    tune = f"seed {seeds[0]}"
    # among the settings that change anything, those within the NDCG budget on the tuning seed
    ok = [r for r in out_rows[1:] if r["lists_reordered"] > 0 and r[tune]["ndcg_change"] >= -MAX_NDCG_LOSS]
    chosen = min(ok, key=lambda r: (r[tune]["late_change"], -r[tune]["ndcg_change"])) if ok else None
    interval = None
    if chosen is not None:
        row = next(r for r in rows if r["label"] == chosen["label"])
        a, b = _aggregate(row["per_user"], draws), _aggregate(base, draws)
        interval = {k: [float(x) for x in np.percentile(a[m] / b[m] - 1, [2.5, 97.5])]
                    for k, m in (("late_change", "late"), ("ndcg_change", "ndcg@10"), ("days_change", "days"))}
    ev = shop.events
    counts = {"order_lines": int(report.rows_kept), "orders_with_outcome": int(shop.meta["orders"]["delivered"].notna().sum()),
              "orders_with_customer_state": int(shop.meta["orders"]["customer_state"].notna().sum()),
              "cut": str(pd.Timestamp(cut, unit="s")), "test_users": int(n),
              "test_users_known": int((task.queries.user_idx >= 0).sum()),
              "test_users_with_region": int((regions != "").sum()),
              "training_deliveries": train_est.n_deliveries, "training_deliveries_with_region": train_est.n_with_region,
              "training_sellers_with_estimate": int(np.isfinite(train_est.seller_days[:, -1]).sum()),
              "sellers": len(train_est.seller_names), "regions": train_est.regions,
              "items_with_estimate": float(np.isfinite(train_est.days_unknown).mean()),
              "test_deliveries": truth.n_deliveries, "test_deliveries_with_region": truth.n_with_region,
              "test_late_share": truth.shop_risk, "training_late_share": train_est.shop_risk,
              "events": int(len(ev)), "items": int(shop.n_items), "users": int(shop.n_users),
              "recommended_distinct_items_baseline": int(len(np.unique(base_rec[base_rec >= 0])))}
    return {"protocol": __doc__, "counts": counts, "predictive": _predictive(train_est, test_data),
            "rows": out_rows, "chosen": None if chosen is None else chosen["label"], "interval": interval,
            "seeds": list(seeds), "seconds": time.perf_counter() - t0}


def _pct(x: float) -> str:
    return "–" if x != x else f"{x:+.1%}"


def table_lines(res: dict) -> list[str]:
    c, p = res["counts"], res["predictive"]
    seeds = res["seeds"]
    out = [f"Olist sample: {c['order_lines']:,} order lines, {c['orders_with_outcome']:,} orders with a delivery outcome "
           f"({c['orders_with_customer_state']:,} with the customer's state); cut {c['cut']}: {c['test_users']:,} test "
           f"users ({c['test_users_known']:,} with a training history, {c['test_users_with_region']:,} with a region). "
           f"Training: {c['training_deliveries']:,} deliveries ({c['training_deliveries_with_region']:,} with a region, "
           f"late share {c['training_late_share']:.1%}), {c['training_sellers_with_estimate']:,} of {c['sellers']:,} "
           f"sellers estimated ({c['items_with_estimate']:.0%} of items). Test period: {c['test_deliveries']:,} "
           f"deliveries ({c['test_deliveries_with_region']:,} with a region), late share {c['test_late_share']:.1%}. "
           f"Without the stage the top {K} hold {c['recommended_distinct_items_baseline']} distinct items.",
           "",
           f"Do the training estimates predict the test period? Of {p['test_deliveries']} test deliveries "
           f"({p['late']} late), {p['with_training_estimate']} have a training estimate ({p['late_with_estimate']} late): "
           f"AUC of the late risk {p['auc_late_risk']:.3f}, Spearman of expected vs actual days {p['spearman_days']:.3f}.",
           "",
           "| setting | lists changed (reordered) | NDCG@10 (users hit) | Δ NDCG | late share (test-period estimate) | Δ late | raw held-out "
           "late share (coverage) | Δ | expected days | Δ days | " + " | ".join(f"seed {s}: Δ NDCG / Δ late" for s in seeds)
           + " |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(seeds)]
    for r in res["rows"]:
        f = r["full"]
        mark = " **(chosen on seed 1)**" if r["label"] == res["chosen"] else ""
        out.append(f"| {r['label']}{mark} | {r['lists_changed']:.1%} ({r['lists_reordered']:.1%}) | "
                   f"{f['ndcg@10']:.4f} ({r['hits']}) | {_pct(f['ndcg_change'])} | "
                   f"{f['late']:.2%} | {_pct(f['late_change'])} | {f['late_raw']:.2%} ({f['late_raw_coverage']:.0%}) | "
                   f"{_pct(f['late_raw_change'])} | {f['days']:.2f} | {_pct(f['days_change'])} | "
                   + " | ".join(f"{_pct(r[f'seed {s}']['ndcg_change'])} / {_pct(r[f'seed {s}']['late_change'])}"
                                for s in seeds) + " |")
    out.append("")
    if res["chosen"] is None:
        out.append(f"No setting that changes the lists keeps NDCG@10 within {MAX_NDCG_LOSS:.0%} of the stage-less "
                   f"recommender on seed {seeds[0]}: the target (late share −{TARGET_LATE_CUT:.0%} at ≤ "
                   f"{MAX_NDCG_LOSS:.0%} NDCG loss) is **not met** on this sample.")
    else:
        r = next(x for x in res["rows"] if x["label"] == res["chosen"])
        iv = res["interval"]
        rep = "; ".join(f"seed {s}: late {_pct(r[f'seed {s}']['late_change'])}, NDCG {_pct(r[f'seed {s}']['ndcg_change'])}"
                        for s in seeds[1:])
        met = (r["full"]["late_change"] <= -TARGET_LATE_CUT and r["full"]["ndcg_change"] >= -MAX_NDCG_LOSS)
        out.append(f"Chosen on seed {seeds[0]}: {r['label']} (it re-orders {r['lists_reordered']:.1%} of the lists). "
                   f"Reported: {rep}; full test set: late "
                   f"{_pct(r['full']['late_change'])} (95 % bootstrap {_pct(iv['late_change'][0])} … "
                   f"{_pct(iv['late_change'][1])}), NDCG@10 {_pct(r['full']['ndcg_change'])} "
                   f"({_pct(iv['ndcg_change'][0])} … {_pct(iv['ndcg_change'][1])}), expected days "
                   f"{_pct(r['full']['days_change'])}. Target (late share −{TARGET_LATE_CUT:.0%} at ≤ "
                   f"{MAX_NDCG_LOSS:.0%} NDCG loss): {'met' if met else '**not met**'}.")
    return out


def main() -> None:
    from online import machine

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="the Olist folder")
    ap.add_argument("--seeds", default="1,2,3", help="seed 1 tunes, the others are reported")
    args = ap.parse_args()
    with CoreShare() as share:
        res = run(tuple(int(s) for s in args.seeds.split(",")), args.data)
    res.update(date=str(date.today()), other_cores=share.other_cores, machine=machine())
    print("\n".join(table_lines(res)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "marketplace_delivery.json").write_text(json.dumps(res, indent=1, default=float))
    print(f"wrote {(RESULTS / 'marketplace_delivery.json').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
