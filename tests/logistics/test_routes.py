"""Route planning on tiny problems with known answers (OR-Tools and the nearest-neighbour baseline), the
plan's validation catching each kind of violation, the Olist day built from small files, bad input
reported, the command line, and (realdata) a day of the Olist samples."""

import dataclasses
import json
import sys

import numpy as np
import pytest

from shoprec.exceptions import ConfigError, DataError
from shoprec.logistics import (RoutePlan, RouteProblem, compare_plans, haversine_km, nearest_neighbour_routes,
                               plan_routes, problem_from_olist)

H = 3600
DAY = (8 * H, 18 * H)


@pytest.fixture
def ortools():
    return pytest.importorskip("ortools")


def line_problem(xs, *, demand=None, windows=None, service=0, vehicles=1, capacity=100.0, speed=60.0):
    """Stops at positions ``xs`` (km) on a line, the depot at 0: distance |x_i − x_j|; at 60 km/h one km
    takes a minute. Windows default to the whole day."""
    x = np.concatenate([[0.0], np.asarray(xs, np.float64)])
    n = len(xs)
    return RouteProblem(distance_km=np.abs(x[:, None] - x[None, :]),
                        demand_kg=np.ones(n) if demand is None else np.asarray(demand, np.float64),
                        windows_s=np.tile(DAY, (n, 1)) if windows is None else np.asarray(windows, np.float64),
                        service_s=np.full(n, float(service)), vehicles=vehicles, capacity_kg=capacity,
                        day_start_s=DAY[0], day_end_s=DAY[1], speed_kmh=speed)


# --- known answers -------------------------------------------------------------------------------------


def test_four_stops_on_a_line_are_visited_in_order(ortools):
    p = line_problem([3.0, 1.0, 4.0, 2.0])
    plan = plan_routes(p, time_limit_s=0.3)
    assert plan.validate(p) == []
    assert plan.distance_km == pytest.approx(8.0)             # out to 4 km and back: the optimum
    assert plan.routes in ([[1, 3, 0, 2]], [[2, 0, 3, 1]])    # 1, 2, 3, 4 km or the reverse
    assert plan.served == 4 and plan.dropped == [] and plan.vehicles_used == 1


def test_stops_on_both_sides_of_the_depot(ortools):
    # two sides: the optimum is 2 × (4.5 + 2) = 13 km whatever the order
    p = line_problem([1.0, -2.0, 4.5])
    assert plan_routes(p, time_limit_s=0.3).distance_km == pytest.approx(13.0)


def test_nearest_neighbour_follows_its_known_greedy_order():
    # from 0 the nearest is 1 km; from there −2 (3 km) is nearer than 4.5 (3.5 km); then 4.5 and home
    p = line_problem([1.0, -2.0, 4.5])
    nn = nearest_neighbour_routes(p)
    assert nn.routes == [[0, 1, 2]]
    assert nn.distance_km == pytest.approx(1 + 3 + 6.5 + 4.5)
    assert nn.validate(p) == []


def test_ortools_beats_the_greedy_on_the_constructed_case(ortools):
    p = line_problem([1.0, -2.0, 4.5])
    res = compare_plans(p, time_limit_s=0.3)
    assert res["basis"].startswith("the same 3 stops")
    assert res["ratio"] == pytest.approx(13.0 / 15.0, abs=1e-4)
    assert res["saving"] == pytest.approx(2.0 / 15.0, abs=1e-4)
    json.dumps(res)                                           # JSON-ready


def test_a_time_window_forces_the_order(ortools):
    # stop 0 (2 km) only in the afternoon, stop 1 (4 km) only before 9:00: 1 must come first
    p = line_problem([2.0, 4.0], windows=[(13 * H, 17 * H), (8 * H, 9 * H)], service=300)
    plan = plan_routes(p, time_limit_s=0.3)
    assert plan.routes == [[1, 0]] and plan.validate(p) == []
    # it leaves as late as it can without coming back later: at 8:56, 4 min to stop 1 by 9:00; waits for 13:00
    assert plan.departures_s == [9 * H - 240] and plan.arrivals_s == [[9 * H, 13 * H]]
    assert plan.distance_km == pytest.approx(8.0)


def test_the_greedy_takes_the_nearest_stop_and_loses_the_other():
    # same day: nearest-neighbour goes to the 2 km stop, waits until 13:00, and the 9:00 window has closed
    p = line_problem([2.0, 4.0], windows=[(13 * H, 17 * H), (8 * H, 9 * H)], service=300)
    nn = nearest_neighbour_routes(p)
    assert nn.routes == [[0]] and nn.dropped == [1] and nn.validate(p) == []
    # it leaves as late as it can: 12:58 for a 13:00 start 2 km away
    assert nn.departures_s == [13 * H - 120] and nn.duration_s == 120 + 300 + 120


def test_plans_serving_different_stops_are_compared_on_the_same_stops(ortools):
    p = line_problem([2.0, 4.0], windows=[(13 * H, 17 * H), (8 * H, 9 * H)], service=300)
    res = compare_plans(p, time_limit_s=0.3)
    assert res["ortools"]["served"] == 2 and res["nearest_neighbour"]["served"] == 1
    assert "re-solved" in res["basis"] and res["ortools_on_nn_stops"]["served"] == 1
    assert res["ratio"] == pytest.approx(1.0)                 # the 2 km stop alone: 4 km either way


def test_capacity_forces_two_vehicles(ortools):
    p = line_problem([-2.0, -1.0, 1.0, 2.0], demand=[10, 10, 10, 10], capacity=20.0, vehicles=2)
    plan = plan_routes(p, time_limit_s=0.3)
    assert plan.validate(p) == []
    assert plan.vehicles_used == 2 and sorted(map(sorted, plan.routes)) == [[0, 1], [2, 3]]
    assert plan.loads_kg == [20.0, 20.0] and plan.distance_km == pytest.approx(8.0)
    # one vehicle of 20 kg: only two stops can go, the others are dropped, not forced in
    one = plan_routes(dataclasses.replace(p, vehicles=1), time_limit_s=0.3)
    assert one.served == 2 and len(one.dropped) == 2 and one.validate(dataclasses.replace(p, vehicles=1)) == []


def test_an_unreachable_stop_is_dropped_by_both(ortools):
    # 60 km away at 60 km/h: its window closes at 8:30, an hour's drive from an 8:00 start
    p = line_problem([1.0, 60.0], windows=[DAY, (8 * H, 8 * H + 1800)])
    for plan in (plan_routes(p, time_limit_s=0.3), nearest_neighbour_routes(p)):
        assert plan.routes == [[0]] and plan.dropped == [1] and plan.validate(p) == []


def test_from_points_uses_haversine_times_the_road_factor():
    assert haversine_km(0.0, 0.0, 0.0, 1.0) == pytest.approx(111.195, abs=1e-3)     # a degree on the equator
    p = RouteProblem.from_points((0.0, 0.0), [0.0, 0.0], [0.01, 0.02], road_factor=1.5, demand_kg=[1, 1],
                                 windows_s=[DAY, DAY], service_s=[0, 0], vehicles=1, capacity_kg=10, speed_kmh=30)
    assert p.distance_km[0, 2] == pytest.approx(1.5 * 2.22390, abs=1e-4)
    assert p.travel_s[0, 2] == round(1.5 * 2.22390 / 30 * 3600)
    assert nearest_neighbour_routes(p).routes == [[0, 1]]


# --- validate() -----------------------------------------------------------------------------------------


def test_validate_catches_every_kind_of_violation():
    p = line_problem([1.0, 2.0, 3.0], demand=[5, 5, 5], capacity=20.0, vehicles=1,
                     windows=[DAY, DAY, (8 * H, 8 * H + 600)])
    good = RoutePlan.from_routes(p, [[0, 1, 2]], "hand")
    assert good.validate(p) == []
    heavy = dataclasses.replace(p, capacity_kg=12.0)
    assert any("exceeds the capacity" in v for v in RoutePlan.from_routes(heavy, [[0, 1, 2]], "hand").validate(heavy))
    late = RoutePlan.from_routes(p, [[2, 1, 0]], "hand")                  # fine: 3 km first
    assert late.validate(p) == []
    slow = dataclasses.replace(p, speed_kmh=12.0)                          # 5 min a km: stop 2 after 8:10
    assert any("outside its window" in v for v in RoutePlan.from_routes(slow, [[0, 1, 2]], "hand").validate(slow))
    twice = dataclasses.replace(good, routes=[[0, 1, 2, 1]])
    assert any("served twice" in v for v in twice.validate(p))
    lost = dataclasses.replace(good, routes=[[0, 1]], dropped=[])
    assert any("neither served nor dropped" in v for v in lost.validate(p))
    both = dataclasses.replace(good, dropped=[2])
    assert any("both served" in v for v in both.validate(p))
    fleet = RoutePlan.from_routes(p, [[0], [1], [2]], "hand")
    assert any("3 routes for 1 vehicles" in v for v in fleet.validate(p))
    early = dataclasses.replace(good, departures_s=[7 * H])
    assert any("before the day starts" in v for v in early.validate(p))
    rushed = dataclasses.replace(good, arrivals_s=[[8 * H, 8 * H + 60, 8 * H + 120]])
    assert any("sooner than the travel allows" in v for v in rushed.validate(p))
    short = dataclasses.replace(p, day_end_s=8 * H + 300)
    assert any("after the day ends" in v for v in RoutePlan.from_routes(short, [[0, 1, 2]], "hand").validate(short))
    fudged = dataclasses.replace(good, distance_km=1.0)
    assert any("stated distance" in v for v in fudged.validate(p))
    with pytest.raises(ConfigError, match="stop 7 does not exist"):
        RoutePlan.from_routes(p, [[7]], "hand")


# --- bad input ------------------------------------------------------------------------------------------


def test_bad_problems_are_reported():
    with pytest.raises(DataError, match="square"):
        RouteProblem(np.zeros((2, 3)), [1], [DAY], [0], 1, 10.0)
    with pytest.raises(DataError, match="one weight per stop"):
        RouteProblem(np.zeros((3, 3)), [1], [DAY, DAY], [0, 0], 1, 10.0)
    with pytest.raises(DataError, match="opens .* after it closes"):
        RouteProblem(np.zeros((2, 2)), [1], [(12 * H, 9 * H)], [0], 1, 10.0)
    with pytest.raises(DataError, match="demand_kg.*finite number"):
        RouteProblem(np.zeros((2, 2)), [np.nan], [DAY], [0], 1, 10.0)
    with pytest.raises(ConfigError, match="vehicles"):
        RouteProblem(np.zeros((2, 2)), [1], [DAY], [0], 0, 10.0)
    with pytest.raises(ConfigError, match="capacity_kg"):
        RouteProblem(np.zeros((2, 2)), [1], [DAY], [0], 1, -1.0)
    with pytest.raises(ConfigError, match="road_factor"):
        RouteProblem.from_points((0, 0), [0], [0.1], road_factor=0.5, demand_kg=[1], windows_s=[DAY], service_s=[0],
                                 vehicles=1, capacity_kg=1)


def test_without_ortools_plan_routes_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ortools.constraint_solver", None)
    with pytest.raises(ImportError, match="pip install ortools==9.15.6755"):
        plan_routes(line_problem([1.0]))


def test_a_bad_time_limit_is_reported(ortools):
    with pytest.raises(ConfigError, match="time_limit_s"):
        plan_routes(line_problem([1.0]), time_limit_s=0)


# --- the day from Olist files ---------------------------------------------------------------------------


def write_olist(root, *, drop=(), products_header="product_id,product_weight_g"):
    """A tiny Olist folder: sample/ and full/ as in ../shared/data/olist. Seller s1 (prefix 01001, two
    geolocation rows averaged) has orders o1, o2 shipping on 9/19/2017 to c1, c2 and o3 on another day
    to c3; c4's prefix does not geolocate and c5 is in Rio, far from the depot."""
    (root / "sample").mkdir(parents=True)
    (root / "full").mkdir()
    files = {
        "sample/olist_geolocation_dataset.csv": "geolocation_zip_code_prefix,geolocation_lat,geolocation_lng,"
        "geolocation_city,geolocation_state\n1001,-23.550,-46.630,sao paulo,SP\n1001,-23.552,-46.632,sao paulo,SP\n"
        "1002,-23.560,-46.630,sao paulo,SP\n1003,-23.540,-46.640,sao paulo,SP\n1004,-23.545,-46.620,sao paulo,SP\n"
        "20000,-22.900,-43.200,rio de janeiro,RJ\n",
        "sample/olistcustomerdataset.csv": "customer_id,customer_unique_id,customer_zip_code_prefix,customer_city,"
        "customer_state\nc1,u1,1002,sao paulo,SP\nc2,u2,1003,sao paulo,SP\nc3,u3,1004,sao paulo,SP\n"
        "c4,u4,1999,sao paulo,SP\nc5,u5,20000,rio de janeiro,RJ\n",
        "full/olist_sellers_dataset.csv": '"seller_id","seller_zip_code_prefix","seller_city","seller_state"\n'
        '"s1","01001",sao paulo,SP\ns2,"99999",nowhere,SP\n',
        "sample/olist_orders_dataset.csv": "order_id,customer_id,order_status,order_purchase_timestamp\n"
        "o1,c1,delivered,9/15/2017 10:00\no2,c2,delivered,9/15/2017 11:00\no3,c3,delivered,9/20/2017 9:00\n",
        "sample/olist_order_items_dataset.csv": "order_id,order_item_id,product_id,seller_id,shipping_limit_date,"
        "price\no1,1,p1,s1,9/19/2017 9:45,10\no1,2,p2,s1,9/19/2017 9:45,10\no2,1,p3,s1,9/19/2017 14:00,10\n"
        "o3,1,p3,s1,9/25/2017 8:00,10\n",
        "full/olist_products_dataset.csv": f"{products_header}\np1,2000\np2,\np3,500\n",
    }
    for rel, text in files.items():
        if rel.split("/")[-1] not in drop:
            (root / rel).write_text(text)
    return root


def test_the_sellers_own_day_is_used_when_it_is_big_enough(tmp_path):
    p = problem_from_olist(write_olist(tmp_path), n_stops=2, vehicles=1, seed=0)
    assert p.stop_ids == ("c1", "c2") and p.notes["real_orders"] == 2 and p.notes["drawn_stops"] == 0
    # o1: p1 2000 g + p2 without a weight (the median of 2000, 500 = 1250 g); o2: p3 500 g
    assert p.demand_kg.tolist() == pytest.approx([3.25, 0.5])
    assert p.lat[0] == pytest.approx(-23.551) and p.lng[0] == pytest.approx(-46.631)     # 01001 averaged
    assert p.notes["seller_id"] == "s1" and not any("too few" in line for line in p.describe())


def test_too_few_real_orders_fill_the_day_with_geolocated_customers(tmp_path):
    p = problem_from_olist(write_olist(tmp_path), n_stops=3, vehicles=1, seed=0)
    # c4 does not geolocate and c5 is 350 km away: c3 is the only one left, with its own order o3
    assert p.stop_ids == ("c1", "c2", "c3") and p.notes["real_orders"] == 2 and p.notes["drawn_stops"] == 1
    assert p.demand_kg[2] == pytest.approx(0.5) and p.notes["own_parcels"] == 3
    assert any("too few real orders" in line for line in p.describe())
    assert set(p.notes["slots"]) == {"morning", "afternoon", "all_day"} and sum(p.notes["slots"].values()) == 3
    assert (p.windows_s[:, 0] >= 8 * H).all() and (p.windows_s[:, 1] <= 17 * H).all()
    again = problem_from_olist(tmp_path, n_stops=3, vehicles=1, seed=0)
    assert np.array_equal(again.windows_s, p.windows_s)                                  # seeded


def test_a_chosen_depot_needs_no_sellers_file(tmp_path):
    root = write_olist(tmp_path, drop=("olist_sellers_dataset.csv",))
    p = problem_from_olist(root, n_stops=3, vehicles=1, depot=(-23.55, -46.63), parcel_kg=1.5, seed=3)
    assert p.notes["seller_id"] is None and p.notes["real_orders"] == 0
    assert sorted(p.stop_ids) == ["c1", "c2", "c3"] and p.demand_kg.tolist() == [3.25, 0.5, 0.5]
    with pytest.raises(DataError, match="olist_sellers_dataset.csv"):
        problem_from_olist(root, n_stops=3)


def test_bad_olist_input_names_the_file_and_what_is_missing(tmp_path):
    with pytest.raises(DataError, match="expected a folder"):
        problem_from_olist(tmp_path / "nowhere")
    root = write_olist(tmp_path / "a", drop=("olist_geolocation_dataset.csv",))
    with pytest.raises(DataError, match="no olist_geolocation_dataset.csv under the folder"):
        problem_from_olist(root, n_stops=2)
    root = write_olist(tmp_path / "b", products_header="product_id,weight")
    with pytest.raises(DataError, match="olist_products_dataset.csv: no column 'product_weight_g'"):
        problem_from_olist(root, n_stops=2)
    root = write_olist(tmp_path / "c")
    with pytest.raises(DataError, match="only 3 customers geolocate within 30 km"):
        problem_from_olist(root, n_stops=4)
    with pytest.raises(DataError, match="no seller 'zz'"):
        problem_from_olist(root, "zz", n_stops=2)
    with pytest.raises(DataError, match="zip prefix 99999 of seller 's2' is not in"):
        problem_from_olist(root, "s2", n_stops=2)
    with pytest.raises(ConfigError, match="slot_weights"):
        problem_from_olist(root, n_stops=2, slot_weights=(1, 1))


def test_the_routes_command_prints_json_and_reports_bad_input(tmp_path, ortools):
    from typer.testing import CliRunner

    import shoprec.cli_logistics  # noqa: F401  (registers shoprec logistics)
    from shoprec.cli import app

    runner = CliRunner()
    root = write_olist(tmp_path / "olist")
    r = runner.invoke(app, ["logistics", "routes", "--olist", str(root), "--stops", "3", "--vehicles", "1",
                            "--time-limit", "0.3", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["ortools"]["served"] == 3 and out["ortools"]["violations"] == []
    assert out["plans"]["ortools"]["routes"][0]["stop_ids"] and out["problem"]["real_orders"] == 2
    r = runner.invoke(app, ["logistics", "routes", "--olist", str(root), "--stops", "3", "--vehicles", "1",
                            "--time-limit", "0.3"])
    assert r.exit_code == 0, r.output
    assert "nearest neighbour" in r.output and "OR-Tools km / nearest-neighbour km" in r.output
    r = runner.invoke(app, ["logistics", "routes", "--olist", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "expected a folder" in r.output


# --- real data ------------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_a_day_of_the_olist_samples_is_planned_feasibly(shared_data, ortools):
    folder = shared_data("olist")
    p = problem_from_olist(folder, n_stops=30, vehicles=3, seed=1)
    assert p.n_stops == 30 and p.notes["drawn_stops"] + p.notes["real_orders"] == 30
    assert (p.distance_km < 30).all()                 # all of it is central São Paulo
    ort = plan_routes(p, time_limit_s=2.0, seed=1)
    nn = nearest_neighbour_routes(p)
    assert ort.validate(p) == [] and nn.validate(p) == []
    assert ort.served >= nn.served
    if ort.served == nn.served:
        assert ort.distance_km <= nn.distance_km
