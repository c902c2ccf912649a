"""What a Recommender's fit shares between scenarios (validation slices, the strategies fitted on them,
their candidates) and fits in the background: the same answers as fitting each scenario alone."""

import numpy as np
import pytest

from shoprec.scenarios import Recommender, ScenarioPipeline, scenario_from_dict
from shoprec.scenarios import engine as engine_mod
from shoprec.scenarios.pipeline import ModelCache
from shoprec.strategies.base import Queries, Strategy
from shoprec.testing import tiny_shop

RANKER = {"validation": "temporal", "validation_fraction": 0.3, "n_estimators": 10, "min_child_samples": 5,
          "max_queries": 100}


def scenario(name: str, strategies: list[dict], **fusion) -> object:
    return scenario_from_dict({"scenario": {"name": name, "k": 5}, "strategies": strategies,
                               "fusion": {"method": "auto", "tune_weights": True, **fusion}, "ranker": RANKER,
                               "fallback": [{"name": "popularity"}]})


def count_fits(monkeypatch) -> dict[str, int]:
    counts: dict[str, int] = {}
    real = Strategy.fit

    def fit(self, data):
        counts[self.name] = counts.get(self.name, 0) + 1
        return real(self, data)

    monkeypatch.setattr(Strategy, "fit", fit)
    return counts


def test_scenarios_with_one_validation_slice_fit_its_strategies_once(monkeypatch):
    data = tiny_shop(n_users=80, n_items=20)
    a = scenario("a", [{"name": "item_knn"}, {"name": "popularity", "params": {"mode": "trending"}}])
    b = scenario("b", [{"name": "item_knn"}, {"name": "sequential"}])
    counts = count_fits(monkeypatch)
    rec = Recommender([a, b]).fit(data)
    # item_knn: once on the data, once on the shared slice (not once per scenario); popularity (the
    # fallback of both) likewise
    assert counts["item_knn"] == 2 and counts["popularity"] == 2 + 2   # plain and trending, data and slice
    assert counts["sequential"] == 2
    assert not rec.cache_.validation   # the slices are gone after the fit
    # the same answers as each scenario fitted alone (its own slice, its own strategies)
    q = Queries.for_users(np.arange(30))
    for cfg in (a, b):
        alone = ScenarioPipeline(cfg).fit(data)
        shared = rec.pipelines[cfg.name]
        np.testing.assert_array_equal(shared.weights_, alone.weights_)
        assert shared.method_ == alone.method_
        assert shared.validation_["held-out ndcg@10"] == alone.validation_["held-out ndcg@10"]
        np.testing.assert_array_equal(shared.recommend(q).item_idx, alone.recommend(q).item_idx)
        assert not alone.cache_.validation   # a pipeline's own cache forgets its slice too


def test_candidates_of_a_shared_slice_are_computed_once(monkeypatch):
    data = tiny_shop(n_users=80, n_items=20)
    calls = []
    real = ModelCache.get

    def get(self, spec, d, scope=""):
        model = real(self, spec, d, scope)
        if model is not None and spec.name == "item_knn" and not hasattr(model, "_counted"):
            model._counted = True
            inner = type(model).candidates

            def candidates(queries, k, allowed, _inner=inner, _model=model):
                calls.append(len(queries))
                return _inner(_model, queries, k, allowed)

            model.candidates = candidates
        return model

    monkeypatch.setattr(ModelCache, "get", get)
    a = scenario("a", [{"name": "item_knn"}, {"name": "popularity"}])
    b = scenario("b", [{"name": "item_knn"}, {"name": "popularity", "params": {"mode": "trending"}}])
    Recommender([a]).fit(data)
    alone = len(calls)
    calls.clear()
    Recommender([a, b]).fit(data)
    # b's validation requests are a's, under the same rules: item_knn proposes for them once
    assert 0 < alone == len(calls)


def test_background_fits_give_the_sequential_fit(monkeypatch):
    pytest.importorskip("torch")        # SASRec, the background strategy, needs the `neural` extra
    data = tiny_shop(n_users=60, n_items=20)
    tiny = {"epochs": 1, "hidden": 8, "max_len": 10}
    cfgs = [scenario("home", [{"name": "item_knn"}, {"name": "sasrec", "params": tiny}]),
            scenario("item_page", [{"name": "session_knn"}, {"name": "item_knn", "params": {"similarity": "covisit"}}],
                     method="weighted")]
    background = Recommender(cfgs).fit(data)
    monkeypatch.setattr(engine_mod, "BACKGROUND_STRATEGIES", frozenset())
    serial = Recommender(cfgs).fit(data)
    assert list(background.pipelines) == list(serial.pipelines) == ["home", "item_page"]
    assert list(background.fit_seconds_) == ["home", "item_page"]
    # the models in the order the scenarios name them (the first one's history feeds the reasons)
    assert list(background.cache_.models) == list(serial.cache_.models)
    assert not background.cache_.pending
    q = Queries.for_users(np.arange(25))
    for name in ("home", "item_page"):
        np.testing.assert_array_equal(background.pipelines[name].recommend(q).item_idx,
                                      serial.pipelines[name].recommend(q).item_idx)
    assert background.recommend("home", {"user_id": "u1"}).item_ids == serial.recommend("home", {"user_id": "u1"}).item_ids


def test_ranker_training_requests_capped_whole_and_by_seed():
    from types import SimpleNamespace

    from shoprec.scenarios.fusion.learn import _cap_requests

    def parts():
        a = SimpleNamespace(row=np.array([0, 0, 1, 2, 2, 2]))   # requests 0 (2 pairs), 2 (3); 1 has no positive
        b = SimpleNamespace(row=np.array([0, 1, 1]))            # requests 0 (1 pair), 1 (2)
        return [(None, a, None, np.array([True, False, True])), (None, b, None, np.array([True, True]))]

    def kept(ps):
        return [int(np.bincount(p.row, minlength=len(h))[h].sum()) for _, p, _, h in ps], [h.copy() for *_, h in ps]

    whole = parts()
    _cap_requests(whole, 8, seed=0)           # 8 pairs in all: nothing to cap
    assert [h.tolist() for *_, h in whole] == [[True, False, True], [True, True]]
    capped = parts()
    _cap_requests(capped, 4, seed=0)
    sizes, masks = kept(capped)
    assert 1 <= sum(sizes) <= 4                 # whole requests, at most 4 pairs
    assert not capped[0][3][1]                  # a request without a positive never comes back
    again = parts()
    _cap_requests(again, 4, seed=0)
    assert [h.tolist() for *_, h in again] == [m.tolist() for m in masks]
    tiny = parts()
    _cap_requests(tiny, 1, seed=3)               # below any request's size: still one request
    assert sum(h.sum() for *_, h in tiny) == 1


def test_a_strategy_the_data_cannot_fit_is_not_waited_for():
    import pandas as pd

    from shoprec.data import ShopData

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user_id": [f"u{u}" for u in rng.integers(0, 30, 300)],
                          "item_id": [f"i{i}" for i in rng.integers(0, 15, 300)]})   # no order: no sasrec
    data = ShopData.from_frame(frame, name="unordered")
    cfgs = [scenario("home", [{"name": "item_knn"}, {"name": "sasrec", "params": {"epochs": 1, "hidden": 8}}],
                     method="weighted", tune_weights=False),
            scenario("other", [{"name": "popularity"}], method="weighted", tune_weights=False)]
    order = []
    rec = Recommender(cfgs).fit(data, progress=lambda name, seconds: order.append(name))
    assert order == ["home", "other"]          # fitted in the configured order: nothing in the background
    assert any("needs ordered events" in n for n in rec.pipelines["home"].notes_)
