"""The event store: where every acknowledged event, catalogue change and impression is kept.

:class:`EventStore` is the one interface; :class:`SQLiteStore` is the embedded default (a file under
the data directory, WAL journal, ``synchronous=FULL``), :class:`~shoprec.service.store_postgres.PostgresStore`
the production one. :func:`open_store` picks by URL: ``sqlite:///path/to/events.db`` (or a plain path),
``postgresql://user@host/db``.

Durability: ``append_events``, ``upsert_items`` and ``append_impressions`` return only after the
transaction that holds the rows has committed (and, for SQLite, been fsynced), so a caller may
acknowledge them. Concurrent callers are grouped into one transaction by a single writer thread
(:class:`GroupCommitter`): one fsync serves every request waiting at that moment, which is what makes
durable ingestion fast under load.

Idempotency: every event has an ``event_id`` (the client's, or one the server assigned); storing an
id twice keeps the first and counts the second as a duplicate, so a client may retry a batch whose
answer it did not get.
"""

from __future__ import annotations

import itertools
import json
import queue
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import orjson

from ..exceptions import ConfigError, ShoprecError


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

    url: str

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


# --------------------------------------------------------------------------- SQLite
_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    item_id TEXT NOT NULL,
    behaviour TEXT NOT NULL,
    timestamp REAL NOT NULL,
    received_at REAL NOT NULL,
    user_id TEXT, session_id TEXT, quantity REAL, price REAL, request_id TEXT, position INTEGER,
    scenario TEXT, country TEXT, device TEXT
);
CREATE INDEX IF NOT EXISTS events_request ON events(request_id) WHERE request_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY,
    attributes TEXT NOT NULL,
    updated_at REAL NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS item_seq (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS impressions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    scenario TEXT NOT NULL,
    model_version TEXT NOT NULL,
    user_id TEXT, session_id TEXT,
    items TEXT NOT NULL,
    context TEXT NOT NULL
);
"""


def merge_attributes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Stored attributes updated with the given non-null ones."""
    out = dict(old)
    out.update({k: v for k, v in new.items() if v is not None})
    return out


class SQLiteStore(EventStore):
    """The embedded store: one SQLite file (WAL journal, synchronous=FULL, group commit)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the folder of the event store {self.path}: {e}") from None
        self._local = threading.local()
        self._writer = GroupCommitter(self._connect_writer, lambda c: c.commit(), lambda c: c.rollback(),
                                      name="sqlite-writer")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level="DEFERRED", check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.executescript(_SQLITE_SCHEMA)
        conn.commit()
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    # ------------------------------------------------------------------ events
    def append_events(self, events: Sequence[EventRecord]) -> AppendResult:
        if not events:
            return AppendResult(0, 0, [])
        rows = [tuple(getattr(e, c) for c in EVENT_COLUMNS) for e in events]
        ids = [e.event_id for e in events]
        placeholders = ",".join("?" * len(EVENT_COLUMNS))
        sql = f"INSERT OR IGNORE INTO events ({','.join(EVENT_COLUMNS)}) VALUES ({placeholders})"

        def job(conn: sqlite3.Connection) -> tuple[int, dict[str, int]]:
            before = conn.total_changes
            conn.executemany(sql, rows)
            accepted = conn.total_changes - before
            found: dict[str, int] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                q = f"SELECT event_id, seq FROM events WHERE event_id IN ({','.join('?' * len(chunk))})"
                found.update(conn.execute(q, chunk).fetchall())
            return accepted, found

        accepted, found = self._writer.run(job)
        seqs = [int(found[i]) for i in ids]
        for e, s in zip(events, seqs):
            e.seq = s
        return AppendResult(accepted, len(events) - accepted, seqs)

    def iter_events(self, after_seq: int = 0, batch: int = 10_000) -> Iterator[list[EventRecord]]:
        conn = self._reader()
        cols = ",".join(("seq",) + EVENT_COLUMNS)
        last = after_seq
        while True:
            rows = conn.execute(f"SELECT {cols} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                                (last, batch)).fetchall()
            if not rows:
                return
            out = [EventRecord(**dict(zip(EVENT_COLUMNS, r[1:])), seq=r[0]) for r in rows]
            last = rows[-1][0]
            yield out

    def last_seq(self) -> int:
        return int(self._reader().execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def count_events(self) -> int:
        return int(self._reader().execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def existing_event_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        conn = self._reader()
        out: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            q = f"SELECT event_id FROM events WHERE event_id IN ({','.join('?' * len(chunk))})"
            out.update(r[0] for r in conn.execute(q, chunk))
        return out

    # ------------------------------------------------------------------ items
    def upsert_items(self, items: Sequence[ItemRecord]) -> int:
        if not items:
            return 0

        def job(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT OR IGNORE INTO item_seq (id, seq) VALUES (1, 0)")
            for it in items:
                seq = conn.execute("UPDATE item_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq").fetchone()[0]
                row = conn.execute("SELECT attributes FROM items WHERE item_id = ?", (it.item_id,)).fetchone()
                attrs = merge_attributes(json.loads(row[0]) if row else {}, it.attributes)
                conn.execute("INSERT INTO items (item_id, attributes, updated_at, seq) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT(item_id) DO UPDATE SET attributes = excluded.attributes, "
                             "updated_at = excluded.updated_at, seq = excluded.seq",
                             (it.item_id, json.dumps(attrs), it.updated_at or time.time(), seq))
                it.seq = seq
            return len(items)

        return self._writer.run(job)

    def iter_items(self) -> Iterator[ItemRecord]:
        for item_id, attrs, updated, seq in self._reader().execute(
                "SELECT item_id, attributes, updated_at, seq FROM items ORDER BY seq"):
            yield ItemRecord(item_id, json.loads(attrs), updated, seq)

    # ------------------------------------------------------------------ impressions
    def append_impressions(self, rows: Sequence[ImpressionRecord]) -> None:
        if not rows:
            return
        values = [(r.request_id, r.created_at, r.scenario, r.model_version, r.user_id, r.session_id,
                   _json(r.items), _json(r.context)) for r in rows]

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT OR IGNORE INTO impressions (request_id, created_at, scenario, model_version, "
                             "user_id, session_id, items, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)

        self._writer.run(job)

    def iter_impressions(self, after_seq: int = 0, batch: int = 10_000) -> Iterator[list[ImpressionRecord]]:
        conn = self._reader()
        last = after_seq
        while True:
            rows = conn.execute("SELECT seq, request_id, created_at, scenario, model_version, user_id, session_id, "
                                "items, context FROM impressions WHERE seq > ? ORDER BY seq LIMIT ?",
                                (last, batch)).fetchall()
            if not rows:
                return
            yield [ImpressionRecord(request_id=r[1], created_at=r[2], scenario=r[3], model_version=r[4],
                                    user_id=r[5], session_id=r[6], items=json.loads(r[7]),
                                    context=json.loads(r[8]), seq=r[0]) for r in rows]
            last = rows[-1][0]

    def close(self) -> None:
        self._writer.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


# --------------------------------------------------------------------------- factory
def open_store(url: str | Path) -> EventStore:
    """An event store by URL: ``sqlite:///path`` or a path (SQLite), ``postgresql://…`` (PostgreSQL;
    ``?schema=name`` picks the schema, default ``shoprec``)."""
    text = str(url)
    if text.startswith(("postgresql://", "postgres://")):
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        from .store_postgres import PostgresStore

        # ?schema=name picks the schema (default "shoprec"); libpq would reject the parameter
        parts = urlsplit(text)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = next((v for k, v in query if k == "schema"), "shoprec")
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        return PostgresStore(urlunsplit(parts._replace(query=rest)), schema=schema)
    if text.startswith("sqlite:///"):
        return SQLiteStore(text[len("sqlite:///"):])
    if "://" in text:
        raise ConfigError(f"unknown event store URL {text!r}; use sqlite:///path/events.db or "
                          "postgresql://user@host/dbname")
    return SQLiteStore(text)
