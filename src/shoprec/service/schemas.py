"""The HTTP API's request and response bodies (separate from the domain types they map to)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from ..data import Behaviour
from ..scenarios.context import Filters, RequestContext, SessionEvent, check_time

#: Ids (item, user, session, event, request ids; scenario, country, device names) are printable
#: text: no control character (C0 U+0000–U+001F, DEL, C1 U+0080–U+009F). PostgreSQL's TEXT and JSONB
#: refuse NUL outright (an id with one would fail the store's whole batch), and the others mangle
#: logs, CSV exports and headers. The check is a pattern, so pydantic-core runs it (no Python per
#: request); the API's 422 names the field, the character and its position.
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
#: free text (titles, descriptions, search queries) may hold newlines and tabs, never NUL
TEXT_PATTERN = r"^[^\x00]*$"
#: a header value arrives as Latin-1 text: only C0 and DEL are control bytes there
HEADER_ID_PATTERN = r"^[^\x00-\x1f\x7f]*$"
PATTERN_PROBLEMS = {ID_PATTERN: "ids are printable text", HEADER_ID_PATTERN: "ids are printable text",
                    TEXT_PATTERN: "text may not contain NUL"}
_BAD = {ID_PATTERN: re.compile(r"[\x00-\x1f\x7f-\x9f]"), HEADER_ID_PATTERN: re.compile(r"[\x00-\x1f\x7f]"),
        TEXT_PATTERN: re.compile(r"\x00")}


def pattern_problem(pattern: str, value: Any) -> str | None:
    """What is wrong with ``value`` that failed one of the patterns above (None for another pattern):
    ``"has the control character U+0000 at position 3; ids are printable text"``."""
    if pattern not in _BAD:
        return None
    m = _BAD[pattern].search(value) if isinstance(value, str) else None
    where = f" U+{ord(m.group()):04X} at position {m.start() + 1}" if m else ""
    return f"has the control character{where}; {PATTERN_PROBLEMS[pattern]}"


Id = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=ID_PATTERN)]
Name = Annotated[str, StringConstraints(max_length=64, pattern=ID_PATTERN)]
_ID = Field(min_length=1, max_length=256, pattern=ID_PATTERN)


def _text(max_length: int) -> Any:
    return Field(default=None, max_length=max_length, pattern=TEXT_PATTERN)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionEventIn(SessionEvent):
    item_id: Id
    behaviour: Name = Field(default="view", description="view, click, add_to_cart, purchase, …")


class FiltersIn(Filters):
    category: list[Annotated[str, StringConstraints(max_length=500, pattern=TEXT_PATTERN)]] = Field(
        default_factory=list, description="Only items of these categories.")
    exclude_ids: list[Id] = Field(default_factory=list, max_length=1000, description="Never return these items.")


class RecommendationRequest(RequestContext):
    """What the page knows (every field optional). A request that names a visitor (``user_id``, or
    ``session_id`` for a guest) and sends no ``session`` / ``basket`` gets the visitor's live ones."""

    session_id: Id | None = Field(default=None, description="The visit, for guests without a user id.")
    user_id: Id | None = Field(default=None, description="Logged-in or cookie user id.")
    session: list[SessionEventIn | Id] = Field(default_factory=list, max_length=200,
                                               description="The session's recent events, oldest first.")
    current_item: Id | None = Field(default=None, description="The item on the page.")
    basket: list[Id] = Field(default_factory=list, max_length=200, description="Item ids in the cart.")
    query: str | None = _text(1000)
    country: Name | None = None
    device: Name | None = None
    filters: FiltersIn = Field(default_factory=FiltersIn)
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
    experiment: dict[str, str] | None = Field(default=None, description="The A/B test and variant that answered "
                                                                        "(absent when none runs on the page).")


class EventIn(_Strict):
    """One event. ``user_id`` or ``session_id`` says whose it is; ``event_id`` makes retries safe."""

    event_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=ID_PATTERN,
                                 description="Your id of the event; a retried id is stored once. Default: assigned.")
    user_id: Id | None = None
    session_id: Id | None = None
    item_id: str = _ID
    behaviour: Name = Field(default="view", description="view, click, add_to_cart, remove_from_cart, purchase, "
                                                       "favourite, rating, search (aliases: pv, cart, buy …)")
    timestamp: float | datetime | None = Field(default=None, description="Unix seconds or ISO 8601; default: now.")
    quantity: float | None = Field(default=None, ge=0, le=1e9)
    price: float | None = Field(default=None, ge=0, le=1e12)
    request_id: str | None = Field(default=None, max_length=128, pattern=ID_PATTERN,
                                   description="The recommendation response this event followed.")
    position: int | None = Field(default=None, ge=1, le=10_000, description="Position of the item in that response.")
    scenario: Name | None = None
    country: Name | None = None
    device: Name | None = None

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
    title: str | None = _text(1000)
    description: str | None = _text(20_000)
    category: str | None = _text(500)
    brand: str | None = _text(200)
    price: float | None = Field(default=None, ge=0, le=1e12)
    in_stock: bool | None = None
    seller: Id | None = None


class ItemBatch(_Strict):
    items: list[ItemIn] = Field(min_length=1)


class PriceFlag(BaseModel):
    item_id: str
    kind: str = Field(description="spike, drop, subsidy or creep.")
    price: float
    usual: float | None = Field(description="The item's usual price (the median of its recent daily prices).")
    reason: str


class ItemsAccepted(BaseModel):
    added: int = Field(description="Items new to the catalogue (recommendable at once).")
    updated: int = Field(description="Known items whose attributes changed.")
    price_flags: list[PriceFlag] = Field(default_factory=list, description="Items of this request whose new "
                                         "price is abnormal (a scenario with a price_flags re-ranker checks "
                                         "every upserted price at once).")


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


class AdminStats(BaseModel):
    """One process's counts since it started (each worker of ``--workers`` answers for itself; its
    engine applies every worker's events, so ``events_applied`` is the service's)."""

    pid: int
    started_at: float = Field(description="Unix time this process started.")
    unknown_items_policy: str = Field(description="accept or refuse (the unknown_items setting).")
    events_accepted: int = Field(description="Events this process stored.")
    events_duplicate: int = Field(description="Events whose event_id was already stored.")
    events_unknown_item: int = Field(description="Stored events about items not in the catalogue.")
    events_refused_unknown_item: int = Field(description="Events refused for naming items not in the catalogue.")
    batches_refused_unknown_item: int
    rate_limited: int = Field(description="Write requests answered 429.")
    rate_limit_storage_failures: int = Field(description="Checks skipped because the counters' storage failed.")
    events_applied: int
    items_applied: int
    last_event_seq: int
