"""A/B tests of scenario configs, as a shop runs them: the experiment, who sees which variant, and the report.

An :class:`Experiment` names the **page** the storefront asks for (``home``), its **variants** (each a
scenario the served model holds: the page's own, or another TOML file trained beside it, e.g.
``home_ease``; or an inline override of a scenario's fusion weights, ``weights = { ease = 0 }``, served
by the same fitted pipeline), their traffic shares and the **primary metric**. While it runs, the service routes
each visitor of the page (``user_id``, else ``session_id``) to a variant by :func:`~.experiments.assign`
(a keyed HMAC, so the same variant in every session, worker and restart) and logs the impression with
``context.experiment = {"id", "variant"}`` and its compute time.

:func:`experiment_report` reads those impressions and the events, attributes the events as the
rewards do (:func:`~.rewards.join_rewards`: by request and position, else session/user and item,
within ``window_seconds``), and reports per variant: visitors, impressions, and per answer shown the
CTR (any engagement with a shown item), cart rate, conversion (a shown item bought) and revenue;
the share of visitors who bought a recommended item; and the guardrails (empty answers, compute
latency p50/p99, the share of the variant's requests that failed with a server error: the service logs
each as an answer without items and with an ``error``). Every metric that can be the primary one is per answer, so it does not drift
with the test's age (a per-visitor share grows as visitors come back).

The test of each variant against the first (the control) is an mSPRT (:class:`~.experiments.MSPRT`),
looked at once per ``look_seconds`` (a day) from the start, each look using only what had happened by
then, so its p-value and interval are valid however often anyone peeks. The unit is the visitor:
ratio metrics (per impression) are linearised by the delta method (Deng, Knoblich & Lu, "Applying the
delta method in metric analytics", 2018: ``l = R + (n − R·d) / mean(d)`` per visitor), then CUPED
(:func:`~.experiments.cuped`) with the visitor's pre-period behaviour as covariate (the ``pre_days``
before the start: purchases for conversion and revenue, carts for cart rate, events for CTR). The
mixing variance ``τ² = (mde × control's metric)²`` is fixed at the first look that has
``min_visitors`` in every variant. With more than two variants each comparison runs at
``alpha / (variants − 1)`` (Bonferroni).
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..exceptions import ConfigError
from ..scenarios.config import RewardConfig
from .experiments import MSPRT, cuped, hash_fraction
from .rewards import _rows, join_rewards

__all__ = ["METRICS", "Experiment", "ExperimentRouter", "Variant", "experiment_report", "read_experiment",
           "format_report", "visitor_of"]

SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
METRICS = ("conversion", "ctr", "cart_rate", "revenue_per_impression")
#: the behaviours each level of the funnel counts (an add-to-cart of a shown item was a click-through too)
_CLICK = ("view", "click", "add_to_cart", "purchase")
_CART = ("add_to_cart", "purchase")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Variant(_Strict):
    name: str = Field(pattern=SLUG, description="The variant's name in reports (e.g. control, ease_only).")
    scenario: str | None = Field(default=None, pattern=SLUG,
                                 description="The scenario of the served model that answers its visitors "
                                             "(default: the page's own).")
    weights: dict[str, float] | None = Field(default=None, description="An inline override: the scenario "
                                             "answers with these fusion weights (by strategy label; the "
                                             "strategies not named keep theirs, 0 switches one off), no "
                                             "training of another scenario needed.")
    share: float = Field(default=1.0, gt=0, description="Traffic weight (any positive numbers; normalised).")

    @field_validator("weights")
    @classmethod
    def _weights(cls, w: dict[str, float] | None) -> dict[str, float] | None:
        if w is not None:
            if not w:
                raise ValueError("an override names at least one strategy's weight")
            bad = {k: v for k, v in w.items() if not (np.isfinite(v) and v >= 0)}
            if bad:
                raise ValueError(f"weights must be finite and ≥ 0; got {bad}")
        return w

    def served(self, page: str) -> str:
        """The scenario that answers this variant's visitors of ``page``."""
        return self.scenario or page

    def mix(self) -> dict[str, Any] | None:
        """The override the pipeline applies (``shoprec.scenarios.policies.override_mix``), or None."""
        return None if self.weights is None else {"name": self.name, "weights": dict(self.weights)}


class Guardrails(_Strict):
    max_latency_ratio: float = Field(default=1.5, gt=0, description="A variant's p99 compute latency over the "
                                                                    "control's above this is a breach.")
    max_empty_rate: float = Field(default=0.02, ge=0, le=1, description="Share of empty answers above this (and "
                                                                        "above the control's) is a breach.")
    max_error_rate: float = Field(default=0.01, ge=0, le=1, description="Share of the variant's requests that "
                                  "failed with a server error above this (and above the control's) is a breach.")


class Experiment(_Strict):
    """One A/B test (module docstring)."""

    id: str = Field(pattern=SLUG)
    page: str = Field(pattern=SLUG, description="The scenario the storefront requests (e.g. home).")
    variants: list[Variant] = Field(min_length=2, description="The first is the control.")
    primary_metric: Literal["conversion", "ctr", "cart_rate", "revenue_per_impression"] = "conversion"
    description: str = ""
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    mde: float = Field(default=0.05, gt=0, description="The smallest relative effect worth detecting (sets τ²).")
    window_seconds: float = Field(default=86_400.0, gt=0, description="How long after an answer an event counts.")
    look_seconds: float = Field(default=86_400.0, gt=0, description="The test looks once per this (a day).")
    pre_days: float = Field(default=28.0, ge=0, description="The pre-period of CUPED's covariate, before the start.")
    min_visitors: int = Field(default=100, ge=2, description="Per variant, before the first look that counts.")
    tau2: float | None = Field(default=None, gt=0, description="The mSPRT's mixing variance; default "
                                                                "(mde × the control's metric at the first look)².")
    guardrails: Guardrails = Field(default_factory=Guardrails)
    started_at: float | None = Field(default=None, description="Unix seconds; set when it is created.")
    stopped_at: float | None = None

    @field_validator("variants")
    @classmethod
    def _unique(cls, v: list[Variant]) -> list[Variant]:
        names = [x.name for x in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"variant names must be unique; repeated: {dup}")
        return v

    @model_validator(mode="after")
    def _check(self) -> "Experiment":
        served = [(x.served(self.page), tuple(sorted((x.weights or {}).items()))) for x in self.variants]
        dup = sorted({x.name for x, key in zip(self.variants, served) if served.count(key) > 1})
        if dup:
            raise ValueError(f"variants {dup} would serve the same thing: give each its own scenario or weights")
        if self.started_at is not None and self.stopped_at is not None and self.stopped_at < self.started_at:
            raise ValueError("stopped_at is before started_at")
        return self

    @property
    def running(self) -> bool:
        return self.started_at is not None and self.stopped_at is None

    @property
    def shares(self) -> list[float]:
        return [v.share for v in self.variants]


def read_experiment(path: str | Path) -> Experiment:
    """An experiment from a TOML or JSON file; a bad one is a :class:`ConfigError` naming the file and field."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read experiment file {p}: {e}") from None
    try:
        raw = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'TOML'}: {e}") from None
    raw = raw.get("experiment", raw) if isinstance(raw, dict) else raw
    try:
        return Experiment.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise ConfigError(f"{p}: {where}: {err['msg']}") from None


def visitor_of(user_id: str | None, session_id: str | None) -> str | None:
    """The unit of assignment: the user when known (sticky across sessions), else the session."""
    if user_id:
        return "u:" + str(user_id)
    if session_id:
        return "s:" + str(session_id)
    return None


class ExperimentRouter:
    """The running experiments by page; :meth:`route` gives a request its variant."""

    def __init__(self, experiments: Iterable[Experiment], key: bytes | str) -> None:
        self.key = key.encode() if isinstance(key, str) else key
        if len(self.key) < 16:
            raise ValueError("the assignment key must be at least 16 bytes")
        self.by_page: dict[str, Experiment] = {}
        for e in experiments:
            if e.running:
                if e.page in self.by_page:
                    raise ValueError(f"two running experiments on page {e.page!r}: {self.by_page[e.page].id!r} and {e.id!r}")
                self.by_page[e.page] = e
        self._edges = {p: np.cumsum(np.asarray(e.shares) / sum(e.shares)) for p, e in self.by_page.items()}

    def route(self, page: str, user_id: str | None, session_id: str | None
              ) -> tuple[str, dict[str, str] | None, dict[str, Any] | None]:
        """(the scenario that answers, ``{"id", "variant"}`` or None when no experiment runs on the
        page or the visitor has no id to be assigned by: those get the control and are not counted,
        the variant's override of the weights or None)."""
        exp = self.by_page.get(page)
        if exp is None:
            return page, None, None
        visitor = visitor_of(user_id, session_id)
        if visitor is None:
            v = exp.variants[0]
            return v.served(page), None, v.mix()
        frac = hash_fraction(self.key, exp.id, visitor)   # as experiments.assign
        i = min(int(np.searchsorted(self._edges[page], frac, side="right")), len(exp.variants) - 1)
        v = exp.variants[i]
        return v.served(page), {"id": exp.id, "variant": v.name}, v.mix()


# --------------------------------------------------------------------------- the report
def _visitor_column(df: pd.DataFrame) -> pd.Series:
    u = df["user_id"].where(df["user_id"].notna() & (df["user_id"].astype(str) != ""))
    s = df["session_id"].where(df["session_id"].notna())
    return ("u:" + u.astype(str)).where(u.notna(), ("s:" + s.astype(str)).where(s.notna()))


def _per_visitor(imps: pd.DataFrame, hits: pd.DataFrame, t: float) -> pd.DataFrame:
    """Per visitor (index), as of time ``t``: impressions, clicked / carted / bought answers, revenue."""
    im = imps[imps["created_at"] <= t]
    h = hits[(hits["timestamp"] <= t) & hits["request_id"].isin(im["request_id"])]
    per_req = pd.DataFrame(index=im["request_id"])
    beh = h["behaviour"].astype(str)
    per_req["clicked"] = im["request_id"].isin(h.loc[beh.isin(_CLICK).to_numpy(), "request_id"]).to_numpy()
    per_req["carted"] = im["request_id"].isin(h.loc[beh.isin(_CART).to_numpy(), "request_id"]).to_numpy()
    per_req["bought"] = im["request_id"].isin(h.loc[(beh == "purchase").to_numpy(), "request_id"]).to_numpy()
    rev = h.groupby("request_id")["revenue"].sum()
    per_req["revenue"] = per_req.index.map(rev).fillna(0.0).to_numpy(np.float64)
    per_req["visitor"] = im["visitor"].to_numpy()
    per_req["variant"] = im["variant"].to_numpy()
    g = per_req.groupby("visitor")
    out = g.agg(variant=("variant", "first"), impressions=("clicked", "size"), clicks=("clicked", "sum"),
                carts=("carted", "sum"), purchases=("bought", "sum"), revenue=("revenue", "sum"))
    out["converted"] = (out["purchases"] > 0).astype(np.float64)
    return out


def _numerator(pv: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(numerator, denominator) per visitor of ``metric``."""
    d = pv["impressions"].to_numpy(np.float64)
    n = {"ctr": "clicks", "cart_rate": "carts", "conversion": "purchases", "revenue_per_impression": "revenue"}[metric]
    return pv[n].to_numpy(np.float64), d


def _linearised(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Delta-method linearisation of the ratio Σn/Σd (module docstring): its mean is the ratio, its
    variance over N the ratio's variance to first order."""
    if len(n) == 0 or d.sum() <= 0:
        return np.zeros(len(n))
    r = n.sum() / d.sum()
    return r + (n - r * d) / d.mean()


def _pre_covariate(events: pd.DataFrame, metric: str, start: float, days: float) -> pd.Series:
    """Per visitor: their behaviour in the ``days`` before ``start`` (module docstring)."""
    if days <= 0 or events.empty:
        return pd.Series(dtype=np.float64)
    e = events[(events["timestamp"] < start) & (events["timestamp"] >= start - days * 86_400.0)]
    beh = e["behaviour"].astype(str)
    if metric in ("conversion", "revenue_per_impression"):
        e = e[beh == "purchase"]
    elif metric == "cart_rate":
        e = e[beh.isin(_CART)]
    if e.empty:
        return pd.Series(dtype=np.float64)
    if metric == "revenue_per_impression":
        price = pd.to_numeric(e["price"], errors="coerce").fillna(0.0)
        qty = pd.to_numeric(e["quantity"], errors="coerce").fillna(1.0)
        val = price * qty
    else:
        val = pd.Series(1.0, index=e.index)
    # a visitor is their user id when known, else the session: pre-period events count for both
    by_user = val[e["user_id"].notna()].groupby("u:" + e.loc[e["user_id"].notna(), "user_id"].astype(str)).sum()
    by_sess = val[e["session_id"].notna()].groupby("s:" + e.loc[e["session_id"].notna(), "session_id"].astype(str)).sum()
    return pd.concat([by_user, by_sess]).astype(np.float64)


def _metrics_row(pv: pd.DataFrame, imps: pd.DataFrame) -> dict[str, Any]:
    n_imp = int(pv["impressions"].sum())
    lat = imps["latency_ms"].dropna().to_numpy(np.float64)
    return {"visitors": int(len(pv)), "impressions": n_imp,
            "ctr": float(pv["clicks"].sum() / n_imp) if n_imp else 0.0,
            "cart_rate": float(pv["carts"].sum() / n_imp) if n_imp else 0.0,
            "conversion": float(pv["purchases"].sum() / n_imp) if n_imp else 0.0,
            "buyers": float(pv["converted"].mean()) if len(pv) else 0.0,
            "revenue": float(pv["revenue"].sum()),
            "revenue_per_impression": float(pv["revenue"].sum() / n_imp) if n_imp else 0.0,
            "empty_answers": float(imps["empty"].mean()) if len(imps) else 0.0,
            "latency_p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
            "latency_p99_ms": float(np.percentile(lat, 99)) if len(lat) else None}


def experiment_report(exp: Experiment, impressions: Iterable[Any], events: Iterable[Any] | pd.DataFrame, *,
                      now: float | None = None) -> dict[str, Any]:
    """The report of ``exp`` from the logged ``impressions`` and ``events`` (module docstring): per
    variant its metrics and guardrails, per treatment its always-valid test of the primary metric,
    and the daily looks (for the plots)."""
    if exp.started_at is None:
        raise ValueError(f"experiment {exp.id!r} has not started")
    now = time.time() if now is None else float(now)
    end = min(now, exp.stopped_at) if exp.stopped_at is not None else now
    rows = [r for r in _rows(impressions)
            if ((r.get("context") or {}).get("experiment") or {}).get("id") == exp.id]
    names = [v.name for v in exp.variants]
    # requests that failed with a server error are logged as answers without items and an "error":
    # counted per variant (a guardrail), never as answers shown
    failed = [r for r in rows if (r.get("context") or {}).get("error")]
    errors = {n: 0 for n in names}
    for r in failed:
        v = r["context"]["experiment"].get("variant")
        if v in errors and (r.get("created_at") or 0.0) <= end:
            errors[v] += 1
    rows = [r for r in rows if not (r.get("context") or {}).get("error")]
    counts: dict[str, int] = {"impressions_logged": len(rows), "errors_logged": len(failed)}
    ev = events if isinstance(events, pd.DataFrame) else pd.DataFrame(_rows(events))
    for c in ("item_id", "user_id", "session_id", "price", "quantity", "timestamp", "behaviour", "request_id",
              "position"):
        if c not in ev.columns:
            ev[c] = None
    ev = ev.assign(timestamp=pd.to_numeric(ev["timestamp"], errors="coerce"))
    join = join_rewards(rows, ev, RewardConfig(view=1e-3, click=2e-3, cart=1e-2, purchase=1.0,
                                                   window_seconds=exp.window_seconds, attribution="user"))
    imps = join.requests.copy()
    ctx = {r["request_id"]: r.get("context") or {} for r in rows}
    imps["variant"] = imps["request_id"].map(lambda rid: ctx[rid]["experiment"].get("variant"))
    imps["latency_ms"] = pd.to_numeric(imps["request_id"].map(lambda rid: ctx[rid].get("latency_ms")),
                                       errors="coerce")
    n_items = {r["request_id"]: len(r.get("items") or []) for r in rows}
    imps["empty"] = imps["request_id"].map(n_items).fillna(0).to_numpy() == 0
    imps["visitor"] = _visitor_column(imps)
    unknown = ~imps["variant"].isin(names)
    counts["unknown_variant"] = int(unknown.sum())
    counts["no_visitor"] = int(imps["visitor"].isna().sum())
    imps = imps[~unknown & imps["visitor"].notna()]
    # a visitor seen under two variants (the shares or the key changed mid-test) is kept under the first
    first = imps.sort_values("created_at").groupby("visitor")["variant"].first()
    moved = imps["variant"].to_numpy() != imps["visitor"].map(first).to_numpy()
    counts["impressions_of_reassigned_visitors"] = int(moved.sum())
    imps = imps[~moved]
    counts["impressions_counted"] = len(imps)
    counts.update({f"attribution_{k}": v for k, v in join.report.items()
                   if k in ("attributed", "by_request", "by_session", "by_user", "unknown_request", "not_shown",
                            "outside_window")})

    pre = _pre_covariate(ev, exp.primary_metric, exp.started_at, exp.pre_days)

    hits = join.hits
    pv_now = _per_visitor(imps, hits, end + exp.window_seconds)   # everything known (for the table)
    variants = []
    for v in exp.variants:
        row = {"name": v.name, "scenario": v.served(exp.page), "weights": v.weights, "share": v.share / sum(exp.shares)}
        row.update(_metrics_row(pv_now[pv_now["variant"] == v.name], imps[imps["variant"] == v.name]))
        row["errors"] = errors[v.name]
        n_req = row["errors"] + int((imps["variant"] == v.name).sum())
        row["error_rate"] = row["errors"] / n_req if n_req else 0.0
        variants.append(row)
    control = variants[0]
    for row in variants[1:]:
        breaches = []
        g = exp.guardrails
        if (row["latency_p99_ms"] and control["latency_p99_ms"]
                and row["latency_p99_ms"] > g.max_latency_ratio * control["latency_p99_ms"]):
            breaches.append(f"p99 latency {row['latency_p99_ms']:.1f} ms > {g.max_latency_ratio}× the control's "
                            f"{control['latency_p99_ms']:.1f} ms")
        if row["empty_answers"] > max(g.max_empty_rate, control["empty_answers"]):
            breaches.append(f"{row['empty_answers']:.1%} empty answers (at most {g.max_empty_rate:.1%})")
        if row["error_rate"] > max(g.max_error_rate, control["error_rate"]):
            breaches.append(f"{row['error_rate']:.1%} of requests failed ({row['errors']:,} server errors; at most "
                            f"{g.max_error_rate:.1%})")
        row["guardrail_breaches"] = breaches
    control["guardrail_breaches"] = []

    # the sequential test: one look per look_seconds from the start, each on what was known then
    alpha = exp.alpha / (len(names) - 1)
    looks_at = list(np.arange(exp.started_at + exp.look_seconds, end, exp.look_seconds)) + [end]
    tests = {v.name: {"msprt": None, "tau2": None} for v in exp.variants[1:]}
    looks = []
    for t in looks_at:
        pv = _per_visitor(imps, hits, t)
        n, d = _numerator(pv, exp.primary_metric)
        var_of = pv["variant"].to_numpy()
        lin = np.zeros(len(pv))
        sizes = {}
        for name in names:
            m = var_of == name
            lin[m] = _linearised(n[m], d[m])
            sizes[name] = int(m.sum())
        x = pv.index.map(pre).fillna(0.0).to_numpy(np.float64) if len(pre) else np.zeros(len(pv))
        adj, theta = cuped(lin, x) if len(pv) > 1 else (lin, 0.0)
        look = {"at": float(t), "day": float((t - exp.started_at) / 86_400.0), "visitors": sizes,
                "metric": {}, "cuped_theta": theta, "tests": {}}
        for name in names:
            m = var_of == name
            look["metric"][name] = float(lin[m].mean()) if m.any() else None
        c = var_of == names[0]
        for name in names[1:]:
            m = var_of == name
            st = tests[name]
            ready = c.sum() >= exp.min_visitors and m.sum() >= exp.min_visitors
            if not ready:
                look["tests"][name] = None
                continue
            diff = float(adj[m].mean() - adj[c].mean())
            var = float(adj[m].var(ddof=1) / m.sum() + adj[c].var(ddof=1) / c.sum())
            raw_var = float(lin[m].var(ddof=1) / m.sum() + lin[c].var(ddof=1) / c.sum())
            if st["msprt"] is None:
                base = abs(float(lin[c].mean()))
                tau2 = exp.tau2 or ((exp.mde * base) ** 2 if base > 0 else max(raw_var, 1e-12))
                st["msprt"], st["tau2"] = MSPRT(tau2, alpha), tau2
            p = st["msprt"].look(diff, var) if var > 0 else st["msprt"].p_value
            lo, hi = st["msprt"].interval(diff, var) if var > 0 else (None, None)   # no spread yet: unbounded
            look["tests"][name] = {"difference": diff, "low": None if lo is None else float(lo),
                                   "high": None if hi is None else float(hi), "p_value": p,
                                   "variance": var, "variance_without_cuped": raw_var}
        looks.append(look)

    results = []
    last = looks[-1] if looks else None
    for name in names[1:]:
        st = tests[name]
        t = last["tests"].get(name) if last else None
        base = last["metric"].get(names[0]) if last else None
        row = {"variant": name, "against": names[0], "metric": exp.primary_metric, "alpha": alpha,
               "tau2": st["tau2"], "looks": sum(1 for lk in looks if lk["tests"].get(name) is not None)}
        if t is None:
            row.update({"decision": "waiting", "why": f"fewer than {exp.min_visitors} visitors in a variant"})
        else:
            sig = st["msprt"].significant
            rel = (t["difference"] / base) if base else None
            row.update({"difference": t["difference"], "relative": rel, "low": t["low"], "high": t["high"],
                        "p_value": st["msprt"].p_value,
                        "cuped_variance_reduction": (1 - t["variance"] / t["variance_without_cuped"]
                                                     if t["variance_without_cuped"] > 0 else 0.0),
                        "decision": ("better" if t["difference"] > 0 else "worse") if sig else "no difference yet"})
        results.append(row)
    return {"experiment": exp.model_dump(), "as_of": end, "running": exp.running, "variants": variants,
            "tests": results, "looks": looks, "counts": counts}


def format_report(rep: dict[str, Any]) -> str:
    """The report as plain-text tables (``shoprec experiment report``)."""
    exp = rep["experiment"]
    lines = [f"experiment {exp['id']} on page {exp['page']}: primary metric {exp['primary_metric']}, "
             f"{'running' if rep['running'] else 'stopped'}; as of {time.strftime('%Y-%m-%d %H:%M', time.gmtime(rep['as_of']))} UTC",
             "", f"{'variant':<16}{'scenario':<16}{'visitors':>9}{'impr.':>9}{'CTR':>8}{'cart':>8}{'conv.':>8}"
                 f"{'rev/imp':>9}{'empty':>7}{'errors':>7}{'p99 ms':>8}"]
    for v in rep["variants"]:
        p99 = f"{v['latency_p99_ms']:.1f}" if v["latency_p99_ms"] is not None else "-"
        lines.append(f"{v['name']:<16}{v['scenario']:<16}{v['visitors']:>9,}{v['impressions']:>9,}{v['ctr']:>8.2%}"
                     f"{v['cart_rate']:>8.2%}{v['conversion']:>8.2%}{v['revenue_per_impression']:>9.3f}"
                     f"{v['empty_answers']:>7.1%}{v.get('error_rate', 0.0):>7.1%}{p99:>8}")
    lines.append("")
    for t in rep["tests"]:
        if t["decision"] == "waiting":
            lines.append(f"{t['variant']} vs {t['against']}: waiting ({t['why']})")
            continue
        rel = f" ({t['relative']:+.1%})" if t.get("relative") is not None else ""
        iv = ("unbounded" if t["low"] is None else f"[{t['low']:+.5f}, {t['high']:+.5f}]")
        lines.append(f"{t['variant']} vs {t['against']}: {t['metric']} {t['difference']:+.5f}{rel}, always-valid "
                     f"{1 - t['alpha']:.0%} interval {iv}, p = {t['p_value']:.4f} "
                     f"after {t['looks']} looks; CUPED variance reduction {t['cuped_variance_reduction']:.1%}: "
                     f"{t['decision']}")
    for v in rep["variants"]:
        for b in v.get("guardrail_breaches") or []:
            lines.append(f"guardrail breached by {v['name']}: {b}")
    c = rep["counts"]
    skipped = {k: c[k] for k in ("unknown_variant", "no_visitor", "impressions_of_reassigned_visitors") if c.get(k)}
    lines.append(f"{c['impressions_counted']:,} of {c['impressions_logged']:,} logged impressions counted"
                 + (f"; left out: {skipped}" if skipped else ""))
    return "\n".join(lines)

