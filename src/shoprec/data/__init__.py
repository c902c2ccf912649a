"""Shop data: schema, id maps, the `ShopData` object, readers and dataset adapters."""

from .dataset import SessionCases, ShopData, TrainTest
from .idmap import IdMap
from .ragged import Ragged
from .schema import DEFAULT_WEIGHTS, Behaviour

__all__ = ["Behaviour", "DEFAULT_WEIGHTS", "IdMap", "Ragged", "SessionCases", "ShopData", "TrainTest"]
