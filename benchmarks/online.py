"""The online loop measured: off-policy evaluation on the Open Bandit Dataset (``--parts ope``) and
what a learning policy adds to a request (``--parts cost``), bandits in the shop simulator on the home
page (``--parts sim``) and the cart page (``--parts simcart``), sequential A/B tests (``--parts ab``).

    python benchmarks/online.py --parts ope                          # shoprec only
    python benchmarks/online.py --parts ope --obp-python /tmp/obpvenv/bin/python --write
                                                                     # … side by side with obp, rewrite BENCHMARKS.md

Each part writes ``benchmarks/results/online-<part>.json`` and prints its table; the protocol of each
is the docstring of its module (``online_ope.py``). obp cannot be installed beside shoprec (obp 0.5.7
pins torch 1.12, scikit-learn 1.1.3, scipy 1.9.3 and Python < 3.11); ``online_obp.py`` says how to
make the throwaway interpreter it runs in.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import add_write_options, finish  # noqa: E402
from machine import CoreShare  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data"
PARTS = ("ope", "cost", "sim", "simcart", "ab")


def machine() -> dict:
    import os

    import psutil

    return {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2 ** 30, 1),
            "python": platform.python_version(), "machine": platform.machine()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    ap.add_argument("--runs", type=int, default=30, help="bootstrap runs of the OPE protocol")
    ap.add_argument("--impressions", type=int, default=50_000, help="per simulated policy run")
    ap.add_argument("--obp-python", help="an interpreter with obp installed, to run obp on the same rows")
    add_write_options(ap)
    args = ap.parse_args()
    if not args.write_only:
        for part in [p.strip() for p in args.parts.split(",") if p.strip()]:
            if part not in PARTS:
                ap.error(f"unknown part {part!r}; the parts are {', '.join(PARTS)}")
            if part == "ope":
                import online_ope

                with CoreShare() as share:
                    res = online_ope.ope(args.data / "open-bandit", runs=args.runs, obp_python=args.obp_python)
                res.update(date=str(date.today()), machine=machine(), other_cores=share.other_cores)
                print("\n".join(online_ope.table_lines(res)))
            elif part == "sim":
                import online_sim

                with CoreShare() as share:
                    res = online_sim.sim(impressions=args.impressions)
                res.update(date=str(date.today()), machine=machine(), other_cores=share.other_cores)
                print("\n".join(online_sim.table_lines(res)))
            elif part == "simcart":
                import online_simcart

                with CoreShare() as share:
                    res = online_simcart.simcart(impressions=args.impressions)
                res.update(date=str(date.today()), machine=machine(), other_cores=share.other_cores)
                print("\n".join(online_simcart.table_lines(res)))
            elif part == "ab":
                import online_ab

                with CoreShare() as share:
                    res = online_ab.ab()
                res.update(date=str(date.today()), machine=machine(), other_cores=share.other_cores)
                print("\n".join(online_ab.table_lines(res)))
            elif part == "cost":
                import online_cost

                with CoreShare() as share:
                    res = online_cost.cost()
                res.update(date=str(date.today()), machine=machine(), other_cores=share.other_cores)
                print("\n".join(online_cost.table_lines(res)))
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / f"online-{part}.json").write_text(json.dumps(res, indent=1))
            print(f"wrote {RESULTS / f'online-{part}.json'}")
    finish(args)


if __name__ == "__main__":
    main()
