"""The state bus over a Redis stream (see :mod:`shoprec.service.bus`).

Registered under the schemes ``redis``, ``rediss`` and ``unix``.

``publish`` appends one entry ``origin=<worker> kind=<kind> payload=<json records>`` to the stream.
Its history is bounded: ``XADD … MAXLEN ~ max_len`` (default 100,000 entries; Redis trims whole
nodes of ~100 entries, so the stream holds a little more) and, with ``max_age_seconds``, an
``XTRIM … MINID ~ <now − age>`` in the same round trip. A worker farther behind than that loses the
oldest changes (it logs nothing of them: it rebuilds from the event store when it restarts, which is
the durable record; the bus only carries what the other workers need next).
``start`` notes the stream's last id before it returns, so a change published after ``start`` is
never missed and one published before is never delivered; a daemon thread then follows the stream
with ``XREAD BLOCK 1000 COUNT 500`` and hands every entry from another origin to the handler, in
stream order. A lost connection is logged and retried with a growing pause (0.1 s up to 5 s); an
exception in the handler is logged and the entry skipped. ``close`` wakes the thread from its block
(``CLIENT UNBLOCK``) and waits for it: a few milliseconds, at most about the one-second block.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from ..exceptions import ShoprecError
from .bus import EventBus, Handler

try:
    import orjson

    def _dumps(records: list[dict[str, Any]]) -> bytes:
        return orjson.dumps(records, default=str, option=orjson.OPT_SERIALIZE_NUMPY)

    _loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is optional
    import json

    def _dumps(records: list[dict[str, Any]]) -> bytes:
        return json.dumps(records, default=str, separators=(",", ":")).encode()

    _loads = json.loads

__all__ = ["BusError", "RedisBus"]

log = logging.getLogger(__name__)

MAX_LEN = 100_000  # entries kept by default (about: trimming is approximate)
BLOCK_MS = 1000
COUNT = 500
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 5.0  # seconds between reconnection attempts


class BusError(ShoprecError):
    """The state bus cannot be reached or written."""


def redact(url: str) -> str:
    """``url`` with its password (in the user info or a ``password=`` parameter) replaced by ``***``."""
    out = re.sub(r"([?&]password=)[^&#]*", r"\1***", url)
    parts = urlsplit(out)
    if parts.password is not None:
        out = out.replace(parts.netloc, f"{parts.username or ''}:***@{parts.netloc.rsplit('@', 1)[1]}", 1)
    return out


class RedisBus(EventBus):
    """Changes shared between the workers of one service over the Redis stream ``stream``."""

    def __init__(self, url: str, *, stream: str = "shoprec:changes", max_len: int | None = MAX_LEN,
                 max_age_seconds: float | None = None) -> None:
        super().__init__()
        self.url = redact(url)
        self.stream = stream
        if max_len is not None and max_len < 1:
            raise BusError(f"state bus {self.url}: max_len must be at least 1 (or None for no bound), not {max_len}")
        if max_age_seconds is not None and max_age_seconds <= 0:
            raise BusError(f"state bus {self.url}: max_age_seconds must be positive (or None), not {max_age_seconds}")
        self.max_len = max_len
        self.max_age_seconds = max_age_seconds
        self._reader_name = f"shoprec-bus-{self.origin}"
        try:
            # publish: a few quick retries, then the caller hears of it
            self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3))
            # follow: its own connection, no hidden retries (the loop below retries and logs);
            # the socket timeout outlasts the 1 s block
            self._reader = redis.Redis.from_url(url, socket_timeout=BLOCK_MS / 1000 + 4, socket_connect_timeout=5,
                                                retry=Retry(NoBackoff(), 0), client_name=self._reader_name)
            self._reader.ping()  # no retries: an absent server is reported at once
        except (redis.RedisError, ValueError) as e:
            raise BusError(f"cannot reach the state bus at {self.url}: {e}") from None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_id = b"0-0"
        self.delivered = 0  # entries handed to the handler (for tests and metrics)
        self.unblocked = 0  # times close woke the follower from its block (CLIENT UNBLOCK)

    def publish(self, kind: str, records: list[dict[str, Any]]) -> None:
        fields = {"origin": self.origin, "kind": kind, "payload": _dumps(records)}
        try:
            if self.max_age_seconds is None:
                self._client.xadd(self.stream, fields, maxlen=self.max_len, approximate=True)
            else:  # both bounds, one round trip
                pipe = self._client.pipeline(transaction=False)
                pipe.xadd(self.stream, fields, maxlen=self.max_len, approximate=True)
                pipe.xtrim(self.stream, minid=f"{int((time.time() - self.max_age_seconds) * 1000)}-0",
                           approximate=True)
                pipe.execute()
        except redis.RedisError as e:
            raise BusError(f"cannot publish to the state bus at {self.url} (stream {self.stream!r}): {e}") from None

    def forget(self, needle: str, *, except_kind: str | None = None) -> int:
        """``XRANGE`` over the whole (bounded) stream, ``XDEL`` of the entries naming ``needle``. Where
        Redis persists (RDB / AOF), the deleted entries leave its files at the next save / rewrite."""
        target = needle.encode()
        skip = except_kind.encode() if except_kind else None
        start, removed = "-", 0
        try:
            while True:
                entries = self._client.xrange(self.stream, min=start, max="+", count=1000)
                if not entries:
                    return removed
                doomed = [eid for eid, f in entries if target in f.get(b"payload", b"") and f.get(b"kind") != skip]
                if doomed:
                    removed += int(self._client.xdel(self.stream, *doomed))
                last = entries[-1][0].decode()
                ms, seq = last.split("-")
                start = f"{ms}-{int(seq) + 1}"
                if len(entries) < 1000:
                    return removed
        except redis.RedisError as e:
            raise BusError(f"cannot erase from the state bus at {self.url} (stream {self.stream!r}): {e}") from None

    def start(self, handler: Handler) -> None:
        if self._thread is not None:
            raise BusError("the bus is already started")
        try:
            last = self._client.xrevrange(self.stream, count=1)
        except redis.RedisError as e:
            raise BusError(f"cannot read the state bus at {self.url} (stream {self.stream!r}): {e}") from None
        self._last_id = last[0][0] if last else b"0-0"
        self._thread = threading.Thread(target=self._follow, args=(handler,), name="redis-bus", daemon=True)
        self._thread.start()

    def _follow(self, handler: Handler) -> None:
        pause = BACKOFF_FIRST
        failing = False
        origin = self.origin.encode()
        while not self._stop.is_set():
            try:
                answer = self._reader.xread({self.stream: self._last_id}, count=COUNT, block=BLOCK_MS)
            except redis.RedisError as e:
                if self._stop.is_set():
                    break
                log.warning("state bus %s: cannot read stream %r (%s); retrying in %.1f s",
                            self.url, self.stream, e, pause)
                failing = True
                self._stop.wait(pause)
                pause = min(pause * 2, BACKOFF_MAX)
                continue
            if failing:
                log.warning("state bus %s: reading stream %r again", self.url, self.stream)
                failing, pause = False, BACKOFF_FIRST
            for _stream, entries in answer or ():
                for entry_id, fields in entries:
                    self._last_id = entry_id
                    if fields.get(b"origin") == origin:
                        continue
                    try:
                        handler(fields[b"kind"].decode(), _loads(fields[b"payload"]))
                    except Exception:  # noqa: BLE001 - one bad change must not stop the others
                        log.exception("state bus %s: the handler failed on entry %s of %r; skipped",
                                      self.url, entry_id.decode(), self.stream)
                    self.delivered += 1
        log.debug("state bus %s: stopped following %r", self.url, self.stream)

    def _unblock_follower(self) -> None:
        """Wake the follower from its blocking XREAD (``CLIENT UNBLOCK``), so ``close`` need not wait
        out the block; where the server refuses (ACLs), the block ends within a second anyway."""
        try:
            for c in self._client.client_list(_type="normal"):
                if c.get("name") == self._reader_name:
                    self.unblocked += int(self._client.client_unblock(c["id"]))
        except redis.RedisError:
            pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._unblock_follower()
            self._thread.join(timeout=BLOCK_MS / 1000 + 1)
            if self._thread.is_alive():
                log.warning("state bus %s: the follower thread is still busy in its handler", self.url)
        self._reader.close()
        self._client.close()
