"""The serving benchmark: the HTTP service under load from a separate process, on loopback.

    python benchmarks/serve.py                                  # 100k items: every page; scaling; workers
    python benchmarks/serve.py --items 100000 --scenarios "home;item_page,cart" --duration 60 --workers 2
    python benchmarks/serve.py --scaling 10000,100000,1000000   # home latency and memory vs catalogue size
    python benchmarks/serve.py --write                          # … and rewrite BENCHMARKS.md
    python benchmarks/serve.py --write-only                     # re-render BENCHMARKS.md

Per catalogue size: a synthetic shop (``synthetic_shop.py``: no public dataset here has 100k+ items),
the scenarios trained once and cached under ``benchmarks/.cache/`` (the home feed fuses three
strategies, ``serve_scenarios/home.toml``), then ``shoprec serve`` (one process, SQLite store) as a
subprocess and ``wrk`` (Debian's, one thread, 32 connections, closed loop) posting requests for
2,000 different visitors / items / baskets for ``--duration`` seconds. Reported: requests/s, latency
p50/p95/p99 (wrk's, client side, including the HTTP round trip), non-2xx answers, the server's resident
memory; per page, the ceiling (the same server answering the page's last computed response to a
request that carries ``X-Shoprec-Ceiling: 1``: read, validated and routed, the engine skipped) and
the page's throughput as a share of it; home with 1 and 2 worker processes; and event-to-effect: a visitor's ``add_to_cart`` posted while wrk runs, then at once a cart
request for that visitor, timed from the event's acknowledgement to the answer that reflects it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).parent))
from benchmarks_md import add_write_options, finish  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache"
HOME_TOML = Path(__file__).parent / "serve_scenarios" / "home.toml"
API_KEY = "bench-api-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trained(n_items: int, scenarios: list[str]) -> Path:
    """The models folder for this size and scenario set (trained once, then cached)."""
    from synthetic_shop import synthetic_shop

    from shoprec.service.training import train

    import hashlib

    # retrained when the shop generator or (for home) the benchmark's home config changes
    defaults = ROOT / "src" / "shoprec" / "scenarios" / "defaults"
    digest = hashlib.sha1((ROOT / "benchmarks" / "synthetic_shop.py").read_bytes()
                          + b"".join(HOME_TOML.read_bytes() if s == "home" else (defaults / f"{s}.toml").read_bytes()
                                     for s in scenarios)).hexdigest()[:8]
    key = f"serve-{n_items}-{'-'.join(scenarios)}-{digest}"
    models = CACHE / key
    if (models / "CURRENT").is_file():
        return models
    shutil.rmtree(models, ignore_errors=True)
    print(f"training {scenarios} on a synthetic shop of {n_items:,} items …", flush=True)
    start = time.perf_counter()
    data = synthetic_shop(n_items)
    cfgs = [str(HOME_TOML) if s == "home" else s for s in scenarios]
    train(data, models, scenarios=cfgs, progress=lambda name, sec: print(f"  fitted {name} in {sec:.0f} s", flush=True))
    (models / "training.json").write_text(json.dumps({"seconds": time.perf_counter() - start,
                                                      "n_items": n_items, "n_events": data.n_events,
                                                      "n_users": data.n_users}))
    return models


def request_bodies(models: Path, scenario: str, n: int = 2000, seed: int = 0) -> list[dict]:
    """Realistic request bodies (items drawn by popularity from the model's catalogue): a known user
    for home; a current item and a session of three for item pages; a basket of 1–3 items for cart and
    checkout; a known user and the order just placed (1–3 items) after a purchase; a known user and two
    words of an item's title for search; a country and a device for a first visit."""
    from shoprec.scenarios import Recommender
    from shoprec.service.app import resolve_model

    rec = Recommender.load(resolve_model(models))
    rng = np.random.default_rng(seed)
    items = rec.data_.items.external_ids
    users = rec.data_.users.external_ids
    first = next(iter(rec.pipelines.values())).facts_
    p = first.popularity.astype(np.float64) + 1.0
    p /= p.sum()
    table = rec.data_.item_table
    titles = table["title"].astype(str).to_numpy() if table is not None and "title" in table else None
    countries = [f"C{c:02d}" for c in range(20)] + ["XX"]   # XX: a country the shop has not seen
    out = []
    for i in range(n):
        if scenario == "home":
            out.append({"user_id": str(users[rng.integers(len(users))])})
        elif scenario == "item_page":
            s = rng.choice(len(items), 3, p=p)
            out.append({"current_item": str(items[s[-1]]), "session": [str(items[j]) for j in s]})
        elif scenario in ("cart", "checkout"):
            s = rng.choice(len(items), int(rng.integers(1, 4)), p=p)
            out.append({"basket": [str(items[j]) for j in s]})
        elif scenario == "post_purchase":
            s = rng.choice(len(items), int(rng.integers(1, 4)), p=p)
            out.append({"user_id": str(users[rng.integers(len(users))]), "basket": [str(items[j]) for j in s]})
        elif scenario == "search":
            words = str(titles[rng.choice(len(items), p=p)]).split()[:2] if titles is not None else ["red"]
            out.append({"user_id": str(users[rng.integers(len(users))]), "query": " ".join(words)})
        elif scenario == "first_visit":
            out.append({"country": countries[int(rng.integers(len(countries)))],
                        "device": ["web", "app", "tablet"][int(rng.integers(3))]})
        else:
            raise ValueError(f"no request bodies for scenario {scenario!r}")
    return out


LUA = r"""
local bodies = {}
local f = io.open("%(bodies)s", "r")
for line in f:lines() do bodies[#bodies + 1] = line end
f:close()
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(extra_headers)s
request = function()
  i = i + 1
  return wrk.format(nil, "%(path)s", nil, bodies[(i %% #bodies) + 1])
end
local non2xx = 0
response = function(status, headers, body)
  if status < 200 or status >= 300 then non2xx = non2xx + 1 end
end
done = function(summary, latency, requests)
  local out = io.open("%(out)s", "w")
  out:write(string.format('{"requests": %%d, "duration_us": %%d, "errors_connect": %%d, "errors_read": %%d, ' ..
    '"errors_write": %%d, "errors_status": %%d, "errors_timeout": %%d, "p50_us": %%d, "p90_us": %%d, ' ..
    '"p95_us": %%d, "p99_us": %%d, "max_us": %%d, "mean_us": %%f}',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99), latency.max, latency.mean))
  out:close()
end
"""


class Server:
    """``shoprec serve`` in a subprocess on a free port."""

    def __init__(self, models: Path, workdir: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the ceiling probe: the same process answers a page's last computed response (settings.ceiling_probe)
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), SHOPREC_CEILING_PROBE="1")
        self.log = open(workdir / "server.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shoprec", "serve", "--model", str(models), "--store",
             f"sqlite:///{workdir / 'events.db'}", "--port", str(self.port), "--api-key", API_KEY,
             "--public-key", API_KEY + "-pub", "--workers", str(workers)]
            + (["--state-bus", "redis://127.0.0.1:6379/0"] if workers > 1 else []),
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.workers = workers
        self.wait_ready()

    def wait_ready(self, timeout: float = 600) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server not ready in time")

    def rss_gib(self) -> float:
        """Resident memory of the server (all its worker processes)."""
        import psutil

        proc = psutil.Process(self.proc.pid)
        return sum(p.memory_info().rss for p in [proc] + proc.children(recursive=True)) / 2**30

    def pss_gib(self) -> float:
        """Proportional set size of all its processes: pages they share (the memory-mapped model)
        counted once in all, not once per process as RSS counts them."""
        import psutil

        proc = psutil.Process(self.proc.pid)
        return sum(p.memory_full_info().pss for p in [proc] + proc.children(recursive=True)) / 2**30

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def run_wrk(server: Server, scenario: str, bodies: list[dict], duration: int, concurrency: int,
            workdir: Path, ceiling: bool = False) -> dict:
    """wrk posting ``bodies`` in turn; ``ceiling``: with the probe header, so the server reads,
    validates and routes each request and answers the page's last computed response (the engine
    skipped): the machine's ceiling for a response of that size, in the same run."""
    body_file = workdir / f"bodies-{scenario}.jsonl"
    body_file.write_text("\n".join(json.dumps(b, separators=(",", ":")) for b in bodies) + "\n")
    out = workdir / f"wrk-{scenario}.json"
    script = workdir / f"wrk-{scenario}.lua"
    script.write_text(LUA % {"bodies": body_file, "path": f"/v1/recommendations/{scenario}", "out": out,
                             "extra_headers": 'wrk.headers["X-Shoprec-Ceiling"] = "1"' if ceiling else ""})
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{duration}s", "--timeout", "10s", "-s", str(script), server.url]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr[-2000:]} {proc.stdout[-2000:]}")
    r = json.loads(out.read_text())
    seconds = r["duration_us"] / 1e6
    return {"requests": r["requests"], "seconds": round(seconds, 1), "rps": round(r["requests"] / seconds, 1),
            "p50_ms": r["p50_us"] / 1000, "p90_ms": r["p90_us"] / 1000, "p95_ms": r["p95_us"] / 1000,
            "p99_ms": r["p99_us"] / 1000, "max_ms": r["max_us"] / 1000, "mean_ms": round(r["mean_us"] / 1000, 3),
            "non_2xx": r["errors_status"],
            "socket_errors": r["errors_connect"] + r["errors_read"] + r["errors_write"] + r["errors_timeout"]}


def event_to_effect(server: Server, models: Path, n: int = 100) -> dict:
    """A new visitor adds an item to the cart; the next cart request (sent right after the event's
    2xx) must exclude it and anchor on it. Times from the acknowledgement to that answer."""
    import httpx

    bodies = request_bodies(models, "cart", n, seed=1)
    lat, seen = [], 0
    with httpx.Client(base_url=server.url, timeout=10) as c:
        for i, b in enumerate(bodies):
            item = b["basket"][0]
            visitor = f"e2e-{time.time_ns()}-{i}"
            r = c.post("/v1/events", json={"events": [{"session_id": visitor, "item_id": item,
                                                       "behaviour": "add_to_cart"}]},
                       headers={"X-API-Key": API_KEY})
            r.raise_for_status()
            acked = time.perf_counter()
            out = c.post("/v1/recommendations/cart", json={"session_id": visitor}).json()
            done = time.perf_counter()
            ids = [it["item_id"] for it in out["items"]]
            anchored = any(rr.get("anchor_item_id") == item for it in out["items"] for rr in it["reasons"])
            if item not in ids and anchored:
                seen += 1
                lat.append(done - acked)
    lat_ms = np.array(lat) * 1000
    return {"trials": n, "reflected": seen, "p50_ms": float(np.percentile(lat_ms, 50)) if seen else None,
            "p99_ms": float(np.percentile(lat_ms, 99)) if seen else None,
            "max_ms": float(lat_ms.max()) if seen else None}


def agreement(models: Path, scenario: str, n: int = 1000) -> dict | None:
    """How often the served answers (serving indexes: HNSW for ALS, fanout for item-kNN) agree with
    exact candidates: the mean overlap of the top-10 lists of ``n`` requests, and the share of
    identical lists. None when the scenario uses no serving index."""
    from shoprec.scenarios import Recommender, RequestContext
    from shoprec.service.app import resolve_model

    rec = Recommender.load(resolve_model(models))
    pipe = rec.pipelines[scenario]
    used = [m for m in pipe.models_ if m is not None]
    approx = [m for m in used if getattr(m.config, "candidate_index", "exact") == "hnsw"
              or getattr(m.config, "candidate_fanout", None) is not None]
    # float16 factors: the fit measured how often they keep the float32 top 10 (sampled users)
    quant = {m.name: round(float(m.quantisation_agreement_), 4) for m in used
             if getattr(m, "quantisation_agreement_", None) is not None}
    if not approx:
        return {"float16_top10_agreement": quant} if quant else None
    ctxs = [RequestContext.parse(b) for b in request_bodies(models, scenario, n, seed=2)]

    def answers() -> list[list[str]]:
        out = []
        for s in range(0, len(ctxs), 64):
            out += [[it["item_id"] for it in r["items"]] for r in rec.recommend_raw(scenario, ctxs[s:s + 64])]
        return out

    served = answers()
    for m in approx:
        m.config = m.config.model_copy(update={"candidate_index": "exact"} if hasattr(m.config, "candidate_index")
                                       else {"candidate_fanout": None})
    exact = answers()
    overlap = [len(set(a) & set(b)) / max(len(b), 1) for a, b in zip(served, exact)]
    return {"requests": n, "top10_overlap": round(float(np.mean(overlap)), 4),
            "identical_lists": round(float(np.mean([a == b for a, b in zip(served, exact)])), 4),
            "indexes": [m.name for m in approx], **({"float16_top10_agreement": quant} if quant else {})}


def bench_size(n_items: int, scenarios: list[str], duration: int, concurrency: int, effect: bool,
               workers: int = 1, ceiling: bool = True, agree: bool = True) -> dict:
    models = trained(n_items, scenarios)
    training = json.loads((models / "training.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="shoprec-serve-"))
    server = Server(models, work, workers)
    try:
        rss_idle = server.rss_gib()
        rows = []
        for scenario in scenarios:
            bodies = request_bodies(models, scenario)
            run_wrk(server, scenario, bodies, min(5, duration), concurrency, work)   # warm-up
            if effect and scenario == scenarios[0]:
                # event-to-effect on the idle server, then while wrk loads it with the group's first
                # scenario (there the answer that shows the effect queues behind the load)
                e2e_idle = event_to_effect(server, models)
                import threading

                res: dict = {}
                t = threading.Thread(target=lambda: res.update(run_wrk(server, scenario, bodies, duration,
                                                                       concurrency, work)))
                t.start()
                time.sleep(min(5, duration / 4))
                e2e = event_to_effect(server, models)
                t.join()
                row = dict(res, event_to_effect_under_load=e2e, event_to_effect_idle=e2e_idle)
            else:
                row = run_wrk(server, scenario, bodies, duration, concurrency, work)
            if ceiling:
                # the same process answering the page's last computed response: the machine's ceiling
                c = run_wrk(server, scenario, bodies, max(10, duration // 2), concurrency, work, ceiling=True)
                row["ceiling"] = {k: c[k] for k in ("rps", "p50_ms", "p99_ms", "non_2xx", "socket_errors")}
                row["ratio_to_ceiling"] = round(row["rps"] / max(c["rps"], 1e-9), 3)
            row["scenario"] = scenario
            rows.append(row)
            print(f"  {n_items:>9,} items  {scenario:13s} {row['rps']:8.0f} req/s  p50 {row['p50_ms']:6.2f}  "
                  f"p95 {row['p95_ms']:6.2f}  p99 {row['p99_ms']:6.2f} ms  non-2xx {row['non_2xx']}"
                  + (f"  ceiling {row['ceiling']['rps']:8.0f} req/s (p99 {row['ceiling']['p99_ms']:.2f} ms)  "
                     f"ratio {row['ratio_to_ceiling']:.2f}" if ceiling else ""), flush=True)
        rss, pss = server.rss_gib(), server.pss_gib()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    for row in rows if agree else []:
        got = agreement(models, row["scenario"])
        if got is not None:
            row["agreement_with_exact"] = got
    return {"n_items": n_items, "workers": workers, "n_events": training["n_events"], "n_users": training["n_users"],
            "train_seconds": round(training["seconds"], 1), "rss_gib_idle": round(rss_idle, 3),
            "rss_gib_after": round(rss, 3), "pss_gib_after": round(pss, 3), "rows": rows}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--scenarios", default="home;item_page,cart,checkout,post_purchase,search,first_visit",
                    help="scenario groups (';' between groups): each group is one model and one server")
    ap.add_argument("--scaling", default="10000,100000,1000000",
                    help="catalogue sizes for the home latency / memory curve ('' = skip)")
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1,
                    help="server processes (more than one shares the online state through Redis)")
    ap.add_argument("--worker-scaling", default="1,2",
                    help="home throughput with each of these worker counts ('' = skip)")
    ap.add_argument("--note", default="", help="a remark printed with the results (e.g. run-to-run variance)")
    add_write_options(ap)
    args = ap.parse_args(argv)
    if not args.write_only:
        if shutil.which("wrk") is None:
            raise SystemExit("wrk is not installed: apt-get install wrk")
        RESULTS.mkdir(parents=True, exist_ok=True)
        meta = {"date": date.today().isoformat(),
                "machine": f"2 cores, 24 GiB, {platform.machine()}, Python {platform.python_version()}",
                "duration_s": args.duration, "concurrency": args.concurrency,
                "load": f"wrk 4.1 (1 thread), closed loop, loopback; server: `shoprec serve`, {args.workers} "
                        f"process(es), SQLite store" + (", Redis state bus" if args.workers > 1 else ""),
                "note": args.note}
        if args.scenarios:
            groups = [g.split(",") for g in args.scenarios.split(";") if g]
            # event-to-effect needs the cart page: measured on the group that serves it
            runs = [bench_size(args.items, g, args.duration, args.concurrency, "cart" in g, args.workers)
                    for g in groups]
            main_run = {**runs[0], "rows": [r for run in runs for r in run["rows"]],
                        "rss_gib_by_group": {",".join(g): run["rss_gib_after"] for g, run in zip(groups, runs)}}
            (RESULTS / "serve-main.json").write_text(json.dumps({**meta, **main_run}, indent=2))
        if args.scaling:
            sizes = [int(x) for x in args.scaling.split(",") if x]
            runs = [bench_size(n, ["home"], min(args.duration, 30), args.concurrency, False, args.workers,
                               ceiling=False)
                    for n in sizes]
            (RESULTS / "serve-scaling.json").write_text(json.dumps({**meta, "runs": runs}, indent=2))
        if args.worker_scaling:
            counts = [int(x) for x in args.worker_scaling.split(",") if x]
            runs = [bench_size(args.items, ["home"], min(args.duration, 30), args.concurrency, False, w,
                               ceiling=True, agree=False) for w in counts]
            (RESULTS / "serve-workers.json").write_text(json.dumps({**meta, "runs": runs}, indent=2))
    finish(args)


if __name__ == "__main__":
    main()
