"""The request context — what the page knows — and the response with a reason for every item.

Unknown fields are an error (``RequestError`` naming the field and the fields that exist), never
silently ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..exceptions import RequestError


#: the unix seconds a timestamp may have (1970 … year 5138), for events and requests alike
MAX_UNIX = 1e11


def check_time(v: float | datetime | None) -> float | datetime | None:
    """A timestamp in 0 … 1e11 unix seconds; a date outside that (``0001-01-01``, whose unix time
    cannot even be computed in some time zones) is an error, not a 500 later."""
    if v is None:
        return v
    try:
        seconds = v.timestamp() if isinstance(v, datetime) else float(v)
    except (ValueError, OverflowError, OSError):
        seconds = float("nan")
    if not (0 <= seconds < MAX_UNIX):
        raise ValueError("timestamp must be unix seconds (0 … 1e11) or ISO 8601 text from 1970 on")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SessionEvent(_Strict):
    item_id: str
    behaviour: str = Field(default="view", description="view, click, add_to_cart, purchase, …")
    timestamp: float | None = None


class Filters(_Strict):
    category: list[str] = Field(default_factory=list, description="Only items of these categories.")
    price_min: float | None = Field(default=None, ge=0)
    price_max: float | None = Field(default=None, ge=0)
    in_stock_only: bool | None = None
    exclude_ids: list[str] = Field(default_factory=list, description="Never return these items.")

    @field_validator("category", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class RequestContext(_Strict):
    """What the page knows. Every field is optional; unknown fields are an error."""

    user_id: str | None = Field(default=None, description="Logged-in or cookie user id.")
    session: list[SessionEvent | str] = Field(default_factory=list,
                                              description="The session's recent events, oldest first.")
    current_item: str | None = Field(default=None, description="The item on the page.")
    basket: list[str] = Field(default_factory=list, description="Item ids in the cart.")
    query: str | None = Field(default=None, description="Search text.")
    country: str | None = None
    device: str | None = None
    timestamp: float | datetime | None = Field(default=None, description="Request time (unix seconds or ISO).")
    attributes: dict[str, str | int | float] = Field(
        default_factory=dict, description="User attributes for new users (gender, age, occupation, …).")
    k: int | None = Field(default=None, ge=1, le=1000, description="How many items; default: the scenario's K.")
    filters: Filters = Field(default_factory=Filters)

    @field_validator("timestamp")
    @classmethod
    def _timestamp(cls, v: float | datetime | None) -> float | datetime | None:
        return check_time(v)

    @classmethod
    def parse(cls, raw: "RequestContext | dict[str, Any] | None") -> "RequestContext":
        """Validate a dict (e.g. a JSON body) into a context; errors name the field."""
        if raw is None:
            return cls()
        if isinstance(raw, cls):
            return raw
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            known = ", ".join(cls.model_fields)
            lines = []
            for err in e.errors():
                loc = ".".join(str(p) for p in err["loc"])
                if err["type"] == "extra_forbidden":
                    lines.append(f"unknown field {loc!r} (known fields: {known})")
                else:
                    lines.append(f"{loc}: {err['msg']}")
            raise RequestError("invalid request context: " + "; ".join(lines)) from None

    def unix_time(self) -> float | None:
        if self.timestamp is None:
            return None
        if isinstance(self.timestamp, datetime):
            return self.timestamp.timestamp()
        return float(self.timestamp)


class Reason(BaseModel):
    strategy: str
    text: str
    anchor_item_id: str | None = None


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    title: str | None = None
    reasons: list[Reason]

    @property
    def reason(self) -> str:
        """The main reason, readable by a person."""
        return self.reasons[0].text if self.reasons else ""


class Response(BaseModel):
    scenario: str
    items: list[RecommendedItem]
    notes: list[str] = Field(default_factory=list, description="What was ignored or fell back, and why.")

    @property
    def item_ids(self) -> list[str]:
        return [it.item_id for it in self.items]
