"""Backends by URL scheme: which class opens an event store URL or a state bus URL.

The interfaces (:class:`~shoprec.service.store.EventStore`, :class:`~shoprec.service.bus.EventBus`)
know none of their backends. Each backend is a module of its own, named here under its URL scheme(s)
as ``"module:Class"`` and imported only when a URL of that scheme is opened — the way SQLAlchemy's
``create_engine`` finds a dialect (HOUSE_STYLE pattern 12). A new backend is one new file plus one
line in the tables below; code outside this package calls :func:`register_store` /
:func:`register_bus` instead, and nothing here changes.

A backend class is built by its classmethod ``from_url(url, **options)``; the interfaces give a
default that calls ``cls(url, **options)``.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from ..exceptions import ConfigError

__all__ = ["BUSES", "STORES", "Registry", "register_bus", "register_store", "scheme_of"]


@dataclass(frozen=True)
class _Entry:
    target: str | type          # "package.module:Class", or the class itself
    extra: str | None = None    # the pip extra that installs the backend's client library


def scheme_of(url: str) -> str:
    """The scheme of ``url`` in lower case (``"postgresql"`` of ``postgresql://…``), or ``""``."""
    head, sep, _ = str(url).partition("://")
    return head.lower() if sep else ""


def _redact(url: str) -> str:
    """``url`` without its password, for messages."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", re.sub(r"([?&]password=)[^&#]*", r"\1***", str(url)))


class Registry:
    """Scheme → backend class, resolved lazily (see the module docstring)."""

    def __init__(self, what: str, example: str) -> None:
        self.what = what            # "event store", "state bus"
        self.example = example      # what to write instead, for the error message
        self._entries: dict[str, _Entry] = {}

    def register(self, scheme: str, target: str | type, *, extra: str | None = None) -> None:
        """Open URLs of ``scheme`` with ``target`` (``"module:Class"``, imported on first use, or a
        class). A scheme registered again is replaced."""
        scheme = scheme.lower()
        if not re.fullmatch(r"[a-z][a-z0-9+.\-]*", scheme):
            raise ConfigError(f"{scheme!r} is not a URL scheme (letters, digits, '+', '-', '.')")
        if isinstance(target, str) and not re.fullmatch(r"[\w.]+:\w+", target):
            raise ConfigError(f"{self.what} backend {target!r}: expected 'package.module:Class'")
        self._entries[scheme] = _Entry(target, extra)

    def unregister(self, scheme: str) -> None:
        self._entries.pop(scheme.lower(), None)

    @property
    def schemes(self) -> list[str]:
        return sorted(self._entries)

    def resolve(self, scheme: str, url: str | None = None) -> type:
        """The backend class of ``scheme`` (its module imported now); ``url`` is for the messages."""
        entry = self._entries.get(scheme.lower())
        if entry is None:
            what = f"URL {_redact(url)!r} (scheme {scheme!r})" if url else f"URL scheme {scheme!r}"
            raise ConfigError(f"unknown {self.what} {what}; known schemes: {', '.join(self.schemes)} "
                              f"(e.g. {self.example})")
        if not isinstance(entry.target, str):
            return entry.target
        module_name, _, name = entry.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            hint = f"; install it with `pip install 'shoprec[{entry.extra}]'`" if entry.extra else ""
            raise ConfigError(f"the {scheme} {self.what} backend ({entry.target}) cannot be imported: {e}{hint}") \
                from None
        try:
            return getattr(module, name)
        except AttributeError:
            raise ConfigError(f"the {scheme} {self.what} backend: {module_name} has no {name}") from None

    def open(self, url: str, **options: Any) -> Any:
        """A backend for ``url``: the class of its scheme, built by ``from_url(url, **options)``."""
        scheme = scheme_of(url)
        if not scheme:
            raise ConfigError(f"{self.what} URL {_redact(url)!r} has no scheme; known schemes: "
                              f"{', '.join(self.schemes)} (e.g. {self.example})")
        return self.resolve(scheme, url).from_url(url, **options)


#: event stores (shoprec.service.store.EventStore); a plain path is SQLite (see open_store)
STORES = Registry("event store", "sqlite:///shoprec-data/events.db or postgresql://user@host/dbname")
STORES.register("sqlite", "shoprec.service.store_sqlite:SQLiteStore")
STORES.register("postgresql", "shoprec.service.store_postgres:PostgresStore", extra="production")
STORES.register("postgres", "shoprec.service.store_postgres:PostgresStore", extra="production")

#: state buses (shoprec.service.bus.EventBus); no URL is the one-process LocalBus (see open_bus)
BUSES = Registry("state bus", "redis://host:6379/0, or nothing for one process")
BUSES.register("redis", "shoprec.service.bus_redis:RedisBus", extra="production")
BUSES.register("rediss", "shoprec.service.bus_redis:RedisBus", extra="production")
BUSES.register("unix", "shoprec.service.bus_redis:RedisBus", extra="production")
# next: BUSES.register("kafka", "shoprec.service.bus_kafka:KafkaBus", extra="kafka")


def register_store(scheme: str, target: str | type, *, extra: str | None = None) -> None:
    """Open event store URLs of ``scheme`` with ``target`` (an :class:`EventStore` subclass or
    ``"module:Class"``)."""
    STORES.register(scheme, target, extra=extra)


def register_bus(scheme: str, target: str | type, *, extra: str | None = None) -> None:
    """Open state bus URLs of ``scheme`` with ``target`` (an :class:`EventBus` subclass or
    ``"module:Class"``)."""
    BUSES.register(scheme, target, extra=extra)
