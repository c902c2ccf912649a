"""Reliability figures for BENCHMARKS.md: the crash test and the API fuzzing, run as the test suite
runs them (``tests/service/test_crash.py``, ``tests/service/test_fuzz.py``), their reports copied
into ``benchmarks/results/reliability.json``.

    python benchmarks/reliability.py                # 20 kill -9 cycles, the fuzzing
    python benchmarks/reliability.py --cycles 50
    python benchmarks/reliability.py --write        # … and rewrite BENCHMARKS.md
    python benchmarks/reliability.py --write-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import add_write_options, finish  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ARTIFACTS = ROOT / "test-artifacts"


def run(test: str, env: dict[str, str]) -> tuple[int, float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", test],
                          cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True)
    return proc.returncode, time.perf_counter() - start, proc.stdout[-4000:]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=20)
    add_write_options(ap)
    args = ap.parse_args(argv)
    if not args.write_only:
        out: dict = {"date": date.today().isoformat(),
                     "machine": f"2 cores, 24 GiB, {platform.machine()}, Python {platform.python_version()}"}
        rc, sec, log = run("tests/service/test_crash.py", {"SHOPREC_CRASH_CYCLES": str(args.cycles)})
        crash = ARTIFACTS / "crash-test.json"
        out["crash"] = {"passed": rc == 0, "seconds": round(sec, 1),
                        **(json.loads(crash.read_text()) if crash.exists() else {"log": log})}
        rc, sec, log = run("tests/service/test_fuzz.py", {})
        statuses = next((json.loads(ln.split(": ", 1)[1]) for ln in log.splitlines()
                         if ln.startswith("fuzzing, status codes per operation")), {})
        n_5xx = sum(n for codes in statuses.values() for code, n in codes.items() if str(code).startswith("5"))
        out["fuzz"] = {"passed": rc == 0, "seconds": round(sec, 1), "statuses": statuses,
                       "responses": sum(sum(c.values()) for c in statuses.values()), "responses_5xx": n_5xx,
                       "summary": [ln for ln in log.splitlines() if " passed" in ln or " failed" in ln][-1:]}
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "reliability.json").write_text(json.dumps(out, indent=2))
        print(json.dumps(out, indent=2))
    finish(args)


if __name__ == "__main__":
    main()
