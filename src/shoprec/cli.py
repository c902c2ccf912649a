"""The ``shoprec`` command line: evaluate strategies on a dataset, run the demo shop."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from rich import box
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="shoprec: recommendations for every page of an online shop.")
# piped output (CI logs, files) gets a width that fits the metric tables instead of Rich's 80
console = Console() if sys.stdout.isatty() else Console(width=140)

DEFAULT_METRICS = ("recall", "ndcg", "hr", "mrr")


def _parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise typer.BadParameter(f"--k takes comma-separated integers like 10,20, not {text!r}") from None
    if not ks or min(ks) < 1:
        raise typer.BadParameter("--k needs at least one positive integer")
    return ks


def _parse_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """``item_knn.neighbours=100`` → {"item_knn": {"neighbours": 100}} (values parsed as JSON if they can be)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise typer.BadParameter(f"--param takes STRATEGY.FIELD=VALUE, not {item!r}")
        key, value = item.split("=", 1)
        strat, fld = key.split(".", 1)
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.setdefault(strat, {})[fld] = parsed
    return out


def results_table(results, ks, title: str) -> Table:
    """Strategies × metrics: recall and NDCG at every k; HR, MRR, coverage, novelty at the largest."""
    k = max(ks)
    cols = [f"{m}@{kk}" for kk in ks for m in ("recall", "ndcg")] + [f"hr@{k}", f"mrr@{k}"]
    extra = [f"coverage@{k}", f"novelty@{k}"]
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("strategy", style="bold")
    for c in cols + extra:
        table.add_column(c.replace("coverage", "cov").replace("novelty", "nov"), justify="right")
    for c in ("fit s", "rank s", "GiB"):
        table.add_column(c, justify="right")
    best = {c: max((r.metrics.get(c, float("nan")) for r in results),
                   key=lambda v: -math.inf if math.isnan(v) else v) for c in cols}
    for r in results:
        cells = []
        for c in cols + extra:
            v = r.metrics.get(c, float("nan"))
            s = "–" if math.isnan(v) else (f"{v:.2f}" if c.startswith("novelty") else f"{v:.4f}")
            cells.append(f"[green]{s}[/]" if c in best and v == best[c] else s)
        table.add_row(r.strategy, *cells, f"{r.fit_seconds:.1f}", f"{r.recommend_seconds:.1f}",
                      f"{r.peak_rss_gib:.2f}")
    return table


def result_line(res, ks) -> str:
    """One line per finished strategy: headline metrics at the largest k, time and memory."""
    k = max(ks)
    return (f"  {res.strategy}: " + ", ".join(f"{m}@{k} {res.metrics[f'{m}@{k}']:.4f}"
                                             for m in ("recall", "ndcg", "hr")) +
            f" (fit {res.fit_seconds:.1f} s, rank {res.recommend_seconds:.1f} s, "
            f"peak {res.peak_rss_gib:.2f} GiB)")


def run_evaluation(loaded, *, strategies: list[str], ks: tuple[int, ...], split: str,
                   params: dict[str, dict[str, Any]], sequential: bool, json_path: Optional[Path],
                   title: str) -> list:
    from .evaluation.evaluator import evaluate
    from .evaluation.tasks import make_task

    with console.status("building the evaluation task…"):
        task = make_task(loaded, split, sequential=sequential)
    console.print(f"[bold]{task.name}[/]: {task.train.n_users:,} users, {task.train.n_items:,} items, "
                  f"{task.train.n_events:,} training events, {task.n_queries:,} test queries")
    console.print(f"protocol: {task.protocol}")
    unknown = set(params) - set(strategies)
    if unknown:
        raise typer.BadParameter(f"--param names strategies not in --strategies: {sorted(unknown)}")
    with console.status("") as status:
        results = evaluate(
            [(name, name, params.get(name, {})) for name in strategies], task, ks,
            on_start=lambda label: status.update(f"fitting and ranking with [bold]{label}[/]…"),
            on_result=lambda res: console.print(result_line(res, ks)))
    console.print(results_table(results, ks, title))
    if json_path is not None:
        payload = {"task": task.name, "protocol": task.protocol, "n_queries": task.n_queries,
                   "ks": list(ks), "results": {r.strategy: r.as_dict() for r in results}}
        json_path.write_text(json.dumps(payload, indent=2, default=float))
        console.print(f"wrote {json_path}")
    return results


@app.command()
def evaluate(
    data: Annotated[str, typer.Option(help="FORMAT:PATH, e.g. lightgcn:../shared/data/yelp2018 "
                                           "(see `shoprec formats`).")],
    strategies: Annotated[str, typer.Option(help="Comma-separated strategy names (see `shoprec strategies`).")]
    = "popularity,item_knn,als",
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "10,20",
    split: Annotated[str, typer.Option(help="auto, given, loo, temporal or basket.")] = "auto",
    param: Annotated[Optional[list[str]], typer.Option(help="STRATEGY.FIELD=VALUE, repeatable.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the numbers to this file.")] = None,
    strict: Annotated[bool, typer.Option(help="Any skipped input row is an error.")] = False,
) -> None:
    """Fit each strategy on a dataset and print full-ranking metrics, fit time and peak memory."""
    from .data.adapters import load
    from .exceptions import ShoprecError

    ks = _parse_ks(k)
    names = [s.strip() for s in strategies.split(",") if s.strip()]
    params = _parse_params(param or [])
    try:
        with console.status(f"loading {data}…"):
            loaded = load(data, strict=strict)
        _print_report(loaded)
        fmt = data.split(":", 1)[0]
        run_evaluation(loaded, strategies=names, ks=ks, split=split, params=params,
                       sequential=fmt in ("sasrec",), json_path=json_out, title=data)
    except (ShoprecError, OSError, ValueError) as e:  # bad input: a message, not a traceback
        console.print(f"[red]error:[/] {e}", highlight=False)
        raise typer.Exit(2) from None


def _print_report(loaded, examples: int | None = 3) -> None:
    if isinstance(loaded, tuple) and len(loaded) == 2 and hasattr(loaded[1], "summary"):
        console.print(loaded[1].summary(examples), highlight=False)


@app.command()
def demo(
    serve: Annotated[bool, typer.Option("--serve/--no-serve",
                                        help="Start the service with the storefront after training.")] = True,
    evaluate: Annotated[bool, typer.Option("--evaluate/--no-evaluate",
                                           help="First evaluate the strategies on a temporal split.")] = True,
    home: Annotated[Path, typer.Option("--dir", help="Where the demo keeps its models and event store.")] = Path(
        "shoprec-demo"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    retrain: Annotated[bool, typer.Option("--retrain", help="Train again even if the demo has a model.")] = False,
    fast: Annotated[bool, typer.Option("--fast", help="Leave out the slow neural strategy (SASRec).")] = False,
    k: Annotated[str, typer.Option("--k", help="Cut-offs of the evaluation.")] = "10,20",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the evaluation as JSON.")] = None,
) -> None:
    """The embedded demo shop (Online Retail slice, CC BY 4.0): evaluate the strategies, train every
    scenario, answer one request per page, then serve the API and a storefront at http://HOST:PORT/."""
    from .data.adapters import load_online_retail
    from .demo_data import DEMO_CREDIT, DEMO_PATH

    console.print(f"[bold]shoprec demo[/] — {DEMO_CREDIT}")
    data, report = load_online_retail(DEMO_PATH)
    _print_report((data, report), examples=1)
    if evaluate:
        run_evaluation((data, report), strategies=["popularity", "item_knn", "ease", "als", "linear_filter",
                                                   "sequential", "session_knn"],
                       ks=_parse_ks(k), split="temporal", params={"item_knn": {"similarity": "covisit"}},
                       sequential=False, json_path=json_out,
                       title="demo shop: next purchases after the temporal cut (known customers)")
    from .scenarios import Recommender
    from .service.app import resolve_model

    models = home / "models"
    try:
        path = None if retrain else resolve_model(models)
    except Exception:  # noqa: BLE001 - no usable model yet: train one
        path = None
    if path is None:
        console.print("\n[bold]Training every scenario[/] on the demo shop:")
        path = _train(data, models, _demo_scenarios(fast), store=None)
    else:
        console.print(f"\nusing the trained model {path} (--retrain trains again)")
    rec = Recommender.load(path)
    console.print("\n[bold]Every page of the demo shop[/]:")
    for scenario, ctx in _demo_requests(data):
        print_response(rec.recommend(scenario, ctx), ctx)
    if serve:
        _serve(models, store=f"sqlite:///{(home / 'events.db').resolve()}", host=host, port=port, workers=1,
               api_key=None, public_key=None, state_bus=None, key_file=home / "api_key")


def _demo_scenarios(fast: bool):
    from .scenarios import default_scenarios

    out = []
    for cfg in default_scenarios().values():
        if fast:
            cfg = cfg.with_overrides(strategies=[s for s in cfg.strategies if s.name != "sasrec"])
        out.append(cfg)
    return out


def _train(data, models: Path, scenarios, store):
    from .service.training import train as train_model

    def progress(name: str, sec: float) -> None:
        console.print(f"  fitted {name} in {sec:.1f} s")

    path = train_model(data, models, scenarios=scenarios, store=store, progress=progress)
    console.print(f"wrote model {path.name} to {models} (CURRENT)")
    return path


def _serve(models: Path, *, store: str, host: str, port: int, workers: int, api_key: str | None,
           public_key: str | None, state_bus: str | None, key_file: Path | None = None,
           read_requires_key: bool = False, exploration: float = 0.0) -> None:
    import os

    import uvicorn

    from .service.app import create_app
    from .service.settings import ServiceSettings, new_api_key

    if api_key is None:
        api_key = os.environ.get("SHOPREC_API_KEY")
    if api_key is None and key_file is not None and key_file.is_file():
        api_key = key_file.read_text().strip()
    if api_key is None:
        api_key = new_api_key()
        if key_file is not None:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(api_key + "\n")
            key_file.chmod(0o600)
    public_key = public_key or os.environ.get("SHOPREC_PUBLIC_KEY") or f"pub-{new_api_key()[:16]}"
    settings = ServiceSettings.from_env(model=models, store=store, api_key=api_key, public_key=public_key,
                                        state_bus=state_bus, read_requires_key=read_requires_key or None,
                                        exploration=exploration or None)
    console.print(f"\n[bold]serving[/] http://{host}:{port}/  (storefront)   http://{host}:{port}/docs  (API)")
    console.print(f"  API key (write, admin): {api_key}" + (f"  (saved in {key_file})" if key_file else ""))
    console.print(f"  public key (events, read): {public_key}")
    console.print(f"  event store: {settings.store}   Ctrl-C stops")
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
    else:
        for name, value in settings.model_dump(mode="json").items():
            if value is not None:
                os.environ[f"SHOPREC_{name.upper()}"] = str(value)
        uvicorn.run("shoprec.service.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=False)


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Models folder: the model goes to OUT/<version>, "
                                                    "OUT/CURRENT names it.")] = Path("models"),
    data: Annotated[Optional[str], typer.Option("--data", help="FORMAT:PATH (default: the demo shop).")] = None,
    store: Annotated[Optional[str], typer.Option("--store", help="Also train on what this event store holds "
                                                                 "(sqlite:///path or postgresql://…).")] = None,
    scenarios: Annotated[Optional[str], typer.Option("--scenarios", help="Comma-separated scenario names or "
                                                                         "TOML files (default: all shipped).")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="Leave out SASRec.")] = False,
) -> None:
    """Fit every scenario and write a versioned model (manifest + arrays, no pickle) for `shoprec serve`."""
    from .exceptions import ShoprecError
    from .scenarios import load_scenario

    try:
        shop = _load_shop(data)
        if scenarios:
            cfgs = [load_scenario(s.strip()) for s in scenarios.split(",") if s.strip()]
            if fast:
                cfgs = [c.with_overrides(strategies=[s for s in c.strategies if s.name != "sasrec"]) for c in cfgs]
        else:
            cfgs = _demo_scenarios(fast)
        st = None
        if store:
            from .service.store import open_store

            st = open_store(store)
        try:
            _train(shop, out, cfgs, st)
        finally:
            if st is not None:
                st.close()
    except ShoprecError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None


@app.command()
def serve(
    model: Annotated[Path, typer.Option("--model", help="A models folder (follows its CURRENT) or one model.")] = Path(
        "models"),
    store: Annotated[str, typer.Option("--store", help="Event store URL.")] = "sqlite:///shoprec-data/events.db",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (more than one needs --state-bus).")] = 1,
    state_bus: Annotated[Optional[str], typer.Option("--state-bus", help="redis://host:6379/0 to share the "
                                                                         "online state between workers.")] = None,
    api_key: Annotated[Optional[str], typer.Option("--api-key", envvar="SHOPREC_API_KEY",
                                                   help="Key for write and admin endpoints (default: made up "
                                                        "and printed).")] = None,
    public_key: Annotated[Optional[str], typer.Option("--public-key", envvar="SHOPREC_PUBLIC_KEY",
                                                      help="Key that may only post events and read.")] = None,
    read_requires_key: Annotated[bool, typer.Option("--read-requires-key", help="Reads need a key too.")] = False,
    exploration: Annotated[float, typer.Option(help="Share of responses shown in random order (logged "
                                                    "propensities).")] = 0.0,
) -> None:
    """Serve recommendations over HTTP (FastAPI; OpenAPI docs at /docs) with a storefront at /."""
    if workers > 1 and not state_bus:
        console.print("[red]--workers > 1 needs --state-bus redis://… so every worker sees every event[/]")
        raise typer.Exit(2)
    _serve(model, store=store, host=host, port=port, workers=workers, api_key=api_key, public_key=public_key,
           state_bus=state_bus, read_requires_key=read_requires_key, exploration=exploration)


def _demo_requests(data) -> list[tuple[str, dict]]:
    """Typical page requests on the demo shop, chosen from its data (deterministic)."""
    ev = data.events
    counts = ev.groupby("user_idx").size()
    user = data.users.to_external(np.array([int(counts.index[np.argsort(-counts.to_numpy(), kind="stable")[10]])]))[0]
    pop = np.argsort(-data.item_popularity(), kind="stable")
    top = [str(x) for x in data.items.to_external(pop[:5])]
    return [
        ("home", {"user_id": str(user)}),
        ("first_visit", {"country": "Germany"}),
        ("item_page", {"current_item": top[0], "session": [top[1], top[0]]}),
        ("cart", {"basket": top[:2]}),
        ("checkout", {"basket": top[:3]}),
        ("post_purchase", {"user_id": str(user)}),
        ("search", {"query": "christmas lights", "user_id": str(user)}),
    ]


def print_response(resp, ctx: dict) -> None:
    table = Table(title=f"{resp.scenario}  {json.dumps(ctx)}", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("title")
    table.add_column("why")
    for i, it in enumerate(resp.items, 1):
        table.add_row(str(i), it.item_id, (it.title or "")[:40], it.reason)
    console.print(table)
    for note in resp.notes:
        console.print(f"  [dim]note: {note}[/]")


@app.command()
def recommend(
    scenario: Annotated[str, typer.Argument(help="Scenario name (a shipped default) or a scenario TOML file.")],
    context: Annotated[str, typer.Option("--context", "-c", help="The request as JSON.")] = "{}",
    data: Annotated[Optional[str], typer.Option("--data", help="FORMAT:PATH (default: the demo shop).")] = None,
) -> None:
    """Fit one scenario and answer one request, with a reason for every item."""
    from .exceptions import ShoprecError
    from .scenarios import Recommender, RequestContext

    try:
        ctx = json.loads(context)
    except json.JSONDecodeError as e:
        console.print(f"[red]--context is not valid JSON: {e}[/]")
        raise typer.Exit(2) from None
    try:
        RequestContext.parse(ctx)
        shop = _load_shop(data)
        rec = Recommender([scenario]).fit(shop)
        name = next(iter(rec.configs))
        print_response(rec.recommend(name, ctx), ctx)
    except ShoprecError as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None


def _load_shop(spec: str | None):
    from .data.adapters import load, load_online_retail
    from .demo_data import DEMO_PATH

    if spec is None:
        return load_online_retail(DEMO_PATH)[0]
    loaded = load(spec)
    return loaded[0] if isinstance(loaded, tuple) else loaded


@app.command("scenarios")
def list_scenarios() -> None:
    """List the shipped scenarios: strategies, fusion, rules."""
    from .scenarios import default_scenarios

    table = Table(title="scenarios (src/shoprec/scenarios/defaults/*.toml)")
    for col in ("name", "K", "strategies (weight)", "fusion", "rules", "diversity"):
        table.add_column(col)
    for name, cfg in default_scenarios().items():
        rules = cfg.rules.model_dump(exclude_defaults=True)
        table.add_row(name, str(cfg.k), ", ".join(f"{s.display} ({s.weight:g})" for s in cfg.strategies),
                      cfg.fusion.method, ", ".join(f"{k}={v}" for k, v in rules.items()) or "defaults",
                      cfg.diversity.method)
    console.print(table)


@app.command()
def report(
    results: Annotated[Path, typer.Option("--results", help="Folder of benchmark JSON results.")] = Path("benchmarks/results"),
    out: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
) -> None:
    """Write an HTML report with plots of the benchmark results."""
    from .report import build_report

    try:
        path = build_report(results, out)
    except (FileNotFoundError, ValueError) as e:
        console.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None
    console.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB); open it in a browser")


@app.command("strategies")
def list_strategies() -> None:
    """List the strategies and their parameters."""
    from .strategies import STRATEGIES

    table = Table(title="strategies")
    table.add_column("name", style="bold")
    table.add_column("class")
    table.add_column("parameters (default)")
    for name, cls in sorted(STRATEGIES.items()):
        fields = ", ".join(f"{f}={v.default!r}" for f, v in cls.Config.model_fields.items())
        table.add_row(name, cls.__name__, fields)
    console.print(table)


@app.command()
def formats() -> None:
    """List the dataset formats usable as FORMAT:PATH."""
    from .data.adapters import ADAPTERS

    table = Table(title="dataset formats")
    table.add_column("format", style="bold")
    table.add_column("what")
    for name, fn in sorted(ADAPTERS.items()):
        doc = (fn.__doc__ or "").strip().splitlines()
        table.add_row(name, doc[0] if doc else "")
    console.print(table)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
