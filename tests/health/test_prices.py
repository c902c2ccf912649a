"""Price supervision on small synthetic series with known answers, and bad input reported."""

import numpy as np
import pandas as pd
import pytest

from shoprec.health import Flags, PriceSupervisor, price_series

DAY = 86_400.0


def _series(prices, item="a", qty=None):
    n = len(prices)
    return pd.DataFrame({"item": item, "t": np.arange(n) * DAY, "price": np.asarray(prices, float),
                         "quantity": np.ones(n) * 10 if qty is None else np.asarray(qty, float), "lines": 1})


def _steady(n=40, seed=0):
    # an item sold at two tiers (2.00 most days, 1.70 some days): natural, never flagged
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.7, 2.0, 1.7)


def test_a_steady_item_with_tiers_has_no_flags():
    f = PriceSupervisor().scan(_series(_steady(60)))
    assert len(f) == 0 and f.checked == {"observations": 60, "items": 1, "without_history": 5}


@pytest.mark.parametrize("factor,kind", [(3.0, "spike"), (0.4, "drop")])
def test_a_one_day_spike_or_drop_is_flagged_on_that_day_only(factor, kind):
    p = _steady(60)
    p[45] = 2.0 * factor
    f = PriceSupervisor().scan(_series(p)).frame
    assert f[["key", "kind", "at"]].values.tolist() == [["a", kind, 45 * DAY]]
    assert f["expected"].iloc[0] == pytest.approx(2.0) and f["value"].iloc[0] == pytest.approx(2.0 * factor)
    assert ("3.0× its usual 2.00" if kind == "spike" else "60% below its usual 2.00") in f["reason"].iloc[0]


def test_a_cut_with_a_volume_spike_is_a_subsidy_and_without_it_nothing():
    p, q = _steady(60), np.full(60, 10.0)
    p[45], q[45] = 1.3, 60.0         # −35 % and 6× the units
    f = PriceSupervisor().scan(_series(p, qty=q)).frame
    assert f[["kind", "at"]].values.tolist() == [["subsidy", 45 * DAY]]
    q[45] = 10.0                     # the same cut, usual volume: a mild cut is no drop
    assert len(PriceSupervisor().scan(_series(p, qty=q))) == 0


def test_a_gradual_creep_is_flagged_once_and_a_one_step_repricing_is_not():
    base = np.full(70, 2.0)
    creep = base.copy()
    creep[40:] *= 1 + 0.04 * np.minimum(np.arange(1, 31), 10)
    f = PriceSupervisor().scan(_series(creep)).frame
    assert f["kind"].tolist() == ["creep"] and 40 * DAY <= f["at"].iloc[0] <= 52 * DAY
    step = base.copy()
    step[40:] *= 1.4                 # one repricing: a new level at once, not a creep
    assert "creep" not in PriceSupervisor().scan(_series(step)).frame["kind"].tolist()


def test_items_are_scanned_together_and_independently():
    a, b = _steady(50), _steady(50, seed=1)
    b[30] = 9.0
    both = pd.concat([_series(a, "a"), _series(b, "b")]).sample(frac=1.0, random_state=0)   # any order
    f = PriceSupervisor().scan(both)
    assert f.keys("item") == {"b"} and f.counts() == {"spike": 1}
    assert isinstance(f, Flags) and "1 flags (spike 1)" in f.summary()


def test_price_series_takes_the_mode_per_day_and_reports_bad_rows():
    ev = pd.DataFrame({"item_id": ["a"] * 6 + ["b", "c"],
                       "timestamp": [0, 10, 20, 30, DAY + 5, DAY + 6, 0, 0],
                       "price": [2.0, 2.0, 1.5, "2.0", -1.0, "n/a", None, 3.0],
                       "quantity": [1, 2, 30, 1, 1, 1, 1, 1]})
    s, counts = price_series(ev)
    # day 0 of a: 2.00 on three lines (one given as text), 1.50 on one: the list price is 2.00
    assert s.values.tolist() == [["a", 0.0, 2.0, 34.0, 4], ["c", 0.0, 3.0, 1.0, 1]]
    assert counts["skipped_not_positive"] == 1 and counts["skipped_not_a_number"] == 1
    assert counts["skipped_missing_price"] == 1 and counts["parsed_from_text"] == 1
    assert counts["rows_read"] == 8 and counts["rows_kept"] == 5
    with pytest.raises(ValueError, match="no column 'price'"):
        price_series(ev.drop(columns="price"), source="items.csv")


def test_an_item_without_history_and_an_empty_series_do_not_crash():
    f = PriceSupervisor().scan(_series([2.0, 50.0]))
    assert len(f) == 0 and f.checked["without_history"] == 2
    assert len(PriceSupervisor().scan(_series([]))) == 0


def test_items_far_from_their_category_peers_are_flagged():
    rng = np.random.default_rng(0)
    cat = np.repeat(["toys", "tv"], 20)
    price = np.where(cat == "toys", 10.0, 500.0) * np.exp(rng.normal(0, 0.1, 40))
    price[3] = 1.0                      # a toy at a tenth of its peers: dumping (or a fake)
    price[25] = 4000.0                  # a tv at 8× its peers: gouging
    frame = pd.DataFrame({"item": [f"p{i}" for i in range(40)] + ["lonely", "no_cat", "bad"],
                          "price": list(price) + [99.0, 5.0, "n/a"], "category": list(cat) + ["rare", None, "tv"]})
    f = PriceSupervisor().peers(frame)
    got = f.frame.set_index("key")["kind"].to_dict()
    assert got == {"p3": "below_peers", "p25": "above_peers"}
    assert "below its category's typical" in f.frame.set_index("key").loc["p3", "reason"]
    assert f.checked == {"items": 43, "unusable": 2, "in_small_categories": 1}


def test_a_tier_seen_months_ago_is_known_and_a_kept_repricing_is_no_drop():
    p = np.full(120, 2.0)
    p[10] = 6.0                         # a dear tier, new at first: a spike
    p[100] = 6.0                        # back 90 observations later: a known level, no spike
    assert PriceSupervisor().scan(_series(p)).frame["at"].tolist() == [10 * DAY]
    assert PriceSupervisor(level_memory=30).scan(_series(p)).frame["at"].tolist() == [10 * DAY, 100 * DAY]
    mark = np.full(80, 2.0)
    mark[60:] = 0.7                     # a markdown the item keeps: a repricing, not a one-off drop
    assert PriceSupervisor().scan(_series(mark)).frame.empty
    assert PriceSupervisor(settle=0).scan(_series(mark)).frame["kind"].tolist() == ["drop"]
    last = np.full(80, 2.0)
    last[79] = 0.7                      # the newest price cannot be told apart yet: judged as live
    assert PriceSupervisor().scan(_series(last)).frame[["kind", "at"]].values.tolist() == [["drop", 79 * DAY]]


def test_a_quantity_break_discount_is_not_a_subsidy():
    p, q = np.full(60, 1.0), np.full(60, 10.0)
    p[45], q[45] = 0.78, 200.0           # −22 % for a big order: the shop's usual quantity break
    assert PriceSupervisor().scan(_series(p, qty=q)).frame.empty
    p[45] = 0.62                         # −38 % with the volume spike: a subsidised cut
    assert PriceSupervisor().scan(_series(p, qty=q)).frame["kind"].tolist() == ["subsidy"]


def _catalogue(n=40, seed=0):
    # one category whose price follows the weight: 20 light (100 g, ~10) and 20 heavy (10 kg, ~200) items
    rng = np.random.default_rng(seed)
    weight = np.where(np.arange(n) < n // 2, 100.0, 10_000.0) * np.exp(rng.normal(0, 0.05, n))
    price = np.exp(np.log(10.0) + 0.65 * (np.log1p(weight) - np.log1p(100.0))) * np.exp(rng.normal(0, 0.1, n))
    return pd.DataFrame({"item": [f"p{i}" for i in range(n)], "price": price, "category": "garden", "weight_g": weight})


def test_peers_are_the_alike_items_of_the_category():
    cat = _catalogue()
    heavy_median = float(cat["price"].iloc[20:].median())
    cat.loc[25, "price"] = heavy_median          # a heavy item priced like the heavy ones: fair
    cat.loc[3, "price"] = heavy_median           # a light item priced like the heavy ones: gouging
    cat.loc[30, "price"] = 10.0                  # a heavy item priced like the light ones: dumping
    f = PriceSupervisor().peers(cat)             # weight_g is used: every column but item, price, category
    got = f.frame.set_index("key")
    assert got["kind"].to_dict() == {"p3": "above_peers", "p30": "below_peers"}
    assert got.loc["p3", "expected"] == pytest.approx(10.0, rel=0.2)       # what light items cost
    assert got.loc["p30", "expected"] == pytest.approx(heavy_median, rel=0.2)
    assert "what alike items of its category cost" in got.loc["p3", "reason"]
    # by the category's median alone (the heavy and light halves mixed) none of them is far out
    assert PriceSupervisor().peers(cat, attributes=[]).frame.empty


def test_peer_regression_recovers_an_exact_price_rule_and_tolerates_missing_attributes():
    from shoprec.health.prices import peer_expectation

    rng = np.random.default_rng(1)
    w = rng.uniform(50, 5000, 30)
    lp = 1.0 + 0.5 * np.log1p(w)
    expected, spread = peer_expectation(lp, np.zeros(30, np.int64), w[:, None], PriceSupervisor().config)
    assert np.allclose(expected, lp, atol=1e-3) and np.allclose(spread, np.log(1.2))   # the floor
    cat = _catalogue()
    cat.loc[5, "weight_g"] = np.nan              # an unknown weight: the category's median, still judged
    cat.loc[6, "weight_g"] = -1.0
    f = PriceSupervisor().peers(cat)
    assert f.checked == {"items": 40, "unusable": 0, "in_small_categories": 0}
    with pytest.raises(ValueError, match="no attribute column"):
        PriceSupervisor().peers(cat, attributes=["volume_cm3"])
    with pytest.raises(ValueError, match="no column 'category'"):
        PriceSupervisor().peers(cat.drop(columns="category"))
