"""Price flags through the service: GET /v1/health/prices, and a PUT /v1/items with an abnormal price
flagged on that request."""

from __future__ import annotations

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
