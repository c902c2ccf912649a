"""How long a `shoprec` command takes to start: every listing and help command, and a tiny evaluation.

    python benchmarks/cli_start.py                    # 7 runs per command → benchmarks/results/cli_start.json
    python benchmarks/cli_start.py --runs 11 --write  # … and rewrite BENCHMARKS.md
    python benchmarks/cli_start.py --tag before       # another series (results/cli_start-before.json), e.g.
                                                      # with PYTHONPATH=<older checkout>/src for a comparison

Each command runs as a fresh process (``python -m shoprec …``, what the ``shoprec`` script does), one
after the other, ``--runs`` times each after one warm-up run; reported are the median and the maximum
wall time from the start of the process to its exit, and the median time to its first line of output.
The target of issue 10 is ≤ 1.5 s for every command. The warm-up run leaves the
imported files in the page cache, so these are warm starts; a first start after a reboot reads them
from disk and takes longer, and so does any start while other jobs use the 2 cores (the result says
when they did).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import add_write_options, finish  # noqa: E402
from machine import CoreShare  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TARGET_SECONDS = 1.5

#: (label, arguments); {csv} is a tiny event file written for the run
COMMANDS: list[tuple[str, list[str]]] = [
    ("shoprec --help", ["--help"]),
    ("shoprec scenarios", ["scenarios"]),
    ("shoprec strategies", ["strategies"]),
    ("shoprec formats", ["formats"]),
    ("shoprec evaluate --help", ["evaluate", "--help"]),
    ("shoprec serve --help", ["serve", "--help"]),
    ("shoprec demo --help", ["demo", "--help"]),
    ("shoprec train --help", ["train", "--help"]),
    ("shoprec recommend --help", ["recommend", "--help"]),
    ("shoprec report --help", ["report", "--help"]),
    ("shoprec evaluate (180 events, popularity)", ["evaluate", "--data", "csv:{csv}", "--strategies", "popularity",
                                                  "--k", "5"]),
]


def tiny_csv(folder: Path) -> Path:
    lines = ["user_id,item_id,behaviour,timestamp"]
    t = 1_600_000_000
    for j in range(6):
        for u in range(30):
            t += 60
            lines.append(f"u{u},i{(u % 3) * 5 + j % 5},{'purchase' if j % 2 else 'view'},{t}")
    p = folder / "events.csv"
    p.write_text("\n".join(lines) + "\n")
    return p


def time_once(args: list[str]) -> tuple[float, float, int]:
    """(seconds to exit, seconds to the first line of output, exit code) of ``python -m shoprec args``."""
    env = {**os.environ, "COLUMNS": "120"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "shoprec", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    first_line = time.perf_counter() - start if first else float("nan")
    proc.stdout.read()
    code = proc.wait()
    return time.perf_counter() - start, first_line, code


def machine() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return f"{psutil.cpu_count(logical=True)} cores, {mem:.0f} GiB, {platform.machine()}, Python {platform.python_version()}"


def measure(runs: int) -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, CoreShare() as share:
        csv = tiny_csv(Path(tmp))
        for label, template in COMMANDS:
            args = [a.replace("{csv}", str(csv)) for a in template]
            time_once(args)  # warm-up: .pyc files written, the same start for every series
            totals, firsts = [], []
            for _ in range(runs):
                total, first, code = time_once(args)
                if code != 0:
                    raise SystemExit(f"{label} exited with {code}")
                totals.append(total)
                firsts.append(first)
            row = {"command": label, "runs": runs, "median_s": round(statistics.median(totals), 3),
                   "max_s": round(max(totals), 3), "first_line_median_s": round(statistics.median(firsts), 3)}
            rows.append(row)
            print(f"{label:48s} median {row['median_s']:.2f} s   max {row['max_s']:.2f} s   "
                  f"first line {row['first_line_median_s']:.2f} s")
    return {"date": date.today().isoformat(), "machine": machine(), "runs": runs,
            "python": sys.executable, "pythonpath": os.environ.get("PYTHONPATH", ""),
            "target_s": TARGET_SECONDS, "note": share.note(), "rows": rows}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="timed runs per command (≥ 5)")
    ap.add_argument("--tag", default="", help="save as results/cli_start-TAG.json (a second series)")
    ap.add_argument("--label", default="", help="what this series measured (e.g. 'commit 82607e6')")
    add_write_options(ap)
    args = ap.parse_args(argv)
    if not args.write_only:
        if args.runs < 5:
            ap.error("--runs must be at least 5")
        out = measure(args.runs)
        out["label"] = args.label or ("this checkout" if not args.tag else args.tag)
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / (f"cli_start-{args.tag}.json" if args.tag else "cli_start.json")
        path.write_text(json.dumps(out, indent=2) + "\n")
        slow = [r["command"] for r in out["rows"] if r["max_s"] > TARGET_SECONDS]
        print(f"wrote {path.relative_to(ROOT)}; " +
              (f"over {TARGET_SECONDS} s at least once: {', '.join(slow)}" if slow else
               f"every command within {TARGET_SECONDS} s"))
    finish(args)


if __name__ == "__main__":
    main()
