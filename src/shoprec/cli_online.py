"""``shoprec ope``: the online-learning commands of the command line (registered on ``cli.app``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .cli import _error, _plain, app, console


@app.command()
def ope(
    logs: Annotated[str, typer.Option("--logs", help="Logged feedback: open-bandit:PATH (an Open Bandit "
                                      "Dataset CSV), or a CSV / Parquet / JSON Lines table with the action, "
                                      "reward and propensity of every logged choice.")],
    policy: Annotated[str, typer.Option("--policy", help="The policy to evaluate: uniform, arm:NAME, "
                                        "weights:NAME=P,NAME=P,…, thompson:PRIOR.json[#KEY], or "
                                        "scenario:PATH.toml (its learning [policy], fitted on the first "
                                        "--fit-fraction of the answers, evaluated on the rest).")],
    estimators: Annotated[Optional[str], typer.Option("--estimators", help="Comma-separated, of ips, snips, dm, "
                                                      "dr, switch-dr, iips, rips, sips (default: the first five, "
                                                      "plus the slate ones when rows form lists).")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=0, help="Bootstrap resamples for the intervals.")] = 1000,
    level: Annotated[float, typer.Option("--level", min=0.5, max=0.999, help="Interval coverage.")] = 0.95,
    tau: Annotated[float, typer.Option("--tau", help="Switch-DR: the largest weight still corrected.")] = 100.0,
    action: Annotated[str, typer.Option("--action", help="Column of the logged action.")] = "arm",
    reward: Annotated[str, typer.Option("--reward", help="Column of the reward.")] = "reward",
    propensity: Annotated[str, typer.Option("--propensity", help="Column of the logging propensity.")] = "propensity",
    context: Annotated[Optional[str], typer.Option("--context", help="Comma-separated columns the reward "
                                                   "model reads (DM, DR).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    fit_fraction: Annotated[float, typer.Option("--fit-fraction", help="scenario:… policies: the share of the "
                                                "answers (oldest first) the policy learns from.")] = 0.5,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the estimates as JSON.")] = None,
) -> None:
    """Estimate what a policy would earn from logs another policy produced (off-policy evaluation)."""
    from .online.logs import read_feedback
    from .online.ope import evaluate_policy, target_policy

    try:
        table = read_feedback(logs, action=action, reward=reward, propensity=propensity,
                              context=[c.strip() for c in context.split(",")] if context else None)
        if policy.startswith("scenario:"):
            from .online.ope import scenario_target

            n_all = len(table.log)
            target, table = scenario_target(policy.removeprefix("scenario:"), table, fit_fraction)
            _plain(f"the policy learned from {n_all - len(table.log):,} answers; evaluated on the "
                   f"{len(table.log):,} after them")
        else:
            target = target_policy(policy, table, seed=seed)
        names = [e.strip() for e in estimators.split(",") if e.strip()] if estimators else None
        results = evaluate_policy(table, target, names, n_boot=n_boot, level=level, seed=seed, tau=tau)
    except (FileNotFoundError, ValueError) as e:
        _error(e)
        raise typer.Exit(2) from None
    log = table.log
    t = Table(title=f"{policy} on {logs}: {len(log):,} logged rows, {log.n_actions} actions, "
                    f"logged policy's own value {log.on_policy_value:.5g}")
    for col in ("estimator", "value", f"{level:.0%} interval", "units", "effective sample size", "max weight"):
        t.add_column(col, justify="left" if col == "estimator" else "right")
    for r in results:
        t.add_row(r.estimator, f"{r.value:.5g}", f"{r.low:.5g} – {r.high:.5g}" if n_boot else "–",
                  f"{r.n_units:,}", f"{r.ess:,.0f}", f"{r.max_weight:,.3g}")
    console.print(t)
    if results and results[0].ess < 0.01 * len(log):
        _plain(f"note: the effective sample size is {results[0].ess:,.0f} of {len(log):,} rows: the two policies "
               "differ a lot, so the weighting estimators are noisy; trust the DM and the intervals.", "yellow")
    if json_out is not None:
        payload = {"logs": logs, "policy": policy, "rows": len(log), "n_actions": log.n_actions,
                   "logged_value": log.on_policy_value, "estimates": [r.as_dict() for r in results]}
        json_out.write_text(json.dumps(payload, indent=1))
        _plain(f"wrote {json_out}")


@app.command()
def rewards(
    store: Annotated[Optional[str], typer.Option("--store", help="A live event store URL (sqlite:PATH, "
                                                 "postgresql://…): its impressions and events.")] = None,
    impressions: Annotated[Optional[Path], typer.Option("--impressions", help="Logged impressions, JSON Lines "
                                                        "(one answer per line).")] = None,
    events: Annotated[Optional[Path], typer.Option("--events", help="Events: CSV, Parquet or JSON Lines with "
                                                   "item_id, behaviour, timestamp (+ request_id, position, "
                                                   "session_id, user_id, price, quantity).")] = None,
    scenario: Annotated[Optional[str], typer.Option("--scenario", help="Only this scenario's answers; its "
                                                    "[reward] weights apply (a shipped name or a TOML path).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Write one row per answer (arm, reward, "
                                                "propensity, …): what `shoprec ope --logs` reads.")] = None,
) -> None:
    """Join the answers the service showed to the clicks, carts and purchases that followed them."""
    from .online.logs import read_table
    from .online.rewards import from_store, join_rewards, read_impressions

    try:
        cfg = None
        name = None
        if scenario is not None:
            from .scenarios.config import load_scenario

            sc = load_scenario(scenario)
            cfg, name = sc.reward, sc.name
        if store is not None:
            from .service.store import open_store

            with open_store(store) as st:
                joined = from_store(st, cfg, scenario=name)
        elif impressions is not None and events is not None:
            joined = join_rewards(read_impressions(impressions), read_table(events), cfg, scenario=name)
        else:
            _error("give --store URL, or --impressions FILE and --events FILE")
            raise typer.Exit(2)
    except (FileNotFoundError, ValueError) as e:
        _error(e)
        raise typer.Exit(2) from None
    _plain(joined.summary())
    req = joined.requests
    if len(req) and req["arm"].notna().any():
        t = Table(title="reward per arm")
        for col in ("scenario", "arm", "answers", "mean reward", "rewarded share"):
            t.add_column(col, justify="left" if col in ("scenario", "arm") else "right")
        g = req.groupby(["scenario", "arm"], dropna=False)["reward"]
        for (sc_name, arm), s in g:
            t.add_row(str(sc_name), str(arm), f"{len(s):,}", f"{s.mean():.4f}", f"{(s > 0).mean():.1%}")
        console.print(t)
    if out is not None:
        frame = joined.feedback_frame(final_only=False)
        if out.suffix.lower() == ".parquet":
            frame.to_parquet(out, index=False)
        else:
            frame.to_csv(out, index=False)
        _plain(f"wrote {len(frame):,} answers to {out}")


policy_app = typer.Typer(no_args_is_help=True, help="The learning mix policies: what they have learned.")
app.add_typer(policy_app, name="policy")


@policy_app.command("show")
def policy_show(
    scenario: Annotated[str, typer.Argument(help="The scenario whose [policy] to show.")],
    server: Annotated[Optional[str], typer.Option("--server", help="A running service (http://HOST:PORT): "
                                                  "its live policy, through GET /v1/policies/SCENARIO.")] = None,
    api_key: Annotated[Optional[str], typer.Option("--api-key", envvar="SHOPREC_API_KEY",
                                                   help="The service's API key (with --server).")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", help="A trained model (folder), with --store: "
                                                  "the policy rebuilt from the store's logs, offline.")] = None,
    store: Annotated[Optional[str], typer.Option("--store", help="The event store the service logs to.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the JSON instead of a table.")] = False,
) -> None:
    """Arms, pulls, rewards and posterior means of a scenario's learning mix policy."""
    if server is not None:
        import httpx

        try:
            r = httpx.get(f"{server.rstrip('/')}/v1/policies/{scenario}", headers={"X-API-Key": api_key or ""},
                          timeout=30)
        except httpx.HTTPError as e:
            _error(f"cannot reach {server}: {e}")
            raise typer.Exit(2) from None
        if r.status_code != 200:
            err = r.json().get("error", {}) if r.headers.get("content-type", "").startswith("application/json") else {}
            _error(f"{server}: {r.status_code} {err.get('message', r.text[:200])}"
                   + (f" ({err['hint']})" if err.get("hint") else ""))
            raise typer.Exit(2)
        body = r.json()
    elif model is not None and store is not None:
        from .online.learner import PolicyLearner
        from .scenarios import Recommender
        from .service.app import resolve_model
        from .service.store import open_store

        try:
            rec = Recommender.load(resolve_model(model))
        except (FileNotFoundError, ValueError) as e:
            _error(e)
            raise typer.Exit(2) from None
        pipe = rec.pipelines.get(scenario)
        if pipe is None or not getattr(pipe.policy_, "learns", False):
            have = sorted(s for s, p in rec.pipelines.items() if getattr(p.policy_, "learns", False))
            _error(f"{model}: scenario {scenario!r} has no learning mix policy (scenarios with one: {have})")
            raise typer.Exit(2)
        learner = PolicyLearner(scenario, pipe.policy_, pipe.config.reward)
        with open_store(store) as st:
            learner.rebuild(st)
        probs = pipe.policy_.posterior_probabilities() if getattr(pipe.policy_, "context_free", False) else None
        body = learner.summary(probs)
    else:
        _error("give --server URL (a running service), or --model PATH and --store URL")
        raise typer.Exit(2)
    if json_out:
        console.print_json(json.dumps(body))
        return
    t = Table(title=f"{body['scenario']}: policy {body['policy']}")
    for col in ("arm", "pulls", "reward", "mean reward", "posterior mean", "probability now"):
        t.add_column(col, justify="left" if col == "arm" else "right")
    for a in body["arms"]:
        mean = a.get("mean_reward")
        t.add_row(a["arm"], f"{a['pulls']:,}", f"{a['reward']:.2f}", "–" if mean is None else f"{mean:.4f}",
                  f"{a['posterior_mean']:.4f}", f"{a['probability']:.3f}" if "probability" in a else "per request")
    console.print(t)
    c = body["counts"]
    _plain(f"{c['answers']:,} answers, {c['events_rewarded']:,} rewarded events ({c['by_request']:,} by request, "
           f"{c['by_session']:,} by session, {c['by_user']:,} by user); not attributed: {c['unknown_request']:,} "
           f"unknown requests, {c['not_shown']:,} items not shown, {c['outside_window']:,} outside the window, "
           f"{c['no_answer']:,} with no answer; {body['pending_answers']:,} answers inside the reward window")


@app.command()
def simulate(
    policies: Annotated[str, typer.Option("--policies", help="Comma-separated: fixed (one run per arm), shipped, "
                                          "uniform, thompson, linucb, lin_ts.")] = "fixed,shipped,uniform,thompson,linucb",
    impressions: Annotated[int, typer.Option("--impressions", min=100, help="Answers per policy.")] = 20_000,
    drift_at: Annotated[Optional[int], typer.Option("--drift-at", help="From this impression on, every visitor "
                                                    "also wants the 30 items trending ranks first.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 2,
    live: Annotated[bool, typer.Option("--live", help="The simulated clicks, carts and purchases flow back into "
                                       "the recommender's online state (trending, co-visitation) as they happen.")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the reward curves as JSON.")] = None,
) -> None:
    """Run mix policies against simulated customers of the demo shop (see shoprec.online.simulator)."""
    import numpy as np

    from . import progress
    from .data.adapters import load_online_retail
    from .demo_data import DEMO_PATH
    from .online.simulator import DEMO_ARMS, ShopSimulator, compare_policies, demo_world, policy_specs

    names = [p.strip() for p in policies.split(",") if p.strip()]
    known = {"fixed", "shipped", "static", "uniform", "thompson", "linucb", "lin_ts"}
    bad = [n for n in names if n not in known]
    if bad:
        _error(f"unknown policies {bad}; known: {sorted(known)}")
        raise typer.Exit(2)
    with progress.step("fitting the simulated home page on the demo shop"):
        rec, task, top = demo_world(load_online_retail(DEMO_PATH)[0])
    drift_items = top if drift_at is not None else None
    sim = ShopSimulator(rec, "home", task, seed=seed, live=live)
    specs = policy_specs(names, DEMO_ARMS)
    runs = []
    for label, spec in specs:
        with progress.step(f"simulating {label}"):
            runs += compare_policies(sim, [(label, spec)], impressions, drift_at=drift_at, drift_items=drift_items)
    fixed = [r for r in runs if r.policy.startswith("fixed")]
    best = max(fixed, key=lambda r: r.reward.sum()) if fixed else None
    t = Table(title=f"{impressions:,} simulated answers per policy, seed {seed}"
                    + (f", drift at {drift_at:,}" if drift_at is not None else ""))
    for col in ("policy", "reward / answer", "vs best fixed arm", "arm shares"):
        t.add_column(col, justify="left" if col in ("policy", "arm shares") else "right")
    for r in runs:
        shares = np.bincount(r.arm, minlength=len(r.arms)) / len(r.arm)
        t.add_row(r.policy, f"{r.reward.mean():.5f}",
                  f"{r.reward.sum() / best.reward.sum():.1%}" if best is not None else "–",
                  ", ".join(f"{a} {s:.0%}" for a, s in zip(r.arms, shares)))
    console.print(t)
    if json_out is not None:
        json_out.write_text(json.dumps({"seed": seed, "impressions": impressions, "drift_at": drift_at,
                                        "runs": [{"policy": r.policy, "arms": list(r.arms), **r.curve(1000)}
                                                 for r in runs]}, indent=1))
        _plain(f"wrote {json_out}")


# --------------------------------------------------------------------------- experiments
experiment_app = typer.Typer(no_args_is_help=True, help="A/B tests of a page's scenarios: start, report, stop.")
app.add_typer(experiment_app, name="experiment")

_SERVER = typer.Option("--server", help="The running service (http://HOST:PORT).")
_KEY = typer.Option("--api-key", envvar="SHOPREC_API_KEY", help="The service's API key.")


def _call(method: str, server: str, path: str, api_key: str | None, body=None) -> dict:
    import httpx

    try:
        r = httpx.request(method, f"{server.rstrip('/')}{path}", headers={"X-API-Key": api_key or ""}, json=body,
                          timeout=120)
    except httpx.HTTPError as e:
        _error(f"cannot reach {server}: {e}")
        raise typer.Exit(2) from None
    if r.status_code >= 300:
        err = r.json().get("error", {}) if r.headers.get("content-type", "").startswith("application/json") else {}
        _error(f"{server}: {r.status_code} {err.get('message', r.text[:300])}"
               + (f" ({err['hint']})" if err.get("hint") else ""))
        raise typer.Exit(2)
    return r.json()


@experiment_app.command("start")
def experiment_start(
    file: Annotated[Path, typer.Argument(help="The experiment (TOML or JSON): id, page, [[variants]] name, "
                                              "scenario, share; primary_metric, mde, alpha …")],
    server: Annotated[str, _SERVER] = "http://127.0.0.1:8000",
    api_key: Annotated[Optional[str], _KEY] = None,
) -> None:
    """Start an A/B test on a running service (its variants are scenarios of the served model)."""
    from .exceptions import ConfigError
    from .online.abtest import read_experiment

    try:
        exp = read_experiment(file)
    except ConfigError as e:
        _error(e)
        raise typer.Exit(2) from None
    got = _call("POST", server, "/v1/experiments", api_key, exp.model_dump(exclude={"started_at", "stopped_at"}))
    _plain(f"experiment {got['id']} started on page {got['page']}: "
           + ", ".join(f"{v['name']} ({v['scenario']}, share {v['share']:g})" for v in got["variants"]))


@experiment_app.command("list")
def experiment_list(server: Annotated[str, _SERVER] = "http://127.0.0.1:8000",
                    api_key: Annotated[Optional[str], _KEY] = None) -> None:
    """Every experiment of a running service."""
    t = Table(title="experiments")
    for col in ("id", "page", "variants", "metric", "state"):
        t.add_column(col)
    for e in _call("GET", server, "/v1/experiments", api_key)["experiments"]:
        t.add_row(e["id"], e["page"], ", ".join(f"{v['name']}={v['scenario']}" for v in e["variants"]),
                  e["primary_metric"], "stopped" if e["stopped_at"] else "running")
    console.print(t)


@experiment_app.command("report")
def experiment_report_cmd(
    exp_id: Annotated[str, typer.Argument(metavar="ID", help="The experiment's id.")],
    server: Annotated[Optional[str], typer.Option("--server", help="A running service (http://HOST:PORT).")] = None,
    api_key: Annotated[Optional[str], _KEY] = None,
    store: Annotated[Optional[str], typer.Option("--store", help="Or the event store the service logs to "
                                                 "(offline: the same report from its impressions and events).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the JSON (with the daily looks).")] = False,
) -> None:
    """Per variant CTR, cart rate, conversion, revenue per impression and guardrails, and the
    always-valid test (mSPRT with CUPED) of the primary metric."""
    from .online.abtest import Experiment, experiment_report, format_report

    if server is not None:
        rep = _call("GET", server, f"/v1/experiments/{exp_id}", api_key)
    elif store is not None:
        from .service.store import open_store

        with open_store(store) as st:
            found = [Experiment.model_validate(b) for k, b, _ in st.iter_documents("experiment") if k == exp_id]
            if not found:
                have = [k for k, _, _ in st.iter_documents("experiment")]
                _error(f"{store}: no experiment {exp_id!r} (it holds: {have or 'none'})")
                raise typer.Exit(2)
            imps = [r for b in st.iter_impressions() for r in b]
            events = [r for b in st.iter_events() for r in b]
        rep = experiment_report(found[0], imps, events)
    else:
        _error("give --server URL (a running service) or --store URL (its event store)")
        raise typer.Exit(2)
    if json_out:
        console.print_json(json.dumps(rep, default=str))
    else:
        _plain(format_report(rep))


@experiment_app.command("stop")
def experiment_stop(exp_id: Annotated[str, typer.Argument(metavar="ID")],
                    server: Annotated[str, _SERVER] = "http://127.0.0.1:8000",
                    api_key: Annotated[Optional[str], _KEY] = None) -> None:
    """Stop an A/B test: its page is answered by its own scenario again; the report stays."""
    got = _call("POST", server, f"/v1/experiments/{exp_id}/stop", api_key)
    _plain(f"experiment {got['id']} stopped")
