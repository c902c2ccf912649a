"""What a learning mix policy adds to a recommendation request, in process (``--parts cost``).

Protocol: each policy (static, the default; thompson Beta and Gaussian; linucb; lin_ts) with 4 arms
chooses for request batches of 1 and of 32 (the service's micro-batches), on requests of the demo shop
(sessions, baskets, devices, countries, hours), after learning from 20,000 simulated answers. Timed:
``choose`` (probabilities + the draw + context features) and the learner's bookkeeping of the answers
(``PolicyLearner.answers``), 2,000 batches each after 50 warm-up ones; reported per request: median
and p99 of the batch time divided by its size (for batch 1, the request's own cost). Thompson sampling
recomputes its arm probabilities from the posterior at most every ``refresh_seconds`` (0.5 s): that
recompute is timed apart (last column) and is paid by one batch per refresh. Target (issue
11): ≤ 1 ms p99 added to a request.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shoprec.online.learner import PolicyLearner  # noqa: E402
from shoprec.scenarios.stages import MixContext, MixFeedback, make_stage  # noqa: E402
from shoprec.testing import sample_queries, tiny_shop  # noqa: E402

LABELS = ["ease", "item_knn", "linear_filter", "popularity"]
ARMS = {"ease": {"ease": 1.0}, "knn": {"item_knn": 1.0}, "graph": {"linear_filter": 1.0},
        "blend": {"ease": 1.0, "item_knn": 1.0, "linear_filter": 1.0, "popularity": 0.3}}
POLICIES = [("static", {}), ("thompson", {"arms": ARMS}), ("thompson", {"arms": ARMS, "reward": "gaussian"}),
            ("linucb", {"arms": ARMS}), ("lin_ts", {"arms": ARMS})]


def _queries(n: int):
    q = sample_queries(tiny_shop())
    rng = np.random.default_rng(0)
    q = q.take(rng.integers(0, len(q), n))
    ctx = dict(q.context or {})
    ctx["device"] = np.array(rng.choice(["mobile", "desktop", "tablet", ""], n), dtype=object)
    ctx["country"] = np.array(rng.choice(["United Kingdom", "France", "Germany", ""], n), dtype=object)
    ctx["timestamp"] = rng.uniform(1.6e9, 1.7e9, n)
    from dataclasses import replace

    return replace(q, context=ctx)


def cost(batches: int = 2000, warm: int = 50) -> dict:
    rows = []
    for name, params in POLICIES:
        pol = make_stage("mix_policy", {"name": name, "params": params})
        label = name + (f" ({params['reward']})" if "reward" in params else "")
        learns = getattr(pol, "learns", False)
        if learns:                                        # a policy that has seen traffic
            ctx = MixContext(_queries(20_000), LABELS, np.ones(4, np.float32), np.ones(4, bool))
            ch = pol.choose(ctx)
            rng = np.random.default_rng(1)
            pol.update(MixFeedback(ch.arm, (rng.random(len(ch.arm)) < 0.05 + 0.02 * ch.arm).astype(float),
                                   features=ch.features))
        learner = PolicyLearner("home", pol) if learns else None
        refresh = None
        if hasattr(pol, "posterior_probabilities"):   # Thompson: the recompute every refresh_seconds
            ts = []
            for _ in range(200):
                t0 = time.perf_counter()
                pol.posterior_probabilities()
                ts.append(time.perf_counter() - t0)
            refresh = {"median_ms": float(np.median(ts) * 1000), "p99_ms": float(np.percentile(ts, 99) * 1000)}
        for size in (1, 32):
            ctx = MixContext(_queries(size), LABELS, np.ones(4, np.float32), np.ones(4, bool))
            times = []
            for i in range(batches + warm):
                t0 = time.perf_counter()
                ch = pol.choose(ctx)
                if learner is not None:
                    feats = None if ch.features is None else ch.features.tolist()
                    learner.answers([{"request_id": f"{size}-{i}-{j}", "created_at": 0.0, "scenario": "home",
                                      "items": [{"item_id": "a", "position": 1}],
                                      "context": {"policy": {"arm": ch.arms[ch.arm[j]], "propensity": 0.5,
                                                             "features": None if feats is None else feats[j]}}}
                                     for j in range(size)])
                dt = time.perf_counter() - t0
                if i >= warm:
                    times.append(dt / size)
            t = np.array(times) * 1000
            rows.append({"policy": label, "batch": size, "median_ms": float(np.median(t)),
                         "p99_ms": float(np.percentile(t, 99)), "refresh": refresh})
            print(f"{label:22s} batch {size:2d}: median {rows[-1]['median_ms']:.3f} ms, "
                  f"p99 {rows[-1]['p99_ms']:.3f} ms per request", flush=True)
    return {"protocol": __doc__, "batches": batches, "rows": rows}


def table_lines(res: dict) -> list[str]:
    out = ["| policy | batch | per request, median | per request, p99 | ≤ 1 ms p99 | posterior → probabilities "
           "(once per refresh) |", "|---|---:|---:|---:|:---:|---:|"]
    for r in res["rows"]:
        ref = r.get("refresh")
        ref_txt = f"{ref['median_ms']:.2f} ms (p99 {ref['p99_ms']:.2f})" if ref else "–"
        out.append(f"| {r['policy']} | {r['batch']} | {r['median_ms']:.3f} ms | {r['p99_ms']:.3f} ms | "
                   f"{'yes' if r['p99_ms'] <= 1.0 else '**no**'} | {ref_txt} |")
    return out
