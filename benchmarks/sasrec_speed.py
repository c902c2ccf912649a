"""SASRec training speed on Amazon Beauty: shoprec's against RecBole's, side by side (issue 14).

    python benchmarks/sasrec_speed.py --recbole-python /tmp/recbole-venv/bin/python
    SHOPREC_RECBOLE_PYTHON=/tmp/recbole-venv/bin/python python benchmarks/sasrec_speed.py --write
    python benchmarks/sasrec_speed.py --rounds 3 --recbole-batches 0     # whole RecBole epochs (≈ 5–8 min each)
    python benchmarks/sasrec_speed.py --no-full-fit                       # per-epoch times only
    python benchmarks/sasrec_speed.py --write-only                        # the section from the saved JSON

The machine's 2 cores are shared with other jobs, so a time measured alone says little; this script
therefore measures both libraries in the same run, **alternating** them round by round (the order
flips every round): a whole shoprec epoch, and the first ``--recbole-batches`` mini-batches of a
RecBole epoch scaled to the whole epoch (by default 150 of 1,027, about as long as a shoprec epoch,
so that both see the same load; RecBole's batches are all alike). It reports the median per-epoch
wall time of each, their ratio, the median of the rounds' own ratios, and the same for CPU seconds
(which another job's load inflates less). Then it fits shoprec's SASRec to its
early stop (its defaults plus ``validation_users`` held-out users for early stopping) and measures
HR@10 / NDCG@10 of the test item, full ranking over all items, history excluded.

RecBole runs in its own virtualenv (``--recbole-python`` or ``$SHOPREC_RECBOLE_PYTHON``), through
``benchmarks/recbole_sasrec.py``, which converts Beauty to RecBole's atomic ``.inter`` file under
``--recbole-work`` (``/tmp`` by default, never the repository) and configures RecBole's SASRec like
shoprec's defaults (see that file). Without a RecBole interpreter, the RecBole rows are left out and
the published figure in ../shared/data/README.md (5–8 min per epoch, 2 threads) is quoted instead.

Setting up RecBole (measured working 2026-12-08: RecBole 1.2.1, torch 2.13.0+cpu, Python 3.11)::

    python3 -m venv /tmp/recbole-venv
    /tmp/recbole-venv/bin/pip install torch==2.13.0        # the CPU build first
    /tmp/recbole-venv/bin/pip install recbole
    /tmp/recbole-venv/bin/pip install numpy==1.26.4 pandas==2.1.4 scipy==1.11.4 scikit-learn==1.3.2

(RecBole 1.2.1 sets ``np.float = np.float_``, which numpy 2 no longer has.)

Writes ``benchmarks/results/sasrec_speed.json``; with ``--write`` (or ``--write-only``) it also puts
the section "SASRec training speed (issue 14)" into BENCHMARKS.md, replacing that section alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

# before torch is imported (here or by RecBole's subprocess): OpenMP threads that spin-wait burn the
# core their descheduled partner needs when other jobs share the 2 cores (shoprec's sasrec sets the
# same default, but only when it is the first to import torch)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
OUT = RESULTS / "sasrec_speed.json"
RECBOLE_SCRIPT = ROOT / "benchmarks" / "recbole_sasrec.py"
HEADING = "## SASRec training speed (issue 14)"

from machine import CoreShare  # noqa: E402
# imported up front, so that a run of half an hour does not depend on the tree staying importable
from shoprec.data.adapters import load_sasrec  # noqa: E402
from shoprec.evaluation.evaluator import evaluate_strategy  # noqa: E402
from shoprec.evaluation.splits import leave_one_out  # noqa: E402
from shoprec.strategies.sasrec import SASRecStrategy  # noqa: E402

#: issue 14's targets
FIT_LIMIT_SECONDS = 600.0
MIN_RATIO = 5.0
PUBLISHED = {"hr@10": 0.0605, "ndcg@10": 0.0318}


def _machine() -> str:
    import psutil

    gib = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores, {gib:.0f} GiB, {platform.machine()}, Python {platform.python_version()}"


def _task():
    return leave_one_out(load_sasrec(DATA / "amazon-beauty" / "Beauty.txt"))


def shoprec_epoch(task, seed: int) -> dict:
    """One epoch of shoprec's SASRec (defaults, no early stopping): wall seconds of the training pass,
    CPU seconds of the whole one-epoch fit (its data preparation, under a second, included)."""
    s = SASRecStrategy(epochs=1, seed=seed)
    c = time.process_time()
    s.fit(task.train)
    return {"seconds": s.train_seconds_[0], "cpu_seconds": time.process_time() - c, "loss": s.losses_[0],
            "positions": int(sum(min(n - 1, s.config.max_len) for n in task.train.sequences(by="user").lengths
                                 if n >= 2))}


def recbole_epoch(python: str, work: Path, seed: int, batches: int) -> dict:
    """One RecBole epoch in a subprocess (its data preparation is not timed)."""
    cmd = [python, str(RECBOLE_SCRIPT), "--epochs", "1", "--seed", str(seed), "--work", str(work),
           "--data", str(DATA / "amazon-beauty" / "Beauty.txt")]
    if batches:
        cmd += ["--batches", str(batches)]
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"RecBole run failed ({out.returncode}):\n{out.stderr[-3000:]}")
    d = json.loads(out.stdout.strip().splitlines()[-1])
    return {"seconds": d["epoch_seconds"][0], "cpu_seconds": d["epoch_cpu_seconds"][0],
            "loss": d["mean_batch_loss"][0], "batches_timed": d["batches_timed"],
            "batches_per_epoch": d["batches_per_epoch"], "train_samples": d["train_samples"],
            "recbole": d["recbole"], "torch": d["torch"], "threads": d["threads"]}


def full_fit(task, validation_users: int) -> dict:
    """shoprec's SASRec, defaults plus early stopping, fitted and evaluated (leave-one-out, full ranking)."""
    s = SASRecStrategy(validation_users=validation_users)
    with CoreShare() as share:
        res = evaluate_strategy(s, task, (10, 20), auc=False)
    m = res.metrics
    return {"fit_seconds": res.fit_seconds, "recommend_seconds": res.recommend_seconds,
            "epochs_done": s.epochs_done_, "best_epoch": s.best_epoch_, "val_hr@10": s.val_hr_,
            "train_seconds": s.train_seconds_, "median_epoch_seconds": statistics.median(s.train_seconds_),
            "losses": s.losses_, "stopped_by_budget": s.stopped_by_budget_,
            "config": s.config.model_dump(), "other_cores": round(share.other_cores, 2), "note": share.note(),
            **{k: m[k] for k in ("hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr@10")}}


def run(args: argparse.Namespace) -> dict:
    import torch

    task = _task()
    python = args.recbole_python or os.environ.get("SHOPREC_RECBOLE_PYTHON") or ""
    if python and not Path(python).exists():
        raise SystemExit(f"--recbole-python {python} does not exist")
    rounds: list[dict] = []
    with CoreShare() as share:
        for r in range(args.rounds):
            row: dict = {"round": r + 1}
            order = ["shoprec", "recbole"] if r % 2 else ["recbole", "shoprec"]
            for who in order:
                if who == "shoprec":
                    row["shoprec"] = shoprec_epoch(task, seed=r)
                elif python:
                    row["recbole"] = recbole_epoch(python, args.recbole_work, seed=r, batches=args.recbole_batches)
                else:
                    continue
                print(f"round {r + 1}: {who} {row[who]['seconds']:.1f} s/epoch "
                      f"(CPU {row[who]['cpu_seconds']:.1f} s)", flush=True)
            rounds.append(row)
    result: dict = {
        "date": date.today().isoformat(), "machine": _machine(), "torch": torch.__version__,
        "dataset": "amazon-beauty (Beauty.txt, leave-one-out)", "n_users": task.train.n_users,
        "n_items": task.train.n_items, "n_train_events": task.train.n_events, "rounds": rounds,
        "per_epoch_other_cores": round(share.other_cores, 2), "per_epoch_note": share.note(),
        "recbole_batches": args.recbole_batches, "published_sasrec": PUBLISHED,
    }
    for who in ("shoprec", "recbole"):
        rows = [r[who] for r in rounds if who in r]
        if rows:
            result[who] = {"median_epoch_seconds": statistics.median(x["seconds"] for x in rows),
                           "median_epoch_cpu_seconds": statistics.median(x["cpu_seconds"] for x in rows),
                           **{k: v for k, v in rows[0].items() if k not in ("seconds", "cpu_seconds", "loss")}}
    if "recbole" in result:
        result["round_ratios"] = [r["recbole"]["seconds"] / r["shoprec"]["seconds"] for r in rounds]
        result["median_round_ratio"] = statistics.median(result["round_ratios"])
        result["ratio"] = result["recbole"]["median_epoch_seconds"] / result["shoprec"]["median_epoch_seconds"]
        result["cpu_ratio"] = (result["recbole"]["median_epoch_cpu_seconds"]
                               / result["shoprec"]["median_epoch_cpu_seconds"])
    if args.full_fit:
        print(f"shoprec: fitting to the early stop (validation_users={args.validation_users}) …", flush=True)
        result["full_fit"] = full_fit(task, args.validation_users)
    return result


# ------------------------------------------------------------------------------ report
def _table(d: dict) -> list[str]:
    lines = ["| library | median s / epoch | median CPU s / epoch | samples per epoch | × shoprec |",
             "|---|---:|---:|---|---:|"]
    s = d["shoprec"]
    lines.append(f"| shoprec `sasrec` | {s['median_epoch_seconds']:.1f} | {s['median_epoch_cpu_seconds']:.1f} | "
                 f"{s['positions']:,} positions in length-bucketed batches | 1 |")
    rb = d.get("recbole")
    if rb:
        part = (f", scaled from {rb['batches_timed']} of {rb['batches_per_epoch']} batches"
                if rb["batches_timed"] < rb["batches_per_epoch"] else "")
        lines.append(f"| RecBole {rb['recbole']} `SASRec` | {rb['median_epoch_seconds']:.1f} | "
                     f"{rb['median_epoch_cpu_seconds']:.1f} | {rb['train_samples']:,} prefixes, "
                     f"{rb['batches_per_epoch']} batches of 128{part} | "
                     f"{d['ratio']:.1f} (CPU {d['cpu_ratio']:.1f}; median of the rounds' ratios "
                     f"{d['median_round_ratio']:.1f}) |")
    else:
        lines.append("| RecBole `SASRec` | not run here | | | published: 5–8 min per epoch on this machine, "
                     "2 threads (../shared/data/README.md) |")
    return lines


def sasrec_speed_lines(d: dict | None = None) -> list[str]:
    """The BENCHMARKS.md section, from ``benchmarks/results/sasrec_speed.json``."""
    if d is None:
        if not OUT.exists():
            return [HEADING, "", "_not run yet_", ""]
        d = json.loads(OUT.read_text())
    lines = [HEADING, "",
             "`python benchmarks/sasrec_speed.py --recbole-python /tmp/recbole-venv/bin/python` (RecBole in its own",
             "virtualenv; the script's docstring says how to make one). Amazon Beauty (`Beauty.txt`), leave-one-out:",
             "both libraries train on the same sequences (RecBole without each user's last two items, shoprec",
             "without the last one) with the same model: 2 blocks, 2 heads, hidden 64, feed-forward 64 with ReLU,",
             "dropout 0.5, the last 50 items, batch 128, lr 2e-3, full softmax cross-entropy over all 12,101 items,",
             "CPU, 2 threads, `OMP_WAIT_POLICY=PASSIVE`. An epoch is one pass over every (prefix → next item)",
             "target: RecBole feeds each prefix as its own sample of up to 50 items, shoprec each sequence once",
             "with a loss at every position. Per round, a whole shoprec epoch and the first mini-batches of a",
             "RecBole epoch scaled to the whole (about as long, so both see the same load; its batches are all",
             "alike), alternating which goes first; medians over the rounds. CPU seconds are each process's own",
             "(less inflated by other jobs than wall time).",
             "",
             f"Measured {d['date']} on {d['machine']}, torch {d['torch']}, {len(d['rounds'])} rounds"
             + (f" ({d['per_epoch_note']})" if d.get("per_epoch_note") else "") + ".", ""]
    lines += _table(d)
    f = d.get("full_fit")
    if f:
        ok_t = f["fit_seconds"] <= FIT_LIMIT_SECONDS
        lines += ["", f"shoprec `sasrec` to its early stop (defaults, `validation_users` = "
                      f"{f['config']['validation_users']}, patience {f['config']['patience']}): "
                      f"**{f['fit_seconds']:.0f} s** ({f['epochs_done']} epochs, best {f['best_epoch']}, "
                      f"median {f['median_epoch_seconds']:.1f} s per training pass)"
                      + (f"; {f['note']}" if f.get("note") else "") + ". Test, full ranking, history excluded: "
                      f"**HR@10 {f['hr@10']:.4f}, NDCG@10 {f['ndcg@10']:.4f}** (HR@20 {f['hr@20']:.4f}, "
                      f"NDCG@20 {f['ndcg@20']:.4f}); published SASRec .0605 / .0318.", "",
                  "| target | measured | met |", "|---|---:|:---:|",
                  f"| fit to the early stop ≤ 10 min on 2 cores | {f['fit_seconds']:.0f} s | "
                  f"{'yes' if ok_t else '**no**'} |"]
        if "ratio" in d:
            lines.append(f"| ≥ 5× faster per epoch than RecBole's SASRec | {d['ratio']:.1f}× "
                         f"(CPU {d['cpu_ratio']:.1f}×) | {'yes' if d['ratio'] >= MIN_RATIO else '**no**'} |")
        lines.append(f"| HR@10 / NDCG@10 ≥ published SASRec .0605 / .0318 | {f['hr@10']:.4f} / {f['ndcg@10']:.4f} | "
                     f"{'yes' if f['hr@10'] >= PUBLISHED['hr@10'] and f['ndcg@10'] >= PUBLISHED['ndcg@10'] else '**no**'} |")
    return lines + [""]


def write_section(lines: list[str]) -> Path:
    """Replace (or append) this benchmark's section of BENCHMARKS.md, leaving the rest as it is."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text().split("\n")
    if HEADING in text:
        start = text.index(HEADING)
        end = next((i for i in range(start + 1, len(text)) if text[i].startswith("## ")), len(text))
        text[start:end] = lines
    else:
        while text and not text[-1]:
            text.pop()
        text += [""] + lines
    path.write_text("\n".join(text).rstrip("\n") + "\n")
    return path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recbole-python", default="",
                    help="python of a virtualenv with RecBole (default: $SHOPREC_RECBOLE_PYTHON; none = skip)")
    ap.add_argument("--recbole-work", type=Path, default=Path("/tmp/recbole-beauty"),
                    help="where RecBole's converted data and logs go (outside the repository)")
    ap.add_argument("--recbole-batches", type=int, default=150,
                    help="time only this many RecBole mini-batches per epoch and scale (0 = whole epochs)")
    ap.add_argument("--rounds", type=int, default=4, help="alternating epochs of each library")
    ap.add_argument("--validation-users", type=int, default=2000,
                    help="held-out users for shoprec's early stopping in the full fit")
    ap.add_argument("--no-full-fit", dest="full_fit", action="store_false",
                    help="per-epoch times only, no fit to the early stop")
    ap.add_argument("--write", action="store_true", help="also write the section of BENCHMARKS.md")
    ap.add_argument("--write-only", action="store_true", help="measure nothing; write the section from the JSON")
    args = ap.parse_args(argv)
    if not args.write_only:
        result = run(args)
        RESULTS.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {OUT.relative_to(ROOT)}")
    lines = sasrec_speed_lines()
    print("\n".join(lines))
    if args.write or args.write_only:
        print(f"wrote {write_section(lines).relative_to(ROOT)} (section {HEADING!r})")
    else:
        print("BENCHMARKS.md left as it is (pass --write to put this section in it)")


if __name__ == "__main__":
    main()
