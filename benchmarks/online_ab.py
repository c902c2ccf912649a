"""Sequential A/B tests on real customers (``python benchmarks/online.py --parts ab``).

Protocol. Population: the Online Retail customers (``../shared/data/online-retail``) with an invoice
before 2011-06-01; for each, ``y`` = bought again between 2011-06-01 and 2011-07-01 (conversion, the
primary metric), ``x`` = log(1 + invoices before 2011-06-01) (the pre-period covariate for CUPED).
One simulated test: 30 "days", each day ``per_day`` visitors drawn with replacement from the
population (so (x, y) pairs are real), split 50/50 at random (the keyed assignment's uniformity is a
unit test); every day the cumulative difference of conversion is tested by the always-valid mSPRT
(τ² = (5 % of the base rate)², set on seed 1), plain and with CUPED, and, for contrast, by a fixed-
horizon z-test peeked at daily. A/A: no effect; A/B: +5 % relative conversion injected in the
treatment (a treated non-buyer becomes a buyer with probability 0.05·p / (1 − p)). 1,000 tests each,
seed 2. Reported: false-positive rate (any day significant at α = 0.05) of A/A, the share of A/B tests
detected by day 30 and the median day of detection, and CUPED's variance reduction of the difference.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shoprec.online.experiments import MSPRT  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "online-retail" / "online_retail_2010_2011.parquet"
CUT, END = pd.Timestamp("2011-06-01"), pd.Timestamp("2011-07-01")


def population() -> tuple[np.ndarray, np.ndarray]:
    d = pd.read_parquet(DATA, columns=["InvoiceNo", "InvoiceDate", "CustomerID"]).dropna(subset=["CustomerID"])
    d = d[~d["InvoiceNo"].astype(str).str.startswith("C")]
    t = pd.to_datetime(d["InvoiceDate"])
    pre = d[t < CUT].groupby("CustomerID")["InvoiceNo"].nunique()
    post = set(d[(t >= CUT) & (t < END)]["CustomerID"])
    y = np.array([c in post for c in pre.index], np.float64)
    return np.log1p(pre.to_numpy(np.float64)), y


def _sprt_p(diff, var, tau2):
    """Always-valid p per look (vectorised MSPRT: running minimum over looks, axis 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lr = 0.5 * np.log(var / (var + tau2)) + tau2 * diff ** 2 / (2 * var * (var + tau2))
    p = np.where(np.isfinite(log_lr) & (log_lr > 0), np.exp(-log_lr), 1.0)
    return np.minimum.accumulate(p, axis=1)


def run_tests(x, y, lift: float, n_tests: int, days: int, per_day: int, tau2: float, seed: int, alpha=0.05):
    rng = np.random.default_rng(seed)
    base = y.mean()
    q = lift * base / (1 - base)
    out = {"sprt": [], "sprt_cuped": [], "naive": [], "var_plain": [], "var_cuped": []}
    chunk = 50
    for lo in range(0, n_tests, chunk):
        m = min(chunk, n_tests - lo)
        idx = rng.integers(0, len(y), (m, days * per_day))
        yy, xx = y[idx], x[idx]
        treat = rng.random(idx.shape) < 0.5
        if lift:
            yy = np.where(treat & (yy == 0) & (rng.random(idx.shape) < q), 1.0, yy)
        # θ pooled over both arms, estimated on all visitors so far (per test, per day)
        ends = np.arange(1, days + 1) * per_day
        stats = {k: np.empty((m, days)) for k in ("d", "v", "dc", "vc")}
        for j, e in enumerate(ends):
            ys, xs, ts = yy[:, :e], xx[:, :e], treat[:, :e]
            xm = xs.mean(1, keepdims=True)
            cov = ((xs - xm) * (ys - ys.mean(1, keepdims=True))).mean(1)
            theta = cov / xs.var(1)
            yc = ys - theta[:, None] * (xs - xm)
            for key, arr in (("", ys), ("c", yc)):
                n1, n0 = ts.sum(1), (~ts).sum(1)
                m1 = (arr * ts).sum(1) / n1
                m0 = (arr * ~ts).sum(1) / n0
                v1 = ((arr - m1[:, None]) ** 2 * ts).sum(1) / (n1 - 1)
                v0 = ((arr - m0[:, None]) ** 2 * ~ts).sum(1) / (n0 - 1)
                stats["d" + key][:, j] = m1 - m0
                stats["v" + key][:, j] = v1 / n1 + v0 / n0
        p = _sprt_p(stats["d"], stats["v"], tau2)
        pc = _sprt_p(stats["dc"], stats["vc"], tau2)
        if lo == 0:   # the vectorised test is the library's MSPRT, look for look
            lib = MSPRT(tau2)
            np.testing.assert_allclose([lib.look(d, v) for d, v in zip(stats["d"][0], stats["v"][0])], p[0], rtol=1e-9)
        z = np.abs(stats["d"]) / np.sqrt(stats["v"])
        out["sprt"].append(p <= alpha)
        out["sprt_cuped"].append(pc <= alpha)
        out["naive"].append(z >= 1.959964)
        out["var_plain"].append(stats["v"][:, -1])
        out["var_cuped"].append(stats["vc"][:, -1])
    return {k: np.concatenate(v) for k, v in out.items()}


def _detect(sig: np.ndarray) -> dict:
    anyday = sig.any(1)
    first = np.where(anyday, sig.argmax(1) + 1, -1)
    return {"rate": float(anyday.mean()), "median_day": float(np.median(first[anyday])) if anyday.any() else None}


def ab(n_tests: int = 1000, days: int = 30, per_day: int = 2000, seed: int = 2, lift: float = 0.05) -> dict:
    x, y = population()
    tau2 = (lift * y.mean()) ** 2
    res = {"protocol": __doc__, "customers": len(y), "base_conversion": float(y.mean()),
           "corr_x_y": float(np.corrcoef(x, y)[0, 1]), "n_tests": n_tests, "days": days, "per_day": per_day,
           "tau2": tau2, "seed": seed, "lift": lift}
    for name, eff in (("aa", 0.0), ("ab", lift)):
        r = run_tests(x, y, eff, n_tests, days, per_day, tau2, seed)
        res[name] = {"msprt": _detect(r["sprt"]), "msprt_cuped": _detect(r["sprt_cuped"]),
                     "naive_daily_z": _detect(r["naive"]),
                     "cuped_variance_reduction": float(1 - np.mean(r["var_cuped"]) / np.mean(r["var_plain"]))}
        print(name, res[name], flush=True)
    return res


def table_lines(res: dict) -> list[str]:
    out = ["| test | A/A false-positive rate, 30 daily looks | +5 % lift detected by day 30 | median day of detection |",
           "|---|---:|---:|---:|"]
    for key, label in (("msprt", "mSPRT (always valid)"), ("msprt_cuped", "mSPRT with CUPED"),
                       ("naive_daily_z", "z-test peeked at daily (for contrast)")):
        aa, ab_ = res["aa"][key], res["ab"][key]
        out.append(f"| {label} | {aa['rate']:.1%} | {ab_['rate']:.1%} | {ab_['median_day'] if ab_['median_day'] else '–'} |")
    out += ["", f"CUPED's variance reduction of the difference (day 30): {res['ab']['cuped_variance_reduction']:.1%} "
            f"(correlation of x and y {res['corr_x_y']:.2f}); {res['customers']:,} customers, base conversion "
            f"{res['base_conversion']:.1%}, {res['per_day']:,} visitors a day."]
    return out
