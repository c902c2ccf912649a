"""Erasure (issue 13): a user erased through the service leaves no trace, and the refitted models
answer exactly as models that never saw them.

Protocol
--------
* **Exactness** (the demo shop, the embedded Online Retail slice; ids pseudonymised with a fixed
  test key): for each of 5 users chosen with the seed among those with ≥ 20 events, the erasure
  path (store rows deleted, suppression token kept, ``training.without_users``) against data built
  from the shop's events without that user's rows ("never existed"). Strategies fitted on both:
  popularity, trending, item-kNN (cosine), co-visitation, frequently-bought-together (count-based:
  the answers must be identical) and ALS (factor model: top-10 overlap reported). Answers compared:
  the top 10 (external ids) of the 50 users who shared most items with the erased one. Also
  reported: how many of those peers' item-kNN lists the erased user's presence changed (so the
  comparison is not vacuous).
* **Through the service** (the demo shop's last 42 days, every shipped scenario but SASRec, an id
  key): events and answers of each erased user are posted first; then ``DELETE /v1/users/{id}``
  with the admin key (latency), a request without the key (refused), the scheduled refit
  (``shoprec train --store``, time), and a scan of the data directory and the models folder for
  the raw id and the pseudonym: raw bytes, and inside every Parquet, npz and JSON file.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

KEY = "benchmark-id-key-0123456789abcdef"
K = 10


def _peers(data, g: int, n: int = 50) -> np.ndarray:
    ev = data.events
    his = np.unique(ev.loc[ev["user_idx"] == g, "item_idx"].to_numpy())
    other = ev[ev["item_idx"].isin(his) & (ev["user_idx"] != g)]
    counts = other.groupby("user_idx")["item_idx"].nunique().sort_values(ascending=False, kind="stable")
    return counts.index.to_numpy()[:n]


def _lists(model, d, users_ext) -> list[list[str]]:
    from shoprec.strategies.base import Queries

    rec = model.recommend(Queries.for_users(d.users.to_index(list(users_ext))), K)
    return [list(d.items.to_external(r[r >= 0])) for r in rec.item_idx]


STRATS = [("popularity", "popularity", {}, True), ("trending", "popularity", {"mode": "trending"}, True),
          ("item_knn (cosine)", "item_knn", {}, True), ("co-visitation", "item_knn", {"similarity": "covisit"}, True),
          ("fbt", "fbt", {}, True), ("als", "als", {"factors": 64, "iterations": 15}, False)]


def exactness(seed: int = 1, n_users: int = 5) -> dict:
    from shoprec.data.adapters import load_online_retail
    from shoprec.data.readers import frame_to_shopdata
    from shoprec.demo_data import DEMO_PATH
    from shoprec.privacy import Pseudonymizer, pseudonymize_data
    from shoprec.service.erasure import erase_from_store, suppressed_mask, suppression_tokens
    from shoprec.service.store_sqlite import SQLiteStore
    from shoprec.service.training import events_frame, external_item_table, without_users
    from shoprec.strategies.base import make_strategy

    pz = Pseudonymizer(KEY)
    raw, _ = load_online_retail(DEMO_PATH)
    data = pseudonymize_data(raw, pz)
    counts = np.bincount(data.events["user_idx"].to_numpy(), minlength=data.n_users)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(np.flatnonzero(counts >= 20), n_users, replace=False)
    frame = events_frame(data)
    table = external_item_table(data)
    out = {s[0]: {"identical": 0, "compared": 0, "overlap": [], "changed_by_user": 0} for s in STRATS}
    seconds = []
    for g in chosen:
        raw_id = str(raw.users.to_external(np.array([g]))[0])
        gone = pz.pseudo(raw_id)
        with tempfile.TemporaryDirectory() as tmp:
            store = SQLiteStore(Path(tmp) / "events.db")
            t = time.perf_counter()
            erase_from_store(raw_id, store, pz, known_to_model=True)
            refit = without_users(data, suppressed_mask(data.users.external_ids, suppression_tokens(store), pz))
            seconds.append(time.perf_counter() - t)
            store.close()
        never = frame_to_shopdata(frame[frame["user_id"] != gone].reset_index(drop=True), name="never",
                                  item_table=table)
        peers = data.users.to_external(_peers(data, g))
        for label, name, params, exact in STRATS:
            a = _lists(make_strategy(name, **params).fit(refit), refit, peers)
            b = _lists(make_strategy(name, **params).fit(never), never, peers)
            o = out[label]
            o["compared"] += len(a)
            o["identical"] += sum(x == y for x, y in zip(a, b))
            o["overlap"] += [len(set(x) & set(y)) / K for x, y in zip(a, b)]
            if label == "item_knn (cosine)":
                w = _lists(make_strategy(name, **params).fit(data), data, peers)
                o["changed_by_user"] += sum(x != y for x, y in zip(w, a))
    for o in out.values():
        o["overlap"] = float(np.mean(o["overlap"]))
    return {"users": int(n_users), "peers_per_user": 50, "strategies": out,
            "erase_and_rebuild_seconds_median": statistics.median(seconds)}


def through_service(n_users: int = 3) -> dict:

    from fastapi.testclient import TestClient

    from service.conftest import API_KEY, PUBLIC_KEY, demo_shop_recent, fast_scenarios  # tests/service
    from service.test_privacy import traces
    from shoprec.privacy import Pseudonymizer
    from shoprec.service.app import create_app
    from shoprec.service.settings import ServiceSettings
    from shoprec.service.store_sqlite import SQLiteStore
    from shoprec.service.training import train

    pz = Pseudonymizer(KEY)
    shop = demo_shop_recent()
    counts = np.bincount(shop.events["user_idx"].to_numpy(), minlength=shop.n_users)
    users = [str(u) for u in shop.users.to_external(np.argsort(-counts, kind="stable")[10:10 + n_users])]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        train(shop, tmp / "models", scenarios=fast_scenarios(), pseudonymizer=pz)
        first_fit = time.perf_counter() - t
        settings = ServiceSettings(model=tmp / "models", store=f"sqlite:///{tmp / 'data' / 'events.db'}",
                                   api_key=API_KEY, public_key=PUBLIC_KEY, watch_seconds=0, id_key=KEY)
        items = [str(x) for x in shop.items.to_external(np.arange(5))]
        latencies, refused = [], 0
        with TestClient(create_app(settings)) as c:
            for u in users:
                c.post("/v1/events", headers={"X-API-Key": PUBLIC_KEY}, json={"events": [
                    {"user_id": u, "item_id": i, "behaviour": "view", "session_id": f"s-{u}"} for i in items]})
                c.post("/v1/recommendations/home", json={"user_id": u})
            before = traces(tmp, [pz.pseudo(u) for u in users])
            for u in users:
                refused += c.delete(f"/v1/users/{u}").status_code in (401, 403)
                t = time.perf_counter()
                r = c.delete(f"/v1/users/{u}", headers={"X-API-Key": API_KEY})
                latencies.append(1000 * (time.perf_counter() - t))
                assert r.status_code == 200, r.text
        store = SQLiteStore(tmp / "data" / "events.db")
        t = time.perf_counter()
        train(shop, tmp / "models", scenarios=fast_scenarios(), store=store, pseudonymizer=pz)
        refit = time.perf_counter() - t
        store.close()
        after = traces(tmp, users + [pz.pseudo(u) for u in users])
        versions = sorted(d.name for d in (tmp / "models").iterdir() if d.is_dir())
    return {"users": len(users), "delete_ms": latencies, "delete_ms_median": statistics.median(latencies),
            "refused_without_key": refused, "first_fit_seconds": first_fit, "refit_seconds": refit,
            "files_with_pseudonym_before": len(before), "traces_after": after, "model_versions_after": versions}


def run(seed: int = 1) -> dict:
    return {"exactness": exactness(seed), "service": through_service()}


def table_lines(res: dict) -> list[str]:
    ex, sv = res["exactness"], res["service"]
    lines = ["| strategy | peers' top-10 identical to a model that never saw the user | mean top-10 overlap |",
             "|---|---|---|"]
    for label, o in ex["strategies"].items():
        lines.append(f"| {label} | {o['identical']} / {o['compared']} | {o['overlap']:.3f} |")
    knn = ex["strategies"]["item_knn (cosine)"]
    lines += ["", f"The erased users mattered: with them, {knn['changed_by_user']} of the {knn['compared']} "
              "peers' item-kNN lists were different. Store erasure + rebuilding the training data: "
              f"{ex['erase_and_rebuild_seconds_median']:.2f} s (median, demo shop).", "",
              f"Through the service ({sv['users']} users, each with live events and an answer logged): "
              f"`DELETE /v1/users/{{id}}` median {sv['delete_ms_median']:.0f} ms; without the key refused "
              f"{sv['refused_without_key']} / {sv['users']}; the scheduled refit {sv['refit_seconds']:.0f} s "
              f"(the first fit {sv['first_fit_seconds']:.0f} s). Files holding a pseudonym before: "
              f"{sv['files_with_pseudonym_before']}; traces of the ids or pseudonyms after (data directory and "
              f"models, bytes and parsed): **{len(sv['traces_after'])}**; model versions left: "
              f"{len(sv['model_versions_after'])}."]
    return lines
