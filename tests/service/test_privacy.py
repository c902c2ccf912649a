"""Pseudonymised ids and erasure end to end: through the API with the key (a request without it is
refused), then the scheduled refit; afterwards no trace of the id or its pseudonym in the data
directory or the model artifacts (raw bytes, and every Parquet / npz / JSON file parsed), and the
refitted model's count-based answers are exactly those of a model fitted without the user."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprec.privacy import Pseudonymizer, pseudonymize_data
from shoprec.service.erasure import erase_from_store, suppressed_mask, suppression_tokens
from shoprec.service.store_sqlite import SQLiteStore

from .conftest import API_KEY, PUBLIC_KEY, demo_shop_recent, fast_scenarios

ID_KEY = "test-id-key-0123456789abcdef"


def traces(root: Path, needles: list[str]) -> list[str]:
    """Where any of ``needles`` occurs under ``root``: in a file's raw bytes, or inside a Parquet
    table, an npz array or a JSON document (which may compress it)."""
    found = []
    raw = [n.encode() for n in needles]
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        data = f.read_bytes()
        if any(n in data for n in raw):
            found.append(f"{f} (bytes)")
            continue
        texts: list[str] = []
        if f.suffix == ".parquet":
            frame = pd.read_parquet(f)
            texts = [str(v) for c in frame.columns for v in frame[c].astype(str).tolist()]
        elif f.suffix == ".npz":
            with zipfile.ZipFile(f) as z:
                for name in z.namelist():
                    texts.append(z.read(name).decode("latin-1"))
            with np.load(f, allow_pickle=False) as arrays:
                for k in arrays.files:
                    a = arrays[k]
                    if a.dtype.kind in "US":
                        texts.extend(map(str, a.ravel().tolist()))
        elif f.suffix in (".json", ".txt", ".toml"):
            texts = [data.decode("utf-8", "replace")]
        if any(n in t for t in texts for n in needles):
            found.append(f"{f} (parsed)")
    return found


@pytest.fixture(scope="module")
def shop():
    return demo_shop_recent()


@pytest.fixture(scope="module")
def pz():
    return Pseudonymizer(ID_KEY)


def _user_with_history(data) -> str:
    counts = np.bincount(data.events["user_idx"].to_numpy(), minlength=data.n_users)
    return str(data.users.to_external(np.array([int(np.argsort(-counts, kind="stable")[20])]))[0])


@pytest.fixture(scope="module")
def keyed_models(shop, pz, tmp_path_factory):
    from shoprec.service.training import train

    root = tmp_path_factory.mktemp("keyed-models")
    train(shop, root, scenarios=fast_scenarios(), pseudonymizer=pz)
    return root


def test_pseudonyms_are_keyed_stable_and_never_the_id(pz):
    a, b = pz.pseudo("17850"), Pseudonymizer("another-key-0123456789").pseudo("17850")
    assert a == pz.pseudo("17850") and a.startswith("p:") and len(a) == 34
    assert a != b and "17850" not in a
    assert pz.token(a) != a and pz.token(a).startswith("e:")
    assert "test-id-key" not in repr(pz)
    with pytest.raises(Exception, match="at least 16"):
        Pseudonymizer("short")


def test_erasure_over_http_leaves_no_trace_after_the_refit(shop, pz, keyed_models, tmp_path):
    import shutil

    from fastapi.testclient import TestClient

    from shoprec.service.app import create_app
    from shoprec.service.settings import ServiceSettings
    from shoprec.service.training import train

    models = tmp_path / "models"
    shutil.copytree(keyed_models, models)
    data_dir = tmp_path / "data"
    settings = ServiceSettings(model=models, store=f"sqlite:///{data_dir / 'events.db'}", api_key=API_KEY,
                               public_key=PUBLIC_KEY, watch_seconds=0, id_key=ID_KEY)
    user = _user_with_history(shop)
    pseudo = pz.pseudo(user)
    items = [str(x) for x in shop.items.to_external(np.arange(3))]
    with TestClient(create_app(settings)) as c:
        r = c.post("/v1/events", headers={"X-API-Key": PUBLIC_KEY}, json={"events": [
            {"user_id": user, "item_id": items[0], "behaviour": "view", "session_id": "sess-erase-1"},
            {"user_id": user, "item_id": items[1], "behaviour": "add_to_cart", "session_id": "sess-erase-1"},
            {"user_id": "someone-else-42", "item_id": items[2], "behaviour": "view"}]})
        assert r.status_code == 200, r.text
        before = c.post("/v1/recommendations/home", json={"user_id": user})
        assert before.status_code == 200
        c.post("/v1/recommendations/cart", json={"session_id": "sess-erase-1"})
        c.app.state.service.impressions.flush()
        # pseudonymised at rest: the raw id is nowhere, the pseudonym in the store and the model
        assert traces(tmp_path, [user]) == []
        assert traces(data_dir, [pseudo]) and traces(models, [pseudo])

        assert c.delete(f"/v1/users/{user}").status_code in (401, 403)
        assert c.delete(f"/v1/users/{user}", headers={"X-API-Key": PUBLIC_KEY}).status_code in (401, 403)
        r = c.delete(f"/v1/users/{user}", headers={"X-API-Key": API_KEY})
        assert r.status_code == 200, r.text
        record = r.json()
        assert record["events"] == 2 and record["impressions"] == 2 and record["known_to_model"]
        assert user not in r.text and pseudo not in r.text
        assert "stale" in record["models"]
        # at once: live state gone, nothing of the user in the store's files, served without history
        svc = c.app.state.service
        assert svc.engine.state.get(f"u:{pseudo}") is None and svc.engine.state.get("s:sess-erase-1") is None
        assert traces(data_dir, [user, pseudo]) == []
        after = c.post("/v1/recommendations/home", json={"user_id": user}).json()
        assert any("no history" in n for n in after["notes"])
        # that visit is new data (its impression); erasing again removes it
        svc.impressions.flush()
        again = c.delete(f"/v1/users/{user}", headers={"X-API-Key": API_KEY}).json()
        assert again["impressions"] == 1 and again["events"] == 0 and not again["known_to_model"]
        missing = c.delete("/v1/users/never-seen-9", headers={"X-API-Key": API_KEY})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_user"
        audit = c.get("/v1/admin/erasures", headers={"X-API-Key": API_KEY}).json()["erasures"]
        assert len(audit) == 2 and pseudo not in json.dumps(audit) and user not in json.dumps(audit)
    # the scheduled refit (shoprec train --store): leaves the user out, deletes the older versions
    store = SQLiteStore(data_dir / "events.db")
    try:
        target = train(shop, models, scenarios=fast_scenarios(), store=store, pseudonymizer=pz)
    finally:
        store.close()
    assert [d.name for d in models.iterdir() if d.is_dir()] == [target.name]
    assert traces(tmp_path, [user, pseudo]) == []


def test_refit_after_erasure_equals_a_model_that_never_saw_the_user(shop, pz, tmp_path):
    """Count-based strategies: identical answers; ALS: within tolerance (its random start differs)."""
    from shoprec.service.training import events_frame, external_item_table, without_users
    from shoprec.strategies.base import Queries, make_strategy
    from shoprec.data.readers import frame_to_shopdata

    data = pseudonymize_data(shop, pz)
    gone = pz.pseudo(_user_with_history(shop))
    store = SQLiteStore(tmp_path / "events.db")
    try:
        erase_from_store(_user_with_history(shop), store, pz, known_to_model=True)
        drop = suppressed_mask(data.users.external_ids, suppression_tokens(store), pz)
    finally:
        store.close()
    assert drop.sum() == 1 and data.users.external_ids[drop][0] == gone
    refit = without_users(data, drop)
    frame = events_frame(data)
    never = frame_to_shopdata(frame[frame["user_id"] != gone].reset_index(drop=True), name="never",
                              item_table=external_item_table(data))
    assert gone not in set(refit.users.external_ids)
    # the users who shared the erased user's items
    g = data.users.to_index([gone])[0]
    his = set(data.events.loc[data.events["user_idx"] == g, "item_idx"].tolist())
    ev = data.events
    shared = ev.loc[ev["item_idx"].isin(his) & (ev["user_idx"] != g), "user_idx"].unique()[:30]
    peers = data.users.to_external(shared)
    for name, params, exact in [("popularity", {}, True), ("popularity", {"mode": "trending"}, True),
                                ("item_knn", {}, True), ("item_knn", {"similarity": "covisit"}, True),
                                ("als", {"factors": 32, "iterations": 10}, False)]:
        lists = []
        for d in (refit, never):
            m = make_strategy(name, **params).fit(d)
            q = Queries.for_users(d.users.to_index(list(peers)))
            rec = m.recommend(q, 10)
            lists.append([list(d.items.to_external(r[r >= 0])) for r in rec.item_idx])
        if name == "item_knn" and not params:   # the user did count: a model with them answers otherwise
            m = make_strategy(name, **params).fit(data)
            rec = m.recommend(Queries.for_users(data.users.to_index(list(peers))), 10)
            with_user = [list(data.items.to_external(r[r >= 0])) for r in rec.item_idx]
            assert with_user != lists[0]
        if exact:
            assert lists[0] == lists[1], name
        else:
            overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(*lists)])
            assert overlap >= 0.7, (name, overlap)

