"""The pipeline's stages: every registered stage passes its kind's conformance check; known answers
for the shipped filters and policies; the registry; a plug-in stage of each kind runs in a scenario
and survives save → load."""

import numpy as np
import pandas as pd
import pytest

from shoprec.data import Behaviour, ShopData
from shoprec.exceptions import ConfigError
from shoprec.scenarios import Recommender, ScenarioPipeline, scenario_from_dict
from shoprec.scenarios.stages import (BUILTIN, FilterReport, MixChoice, MixPolicy, Ranked, ReRanker, StageConfig,
                                      TrainingFilter, known_stages, make_stage, register_stage, stage_class)
from shoprec.testing import (check_fusion, check_mix_policy, check_reranker, check_training_filter, tiny_pipeline,
                             tiny_shop)

#: parameters for the registered stages that need some
PARAMS = {
    ("training_filter", "time_window"): [{"max_age_days": 0.5}, {"max_age_days": 1000}],
    ("training_filter", "behaviours"): [{"keep": ["view", "purchase"]}, {"drop": ["view"]}],
    ("training_filter", "event_rate"): [{}, {"max_events_per_minute": 0.1, "min_events": 3, "max_events_per_session": 4}],
    ("mix_policy", "uniform"): [{"arms": {"knn": {"item_knn": 1.0}, "blend": {"ease": 1.0, "popularity": 0.5}}}],
    ("mix_policy", "thompson"): [{"arms": {"knn": {"item_knn": 1.0}, "blend": {"ease": 1.0, "popularity": 0.5}}},
                                 {"arms": {"a": {"ease": 1.0}, "b": {"popularity": 1.0}, "c": {"item_knn": 1.0}},
                                  "reward": "gaussian"}],
    ("mix_policy", "linucb"): [{"arms": {"knn": {"item_knn": 1.0}, "blend": {"ease": 1.0, "popularity": 0.5}}}],
    ("mix_policy", "lin_ts"): [{"arms": {"knn": {"item_knn": 1.0}, "blend": {"ease": 1.0, "popularity": 0.5}}}],
    ("reranker", "mmr"): [{}, {"trade_off": 0.3}],
    ("reranker", "delivery"): [{"max_delivery_days": 5, "max_late_risk": 0.2}, {"max_late_risk": 0.1, "action": "hold"}],
    ("reranker", "fair_exposure"): [{"group": "category"}, {"group": "category", "strength": 2.0, "target": "relevance"},
                                    {"group": "category", "method": "fair", "min_proportion": 0.5}],
    ("reranker", "rules"): [{}, {"exclude_history": "purchased", "repurchase": True},
                            {"complements_only": True, "max_similarity_to_basket": 0.5, "same_category_allowed": False}],
}


def cases(kind):
    for k, name in BUILTIN:
        if k == kind:
            for params in PARAMS.get((k, name), [{}]):
                yield name, params


@pytest.mark.parametrize(("name", "params"), list(cases("training_filter")))
def test_training_filter_conformance(name, params):
    check_training_filter(lambda: make_stage("training_filter", {"name": name, "params": params}))


@pytest.mark.parametrize(("name", "params"), list(cases("mix_policy")))
def test_mix_policy_conformance(name, params):
    check_mix_policy(lambda: make_stage("mix_policy", {"name": name, "params": params}))


@pytest.mark.parametrize(("name", "params"), list(cases("reranker")))
def test_reranker_conformance(name, params):
    check_reranker(lambda: make_stage("reranker", {"name": name, "params": params}))


@pytest.mark.parametrize("name", ["weighted", "rrf", "ranker"])
def test_fusion_conformance(name):
    if name != "ranker":
        check_fusion(lambda: make_stage("fusion", {"name": name}))
        return
    pipe = tiny_pipeline(fusion={"method": "ranker"}, ranker={"min_child_samples": 2, "n_estimators": 20})
    assert pipe.ranker is not None and pipe.ranker.trained
    check_fusion(lambda: pipe.ranker)


# ----------------------------------------------------------------------------- training filters
def timed_shop() -> ShopData:
    """u_old: 3 views 400 days before the rest; u_bot: 40 views in 40 seconds; u_buy: a 30-item
    invoice (one timestamp) and 2 views; u_slow: 25 views an hour apart."""
    t0 = 1_700_000_000
    rows = [("u_old", f"i{j}", int(Behaviour.VIEW), t0 - 400 * 86400 + j, "s_old") for j in range(3)]
    rows += [("u_bot", f"i{j % 10}", int(Behaviour.VIEW), t0 + j, "s_bot") for j in range(40)]
    rows += [("u_buy", f"i{j % 12}", int(Behaviour.PURCHASE), t0 + 100, "s_buy") for j in range(30)]
    rows += [("u_buy", "i1", int(Behaviour.VIEW), t0 + 50, "s_buy"), ("u_buy", "i2", int(Behaviour.VIEW), t0 + 60, "s_buy")]
    rows += [("u_slow", f"i{j % 8}", int(Behaviour.VIEW), t0 + 3600 * j, "s_slow") for j in range(25)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp", "session_id"])
    return ShopData.from_frame(frame, name="timed")


def kept_users(data, kept):
    return sorted(set(data.users.to_external(kept.events["user_idx"].to_numpy())))


def test_time_window_known_answer():
    data = timed_shop()
    kept, report = make_stage("training_filter", {"name": "time_window", "params": {"max_age_days": 365}}).filter(data)
    assert kept_users(data, kept) == ["u_bot", "u_buy", "u_slow"]
    assert report == FilterReport("time_window", data.n_events, data.n_events - 3, {"older than 365 days": 3})
    assert "dropped 3 older than 365 days" in report.summary()


def test_behaviour_filter_known_answer():
    data = timed_shop()
    kept, report = make_stage("training_filter", {"name": "behaviours", "params": {"keep": ["buy"]}}).filter(data)
    assert (kept.events["behaviour"] == int(Behaviour.PURCHASE)).all() and kept.n_events == 30
    kept, report = make_stage("training_filter", {"name": "behaviours", "params": {"drop": ["pv"]}}).filter(data)
    assert report.dropped == {"behaviour view": data.n_events - 30}
    with pytest.raises(ConfigError, match="unknown behaviour 'teleport'"):
        make_stage("training_filter", {"name": "behaviours", "params": {"keep": ["teleport"]}})
    with pytest.raises(ConfigError, match="exactly one of"):
        make_stage("training_filter", {"name": "behaviours", "params": {}})


def test_event_rate_flags_the_scripted_visit_not_the_invoice_or_the_slow_browser():
    data = timed_shop()
    kept, report = make_stage("training_filter", {"name": "event_rate"}).filter(data)
    assert kept_users(data, kept) == ["u_buy", "u_old", "u_slow"]
    assert report.dropped == {"visits faster than 30 browsing events/minute": 40}
    kept, report = make_stage("training_filter", {"name": "event_rate",
                                                  "params": {"max_events_per_session": 30}}).filter(data)
    assert kept_users(data, kept) == ["u_old", "u_slow"]     # the bot by its pace, the 32-event visit by its size
    assert report.dropped["visits over 30 events"] == 32


def test_filters_shape_what_the_strategies_learn_and_are_cached_by_chain():
    data = timed_shop()
    spec = {"scenario": {"name": "home", "k": 3}, "strategies": [{"name": "popularity"}]}
    plain = ScenarioPipeline(scenario_from_dict(spec)).fit(data)
    cfg = scenario_from_dict({**spec, "training_filters": [{"name": "event_rate"}]})
    rec = Recommender([cfg, scenario_from_dict({**spec, "scenario": {"name": "other", "k": 3}})]).fit(data)
    filtered = rec.pipelines["home"]
    assert filtered.filter_reports_[0].dropped == {"visits faster than 30 browsing events/minute": 40}
    assert filtered.data_.n_events == data.n_events - 40 and rec.pipelines["other"].data_.n_events == data.n_events
    assert filtered.models_[0] is not rec.pipelines["other"].models_[0]     # a model per chain
    assert plain.models_[0].user_items_.sum() > filtered.models_[0].user_items_.sum()


# ----------------------------------------------------------------------------- policies
def test_static_policy_serves_the_scenario_weights_with_propensity_one():
    pipe = tiny_pipeline()
    from shoprec.testing import sample_queries

    q = sample_queries(pipe.data_)
    choice = pipe.choose_mix(q)
    assert choice.arms == ("static",) and (choice.propensity == 1).all()
    np.testing.assert_array_equal(choice.shared, pipe.weights_)


def test_uniform_policy_answers_each_request_with_its_arm_and_logs_it():
    arms = {"knn": {"item_knn": 1.0}, "pop": {"popularity": 1.0}}
    pipe = tiny_pipeline(policy={"name": "uniform", "params": {"arms": arms, "seed": 3}})
    from shoprec.testing import sample_queries

    q = sample_queries(pipe.data_)
    q = q.take(np.repeat(np.arange(len(q)), 20))
    recs = pipe.recommend(q)
    assert recs.arms == ("knn", "pop") and np.allclose(recs.propensity, 0.5)
    assert set(np.unique(recs.arm)) == {0, 1}
    single = {0: pipe.recommend(q, method="item_knn"), 1: pipe.recommend(q, method="popularity")}
    for a in (0, 1):                        # an arm that is one strategy answers as that strategy alone
        rows = np.flatnonzero(recs.arm == a)
        np.testing.assert_array_equal(recs.item_idx[rows], single[a].item_idx[rows])


def test_policy_arms_are_checked_against_the_scenario():
    base = {"scenario": {"name": "x"}, "strategies": [{"name": "popularity"}]}
    with pytest.raises(ConfigError, match="arm 'a' names strategies the scenario does not have: \\['ease'\\]"):
        scenario_from_dict({**base, "policy": {"name": "uniform", "params": {"arms": {"a": {"ease": 1}}}}})
    with pytest.raises(ConfigError, match="gives every strategy weight 0"):
        scenario_from_dict({**base, "policy": {"name": "uniform", "params": {"arms": {"a": {"popularity": 0}}}}})


# ----------------------------------------------------------------------------- registry and plug-ins
def test_unknown_stages_and_bad_params_are_clear_errors():
    base = {"scenario": {"name": "x"}, "strategies": [{"name": "popularity"}]}
    with pytest.raises(ConfigError, match="unknown training filter 'captcha'; known: behaviours, bots, event_rate"):
        scenario_from_dict({**base, "training_filters": [{"name": "captcha"}]})
    with pytest.raises(ConfigError, match="unknown reranker 'fair'"):
        scenario_from_dict({**base, "rerankers": [{"name": "fair"}]})
    with pytest.raises(ConfigError, match="unknown fusion 'magic'"):
        scenario_from_dict({**base, "fusion": {"method": "magic"}})
    with pytest.raises(ConfigError, match="mmr' params\n  tradeoff: unknown field"):
        scenario_from_dict({**base, "rerankers": [{"name": "mmr", "params": {"tradeoff": 1}}]})
    assert known_stages("mix_policy") == ["lin_ts", "linucb", "static", "thompson", "uniform"]


class ReverseConfig(StageConfig):
    drop_first: bool = False


class Reverse(ReRanker):
    """A plug-in re-ranker: shows the pool's top K in reverse order, never item 0."""

    name = "reverse"
    Config = ReverseConfig

    def constrain(self, queries, allowed):
        allowed[:, 0] = False

    def rerank(self, ranked, queries, k):
        head = ranked.head(k)
        idx, val, src = head.item_idx.copy(), head.scores.copy(), head.sources.copy()
        for r in range(len(idx)):
            n = int((idx[r] >= 0).sum())
            idx[r, :n], val[r, :n], src[r, :n] = idx[r, :n][::-1], val[r, :n][::-1], src[r, :n][::-1]
        return Ranked(idx, val, src)


class Offset(TrainingFilter):
    """A plug-in filter: drops user 0's events."""

    name = "no_user0"

    def _drop(self, data):
        return {"user 0": data.events["user_idx"].to_numpy() == 0}


def test_a_plugin_stage_runs_in_a_scenario_and_survives_save_load(tmp_path):
    register_stage("reranker", "reverse", Reverse)
    register_stage("training_filter", "no_user0", f"{__name__}:Offset")
    check_reranker(lambda: Reverse())
    check_training_filter(lambda: Offset())
    data = tiny_shop()
    spec = {"scenario": {"name": "home", "k": 4},
            "strategies": [{"name": "item_knn"}, {"name": "popularity", "weight": 0.1}],
            "policy": {"name": "uniform", "params": {"arms": {"a": {"item_knn": 1}, "b": {"popularity": 1}}}}}
    plain = Recommender([scenario_from_dict(spec)]).fit(data)
    rec = Recommender([scenario_from_dict({**spec, "rerankers": [{"name": "reverse"}],
                                           "training_filters": [{"name": "no_user0"}]})]).fit(data)
    pipe = rec.pipelines["home"]
    assert pipe.filter_reports_[0].dropped["user 0"] == int((data.events["user_idx"] == 0).sum())
    assert [type(r).__name__ for r in pipe.rerankers_] == ["RulesReRanker", "Reverse"]
    users = [str(u) for u in data.users.to_external(np.arange(1, 9))]
    got = rec.recommend_raw("home", [{"user_id": u} for u in users])
    assert all("0" != it["item_id"] for r in got for it in r["items"])
    for r in got:
        scores = [it["score"] for it in r["items"]]
        assert scores == sorted(scores), "reversed: ascending scores"
        assert r["policy"]["name"] == "uniform" and r["policy"]["arm"] in ("a", "b") and r["policy"]["propensity"] == 0.5
    rec.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    lp = loaded.pipelines["home"]
    assert [type(r).__name__ for r in lp.rerankers_] == ["RulesReRanker", "Reverse"]
    assert lp.filter_reports_ == pipe.filter_reports_
    lp.policy_ = pipe.policy_ = make_stage("mix_policy", {"name": "static"})   # same answers, arm aside
    a = rec.recommend_raw("home", [{"user_id": u} for u in users])
    b = loaded.recommend_raw("home", [{"user_id": u} for u in users])
    assert [[i["item_id"] for i in r["items"]] for r in a] == [[i["item_id"] for i in r["items"]] for r in b]
    assert plain.pipelines["home"].filter_reports_ == []
