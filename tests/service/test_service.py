"""The live service through its HTTP API (in process): answers with reasons, events that change the
next answer, catalogue changes, impressions, auth and limits, restart and model swap."""

from __future__ import annotations

import threading
import time

import numpy as np
from fastapi.testclient import TestClient

from shoprec.service.app import create_app, publish_model
from shoprec.service.store import EventRecord, open_store

from .conftest import API_KEY, PUBLIC_KEY

WRITE = {"X-API-Key": API_KEY}
PUBLIC = {"X-API-Key": PUBLIC_KEY}


def ids(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [it["item_id"] for it in resp.json()["items"]]


def post_events(client, *events, headers=PUBLIC):
    r = client.post("/v1/events", json={"events": list(events)}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def popular_items(client, n=5) -> list[str]:
    return ids(client.post("/v1/recommendations/first_visit", json={"k": n}))


def test_every_scenario_answers_with_positions_reasons_and_propensities(client):
    top = popular_items(client, 3)
    requests = {
        "home": {"user_id": "17850"}, "first_visit": {"country": "Germany"},
        "item_page": {"current_item": top[0]}, "cart": {"basket": top[:2]}, "checkout": {"basket": top[:2]},
        "post_purchase": {"user_id": "17850"}, "search": {"query": "christmas"},
    }
    for scenario, body in requests.items():
        r = client.post(f"/v1/recommendations/{scenario}", json=body)
        assert r.status_code == 200, (scenario, r.text)
        out = r.json()
        assert out["scenario"] == scenario and out["request_id"] and out["model_version"]
        assert r.headers["X-Request-ID"] == out["request_id"]
        assert out["items"], scenario
        assert [it["position"] for it in out["items"]] == list(range(1, len(out["items"]) + 1))
        for it in out["items"]:
            assert it["reason"] and it["strategies"] and it["propensity"] == 1.0
        assert not set(body.get("basket", [])) & {it["item_id"] for it in out["items"]}


def test_a_cart_event_changes_the_next_cart_answer(client):
    top = popular_items(client, 3)
    before = ids(client.post("/v1/recommendations/cart", json={"session_id": "v1"}))
    res = post_events(client, {"session_id": "v1", "item_id": top[0], "behaviour": "add_to_cart"})
    assert res["accepted"] == 1 and res["duplicates"] == 0
    after = client.post("/v1/recommendations/cart", json={"session_id": "v1"}).json()
    after_ids = [it["item_id"] for it in after["items"]]
    assert after_ids != before and top[0] not in after_ids  # the basket came from the live state
    assert any(it["reasons"][0]["anchor_item_id"] == top[0] for it in after["items"])
    post_events(client, {"session_id": "v1", "item_id": top[0], "behaviour": "remove_from_cart"})
    assert client.app.state.service.engine.state.get("s:v1").basket == {}
    assert ids(client.post("/v1/recommendations/cart", json={"session_id": "v1"}))  # still answers


def test_a_view_changes_the_next_item_page_and_home_for_a_new_visitor(client):
    top = popular_items(client, 20)
    cold = ids(client.post("/v1/recommendations/home", json={"session_id": "v2"}))
    post_events(client, {"session_id": "v2", "item_id": top[-1], "behaviour": "view"},
                {"session_id": "v2", "item_id": top[-2], "behaviour": "view"})
    warm = ids(client.post("/v1/recommendations/home", json={"session_id": "v2"}))
    assert warm != cold


def test_live_co_visitation_and_trending_learn_from_events(client):
    """Many visitors viewing a rarely seen pair together make it co-visited and trending."""
    svc = client.app.state.service
    rec = svc.engine.rec
    knn = next(m for m in rec.models() if m.name == "item_knn" and m.config.similarity == "covisit")
    trending = next(m for m in rec.models() if m.name == "popularity" and m.config.mode == "trending")
    pop = np.asarray(trending.scores_)
    a, b = [str(x) for x in rec.data_.items.to_external(np.argsort(pop, kind="stable")[:2])]  # the least popular
    ia, ib = rec.data_.items.to_index([a, b])
    events = []
    for v in range(30):
        events += [{"session_id": f"crowd{v}", "item_id": a}, {"session_id": f"crowd{v}", "item_id": b}]
    post_events(client, *events)
    row = knn.live_.merged + knn.live_._buffer_csr()
    assert row[ia, ib] > 0 and row[ib, ia] > 0
    assert trending.scores_[ib] > pop[ib]
    # the item page's co-visitation strategy, under the page's rules, now puts b first for a
    from shoprec.scenarios import RequestContext

    q, f, _ = rec.to_queries([RequestContext.parse({"current_item": a})])
    top = rec.pipelines["item_page"].recommend(q, 5, filters=f, method="covisit").item_idx[0]
    assert rec.data_.items.to_external(top)[0] == b


def test_out_of_stock_is_never_recommended_again_and_new_items_are_recommendable(client):
    top = popular_items(client, 10)
    r = client.put("/v1/items", json={"items": [{"item_id": top[0], "in_stock": False}]}, headers=WRITE)
    assert r.status_code == 200 and r.json() == {"added": 0, "updated": 1, "price_flags": []}
    for scenario, body in [("first_visit", {"k": 50}), ("home", {"user_id": "17850", "k": 50}),
                           ("item_page", {"current_item": top[1], "k": 50}), ("cart", {"basket": [top[1]], "k": 50})]:
        assert top[0] not in ids(client.post(f"/v1/recommendations/{scenario}", json=body)), scenario
    assert client.get(f"/v1/items/{top[0]}").json()["in_stock"] is False
    # a new item, never seen in an event: found by its text at once
    title = client.get(f"/v1/items/{top[1]}").json()["title"]
    r = client.put("/v1/items", json={"items": [{"item_id": "NEW-1", "title": title + " DELUXE", "price": 3.5}]},
                   headers=WRITE)
    assert r.json() == {"added": 1, "updated": 0, "price_flags": []}
    found = ids(client.post("/v1/recommendations/search", json={"query": title + " deluxe", "k": 20}))
    assert "NEW-1" in found
    rec = client.app.state.service.engine.rec
    content = rec.pipelines["item_page"]
    labels = [s.display for s in content.specs_]
    assert "content_tfidf" in labels
    # and trending picks it up once it gets events: the first_visit page's trending strategy, under the
    # page's rules, ranks it first
    post_events(client, *[{"session_id": f"n{v}", "item_id": "NEW-1", "behaviour": "purchase"} for v in range(40)])
    pipe = rec.pipelines["first_visit"]
    from shoprec.scenarios import RequestContext

    q, f, _ = rec.to_queries([RequestContext.parse({})])
    top_trending = pipe.recommend(q, 5, filters=f, method="trending").item_idx[0]
    assert rec.data_.items.to_external(top_trending)[0] == "NEW-1"


def test_retries_are_idempotent_and_impressions_are_logged(client, service_settings):
    r = client.post("/v1/recommendations/home", json={"user_id": "17850", "k": 5},
                    headers={"X-Request-ID": "req-123"})
    shown = ids(r)
    ev = {"event_id": "click-1", "user_id": "17850", "item_id": shown[0], "behaviour": "click",
          "request_id": "req-123", "position": 1}
    assert post_events(client, ev)["accepted"] == 1
    again = post_events(client, ev)
    assert again["accepted"] == 0 and again["duplicates"] == 1
    client.app.state.service.impressions.close()  # flush
    store = client.app.state.service.store
    imps = [i for b in store.iter_impressions() for i in b]
    imp = next(i for i in imps if i.request_id == "req-123")
    assert [x["item_id"] for x in imp.items] == shown and imp.scenario == "home"
    assert all(x["propensity"] == 1.0 and x["strategies"] for x in imp.items)
    clicks = [e for b in store.iter_events() for e in b if e.event_id == "click-1"]
    assert len(clicks) == 1 and clicks[0].request_id == "req-123" and clicks[0].position == 1


def test_exploration_logs_exact_propensities(service_settings):
    settings = service_settings.model_copy(update={"exploration": 0.5})
    with TestClient(create_app(settings)) as c:
        props = []
        for _ in range(20):
            items = c.post("/v1/recommendations/first_visit", json={"k": 4}).json()["items"]
            props.append([it["propensity"] for it in items])
    flat = np.array(props)
    # shown as ranked: (1 - ε) + ε/4 = .625 where the ranked item sits, else ε/4 = .125
    assert set(np.round(flat.ravel(), 6)) <= {0.625, 0.125}
    assert (flat == 0.625).all(axis=1).any()


def test_errors_say_what_to_send(client):
    r = client.post("/v1/recommendations/nope", json={})
    assert r.status_code == 404 and "home" in r.json()["error"]["hint"]
    r = client.post("/v1/recommendations/home", json={"user": "x"})
    assert r.status_code == 422 and "user: unknown field" in r.json()["error"]["message"]
    r = client.post("/v1/recommendations/home", json={"k": 0})
    assert r.status_code == 422 and "k:" in r.json()["error"]["message"]
    r = client.post("/v1/events", json={"events": [{"item_id": "a"}]}, headers=PUBLIC)
    assert r.status_code == 422 and "user_id or session_id" in r.json()["error"]["message"]
    r = client.post("/v1/events", json={"events": [{"item_id": "a", "user_id": "u", "behaviour": "clik"}]},
                    headers=PUBLIC)
    assert r.status_code == 422 and "unknown behaviour" in r.json()["error"]["message"]
    r = client.post("/v1/events", json={"events": []}, headers=PUBLIC)
    assert r.status_code == 422
    r = client.post("/v1/recommendations/home", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    r = client.post("/v1/recommendations/home", json={"filters": {"category": ["nope"]}})
    assert r.status_code == 400 and "unknown categories" in r.json()["error"]["message"]


def test_the_fast_path_answers_as_the_route_does(client, monkeypatch):
    """FastRecommend answers the requests that succeed; everything else goes to the FastAPI route."""
    import json

    from shoprec.service.app import FastRecommend

    taken: list[bool] = []
    original = FastRecommend._answer

    async def spy(self, scope, headers, body):
        out = await original(self, scope, headers, body)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(FastRecommend, "_answer", spy)
    eng = client.app.state.service.engine
    body = {"user_id": "17850", "k": 5}
    before = eng.stats.batched_requests
    fast = client.post("/v1/recommendations/home", json=body, headers={"X-Request-ID": "req-1"})
    assert fast.status_code == 200 and fast.headers["X-Request-ID"] == "req-1"
    assert fast.json()["request_id"] == "req-1" and len(fast.json()["items"]) == 5
    # the same request through the route: the fast path leaves other content types to FastAPI
    routed = client.post("/v1/recommendations/home", content=json.dumps(body),
                         headers={"Content-Type": "text/json", "X-Request-ID": "req-2"})
    assert taken == [True, False]
    assert routed.status_code in (200, 422)
    if routed.status_code == 200:
        assert [it["item_id"] for it in routed.json()["items"]] == [it["item_id"] for it in fast.json()["items"]]
    r = client.post("/v1/recommendations/home", json=body, headers={"X-Request-ID": "x" * 129})
    assert r.status_code == 422 and "x-request-id" in r.json()["error"]["message"].lower()
    r = client.post("/v1/recommendations/home", json={"k": 0})
    assert r.status_code == 422 and "k:" in r.json()["error"]["message"]
    assert taken == [True, False, False, False]
    assert eng.stats.batched_requests == before + 1 + (routed.status_code == 200)  # each answered once
    # the body limit holds on the fast path too, declared or not
    limit = client.app.state.service.settings.max_body_bytes
    huge = b'{"k": 5' + b" " * limit + b"}"
    r = client.post("/v1/recommendations/home", content=huge, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def chunks():
        yield b'{"k": 5'
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536
        yield b"}"

    r = client.post("/v1/recommendations/home", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", r.text
    assert taken == [True, False, False, False]


def test_keys_and_limits(client):
    ev = {"events": [{"user_id": "u", "item_id": "a"}]}
    assert client.post("/v1/events", json=ev).status_code == 401
    assert client.post("/v1/events", json=ev, headers={"X-API-Key": "wrong-key-123"}).status_code == 401
    assert client.post("/v1/events", json=ev, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    items = {"items": [{"item_id": "z"}]}
    assert client.put("/v1/items", json=items, headers=PUBLIC).status_code == 401  # public key: events only
    assert client.get("/v1/admin/model", headers=PUBLIC).status_code == 401
    assert client.get("/v1/admin/model", headers=WRITE).json()["scenarios"]
    big = {"events": [{"user_id": "u", "item_id": "a" * 200}] * 6000}
    r = client.post("/v1/events", json=big, headers=WRITE)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    many = {"events": [{"user_id": "u", "item_id": "a"}] * 1001}
    r = client.post("/v1/events", json=many, headers=WRITE)
    assert r.status_code == 413 and "at most 1000" in r.json()["error"]["message"]


def test_read_key_when_configured(service_settings):
    settings = service_settings.model_copy(update={"read_requires_key": True})
    with TestClient(create_app(settings)) as c:
        assert c.post("/v1/recommendations/home", json={}).status_code == 401
        assert c.post("/v1/recommendations/home", json={}, headers=PUBLIC).status_code == 200


def test_health_ready_metrics(client):
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/ready").json()["status"] == "ready"
    client.post("/v1/recommendations/home", json={})
    post_events(client, {"user_id": "u", "item_id": "85123A"})
    text = client.get("/metrics").text
    assert 'shoprec_recommendation_seconds_bucket{le="0.01",scenario="home"}' in text
    assert "shoprec_events_ingested_total 1.0" in text
    assert "shoprec_model_info{version=" in text


def test_restart_rebuilds_the_online_state_from_the_store(service_settings):
    with TestClient(create_app(service_settings)) as c:
        top = popular_items(c, 3)
        c.put("/v1/items", json={"items": [{"item_id": top[0], "in_stock": False}]}, headers=WRITE)
        post_events(c, {"session_id": "r1", "item_id": top[1], "behaviour": "add_to_cart"})
        before = ids(c.post("/v1/recommendations/cart", json={"session_id": "r1"}))
    with TestClient(create_app(service_settings)) as c:  # a fresh process would do the same
        after = ids(c.post("/v1/recommendations/cart", json={"session_id": "r1"}))
        assert after == before
        assert top[0] not in popular_items(c, 50)
        assert c.get("/health").json()["events_applied"] == 1


def test_swap_to_a_new_model_without_dropping_requests(service_settings, demo_models, tmp_path):
    from .conftest import fast_scenarios
    from shoprec.service.training import train

    from .conftest import demo_shop_recent

    with TestClient(create_app(service_settings)) as c:
        old = c.get("/v1/admin/model", headers=WRITE).json()["version"]
        post_events(c, {"session_id": "s-swap", "item_id": popular_items(c, 1)[0], "behaviour": "add_to_cart"})
        basket_answer = ids(c.post("/v1/recommendations/cart", json={"session_id": "s-swap"}))
        # a second model trained on the events stored so far, published in a copy of the models folder
        models = tmp_path / "models"
        import shutil

        shutil.copytree(demo_models, models)
        store = open_store(service_settings.store)
        try:
            new_path = train(demo_shop_recent(35), models, scenarios=fast_scenarios(), store=store,
                             publish=False)
        finally:
            store.close()
        svc = c.app.state.service
        errors, done = [], threading.Event()

        def hammer():
            while not done.is_set():
                r = c.post("/v1/recommendations/home", json={"user_id": "17850"})
                if r.status_code != 200:
                    errors.append(r.status_code)

        t = threading.Thread(target=hammer)
        t.start()
        try:
            version = svc.reload(new_path)
        finally:
            done.set()
            t.join()
        assert errors == [] and version != old
        assert c.get("/v1/admin/model", headers=WRITE).json()["version"] == version
        # the live state carried over: the visitor's basket still drives the cart page
        assert ids(c.post("/v1/recommendations/cart", json={"session_id": "s-swap"})) != []
        assert len(basket_answer) > 0
        # and CURRENT in the watched folder is what /v1/admin/reload follows
        publish_model(models, new_path)


def test_training_includes_the_stores_events_and_items(service_settings, tmp_path):
    from .conftest import fast_scenarios
    from shoprec.scenarios import Recommender
    from shoprec.service.training import train

    from .conftest import demo_shop_recent

    store = open_store(service_settings.store)
    try:
        now = time.time()
        store.append_events([EventRecord(f"t{i}", "85123A", "purchase", now, now, user_id="brand-new-user")
                             for i in range(3)])
        from shoprec.service.store import ItemRecord

        store.upsert_items([ItemRecord("FRESH-1", {"title": "GLASS STAR FROSTED T-LIGHT HOLDER", "price": 1.0})])
        path = train(demo_shop_recent(10), tmp_path / "m", scenarios=fast_scenarios()[:1], store=store)
    finally:
        store.close()
    rec = Recommender.load(path)
    assert "brand-new-user" in rec.data_.users and "FRESH-1" in rec.data_.items
    assert rec.manifest_["meta"]["trained_through_seq"] == 3
    assert rec.manifest_["meta"]["trained_through_item_seq"] == 1
