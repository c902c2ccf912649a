"""Price flags through the service: GET /v1/health/prices, and a PUT /v1/items with an abnormal price
flagged on that request."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from shoprec.service.app import create_app

from .conftest import API_KEY, PUBLIC_KEY


@pytest.fixture(scope="module")
def price_models(tmp_path_factory):
    from shoprec.scenarios.config import scenario_from_dict
    from shoprec.service.training import train

    from shoprec.testing import priced_shop

    cfg = scenario_from_dict({"scenario": {"name": "home", "k": 5}, "strategies": [{"name": "popularity"}],
                              "rules": {"exclude_history": "none"},
                              "rerankers": [{"name": "price_flags", "params": {"action": "demote"}}]}, "t")
    root = tmp_path_factory.mktemp("price-models")
    train(priced_shop(), root, scenarios=[cfg])
    return root


def test_price_flags_over_the_api(price_models, tmp_path):
    from shoprec.service.settings import ServiceSettings

    s = ServiceSettings(model=price_models, store=f"sqlite:///{tmp_path / 'events.db'}", api_key=API_KEY,
                        public_key=PUBLIC_KEY, watch_seconds=0)
    admin = {"X-API-Key": API_KEY}
    with TestClient(create_app(s)) as c:
        assert c.get("/v1/health/prices", headers={"X-API-Key": PUBLIC_KEY}).status_code in (401, 403)
        got = c.get("/v1/health/prices", headers=admin).json()
        assert got["scenario"] == "home" and [f["item_id"] for f in got["flags"]] == ["i0"]
        assert got["flags"][0]["kind"] == "spike" and "3.0× its usual 1.00" in got["flags"][0]["reason"]
        r = c.put("/v1/items", headers=admin, json={"items": [{"item_id": "i3", "price": 40.0},
                                                              {"item_id": "i4", "price": 5.0}]})
        assert r.status_code == 200, r.text
        flags = r.json()["price_flags"]
        assert [f["item_id"] for f in flags] == ["i3"] and flags[0]["kind"] == "spike"
        assert flags[0]["usual"] == pytest.approx(4.0)
        items = [it["item_id"] for it in c.post("/v1/recommendations/home", json={"k": 5}).json()["items"]]
        assert items[:3] == ["i1", "i2", "i4"]                 # i0 and i3 after every unflagged item
        assert {f["item_id"] for f in c.get("/v1/health/prices", headers=admin).json()["flags"]} == {"i0", "i3"}


def test_a_price_named_by_a_live_event_is_checked_at_once(price_models, tmp_path):
    from shoprec.service.settings import ServiceSettings

    s = ServiceSettings(model=price_models, store=f"sqlite:///{tmp_path / 'events.db'}", api_key=API_KEY,
                        public_key=PUBLIC_KEY, watch_seconds=0)
    admin, pub = {"X-API-Key": API_KEY}, {"X-API-Key": PUBLIC_KEY}
    with TestClient(create_app(s)) as c:
        r = c.post("/v1/events", headers=pub, json={"events": [
            {"item_id": "i4", "behaviour": "purchase", "user_id": "u1", "price": 50.0},     # usual 5.00: ×10
            {"item_id": "i2", "behaviour": "purchase", "user_id": "u1", "price": 3.0}]})    # its usual price
        assert r.status_code == 200, r.text
        flags = c.get("/v1/health/prices", headers=admin).json()["flags"]
        assert {f["item_id"]: f["kind"] for f in flags} == {"i0": "spike", "i4": "spike"}
        r = c.post("/v1/events", headers=pub, json={"events": [{"item_id": "i4", "behaviour": "purchase", "user_id": "u2",
                                                                  "price": 5.0}]})
        assert r.status_code == 200, r.text
        assert [f["item_id"] for f in c.get("/v1/health/prices", headers=admin).json()["flags"]] == ["i0"]


def test_a_crawler_posting_events_moves_no_counter_after_it_is_recognised(client):
    service = client.app.state.service
    rec = service.engine.rec
    items = [str(x) for x in rec.data_.items.to_external(range(200))]
    counters = [m for p in rec.pipelines.values() for m in p.models_ if hasattr(m, "scores_")]
    assert counters
    t0 = 1_800_000_000
    first = [{"item_id": items[k], "behaviour": "view", "session_id": "crawl-1", "timestamp": t0 + k}
             for k in range(20)]
    later = [{"item_id": items[100 + k], "behaviour": "view", "session_id": "crawl-1", "timestamp": t0 + 20 + k}
             for k in range(60)]
    pub = {"X-API-Key": PUBLIC_KEY}
    assert client.post("/v1/events", json={"events": first}, headers=pub).status_code == 200
    idx = rec.data_.items.to_index(items[100:160])
    before = [m.scores_[idx].copy() for m in counters]
    assert client.post("/v1/events", json={"events": later}, headers=pub).status_code == 200
    got = client.get("/v1/health/bots", headers={"X-API-Key": API_KEY}).json()
    assert got["counts"]["events_held"] == 60 and got["flagged"][0]["visit"] == "crawl-1"
    assert got["flagged"][0]["kind"] == "crawler"
    for m, b in zip(counters, before):
        np.testing.assert_array_equal(m.scores_[idx], b)     # trending and popularity did not move
    # the events are stored all the same (for audit, and for the bots training filter)
    stored = [e for batch in service.store.iter_events() for e in batch if e.session_id == "crawl-1"]
    assert len(stored) == 80
    # its answers are logged as answers to a bot (no policy learns from them)
    import time

    body = client.post("/v1/recommendations/home", json={"session_id": "crawl-1", "k": 3}).json()
    deadline = time.monotonic() + 10      # the impression log writes in the background (within 0.25 s)
    imp = None
    while imp is None and time.monotonic() < deadline:
        imp = next((i for b in service.store.iter_impressions() for i in b if i.request_id == body["request_id"]), None)
        time.sleep(0.05)
    assert imp is not None and imp.context["bot"] == "crawler"


def test_answers_to_a_recognised_bot_are_logged_but_not_learned_from(tmp_path):
    from shoprec.online.learner import PolicyLearner
    from shoprec.online.policies import ThompsonPolicy
    from shoprec.online.rewards import join_rewards

    imps = [{"request_id": f"r{i}", "created_at": 1000.0 + i, "scenario": "home", "model_version": "v",
             "session_id": "s", "items": [{"item_id": "a", "position": 1}],
             "context": {"policy": {"name": "thompson", "arm": "x", "propensity": 0.5},
                         **({"bot": "crawler"} if i % 2 else {})}} for i in range(4)]
    learner = PolicyLearner("home", ThompsonPolicy(arms={"x": {"ease": 1.0}, "y": {"ease": 0.5}}))
    assert learner.answers(imps) == 2 and learner.counts["answers_to_bots"] == 2
    frame = join_rewards(imps, []).feedback_frame(final_only=False)
    assert frame["request_id"].tolist() == ["r0", "r2"]


def test_consumer_protection_flags_over_the_api(tmp_path):
    from shoprec.scenarios.config import scenario_from_dict
    from shoprec.service.settings import ServiceSettings
    from shoprec.service.training import train

    import pandas as pd

    from shoprec.data import ShopData

    def _shop():
        """Five items (i0 bought by the most users); i2 gets half its units back."""
        rows = [(f"u{u}", f"i{i}", 4, 1_600_000_000 + u, f"s{u}", 1.0) for i in range(5) for u in range(30 - i)]
        rows += [(f"u{u}", "i2", 3, 1_600_000_100 + u, f"r{u}", 1.0) for u in range(15)]
        return ShopData.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp",
                                                               "session_id", "quantity"]))

    cfg = scenario_from_dict({"scenario": {"name": "home", "k": 5}, "strategies": [{"name": "popularity"}],
                              "rules": {"exclude_history": "none", "consumer_protection": "demote"}}, "t")
    root = train(_shop(), tmp_path / "models", scenarios=[cfg]).parent
    s = ServiceSettings(model=root, store=f"sqlite:///{tmp_path / 'events.db'}", api_key=API_KEY,
                        public_key=PUBLIC_KEY, watch_seconds=0)
    with TestClient(create_app(s)) as c:
        assert c.get("/v1/health/protection", headers={"X-API-Key": PUBLIC_KEY}).status_code in (401, 403)
        got = c.get("/v1/health/protection", headers={"X-API-Key": API_KEY}).json()
        assert got["scenario"] == "home" and [f["item_id"] for f in got["flags"]] == ["i2"]
        assert got["flags"][0]["kinds"] == ["often_returned"] and got["flags"][0]["reason"].startswith("often returned")
        items = [it["item_id"] for it in c.post("/v1/recommendations/home", json={"k": 5}).json()["items"]]
        assert items[-1] == "i2"                   # the [rules] word demotes it


def test_no_consumer_protection_is_a_clear_404(price_models, tmp_path):
    from shoprec.service.settings import ServiceSettings

    s = ServiceSettings(model=price_models, store=f"sqlite:///{tmp_path / 'events.db'}", api_key=API_KEY,
                        public_key=PUBLIC_KEY, watch_seconds=0)
    with TestClient(create_app(s)) as c:
        r = c.get("/v1/health/protection", headers={"X-API-Key": API_KEY})
        assert r.status_code == 404 and "consumer_protection" in r.text


def test_live_exposure_audit_from_the_impression_log(client):
    from .conftest import API_KEY

    for _ in range(5):
        assert client.post("/v1/recommendations/home", json={}).status_code == 200
    client.app.state.service.impressions.flush()
    rep = client.get("/v1/health/exposure", headers={"X-API-Key": API_KEY}).json()
    assert client.get("/v1/health/exposure").status_code in (401, 403)
    if rep["group_by"] is None:        # the demo shop has no sellers or categories: nothing to group
        assert rep["scenarios"] == {}
        return
    home = rep["scenarios"]["home"]
    assert home["answers"] == 5 and 0 <= home["gini"] <= 1 and home["top"]
    text = client.get("/metrics").text
    assert 'shoprec_exposure_gini{group_by=' in text


def test_live_exposure_known_answer():
    from types import SimpleNamespace

    from shoprec.service.exposure import LiveExposure
    from shoprec.service.store import ImpressionRecord
    from shoprec.testing import tiny_shop

    data = tiny_shop()                       # 24 items, category c{i % 4}
    live = LiveExposure(SimpleNamespace(data_=data), half_life=1e12)
    live_codes = LiveExposure(SimpleNamespace(data_=data)).codes
    a = np.flatnonzero(live_codes == live_codes[0])
    b = np.flatnonzero(live_codes != live_codes[0])
    ids = [str(x) for x in data.items.to_external([a[0], a[1], b[0]])]     # two of one category, one of another
    row = ImpressionRecord("r1", 0.0, "home", "v", [{"item_id": i, "position": p} for p, i in enumerate(ids, 1)])
    bot = ImpressionRecord("r2", 0.0, "home", "v", [{"item_id": ids[2], "position": 1}], context={"bot": "crawler"})
    live.add([row, row, bot])
    rep = live.report()["scenarios"]["home"]
    w = 1 / np.log2([2, 3, 4])
    c0, c1 = w[0] + w[1], w[2]
    assert rep["answers"] == 2 and rep["groups_shown"] == 2
    assert rep["top"][0] == {"group": live.names[live_codes[0]], "share": round(c0 / (c0 + c1), 4)}
    from shoprec.evaluation.exposure import gini

    expected = gini(np.array([c0, c1, 0.0, 0.0]))
    assert rep["gini"] == pytest.approx(expected, abs=1e-4)
