"""Marketplace health: detectors whose results reach the rest of the engine through one narrow door,
flags with a reason (:mod:`.flags`). Price supervision is in :mod:`.prices`."""

from .flags import FLAG_COLUMNS, Flags
from .prices import PriceSupervisor, price_series

__all__ = ["FLAG_COLUMNS", "Flags", "PriceSupervisor", "price_series"]
