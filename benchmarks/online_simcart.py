"""Bandits over the cart page's mix in the shop simulator (``python benchmarks/online.py --parts simcart``).

Protocol: the embedded demo shop (Online Retail slice) cut in time (last 20 % of events); a cart
scenario of frequently-bought-together, session-kNN over baskets and trending (weighted fusion,
shipped weights 4, 0.5, 0.3) fitted on the first 80 %; the visitors are the later period's baskets of
two or more distinct items with one of them hidden, and the visitor wants the hidden item
(``shoprec.online.simulator.cart_world``; a basket's customer may be anonymous). Arms = each strategy
alone; compared on the same seeded visitors: the shipped mix, each arm fixed, Thompson sampling (Beta),
LinUCB and linear TS (defaults set on the home page's seed 1, unchanged here). Choice model and
rewards as on the home page (click 0.1, cart 0.3, purchase 1; RetailRocket's funnel). Seeds 2 and 3.
Target (issue 11): each learning policy within 5 % of the best fixed arm's cumulative reward.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shoprec.data.adapters import load_online_retail  # noqa: E402
from shoprec.demo_data import DEMO_PATH  # noqa: E402
from shoprec.online.simulator import CART_ARMS, ShopSimulator, cart_world, policy_specs  # noqa: E402
from shoprec.scenarios.stages import make_stage  # noqa: E402

from online_sim import run_record, summarise  # noqa: E402  (the same records and summary as home)

POLICIES = ["shipped", "fixed", "thompson", "linucb", "lin_ts"]


def simcart(impressions: int = 50_000, seeds: tuple[int, ...] = (2, 3)) -> dict:
    rec, task = cart_world(load_online_retail(DEMO_PATH)[0], test_fraction=0.2)
    out = {"protocol": __doc__, "impressions": impressions, "drift_at": 0, "window": 5_000,
           "visitors": len(task.queries.user_idx), "runs": []}
    for seed in seeds:
        s = ShopSimulator(rec, "cart", task, seed=seed)
        for label, spec in policy_specs(POLICIES, CART_ARMS):
            if "params" in spec:
                spec = {**spec, "params": {**spec["params"], "seed": seed}}
            t0 = time.perf_counter()
            run = s.run(make_stage("mix_policy", spec), impressions, batch=200, label=label)
            r = run.reward
            out["runs"].append(run_record(run, seed, False, label, 5_000, time.perf_counter() - t0))
            print(f"seed {seed} cart {label:14s} reward/answer {r.mean():.5f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    out["summary"] = summarise(out)
    return out


def table_lines(res: dict) -> list[str]:
    out = ["| seed | policy | reward / answer | vs best fixed arm (cumulative) | vs shipped mix |",
           "|---:|---|---:|---:|---:|"]
    for r in res["summary"]:
        out.append(f"| {r['seed']} | {r['policy']} | {r['rate']:.5f} | {r['vs_best_fixed']:.1%} "
                   f"({r['best_fixed'].removeprefix('fixed: ')}) | {r['vs_shipped']:.1%} |")
    return out
