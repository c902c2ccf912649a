"""Logistics beside the recommender: route planning for one warehouse's day of deliveries.

Optional: :func:`plan_routes` needs OR-Tools (``pip install ortools==9.15.6755``); the problem, the
nearest-neighbour baseline and the plan's validation are numpy and pandas only.
"""

from .routes import (DAY_SLOTS, RoutePlan, RouteProblem, compare_plans, haversine_km, nearest_neighbour_routes,
                     plan_routes, problem_from_olist)

__all__ = ["DAY_SLOTS", "RoutePlan", "RouteProblem", "compare_plans", "haversine_km", "nearest_neighbour_routes",
           "plan_routes", "problem_from_olist"]
