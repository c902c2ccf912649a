"""Candidate strategies. Every one follows the protocol of :mod:`shoprec.strategies.base`."""

from .base import STRATEGIES, Candidates, Queries, Strategy, StrategyConfig, make_strategy, register
from .ease import EASEConfig, EASEStrategy
from .factorization import ALSConfig, ALSStrategy, BPRConfig, BPRStrategy
from .item_knn import ItemKNNConfig, ItemKNNStrategy
from .linear_filter import LinearFilterConfig, LinearFilterStrategy
from .popularity import PopularityConfig, PopularityStrategy
from .sequential import SequentialConfig, SequentialStrategy
from .session_knn import SessionKNNConfig, SessionKNNStrategy

__all__ = [
    "ALSConfig", "ALSStrategy", "BPRConfig", "BPRStrategy", "Candidates", "EASEConfig", "EASEStrategy",
    "ItemKNNConfig", "ItemKNNStrategy", "LinearFilterConfig", "LinearFilterStrategy",
    "PopularityConfig", "PopularityStrategy", "Queries", "STRATEGIES", "SequentialConfig",
    "SequentialStrategy", "SessionKNNConfig", "SessionKNNStrategy", "Strategy", "StrategyConfig",
    "make_strategy", "register",
]
