"""The Open Bandit Pipeline (``obp``) side of ``benchmarks/online.py --ope``: OBP's own OBD protocol
(``examples/obd/evaluate_off_policy_estimators.py``) on the same rows, run in a separate interpreter.

obp 0.5.7 (the newest) pins torch 1.12, scikit-learn 1.1.3, scipy 1.9.3 and Python < 3.11, which
cannot live beside shoprec's pins, so it runs in a throwaway venv (see ``--help`` of online.py)::

    python3 -m venv /tmp/obpvenv
    /tmp/obpvenv/bin/pip install torch==2.13.0 "numpy<2" "scikit-learn<1.6" pandas scipy \
        "matplotlib<3.9" seaborn==0.11.2 tqdm pyyaml
    /tmp/obpvenv/bin/pip install --no-deps --ignore-requires-python obp==0.5.7

This script imports nothing of shoprec. For every (campaign, direction) and bootstrap run ``b`` it
resamples the behaviour log exactly as ``OpenBanditDataset.sample_bootstrap_bandit_feedback(
random_state=b)`` does, fits OBP's ``RegressionModel`` (logistic regression, C = 100, 3-fold
cross-fitting), and writes each estimator's estimate, and the original CSV row ids it resampled (so the
shoprec side reads the very same rows), to a JSON file. A run where obp's reward model fails (a
cross-fitting fold whose training rows hold no click: scikit-learn's logistic regression refuses one
class) is recorded with its error and left out of obp's figures, and counted.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.utils import check_random_state

from obp.dataset import OpenBanditDataset
from obp.ope import (DirectMethod, DoublyRobust, InverseProbabilityWeighting, OffPolicyEvaluation,
                     RegressionModel, SelfNormalizedInverseProbabilityWeighting, SwitchDoublyRobust)
from obp.policy import BernoulliTS, Random


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the open-bandit folder")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--n-sim", type=int, default=100_000)
    ap.add_argument("--tau", type=float, default=100.0, help="Switch-DR threshold (lambda_)")
    ap.add_argument("--campaigns", default="men,women")
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args()
    out = {"library": "obp", "runs": args.runs, "cases": []}
    for campaign in args.campaigns.split(","):
        for behavior, evaluation in (("random", "bts"), ("bts", "random")):
            t0 = time.perf_counter()
            obd = OpenBanditDataset(behavior_policy=behavior, campaign=campaign, data_path=args.data)
            kw = dict(n_actions=obd.n_actions, len_list=obd.len_list, random_state=args.seed)
            if evaluation == "bts":
                policy = BernoulliTS(is_zozotown_prior=True, campaign=campaign, **kw)
            else:
                policy = Random(**kw)
            if evaluation == "bts":
                dist = policy.compute_batch_action_dist(n_sim=args.n_sim)[0]    # (A, L)
            else:
                dist = policy.compute_batch_action_dist()[0]
            truth = OpenBanditDataset.calc_on_policy_policy_value_estimate(
                behavior_policy=evaluation, campaign=campaign, data_path=args.data)
            full = obd.obtain_batch_bandit_feedback()
            n = full["n_rounds"]
            row_ids = obd.data.index.to_numpy()
            runs = []
            for b in range(args.runs):
                idx = check_random_state(b).choice(np.arange(n), size=n, replace=True)
                fb = obd.sample_bootstrap_bandit_feedback(random_state=b)
                try:
                    reg = RegressionModel(n_actions=obd.n_actions, len_list=obd.len_list,
                                          action_context=obd.action_context,
                                          base_model=LogisticRegression(C=100, max_iter=10000, random_state=args.seed))
                    q_hat = reg.fit_predict(context=fb["context"], action=fb["action"], reward=fb["reward"],
                                            position=fb["position"], pscore=fb["pscore"], n_folds=3,
                                            random_state=args.seed)
                    ope = OffPolicyEvaluation(bandit_feedback=fb, ope_estimators=[
                        DirectMethod(), InverseProbabilityWeighting(), SelfNormalizedInverseProbabilityWeighting(),
                        DoublyRobust(), SwitchDoublyRobust(lambda_=args.tau)])
                    action_dist = np.tile(dist, (fb["n_rounds"], 1, 1))
                    est = ope.estimate_policy_values(action_dist=action_dist,
                                                     estimated_rewards_by_reg_model=q_hat)
                except ValueError as e:   # obp's logistic model refuses a fold with one class only
                    runs.append({"rows": row_ids[idx].tolist(), "error": str(e)})
                    continue
                runs.append({"rows": row_ids[idx].tolist(),
                             "estimates": {_name(k): float(v) for k, v in est.items()}})
            out["cases"].append({"campaign": campaign, "behavior": behavior, "evaluation": evaluation,
                                 "truth": float(truth), "seconds": time.perf_counter() - t0, "runs": runs})
            print(f"obp {campaign} {behavior}→{evaluation}: {time.perf_counter() - t0:.1f} s", flush=True)
    args.out.write_text(json.dumps(out))


def _name(obp_name: str) -> str:
    return {"dm": "dm", "ipw": "ips", "snipw": "snips", "dr": "dr", "switch-dr": "switch-dr"}.get(obp_name, obp_name)


if __name__ == "__main__":
    main()
