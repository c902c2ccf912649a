"""Marketplace health: detectors whose results reach the rest of the engine through one narrow door,
flags with a reason (:mod:`.flags`). Price supervision is in :mod:`.prices`."""

from .flags import FLAG_COLUMNS, Flags
from .prices import PriceSupervisor, price_series
from .reviews import ReviewConfig, ReviewDetector, olist_reviews, poor_seller_flags, seller_review_stats

__all__ = ["FLAG_COLUMNS", "Flags", "PriceSupervisor", "ReviewConfig", "ReviewDetector", "olist_reviews",
           "poor_seller_flags", "price_series", "seller_review_stats"]
