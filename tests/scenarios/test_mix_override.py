"""An A/B variant's inline override of a scenario's weights: the same answers as a scenario fitted
with those weights, logged as its own arm with propensity 1, other requests of the batch untouched."""

import pytest

from shoprec.exceptions import ConfigError
from shoprec.scenarios.config import scenario_from_dict
from shoprec.scenarios.engine import Recommender
from shoprec.testing import tiny_shop


def _scenario(name, knn_weight):
    return scenario_from_dict({"scenario": {"name": name, "k": 5},
                               "strategies": [{"name": "item_knn", "weight": knn_weight}, {"name": "popularity"}],
                               "fusion": {"method": "weighted"}, "rules": {"exclude_history": "none"}}, name)


@pytest.fixture(scope="module")
def rec():
    return Recommender([_scenario("home", 1.0), _scenario("home_pop", 0.0)]).fit(tiny_shop())


def _ids(answers):
    return [[it["item_id"] for it in a["items"]] for a in answers]


def test_override_answers_like_the_scenario_with_those_weights(rec):
    data = rec.data_
    users = [str(u) for u in data.users.to_external([0, 1, 2, 3])]
    ctxs = [{"user_id": u} for u in users]
    mix = {"name": "pop_only", "weights": {"item_knn": 0.0}}
    got = rec.recommend_raw("home", ctxs, [mix, None, mix, None])
    plain = rec.recommend_raw("home", ctxs)
    pop = rec.recommend_raw("home_pop", ctxs)
    assert _ids(got)[0] == _ids(pop)[0] and _ids(got)[2] == _ids(pop)[2]
    assert _ids(got)[1] == _ids(plain)[1] and _ids(got)[3] == _ids(plain)[3]
    assert _ids(pop) != _ids(plain)                      # the override changes something
    assert got[0]["policy"] == {"name": "override", "arm": "override:pop_only", "propensity": 1.0}
    assert got[1]["policy"]["arm"] == plain[1]["policy"]["arm"]


def test_override_of_an_unknown_strategy_is_a_clear_error(rec):
    with pytest.raises(ConfigError, match=r"no strategy 'ease' in scenario 'home'"):
        rec.recommend_raw("home", [{}], [{"name": "x", "weights": {"ease": 1.0}}])
