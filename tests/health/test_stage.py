"""The price_flags re-ranker: a price-spiked item is demoted (or held) on a page, with its reason;
an upserted abnormal price flags its item at once, and a normal one clears it."""

import numpy as np
import pandas as pd

from shoprec.health.stage import PriceFlagsReRanker, item_price_flags
from shoprec.scenarios.config import scenario_from_dict
from shoprec.scenarios.engine import Recommender
from shoprec.testing import priced_shop

def _shop():
    return priced_shop()


def _rec(action):
    cfg = scenario_from_dict({"scenario": {"name": "home", "k": 5}, "strategies": [{"name": "popularity"}],
                              "rules": {"exclude_history": "none"},
                              "rerankers": [{"name": "price_flags", "params": {"action": action}}]}, "t")
    return Recommender([cfg]).fit(_shop())


def _ids(rec):
    return [it["item_id"] for it in rec.recommend_raw("home", [{}])[0]["items"]]


def test_a_spiked_item_is_demoted_or_held_and_reported_with_its_reason():
    assert _ids(_rec("ignore"))[0] == "i0"                   # the most popular, as ranked
    demoted = _ids(_rec("demote"))
    assert "i0" not in demoted[:4] and demoted[:4] == ["i1", "i2", "i3", "i4"]
    assert "i0" not in _ids(_rec("hold"))
    scenario, flags = item_price_flags(_rec("demote"))
    assert scenario == "home" and flags["item_id"].tolist() == ["i0"]
    assert flags["kind"].tolist() == ["spike"] and "3.0× its usual 1.00" in flags["reason"].iloc[0]


def test_an_upserted_price_is_checked_at_once_and_a_normal_one_clears_the_flag():
    rec = _rec("demote")
    rec.upsert_items(pd.DataFrame({"item_id": ["i3"], "price": [40.0]}))        # usual 4.00: ×10
    _, flags = item_price_flags(rec)
    assert set(flags["item_id"]) == {"i0", "i3"}
    assert "i3" not in _ids(rec)[:3]
    rec.upsert_items(pd.DataFrame({"item_id": ["i0", "i3"], "price": [1.0, 4.0]}))   # back to usual
    _, flags = item_price_flags(rec)
    assert flags.empty and _ids(rec)[0] == "i0"


def test_a_live_event_price_is_checked_and_each_new_day_joins_the_history():
    from shoprec.strategies.base import LiveEvents, Ragged

    rec = _rec("demote")
    st = next(s for s in rec.pipelines["home"].rerankers_ if isinstance(s, PriceFlagsReRanker))
    i3 = int(rec.data_.items.to_index(["i3"])[0])
    day = float(st.last_t_[i3]) + 86_400.0

    def events(prices, t):
        n = len(prices)
        return LiveEvents(np.full(n, -1, np.int32), np.full(n, i3, np.int32), np.full(n, 4, np.int8),
                          np.full(n, t), Ragged(np.zeros(n + 1, np.int64), np.zeros(0, np.int32)),
                          np.asarray(prices, np.float64))

    rec.observe(events([4.0, 40.0], day))            # the newest of the batch counts: ×10
    assert set(item_price_flags(rec)[1]["item_id"]) == {"i0", "i3"}
    assert st.recent_[i3, -1] == 40.0 and st.last_t_[i3] == day
    rec.observe(events([4.0], day + 3600))            # the same day: checked, not added again
    assert set(item_price_flags(rec)[1]["item_id"]) == {"i0"} and st.recent_[i3, -1] == 40.0
    rec.observe(events([float("nan"), -1.0], day + 7200))    # no usable price: nothing changes
    assert set(item_price_flags(rec)[1]["item_id"]) == {"i0"}


def test_the_stage_survives_a_save_and_load(tmp_path):
    rec = _rec("demote")
    rec.save(tmp_path / "model")
    again = Recommender.load(tmp_path / "model")
    assert _ids(again) == _ids(rec)
    st = next(s for s in again.pipelines["home"].rerankers_ if isinstance(s, PriceFlagsReRanker))
    np.testing.assert_array_equal(st.flagged(), next(
        s for s in rec.pipelines["home"].rerankers_ if isinstance(s, PriceFlagsReRanker)).flagged())


def test_events_without_prices_flag_nothing():
    from shoprec.testing import tiny_shop

    cfg = scenario_from_dict({"scenario": {"name": "home"}, "strategies": [{"name": "popularity"}],
                              "rerankers": [{"name": "price_flags"}]}, "t")
    rec = Recommender([cfg]).fit(tiny_shop())
    assert item_price_flags(rec)[1].empty
    assert len(rec.recommend_raw("home", [{}])[0]["items"]) > 0
