"""Marketplace health measured with injected faults (``python benchmarks/health.py --parts prices``).

prices: the real Online Retail price series (``../shared/data/online-retail``, sales lines with a
positive quantity, one list price per item and day: ``shoprec.health.prices.price_series``); faults
injected by ``benchmarks/health_inject.py`` (its docstring states how: ×3 spikes, −60 % drops,
−35 % subsidised cuts with a volume spike, gradual +40 % creeps; 250 items per kind, one fault each,
each kind on its own copy of the data); the detectors' thresholds were set on seed 1, the figures are
seeds 2 and 3. A flag is a true positive when it names the injected item, the injected kind and the
injected observation (for a creep: within its ramp and the ten observations after). Precision counts
every flag of that kind on the touched items (a real anomaly there counts against it); recall the
share of injected faults found. Reported beside them: the flags the untouched real data raises
(per 1,000 daily prices), the flags of other kinds on the touched items, and the scan's wall time.

peers: Olist (``../shared/data/olist``: the order-items sample's prices, the full products table's
categories); each product's price = the median of its order lines; categories with ≥ 10 products.
Injected (seeded, kept in ``health_inject.inject_peers``): 200 products priced at 5 × their category's
median (gouging) and 200 at 0.15 × it (dumping), each kind on its own copy. Precision counts every
flag of that kind (real outliers count against it); the flags the untouched data raises are reported.
The sample's products sell 1.6 times on average (at most 49), too few for the time-series detectors,
so Olist is measured by peers only.

bots: real logs (Online Retail: visits = invoices; the RetailRocket sample: visits = visitors; the
Taobao UserBehavior head sample: visits = users), with simulated bot visits added, 5 % of all visits,
a quarter each of crawlers, slow (metronomic) crawlers, cart-stuffers and click-farm visits
(``health_inject.inject_bots`` states them), seeds 2 and 3 (the thresholds were set on the synthetic
unit-test logs and on seed 1 of the three logs). Reported: recall per bot kind (a visit counts when
flagged as any bot), and the collateral damage: the share of real visits and of real events flagged.

push: a push attack on the demo shop's home page (the embedded Online Retail slice, cut in time: the
last 20 % of events are the test). Click-farm visits, 5 % of the training sessions, each view 3–6 of
20 target items (among the least bought) plus one of the 50 most popular, and cart one (``health_inject.push_attack``), in the last
30 days of training. The shipped home scenario (its SASRec left out, for time) is fitted on the clean
data, on the attacked data, and on the attacked data with ``[[training_filters]] name = "bots"``;
and likewise the item page (SASRec left out); reported: the targets' share of the top-10 slots of every
test visitor's home page and of the item pages of the 200 most popular items, the lift the attack
bought, the share of that lift the defence removed, and home's NDCG@10 on the clean test against the
no-attack model (the automatic fusion choice is refitted each time, so NDCG moves by a little without
any attack).
Seeds 2 and 3.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from benchmarks_md import add_write_options, finish  # noqa: E402
from health_inject import KINDS, inject  # noqa: E402
from machine import CoreShare  # noqa: E402

from shoprec.health.prices import PriceSupervisor, price_series  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data"
PARTS = ("prices", "peers", "bots", "push", "cost")


def online_retail_series(data: Path) -> tuple[pd.DataFrame, dict]:
    df = pd.read_parquet(data / "online-retail" / "online_retail_2010_2011.parquet")
    df = df[df["Quantity"] > 0]
    ev = pd.DataFrame({"item_id": df["StockCode"].astype(str),
                       "timestamp": df["InvoiceDate"].astype("datetime64[s]").astype("int64"),
                       "price": df["UnitPrice"], "quantity": df["Quantity"]})
    return price_series(ev, source="online-retail")


def score(flags: pd.DataFrame, truth: pd.DataFrame, kind: str) -> dict:
    touched = flags[flags["key"].isin(truth["item"].astype(str))]
    fk = touched[touched["kind"] == kind]
    m = fk.merge(truth.assign(key=truth["item"].astype(str)), on="key")
    hit = m[(m["at"] >= m["t_from"]) & (m["at"] <= m["t_to"])]
    tp_flags = len(hit.drop_duplicates(["key", "at"]))
    return {"injected": len(truth), "found": int(hit["key"].nunique()), "recall": hit["key"].nunique() / len(truth),
            "flags": len(fk), "precision": tp_flags / len(fk) if len(fk) else 0.0,
            "other_kind_flags_on_touched": int((touched["kind"] != kind).sum())}


def prices(data: Path, seeds=(2, 3), n: int = 250) -> dict:
    t0 = time.perf_counter()
    series, counts = online_retail_series(data)
    t_series = time.perf_counter() - t0
    sup = PriceSupervisor()
    t0 = time.perf_counter()
    clean = sup.scan(series)
    t_scan = time.perf_counter() - t0
    rows = []
    for seed in seeds:
        for kind in KINDS:
            s, truth = inject(series, kind, n, seed=seed)
            rows.append({"seed": seed, "kind": kind, **score(sup.scan(s).frame, truth, kind)})
            print(f"seed {seed} {kind:8s} recall {rows[-1]['recall']:.3f} precision {rows[-1]['precision']:.3f}", flush=True)
    per_k = {k: 1000 * v / counts["observations"] for k, v in clean.counts().items()}
    return {"protocol": __doc__, "counts": counts, "series_seconds": t_series, "scan_seconds": t_scan,
            "clean_flags": clean.counts(), "clean_flags_per_1000": per_k, "rows": rows,
            "config": sup.config.__dict__}


def olist_prices(data: Path) -> pd.DataFrame:
    oi = pd.read_csv(data / "olist" / "sample" / "olist_order_items_dataset.csv")
    products = pd.read_csv(data / "olist" / "full" / "olist_products_dataset.csv",
                           usecols=["product_id", "product_category_name"])
    per = oi.groupby("product_id")["price"].median().rename("price").reset_index()
    per = per.merge(products, on="product_id", how="left")
    return pd.DataFrame({"item": per["product_id"], "price": per["price"], "category": per["product_category_name"]})


def peers(data: Path, seeds=(2, 3), n: int = 200) -> dict:
    from health_inject import inject_peers

    prices_ = olist_prices(data)
    sup = PriceSupervisor()
    t0 = time.perf_counter()
    clean = sup.peers(prices_)
    secs = time.perf_counter() - t0
    rows = []
    for seed in seeds:
        for kind in ("above_peers", "below_peers"):
            p, truth = inject_peers(prices_, kind, n, seed, min_peers=sup.config.peer_min)
            f = sup.peers(p).frame
            fk = f[f["kind"] == kind]
            tp = fk["key"].isin(truth.astype(str))
            rows.append({"seed": seed, "kind": kind, "injected": len(truth), "found": int(tp.sum()),
                         "recall": float(tp.sum() / len(truth)), "flags": len(fk),
                         "precision": float(tp.mean()) if len(fk) else 0.0,
                         "other_kind_flags_on_touched": int((f["key"].isin(truth.astype(str)) & (f["kind"] != kind)).sum())})
            print(f"seed {seed} {kind:12s} recall {rows[-1]['recall']:.3f} precision {rows[-1]['precision']:.3f}", flush=True)
    return {"protocol": __doc__, "products": len(prices_), "clean": clean.checked, "clean_flags": clean.counts(),
            "scan_seconds": secs, "rows": rows}


def peer_table_lines(res: dict) -> list[str]:
    out = ["| seed | kind | injected | found | recall | flags of that kind | precision |",
           "|---:|---|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        out.append(f"| {r['seed']} | {r['kind']} | {r['injected']} | {r['found']} | {r['recall']:.3f} | {r['flags']} | "
                   f"{r['precision']:.3f} |")
    c = res["clean"]
    out += ["", f"Untouched data: {res['products']:,} products ({c['unusable']:,} without a category or price, "
            f"{c['in_small_categories']:,} in categories of fewer than 10); flags: "
            + (", ".join(f"{k} {v:,}" for k, v in sorted(res["clean_flags"].items())) or "none")
            + f" ({sum(res['clean_flags'].values()) / max(res['products'], 1):.2%} of the products)."]
    return out


def bot_logs(data: Path) -> dict[str, pd.DataFrame]:
    from shoprec.data.adapters import load

    out = {}
    for name, spec in (("online-retail", f"online-retail:{data / 'online-retail' / 'online_retail_2010_2011.parquet'}"),
                       ("retailrocket-sample", f"retailrocket:{data / 'retailrocket-sample' / 'events_sample_9385rows.csv'}"),
                       ("taobao-sample", f"taobao:{data / 'taobao-sample' / 'userbehavior_head_sample' / 'UserBehavior_head.csv'}")):
        shop = load(spec)
        shop = shop[0] if isinstance(shop, tuple) else shop
        ev = shop.events
        sess = ev["session_idx"].to_numpy().astype(np.int64)
        user = ev["user_idx"].to_numpy().astype(np.int64)
        visit = np.where(sess >= 0, "s" + pd.Series(sess).astype(str), "u" + pd.Series(user).astype(str))
        out[name] = pd.DataFrame({"visit": visit, "item": ev["item_idx"].to_numpy(), "behaviour": ev["behaviour"].to_numpy(),
                                  "timestamp": ev["timestamp"].to_numpy(np.float64)})
    return out


def bots(data: Path, seeds=(2, 3), share: float = 0.05) -> dict:
    from health_inject import BOT_KINDS, inject_bots

    from shoprec.health.bots import BotDetector, session_features

    det = BotDetector()
    rows = []
    for name, ev in bot_logs(data).items():
        for seed in seeds:
            logs, truth = inject_bots(ev, share, seed)
            t0 = time.perf_counter()
            kind = det.kinds(session_features(logs), logs)
            secs = time.perf_counter() - t0
            flagged = kind.reindex(truth.index).fillna("") != ""
            real = truth == ""
            ev_flag = logs["visit"].map(flagged).to_numpy(bool)
            ev_real = logs["visit"].map(real).to_numpy(bool)
            row = {"data": name, "seed": seed, "real_visits": int(real.sum()), "bot_visits": int((~real).sum()),
                   "real_visits_flagged": float(flagged[real].mean()),
                   "real_events_flagged": float(ev_flag[ev_real].mean()),
                   "bot_recall": float(flagged[~real].mean()), "seconds": secs, "events": len(logs)}
            for k in BOT_KINDS:
                row[f"recall_{k}"] = float(flagged[truth == k].mean())
            rows.append(row)
            print(f"{name} seed {seed}: bot recall {row['bot_recall']:.3f}, real visits flagged "
                  f"{row['real_visits_flagged']:.3%}", flush=True)
    return {"protocol": __doc__, "share": share, "rows": rows, "config": det.config.model_dump()}


def bot_table_lines(res: dict) -> list[str]:
    from health_inject import BOT_KINDS

    out = ["| data | seed | real visits | bot visits | " + " | ".join(f"recall: {k}" for k in BOT_KINDS)
           + " | recall: all bots | real visits flagged | real events flagged | scoring s |",
           "|---|---:|---:|---:|" + "---:|" * len(BOT_KINDS) + "---:|---:|---:|---:|"]
    for r in res["rows"]:
        out.append(f"| {r['data']} | {r['seed']} | {r['real_visits']:,} | {r['bot_visits']:,} | "
                   + " | ".join(f"{r[f'recall_{k}']:.3f}" for k in BOT_KINDS)
                   + f" | {r['bot_recall']:.3f} | {r['real_visits_flagged']:.2%} | {r['real_events_flagged']:.2%} | "
                   f"{r['seconds']:.2f} |")
    return out


def push(data: Path, seeds=(2, 3), share: float = 0.05) -> dict:
    from health_inject import push_attack

    from shoprec.data.adapters import load_online_retail
    from shoprec.demo_data import DEMO_PATH
    from shoprec.evaluation.evaluator import measure
    from shoprec.evaluation.splits import temporal_split
    from shoprec.scenarios import default_scenarios
    from shoprec.scenarios.engine import Recommender

    shop, _ = load_online_retail(DEMO_PATH)
    task = temporal_split(shop, test_fraction=0.2)
    home = default_scenarios()["home"]
    home = home.with_overrides(strategies=[s.model_dump() for s in home.strategies if s.name != "sasrec"])
    defended = home.with_overrides(training_filters=[{"name": "bots"}])

    item_page = default_scenarios()["item_page"]
    item_page = item_page.with_overrides(strategies=[s.model_dump() for s in item_page.strategies
                                                     if s.name != "sasrec"])
    pop = task.train.item_popularity()
    anchors = np.argsort(-pop, kind="stable")[:200]           # the item pages of the 200 most popular items
    from shoprec.strategies import Queries

    pages = Queries.for_users(np.full(len(anchors), -1, np.int32))
    pages = type(pages)(pages.user_idx, pages.items, anchors.astype(np.int32), pages.basket)

    def run(cfg, train):
        t0 = time.perf_counter()
        ip = item_page if not cfg.training_filters else item_page.with_overrides(
            training_filters=[f.model_dump() for f in cfg.training_filters])
        rec = Recommender([cfg, ip]).fit(train)
        top = rec.pipelines["home"].recommend(task.queries, 10).item_idx
        page_top = rec.pipelines["item_page"].recommend(pages, 10).item_idx
        return top, page_top, time.perf_counter() - t0, rec.pipelines["home"].filter_reports_

    clean = run(home, task.train)
    clean_ndcg = measure(clean[0], task, [10])["ndcg@10"]
    rows = []
    for seed in seeds:
        attacked, targets = push_attack(task.train, share, seed)
        got = {"clean": clean, "attacked": run(home, attacked), "defended": run(defended, attacked)}
        row = {"seed": seed, "farm_visits": int(attacked.n_users - task.train.n_users)}
        for page, j in (("home", 0), ("item_page", 1)):
            exp = {name: float(np.isin(g[j], targets).mean()) for name, g in got.items()}
            lift = exp["attacked"] - exp["clean"]
            row[page] = {**exp, "lift_factor": exp["attacked"] / exp["clean"] if exp["clean"] else float("inf"),
                         "lift_removed": 1 - (exp["defended"] - exp["clean"]) / lift if lift > 0 else float("nan")}
        ndcg = measure(got["defended"][0], task, [10])["ndcg@10"]
        ndcg_attacked = measure(got["attacked"][0], task, [10])["ndcg@10"]
        reports = got["defended"][3]
        row.update(ndcg_defended=ndcg, ndcg_attacked=ndcg_attacked, ndcg_clean=clean_ndcg, ndcg_ratio=ndcg / clean_ndcg,
                   filter=reports[0].dropped if reports else {})
        rows.append(row)
        print(f"seed {seed}: {row}", flush=True)
    return {"protocol": __doc__, "rows": rows, "fit_seconds_clean": clean[2], "test_queries": len(task.queries.user_idx)}


def push_table_lines(res: dict) -> list[str]:
    out = ["| seed | page | farm visits | targets' share of top-10: clean | attacked | defended | attack's lift | "
           "lift removed |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        for page in ("home", "item_page"):
            e = r[page]
            lift = ("none" if e["attacked"] <= e["clean"] else
                    f"×{e['attacked'] / e['clean']:.1f}" if e["clean"] else "from 0")
            removed = f"{e['lift_removed']:.1%}" if e["attacked"] > e["clean"] else "– (no lift)"
            out.append(f"| {r['seed']} | {page} | {r['farm_visits']:,} | {e['clean']:.3%} | {e['attacked']:.3%} | "
                       f"{e['defended']:.3%} | {lift} | {removed} |")
    out += ["", "| seed | NDCG@10 clean test: no attack | attacked | attacked, defended | defended / no attack | "
            "events the filter dropped |", "|---:|---:|---:|---:|---:|---|"]
    for r in res["rows"]:
        drop = ", ".join(f"{k} {v:,}" for k, v in r["filter"].items() if v)
        out.append(f"| {r['seed']} | {r['ndcg_clean']:.4f} | {r['ndcg_attacked']:.4f} | {r['ndcg_defended']:.4f} | "
                   f"{r['ndcg_ratio']:.1%} | {drop} |")
    return out


def cost(data: Path, batches: int = 200, size: int = 1000) -> dict:
    from shoprec.data.adapters import load
    from shoprec.health.live import SessionGuard
    from shoprec.service.store import EventRecord

    shop, _ = load(f"retailrocket:{data / 'retailrocket-sample' / 'events_sample_9385rows.csv'}")
    ev = shop.events.sort_values("timestamp")
    names = {0: "view", 2: "add_to_cart", 4: "purchase"}
    items = [str(x) for x in shop.items.to_external(ev["item_idx"].to_numpy())]
    users = ev["user_idx"].to_numpy()
    beh = [names.get(int(b), "view") for b in ev["behaviour"].to_numpy()]
    ts = ev["timestamp"].to_numpy(np.float64)
    records = [EventRecord(event_id=f"e{c}-{i}", item_id=items[i], behaviour=beh[i], timestamp=float(ts[i]) + c * 1e7,
                           received_at=0.0, session_id=f"c{c}-{users[i]}")
               for c in range(20) for i in range(len(ev))]
    guard = SessionGuard()
    times = []
    for b in range(batches + 20):
        chunk = records[(b * size) % (len(records) - size):][:size]
        t0 = time.perf_counter()
        guard.admit(chunk)
        if b >= 20:
            times.append(time.perf_counter() - t0)
    t = np.asarray(times) * 1000
    return {"protocol": __doc__, "batch": size, "batches": batches, "median_ms": float(np.median(t)),
            "p99_ms": float(np.percentile(t, 99)), "visits_tracked": len(guard.visits)}


def cost_table_lines(res: dict) -> list[str]:
    return ["| events per batch | batches | median ms | p99 ms | visits tracked |", "|---:|---:|---:|---:|---:|",
            f"| {res['batch']:,} | {res['batches']} | {res['median_ms']:.2f} | {res['p99_ms']:.2f} | "
            f"{res['visits_tracked']:,} |"]


def table_lines(res: dict) -> list[str]:
    out = ["| seed | kind | injected | found | recall | flags of that kind | precision | other kinds on touched items |",
           "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        out.append(f"| {r['seed']} | {r['kind']} | {r['injected']} | {r['found']} | {r['recall']:.3f} | {r['flags']} | "
                   f"{r['precision']:.3f} | {r['other_kind_flags_on_touched']} |")
    c = res["counts"]
    clean = ", ".join(f"{k} {v:.2f}" for k, v in sorted(res["clean_flags_per_1000"].items()))
    out += ["", f"Untouched data: {c['observations']:,} daily prices of {c['items']:,} items from {c['rows_kept']:,} "
            f"sales lines ({c['skipped_not_positive']:,} lines with a price ≤ 0 skipped); flags per 1,000 daily "
            f"prices: {clean}. Wall time: series {res['series_seconds']:.1f} s, full scan {res['scan_seconds']:.1f} s "
            "(target ≤ 30 s)."]
    return out


def health_lines() -> list[str]:
    lines = []
    for part, title, render in (("prices", "Price supervision with injected faults (Online Retail)", table_lines),
                                ("peers", "Prices far from their category's peers (Olist)", peer_table_lines),
                                ("bots", "Bot visits injected into real logs", bot_table_lines),
                                ("push", "A push attack on the home and item pages, with and without the defence", push_table_lines),
                                ("cost", "What the live bot guard costs", cost_table_lines)):
        p = RESULTS / f"health-{part}.json"
        if not p.exists():
            continue
        res = json.loads(p.read_text())
        m = res["machine"]
        paras = [" ".join(x.strip() for x in para.split("\n")) for para in res["protocol"].split("\n\n")]
        body = next((p_ for p_ in paras if p_.startswith(f"{part}:")), " ".join(paras[1:]))
        lines += [f"### {title}", "",
                  f"Measured {res['date']} on {m['cpus']} cores, {m['memory_gib']} GiB, Python {m['python']}.",
                  f"Reproduce: `python benchmarks/health.py --parts {part} --write`.", "", body, "",
                  *render(res), ""]
    return ["", "## Marketplace health (issue 12)", "", *lines] if lines else []


def main() -> None:
    from online import machine

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--data", type=Path, default=DATA)
    add_write_options(ap)
    args = ap.parse_args()
    if not args.write_only:
        for part in [p.strip() for p in args.parts.split(",") if p.strip()]:
            if part not in PARTS:
                ap.error(f"unknown part {part!r}; the parts are {', '.join(PARTS)}")
            with CoreShare() as share:
                res = {"prices": prices, "peers": peers, "bots": bots, "push": push, "cost": cost}[part](args.data)
            res.update(date=str(date.today()), other_cores=share.other_cores, machine=machine())
            print("\n".join({"prices": table_lines, "peers": peer_table_lines, "bots": bot_table_lines,
                              "push": push_table_lines, "cost": cost_table_lines}[part](res)))
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"health-{part}.json").write_text(json.dumps(res, indent=1, default=float))
    finish(args)


if __name__ == "__main__":
    main()
