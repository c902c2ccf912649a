"""The event, item and user schema: behaviour names, column names, default weights.

Every reader maps its input onto these names; everything downstream uses only them.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Mapping


class Behaviour(IntEnum):
    """What a user did with an item. Stored as int8 codes in the event table."""

    VIEW = 0
    CLICK = 1
    ADD_TO_CART = 2
    REMOVE_FROM_CART = 3
    PURCHASE = 4
    RATING = 5
    SEARCH = 6
    FAVOURITE = 7
    INTERACTION = 8  # an implicit interaction of unknown kind (research splits)

    @classmethod
    def parse(cls, name: str) -> "Behaviour":
        """Parse a behaviour name or one of its common aliases (case-insensitive)."""
        key = str(name).strip().lower()
        try:
            return _ALIASES[key]
        except KeyError:
            raise ValueError(
                f"unknown behaviour {name!r}; expected one of {sorted(_ALIASES)}"
            ) from None


_ALIASES: dict[str, Behaviour] = {
    "view": Behaviour.VIEW, "pv": Behaviour.VIEW, "page_view": Behaviour.VIEW, "detail": Behaviour.VIEW,
    "click": Behaviour.CLICK,
    "add_to_cart": Behaviour.ADD_TO_CART, "addtocart": Behaviour.ADD_TO_CART, "cart": Behaviour.ADD_TO_CART,
    "add-to-cart": Behaviour.ADD_TO_CART,
    "remove_from_cart": Behaviour.REMOVE_FROM_CART, "removefromcart": Behaviour.REMOVE_FROM_CART,
    "remove-from-cart": Behaviour.REMOVE_FROM_CART,
    "purchase": Behaviour.PURCHASE, "buy": Behaviour.PURCHASE, "transaction": Behaviour.PURCHASE,
    "order": Behaviour.PURCHASE,
    "rating": Behaviour.RATING, "rate": Behaviour.RATING,
    "search": Behaviour.SEARCH,
    "favourite": Behaviour.FAVOURITE, "favorite": Behaviour.FAVOURITE, "fav": Behaviour.FAVOURITE,
    "wishlist": Behaviour.FAVOURITE,
    "interaction": Behaviour.INTERACTION,
}

#: Default weight of each behaviour in the user×item matrix: view < cart < purchase.
#: Removing from the cart and searching carry no positive signal about the item.
DEFAULT_WEIGHTS: Mapping[Behaviour, float] = {
    Behaviour.VIEW: 1.0,
    Behaviour.CLICK: 1.0,
    Behaviour.SEARCH: 0.0,
    Behaviour.FAVOURITE: 2.0,
    Behaviour.ADD_TO_CART: 3.0,
    Behaviour.REMOVE_FROM_CART: 0.0,
    Behaviour.PURCHASE: 5.0,
    Behaviour.RATING: 1.0,
    Behaviour.INTERACTION: 1.0,
}

#: Event columns. ``user_id``, ``item_id`` are required in every source; the rest are optional.
EVENT_COLUMNS: dict[str, str] = {
    "user_id": "who (string id; may be empty for a guest when session_id is given)",
    "item_id": "which item (string id)",
    "behaviour": "view, click, add_to_cart, remove_from_cart, purchase, rating, search, favourite "
                 "(aliases: pv, cart, buy, transaction, …); default: interaction",
    "timestamp": "when: ISO 8601 text, or unix seconds / milliseconds",
    "session_id": "the visit the event belongs to",
    "quantity": "units (purchase / cart)",
    "price": "unit price paid",
    "rating": "explicit rating value",
    "scenario": "page the event came from (home, item_page, cart, …)",
    "country": "country of the user at the time",
    "device": "device class",
}
REQUIRED_EVENT_COLUMNS = ("user_id", "item_id")

#: Item attribute columns (all optional besides item_id).
ITEM_COLUMNS: dict[str, str] = {
    "item_id": "the item's string id",
    "title": "short name",
    "description": "free text",
    "category": "category path, levels separated by ' > ' or '/'",
    "brand": "brand",
    "price": "current unit price",
    "seller": "seller id (marketplaces)",
    "in_stock": "true/false",
}

#: Internal columns of the event table held by :class:`shoprec.data.ShopData`.
INTERNAL_EVENT_DTYPES: dict[str, str] = {
    "user_idx": "int32",
    "item_idx": "int32",
    "behaviour": "int8",
    "timestamp": "int64",      # unix seconds; -1 when unknown
    "session_idx": "int32",    # -1 when unknown
    "quantity": "float32",
    "price": "float32",
    "rating": "float32",
}
