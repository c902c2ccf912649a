"""Consumer protection: an item often returned ranks lower when the rule is on, with its note; and the
price flags' "note" action shows the flag's reason."""

import pandas as pd
import pytest

from shoprec.data import Behaviour, ShopData
from shoprec.health.protection import return_rates
from shoprec.scenarios.config import scenario_from_dict
from shoprec.scenarios.engine import Recommender
from shoprec.testing import priced_shop

P, R = int(Behaviour.PURCHASE), int(Behaviour.REMOVE_FROM_CART)


def _shop():
    """Five items, 30 units each (i0 bought by the most users); i2 gets 15 units back, i3 one."""
    rows = []
    t = 1_600_000_000
    for i in range(5):
        for u in range(30 - i):                   # one unit per user: i0 the most popular
            rows.append((f"u{u}", f"i{i}", P, t + u, f"s{u}", 1.0))
    rows += [(f"u{u}", "i2", R, t + 100 + u, f"r{u}", 1.0) for u in range(15)]
    rows.append(("u0", "i3", R, t + 200, "r-x", 1.0))
    return ShopData.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp",
                                                           "session_id", "quantity"]))


def _home(rerankers, data=None):
    cfg = scenario_from_dict({"scenario": {"name": "home", "k": 5}, "strategies": [{"name": "popularity"}],
                              "rules": {"exclude_history": "none"}, "rerankers": rerankers}, "t")
    rec = Recommender([cfg]).fit(data or _shop())
    return rec.recommend_raw("home", [{}])[0]["items"]


def test_return_rates_are_shrunk_toward_the_shop_rate():
    d = _shop()
    rate, bought, overall = return_rates(d.events, d.n_items, prior_units=20)
    i2, i3 = d.items.to_index(["i2", "i3"])
    assert overall == pytest.approx(16 / sum(30 - i for i in range(5)))
    assert rate[i2] == pytest.approx((15 + 20 * overall) / (28 + 20))
    assert rate[i3] == pytest.approx((1 + 20 * overall) / (27 + 20))


def test_an_often_returned_item_ranks_lower_with_its_note():
    plain = [it["item_id"] for it in _home([])]
    assert plain == ["i0", "i1", "i2", "i3", "i4"]
    got = _home([{"name": "consumer_protection", "params": {"max_return_rate": 0.2}}])
    assert [it["item_id"] for it in got] == ["i0", "i1", "i3", "i4", "i2"]
    note = got[-1]["reasons"][-1]
    assert note["strategy"] == "consumer_protection" and note["text"].startswith("often returned (")
    assert all(r["strategy"] != "consumer_protection" for it in got[:-1] for r in it["reasons"])
    held = _home([{"name": "consumer_protection", "params": {"action": "hold"}}])
    assert "i2" not in [it["item_id"] for it in held]


def test_price_flags_can_show_the_flag_as_a_note():
    got = _home([{"name": "price_flags", "params": {"action": "note"}}], priced_shop())
    top = got[0]
    assert top["item_id"] == "i0"                       # shown as ranked …
    assert any(r["strategy"] == "price_flags" and "3.0× its usual" in r["text"] for r in top["reasons"])
