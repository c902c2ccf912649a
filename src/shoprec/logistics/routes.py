"""Route planning for one warehouse's day of orders: a vehicle routing problem with time windows.

**The problem** (:class:`RouteProblem`). A depot (node 0) and ``n`` delivery stops (nodes 1..n; the
routes of a plan name the stops 0..n−1). Every stop has a demand (the parcel's weight, kg), a time
window ``[open, close]`` in which its service must *begin* (a vehicle that comes early waits), and a
service time. A fleet of ``vehicles`` identical vehicles of ``capacity_kg`` each leaves the depot no
earlier than the working day's start and is back by its end. The distance between two points is the
great-circle (haversine) distance × a road factor (streets are not straight lines: 1.4 by default, a
usual figure for a city grid); the travel time is that distance at a constant ``speed_kmh``, rounded
to whole seconds. Times are seconds since midnight throughout. Both planners and the validation use
the same integer travel times, so a plan one of them calls feasible is feasible for the other.

**The planners.**

* :func:`plan_routes` — OR-Tools' routing solver (``pywrapcp.RoutingModel``): the arc cost is the
  distance (metres), a time dimension carries the windows (waiting allowed anywhere), a capacity
  dimension the parcels (grams); each stop is a disjunction with a drop penalty larger than any
  route could cost, so the solver serves as many stops as it can first and a day that cannot all be
  served still solves. First solution PATH_CHEAPEST_ARC, then guided local search until the time
  limit. OR-Tools' routing search has no random seed of its own; ``seed`` permutes the order in which
  the stops are given to the model, which changes its tie-breaks. Because the search stops on a
  time limit, how far it gets depends on the machine: a plan reproduces exactly only on equal CPU.
* :func:`nearest_neighbour_routes` — the greedy baseline: a vehicle leaves the depot at the day's
  start and goes on to the *nearest* (by distance) unvisited stop that is still feasible — it fits
  the remaining capacity, its window is still open when the vehicle gets there (waiting for it to
  open is allowed) and the vehicle can still be back at the depot by the day's end after it —
  until no stop fits; it then returns, and the next vehicle starts. Ties go to the lower stop index.

A :class:`RoutePlan` holds the routes with the *earliest* schedule that keeps them feasible, except
that each vehicle leaves the depot as late as it can without coming back later (so its duration, the
time from leaving to returning, holds no idle wait at the start); :meth:`RoutePlan.validate` checks
every constraint against the problem and returns the violations (none for a feasible plan).

**Comparing the two** (:func:`compare_plans`): a shorter plan that serves fewer stops is no better,
so distances are compared on the same stops. When both plans serve the same stops the ratio is
OR-Tools km / nearest-neighbour km. When they do not (the greedy gave up on stops its fleet could
not fit), OR-Tools is solved again on the stops the nearest-neighbour plan served and the ratio is
taken there; the full-day served counts of both are reported beside it.

**The day from Olist** (:func:`problem_from_olist`). The Olist samples (``PROVENANCE.md``) are the
first ~10k rows of independently ordered files: the geolocation sample holds 186 zip prefixes, all in
central São Paulo (prefixes 01001–01333); its rows are averaged per prefix. What is *real*: the depot
(a seller's zip prefix from the full sellers table, geolocated; by default the seller with the most
order lines in the items sample whose prefix geolocates), the stops' locations (customers of the
customers sample whose zip prefix geolocates and lies within ``radius_km`` of the depot), and the
parcel weights (sums of the real products' ``product_weight_g`` over an order's lines). The seller's
own orders are looked for first: its order lines → their orders → their customers, geolocated, by
the day of the lines' ``shipping_limit_date``; when the busiest such day has fewer than ``n_stops``
(on the samples it has none: no order line of the items sample reaches a geolocated customer), that
is said in the problem's notes, those orders are kept and the rest of the day is a seeded choice of
the other geolocated customers of the sample. What is *drawn* (seeded): which customers make up the
day, each stop's time window (one of :data:`DAY_SLOTS`: morning, afternoon or all day, with
``slot_weights``), and the parcel of a stop whose customer's order does not join the order lines (a
real order's parcel drawn from the sample's orders that fit a vehicle, or the constant ``parcel_kg``
when given). A product without a weight counts as the products table's median weight. The problem's
``notes`` and :meth:`RouteProblem.describe` say how many of each there are.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import ConfigError, DataError

__all__ = ["DAY_SLOTS", "RoutePlan", "RouteProblem", "compare_plans", "haversine_km", "nearest_neighbour_routes",
           "plan_routes", "problem_from_olist"]

HOUR = 3600
EARTH_RADIUS_KM = 6371.0088
#: the delivery slots a customer picks from (hours since midnight): window = [open, close]
DAY_SLOTS = {"morning": (8.0, 12.0), "afternoon": (12.0, 17.0), "all_day": (8.0, 17.0)}

_OLIST_FILES = {"geolocation": ("olist_geolocation_dataset.csv",),
                "customers": ("olist_customers_dataset.csv", "olistcustomerdataset.csv"),
                "sellers": ("olist_sellers_dataset.csv",), "orders": ("olist_orders_dataset.csv",),
                "items": ("olist_order_items_dataset.csv",), "products": ("olist_products_dataset.csv",)}
_OLIST_WHAT = {"geolocation": "zip prefix → latitude, longitude", "customers": "each customer's zip prefix",
               "sellers": "each seller's zip prefix", "orders": "each order's customer",
               "items": "the order lines: seller and product", "products": "each product's weight"}


def haversine_km(lat1, lng1, lat2, lng2) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (numpy broadcasting)."""
    p1, p2 = np.radians(np.asarray(lat1, np.float64)), np.radians(np.asarray(lat2, np.float64))
    dl = np.radians(np.asarray(lng2, np.float64) - np.asarray(lng1, np.float64))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _hhmm(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // HOUR:02d}:{s % HOUR // 60:02d}"


@dataclass(frozen=True, eq=False)
class RouteProblem:
    """One day of one depot (module docstring). Node 0 is the depot, node ``i + 1`` is stop ``i``.

    ``distance_km`` is (n+1)×(n+1) road km; ``demand_kg``, ``service_s`` have one value per stop,
    ``windows_s`` one ``[open, close]`` row per stop (seconds since midnight, the time service may
    begin). ``lat``/``lng`` (n+1, depot first) and ``stop_ids`` are for display only; ``notes`` say
    where the data came from. :meth:`from_points` builds the distances from coordinates.
    """

    distance_km: np.ndarray
    demand_kg: np.ndarray
    windows_s: np.ndarray
    service_s: np.ndarray
    vehicles: int
    capacity_kg: float
    day_start_s: int = 8 * HOUR
    day_end_s: int = 18 * HOUR
    speed_kmh: float = 20.0
    stop_ids: tuple[str, ...] = ()
    lat: np.ndarray | None = None
    lng: np.ndarray | None = None
    notes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = np.asarray(self.distance_km, np.float64)
        if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] < 1:
            raise DataError(f"distance_km must be a square (n+1)×(n+1) matrix, depot first; got shape {d.shape}")
        n = d.shape[0] - 1
        dem = np.asarray(self.demand_kg, np.float64).reshape(-1)
        win = np.asarray(self.windows_s, np.float64)
        svc = np.asarray(self.service_s, np.float64).reshape(-1) if np.ndim(self.service_s) else \
            np.full(n, float(self.service_s))
        if dem.shape != (n,):
            raise DataError(f"demand_kg must hold one weight per stop ({n}); got {dem.shape[0]}", field="demand_kg")
        if win.shape != (n, 2):
            raise DataError(f"windows_s must hold one [open, close] row per stop, shape ({n}, 2); got {win.shape}",
                            field="windows_s")
        if svc.shape != (n,):
            raise DataError(f"service_s must hold one time per stop ({n}); got {svc.shape[0]}", field="service_s")
        for name, a in (("distance_km", d), ("demand_kg", dem), ("windows_s", win), ("service_s", svc)):
            if not np.isfinite(a).all() or (a < 0).any():
                bad = np.argwhere(~np.isfinite(a) | (a < 0))[0]
                raise DataError(f"every value must be a finite number ≥ 0; got {a[tuple(bad)]!r} at {bad.tolist()}",
                                field=name)
        if (win[:, 0] > win[:, 1]).any():
            i = int(np.flatnonzero(win[:, 0] > win[:, 1])[0])
            raise DataError(f"stop {i}'s window opens ({_hhmm(win[i, 0])}) after it closes ({_hhmm(win[i, 1])})",
                            field="windows_s")
        if int(self.vehicles) != self.vehicles or self.vehicles < 1:
            raise ConfigError(f"vehicles must be a whole number ≥ 1; got {self.vehicles!r}")
        if not (np.isfinite(self.capacity_kg) and self.capacity_kg > 0):
            raise ConfigError(f"capacity_kg must be a number > 0; got {self.capacity_kg!r}")
        if not (0 <= self.day_start_s < self.day_end_s):
            raise ConfigError(f"the working day must start before it ends; got {_hhmm(self.day_start_s)}–"
                              f"{_hhmm(self.day_end_s)}")
        if not (np.isfinite(self.speed_kmh) and self.speed_kmh > 0):
            raise ConfigError(f"speed_kmh must be a number > 0; got {self.speed_kmh!r}")
        if self.stop_ids and len(self.stop_ids) != n:
            raise DataError(f"stop_ids must name every stop ({n}); got {len(self.stop_ids)}", field="stop_ids")
        object.__setattr__(self, "distance_km", d)
        object.__setattr__(self, "demand_kg", dem)
        object.__setattr__(self, "windows_s", np.rint(win).astype(np.int64))
        object.__setattr__(self, "service_s", np.rint(svc).astype(np.int64))
        object.__setattr__(self, "vehicles", int(self.vehicles))
        object.__setattr__(self, "day_start_s", int(self.day_start_s))
        object.__setattr__(self, "day_end_s", int(self.day_end_s))

    @classmethod
    def from_points(cls, depot: tuple[float, float], lat: Sequence[float], lng: Sequence[float], *,
                    road_factor: float = 1.4, **kwargs) -> RouteProblem:
        """The problem whose distances are haversine km × ``road_factor`` between the depot
        ``(lat, lng)`` and the stops' coordinates (degrees); ``kwargs`` are the other fields."""
        if not (np.isfinite(road_factor) and road_factor >= 1.0):
            raise ConfigError(f"road_factor must be a number ≥ 1 (roads are no shorter than straight lines); "
                              f"got {road_factor!r}")
        la = np.concatenate([[depot[0]], np.asarray(lat, np.float64)])
        lo = np.concatenate([[depot[1]], np.asarray(lng, np.float64)])
        if not (np.isfinite(la).all() and np.isfinite(lo).all() and (np.abs(la) <= 90).all()
                and (np.abs(lo) <= 180).all()):
            raise DataError("every latitude must be in [-90, 90] and every longitude in [-180, 180]")
        d = haversine_km(la[:, None], lo[:, None], la[None, :], lo[None, :]) * road_factor
        notes = dict(kwargs.pop("notes", {}))
        notes.setdefault("road_factor", road_factor)
        return cls(distance_km=d, lat=la, lng=lo, notes=notes, **kwargs)

    @property
    def n_stops(self) -> int:
        return self.distance_km.shape[0] - 1

    @cached_property
    def travel_s(self) -> np.ndarray:
        """(n+1)×(n+1) travel seconds (int64): distance at ``speed_kmh``, rounded."""
        return np.rint(self.distance_km / self.speed_kmh * HOUR).astype(np.int64)

    @cached_property
    def demand_g(self) -> np.ndarray:
        """The demands in whole grams (int64), as both planners and the validation count them."""
        return np.rint(self.demand_kg * 1000).astype(np.int64)

    @property
    def capacity_g(self) -> int:
        return int(np.floor(self.capacity_kg * 1000 + 1e-6))

    def subset(self, stops: Sequence[int]) -> RouteProblem:
        """The same day with only ``stops`` (their new indices are their positions in ``stops``)."""
        s = np.asarray(stops, np.int64)
        if s.size and (s.min() < 0 or s.max() >= self.n_stops or len(np.unique(s)) != len(s)):
            raise ConfigError(f"stops must be distinct indices in [0, {self.n_stops}); got {s.tolist()}")
        nodes = np.concatenate([[0], s + 1])
        return RouteProblem(self.distance_km[np.ix_(nodes, nodes)], self.demand_kg[s], self.windows_s[s],
                            self.service_s[s], self.vehicles, self.capacity_kg, self.day_start_s, self.day_end_s,
                            self.speed_kmh, tuple(self.stop_ids[i] for i in s) if self.stop_ids else (),
                            None if self.lat is None else self.lat[nodes],
                            None if self.lng is None else self.lng[nodes],
                            {**self.notes, "subset_of": self.n_stops})

    def describe(self) -> list[str]:
        """The problem in a few lines of text: size, fleet, day, travel model, and where its data came from."""
        n = self.n_stops
        out = [f"{n} stops, {self.vehicles} vehicles × {self.capacity_kg:g} kg, day {_hhmm(self.day_start_s)}–"
               f"{_hhmm(self.day_end_s)}, {self.demand_kg.sum():.1f} kg to deliver, service "
               f"{self.service_s.mean() / 60:.1f} min per stop, travel at {self.speed_kmh:g} km/h"
               + (f" over haversine × {self.notes['road_factor']:g}" if "road_factor" in self.notes else "")]
        out += [str(line) for line in self.notes.get("provenance", ())]
        return out


@dataclass(frozen=True)
class RoutePlan:
    """Routes for a :class:`RouteProblem` and their schedule (module docstring).

    ``routes`` lists the stops of each vehicle that leaves the depot, in visiting order; ``arrivals_s``
    the time service begins at each of them (a vehicle that came early waited), ``departures_s`` /
    ``returns_s`` when each leaves and is back at the depot, ``loads_kg`` what each carries;
    ``dropped`` the stops no vehicle serves. ``distance_km`` and ``duration_s`` are summed over the
    routes (duration = back − left, waiting included).
    """

    method: str
    routes: list[list[int]]
    loads_kg: list[float]
    departures_s: list[int]
    arrivals_s: list[list[int]]
    returns_s: list[int]
    distance_km: float
    duration_s: int
    dropped: list[int]
    solve_seconds: float = 0.0
    status: str = ""

    @property
    def served(self) -> int:
        return sum(len(r) for r in self.routes)

    @property
    def vehicles_used(self) -> int:
        return len(self.routes)

    @property
    def hours(self) -> float:
        return self.duration_s / HOUR

    @classmethod
    def from_routes(cls, problem: RouteProblem, routes: Sequence[Sequence[int]], method: str, *,
                    solve_seconds: float = 0.0, status: str = "") -> RoutePlan:
        """The plan of ``routes`` (stop indices; empty routes are left out) with its schedule: the
        earliest one, each vehicle leaving as late as it can without coming back later. Routes that
        break a window keep their earliest times, so :meth:`validate` reports where."""
        routes = [[int(s) for s in r] for r in routes if len(r)]
        n = problem.n_stops
        for r in routes:
            bad = [s for s in r if not 0 <= s < n]
            if bad:
                raise ConfigError(f"{method}: stop {bad[0]} does not exist (the problem has stops 0..{n - 1})")
        deps, arrs, rets, loads, km = [], [], [], [], 0.0
        for r in routes:
            dep, arr, ret = _schedule(problem, r)
            deps.append(dep)
            arrs.append(arr)
            rets.append(ret)
            loads.append(float(problem.demand_kg[r].sum()))
            km += _route_km(problem, r)
        served = {s for r in routes for s in r}
        return cls(method, routes, loads, deps, arrs, rets, float(km), int(sum(rets) - sum(deps)),
                   [s for s in range(n) if s not in served], float(solve_seconds), status)

    def validate(self, problem: RouteProblem) -> list[str]:
        """Every constraint this plan breaks, as text (an empty list: the plan is feasible): each stop
        served at most once and either served or dropped; no more routes than vehicles; each route's
        load within capacity; each vehicle leaving no earlier than the day's start, reaching each stop
        no sooner than the travel allows and starting service inside its window, and back by the
        day's end; the stated loads and distance equal to what the routes give."""
        out: list[str] = []
        n, T, svc, win = problem.n_stops, problem.travel_s, problem.service_s, problem.windows_s
        seen: dict[int, int] = {}
        for v, r in enumerate(self.routes):
            for s in r:
                if not 0 <= s < n:
                    out.append(f"route {v}: stop {s} does not exist (stops are 0..{n - 1})")
                elif s in seen:
                    out.append(f"stop {s} is served twice (routes {seen[s]} and {v})")
                else:
                    seen[s] = v
        dropped = set(self.dropped)
        for s in sorted(dropped & set(seen)):
            out.append(f"stop {s} is both served (route {seen[s]}) and dropped")
        missing = sorted(set(range(n)) - set(seen) - dropped)
        if missing:
            out.append(f"stops {missing[:10]} are neither served nor dropped")
        if len(self.routes) > problem.vehicles:
            out.append(f"{len(self.routes)} routes for {problem.vehicles} vehicles")
        if out:                                      # the schedule checks need valid, distinct stops
            return out
        if not (len(self.loads_kg) == len(self.departures_s) == len(self.arrivals_s) == len(self.returns_s)
                == len(self.routes)):
            return out + ["the plan's loads, departures, arrivals and returns do not list one entry per route"]
        cap = problem.capacity_g
        for v, r in enumerate(self.routes):
            load_g = int(problem.demand_g[r].sum())
            if load_g > cap:
                out.append(f"route {v}: load {load_g / 1000:g} kg exceeds the capacity {cap / 1000:g} kg")
            if abs(self.loads_kg[v] - float(problem.demand_kg[r].sum())) > 1e-6:
                out.append(f"route {v}: stated load {self.loads_kg[v]:g} kg, its stops weigh "
                           f"{problem.demand_kg[r].sum():g} kg")
            arr = self.arrivals_s[v]
            if len(arr) != len(r):
                out.append(f"route {v}: {len(arr)} arrival times for {len(r)} stops")
                continue
            t, prev = self.departures_s[v], 0
            if t < problem.day_start_s:
                out.append(f"route {v}: leaves at {_hhmm(t)}, before the day starts ({_hhmm(problem.day_start_s)})")
            for s, a in zip(r, arr):
                if a < t + T[prev, s + 1]:
                    out.append(f"route {v}: stop {s} reached at {_hhmm(a)}, sooner than the travel allows "
                               f"({_hhmm(t + T[prev, s + 1])})")
                if not win[s, 0] <= a <= win[s, 1]:
                    out.append(f"route {v}: stop {s} served at {_hhmm(a)}, outside its window "
                               f"{_hhmm(win[s, 0])}–{_hhmm(win[s, 1])}")
                t, prev = max(a, t + T[prev, s + 1]) + svc[s], s + 1
            back = t + T[prev, 0]
            if self.returns_s[v] < back:
                out.append(f"route {v}: stated back at {_hhmm(self.returns_s[v])}, the travel needs {_hhmm(back)}")
            if max(back, self.returns_s[v]) > problem.day_end_s:
                out.append(f"route {v}: back at {_hhmm(max(back, self.returns_s[v]))}, after the day ends "
                           f"({_hhmm(problem.day_end_s)})")
        km = sum(_route_km(problem, r) for r in self.routes)
        if abs(km - self.distance_km) > 1e-6 * max(1.0, km):
            out.append(f"stated distance {self.distance_km:.3f} km, the routes cover {km:.3f} km")
        return out

    def summary(self) -> dict:
        """The plan's figures (JSON-ready): km, hours, stops served and dropped, vehicles used."""
        return {"method": self.method, "km": round(self.distance_km, 3), "hours": round(self.hours, 3),
                "served": self.served, "dropped": len(self.dropped), "vehicles_used": self.vehicles_used,
                "solve_seconds": round(self.solve_seconds, 3), "status": self.status}

    def to_dict(self, problem: RouteProblem | None = None) -> dict:
        """The whole plan (JSON-ready); with ``problem``, the routes also name the stops' ids and say
        whether the plan is feasible."""
        out = {**self.summary(), "routes": [{"stops": r, "load_kg": round(load, 3), "leaves": _hhmm(d),
                                             "arrivals": [_hhmm(a) for a in arr], "back": _hhmm(b)}
                                            for r, load, d, arr, b in zip(self.routes, self.loads_kg,
                                                                          self.departures_s, self.arrivals_s,
                                                                          self.returns_s)],
               "dropped_stops": self.dropped}
        if problem is not None:
            if problem.stop_ids:
                for route in out["routes"]:
                    route["stop_ids"] = [problem.stop_ids[s] for s in route["stops"]]
            out["violations"] = self.validate(problem)
        return out


def _route_km(problem: RouteProblem, route: Sequence[int]) -> float:
    nodes = np.concatenate([[0], np.asarray(route, np.int64) + 1, [0]])
    return float(problem.distance_km[nodes[:-1], nodes[1:]].sum())


def _forward(problem: RouteProblem, route: Sequence[int], leave: int) -> tuple[list[int], list[int], int]:
    """(service starts, waits, back at the depot) of ``route`` leaving at ``leave``, earliest service."""
    T, svc, opens = problem.travel_s, problem.service_s, problem.windows_s[:, 0]
    t, prev, starts, waits = leave, 0, [], []
    for s in route:
        arrive = t + int(T[prev, s + 1])
        start = max(arrive, int(opens[s]))
        starts.append(start)
        waits.append(start - arrive)
        t, prev = start + int(svc[s]), s + 1
    return starts, waits, t + int(T[prev, 0])


def _schedule(problem: RouteProblem, route: Sequence[int]) -> tuple[int, list[int], int]:
    """(left, service starts, back) of one route: the earliest schedule, with the departure put off
    by δ = min(W, min_k (W_k + close_k − start_k)) where W_k is the waiting up to stop k: a later start
    shifts stop k by max(0, δ − W_k), so neither the return time nor any window changes."""
    starts, waits, _ = _forward(problem, route, problem.day_start_s)
    cum = np.cumsum(waits) if waits else np.zeros(0)
    closes = problem.windows_s[np.asarray(route, np.int64), 1] if len(route) else np.zeros(0)
    slack = cum + closes - np.asarray(starts)
    delta = int(max(0, min(cum[-1], slack.min()))) if len(route) else 0
    starts, _, back = _forward(problem, route, problem.day_start_s + delta)
    return problem.day_start_s + delta, starts, back


def nearest_neighbour_routes(problem: RouteProblem) -> RoutePlan:
    """The greedy baseline (module docstring): vehicle after vehicle, always to the nearest stop that
    is still feasible, until none fits; the feasibility test is vectorised over the unvisited stops."""
    t0 = time.perf_counter()
    n, D, T = problem.n_stops, problem.distance_km, problem.travel_s
    dem, svc, opens, closes = problem.demand_g, problem.service_s, problem.windows_s[:, 0], problem.windows_s[:, 1]
    back = T[1:, 0]
    left = np.ones(n, bool)
    routes: list[list[int]] = []
    for _ in range(problem.vehicles):
        pos, t, load, route = 0, problem.day_start_s, 0, []
        while True:
            start = np.maximum(t + T[pos, 1:], opens)
            ok = (left & (load + dem <= problem.capacity_g) & (start <= closes)
                  & (start + svc + back <= problem.day_end_s))
            if not ok.any():
                break
            j = int(np.argmin(np.where(ok, D[pos, 1:], np.inf)))
            route.append(j)
            left[j] = False
            pos, t, load = j + 1, int(start[j] + svc[j]), load + int(dem[j])
        if not route:                                # an empty vehicle fits nothing: nor will the next
            break
        routes.append(route)
    return RoutePlan.from_routes(problem, routes, "nearest_neighbour", solve_seconds=time.perf_counter() - t0,
                                 status="greedy")


def plan_routes(problem: RouteProblem, time_limit_s: float = 10.0, seed: int | None = 0) -> RoutePlan:
    """OR-Tools routing with time windows, capacities and droppable stops (module docstring); stops
    after ``time_limit_s`` of guided local search. ``seed`` permutes the stops' order in the model
    (``None``: as given)."""
    try:
        from ortools.constraint_solver import pywrapcp, routing_enums_pb2
    except ImportError as e:
        raise ImportError("plan_routes needs OR-Tools: pip install ortools==9.15.6755 "
                          "(the shoprec extra 'logistics')") from e
    if not (np.isfinite(time_limit_s) and time_limit_s > 0):
        raise ConfigError(f"time_limit_s must be a number of seconds > 0; got {time_limit_s!r}")
    t0 = time.perf_counter()
    n, V = problem.n_stops, problem.vehicles
    if n == 0:
        return RoutePlan.from_routes(problem, [], "ortools", status="no stops")
    order = np.arange(n) if seed is None else np.random.default_rng(seed).permutation(n)
    nodes = np.concatenate([[0], order + 1])
    dist_m = np.rint(problem.distance_km[np.ix_(nodes, nodes)] * 1000).astype(np.int64)
    service = np.concatenate([[0], problem.service_s[order]])
    time_m = problem.travel_s[np.ix_(nodes, nodes)] + service[:, None]
    np.fill_diagonal(time_m, 0)
    np.fill_diagonal(dist_m, 0)

    manager = pywrapcp.RoutingIndexManager(n + 1, V, 0)
    routing = pywrapcp.RoutingModel(manager)
    dist_cb = routing.RegisterTransitMatrix(dist_m.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(dist_cb)

    time_cb = routing.RegisterTransitMatrix(time_m.tolist())
    day = problem.day_end_s - problem.day_start_s
    routing.AddDimension(time_cb, day, problem.day_end_s, False, "Time")
    tdim = routing.GetDimensionOrDie("Time")
    win = problem.windows_s[order]
    for k in range(n):
        tdim.CumulVar(manager.NodeToIndex(k + 1)).SetRange(int(win[k, 0]), int(win[k, 1]))
    for v in range(V):
        tdim.CumulVar(routing.Start(v)).SetRange(problem.day_start_s, problem.day_end_s)
        tdim.CumulVar(routing.End(v)).SetRange(problem.day_start_s, problem.day_end_s)

    demand = np.concatenate([[0], problem.demand_g[order]])
    dem_cb = routing.RegisterUnaryTransitVector(demand.tolist())
    routing.AddDimensionWithVehicleCapacity(dem_cb, 0, [problem.capacity_g] * V, True, "Capacity")

    # dropping a stop costs more than every route together could: serving stops comes first
    penalty = int(2 * (n + 2) * max(int(dist_m.max()), 1) + 1)
    for k in range(n):
        routing.AddDisjunction([manager.NodeToIndex(k + 1)], penalty)

    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    params.time_limit.FromMilliseconds(max(1, int(round(time_limit_s * 1000))))
    solution = routing.SolveWithParameters(params)
    status = routing_enums_pb2.RoutingSearchStatus.Value.Name(routing.status())
    routes: list[list[int]] = []
    if solution is not None:
        for v in range(V):
            idx, route = solution.Value(routing.NextVar(routing.Start(v))), []
            while not routing.IsEnd(idx):
                route.append(int(order[manager.IndexToNode(idx) - 1]))
                idx = solution.Value(routing.NextVar(idx))
            routes.append(route)
    return RoutePlan.from_routes(problem, routes, "ortools", solve_seconds=time.perf_counter() - t0, status=status)


def compare_plans(problem: RouteProblem, *, time_limit_s: float = 10.0, seed: int | None = 0) -> dict:
    """OR-Tools against nearest-neighbour on the same stops (module docstring), JSON-ready:
    ``ortools`` and ``nearest_neighbour`` (each plan's summary and its violations, on the whole day),
    ``basis`` (what the distances were compared on), ``ratio`` (OR-Tools km / nearest-neighbour km
    on that basis, ``None`` when OR-Tools could not serve those stops either), ``saving`` (1 − ratio) and
    ``plans`` (both whole plans, :meth:`RoutePlan.to_dict`)."""
    nn = nearest_neighbour_routes(problem)
    ort = plan_routes(problem, time_limit_s=time_limit_s, seed=seed)
    served_nn = sorted(s for r in nn.routes for s in r)
    served_ort = sorted(s for r in ort.routes for s in r)
    out = {"ortools": {**ort.summary(), "violations": ort.validate(problem)},
           "nearest_neighbour": {**nn.summary(), "violations": nn.validate(problem)}}
    if served_nn == served_ort:
        out["basis"] = f"the same {len(served_nn)} stops (both plans serve them)"
        cmp_km, ok = ort.distance_km, True
    else:
        sub = problem.subset(served_nn)
        again = plan_routes(sub, time_limit_s=time_limit_s, seed=seed)
        ok = not again.dropped
        cmp_km = again.distance_km
        out["basis"] = (f"the {len(served_nn)} stops the nearest-neighbour plan serves (OR-Tools serves "
                        f"{len(served_ort)} of the day's {problem.n_stops}; re-solved on those)")
        out["ortools_on_nn_stops"] = {**again.summary(), "violations": again.validate(sub)}
        if not ok:
            out["basis"] += f": OR-Tools drops {len(again.dropped)} of them, no ratio"
    ratio = cmp_km / nn.distance_km if ok and nn.distance_km > 0 else None
    out["ratio"] = None if ratio is None else round(ratio, 4)
    out["saving"] = None if ratio is None else round(1 - ratio, 4)
    out["plans"] = {"ortools": ort.to_dict(problem), "nearest_neighbour": nn.to_dict(problem)}
    return out


# --- the day from Olist -------------------------------------------------------------------------------


def _find_file(root: Path, kind: str) -> Path:
    for name in _OLIST_FILES[kind]:
        hits = sorted(root.rglob(name))
        if hits:
            return hits[0]
    raise DataError(f"no {' or '.join(_OLIST_FILES[kind])} under the folder (it holds {_OLIST_WHAT[kind]})",
                    path=str(root))


def _read_csv(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError("the file is empty", path=str(path)) from None
    except (UnicodeDecodeError, pd.errors.ParserError) as e:
        raise DataError(f"not a CSV file pandas can read ({e})", path=str(path)) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"no column {missing[0]!r}; expected the columns {list(required)} (the file has "
                        f"{list(frame.columns)})", path=str(path))
    if frame.empty:
        raise DataError("the file has a header but no data rows", path=str(path))
    return frame


def _zip(values: pd.Series) -> np.ndarray:
    """Zip prefixes as integers (the samples drop leading zeros: ``9790`` is ``09790``), −1 if not one."""
    z = pd.to_numeric(values.astype("string").str.strip().str.strip('"'), errors="coerce")
    return z.fillna(-1).to_numpy(np.float64).astype(np.int64)


def _geolocation(path: Path) -> pd.DataFrame:
    geo = _read_csv(path, ("geolocation_zip_code_prefix", "geolocation_lat", "geolocation_lng"))
    lat = pd.to_numeric(geo["geolocation_lat"], errors="coerce").to_numpy(np.float64)
    lng = pd.to_numeric(geo["geolocation_lng"], errors="coerce").to_numpy(np.float64)
    z = _zip(geo["geolocation_zip_code_prefix"])
    ok = (z >= 0) & np.isfinite(lat) & np.isfinite(lng) & (np.abs(lat) <= 90) & (np.abs(lng) <= 180)
    if not ok.any():
        raise DataError("no row holds a zip prefix with a valid latitude and longitude", path=str(path))
    return pd.DataFrame({"zip": z[ok], "lat": lat[ok], "lng": lng[ok]}).groupby("zip").mean()


def problem_from_olist(folder: str | Path, seller: str | None = None, *, n_stops: int = 60, vehicles: int = 4,
                       capacity_kg: float = 150.0, seed: int = 0, depot: tuple[float, float] | None = None,
                       radius_km: float = 30.0, day: tuple[float, float] = (8.0, 18.0),
                       slots: dict[str, tuple[float, float]] | None = None,
                       slot_weights: Sequence[float] = (0.35, 0.35, 0.30), service_min: float = 5.0,
                       speed_kmh: float = 20.0, road_factor: float = 1.4,
                       parcel_kg: float | None = None) -> RouteProblem:
    """One warehouse's day of ``n_stops`` deliveries from an Olist folder (module docstring: what is
    real and what is drawn). The depot is ``depot`` (lat, lng) when given, else ``seller``'s
    geolocated zip prefix, else that of the seller with the most order lines in the items file whose
    prefix geolocates. ``slots`` (default :data:`DAY_SLOTS`) are the windows a stop is drawn from with
    ``slot_weights``; ``parcel_kg`` replaces the drawn real parcels by a constant."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError("expected a folder holding the Olist CSV files (geolocation, customers, sellers, "
                        "orders, order items, products)", path=str(root))
    slots = dict(DAY_SLOTS if slots is None else slots)
    weights = np.asarray(slot_weights, np.float64)
    if int(n_stops) != n_stops or n_stops < 1:
        raise ConfigError(f"n_stops must be a whole number ≥ 1; got {n_stops!r}")
    if len(weights) != len(slots) or not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError(f"slot_weights must be {len(slots)} numbers ≥ 0, not all 0 (one per slot "
                          f"{list(slots)}); got {list(slot_weights)}")
    if not (np.isfinite(radius_km) and radius_km > 0):
        raise ConfigError(f"radius_km must be a number > 0; got {radius_km!r}")
    if parcel_kg is not None and not (np.isfinite(parcel_kg) and parcel_kg >= 0):
        raise ConfigError(f"parcel_kg must be a number ≥ 0 or None (draw real parcels); got {parcel_kg!r}")
    rng = np.random.default_rng(seed)
    paths = {k: _find_file(root, k) for k in _OLIST_FILES if not (k == "sellers" and depot is not None)}
    geo = _geolocation(paths["geolocation"])
    items = _read_csv(paths["items"], ("order_id", "product_id", "seller_id", "shipping_limit_date"))
    from ..data.adapters.olist import parse_olist_dates   # the Olist date formats (shoprec.data is heavy to import)

    prov: list[str] = [f"geolocation: {len(geo):,} zip prefixes ({paths['geolocation'].name}, rows averaged "
                       "per prefix)"]

    # the depot
    if depot is not None:
        dlat, dlng = float(depot[0]), float(depot[1])
        if not (np.isfinite(dlat) and np.isfinite(dlng) and abs(dlat) <= 90 and abs(dlng) <= 180):
            raise ConfigError(f"depot must be (latitude, longitude) in degrees; got {depot!r}")
        seller_id, depot_note = None, f"depot: the chosen warehouse point ({dlat:.5f}, {dlng:.5f}) — no seller's orders"
    else:
        sellers = _read_csv(paths["sellers"], ("seller_id", "seller_zip_code_prefix"))
        sz = pd.Series(_zip(sellers["seller_zip_code_prefix"]), index=sellers["seller_id"].str.strip('"'))
        located = sz[sz.isin(geo.index)]
        if seller is not None:
            if seller not in sz.index:
                raise DataError(f"no seller {seller!r} (the file lists {len(sz):,} sellers)",
                                path=str(paths["sellers"]))
            if seller not in located.index:
                raise DataError(f"the zip prefix {int(sz[seller]):05d} of seller {seller!r} is not in "
                                f"{paths['geolocation'].name} (it holds {len(geo):,} prefixes); give --depot or "
                                f"another seller", path=str(paths["sellers"]))
            seller_id, how = seller, "as asked"
        else:
            if located.empty:
                raise DataError(f"no seller's zip prefix is in {paths['geolocation'].name} ({len(geo):,} "
                                "prefixes); give a depot point", path=str(paths["sellers"]))
            lines = items["seller_id"].value_counts()
            busy = pd.DataFrame({"lines": lines.reindex(located.index).fillna(0).to_numpy()}, index=located.index)
            busy = busy.assign(sid=busy.index).sort_values(["lines", "sid"], ascending=[False, True])
            seller_id = str(busy.index[0])
            how = (f"the seller with the most order lines in {paths['items'].name} ({int(busy['lines'].iloc[0])}) "
                   f"among the {len(located)} whose zip prefix geolocates")
        z = int(located[seller_id])
        dlat, dlng = float(geo.at[z, "lat"]), float(geo.at[z, "lng"])
        depot_note = f"depot: seller {seller_id} (zip prefix {z:05d}, {dlat:.5f}, {dlng:.5f}), {how}"
    prov.append(depot_note)

    # the customers who geolocate near the depot
    cust = _read_csv(paths["customers"], ("customer_id", "customer_zip_code_prefix"))
    cz = _zip(cust["customer_zip_code_prefix"])
    here = np.isin(cz, geo.index.to_numpy())
    cust = cust.assign(zip=cz)[here].drop_duplicates("customer_id").reset_index(drop=True)
    clat, clng = geo.loc[cust["zip"], "lat"].to_numpy(), geo.loc[cust["zip"], "lng"].to_numpy()
    near = haversine_km(dlat, dlng, clat, clng) <= radius_km
    n_geo = len(cust)
    cust = cust[near].reset_index(drop=True)
    prov.append(f"customers: {n_geo:,} of {int(len(cz)):,} in {paths['customers'].name} geolocate, {len(cust):,} "
                f"of them within {radius_km:g} km of the depot")
    if len(cust) < n_stops:
        raise DataError(f"only {len(cust)} customers geolocate within {radius_km:g} km of the depot "
                        f"({paths['geolocation'].name} holds {len(geo):,} zip prefixes); ask for at most "
                        f"{len(cust)} stops or a larger radius", path=str(paths["customers"]))

    # the orders, their parcels
    orders = _read_csv(paths["orders"], ("order_id", "customer_id"))
    products = _read_csv(paths["products"], ("product_id", "product_weight_g"))
    w = pd.to_numeric(products["product_weight_g"], errors="coerce")
    median_g = float(w.median()) if w.notna().any() else 1000.0
    weight_g = pd.Series(w.to_numpy(), index=products["product_id"]).groupby(level=0).first()
    line_g = weight_g.reindex(items["product_id"]).to_numpy(np.float64)
    unweighed = int(np.isnan(line_g).sum())
    lines = items.assign(kg=np.where(np.isnan(line_g), median_g, line_g) / 1000.0)
    order_cust = orders.drop_duplicates("order_id").set_index("order_id")["customer_id"]
    parcels = lines.groupby("order_id")["kg"].sum()
    cust_order = orders.drop_duplicates("customer_id").set_index("customer_id")["order_id"]

    # the seller's own orders on its busiest day
    real = pd.DataFrame(columns=["customer_id", "kg"])
    if seller_id is not None:
        mine = lines[lines["seller_id"].str.strip('"') == seller_id]
        mine = mine.assign(customer_id=order_cust.reindex(mine["order_id"]).to_numpy(),
                           day=np.floor(parse_olist_dates(mine["shipping_limit_date"]) / 86_400))
        joined = mine[mine["customer_id"].isin(cust["customer_id"]) & np.isfinite(mine["day"])]
        if len(joined):
            per_day = joined.groupby("day")["order_id"].nunique().sort_values(ascending=False, kind="stable")
            best = joined[joined["day"] == per_day.index[0]]
            real = best.groupby("order_id").agg(customer_id=("customer_id", "first"), kg=("kg", "sum"))
            real = real.drop_duplicates("customer_id").reset_index(drop=True)
            if len(real) > n_stops:
                real = real.iloc[np.sort(rng.choice(len(real), n_stops, replace=False))].reset_index(drop=True)
            day_text = pd.Timestamp(per_day.index[0] * 86_400, unit="s").strftime("%Y-%m-%d")
            prov.append(f"the seller's own orders: {mine['order_id'].nunique()} in {paths['items'].name}, "
                        f"{joined['order_id'].nunique()} reach a geolocated customer; its busiest day ({day_text}) "
                        f"has {len(real)}")
        else:
            prov.append(f"the seller's own orders: {mine['order_id'].nunique()} in {paths['items'].name}, none "
                        "reaches a customer who geolocates (the samples join only partly)")
    n_real = len(real)
    if n_real < n_stops:
        prov.append(f"too few real orders of one seller on one day ({n_real} < {n_stops}): the day is "
                    + (f"those {n_real} plus " if n_real else "")
                    + f"{n_stops - n_real} real geolocated customers of the sample, chosen with seed {seed}")
    rest = cust[~cust["customer_id"].isin(real["customer_id"])].reset_index(drop=True)
    pick = rest.iloc[np.sort(rng.choice(len(rest), n_stops - n_real, replace=False))] if n_stops > n_real \
        else rest.iloc[:0]

    # each drawn stop's parcel: its own order's lines where they join, else a drawn one
    own = cust_order.reindex(pick["customer_id"]).map(parcels)
    own_kg = own.to_numpy(np.float64, copy=True)
    n_own = int(np.isfinite(own_kg).sum())
    need = ~np.isfinite(own_kg)
    if parcel_kg is not None:
        own_kg[need] = parcel_kg
        parcel_note = f"the constant {parcel_kg:g} kg"
    else:
        pool = parcels[parcels <= capacity_kg].to_numpy(np.float64)
        if pool.size == 0:
            raise DataError(f"no order of {paths['items'].name} weighs ≤ {capacity_kg:g} kg to draw parcels from",
                            path=str(paths["items"]))
        own_kg[need] = rng.choice(pool, int(need.sum()))
        parcel_note = (f"drawn from the {pool.size:,} real parcels of {paths['items'].name} that fit a vehicle "
                       f"(order lines × {paths['products'].name} weight_g)")
    prov.append(f"parcels: {n_real + n_own} from the stop's own order, {int(need.sum())} {parcel_note}; "
                f"{unweighed} order lines without a product weight count as the median {median_g:g} g")

    ids = list(real["customer_id"]) + list(pick["customer_id"])
    kg = np.concatenate([real["kg"].to_numpy(np.float64), own_kg])
    zips = cust.set_index("customer_id").loc[ids, "zip"].to_numpy()
    names = list(slots)
    chosen = rng.choice(len(names), n_stops, p=weights / weights.sum())
    windows = np.asarray([slots[names[c]] for c in chosen], np.float64) * HOUR
    counts = {name: int((chosen == i).sum()) for i, name in enumerate(names)}
    slot_text = ", ".join(f"{name} {_hhmm(a * HOUR)}–{_hhmm(b * HOUR)} ×{counts[name]}"
                          for name, (a, b) in slots.items())
    prov.append(f"time windows (drawn, seed {seed}): {slot_text}")
    heavy = int((kg > capacity_kg).sum())
    if heavy:
        prov.append(f"{heavy} parcels weigh more than a vehicle carries ({capacity_kg:g} kg): no plan can serve them")
    notes = {"provenance": prov, "seller_id": seller_id, "depot": [dlat, dlng], "real_orders": n_real,
             "drawn_stops": n_stops - n_real, "own_parcels": n_real + n_own, "drawn_parcels": int(need.sum()),
             "slots": counts, "seed": seed, "files": {k: str(p) for k, p in paths.items()}}
    return RouteProblem.from_points((dlat, dlng), geo.loc[zips, "lat"].to_numpy(), geo.loc[zips, "lng"].to_numpy(),
                                    road_factor=road_factor, demand_kg=kg, windows_s=windows,
                                    service_s=np.full(n_stops, service_min * 60.0), vehicles=vehicles,
                                    capacity_kg=capacity_kg, day_start_s=int(round(day[0] * HOUR)),
                                    day_end_s=int(round(day[1] * HOUR)), speed_kmh=speed_kmh,
                                    stop_ids=tuple(str(i) for i in ids), notes=notes)

