"""Candidate strategies. Every one follows the protocol of :mod:`shoprec.strategies.base`.

The strategy modules are imported on first use (``make_strategy("ease")``, ``STRATEGIES["ease"]``,
``from shoprec.strategies import EASEStrategy``), not by ``import shoprec.strategies``.
"""

from importlib import import_module
from typing import Any

from .base import STRATEGIES, Candidates, Queries, Strategy, StrategyConfig, make_strategy, register

#: class name → module of this package (imported when the name is first asked for)
_LAZY = {
    "ColdStartConfig": "cold_start", "ColdStartStrategy": "cold_start",
    "ContentEmbeddingConfig": "content", "ContentEmbeddingStrategy": "content",
    "ContentTFIDFConfig": "content", "ContentTFIDFStrategy": "content",
    "EASEConfig": "ease", "EASEStrategy": "ease",
    "ALSConfig": "factorization", "ALSStrategy": "factorization",
    "BPRConfig": "factorization", "BPRStrategy": "factorization",
    "FBTConfig": "fbt", "FBTStrategy": "fbt",
    "ItemKNNConfig": "item_knn", "ItemKNNStrategy": "item_knn",
    "LinearFilterConfig": "linear_filter", "LinearFilterStrategy": "linear_filter",
    "PopularityConfig": "popularity", "PopularityStrategy": "popularity",
    "SASRecConfig": "sasrec", "SASRecStrategy": "sasrec",
    "SequentialConfig": "sequential", "SequentialStrategy": "sequential",
    "SessionKNNConfig": "session_knn", "SessionKNNStrategy": "session_knn",
}

__all__ = sorted([*_LAZY, "Candidates", "Queries", "STRATEGIES", "Strategy", "StrategyConfig", "make_strategy",
                  "register"])


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
