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


def _market():
    """A marketplace of 14 items in one category, all priced about 10, sold by four sellers:
    A (m0–m4) delivers on time and is rated 5, B (m5–m8) delivers every order 5 days late,
    C (m9–m12) is rated 1 on most orders, and D, new (its first sale in the last week), sells m13 at
    1.00 — far below the category. Each order is a session; ``meta["orders"]`` holds the outcomes."""
    day = 86_400
    t0 = 1_600_000_000
    sellers = {**{f"m{i}": "A" for i in range(5)}, **{f"m{i}": "B" for i in range(5, 9)},
               **{f"m{i}": "C" for i in range(9, 13)}, "m13": "D"}
    rows, orders = [], []
    for i in range(14):
        item = f"m{i}"
        for u in range(20 - i // 2):
            order = f"o{i}-{u}"
            t = t0 + (100 - (5 if item == "m13" else 60)) * day + u * 3600
            rating = 1.0 if sellers[item] == "C" and u % 5 else 5.0
            rows.append((f"u{u}", item, P, t, order, 1.0, 1.0 if item == "m13" else 10.0 + (i % 3), rating))
            late = 5.0 if sellers[item] == "B" else -3.0
            orders.append((order, "delivered", t + 7 * day, t + 7 * day - late * day, late))
    rows.append(("u0", "m0", P, t0 + 100 * day, "o-last", 1.0, 10.0, float("nan")))   # the data's end
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp", "session_id", "quantity",
                                        "price", "rating"])
    table = pd.DataFrame({"seller": list(sellers.values()), "category": "x"}, index=pd.Index(list(sellers), name="item_id"))
    data = ShopData.from_frame(frame, item_table=table)
    meta = pd.DataFrame(orders, columns=["session_id", "status", "delivered", "estimated", "days_late"])
    from dataclasses import replace

    return replace(data, meta={"orders": meta})


def test_late_sellers_poor_reviews_and_counterfeit_risk_are_flagged_with_their_notes():
    from shoprec.health.protection import ProtectionReRanker

    rec = Recommender([scenario_from_dict({"scenario": {"name": "home", "k": 14}, "strategies": [{"name": "popularity"}],
                                           "rules": {"exclude_history": "none"},
                                           "rerankers": [{"name": "consumer_protection"}]}, "t")]).fit(_market())
    st = next(s for s in rec.pipelines["home"].rerankers_ if isinstance(s, ProtectionReRanker))
    cur = st.current()
    ids = [str(x) for x in rec.data_.items.to_external(cur["item_idx"].to_numpy())]
    kinds = dict(zip(ids, cur["kinds"]))
    assert kinds == {**{f"m{i}": "often_late" for i in range(5, 9)}, **{f"m{i}": "poorly_reviewed" for i in range(9, 13)},
                     "m13": "counterfeit_risk"}
    notes = dict(zip(ids, cur["reason"]))
    assert notes["m5"].startswith("often arrives late (") and "rated 1–2 stars" in notes["m9"]
    assert notes["m13"].startswith("counterfeit risk: priced 91% below its category, from a new seller")
    got = [it["item_id"] for it in rec.recommend_raw("home", [{}])[0]["items"]]
    assert got[:5] == [f"m{i}" for i in range(5)]           # seller A's items first, the flagged after
    # the rates are the ranker's features too
    facts = rec.pipelines["home"].facts_
    m5, m0 = rec.data_.items.to_index(["m5", "m0"])
    assert facts.late_rate[m5] > 0.5 > facts.late_rate[m0]


def test_deliveries_after_the_data_end_are_not_seen():
    from shoprec.scenarios.complaints import consumer_signals

    d = _market()
    s = consumer_signals(d)
    cut = d.filter_events(d.events["timestamp"].to_numpy() < d.events["timestamp"].min() + 3600)   # the first hour
    s_cut = consumer_signals(cut)
    assert s.evidence["late_rate"].sum() > 0 and s_cut.evidence["late_rate"].sum() == 0
