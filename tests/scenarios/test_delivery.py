"""Delivery estimates per seller × customer region (known answers, shrinkage toward the seller's record
on its routes), the ``delivery`` re-ranker (hold by expected days per region, demote by late risk, the
"arrives in about N days" note through the API, state through the artifact, new items of a known
seller), the ranker's facts, the Olist adapter's new fields, and the real Olist sample (realdata)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprec.data import Behaviour, ShopData
from shoprec.scenarios.config import scenario_from_dict
from shoprec.scenarios.delivery import SHOP_SELLER, delivery_estimates
from shoprec.scenarios.engine import Recommender
from shoprec.scenarios.facts import ItemFacts
from shoprec.scenarios.rerank.delivery import DeliveryReRanker, days_text
from shoprec.scenarios.stages import Ranked, make_stage
from shoprec.strategies.base import Queries
from shoprec.testing import check_reranker, tiny_pipeline

DAY = 86_400
T0 = 1_600_000_000

#: (item, seller, customer region, days to deliver, late, orders): the known answers
CELLS = [("i0", "fast", "SP", 3, False, 20), ("i1", "fast", "RJ", 6, False, 20),
         ("i2", "slow", "SP", 9, True, 10), ("i2", "slow", "SP", 9, False, 10), ("i3", "slow", "RJ", 18, True, 1),
         ("i4", "slow2", "SP", 9, False, 20)]
SELLERS = {"i0": "fast", "i1": "fast", "i2": "slow", "i3": "slow", "i4": "slow2", "i5": "new"}


def delivery_shop(cells=CELLS, unsold: int = 0) -> ShopData:
    """One purchase per order; each order delivered ``days`` after it, promised in 10 days (the late
    ones in ``days − 1``); every seller ships from SP; ``i5`` (seller ``new``) never sold, nor do the
    ``unsold`` items ``x0``, … of no seller; a last view long after, so that every delivery is in the past."""
    rows, orders = [], []
    n = 0
    for item, _seller, region, days, late, count in cells:
        for _ in range(count):
            t = T0 + n * 3600
            rows.append((f"u{n}", item, int(Behaviour.PURCHASE), t, f"o{n}"))
            orders.append((f"o{n}", "delivered", t, t + days * DAY, t + (days - 1 if late else 10) * DAY, region))
            n += 1
    rows.append(("u-late", "i5", int(Behaviour.VIEW), T0 + 400 * DAY, "s-late"))
    rows += [("u-late", f"x{j}", int(Behaviour.VIEW), T0 + 400 * DAY - j, "s-late") for j in range(unsold)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp", "session_id"])
    table = pd.DataFrame({"seller": SELLERS, "seller_state": {i: "SP" for i in SELLERS},
                          "category": {i: f"c{k % 2}" for k, i in enumerate(SELLERS)}})
    data = ShopData.from_frame(frame, name="delivery", item_table=table)
    o = pd.DataFrame(orders, columns=["session_id", "status", "purchased", "delivered", "estimated", "customer_state"])
    o["days_late"] = (o["delivered"] - o["estimated"]) / DAY
    return replace(data, meta={"orders": o})


def _at(est, data, item, region=None):
    i = int(data.items.to_index([item])[0])
    if region is None:
        return float(est.days_unknown[i]), float(est.risk_unknown[i])
    r = est.regions.index(region)
    return float(est.days[i, r]), float(est.risk[i, r])


# ----------------------------------------------------------------------------- the estimates
def test_each_cell_is_its_own_geometric_mean_and_late_share_without_shrinkage():
    data = delivery_shop()
    est = delivery_estimates(data, prior_days=0, prior_risk=0)
    assert est.regions == ["RJ", "SP"] and est.n_deliveries == 81 and est.n_with_region == 81
    assert _at(est, data, "i0", "SP") == pytest.approx((3.0, 0.0), abs=1e-5)
    assert _at(est, data, "i1", "RJ") == pytest.approx((6.0, 0.0), abs=1e-5)
    assert _at(est, data, "i2", "SP") == pytest.approx((9.0, 0.5), abs=1e-5)
    assert _at(est, data, "i3", "RJ") == pytest.approx((18.0, 1.0), abs=1e-4)
    # an item takes its seller's figures, whatever it sold itself; the unknown region is the seller overall
    assert _at(est, data, "i0", "RJ") == pytest.approx(_at(est, data, "i1", "RJ"))
    assert _at(est, data, "i0") == pytest.approx((np.sqrt(3 * 6), 0.0), abs=1e-4)
    assert est.days.shape == est.risk.shape == (data.n_items, 2) and est.days.dtype == np.float32
    # a seller without deliveries has no estimate
    assert np.isnan(_at(est, data, "i5", "SP")).all() and np.isnan(_at(est, data, "i5")).all()


def test_a_cell_with_few_orders_is_judged_by_its_seller_on_that_route():
    data = delivery_shop()
    est = delivery_estimates(data)                       # 5 pseudo-deliveries of log-days, 20 of late share
    fast_rj, _ = _at(est, data, "i1", "RJ")
    slow_sp, slow_sp_risk = _at(est, data, "i2", "SP")
    slow_rj, slow_rj_risk = _at(est, data, "i3", "RJ")
    # 20 orders: close to the cell's own 6 and 9 days
    assert fast_rj == pytest.approx(6.0, rel=0.05) and slow_sp == pytest.approx(9.0, rel=0.08)
    # one 18-day order to RJ: pulled toward what slow does on the SP→RJ route (RJ takes twice as long as SP
    # for fast: about 2 × 9 days), not toward the shop's ~5 days, and still slower than fast to RJ
    assert 2 * fast_rj < slow_rj < 16.5
    # never shipped to RJ: slow2 (9 days to SP, like slow) is expected to take longer to RJ than to SP
    s2_sp, s2_risk = _at(est, data, "i4", "SP")
    s2_rj, _ = _at(est, data, "i4", "RJ")
    assert s2_rj > 1.4 * s2_sp
    # late shares shrink toward the seller's record on the route, not to the shop's (13.6 %)
    assert 0.3 < slow_sp_risk < 0.5 and 0.25 < slow_rj_risk < 1.0
    assert _at(est, data, "i0", "SP")[1] < 0.05 and s2_risk < 0.05


def test_regions_match_any_case_and_unknown_ones_take_the_last_column():
    est = delivery_estimates(delivery_shop())
    assert est.region_index(["sp", " RJ", "", None, "AM"]).tolist() == [1, 0, 2, 2, 2]


def test_a_shop_without_sellers_or_orders():
    data = delivery_shop()
    plain = replace(data, item_table=data.item_table.drop(columns=["seller", "seller_state"]))
    est = delivery_estimates(plain, prior_days=0)
    assert est.seller_names == [SHOP_SELLER]                 # the shop ships everything: per-region figures
    assert np.isfinite(est.days).all()
    none = delivery_estimates(replace(data, meta={}))
    assert none.regions == [] and np.isnan(none.days_unknown).all()


# ----------------------------------------------------------------------------- the re-ranker
def _stage(data, **params):
    pipe = tiny_pipeline(data)
    stage = make_stage("reranker", {"name": "delivery", "params": {"prior_days": 0, "prior_risk": 0, **params}})
    assert isinstance(stage, DeliveryReRanker)
    return stage.fit(pipe.data_, pipe.env_)


def _queries(regions):
    n = len(regions)
    return replace(Queries.for_users(np.full(n, -1, np.int32)), context={"region": np.asarray(regions, object)})


def test_max_delivery_days_holds_items_per_region():
    data = delivery_shop()
    i = dict(zip(SELLERS, data.items.to_index(list(SELLERS))))
    stage = _stage(data, max_delivery_days=5)
    allowed = np.ones((3, data.n_items), bool)
    stage.constrain(_queries(["SP", "RJ", ""]), allowed)
    ok = lambda r: {k for k, v in i.items() if allowed[r, v]}       # noqa: E731
    assert ok(0) == {"i0", "i1", "i5"}           # to SP fast takes 3 days, slow 9; new has no estimate
    assert ok(1) == {"i5"}                       # to RJ fast takes 6
    assert ok(2) == {"i0", "i1", "i5"}           # unknown region: fast overall √18 ≈ 4.2 days
    allowed = np.ones((1, data.n_items), bool)
    _stage(data, max_delivery_days=7).constrain(_queries(["RJ"]), allowed)
    assert allowed[0, [i["i0"], i["i1"]]].all() and not allowed[0, [i["i2"], i["i3"], i["i4"]]].any()


def test_late_items_are_demoted_after_the_others_or_held():
    data = delivery_shop()
    i = dict(zip(SELLERS, data.items.to_index(list(SELLERS))))
    order = np.array([[i["i2"], i["i0"], i["i3"], i["i5"], i["i1"], -1]], np.int32)
    ranked = Ranked(order, np.arange(6, 0, -1, dtype=np.float32)[None], np.ones((1, 6), np.int64))
    stage = _stage(data, max_late_risk=0.3)
    assert stage.pool(5) == 30
    out = stage.rerank(ranked, _queries(["SP"]), 5)
    assert out.item_idx[0].tolist() == [i["i0"], i["i5"], i["i1"], i["i2"], i["i3"], -1]
    assert out.scores[0].tolist() == [5, 3, 2, 6, 4, 1]
    held = np.ones((1, data.n_items), bool)
    _stage(data, max_late_risk=0.3, action="hold").constrain(_queries(["SP"]), held)
    assert not held[0, [i["i2"], i["i3"]]].any() and held[0, [i["i0"], i["i1"], i["i4"], i["i5"]]].all()


def test_the_stage_passes_the_conformance_check_on_a_shop_with_deliveries():
    data = delivery_shop(unsold=6)         # the check's sample requests name items up to i7
    for params in ({"max_delivery_days": 5, "max_late_risk": 0.3}, {"max_late_risk": 0.3, "action": "hold"},
                   {"max_late_risk": 0.3, "action": "note", "note_days": False}):
        check_reranker(lambda p=params: make_stage("reranker", {"name": "delivery", "params": p}), data)


def _home(**params):
    cfg = scenario_from_dict({"scenario": {"name": "home", "k": 6}, "strategies": [{"name": "popularity"}],
                              "rules": {"exclude_history": "none"},
                              "rerankers": [{"name": "delivery", "params": {"prior_days": 0, "prior_risk": 0,
                                                                            **params}}]}, "t")
    return Recommender([cfg]).fit(delivery_shop())


def _notes(answer):
    return {it["item_id"]: [r["text"] for r in it["reasons"] if r["strategy"] == "delivery"] for it in answer["items"]}


def test_the_note_says_how_long_the_item_takes_to_the_requests_region(tmp_path):
    rec = _home(max_late_risk=0.3, action="note")
    sp, rj, nowhere = rec.recommend_raw("home", [{"attributes": {"region": "SP"}}, {"attributes": {"region": "rj"}}, {}])
    assert _notes(sp)["i0"] == ["arrives in about 3 days"]
    assert _notes(sp)["i2"] == ["arrives in about 9 days; often arrives late (50% of orders to SP)"]
    assert _notes(sp)["i5"] == []                               # no estimate, no note
    assert _notes(rj)["i0"] == ["arrives in about 6 days"]
    assert _notes(rj)["i3"] == ["arrives in about 18 days; often arrives late (100% of orders to RJ)"]
    assert _notes(nowhere)["i0"] == ["arrives in about 4 days"]  # the seller overall, √18 days
    # the note comes after the strategy's reason, and an API response carries it
    resp = rec.recommend("home", {"attributes": {"region": "SP"}})
    first = next(it for it in resp.items if it.item_id == "i0")
    assert first.reasons[0].strategy == "popularity" and first.reasons[-1].text == "arrives in about 3 days"
    # state through the artifact
    rec.save(tmp_path / "m")
    again = Recommender.load(tmp_path / "m").recommend_raw("home", [{"attributes": {"region": "SP"}}])[0]
    assert _notes(again) == _notes(sp)


def test_days_text_rounds_and_speaks_of_one_day():
    assert days_text(2.5) == "arrives in about 3 days" and days_text(0.3) == "arrives in about 1 day"


def test_hold_by_days_through_the_api_and_a_new_item_of_a_known_seller():
    rec = _home(max_delivery_days=7, note_days=False)
    sp, rj = rec.recommend_raw("home", [{"attributes": {"region": "SP"}}, {"attributes": {"region": "RJ"}}])
    assert {it["item_id"] for it in sp["items"]} == {"i0", "i1", "i5"}
    assert all(not v for v in _notes(sp).values())
    rec.upsert_items(pd.DataFrame({"item_id": ["n-slow", "n-fast"], "seller": ["slow", "fast"]}))
    stage = rec.pipelines["home"].rerankers_[1]
    new = rec.data_.items.to_index(["n-slow", "n-fast"])
    assert stage.estimates_.seller[new].tolist() == [stage.estimates_.seller_names.index(s) for s in ("slow", "fast")]
    allowed = np.ones((1, rec.data_.n_items), bool)
    stage.constrain(_queries(["RJ"]), allowed)
    assert allowed[0].tolist()[new[1]] and not allowed[0, new[0]]


def test_the_ranker_sees_the_sellers_overall_figures():
    data = delivery_shop()
    facts = ItemFacts.from_data(data)
    i0, i5 = data.items.to_index(["i0", "i5"])
    est = delivery_estimates(data)
    assert facts.delivery_days[i0] == pytest.approx(est.days_unknown[i0])
    assert facts.late_risk[i0] == pytest.approx(est.risk_unknown[i0])
    assert np.isnan(facts.delivery_days[i5]) and np.isnan(facts.late_risk[i5])
    facts.grow(data.n_items + 2)
    assert len(facts.delivery_days) == data.n_items + 2 and np.isnan(facts.late_risk[-1])


# ----------------------------------------------------------------------------- Olist
def test_the_olist_adapter_gives_purchase_times_customer_regions_and_seller_states(tmp_path):
    from shoprec.data.adapters import load_olist

    (tmp_path / "olist_order_items_dataset.csv").write_text(
        "order_id,order_item_id,product_id,seller_id,shipping_limit_date,price,freight_value\n"
        "o1,1,p1,s1,10/5/2017 10:00,10.00,2\no2,1,p2,s2,11/2/2017 9:00,12.00,2\n")
    (tmp_path / "olist_orders_dataset.csv").write_text(
        "order_id,customer_id,order_status,order_purchase_timestamp,order_approved_at,order_delivered_carrier_date,"
        "order_delivered_customer_date,order_estimated_delivery_date\n"
        "o1,c1,delivered,10/2/2017 10:56,,,10/10/2017 21:25,10/18/2017 0:00\n"
        "o2,c9,delivered,10/30/2017 8:00,,,11/20/2017 12:00,11/15/2017 0:00\n")
    (tmp_path / "olistcustomerdataset.csv").write_text(
        "customer_id,customer_unique_id,customer_zip_code_prefix,customer_city,customer_state\nc1,a,01037,x,SP\n")
    (tmp_path / "olist_sellers_dataset.csv").write_text(
        '"seller_id","seller_zip_code_prefix","seller_city","seller_state"\n"s1","13023",campinas,SP\n')
    data, _ = load_olist(tmp_path)
    o = data.meta["orders"].set_index("session_id")
    assert o.loc["o1", "purchased"] == 1506941760 and o.loc["o1", "customer_state"] == "SP"
    assert o.loc["o1", "customer_zip_prefix"] == "01037"
    assert pd.isna(o.loc["o2", "customer_state"])                 # its customer is not in the file
    p1, p2 = data.items.to_index(["p1", "p2"])
    assert data.item_table["seller_state"].iloc[p1] == "SP" and pd.isna(data.item_table["seller_state"].iloc[p2])
    est = delivery_estimates(data, prior_days=0)
    assert est.regions == ["SP"] and _at(est, data, "p1", "SP")[0] == pytest.approx(8 + (21 + 25 / 60 - 10 - 56 / 60) / 24, rel=1e-5)


@pytest.mark.realdata
def test_real_olist_sample_estimates_and_notes(shared_data):
    from shoprec.data.adapters import load

    folder = shared_data("olist", "sample")
    data, _ = load("olist:" + str(Path(folder).parent))
    est = delivery_estimates(data)
    # of 855 orders with outcomes, 841 (order, seller) deliveries; only 86 of them know the customer's state
    assert 800 < est.n_deliveries < 900 and 50 < est.n_with_region < 120 and "SP" in est.regions
    known = np.isfinite(est.days_unknown)
    assert 0.4 < known.mean() < 0.8
    assert 6 < np.median(est.days_unknown[known]) < 15 and 0.03 < np.median(est.risk_unknown[known]) < 0.15
    assert np.nanmax(est.risk) <= 1 and np.nanmin(est.days) > 0
    cfg = scenario_from_dict({"scenario": {"name": "home", "k": 10}, "strategies": [{"name": "popularity"}],
                              "rerankers": [{"name": "delivery", "params": {"max_late_risk": 0.1}}]}, "t")
    rec = Recommender([cfg]).fit(data)
    answer = rec.recommend_raw("home", [{"attributes": {"region": "SP"}}])[0]
    texts = [r["text"] for it in answer["items"] for r in it["reasons"] if r["strategy"] == "delivery"]
    assert len(answer["items"]) == 10 and texts and all(t.startswith("arrives in about ") for t in texts)


def test_the_rules_word_switches_the_stage_on_and_a_declared_one_wins():
    from shoprec.scenarios.pipeline import rule_stages

    cfg = scenario_from_dict({"scenario": {"name": "home"}, "strategies": [{"name": "popularity"}],
                              "rules": {"max_delivery_days": 12}}, "t")
    assert [(s.name, s.params) for s in rule_stages(cfg)] == [("delivery", {"max_delivery_days": 12})]
    own = scenario_from_dict({"scenario": {"name": "home"}, "strategies": [{"name": "popularity"}],
                              "rules": {"max_delivery_days": 12},
                              "rerankers": [{"name": "delivery", "params": {"max_late_risk": 0.2}}]}, "t")
    assert rule_stages(own) == []
