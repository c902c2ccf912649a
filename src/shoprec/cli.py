"""The ``shoprec`` command line: evaluate strategies on a dataset, run the demo shop."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import progress

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="shoprec: recommendations for every page of an online shop.")
# piped output (CI logs, files) gets a width that fits the metric tables instead of Rich's 80
console = Console() if sys.stdout.isatty() else Console(width=140)

DEFAULT_METRICS = ("recall", "ndcg", "hr", "mrr")
#: what the global options asked for (set by the callback for every call)
_OPTIONS = {"verbose": False}


def _error(message: object, prefix: str = "error: ") -> None:
    """Print an error as it is: never read as rich markup, so `pip install "shoprec[neural]"` keeps
    its extra and a path with brackets its brackets."""
    console.print(Text.assemble((prefix, "bold red"), str(message)), highlight=False)


def _plain(message: object, style: str = "") -> None:
    """Print text that comes from data or from the library (titles, notes, reports) as it is."""
    console.print(Text(str(message), style=style), highlight=False)


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
    """Strategies × metrics: recall and NDCG at every k; HR, MRR, AUC, coverage, novelty at the largest."""
    k = max(ks)
    cols = [f"{m}@{kk}" for kk in ks for m in ("recall", "ndcg")] + [f"hr@{k}", f"mrr@{k}", "auc"]
    extra = [f"coverage@{k}", f"novelty@{k}"]
    if any(f"exposure_gini@{k}" in r.metrics for r in results):   # the exposure audit (seller / brand / category)
        extra += [f"exposure_gini@{k}", f"small_group_share@{k}"]
    table = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("strategy", style="bold")
    for c in cols + extra:
        table.add_column(c.replace("coverage", "cov").replace("novelty", "nov").replace("exposure_gini", "exp gini")
                         .replace("small_group_share", "small grp"), justify="right")
    for c in ("fit s", "rank s", "GiB"):
        table.add_column(c, justify="right")
    best = {c: max((r.metrics.get(c, float("nan")) for r in results),
                   key=lambda v: -math.inf if math.isnan(v) else v) for c in cols}
    for r in results:
        cells = []
        for c in cols + extra:
            v = r.metrics.get(c, float("nan"))
            s = "–" if math.isnan(v) else (f"{v:.2f}" if c.startswith("novelty") else f"{v:.4f}")
            cells.append(Text(s, style="green" if c in best and v == best[c] else ""))
        table.add_row(Text(r.strategy), *cells, f"{r.fit_seconds:.1f}", f"{r.recommend_seconds:.1f}",
                      f"{r.peak_rss_gib:.2f}")
    return table


def result_line(res, ks) -> str:
    """One line per finished strategy: headline metrics at the largest k, time and memory."""
    k = max(ks)
    auc = res.metrics.get("auc", float("nan"))
    return (f"  {res.strategy}: " + ", ".join(f"{m}@{k} {res.metrics[f'{m}@{k}']:.4f}"
                                             for m in ("recall", "ndcg", "hr")) +
            ("" if math.isnan(auc) else f", auc {auc:.4f}") +
            f" (fit {res.fit_seconds:.1f} s, rank {res.recommend_seconds:.1f} s, "
            f"peak {res.peak_rss_gib:.2f} GiB)")


def evaluation_payload(task, ks, results, failures) -> dict:
    """What ``--json`` writes: the task, every finished strategy's numbers, every failure's error."""
    return {"task": task.name, "protocol": task.protocol, "n_queries": task.n_queries, "ks": list(ks),
            "results": {r.strategy: r.as_dict() for r in results},
            "failures": {f.strategy: f.as_dict() for f in failures}}


def run_evaluation(loaded, *, strategies: list[str], ks: tuple[int, ...], split: str,
                   params: dict[str, dict[str, Any]], sequential: bool, json_path: Optional[Path],
                   title: str, task=None, why: str | None = None, exposure_by: str | None = None):
    """Evaluate ``strategies`` on ``loaded`` (or on ``task`` when given) and print a line per strategy,
    then the table. A strategy that fails is reported (its name and error) and the others go on.
    Returns ``(results, failures, payload)``; ``payload`` is what ``--json`` holds."""
    from .evaluation.evaluator import evaluate
    from .evaluation.tasks import make_task

    if task is None:
        with progress.step("building the evaluation task"):
            task = make_task(loaded, split, sequential=sequential)
    if exposure_by:
        from .evaluation.evaluator import exposure_column

        task.meta["exposure_by"] = exposure_by
        exposure_column(task)                      # a column the catalogue lacks: a clear error now
    _plain(f"{task.name}: {task.train.n_users:,} users, {task.train.n_items:,} items, "
           f"{task.train.n_events:,} training events, {task.n_queries:,} test queries", style="bold")
    _plain(f"protocol: {task.protocol}")
    if why:
        _plain(f"strategies: {', '.join(strategies)} — {why}; choose others with --strategies")
    unknown = set(params) - set(strategies)
    if unknown:
        raise typer.BadParameter(f"--param names strategies not in --strategies: {sorted(unknown)}")
    failures: list = []

    def failed(f) -> None:
        failures.append(f)
        _error(f"{f.strategy} failed during {f.stage}: {f.error}", prefix="  ✗ ")

    results = evaluate(
        [(name, name, params.get(name, {})) for name in strategies], task, ks,
        on_result=lambda res: _plain(result_line(res, ks)), on_error=failed)
    done = [r for r in results if not r.failed]
    if done:
        console.print(results_table(done, ks, title))
    if failures:
        _error(f"{len(failures)} of {len(results)} strategies failed: "
               + "; ".join(f"{f.strategy} ({f.error_type})" for f in failures)
               + (" — the others' results are above" if done else ""))
    payload = evaluation_payload(task, ks, done, failures)
    if json_path is not None:
        json_path.write_text(json.dumps(payload, indent=2, default=float))
        _plain(f"wrote {json_path}" + (" (failures recorded under \"failures\")" if failures else ""))
    return done, failures, payload


def default_strategies(loaded, sequential: bool) -> tuple[list[str], dict[str, dict[str, Any]], str]:
    """The strategies worth trying first on data of this shape, their parameters, and why."""
    import importlib.util

    from .data import SessionCases, TrainTest

    data = loaded[0] if isinstance(loaded, tuple) else loaded
    if isinstance(data, TrainTest):
        return (["popularity", "item_knn", "ease", "als", "linear_filter"], {},
                "a user×item split without order: the strongest collaborative-filtering models on "
                "yelp2018 and amazon-book-kgat in BENCHMARKS.md (linear filter, EASE, ALS, item-kNN), "
                "popularity as the baseline")
    if isinstance(data, SessionCases):
        return (["session_knn", "sequential", "item_knn", "popularity"], {"item_knn": {"similarity": "covisit"}},
                "anonymous sessions, next item: session-kNN and the sequential model (the best on "
                "Diginetica in BENCHMARKS.md), co-visitation item-kNN and popularity as baselines")
    if sequential:
        names = ["sequential", "session_knn", "ease", "item_knn", "popularity"]
        why = ("ordered sequences per user, next item: the sequence models (sequential is the best "
               "measured on Amazon Beauty in BENCHMARKS.md, .0937 HR@10), EASE and item-kNN as CF baselines")
        if importlib.util.find_spec("torch") is not None:
            names.insert(1, "sasrec")
            why += "; sasrec (the transformer) takes minutes to fit"
        else:
            why += '; sasrec needs the `neural` extra (pip install "shoprec[neural]")'
        return names, {}, why
    ordered = getattr(data, "has_order", False)
    names = ["popularity", "item_knn", "ease", "als", "linear_filter"]
    why = "an event log of users × items: the strongest collaborative-filtering models in BENCHMARKS.md"
    if ordered:
        names += ["sequential", "session_knn"]
        why += ", and the sequence models since its events are ordered"
    return names, ({"item_knn": {"similarity": "covisit"}} if ordered else {}), why


@app.command()
def evaluate(
    data: Annotated[str, typer.Option(help="FORMAT:PATH, e.g. lightgcn:../shared/data/yelp2018 "
                                           "(see `shoprec formats`).")],
    strategies: Annotated[Optional[str], typer.Option(
        help="Comma-separated strategy names (see `shoprec strategies`); default: those that fit the "
             "data's shape (sequences, sessions or users × items), named with the reason.")] = None,
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "10,20",
    split: Annotated[str, typer.Option(help="auto, given, loo, temporal or basket.")] = "auto",
    param: Annotated[Optional[list[str]], typer.Option(help="STRATEGY.FIELD=VALUE, repeatable.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the numbers to this file.")] = None,
    strict: Annotated[bool, typer.Option(help="Any skipped input row is an error.")] = False,
    exposure_by: Annotated[Optional[str], typer.Option(
        "--exposure-by", help="Item column of the exposure audit (default: seller, brand or category, the "
                              "first the catalogue has).")] = None,
) -> None:
    """Fit each strategy on a dataset and print full-ranking metrics, fit time and peak memory.

    Recall, NDCG, HR and MRR at each K, AUC, coverage and novelty; where items have sellers, brands
    or categories, the exposure audit: the Gini of position-weighted exposure over the groups and the
    share reaching small or new groups (shoprec.evaluation.exposure). A strategy that fails is reported
    (its name and error) and the others still run; the exit code is then 1."""
    from .data.adapters import load
    from .exceptions import ShoprecError
    from .strategies import STRATEGIES

    ks = _parse_ks(k)
    names = [s.strip() for s in strategies.split(",") if s.strip()] if strategies else None
    params = _parse_params(param or [])
    unknown = [n for n in (names or []) if n not in STRATEGIES]
    if unknown:
        _error(f"unknown strategy {unknown[0]!r}; known: {', '.join(sorted(STRATEGIES))}")
        raise typer.Exit(2)
    if names is not None and set(params) - set(names):
        raise typer.BadParameter(f"--param names strategies not in --strategies: {sorted(set(params) - set(names))}")
    try:
        with progress.step(f"loading {data}"):
            loaded = load(data, strict=strict)
        _print_report(loaded)
        fmt = data.split(":", 1)[0]
        why = None
        if names is None:
            names, defaults, why = default_strategies(loaded, sequential=fmt in ("sasrec",))
            params = {**{n: p for n, p in defaults.items() if n in names}, **params}
        _, failures, _ = run_evaluation(loaded, strategies=names, ks=ks, split=split, params=params,
                                        sequential=fmt in ("sasrec",), json_path=json_out, title=data, why=why,
                                        exposure_by=exposure_by)
    except (ShoprecError, OSError, ValueError) as e:  # bad input: a message, not a traceback
        _error(e)
        raise typer.Exit(2) from None
    if failures:
        raise typer.Exit(1)


def _print_report(loaded, examples: int | None = 1, max_lines: int = 12) -> None:
    """The loader's report: counts of rows read, kept and skipped by reason, with an example per
    reason; a long report (many files, many reasons) is cut after ``max_lines`` lines unless -v."""
    if not (isinstance(loaded, tuple) and len(loaded) == 2 and hasattr(loaded[1], "summary")):
        return
    lines = loaded[1].summary(examples).splitlines()
    if len(lines) > max_lines and not _OPTIONS["verbose"]:
        hidden = len(lines) - max_lines
        lines = lines[:max_lines] + [f"  … {hidden} more line{'s' if hidden > 1 else ''} of the load report "
                                     "(`shoprec -v …` prints all of it)"]
    _plain("\n".join(lines))


#: what `shoprec demo` evaluates, and with which parameters
DEMO_STRATEGIES = ("popularity", "item_knn", "ease", "als", "linear_filter", "sequential", "session_knn")
DEMO_PARAMS = {"item_knn": {"similarity": "covisit"}}
DEMO_EVALUATION = "evaluation.json"


@app.command()
def demo(
    serve: Annotated[bool, typer.Option("--serve/--no-serve",
                                        help="Start the service with the storefront after training.")] = True,
    evaluate: Annotated[bool, typer.Option("--evaluate/--no-evaluate",
                                           help="First evaluate the strategies on a temporal split (a "
                                                "second run shows the stored evaluation).")] = True,
    home: Annotated[Path, typer.Option("--dir", help="Where the demo keeps its models, evaluation and event "
                                                     "store.")] = Path("shoprec-demo"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    retrain: Annotated[bool, typer.Option("--retrain", help="Train again even if the demo has a model.")] = False,
    reevaluate: Annotated[bool, typer.Option("--reevaluate", help="Evaluate again even if the demo stored an "
                                                                  "evaluation of the same data and settings.")]
    = False,
    fast: Annotated[bool, typer.Option("--fast", help="Leave out the slow neural strategy (SASRec).")] = False,
    scenarios: Annotated[Optional[str], typer.Option("--scenarios", help="Comma-separated scenario names or TOML "
                                                                         "files to train (default: all shipped).")]
    = None,
    strategies: Annotated[Optional[str], typer.Option("--strategies", help="Comma-separated strategies to "
                                                                           "evaluate (default: "
                                                                           + ",".join(DEMO_STRATEGIES) + ").")]
    = None,
    k: Annotated[str, typer.Option("--k", help="Cut-offs of the evaluation.")] = "10,20",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the evaluation as JSON.")] = None,
) -> None:
    """The embedded demo shop: evaluate, train every scenario, answer every page, serve.

    The shop is a slice of Online Retail (CC BY 4.0). After the evaluation and the training, one request
    per page is answered with reasons, then the API and a storefront are served at http://HOST:PORT/.
    A second run reuses what the first stored in --dir (the evaluation, if the data, strategies,
    split and K are the same; the model, if it was trained on the same data and scenarios) and serves
    within seconds; --reevaluate and --retrain compute them again."""
    from .data.adapters import load_online_retail
    from .demo_data import DEMO_CREDIT, DEMO_PATH
    from .exceptions import ShoprecError
    from .privacy import pseudonymize_data
    from .strategies import STRATEGIES

    names = [x.strip() for x in strategies.split(",") if x.strip()] if strategies else list(DEMO_STRATEGIES)
    bad = [n for n in names if n not in STRATEGIES]
    if bad:
        _error(f"unknown strategy {bad[0]!r}; known: {', '.join(sorted(STRATEGIES))}")
        raise typer.Exit(2)
    ks = _parse_ks(k)
    _plain(f"shoprec demo — {DEMO_CREDIT}", style="bold")
    try:
        cfgs = _scenario_configs(scenarios, fast)
        with progress.step("loading the demo shop"):
            data, report = load_online_retail(DEMO_PATH)
        _print_report((data, report), examples=1)
        pz = _demo_id_key(home)
        data = pseudonymize_data(data, pz)          # as the service stores them (shoprec.privacy)
        if evaluate:
            _demo_evaluation(data, report, home, names, ks, json_out, reevaluate)
        models = home / "models"
        path = None if retrain else _reusable_model(models, data, cfgs)
        if path is None:
            _plain("\nTraining every scenario on the demo shop:" if scenarios is None else
                   f"\nTraining {', '.join(c.name for c in cfgs)} on the demo shop:", style="bold")
            path = _train(data, models, cfgs, store=None, pseudonymizer=pz)
        from .scenarios import Recommender

        with progress.step(f"loading the model {path.name}"):
            rec = Recommender.load(path)
    except ShoprecError as e:
        _error(e)
        raise typer.Exit(2) from None
    _plain("\nEvery page of the demo shop:", style="bold")
    for scenario, ctx in _demo_requests(data):
        if scenario in rec.configs:
            print_response(rec.recommend(scenario, ctx), ctx)
    if serve:
        import os

        os.environ.setdefault("SHOPREC_REFIT_DATA", "demo")   # an erasure refits the demo's models
        _serve(models, store=f"sqlite:///{(home / 'events.db').resolve()}", host=host, port=port, workers=1,
               api_key=None, public_key=None, state_bus=None, key_file=home / "api_key")


def _demo_evaluation(data, report, home: Path, names: list[str], ks: tuple[int, ...], json_out: Optional[Path],
                     reevaluate: bool) -> None:
    """Evaluate the demo's strategies, or print the evaluation stored in ``home`` by an earlier run when
    it was computed on the same data with the same strategies, parameters, split, K and code."""
    from .evaluation.evaluator import EvalFailure, EvalResult

    title = "demo shop: next purchases after the temporal cut (known customers)"
    params = {n: DEMO_PARAMS[n] for n in names if n in DEMO_PARAMS}
    key = _evaluation_key(data, names, params, "temporal", ks)
    store = home / DEMO_EVALUATION
    stored = None if reevaluate else _read_json(store)
    if stored is not None and stored.get("key") == key:
        payload = stored["payload"]
        _plain(f"\nevaluation of {len(names)} strategies reused from {store} (computed {stored['created']} on the "
               "same data, strategies, split and K); --reevaluate computes it again", style="bold")
        _plain(f"{payload['task']}: {payload['n_queries']:,} test queries; protocol: {payload['protocol']}")
        results = [EvalResult(**r) for r in stored["results"]]
        if results:
            console.print(results_table(results, ks, title))
        for f in (EvalFailure(**f) for f in stored["failures"]):
            _error(f"{f.strategy} failed during {f.stage}: {f.error}", prefix="  ✗ ")
    else:
        if stored is not None and not reevaluate:
            _plain(f"\n{store} holds an evaluation of other data or settings: evaluating again", style="dim")
        results, failures, payload = run_evaluation(
            (data, report), strategies=names, ks=ks, split="temporal", params=params, sequential=False,
            json_path=None, title=title)
        from dataclasses import asdict
        from datetime import datetime, timezone

        home.mkdir(parents=True, exist_ok=True)
        record = {"key": key, "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  "payload": payload, "results": [asdict(r) for r in results],
                  "failures": [asdict(f) for f in failures]}
        tmp = store.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, default=float))
        tmp.replace(store)
    if json_out is not None:
        json_out.write_text(json.dumps(payload, indent=2, default=float))
        _plain(f"wrote {json_out}")


def _evaluation_key(data, names: list[str], params: dict, split: str, ks: tuple[int, ...]) -> dict:
    """What an evaluation depends on: the data (its fingerprint), the strategies with their parameters,
    the split, K, and the code (shoprec's version and a hash of the strategies' and evaluation's source)."""
    import hashlib

    from . import __version__
    from .scenarios.artifact import fingerprint

    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for folder in ("strategies", "evaluation"):
        for f in sorted((root / folder).rglob("*.py")):
            h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return {"data": fingerprint(data), "strategies": [[n, params.get(n, {})] for n in names], "split": split,
            "ks": list(ks), "shoprec": __version__, "code": h.hexdigest()[:16]}


def _read_json(path: Path) -> dict | None:
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return out if isinstance(out, dict) else None


def _reusable_model(models: Path, data, cfgs) -> Path | None:
    """The demo's current model, when it was trained on this data with these scenarios (each with the
    same strategies); None (and why, printed) when there is none or it differs."""
    from .scenarios.artifact import fingerprint, read_manifest
    from .service.app import resolve_model

    try:
        path = resolve_model(models)
        manifest = read_manifest(path)
    except Exception:  # noqa: BLE001 - no usable model yet: train one
        return None
    try:
        trained = {name: [s["name"] for s in e["config"]["strategies"]] for name, e in manifest["scenarios"].items()}
        same_data = manifest["data"]["fingerprint"] == fingerprint(data)
    except (KeyError, TypeError):  # a manifest layout this code does not know: keep the old behaviour
        trained, same_data = None, True
    wanted = {c.name: [s.name for s in c.strategies] for c in cfgs}
    if not same_data:
        _plain(f"\nthe model {path.name} was trained on other data: training again", style="dim")
        return None
    if trained is not None and trained != wanted:
        differ = sorted(n for n in set(trained) | set(wanted) if trained.get(n) != wanted.get(n))
        _plain(f"\nthe model {path.name} has other scenarios or strategies than this run asks for "
               f"({', '.join(differ)}): training again", style="dim")
        return None
    _plain(f"\nusing the trained model {path} (trained {manifest.get('created', '?')}; --retrain trains again)")
    return path


def _scenario_configs(scenarios: str | None, fast: bool):
    """The scenario configs named on the command line (default: every shipped one), without SASRec
    when ``fast``."""
    from .scenarios import default_scenarios, load_scenario

    if scenarios:
        cfgs = [load_scenario(x.strip()) for x in scenarios.split(",") if x.strip()]
    else:
        cfgs = list(default_scenarios().values())
    if fast:
        cfgs = [c.with_overrides(strategies=[x for x in c.strategies if x.name != "sasrec"]) for c in cfgs]
    return cfgs


def _demo_id_key(home: Path):
    """The demo's user-id key: ``SHOPREC_ID_KEY`` if set, else the one saved in ``home/id_key`` (made up
    and saved 0600 on the first run); exported so the service and its refits use the same."""
    import os

    from .privacy import ID_KEY_ENV, Pseudonymizer
    from .service.files import write_private
    from .service.settings import new_api_key

    if not os.environ.get(ID_KEY_ENV):
        f = home / "id_key"
        if not f.is_file():
            write_private(f, new_api_key() + "\n")
        os.environ[ID_KEY_ENV] = f.read_text().strip()
    return Pseudonymizer.from_env()


def _train(data, models: Path, scenarios, store, pseudonymizer="env"):
    """Fit ``scenarios`` and write the model; each scenario's and strategy's fit shows as a progress
    step (see shoprec.progress)."""
    from .service.training import train as train_model

    path = train_model(data, models, scenarios=list(scenarios), store=store, pseudonymizer=pseudonymizer)
    _plain(f"wrote model {path.name} to {models} (CURRENT)")
    return path


def _serve(models: Path, *, store: str, host: str, port: int, workers: int, api_key: str | None,
           public_key: str | None, state_bus: str | None, key_file: Path | None = None,
           read_requires_key: bool = False, exploration: float = 0.0, api_key_file: Path | None = None) -> None:
    """Run the service. The API key: ``api_key``, else the file ``api_key_file`` (must exist), else
    ``SHOPREC_API_KEY``, else ``SHOPREC_API_KEY_FILE``, else ``key_file`` if it exists (the demo's),
    else made up (and saved 0600 in ``key_file`` when given). With several workers the settings reach
    them in a 0600 file, never in their environment (service/workers.py)."""
    import os
    import stat

    import uvicorn

    from .service.app import create_app
    from .service.files import write_private
    from .service.settings import ServiceSettings, new_api_key, read_key_file
    from .service.workers import PARENT_ENV, SECRET_ENV, SETTINGS_ENV, remove_settings, write_settings

    source = "given"
    if api_key is None and api_key_file is not None:
        api_key, source = read_key_file(api_key_file), f"from {api_key_file}"
    if api_key is None and os.environ.get("SHOPREC_API_KEY"):
        api_key, source = os.environ["SHOPREC_API_KEY"], "from SHOPREC_API_KEY"
    if api_key is None and os.environ.get("SHOPREC_API_KEY_FILE"):
        api_key_file = Path(os.environ["SHOPREC_API_KEY_FILE"])
        api_key, source = read_key_file(api_key_file), f"from {api_key_file}"
    if api_key is None and key_file is not None and key_file.is_file():
        api_key, source = read_key_file(key_file), f"saved in {key_file}"
    if api_key is None:
        api_key, source = new_api_key(), "made up"
        if key_file is not None:
            write_private(key_file, api_key + "\n")
            source = f"made up, saved in {key_file}"
    if api_key_file is not None and api_key_file.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        console.print(f"[yellow]warning:[/] {api_key_file} is readable by others than its owner; chmod 600 it")
    public_key = public_key or os.environ.get("SHOPREC_PUBLIC_KEY") or f"pub-{new_api_key()[:16]}"
    settings = ServiceSettings.from_env(model=models, store=store, api_key=api_key, public_key=public_key,
                                        state_bus=state_bus, read_requires_key=read_requires_key or None,
                                        exploration=exploration or None)
    console.print(f"\n[bold]serving[/] http://{host}:{port}/  (storefront)   http://{host}:{port}/docs  (API)")
    # a key the operator gave is not echoed into logs; one made up here is printed once, to be used
    shown = api_key if source.startswith("made up") or key_file is not None else "****"
    console.print(f"  API key (write, admin): {shown}  ({source})")
    console.print(f"  public key (events, read): {public_key}")
    console.print(f"  event store: {settings.store}   Ctrl-C stops")
    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
        return
    settings_file = write_settings(settings)        # 0600, in a 0700 folder of its own
    for name in SECRET_ENV:                          # the workers read the keys from the file only
        os.environ.pop(name, None)
    os.environ[SETTINGS_ENV] = str(settings_file)
    os.environ[PARENT_ENV] = str(os.getpid())        # each worker ends when this process is gone
    try:
        uvicorn.run("shoprec.service.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=False)
    finally:
        remove_settings(settings_file)


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

    try:
        cfgs = _scenario_configs(scenarios, fast)
        with progress.step(f"loading {data or 'the demo shop'}"):
            shop = _load_shop(data)
        st = None
        if store:
            from .service.store import open_store

            st = open_store(store)
        try:
            _train(shop, out, cfgs, st)
        finally:
            if st is not None:
                st.close()
    except (ShoprecError, OSError) as e:
        _error(e)
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
    api_key: Annotated[Optional[str], typer.Option("--api-key", help=(
        "Key for write and admin endpoints. Visible in the process list: prefer --api-key-file or the "
        "SHOPREC_API_KEY variable. Default: SHOPREC_API_KEY, else SHOPREC_API_KEY_FILE, else made up and "
        "printed."))] = None,
    api_key_file: Annotated[Optional[Path], typer.Option("--api-key-file", help=(
        "Read the API key from this file (its first line; keep it chmod 600), e.g. a Docker secret "
        "such as /run/secrets/shoprec_api_key."))] = None,
    public_key: Annotated[Optional[str], typer.Option("--public-key", envvar="SHOPREC_PUBLIC_KEY",
                                                      help="Key that may only post events and read.")] = None,
    read_requires_key: Annotated[bool, typer.Option("--read-requires-key", help="Reads need a key too.")] = False,
    exploration: Annotated[float, typer.Option(help="Share of responses shown in random order (logged "
                                                    "propensities).")] = 0.0,
) -> None:
    """Serve recommendations over HTTP (FastAPI; OpenAPI docs at /docs) with a storefront at /.

    Every setting of the service is also a SHOPREC_<NAME> variable (SHOPREC_UNKNOWN_ITEMS=refuse,
    SHOPREC_RATE_LIMIT_PER_IP=600/minute, SHOPREC_BUS_MAX_LEN=100000, …; see the README)."""
    from .exceptions import ShoprecError

    if workers > 1 and not state_bus:
        console.print("[red]--workers > 1 needs --state-bus redis://… so every worker sees every event[/]")
        raise typer.Exit(2)
    if api_key is not None and api_key_file is not None:
        console.print("[red]give the API key once: --api-key or --api-key-file[/]")
        raise typer.Exit(2)
    try:
        _serve(model, store=store, host=host, port=port, workers=workers, api_key=api_key, public_key=public_key,
               state_bus=state_bus, read_requires_key=read_requires_key, exploration=exploration,
               api_key_file=api_key_file)
    except ShoprecError as e:
        _error(e)
        raise typer.Exit(2) from None


def _demo_requests(data) -> list[tuple[str, dict]]:
    """Typical page requests on the demo shop, chosen from its data (deterministic)."""
    import numpy as np

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
    """One answer as a table (titles, reasons and notes printed as they are, never as markup)."""
    table = Table(title=Text(f"{resp.scenario}  {json.dumps(ctx)}"), box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("title")
    table.add_column("why")
    for i, it in enumerate(resp.items, 1):
        table.add_row(str(i), Text(str(it.item_id)), Text((it.title or "")[:40]), Text(str(it.reason)))
    console.print(table)
    for note in resp.notes:
        _plain(f"  note: {note}", style="dim")


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
        _error(f"--context is not valid JSON: {e}")
        raise typer.Exit(2) from None
    try:
        RequestContext.parse(ctx)
        rec = Recommender([scenario])
        with progress.step(f"loading {data or 'the demo shop'}"):
            shop = _load_shop(data)
        rec.fit(shop)
        name = next(iter(rec.configs))
        print_response(rec.recommend(name, ctx), ctx)
    except (ShoprecError, OSError) as e:
        _error(e)
        raise typer.Exit(2) from None


def _load_shop(spec: str | None):
    from .data.adapters import load, load_online_retail
    from .demo_data import DEMO_PATH

    if spec is None or spec == "demo":
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
        table.add_row(name, str(cfg.k), Text(", ".join(f"{s.display} ({s.weight:g})" for s in cfg.strategies)),
                      cfg.fusion.method, Text(", ".join(f"{k}={v}" for k, v in rules.items()) or "defaults"),
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
        with progress.step(f"writing {out} from {results}"):
            path = build_report(results, out)
    except (FileNotFoundError, ValueError) as e:
        _error(e)
        raise typer.Exit(2) from None
    _plain(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB); open it in a browser")


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
        table.add_row(name, cls.__name__, Text(fields))
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
        table.add_row(name, Text(doc[0] if doc else ""))
    console.print(table)


@app.callback()
def main(ctx: typer.Context,
         verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what the library does; print "
                                                                        "whole load reports.")] = False) -> None:
    """Every command shows its long steps (fitting, ranking, training, loading) with a progress bar,
    counts and ETA on a terminal, and one line per finished step in logs and pipes."""
    from .cli_progress import make_reporter

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    _OPTIONS["verbose"] = verbose
    ctx.with_resource(progress.reporting(make_reporter(console)))


from . import cli_online  # noqa: E402,F401  (registers ope and the other online-learning commands)
from . import cli_health  # noqa: E402,F401  (registers shoprec health …)
from . import cli_logistics  # noqa: E402,F401  (registers shoprec logistics …)
from . import cli_privacy  # noqa: E402,F401  (registers shoprec erase, shoprec privacy …)
