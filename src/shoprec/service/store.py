"""The event store: where every acknowledged event, catalogue change and impression is kept.

:class:`EventStore` is the one interface; it knows none of its backends. Each backend is a module of
its own, found by the URL's scheme through :mod:`shoprec.service.backends`: ``sqlite:///path`` (or a
plain path) is :class:`~shoprec.service.store_sqlite.SQLiteStore`, the embedded default (WAL
journal, ``synchronous=FULL``, files owner-only); ``postgresql://user@host/db`` is
:class:`~shoprec.service.store_postgres.PostgresStore`, the production one. :func:`open_store`
opens either.

Durability: ``append_events``, ``upsert_items`` and ``append_impressions`` return only after the
transaction that holds the rows has committed (and, for SQLite, been fsynced), so a caller may
acknowledge them. Concurrent callers are grouped into one transaction by a single writer thread
(:class:`GroupCommitter`, shared by the backends): one fsync serves every request waiting at that
moment, which is what makes durable ingestion fast under load.

Idempotency: every event has an ``event_id`` (the client's, or one the server assigned); storing an
id twice keeps the first and counts the second as a duplicate, so a client may retry a batch whose
answer it did not get.
"""

from __future__ import annotations

import itertools
import queue
import threading
import uuid
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import orjson

from ..exceptions import ShoprecError


_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count()


def _json(value: Any) -> str:
    """JSON text of a stored column (orjson; what it cannot represent, as its string)."""
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def new_id() -> str:
    """A unique id (random per process, then a counter): what uuid4 gives without a system call for
    randomness per id, which cost 10 % of the HTTP thread under load."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER):012x}"


class StoreError(ShoprecError):
    """The event store cannot be opened or written."""


# --------------------------------------------------------------------------- records
@dataclass(slots=True)
class EventRecord:
    """One event as stored (external ids; ``behaviour`` is a canonical name such as ``view``)."""

    event_id: str
    item_id: str
    behaviour: str
    timestamp: float
    received_at: float
    user_id: str | None = None
    session_id: str | None = None
    quantity: float | None = None
    price: float | None = None
    request_id: str | None = None
    position: int | None = None
    scenario: str | None = None
    country: str | None = None
    device: str | None = None
    seq: int = 0  # the store's sequence number, set when stored (0 = not stored yet)

    @staticmethod
    def new_id() -> str:
        return new_id()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EventRecord":
        return cls(**{k: d.get(k) for k in EVENT_FIELDS if k in d})


EVENT_FIELDS = tuple(f.name for f in fields(EventRecord))
#: columns of the events table besides seq, in order
EVENT_COLUMNS = tuple(f for f in EVENT_FIELDS if f != "seq")


@dataclass(slots=True)
class ItemRecord:
    """A catalogue item: its id and attributes (title, description, category, brand, price,
    in_stock, seller, …). An upsert merges the given non-null attributes into the stored ones."""

    item_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    updated_at: float = 0.0
    seq: int = 0


@dataclass(slots=True)
class ImpressionRecord:
    """One recommendation response as shown: what was shown where, proposed by which strategies,
    with the probability that this policy shows that item at that position."""

    request_id: str
    created_at: float
    scenario: str
    model_version: str
    items: list[dict[str, Any]]          # [{item_id, position, score, strategies, propensity}]
    user_id: str | None = None
    session_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    seq: int = 0


@dataclass(frozen=True)
class AppendResult:
    accepted: int                      # newly stored
    duplicates: int                    # event ids already stored (a retried batch)
    seqs: list[int]                    # sequence number per input event; for a duplicate, the stored one's


# --------------------------------------------------------------------------- interface
class EventStore(ABC):
    """Durable, append-only storage of events, item upserts and impressions (see the module doc)."""

    url: str  # for messages and logs: without a password

    @classmethod
    def from_url(cls, url: str, **options: Any) -> "EventStore":
        """The store of ``url`` (a URL of one of this backend's schemes); what :func:`open_store`
        calls. Backends whose URL carries options of their own parse them here."""
        return cls(url, **options)

    @abstractmethod
    def append_events(self, events: Sequence[EventRecord]) -> AppendResult:
        """Store events durably; returns after commit. Sets ``seq`` on the records."""

    @abstractmethod
    def iter_events(self, after_seq: int = 0, batch: int = 10_000) -> Iterator[list[EventRecord]]:
        """Stored events with ``seq > after_seq`` in sequence order, in lists of at most ``batch``."""

    @abstractmethod
    def last_seq(self) -> int:
        """The highest event sequence number stored (0 when empty)."""

    @abstractmethod
    def count_events(self) -> int: ...

    @abstractmethod
    def existing_event_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` are stored (to check that nothing acknowledged was lost)."""

    @abstractmethod
    def upsert_items(self, items: Sequence[ItemRecord]) -> int:
        """Merge item attributes durably; returns the number of items written."""

    @abstractmethod
    def iter_items(self) -> Iterator[ItemRecord]:
        """Every stored item with its merged attributes, in the order of their last change."""

    @abstractmethod
    def append_impressions(self, rows: Sequence[ImpressionRecord]) -> None:
        """Store impressions durably (a request id stored twice keeps the first)."""

    @abstractmethod
    def iter_impressions(self, after_seq: int = 0, batch: int = 10_000) -> Iterator[list[ImpressionRecord]]: ...

    @abstractmethod
    def put_document(self, kind: str, key: str, body: dict[str, Any]) -> None:
        """Store (or replace) the JSON document ``key`` of ``kind`` (e.g. an experiment) durably."""

    @abstractmethod
    def iter_documents(self, kind: str) -> Iterator[tuple[str, dict[str, Any], float]]:
        """Every document of ``kind`` as (key, body, updated_at), in the order they were first stored."""

    def erase_user(self, user_id: str) -> dict[str, int]:
        """Delete, in one transaction, every event of ``user_id``, every impression of that user or of
        a session its events named, and the policy snapshots (aggregates the user's rewards are part
        of; the learners are rebuilt from the rows left). Durable before return, and the deleted
        content no longer in the backend's files where the backend allows it (module docstring of
        each backend). Returns ``{"events": n, "impressions": n, "sessions": n, "snapshots": n, "session_ids": [...]}``."""
        raise NotImplementedError(f"{type(self).__name__} cannot erase users")

    def rename_users(self, mapping: dict[str, str]) -> dict[str, int]:
        """Replace user ids (old → new) in every event and impression, in one transaction (an id-key
        rotation, :mod:`shoprec.privacy.pseudonym`). Returns ``{"events": n, "impressions": n}``."""
        raise NotImplementedError(f"{type(self).__name__} cannot rename users")

    def delete_document(self, kind: str, key: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot delete documents")

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "EventStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- group commit
class GroupCommitter:
    """One writer thread that runs queued write jobs in shared transactions.

    ``submit(job)`` queues ``job(conn)`` and returns a future; the thread takes every job waiting,
    runs them in one transaction on its own connection, commits once, and resolves their futures (with
    the job's result, or its exception — a failing job is re-run alone so it cannot fail the others).
    """

    def __init__(self, connect: Callable[[], Any], commit: Callable[[Any], None],
                 rollback: Callable[[Any], None], name: str = "store-writer", max_group: int = 256) -> None:
        self._connect = connect
        self._commit = commit
        self._rollback = rollback
        self._queue: queue.Queue = queue.Queue()
        self._max_group = max_group
        self._closed = False
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.commits = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise StoreError(f"cannot open the store: {self._error}") from self._error

    def submit(self, job: Callable[[Any], Any]) -> Future:
        if self._closed:
            raise StoreError("the store is closed")
        fut: Future = Future()
        self._queue.put((job, fut))
        return fut

    def run(self, job: Callable[[Any], Any], timeout: float | None = 60.0) -> Any:
        return self.submit(job).result(timeout)

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as e:  # reported by __init__
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    break
                group = [first]
                while len(group) < self._max_group:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._queue.put(None)
                        break
                    group.append(nxt)
                self._run_group(conn, group)
        finally:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass

    def _run_group(self, conn: Any, group: list) -> None:
        results = []
        try:
            for job, _ in group:
                results.append(job(conn))
            self._commit(conn)
            self.commits += 1
        except BaseException:
            self._rollback(conn)
            if len(group) == 1:
                import sys

                group[0][1].set_exception(sys.exc_info()[1])
                return
            for item in group:  # find the failing job: each alone
                self._run_group(conn, [item])
            return
        for (_, fut), res in zip(group, results):
            fut.set_result(res)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=30)


# --------------------------------------------------------------------------- factory
def merge_attributes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Stored attributes updated with the given non-null ones (what every backend's upsert does)."""
    out = dict(old)
    out.update({k: v for k, v in new.items() if v is not None})
    return out


def open_store(url: str | Path, **options: Any) -> EventStore:
    """The event store of ``url``, by its scheme (:data:`~shoprec.service.backends.STORES`):
    ``sqlite:///path`` (or ``sqlite:path``, or a plain path), ``postgresql://user@host/db`` (``?schema=name`` picks the
    schema, default ``shoprec``; ``?password_file=/run/secrets/pg`` reads the password from a file).
    An unknown scheme is a :class:`~shoprec.exceptions.ConfigError` that lists the known ones."""
    from .backends import STORES

    text = str(url)
    if "://" not in text:  # a plain path (or ``sqlite:PATH``): the embedded store
        text = f"sqlite:///{text[len('sqlite:'):] if text.startswith('sqlite:') else text}"
    return STORES.open(text, **options)
