"""The bus that shares online state between the worker processes of one service.

Each worker keeps its own copy of the online state (sessions, baskets, live counters) in memory, so
a request never waits on the network. A worker that acknowledges a change (events, item upserts)
applies it at once and publishes it; every other worker receives it and applies it too. With one
process, :class:`LocalBus` does nothing; with several, a shared bus carries the changes. This module
is the interface and knows none of the shared backends: :func:`open_bus` finds one by the URL's
scheme through :mod:`shoprec.service.backends` (``redis://``, ``rediss://``, ``unix://``:
:class:`~shoprec.service.bus_redis.RedisBus`, a Redis stream). Durability is the event store's job,
not the bus's: a worker that starts rebuilds its state from the store, then follows the bus, so a
bus keeps a bounded history only (``max_len`` entries, ``max_age_seconds``).
"""

from __future__ import annotations

import os
import uuid
from abc import ABC, abstractmethod
from typing import Any, Callable

#: a change: its kind ("events" or "items") and JSON-able records
Handler = Callable[[str, list[dict[str, Any]]], None]


class EventBus(ABC):
    """Publish acknowledged changes; deliver the other workers' changes to ``handler`` in order."""

    def __init__(self) -> None:
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    @classmethod
    def from_url(cls, url: str, **options: Any) -> "EventBus":
        """The bus of ``url`` (a URL of one of this backend's schemes); what :func:`open_bus` calls.
        Options every shared backend takes: ``max_len`` (entries kept, about) and
        ``max_age_seconds`` (older entries dropped); None = no such bound."""
        return cls(url, **options)

    @abstractmethod
    def publish(self, kind: str, records: list[dict[str, Any]]) -> None:
        """Send a change to the other workers (returns once the bus has it)."""

    @abstractmethod
    def start(self, handler: Handler) -> None:
        """Begin delivering changes published by *other* origins from now on, on a background
        thread, in publication order."""

    @abstractmethod
    def close(self) -> None: ...

    def forget(self, needle: str, *, except_kind: str | None = None) -> int:
        """Delete from the bus's history every entry whose payload contains ``needle`` (an erased
        user's id), except those of kind ``except_kind``; returns how many. A bus without a history
        has nothing to delete."""
        return 0

    @property
    def shared(self) -> bool:
        """Whether other processes can be reached through this bus."""
        return True


class LocalBus(EventBus):
    """One worker process: nothing to share."""

    def publish(self, kind: str, records: list[dict[str, Any]]) -> None:
        return None

    def start(self, handler: Handler) -> None:
        return None

    def close(self) -> None:
        return None

    @property
    def shared(self) -> bool:
        return False


def open_bus(url: str | None, **options: Any) -> EventBus:
    """``None`` or ``""`` → :class:`LocalBus`; otherwise the backend of the URL's scheme
    (:data:`~shoprec.service.backends.BUSES`), e.g. ``redis://host:6379/0``. An unknown scheme is a
    :class:`~shoprec.exceptions.ConfigError` that lists the known ones."""
    if not url:
        return LocalBus()
    from .backends import BUSES

    return BUSES.open(url, **options)
