"""User ids pseudonymised at rest: every user id the service receives (recommendation requests,
events, erasure requests) and every user id of the shop's training files is replaced, before it is
stored, logged, learned from or kept in memory, by ``HMAC-SHA256(key, id)``::

    p:<32 hex digits>        (128 bits of the HMAC; "p:" marks a pseudonym)

**The key** comes from the environment, ``SHOPREC_ID_KEY`` (at least 16 characters; hex or any
text), or from a file named by ``SHOPREC_ID_KEY_FILE`` (its first line; keep it 0600). Without a
key the ids are stored as given (and ``shoprec serve`` says so). A model records the key's
fingerprint (``key_id``, the first 12 hex digits of SHA-256 of ``"shoprec id key" + key``, which
reveals nothing of the key); the service refuses a model trained under another key, because its
users would never match.

**Rotation.** An HMAC cannot be inverted, so a new key cannot be applied to stored pseudonyms
alone. To rotate: (1) stop writes or note the last event sequence; (2) with the shop's own list of
raw customer ids, ``shoprec privacy rekey --ids customers.csv --store URL`` (old key in
``SHOPREC_ID_KEY``, new key in ``SHOPREC_ID_KEY_NEW``) rewrites every stored event and impression
from the old pseudonym to the new one, in one transaction; ids the list does not name keep the old
pseudonym and no longer link to new activity (they age out like any inactive visitor); (3) set
``SHOPREC_ID_KEY`` to the new key, retrain (``shoprec train --store URL``), restart. Old model
versions hold old pseudonyms: delete them after the new model is serving.

What is pseudonymised: ``user_id`` everywhere. Session ids are random cookies chosen by the shop
and are kept as given; item ids are not personal data. Erasure (:mod:`shoprec.privacy.erasure`)
removes a pseudonym from everything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..exceptions import ConfigError

__all__ = ["ID_KEY_ENV", "ID_KEY_FILE_ENV", "PREFIX", "Pseudonymizer", "pseudonymize_data"]

ID_KEY_ENV = "SHOPREC_ID_KEY"
ID_KEY_FILE_ENV = "SHOPREC_ID_KEY_FILE"
PREFIX = "p:"


class Pseudonymizer:
    """``pseudo(id)``: the keyed pseudonym of a user id (module docstring)."""

    def __init__(self, key: str | bytes) -> None:
        raw = key.encode() if isinstance(key, str) else bytes(key)
        if len(raw) < 16:
            raise ConfigError(f"{ID_KEY_ENV}: the id key must have at least 16 characters (got {len(raw)})")
        self._key = raw
        self.key_id = hashlib.sha256(b"shoprec id key" + raw).hexdigest()[:12]
        self._cache: dict[str, str] = {}

    def __repr__(self) -> str:          # never the key
        return f"Pseudonymizer(key_id={self.key_id!r})"

    @classmethod
    def from_env(cls, environ: dict | None = None) -> "Pseudonymizer | None":
        """The key of ``SHOPREC_ID_KEY`` (or the file of ``SHOPREC_ID_KEY_FILE``); None when neither is set."""
        env = os.environ if environ is None else environ
        key = env.get(ID_KEY_ENV)
        if not key and env.get(ID_KEY_FILE_ENV):
            path = Path(env[ID_KEY_FILE_ENV])
            try:
                key = path.read_text().splitlines()[0].strip()
            except (OSError, IndexError) as e:
                raise ConfigError(f"{ID_KEY_FILE_ENV}={path}: cannot read the id key ({e})") from None
        return cls(key) if key else None

    def pseudo(self, user_id: str) -> str:
        """``p:`` + the first 32 hex digits of HMAC-SHA256(key, user_id)."""
        got = self._cache.get(user_id)
        if got is None:
            got = PREFIX + hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()[:32]
            if len(self._cache) < 1_000_000:
                self._cache[user_id] = got
        return got

    def maybe(self, user_id: str | None) -> str | None:
        return None if user_id is None else self.pseudo(user_id)

    def many(self, user_ids) -> np.ndarray:
        return np.array([self.pseudo(str(u)) for u in user_ids], dtype=object)

    def token(self, pseudonym: str) -> str:
        """The suppression-list token of an erased user: a second HMAC under the same key, so the
        list names nobody (it is not the pseudonym) but training can recognise the user's rows."""
        return "e:" + hmac.new(self._key, b"erased\0" + pseudonym.encode(), hashlib.sha256).hexdigest()[:32]


def unkeyed_token(user_id: str) -> str:
    """The suppression token without an id key (ids stored as given): a plain SHA-256 of the id."""
    return "e:" + hashlib.sha256(b"shoprec erased\0" + user_id.encode()).hexdigest()[:32]


def pseudonymize_data(data, pz: Pseudonymizer):
    """``data`` with every user id replaced by its pseudonym (same indices; the user table's index too)."""
    from ..data.idmap import IdMap

    ids = pz.many(data.users.external_ids)
    users = IdMap(ids)
    table = data.user_table
    if table is not None:
        table = table.copy()
        if "user_id" in table.columns:           # the table is indexed by user_idx; an id column is hashed
            table["user_id"] = pz.many(table["user_id"].astype(str))
    meta = dict(data.meta or {})
    meta["pseudonymized"] = pz.key_id
    return replace(data, users=users, user_table=table, meta=meta)
