"""The embedded event store: one SQLite file (see :mod:`shoprec.service.store` for the contract).

WAL journal and ``synchronous=FULL``: a write returns after its transaction is fsynced. One writer
thread (:class:`~shoprec.service.store.GroupCommitter`) groups concurrent writes into one
transaction; readers use a connection per thread. The database file is created 0600 in a folder
created 0700 (its ``-wal`` and ``-shm`` files get the same permissions from SQLite).
Erasure (:meth:`SQLiteStore.erase_user`) deletes with ``secure_delete`` on (SQLite overwrites the
deleted content with zeros) and then checkpoints and truncates the WAL, so the erased rows are in
neither file afterwards.
Registered under the scheme ``sqlite`` (``sqlite:///path/events.db``; a plain path means the same).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from ..exceptions import ConfigError
from .files import touch_private
from .store import (EVENT_COLUMNS, AppendResult, EventRecord, EventStore, GroupCommitter, ImpressionRecord,
                    ItemRecord, StoreError, _json, merge_attributes)

__all__ = ["SQLiteStore"]

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
CREATE TABLE IF NOT EXISTS documents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (kind, key)
);
"""


class SQLiteStore(EventStore):
    """The embedded store: one SQLite file (WAL journal, synchronous=FULL, group commit)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        try:
            # owner-only: the folder 0700 when created here, the database 0600 (SQLite gives its
            # -wal and -shm files the database file's permissions)
            touch_private(self.path)
        except OSError as e:
            raise StoreError(f"cannot create the event store {self.path}: {e}") from None
        self._local = threading.local()
        self._writer = GroupCommitter(self._connect_writer, lambda c: c.commit(), lambda c: c.rollback(),
                                      name="sqlite-writer")

    @classmethod
    def from_url(cls, url: str, **options: Any) -> "SQLiteStore":
        """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
        if not url.lower().startswith("sqlite:///"):
            raise ConfigError(f"SQLite event store URL {url!r}: expected sqlite:///path/to/events.db "
                              "(three slashes, then the path; four for an absolute one)")
        return cls(url[len("sqlite:///"):], **options)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level="DEFERRED", check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA secure_delete=ON")      # deleted rows are overwritten, not left in free space
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

    # ------------------------------------------------------------------ documents
    def put_document(self, kind: str, key: str, body: dict[str, Any]) -> None:
        row = (kind, key, _json(body), time.time())

        def job(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO documents (kind, key, body, updated_at) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT(kind, key) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                         row)

        self._writer.run(job)

    def iter_documents(self, kind: str) -> Iterator[tuple[str, dict[str, Any], float]]:
        rows = self._reader().execute("SELECT key, body, updated_at FROM documents WHERE kind = ? ORDER BY seq",
                                      (kind,)).fetchall()
        for key, body, updated in rows:
            yield key, json.loads(body), updated

    # ------------------------------------------------------------------ erasure
    def erase_user(self, user_id: str) -> dict[str, int]:
        def job(conn: sqlite3.Connection) -> dict[str, int]:
            sessions = [r[0] for r in conn.execute(
                "SELECT DISTINCT session_id FROM events WHERE user_id = ? AND session_id IS NOT NULL", (user_id,))]
            n_events = conn.execute("DELETE FROM events WHERE user_id = ?", (user_id,)).rowcount
            n_imp = conn.execute("DELETE FROM impressions WHERE user_id = ?", (user_id,)).rowcount
            for start in range(0, len(sessions), 500):
                chunk = sessions[start:start + 500]
                n_imp += conn.execute(f"DELETE FROM impressions WHERE session_id IN ({','.join('?' * len(chunk))})",
                                      chunk).rowcount
            n_snap = conn.execute("DELETE FROM documents WHERE kind = 'policy_snapshot'").rowcount
            return {"events": n_events, "impressions": n_imp, "sessions": len(sessions), "snapshots": n_snap,
                    "session_ids": sessions}

        got = self._writer.run(job)
        self._writer.run(self._truncate_wal)
        return got

    def rename_users(self, mapping: dict[str, str]) -> dict[str, int]:
        pairs = [(new, old) for old, new in mapping.items() if old != new]

        def job(conn: sqlite3.Connection) -> dict[str, int]:
            before = conn.total_changes
            conn.executemany("UPDATE events SET user_id = ? WHERE user_id = ?", pairs)
            n_events = conn.total_changes - before
            before = conn.total_changes
            conn.executemany("UPDATE impressions SET user_id = ? WHERE user_id = ?", pairs)
            return {"events": n_events, "impressions": conn.total_changes - before}

        got = self._writer.run(job)
        self._writer.run(self._truncate_wal)
        return got

    def delete_document(self, kind: str, key: str) -> None:
        self._writer.run(lambda conn: conn.execute("DELETE FROM documents WHERE kind = ? AND key = ?", (kind, key)))

    def _truncate_wal(self, conn: sqlite3.Connection) -> None:
        """Copy the WAL into the database and truncate it (the erased rows' old pages live there)."""
        conn.commit()
        for _ in range(50):
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return
            time.sleep(0.05)
        raise StoreError(f"{self.path}: the WAL could not be truncated after an erasure (a reader held it "
                         "for 2.5 s); erase again to retry")

    def close(self) -> None:
        self._writer.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
