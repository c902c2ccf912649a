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
