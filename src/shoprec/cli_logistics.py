"""``shoprec logistics …``: route planning for one warehouse's day of orders (registered on ``cli.app``).

``routes`` builds a day from an Olist folder (``shoprec.logistics.problem_from_olist``: what is real and
what is drawn is printed with it) and compares OR-Tools' routes with the nearest-neighbour baseline on
the same stops. OR-Tools is optional (``pip install ortools==9.15.6755``); it is imported only when the
command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .cli import _error, _plain, app, console

logistics_app = typer.Typer(no_args_is_help=True, help="Logistics: delivery routes for a warehouse's day of orders.")
app.add_typer(logistics_app, name="logistics")


@logistics_app.callback()
def logistics() -> None:
    """Logistics: delivery routes for a warehouse's day of orders."""


@logistics_app.command("routes")
def logistics_routes(
    folder: Annotated[Path, typer.Option("--olist", help="A folder of Olist CSV files (geolocation, customers, "
                                         "sellers, orders, order items, products).")] = Path("../shared/data/olist"),
    stops: Annotated[int, typer.Option("--stops", min=1, help="Deliveries in the day.")] = 80,
    vehicles: Annotated[int, typer.Option("--vehicles", min=1, help="Vehicles of the fleet.")] = 4,
    capacity: Annotated[float, typer.Option("--capacity", min=0.001, help="What one vehicle carries, kg.")] = 150.0,
    seller: Annotated[Optional[str], typer.Option("--seller", help="The seller whose location is the depot "
                                                  "(default: the busiest seller that geolocates).")] = None,
    time_limit: Annotated[float, typer.Option("--time-limit", min=0.001, help="OR-Tools' search time, "
                                              "seconds.")] = 20.0,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the drawn stops, windows and parcels, and the "
                                      "solver's stop order.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the problem, both plans and the comparison "
                                          "as JSON.")] = False,
) -> None:
    """Plan a day's deliveries with OR-Tools and with nearest-neighbour, and compare them on the same stops."""
    from .exceptions import ShoprecError
    from .logistics import compare_plans, problem_from_olist

    try:
        problem = problem_from_olist(folder, seller, n_stops=stops, vehicles=vehicles, capacity_kg=capacity, seed=seed)
        res = compare_plans(problem, time_limit_s=time_limit, seed=seed)
    except (ImportError, FileNotFoundError, ShoprecError) as e:
        _error(e)
        raise typer.Exit(2) from None
    if as_json:
        notes = {k: v for k, v in problem.notes.items() if k != "provenance"}
        out = {"problem": {"lines": problem.describe(), **notes}, **res}
        print(json.dumps(out, indent=1, default=str))
        return
    for line in problem.describe():
        _plain(line)
    t = Table(title=f"{problem.n_stops} deliveries, {problem.vehicles} vehicles (seed {seed})")
    for col in ("planner", "km", "hours", "stops served", "vehicles used", "km ÷ NN km", "solve s", "feasible"):
        t.add_column(col, justify="left" if col in ("planner", "feasible") else "right")
    compared = "ortools_on_nn_stops" if "ortools_on_nn_stops" in res else "ortools"
    rows = [("OR-Tools (guided local search)", "ortools"), ("nearest neighbour", "nearest_neighbour")]
    if compared != "ortools":
        rows.insert(1, ("OR-Tools on the NN plan's stops", compared))
    for name, key in rows:
        r = res[key]
        ratio = "1.000" if key == "nearest_neighbour" else \
            f"{res['ratio']:.3f}" if key == compared and res["ratio"] is not None else "–"
        t.add_row(name, f"{r['km']:.1f}", f"{r['hours']:.2f}", f"{r['served']} of {r['served'] + r['dropped']}",
                  str(r["vehicles_used"]), ratio, f"{r['solve_seconds']:.1f}",
                  "yes" if not r["violations"] else f"no ({len(r['violations'])} violations)")
    console.print(t)
    if res["ratio"] is None:
        _plain(f"no ratio: compared on {res['basis']}")
    else:
        how = f"{res['saving']:.1%} shorter" if res["saving"] >= 0 else f"{-res['saving']:.1%} longer"
        _plain(f"OR-Tools km / nearest-neighbour km = {res['ratio']:.3f} ({how}), on {res['basis']}")
