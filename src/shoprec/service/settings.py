"""Service settings: one typed object, built from arguments or ``SHOPREC_*`` environment variables
(``SHOPREC_MODEL``, ``SHOPREC_STORE``, ``SHOPREC_API_KEY`` or ``SHOPREC_API_KEY_FILE`` …), validated
once at start. The worker processes of ``--workers N`` read theirs from a 0600 file the server
writes (:meth:`ServiceSettings.from_file`), so that no key is in any process's environment."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Literal

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
    bot_guard: bool = Field(default=True, description="Visits recognised as crawlers or cart-stuffers as their "
                            "events arrive move no live counter and no policy reward (their events are still "
                            "stored).")
    snapshot_seconds: float = Field(default=300.0, ge=0.0,
                                    description="How often the learning policies' state is snapshotted into the "
                                                "event store, so a restart replays only the traffic since "
                                                "(0: never; a restart then replays the whole log).")
    watch_seconds: float = Field(default=2.0, ge=0.0,
                                 description="How often the models folder's CURRENT is checked for a new "
                                             "version (0 = only POST /v1/admin/reload).")
    storefront: bool = Field(default=True, description="Serve the demo storefront page at /.")
    threads: int = Field(default=1, ge=1, le=64, description="BLAS/OpenMP threads for the engine.")
    unknown_items: Literal["accept", "refuse"] = Field(
        default="accept", description="Events about items not in the catalogue: accept (stored for training, "
                                      "counted, not used online until the item is PUT) or refuse (the batch is "
                                      "a 422 naming them, and nothing of it is stored).")
    # write rate limits ("N/second|minute|hour|day", several separated by ';'; 0 or none = no limit),
    # counted per request on POST /v1/events, PUT /v1/items and /v1/admin/*
    rate_limit_per_ip: str | None = Field(
        default="600/minute", description="Write requests from one client IP that do not carry the API key (the "
                                          "public key's event posts, and requests with no or a wrong key).")
    rate_limit_public_key: str | None = Field(
        default="60000/minute", description="Requests under the public key, all client IPs together (what every "
                                            "browser of the shop may send).")
    rate_limit_api_key: str | None = Field(default="60000/minute",
                                           description="Write and admin requests under the API key.")
    rate_limit_storage: str | None = Field(
        default=None, description="Where the limits count: memory:// (per process) or redis://… (shared by the "
                                  "workers); default: the state bus's Redis when there is one, else memory.")
    experiment_key: str | None = Field(
        default=None, min_length=16, description="The secret that assigns visitors to A/B variants (a keyed hash); "
                                                 "default: derived from the API key (set it to keep assignments "
                                                 "when the API key rotates).")
    id_key: str | None = Field(
        default=None, min_length=16, description="The secret of the user-id pseudonyms (HMAC-SHA256): every user id "
                                                 "is stored, logged and learned from as its pseudonym "
                                                 "(shoprec.privacy.pseudonym); none: ids are stored as given.")
    refit_data: str | None = Field(
        default=None, description="The shop's training data (FORMAT:PATH, or demo): after an erasure the service "
                                  "starts `shoprec train` on it and the store, so the models forget the user; "
                                  "none: the models stay stale until the next scheduled training.")
    ceiling_probe: bool = Field(
        default=False, description="Measuring aid (benchmarks/serve.py): a recommendation request carrying the header "
                                   "`X-Shoprec-Ceiling: 1` is read, validated and routed as any other, then answered "
                                   "with the page's last computed response instead of the engine's, so the "
                                   "server's ceiling is measured in the same process. Off in production.")
    bus_max_len: int | None = Field(default=100_000, ge=1,
                                    description="Changes the state bus keeps (about); none = no bound.")
    bus_max_age_seconds: float | None = Field(default=None, gt=0,
                                              description="Changes older than this are dropped from the bus.")

    @field_validator("rate_limit_per_ip", "rate_limit_public_key", "rate_limit_api_key", mode="before")
    @classmethod
    def _rate(cls, v: Any) -> str | None:
        if v is None or str(v).strip().lower() in ("", "0", "none", "off"):
            return None
        from limits import parse_many

        try:
            parse_many(str(v))
        except ValueError:
            raise ValueError(f"{v!r} is not a rate limit; write e.g. 600/minute, 10/second;600/hour, "
                             "or 0 for none") from None
        return str(v).strip()

    @field_validator("bus_max_len", "bus_max_age_seconds", "rate_limit_storage", mode="before")
    @classmethod
    def _none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and v.strip().lower() in ("", "none") else v

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("store URL is empty")
        return v

    @classmethod
    def from_env(cls, **overrides: Any) -> "ServiceSettings":
        """Settings from ``SHOPREC_<FIELD>`` variables, then ``overrides`` (None = not given).
        ``SHOPREC_API_KEY_FILE`` names a file holding the API key (when ``SHOPREC_API_KEY`` is unset)."""
        raw: dict[str, Any] = {}
        for name in cls.model_fields:
            v = os.environ.get(f"SHOPREC_{name.upper()}")
            if v is not None:
                raw[name] = v
        if "api_key" not in raw and os.environ.get("SHOPREC_API_KEY_FILE"):
            raw["api_key"] = read_key_file(Path(os.environ["SHOPREC_API_KEY_FILE"]))
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls._validated(raw, " (set them as options or SHOPREC_<NAME> variables)")

    @classmethod
    def from_file(cls, path: Path) -> "ServiceSettings":
        """Settings from a JSON file written by :meth:`write_private` (the workers of ``--workers``)."""
        import json

        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read the service settings file {path}: {e}") from None
        return cls._validated(raw, f" (in {path})")

    def write_private(self, path: Path) -> Path:
        """These settings, keys included, as a JSON file only its owner can read (0600)."""
        from .files import write_private

        return write_private(path, self.model_dump_json())

    @classmethod
    def _validated(cls, raw: dict[str, Any], where: str) -> "ServiceSettings":
        try:
            return cls(**raw)
        except ValidationError as e:
            lines = [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
            raise ConfigError("service settings: " + "; ".join(lines) + where) from None


def read_key_file(path: Path) -> str:
    """The key in ``path`` (its first line, stripped); ConfigError naming the file otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read the API key file {path}: {e.strerror or e}") from None
    key = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not key:
        raise ConfigError(f"the API key file {path} is empty")
    return key


def new_api_key() -> str:
    return secrets.token_urlsafe(24)
