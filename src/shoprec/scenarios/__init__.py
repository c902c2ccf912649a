"""Scenarios: each page's mix of strategies, fused, ranked, filtered by business rules, diversified
and explained. See :mod:`.config` for the TOML format and :mod:`.pipeline` for the stages."""

from .config import (SCENARIO_NAMES, DiversityConfig, FusionConfig, RankerConfig, RulesConfig, ScenarioConfig,
                     StrategySpec, default_scenarios, load_scenario, scenario_from_dict)
from .context import Filters, Reason, RecommendedItem, RequestContext, Response, SessionEvent
from .engine import Recommender
from .pipeline import ModelCache, Recommendations, RequestFilters, ScenarioPipeline

__all__ = [
    "DiversityConfig", "Filters", "FusionConfig", "ModelCache", "RankerConfig", "Reason", "RecommendedItem",
    "Recommendations", "Recommender", "RequestContext", "RequestFilters", "Response", "RulesConfig",
    "SCENARIO_NAMES", "ScenarioConfig", "ScenarioPipeline", "SessionEvent", "StrategySpec",
    "default_scenarios", "load_scenario", "scenario_from_dict",
]
