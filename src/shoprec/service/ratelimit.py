"""Rate limits of the write endpoints (``POST /v1/events``, ``PUT /v1/items``, ``/v1/admin/*``).

The public key is served to every browser of the shop, so anyone may post events with it: what it
can write must be bounded. Three budgets (``ServiceSettings.rate_limit_*``, each ``"N/period"``, several
joined by ``;``, or none), counted per request with the sliding-window counter of the `limits`
library:

* **per client IP**, for every write request that does not carry the API key — the public key's
  event posts, and requests with no key or a wrong one (so guessing the key is bounded too);
* **the public key**, all client IPs together — what the shop's browsers may send in all;
* **the API key** — the shop's own back end (a runaway integration), not counted per IP.

An exceeded budget is a ``429`` with ``Retry-After`` (seconds) and the project's error body. The
counters live in memory (each worker process its own) or, when the service has a Redis state bus,
in that Redis (shared by the workers); ``rate_limit_storage`` names another. If the counter storage
cannot be reached, the request is let through and the failure logged and counted: a rate limiter
must not take event ingestion down with it.

The client IP is the connection's peer as uvicorn reports it; behind a reverse proxy, let uvicorn
trust the proxy's ``X-Forwarded-For`` (``FORWARDED_ALLOW_IPS``, 127.0.0.1 by default).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from .backends import scheme_of

log = logging.getLogger(__name__)

__all__ = ["Refusal", "WriteLimits", "storage_uri"]

KEY_PREFIX = "shoprec:limits"


@dataclass(frozen=True)
class Refusal:
    """A budget that a request would exceed."""

    budget: str                 # "per_ip", "public_key", "api_key"
    limit: str                  # e.g. "600 per 1 minute"
    scope: str                  # "client 1.2.3.4", "the public key", "the API key"
    retry_after: int            # seconds, at least 1


def storage_uri(storage: str | None, state_bus: str | None) -> str:
    """The `limits` storage of the counters: ``storage`` when given; else the state bus's Redis;
    else the process's memory (async variants: the checks run on the event loop)."""
    uri = storage or ""
    if not uri:
        scheme = scheme_of(state_bus or "")
        uri = state_bus if scheme in ("redis", "rediss", "unix") else "memory://"
    if uri.startswith("unix://"):
        uri = "redis+" + uri
    return uri if uri.startswith("async+") else f"async+{uri}"


class WriteLimits:
    """The three budgets of one service (see the module docstring)."""

    def __init__(self, per_ip: str | None, public_key: str | None, api_key: str | None, storage: str) -> None:
        self.per_ip: list[RateLimitItem] = parse_many(per_ip) if per_ip else []
        self.public_key: list[RateLimitItem] = parse_many(public_key) if public_key else []
        self.api_key: list[RateLimitItem] = parse_many(api_key) if api_key else []
        self.storage_uri = storage
        self._limiter: SlidingWindowCounterRateLimiter | None = None
        self.storage_failures = 0
        self._last_warning = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.per_ip or self.public_key or self.api_key)

    def _get_limiter(self) -> SlidingWindowCounterRateLimiter:
        # built on first use, inside the event loop that will use it (the async storages bind to it)
        if self._limiter is None:
            options = {"wrap_exceptions": True}
            if "redis" in self.storage_uri.split("://", 1)[0]:
                options.update(implementation="redispy", key_prefix=KEY_PREFIX, socket_timeout=2,
                               socket_connect_timeout=2)
            self._limiter = SlidingWindowCounterRateLimiter(storage_from_string(self.storage_uri, **options))
        return self._limiter

    async def check(self, ip: str | None, who: str | None) -> Refusal | None:
        """Count one write request from ``ip`` made with the key ``who`` (``"api"``, ``"public"``
        or None); the first budget it exceeds, or None."""
        if who == "api":
            budgets = [("api_key", self.api_key, ("key", "api"), "the API key")]
        else:
            budgets = [("per_ip", self.per_ip, ("ip", ip or "unknown"), f"client {ip or 'unknown'}")]
            if who == "public":
                budgets.append(("public_key", self.public_key, ("key", "public"), "the public key"))
        try:
            limiter = self._get_limiter()
            for budget, items, ids, scope in budgets:
                for item in items:
                    if not await limiter.hit(item, *ids):
                        stats = await limiter.get_window_stats(item, *ids)
                        wait = max(1, math.ceil(stats.reset_time - time.time()))
                        return Refusal(budget, str(item), scope, wait)
        except (StorageError, OSError) as e:
            self.storage_failures += 1
            now = time.monotonic()
            if now - self._last_warning > 60:
                self._last_warning = now
                log.warning("rate limits not checked: their storage %s failed (%s); letting writes through",
                            self.storage_uri.split("@")[-1], e)
        return None
