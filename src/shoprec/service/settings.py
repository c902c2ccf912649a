"""Service settings: one typed object, built from arguments or ``SHOPREC_*`` environment variables
(``SHOPREC_MODEL``, ``SHOPREC_STORE``, ``SHOPREC_API_KEY`` …), validated once at start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..exceptions import ConfigError


class ServiceSettings(BaseModel):
    """Everything ``create_app`` needs; unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Path = Field(description="A model artifact folder (shoprec train), or a models folder whose "
                                    "CURRENT file names the version to serve.")
    store: str = Field(default="sqlite:///shoprec-data/events.db",
                       description="Event store URL: sqlite:///path (embedded) or postgresql://user@host/db.")
    state_bus: str | None = Field(default=None, description="redis://host:6379/0 to share online state between "
                                                            "worker processes; none for one process.")
    api_key: str = Field(min_length=8, description="Secret for write and admin endpoints (X-API-Key header "
                                                   "or Authorization: Bearer).")
    public_key: str | None = Field(default=None, min_length=8,
                                   description="A second key that may only post events (for a shop's browser "
                                               "tracking) and read.")
    read_requires_key: bool = Field(default=False, description="Whether reading recommendations needs a key.")
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="Largest request body accepted.")
    max_batch_events: int = Field(default=1000, ge=1, le=100_000, description="Events per POST /v1/events.")
    max_batch_items: int = Field(default=1000, ge=1, le=100_000, description="Items per PUT /v1/items.")
    exploration: float = Field(default=0.0, ge=0.0, le=1.0,
                               description="Share of responses shown in a uniformly random order (logged "
                                           "propensities make them usable for off-policy evaluation).")
    max_batch: int = Field(default=64, ge=1, le=4096, description="Requests of one scenario answered together.")
    watch_seconds: float = Field(default=2.0, ge=0.0,
                                 description="How often the models folder's CURRENT is checked for a new "
                                             "version (0 = only POST /v1/admin/reload).")
    storefront: bool = Field(default=True, description="Serve the demo storefront page at /.")
    threads: int = Field(default=1, ge=1, le=64, description="BLAS/OpenMP threads for the engine.")

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("store URL is empty")
        return v

    @classmethod
    def from_env(cls, **overrides: Any) -> "ServiceSettings":
        """Settings from ``SHOPREC_<FIELD>`` variables, then ``overrides`` (None = not given)."""
        raw: dict[str, Any] = {}
        for name in cls.model_fields:
            v = os.environ.get(f"SHOPREC_{name.upper()}")
            if v is not None:
                raw[name] = v
        raw.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**raw)
        except ValidationError as e:
            lines = [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
            raise ConfigError("service settings: " + "; ".join(lines)
                              + " (set them as options or SHOPREC_<NAME> variables)") from None


def new_api_key() -> str:
    return secrets.token_urlsafe(24)
