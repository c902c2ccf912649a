"""Training a servable model: a shop's data (a file, a research format, the demo shop) plus, when
given, everything the live service stored since (events and catalogue changes), fitted into a
:class:`~shoprec.scenarios.Recommender` and written as a new version in a models folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from ..data import Behaviour, ShopData
from ..data.readers import frame_to_shopdata
from ..scenarios import Recommender, ScenarioConfig
from .files import make_private, private_dir
from .store import EventStore


def events_frame(data: ShopData) -> pd.DataFrame:
    """The events of ``data`` with external ids (the readers' validated-frame form)."""
    ev = data.events
    out = pd.DataFrame({
        "user_id": data.users.to_external(ev["user_idx"].to_numpy()),
        "item_id": data.items.to_external(ev["item_idx"].to_numpy()),
        "behaviour": ev["behaviour"].to_numpy(),
        "timestamp": ev["timestamp"].to_numpy(),
    })
    if data.sessions is not None:
        s = ev["session_idx"].to_numpy()
        out["session_id"] = np.where(s >= 0, data.sessions.to_external(np.maximum(s, 0)), None)
    for col in ("quantity", "price", "rating"):
        out[col] = ev[col].to_numpy()
    for col in ("country", "device", "scenario"):
        if col in ev.columns:
            out[col] = ev[col].astype(object).to_numpy()
    return out


def external_item_table(data: ShopData) -> pd.DataFrame | None:
    """The item table indexed by external item id (what the readers take), or None."""
    if data.item_table is None:
        return None
    table = data.item_table.copy()
    table.index = pd.Index(data.items.external_ids.astype(str), name="item_id")
    return table


def store_frame(store: EventStore) -> tuple[pd.DataFrame, int]:
    """Every stored event as a frame of the same form, and the last sequence number read."""
    rows, last = [], 0
    for chunk in store.iter_events():
        for e in chunk:
            user = e.user_id or (f"session:{e.session_id}" if e.session_id else None)
            rows.append((user, e.item_id, int(Behaviour.parse(e.behaviour)), int(e.timestamp), e.session_id,
                         e.quantity, e.price, e.country, e.device))
        last = chunk[-1].seq
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp", "session_id", "quantity",
                                        "price", "country", "device"])
    frame = frame[frame["user_id"].notna()]
    for col in ("quantity", "price"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(np.float32)
    frame["behaviour"] = frame["behaviour"].astype(np.int8)
    return frame, last


def with_store(data: ShopData, store: EventStore) -> tuple[ShopData, int, int]:
    """``data`` plus the store's events and item changes; the last event and item sequence numbers."""
    frame = events_frame(data)
    live, last_seq = store_frame(store)
    items = list(store.iter_items())
    if not len(live) and not items:
        return data, last_seq, 0
    if len(live):
        live["rating"] = np.float32(np.nan)
        frame = pd.concat([frame, live[[c for c in live.columns if c in frame.columns or c == "session_id"]]],
                          ignore_index=True)
    table = external_item_table(data)
    if items:
        upd = pd.DataFrame([{"item_id": it.item_id, **it.attributes} for it in items]).set_index("item_id")
        table = upd if table is None else table.combine_first(upd)
        table.update(upd)
    if "timestamp" in frame.columns:
        frame = frame.sort_values("timestamp", kind="stable")
    merged = frame_to_shopdata(frame.reset_index(drop=True), name=data.name, item_table=table)
    last_item_seq = max((it.seq for it in items), default=0)
    return merged, last_seq, last_item_seq


def without_users(data: ShopData, drop: np.ndarray) -> ShopData:
    """``data`` without the users of the bool mask ``drop`` (over its users): their events and their
    ids are gone (the id map is rebuilt), everything else kept."""
    if not drop.any():
        return data
    frame = events_frame(data)
    keep_users = ~drop
    frame = frame[keep_users[data.events["user_idx"].to_numpy()]]
    table = external_item_table(data)
    users = None
    if data.user_table is not None:
        users = data.user_table.copy()
        users.index = pd.Index(data.users.external_ids.astype(str), name="user_id")
        users = users[keep_users]
    meta = dict(data.meta or {})
    return frame_to_shopdata(frame.reset_index(drop=True), name=data.name, item_table=table, user_table=users,
                             meta=meta)


def train(data: ShopData, models_dir: Path, *, scenarios: Iterable[str | Path | ScenarioConfig] | None = None,
          store: EventStore | None = None, progress: Callable[[str, float], None] | None = None,
          publish: bool = True, pseudonymizer: Any = "env") -> Path:
    """Fit every scenario (or ``scenarios``) on ``data`` (plus the store's contents) and write the
    model into ``models_dir/<version>``; with ``publish``, make it the folder's CURRENT version. What it
    creates is owner-only (0700 folders, 0600 files).

    Privacy: the user ids of ``data`` are pseudonymised with ``pseudonymizer`` (default: the key of
    ``SHOPREC_ID_KEY``, if set; the store's are already); users erased from the store (its
    suppression tokens) are left out; after publishing, every older model version made before the
    last erasure is deleted (it holds the erased user). An erasure that arrives while fitting makes
    it fit again (at most twice more)."""
    from ..privacy.pseudonym import Pseudonymizer, pseudonymize_data

    pz = Pseudonymizer.from_env() if pseudonymizer == "env" else pseudonymizer
    if pz is not None and not (data.meta or {}).get("pseudonymized"):
        data = pseudonymize_data(data, pz)
    for _ in range(3):
        read_at = time.time()
        target = _train_once(data, models_dir, scenarios, store, progress, publish, pz, read_at)
        if store is None:
            return target
        from .erasure import last_erasure_time, prune_versions

        last = last_erasure_time(store)
        if last and publish:
            prune_versions(models_dir, target, before=last)
        if last < read_at:
            return target
    return target


def _train_once(data, models_dir, scenarios, store, progress, publish, pz, read_at) -> Path:
    from .app import publish_model

    meta: dict[str, object] = {"trained_through_seq": 0, "trained_through_item_seq": 0,
                               "id_key": pz.key_id if pz is not None else None, "trained_at": read_at}
    if store is not None:
        from .erasure import suppressed_mask, suppression_tokens

        data, meta["trained_through_seq"], meta["trained_through_item_seq"] = with_store(data, store)
        meta["store"] = store.url
        drop = suppressed_mask(data.users.external_ids, suppression_tokens(store), pz)
        data = without_users(data, drop)
        meta["users_erased_left_out"] = int(drop.sum())
    start = time.perf_counter()
    rec = Recommender(scenarios).fit(data, progress=progress)
    meta["fit_seconds"] = round(time.perf_counter() - start, 2)
    models_dir = private_dir(models_dir)                 # created 0700 (the model holds the shop's data)
    tmp = rec.save(models_dir / f".training-{time.time_ns()}", **meta)
    make_private(tmp)                                    # 0600 files, 0700 folders, before it is published
    from ..scenarios.artifact import read_manifest

    version = read_manifest(tmp)["version"]
    target = models_dir / version
    if target.exists():
        target = models_dir / f"{version}-{time.time_ns() % 100000}"
    tmp.rename(target)
    if publish:
        publish_model(models_dir, target)
    return target
