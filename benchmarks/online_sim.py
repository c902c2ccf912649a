"""Bandits over the home page's mix in the shop simulator (``python benchmarks/online.py --parts sim``).

Protocol: the embedded demo shop (Online Retail slice) cut in time (last 20 % of events = what each
known customer wants, see ``shoprec.online.simulator``); a home scenario of EASE, item-kNN and trending
(weighted fusion) fitted on the first 80 %; arms = each strategy alone; compared on the same seeded
visitors: the shipped mix (static weights 1, 1, 0.3), each arm fixed, uniform random over the arms,
Thompson sampling (Beta), discounted Thompson sampling (each answer multiplies the past by 0.9999: a memory of about 10k
answers; the discount was picked on seed 1 among 0.9999 and 0.9995), LinUCB and linear TS (explore 0.05, Thompson's probabilities refreshed every
batch of 200 answers). Rewards: click 0.1, cart 0.3, purchase 1 (the shipped default). Seeds: the
choice model's constants and the policies' defaults were set on seed 1; the figures are seeds 2 and 3
(the drift run: seed 2).
Drift: at impression 20,000 a promotion makes every visitor want the 30 items the trending strategy
ranked highest at fit time (a shift of popularity toward them); recovery = the first 5,000-impression
window after it whose reward rate is within 5 % of the best fixed arm's post-drift rate.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shoprec.data.adapters import load_online_retail  # noqa: E402
from shoprec.demo_data import DEMO_PATH  # noqa: E402
from shoprec.online.simulator import DEMO_ARMS, ShopSimulator, demo_world  # noqa: E402
from shoprec.scenarios.stages import make_stage  # noqa: E402

ARMS = DEMO_ARMS


def policies():
    yield "shipped mix", "static", {}
    for a, mix in ARMS.items():
        yield f"fixed: {a}", "uniform", {"arms": {a: mix}}
    yield "uniform", "uniform", {"arms": ARMS}
    yield "thompson", "thompson", {"arms": ARMS, "refresh_seconds": 0}
    yield "thompson, discount .9999", "thompson", {"arms": ARMS, "refresh_seconds": 0, "discount": 0.9999}
    yield "linucb", "linucb", {"arms": ARMS}
    yield "lin_ts", "lin_ts", {"arms": ARMS}


def sim(impressions: int = 50_000, seeds: tuple[int, ...] = (2, 3), drift_at: int = 20_000, window: int = 5_000) -> dict:
    rec, task, drift_items = demo_world(load_online_retail(DEMO_PATH)[0], test_fraction=0.2, n_drift_items=30)
    out = {"protocol": __doc__, "impressions": impressions, "visitors": int((task.queries.user_idx >= 0).sum()),
           "drift_at": drift_at, "window": window, "runs": []}
    for seed in seeds:
        for drift in (False, True) if seed == seeds[0] else (False,):
            s = ShopSimulator(rec, "home", task, seed=seed)
            for label, name, params in policies():
                t0 = time.perf_counter()
                pol = make_stage("mix_policy", {"name": name, "params": {**params, "seed": seed}}
                                 if params else {"name": name})
                run = s.run(pol, impressions, batch=200, label=label,
                            drift_at=drift_at if drift else None, drift_items=drift_items if drift else None)
                r = run.reward
                out["runs"].append(run_record(run, seed, drift, label, window, time.perf_counter() - t0))
                print(f"seed {seed} {'drift' if drift else 'still'} {label:14s} reward/impression "
                      f"{r.mean():.5f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    out["summary"] = summarise(out)
    return out


def run_record(run, seed: int, drift: bool, label: str, window: int, seconds: float) -> dict:
    """One policy's run as the results file keeps it: totals, per-window rates, curve, arm shares."""
    r = run.reward
    wins = [float(r[i:i + window].mean()) for i in range(0, len(r), window)]
    return {"seed": seed, "drift": drift, "policy": label, "total": float(r.sum()), "rate": float(r.mean()),
            "windows": wins, **run.curve(1000),
            "arm_shares": (np.bincount(run.arm, minlength=len(run.arms)) / len(run.arm)).tolist(),
            "arms": list(run.arms), "seconds": seconds}


def summarise(res: dict) -> list[dict]:
    rows = []
    w, d = res["window"], res["drift_at"]
    for seed in sorted({r["seed"] for r in res["runs"]}):
        for drift in sorted({r["drift"] for r in res["runs"] if r["seed"] == seed}):
            runs = {r["policy"]: r for r in res["runs"] if r["seed"] == seed and r["drift"] == drift}
            fixed = {k: v for k, v in runs.items() if k.startswith("fixed")}
            best = max(fixed, key=lambda k: fixed[k]["total"])
            after = d // w
            best_after = max(fixed, key=lambda k: np.mean(fixed[k]["windows"][after:]))
            ref_after = np.mean(fixed[best_after]["windows"][after:])
            for name, r in runs.items():
                row = {"seed": seed, "drift": drift, "policy": name, "rate": r["rate"],
                       "vs_best_fixed": r["total"] / fixed[best]["total"], "best_fixed": best,
                       "vs_shipped": r["total"] / runs["shipped mix"]["total"]}
                if drift:
                    rec_at = next((i * w - d + w for i in range(after, len(r["windows"]))
                                   if r["windows"][i] >= 0.95 * ref_after), None)
                    row.update(best_after=best_after, recovered_after=rec_at,
                               post_drift_vs_best=float(np.mean(r["windows"][after:]) / ref_after))
                rows.append(row)
    return rows


def table_lines(res: dict) -> list[str]:
    out = ["| seed | drift | policy | reward / impression | vs best fixed arm (cumulative) | vs shipped mix | "
           "after the drift: vs its best arm | back within 5 % after |",
           "|---:|:---:|---|---:|---:|---:|---:|---:|"]
    for r in res["summary"]:
        drift = "yes" if r["drift"] else "no"
        post = f"{r['post_drift_vs_best']:.1%}" if r["drift"] else ""
        rec = ("never" if r.get("recovered_after") is None else f"{r['recovered_after']:,}") if r["drift"] else ""
        out.append(f"| {r['seed']} | {drift} | {r['policy']} | {r['rate']:.5f} | {r['vs_best_fixed']:.1%} "
                   f"({r['best_fixed'].removeprefix('fixed: ')}) | {r['vs_shipped']:.1%} | {post} | {rec} |")
    return out
