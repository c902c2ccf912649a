"""The production event store: PostgreSQL through psycopg 3.

Registered under the schemes ``postgresql`` and ``postgres``. Same contract as
:class:`~shoprec.service.store_sqlite.SQLiteStore` (see :mod:`shoprec.service.store`):
writes go through a :class:`~shoprec.service.store.GroupCommitter` on one connection of their own
and return after ``COMMIT`` (the server's default ``synchronous_commit=on``: flushed to the WAL);
reads use a small pool of autocommit connections, safe from several threads.

Tables live in one schema (``shoprec`` unless told), created when missing:

* ``events`` — ``seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY``, ``event_id TEXT UNIQUE``
  and the columns of :data:`~shoprec.service.store.EVENT_COLUMNS`. A batch is one
  ``INSERT … SELECT FROM unnest(…) ORDER BY ordinality ON CONFLICT (event_id) DO NOTHING``, so
  seqs follow the input order and 1,000 events cost one statement.
* ``items`` — ``attributes JSONB`` merged on upsert with ``||`` (null values are dropped first, as
  :func:`~shoprec.service.store.merge_attributes` does: a null never overwrites).
* ``impressions`` — ``request_id TEXT UNIQUE``, ``items``/``context`` JSONB.

Several processes may write to one schema: every write transaction first takes a transaction-level
advisory lock of the schema, so sequence numbers are handed out in commit order and a reader that
follows ``seq > last`` never skips a row that commits late with a smaller seq. Identity values are
not contiguous (a duplicate or a rolled-back insert uses one up); they only increase.
"""

from __future__ import annotations

import hashlib
import json
import queue
import logging
import re
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from .store import (EVENT_COLUMNS, AppendResult, EventRecord, EventStore, GroupCommitter, ImpressionRecord,
                    ItemRecord, StoreError, _json)

__all__ = ["PostgresStore"]

log = logging.getLogger("shoprec.service")

#: PostgreSQL type of each event column (besides seq)
_EVENT_TYPES = {
    "event_id": "TEXT NOT NULL UNIQUE", "item_id": "TEXT NOT NULL", "behaviour": "TEXT NOT NULL",
    "timestamp": "DOUBLE PRECISION NOT NULL", "received_at": "DOUBLE PRECISION NOT NULL",
    "user_id": "TEXT", "session_id": "TEXT", "quantity": "DOUBLE PRECISION", "price": "DOUBLE PRECISION",
    "request_id": "TEXT", "position": "INTEGER", "scenario": "TEXT", "country": "TEXT", "device": "TEXT",
}
assert tuple(_EVENT_TYPES) == EVENT_COLUMNS, "the events table must follow EventRecord"
_ARRAY_TYPES = {c: t.split()[0].replace("DOUBLE", "float8").replace("INTEGER", "int4").lower()
                for c, t in _EVENT_TYPES.items()}
_CONVERT = {"float8": lambda v: None if v is None else float(v),
            "int4": lambda v: None if v is None else int(v),
            "text": lambda v: None if v is None else str(v)}
#: rows per INSERT statement (a larger batch is split, inside the same transaction)
_CHUNK = 10_000
_CONNECT_TIMEOUT = 10  # seconds, unless the URL says otherwise
_READERS = 4


def redact(url: str) -> str:
    """``url`` with its password (in the user info or a ``password=`` parameter) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.scheme:
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
        query = parts.query
        if "password" in dict(parse_qsl(query)):
            query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(query)], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)  # key=value form


class _Writer:
    """The writer's connection, reconnected after it broke (the failing write is reported; the next
    one gets a fresh connection). Tracks whether this transaction holds the schema's write lock."""

    def __init__(self, store: "PostgresStore") -> None:
        self._store = store
        self._conn: psycopg.Connection | None = store._connect(autocommit=False)
        self.locked = False

    def conn(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._store._connect(autocommit=False)
            self.locked = False
        return self._conn

    def lock(self) -> psycopg.Connection:
        """The connection, inside a transaction that holds the schema's write lock."""
        conn = self.conn()
        if not self.locked:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._store._lock_key,))
            self.locked = True
        return conn

    def commit(self) -> None:
        self.locked = False
        if self._conn is None:  # never a fresh connection here: it would commit nothing and report success
            raise StoreError("the writer's connection to PostgreSQL was lost before the commit")
        self._conn.commit()

    def rollback(self) -> None:
        self.locked = False
        conn = self._conn
        if conn is None:
            return
        try:
            conn.rollback()
        except psycopg.Error:  # broken connection: drop it; conn() opens a new one
            self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass


class _ReadPool:
    """A few autocommit connections, lent one at a time to whichever thread asks."""

    def __init__(self, store: "PostgresStore", size: int) -> None:
        self._store = store
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.Semaphore(size)
        self._all: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        self._slots.acquire()
        conn = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._store._connect(autocommit=True)
                with self._lock:
                    self._all.append(conn)
            yield conn
        finally:
            if conn is not None:
                if conn.broken or conn.closed:
                    with self._lock:
                        if conn in self._all:
                            self._all.remove(conn)
                    conn.close()
                else:
                    self._idle.put(conn)
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


class PostgresStore(EventStore):
    """The event store in a PostgreSQL schema (group commit on one writer connection, pooled reads)."""

    def __init__(self, url: str, *, schema: str = "shoprec", drop_schema_on_close: bool = False,
                 password: str | None = None) -> None:
        self.url = redact(url)
        self.schema = schema
        self.drop_schema_on_close = drop_schema_on_close
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as e:
            raise StoreError(f"invalid PostgreSQL URL {self.url}: {e}") from None
        self._password = password or params.get("password") or None
        self._connect_kwargs: dict[str, Any] = {"application_name": "shoprec"}
        if password:
            self._connect_kwargs["password"] = password
        if "connect_timeout" not in params:
            self._connect_kwargs["connect_timeout"] = _CONNECT_TIMEOUT
        self._conninfo = url
        self._lock_key = int.from_bytes(hashlib.blake2b(f"shoprec:{schema}".encode(), digest_size=8).digest(),
                                        "big", signed=True)
        self._sql = self._queries(sql.Identifier(schema))
        self._create_schema()
        self._writer = GroupCommitter(lambda: _Writer(self), lambda w: w.commit(), lambda w: w.rollback(),
                                      name="postgres-writer")
        self._readers = _ReadPool(self, _READERS)
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> "PostgresStore":
        """``postgresql://user@host:5432/db`` with two parameters of shoprec's own, taken out before
        libpq sees the URL: ``schema=name`` (default ``shoprec``) and ``password_file=PATH`` (the
        password read from a file, e.g. a Docker secret, so that it is in no URL, command line or
        environment)."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in ("schema", "password_file")}
        rest = urlencode([(k, v) for k, v in query if k not in ours])
        url = urlunsplit(parts._replace(query=rest))
        if "password_file" in ours:
            path = ours["password_file"]
            try:
                password = open(path, encoding="utf-8").read().strip()
            except OSError as e:
                raise StoreError(f"PostgreSQL event store {redact(url)}: cannot read password_file {path}: "
                                 f"{e.strerror}") from None
            options.setdefault("password", password)
        options.setdefault("schema", ours.get("schema", "shoprec"))
        return cls(url, **options)

    # ------------------------------------------------------------------ connections
    def _connect(self, *, autocommit: bool) -> psycopg.Connection:
        try:
            return psycopg.connect(self._conninfo, autocommit=autocommit, **self._connect_kwargs)
        except psycopg.Error as e:
            msg = " ".join(str(e).split())  # libpq's hint lines, on one line
            if self._password and len(self._password) >= 4:  # libpq does not print it; in case a proxy does
                msg = msg.replace(self._password, "***")
            raise StoreError(f"cannot connect to the PostgreSQL event store at {self.url}: {msg}") from None

    def _create_schema(self) -> None:
        conn = self._connect(autocommit=False)
        try:
            with conn:  # one transaction, serialised with other processes creating the same schema
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                for stmt in self._sql["ddl"]:
                    conn.execute(stmt)
        except psycopg.Error as e:
            raise StoreError(f"cannot create the event store schema {self.schema!r} at {self.url}: {e}") from None
        finally:
            conn.close()

    @staticmethod
    def _queries(s: sql.Identifier) -> dict[str, Any]:
        """Every statement, with the schema's tables named in full."""
        def t(name: str) -> sql.Composed:
            return sql.SQL("{}.{}").format(s, sql.Identifier(name))

        cols = sql.SQL(", ").join(map(sql.Identifier, EVENT_COLUMNS))
        ddl = [
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s),
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, {})").format(
                t("events"), sql.SQL(", ").join(sql.SQL("{} " + typ).format(sql.Identifier(c))
                                                for c, typ in _EVENT_TYPES.items())),
            sql.SQL("CREATE INDEX IF NOT EXISTS events_request ON {} (request_id) "
                    "WHERE request_id IS NOT NULL").format(t("events")),
            sql.SQL("CREATE SEQUENCE IF NOT EXISTS {}").format(t("item_seq")),
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (item_id TEXT PRIMARY KEY, attributes JSONB NOT NULL, "
                    "updated_at DOUBLE PRECISION NOT NULL, seq BIGINT NOT NULL)").format(t("items")),
            sql.SQL("CREATE INDEX IF NOT EXISTS items_seq ON {} (seq)").format(t("items")),
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                    "request_id TEXT NOT NULL UNIQUE, created_at DOUBLE PRECISION NOT NULL, scenario TEXT NOT NULL, "
                    "model_version TEXT NOT NULL, user_id TEXT, session_id TEXT, items JSONB NOT NULL, "
                    "context JSONB NOT NULL)").format(t("impressions")),
            sql.SQL("CREATE TABLE IF NOT EXISTS {} (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                    "kind TEXT NOT NULL, key TEXT NOT NULL, body JSONB NOT NULL, "
                    "updated_at DOUBLE PRECISION NOT NULL, UNIQUE (kind, key))").format(t("documents")),
        ]
        unnest = sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(_ARRAY_TYPES[c])) for c in EVENT_COLUMNS)
        return {
            "ddl": ddl,
            "insert_events": sql.SQL(
                "INSERT INTO {} ({cols}) SELECT {cols} FROM unnest({unnest}) WITH ORDINALITY AS r({cols}, ord) "
                "ORDER BY ord ON CONFLICT (event_id) DO NOTHING RETURNING event_id, seq").format(
                t("events"), cols=cols, unnest=unnest),
            "event_seqs": sql.SQL("SELECT event_id, seq FROM {} WHERE event_id = ANY(%s)").format(t("events")),
            "iter_events": sql.SQL("SELECT seq, {} FROM {} WHERE seq > %s ORDER BY seq LIMIT %s").format(
                cols, t("events")),
            "last_seq": sql.SQL("SELECT COALESCE(MAX(seq), 0) FROM {}").format(t("events")),
            "count_events": sql.SQL("SELECT COUNT(*) FROM {}").format(t("events")),
            "existing_ids": sql.SQL("SELECT event_id FROM {} WHERE event_id = ANY(%s)").format(t("events")),
            "upsert_item": sql.SQL(
                "INSERT INTO {items} AS i (item_id, attributes, updated_at, seq) "
                "VALUES (%s, %s::jsonb, %s, nextval({seq})) ON CONFLICT (item_id) DO UPDATE SET "
                "attributes = i.attributes || excluded.attributes, updated_at = excluded.updated_at, "
                "seq = excluded.seq RETURNING seq").format(
                items=t("items"), seq=sql.Literal(t("item_seq").as_string())),
            "iter_items": sql.SQL("SELECT seq, item_id, attributes, updated_at FROM {} WHERE seq > %s "
                                  "ORDER BY seq LIMIT %s").format(t("items")),
            "insert_impressions": sql.SQL(
                "INSERT INTO {} (request_id, created_at, scenario, model_version, user_id, session_id, items, "
                "context) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb) "
                "ON CONFLICT (request_id) DO NOTHING").format(t("impressions")),
            "put_document": sql.SQL(
                "INSERT INTO {} (kind, key, body, updated_at) VALUES (%s, %s, %s::jsonb, %s) "
                "ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at"
            ).format(t("documents")),
            "iter_documents": sql.SQL("SELECT key, body, updated_at FROM {} WHERE kind = %s ORDER BY seq").format(
                t("documents")),
            "erase_sessions": sql.SQL("SELECT DISTINCT session_id FROM {} WHERE user_id = %s AND session_id IS NOT NULL"
                                      ).format(t("events")),
            "erase_events": sql.SQL("DELETE FROM {} WHERE user_id = %s").format(t("events")),
            "erase_impressions": sql.SQL("DELETE FROM {} WHERE user_id = %s OR session_id = ANY(%s)").format(
                t("impressions")),
            "erase_snapshots": sql.SQL("DELETE FROM {} WHERE kind = 'policy_snapshot'").format(t("documents")),
            "rename_events": sql.SQL("UPDATE {} SET user_id = %s WHERE user_id = %s").format(t("events")),
            "rename_impressions": sql.SQL("UPDATE {} SET user_id = %s WHERE user_id = %s").format(t("impressions")),
            "delete_document": sql.SQL("DELETE FROM {} WHERE kind = %s AND key = %s").format(t("documents")),
            "vacuum": [sql.SQL("VACUUM {}").format(t(x)) for x in ("events", "impressions", "documents")],
            "iter_impressions": sql.SQL(
                "SELECT seq, request_id, created_at, scenario, model_version, user_id, session_id, items, context "
                "FROM {} WHERE seq > %s ORDER BY seq LIMIT %s").format(t("impressions")),
        }

    def _read(self, query: Any, params: Sequence[Any] = ()) -> list[tuple]:
        for attempt in (1, 2):  # a pooled connection the server dropped while idle: once more on a new one
            with self._readers.connection() as conn:
                try:
                    return conn.execute(query, params).fetchall()
                except psycopg.Error as e:
                    if attempt == 1 and conn.broken:
                        continue
                    raise StoreError(f"cannot read the PostgreSQL event store at {self.url}: {e}") from None
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ events
    def append_events(self, events: Sequence[EventRecord]) -> AppendResult:
        if not events:
            return AppendResult(0, 0, [])
        columns = [[conv(getattr(e, c)) for e in events]
                   for c, conv in ((c, _CONVERT[_ARRAY_TYPES[c]]) for c in EVENT_COLUMNS)]
        ids = columns[0]
        insert, select = self._sql["insert_events"], self._sql["event_seqs"]

        def job(w: _Writer) -> dict[str, int]:
            conn = w.lock()
            found: dict[str, int] = {}
            with conn.cursor() as cur:
                for start in range(0, len(ids), _CHUNK):
                    cur.execute(insert, [col[start:start + _CHUNK] for col in columns])
                    found.update(cur.fetchall())
                accepted = len(found)
                missing = [i for i in set(ids) if i not in found]
                if missing:
                    cur.execute(select, (missing,))
                    found.update(cur.fetchall())
            return {"accepted": accepted, "seqs": found}

        out = self._write(job)
        found = out["seqs"]
        seqs = [int(found[i]) for i in ids]
        for e, s in zip(events, seqs):
            e.seq = s
        return AppendResult(out["accepted"], len(events) - out["accepted"], seqs)

    def _pages(self, query: str, after_seq: int, batch: int) -> Iterator[list[tuple]]:
        """The rows of a ``SELECT seq, … WHERE seq > %s ORDER BY seq LIMIT %s`` query, page by page (a
        pooled connection is held for one page at a time, not while the caller works on it)."""
        last = after_seq
        while rows := self._read(self._sql[query], (last, batch)):
            yield rows
            last = rows[-1][0]

    def iter_events(self, after_seq: int = 0, batch: int = 10_000) -> Iterator[list[EventRecord]]:
        for rows in self._pages("iter_events", after_seq, batch):
            yield [EventRecord(**dict(zip(EVENT_COLUMNS, r[1:])), seq=r[0]) for r in rows]

    def last_seq(self) -> int:
        return int(self._read(self._sql["last_seq"])[0][0])

    def count_events(self) -> int:
        return int(self._read(self._sql["count_events"])[0][0])

    def existing_event_ids(self, ids: Iterable[str]) -> set[str]:
        ids = list(ids)
        if not ids:
            return set()
        return {r[0] for r in self._read(self._sql["existing_ids"], (ids,))}

    # ------------------------------------------------------------------ items
    def upsert_items(self, items: Sequence[ItemRecord]) -> int:
        if not items:
            return 0
        now = time.time()
        # nulls dropped here (not with jsonb_strip_nulls, which would also strip nested ones)
        params = [(it.item_id, json.dumps({k: v for k, v in it.attributes.items() if v is not None}),
                   it.updated_at or now) for it in items]
        query = self._sql["upsert_item"]

        def job(w: _Writer) -> list[int]:
            with w.lock().cursor() as cur:
                cur.executemany(query, params, returning=True)
                seqs = []
                while True:
                    seqs.append(cur.fetchone()[0])
                    if not cur.nextset():
                        break
            return seqs

        seqs = self._write(job)
        for it, seq in zip(items, seqs):
            it.seq = int(seq)
        return len(items)

    def iter_items(self) -> Iterator[ItemRecord]:
        for rows in self._pages("iter_items", 0, 10_000):
            for seq, item_id, attrs, updated in rows:
                yield ItemRecord(item_id, attrs, updated, seq)

    # ------------------------------------------------------------------ impressions
    def append_impressions(self, rows: Sequence[ImpressionRecord]) -> None:
        if not rows:
            return
        values = [(r.request_id, r.created_at, r.scenario, r.model_version, r.user_id, r.session_id,
                   _json(r.items), _json(r.context)) for r in rows]
        query = self._sql["insert_impressions"]

        def job(w: _Writer) -> None:
            with w.lock().cursor() as cur:
                cur.executemany(query, values)

        self._write(job)

    def iter_impressions(self, after_seq: int = 0, batch: int = 10_000) -> Iterator[list[ImpressionRecord]]:
        for rows in self._pages("iter_impressions", after_seq, batch):
            yield [ImpressionRecord(request_id=r[1], created_at=r[2], scenario=r[3], model_version=r[4],
                                    user_id=r[5], session_id=r[6], items=r[7], context=r[8], seq=r[0])
                   for r in rows]

    # ------------------------------------------------------------------ documents
    def put_document(self, kind: str, key: str, body: dict[str, Any]) -> None:
        params = (kind, key, _json(body), time.time())
        query = self._sql["put_document"]

        def job(w: _Writer) -> None:
            w.lock().execute(query, params)

        self._write(job)

    def iter_documents(self, kind: str) -> Iterator[tuple[str, dict[str, Any], float]]:
        for key, body, updated in self._read(self._sql["iter_documents"], (kind,)):
            yield key, body, updated

    # ------------------------------------------------------------------ erasure
    def erase_user(self, user_id: str) -> dict[str, int]:
        """As the interface says; then ``VACUUM`` of the three tables, so the space of the deleted
        rows is reclaimed (PostgreSQL overwrites it as it reuses the pages; its own WAL segments and
        base backups are the database operator's to expire)."""
        q = self._sql

        def job(w: _Writer) -> dict[str, int]:
            c = w.lock()
            sessions = [r[0] for r in c.execute(q["erase_sessions"], (user_id,)).fetchall()]
            n_events = c.execute(q["erase_events"], (user_id,)).rowcount
            n_imp = c.execute(q["erase_impressions"], (user_id, sessions)).rowcount
            n_snap = c.execute(q["erase_snapshots"]).rowcount
            return {"events": n_events, "impressions": n_imp, "sessions": len(sessions), "snapshots": n_snap,
                    "session_ids": sessions}

        got = self._write(job)
        try:
            conn = self._connect(autocommit=True)
            try:
                for stmt in q["vacuum"]:
                    conn.execute(stmt)
            finally:
                conn.close()
        except psycopg.Error as e:   # the rows are gone; only the space is not reclaimed yet
            log.warning("VACUUM after an erasure failed (autovacuum will reclaim the space): %s", e)
        return got

    def rename_users(self, mapping: dict[str, str]) -> dict[str, int]:
        q = self._sql
        pairs = [(new, old) for old, new in mapping.items() if old != new]

        def job(w: _Writer) -> dict[str, int]:
            c = w.lock()
            n_e = n_i = 0
            for p in pairs:
                n_e += c.execute(q["rename_events"], p).rowcount
                n_i += c.execute(q["rename_impressions"], p).rowcount
            return {"events": n_e, "impressions": n_i}

        return self._write(job)

    def delete_document(self, kind: str, key: str) -> None:
        q = self._sql["delete_document"]
        self._write(lambda w: w.lock().execute(q, (kind, key)))

    # ------------------------------------------------------------------ lifecycle
    def _write(self, job: Any) -> Any:
        try:
            return self._writer.run(job)
        except psycopg.Error as e:
            raise StoreError(f"cannot write to the PostgreSQL event store at {self.url}: {e}") from None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._readers.close()
        if self.drop_schema_on_close:
            conn = self._connect(autocommit=True)
            try:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))
            finally:
                conn.close()
