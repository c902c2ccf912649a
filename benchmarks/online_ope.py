"""Off-policy evaluation on the Open Bandit Dataset (``python benchmarks/online.py --parts ope``).

Protocol (OBP's ``examples/obd/evaluate_off_policy_estimators.py``, Saito et al. 2020):

* per campaign (men, women) and direction — the uniform-random logs evaluating ZOZOTOWN's Bernoulli
  Thompson sampling (BTS) policy, and the BTS logs evaluating uniform random;
* the evaluated BTS policy's action distribution: Monte Carlo of Thompson sampling over ranked lists
  of 3 with ZOZOTOWN's Beta prior (``benchmarks/data/open_bandit_bts_prior.json``, 100k draws), each row
  at its position; uniform random is 1 / n_actions;
* ground truth: the mean click of the evaluated policy's own log of the same campaign (10k rows, the
  on-policy estimate OBP uses), and beside it the full-data on-policy rates the paper publishes;
* ``runs`` bootstrap resamples of the behaviour log (with replacement, as
  ``OpenBanditDataset.sample_bootstrap_bandit_feedback(random_state=b)``; when obp ran, the very rows it
  drew); on each the reward model (per-position logistic regression, C = 100, 3-fold cross-fitting) is
  refitted and every estimator's relative error |estimate − truth| / truth recorded; mean and standard
  deviation over runs.

obp itself runs in its own interpreter (its pins cannot share ours; see ``benchmarks/online_obp.py``),
on the same rows, when ``--obp-python`` names it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shoprec.data.adapters import load_open_bandit  # noqa: E402
from shoprec.online.estimators import LoggedFeedback  # noqa: E402
from shoprec.online.logs import FeedbackTable, open_bandit_feedback  # noqa: E402
from shoprec.online.ope import evaluate_policy, target_policy  # noqa: E402
from shoprec.online.reward_model import RewardModel  # noqa: E402

PRIOR = ROOT / "benchmarks" / "data" / "open_bandit_bts_prior.json"
ESTIMATORS = ("dm", "ips", "snips", "dr", "switch-dr")
#: on-policy click rates of the full data (Saito et al. 2020, ../shared/data/README.md)
FULL_DATA_TRUTH = {("men", "bts"): 0.0067, ("men", "random"): 0.0051,
                   ("women", "bts"): 0.0064, ("women", "random"): 0.0048}
#: published relative errors of Random → BTS (../shared/data/README.md)
PUBLISHED = {
    "full data, men": {"dm": 0.215, "ips": 0.135, "dr": 0.120},
    "full data, women": {"dm": 0.226, "ips": 0.079, "dr": 0.079},
    "10k rows, 'all' campaign (OBP's example)": {"dm": 0.157, "ips": 0.311, "dr": 0.292, "switch-dr": 0.258},
}


def _load(data: Path, policy: str, campaign: str):
    logs, report = load_open_bandit(data / policy / campaign / f"{campaign}.csv")
    if report.rows_skipped:
        print(f"  {policy}/{campaign}: {report.summary()}")
    return logs


def _subset(table: FeedbackTable, rows: np.ndarray) -> FeedbackTable:
    log = table.log
    sub = LoggedFeedback(log.action[rows], log.reward[rows], log.pscore[rows], log.n_actions,
                         log.position[rows])
    ctx = None if table.context is None else table.context[rows]
    return FeedbackTable(sub, ctx, table.action_features, table.actions)


def run_obp(python: str, data: Path, runs: int, n_sim: int, tau: float, campaigns: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "obp.json"
        cmd = [python, str(ROOT / "benchmarks" / "online_obp.py"), "--data", str(data), "--out", str(out),
               "--runs", str(runs), "--n-sim", str(n_sim), "--tau", str(tau), "--campaigns", ",".join(campaigns)]
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())


def obp_version(python: str) -> str:
    r = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('obp'))"],
                       capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def ope(data: Path, runs: int = 30, n_sim: int = 100_000, tau: float = 100.0, n_boot: int = 1000,
        campaigns: tuple[str, ...] = ("men", "women"), obp_python: str | None = None) -> dict:
    obp = None
    if obp_python:
        print(f"obp ({obp_python}) on the same rows …", flush=True)
        obp = run_obp(obp_python, data, runs, n_sim, tau, list(campaigns))
    cases = []
    for campaign in campaigns:
        for behavior, evaluation in (("random", "bts"), ("bts", "random")):
            t0 = time.perf_counter()
            logs = _load(data, behavior, campaign)
            truth_log = _load(data, evaluation, campaign)
            table = open_bandit_feedback(logs)
            spec = f"thompson:{PRIOR}#{campaign}" if evaluation == "bts" else "uniform"
            target = target_policy(spec, table, n_sim=n_sim, seed=12345)
            truth = float(truth_log["click"].mean())
            full = evaluate_policy(table, target, ESTIMATORS, n_boot=n_boot, tau=tau, seed=0)
            obp_case = None
            if obp is not None:
                obp_case = next(c for c in obp["cases"] if c["campaign"] == campaign and c["behavior"] == behavior)
            n = len(table.log)
            est = {e: np.empty(runs) for e in ESTIMATORS}
            row_ids = logs.index.to_numpy() if logs.index.is_unique else np.arange(n)
            pos_of = {int(r): i for i, r in enumerate(row_ids)}
            for b in range(runs):
                if obp_case is not None:
                    rows = np.array([pos_of[int(r)] for r in obp_case["runs"][b]["rows"]])
                else:
                    rows = np.random.RandomState(b).choice(np.arange(n), size=n, replace=True)
                sub = _subset(table, rows)
                res = evaluate_policy(sub, target[rows], ESTIMATORS, n_boot=0, tau=tau,
                                      reward_model=RewardModel(seed=12345, max_iter=10000))
                for r in res:
                    est[r.estimator][b] = r.value
            truth_full = FULL_DATA_TRUTH[(campaign, evaluation)]
            w = target[np.arange(n), table.log.action] / table.log.pscore
            case = {
                "campaign": campaign, "behavior": behavior, "evaluation": evaluation,
                "rows": n, "truth": truth, "truth_clicks": int(truth_log["click"].sum()),
                "truth_full_data": truth_full, "behavior_ctr": float(table.log.reward.mean()),
                "max_weight": float(w.max()), "ess": float(w.sum() ** 2 / (w ** 2).sum()),
                "point": {r.estimator: {"value": r.value, "low": r.low, "high": r.high} for r in full},
                "shoprec": {e: _errors(est[e], truth, truth_full) for e in ESTIMATORS},
                "seconds": time.perf_counter() - t0,
            }
            if obp_case is not None:
                ok = [i for i, r in enumerate(obp_case["runs"]) if "estimates" in r]
                case["obp"] = {e: _errors(np.array([obp_case["runs"][i]["estimates"][e] for i in ok]), truth, truth_full)
                               for e in ESTIMATORS}
                case["obp_failed_runs"] = runs - len(ok)
                case["obp_errors"] = sorted({r["error"] for r in obp_case["runs"] if "error" in r})
                # shoprec on the runs obp finished too, so the two columns compare the same resamples
                case["shoprec_on_obp_runs"] = {e: _errors(est[e][ok], truth, truth_full) for e in ESTIMATORS}
                case["obp_seconds"] = obp_case["seconds"]
            cases.append(case)
            print(f"{campaign} {behavior}→{evaluation}: truth {truth:.4f} ({case['truth_clicks']} clicks), "
                  f"{case['seconds']:.1f} s", flush=True)
    return {"protocol": __doc__, "runs": runs, "n_sim": n_sim, "tau": tau, "n_boot": n_boot,
            "obp": obp_version(obp_python) if obp_python else None, "published": PUBLISHED, "cases": cases}


def _errors(values: np.ndarray, truth: float, truth_full: float) -> dict:
    rel = np.abs(values - truth) / truth
    rel_full = np.abs(values - truth_full) / truth_full
    return {"mean_estimate": float(values.mean()), "rel_error": float(rel.mean()), "rel_error_std": float(rel.std()),
            "rel_error_full_truth": float(rel_full.mean())}


def table_lines(res: dict) -> list[str]:
    """Markdown rows: per case and estimator, shoprec's (and obp's) mean relative error."""
    has_obp = any("obp" in c for c in res["cases"])
    head = "| logs → evaluated | truth (10k log) | estimator | estimate (full log, 95 % CI) | rel. error, mean ± sd |"
    sep = "|---|---:|---|---:|---:|"
    if has_obp:
        head += " obp rel. error (its finished runs) | shoprec / obp, same runs |"
        sep += "---:|---:|"
    head += " rel. error vs full-data truth |" + (" obp, vs full-data truth |" if has_obp else "")
    sep += "---:|" + ("---:|" if has_obp else "")
    out = [head, sep]
    for c in res["cases"]:
        label = f"{c['campaign']}: {c['behavior']} → {c['evaluation']}"
        for i, e in enumerate(ESTIMATORS):
            s = c["shoprec"][e]
            p = c["point"][e]
            truth = f"{c['truth']:.4f}" if i == 0 else ""
            row = (f"| {label if i == 0 else ''} | {truth} "
                   f"| {e} | {p['value']:.4f} ({p['low']:.4f}–{p['high']:.4f}) "
                   f"| {s['rel_error']:.3f} ± {s['rel_error_std']:.3f} |")
            if has_obp:
                o = c["obp"][e]
                same = c["shoprec_on_obp_runs"][e]
                row += f" {o['rel_error']:.3f} ± {o['rel_error_std']:.3f} | {same['rel_error'] / o['rel_error']:.2f} |"
            row += f" {s['rel_error_full_truth']:.3f} |"
            if has_obp:
                row += f" {c['obp'][e]['rel_error_full_truth']:.3f} |"
            out.append(row)
    return out
