"""Candidate strategies. Every one follows the protocol of :mod:`shoprec.strategies.base`."""

from .base import STRATEGIES, Candidates, Queries, Strategy, StrategyConfig, make_strategy, register
from .cold_start import ColdStartConfig, ColdStartStrategy
from .content import ContentEmbeddingConfig, ContentEmbeddingStrategy, ContentTFIDFConfig, ContentTFIDFStrategy
from .ease import EASEConfig, EASEStrategy
from .factorization import ALSConfig, ALSStrategy, BPRConfig, BPRStrategy
from .fbt import FBTConfig, FBTStrategy
from .item_knn import ItemKNNConfig, ItemKNNStrategy
from .linear_filter import LinearFilterConfig, LinearFilterStrategy
from .popularity import PopularityConfig, PopularityStrategy
from .sasrec import SASRecConfig, SASRecStrategy
from .sequential import SequentialConfig, SequentialStrategy
from .session_knn import SessionKNNConfig, SessionKNNStrategy

__all__ = [
    "ColdStartConfig", "ColdStartStrategy", "ContentEmbeddingConfig", "ContentEmbeddingStrategy",
    "ContentTFIDFConfig", "ContentTFIDFStrategy", "FBTConfig", "FBTStrategy", "SASRecConfig", "SASRecStrategy",
    "ALSConfig", "ALSStrategy", "BPRConfig", "BPRStrategy", "Candidates", "EASEConfig", "EASEStrategy",
    "ItemKNNConfig", "ItemKNNStrategy", "LinearFilterConfig", "LinearFilterStrategy",
    "PopularityConfig", "PopularityStrategy", "Queries", "STRATEGIES", "SequentialConfig",
    "SequentialStrategy", "SessionKNNConfig", "SessionKNNStrategy", "Strategy", "StrategyConfig",
    "make_strategy", "register",
]
