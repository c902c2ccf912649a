"""Erasure of a user from everything the service keeps (``DELETE /v1/users/{id}``, ``shoprec erase``).

Where a user's personal data lives, and what an erasure does to each:

=========================  ==========================================================================
event store                the user's events, the impressions of the user and of every session their
                           events named, and the policy snapshots (aggregates their rewards are part of)
                           are deleted in one transaction; SQLite deletes with ``secure_delete`` and
                           truncates its WAL, so the bytes leave its files (PostgreSQL: ``VACUUM``)
impression log             flushed first, so no queued impression of the user is written afterwards
live state                 the visitor's recent items, basket and purchases, by user and by each of
                           their sessions; the bot guard's visits of the same keys
mix policies               the learners are rebuilt from the rows left (their state is a pure function
                           of the stored answers and events)
state bus                  every entry of the Redis stream naming the user is deleted (``XDEL``); the
                           erasure itself travels on the bus so every worker forgets the user, and that
                           entry is deleted too a few seconds later
served model               the user is served as a visitor without history at once (``forget_users``);
                           their **factors and their counts in popularity, co-visitation and item-kNN stay
                           in the model files until the next fit**: the models are marked stale, and the
                           next ``shoprec train`` (at once with ``shoprec erase --refit``, or started by
                           the service when it was given ``refit_data``) fits without the user and deletes
                           every older model version
the shop's own files       a **suppression token** (an HMAC of the pseudonym under a separate label —
                           not the pseudonym, not the id) is kept, so that a refit on files that still
                           hold the user leaves them out, and a restart on an old model forgets them again
=========================  ==========================================================================

An **audit record** of each erasure is kept as a store document (kind ``erasure``): when, how many
rows of each kind were removed, what was done to the models — without the id, the pseudonym or the
token. Erasing a user of whom nothing is stored and whom the model does not know is an
:class:`UnknownUser` error (404), and changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import ShoprecError
from ..privacy.pseudonym import Pseudonymizer, unkeyed_token
from .store import EventStore, new_id

__all__ = ["AUDIT_KIND", "SUPPRESSION_KIND", "ErasureRecord", "UnknownUser", "erase_from_store", "prune_versions",
           "suppressed_mask", "suppression_token", "suppression_tokens"]

AUDIT_KIND = "erasure"
SUPPRESSION_KIND = "erasure_suppression"


class UnknownUser(ShoprecError):
    """Nothing is known of the user to erase."""


def stored_id(raw_id: str, pz: Pseudonymizer | None) -> str:
    """The id the service stores for ``raw_id``: its pseudonym, or the id itself without a key."""
    return pz.pseudo(raw_id) if pz is not None else raw_id


def suppression_token(stored: str, pz: Pseudonymizer | None) -> str:
    return pz.token(stored) if pz is not None else unkeyed_token(stored)


def suppression_tokens(store: EventStore) -> set[str]:
    return {key for key, _, _ in store.iter_documents(SUPPRESSION_KIND)}


def suppressed_mask(user_ids, tokens: set[str], pz: Pseudonymizer | None) -> np.ndarray:
    """Bool per stored user id: erased (its token is in ``tokens``)."""
    if not tokens:
        return np.zeros(len(user_ids), bool)
    return np.fromiter((suppression_token(str(u), pz) in tokens for u in user_ids), bool, len(user_ids))


@dataclass
class ErasureRecord:
    """The audit record of one erasure (no id in it)."""

    erasure_id: str
    at: float
    events: int
    impressions: int
    sessions: int
    policy_snapshots: int
    known_to_model: bool
    bus_entries: int = 0
    models: str = "stale until the next fit"
    steps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def erase_from_store(raw_id: str, store: EventStore, pz: Pseudonymizer | None, *,
                     known_to_model: bool = False) -> tuple[ErasureRecord, str, list[str]]:
    """Delete the user's rows from ``store`` and keep the suppression token; returns the audit record
    (not yet stored: the caller adds what it did and calls :func:`keep_record`), the stored id and
    the sessions the user's events named. :class:`UnknownUser` when there was nothing to erase."""
    sid = stored_id(raw_id, pz)
    got = store.erase_user(sid)
    sessions = list(got.pop("session_ids", []))
    if not known_to_model and not any(got.values()):
        raise UnknownUser("no such user: nothing is stored of this id and the model does not know it")
    store.put_document(SUPPRESSION_KIND, suppression_token(sid, pz), {"at": round(time.time(), 3)})
    record = ErasureRecord(new_id(), round(time.time(), 3), got["events"], got["impressions"], got["sessions"],
                           got["snapshots"], known_to_model,
                           steps=["event store: events, impressions and policy snapshots deleted"])
    return record, sid, sessions


def keep_record(store: EventStore, record: ErasureRecord) -> None:
    store.put_document(AUDIT_KIND, record.erasure_id, record.as_dict())


def last_erasure_time(store: EventStore) -> float:
    return max((float(body.get("at", 0.0)) for _, body, _ in store.iter_documents(AUDIT_KIND)), default=0.0)


def prune_versions(models_dir: Path, keep: Path, before: float) -> list[str]:
    """Delete every model version in ``models_dir`` other than ``keep`` created before ``before``
    (unix seconds): after an erasure they hold the erased user. Returns the names deleted."""
    import shutil

    from ..scenarios.artifact import read_manifest

    gone = []
    for d in Path(models_dir).iterdir():
        if not d.is_dir() or d.resolve() == Path(keep).resolve() or not (d / "manifest.json").is_file():
            continue
        try:
            created = float(read_manifest(d).get("meta", {}).get("trained_at", 0.0)) or d.stat().st_mtime
        except Exception:  # noqa: BLE001 - an unreadable old version is deleted as well
            created = 0.0
        if created < before:
            shutil.rmtree(d)
            gone.append(d.name)
    return gone
