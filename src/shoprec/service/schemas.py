"""The HTTP API's request and response bodies (separate from the domain types they map to)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..data import Behaviour
from ..scenarios.context import RequestContext, SessionEvent, check_time

_ID = Field(min_length=1, max_length=256)
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendationRequest(RequestContext):
    """What the page knows (every field optional). A request that names a visitor (``user_id``, or
    ``session_id`` for a guest) and sends no ``session`` / ``basket`` gets the visitor's live ones."""

    session_id: str | None = Field(default=None, min_length=1, max_length=256,
                                   description="The visit, for guests without a user id.")
    user_id: str | None = Field(default=None, min_length=1, max_length=256, description="Logged-in or cookie user id.")
    session: list[SessionEvent | str] = Field(default_factory=list, max_length=200,
                                              description="The session's recent events, oldest first.")
    basket: list[str] = Field(default_factory=list, max_length=200, description="Item ids in the cart.")
    query: str | None = Field(default=None, max_length=1000, description="Search text.")
    k: int | None = Field(default=None, ge=1, le=200, description="How many items; default: the scenario's K.")

    def context(self) -> dict[str, Any]:
        """The domain request context (without the service-only fields)."""
        return self.model_dump(exclude={"session_id"}, exclude_defaults=True)


class ReasonOut(BaseModel):
    strategy: str
    text: str
    anchor_item_id: str | None = None


class ItemOut(BaseModel):
    item_id: str
    title: str | None = None
    score: float
    position: int = Field(description="1-based position shown.")
    reason: str = Field(description="The main reason, for a person.")
    strategies: list[str] = Field(description="The strategies that proposed the item.")
    reasons: list[ReasonOut]
    propensity: float = Field(description="Probability that this policy shows this item at this position.")


class RecommendationResponse(BaseModel):
    request_id: str = Field(description="Send it back with the events (clicks, carts) this response led to.")
    scenario: str
    model_version: str
    items: list[ItemOut]
    notes: list[str] = Field(default_factory=list, description="What was ignored or fell back, and why.")


class EventIn(_Strict):
    """One event. ``user_id`` or ``session_id`` says whose it is; ``event_id`` makes retries safe."""

    event_id: str | None = Field(default=None, min_length=1, max_length=128,
                                 description="Your id of the event; a retried id is stored once. Default: assigned.")
    user_id: str | None = Field(default=None, min_length=1, max_length=256)
    session_id: str | None = Field(default=None, min_length=1, max_length=256)
    item_id: str = _ID
    behaviour: str = Field(default="view", description="view, click, add_to_cart, remove_from_cart, purchase, "
                                                       "favourite, rating, search (aliases: pv, cart, buy …)")
    timestamp: float | datetime | None = Field(default=None, description="Unix seconds or ISO 8601; default: now.")
    quantity: float | None = Field(default=None, ge=0, le=1e9)
    price: float | None = Field(default=None, ge=0, le=1e12)
    request_id: str | None = Field(default=None, max_length=128,
                                   description="The recommendation response this event followed.")
    position: int | None = Field(default=None, ge=1, le=10_000, description="Position of the item in that response.")
    scenario: str | None = Field(default=None, max_length=64)
    country: str | None = Field(default=None, max_length=64)
    device: str | None = Field(default=None, max_length=64)

    @field_validator("behaviour")
    @classmethod
    def _behaviour(cls, v: str) -> str:
        return Behaviour.parse(v).name.lower()

    @field_validator("timestamp")
    @classmethod
    def _timestamp(cls, v: float | datetime | None) -> float | datetime | None:
        return check_time(v)

    @model_validator(mode="after")
    def _whose(self) -> "EventIn":
        if self.user_id is None and self.session_id is None:
            raise ValueError("an event needs user_id or session_id (whose event it is)")
        return self

    def unix_time(self, default: float) -> float:
        if self.timestamp is None:
            return default
        if isinstance(self.timestamp, datetime):
            return self.timestamp.timestamp()
        return float(self.timestamp)


class EventBatch(_Strict):
    events: list[EventIn] = Field(min_length=1, description="Oldest first.")


class EventsAccepted(BaseModel):
    accepted: int = Field(description="Events newly stored.")
    duplicates: int = Field(description="Events whose event_id was already stored (kept once).")
    unknown_items: int = Field(description="Stored events about items not in the catalogue: kept for "
                                           "training, not used online until the item is PUT.")
    last_seq: int = Field(description="The store's sequence number of the last event of the batch.")


class ItemIn(_Strict):
    item_id: str = _ID
    title: str | None = Field(default=None, max_length=1000)
    description: str | None = Field(default=None, max_length=20_000)
    category: str | None = Field(default=None, max_length=500)
    brand: str | None = Field(default=None, max_length=200)
    price: float | None = Field(default=None, ge=0, le=1e12)
    in_stock: bool | None = None
    seller: str | None = Field(default=None, max_length=256)


class ItemBatch(_Strict):
    items: list[ItemIn] = Field(min_length=1)


class ItemsAccepted(BaseModel):
    added: int = Field(description="Items new to the catalogue (recommendable at once).")
    updated: int = Field(description="Known items whose attributes changed.")


class ItemOutFull(BaseModel):
    item_id: str
    title: str | None = None
    description: str | None = None
    category: str | None = None
    price: float | None = None
    in_stock: bool = True


class ErrorDetail(BaseModel):
    code: str
    message: str
    hint: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ModelInfo(BaseModel):
    version: str
    created: str | None = None
    scenarios: list[str]
    n_items: int
    n_users: int
    trained_through_seq: int
    path: str | None = None


class Health(BaseModel):
    status: str
    model_version: str | None = None
    events_applied: int = 0
    last_event_seq: int = 0
