"""Scenarios: configs, request context, rules, fusion, fallback, reasons — on tiny shops with known answers."""

import numpy as np
import pandas as pd
import pytest

from shoprec.data import Behaviour, Ragged, ShopData
from shoprec.exceptions import ConfigError, RequestError
from shoprec.scenarios import (SCENARIO_NAMES, Recommender, RequestContext, ScenarioPipeline, default_scenarios,
                               load_scenario, scenario_from_dict)
from shoprec.scenarios.fusion.pairs import normalise_scores as _normalise, top_pairs as _top_pairs
from shoprec.strategies.base import Queries
from shoprec.testing import tiny_shop


# ----------------------------------------------------------------------------- fixtures
def basket_shop() -> ShopData:
    """Baskets: candle holder + tealights (x8), candle holder + matches (x3), mug + spoon (x6).
    'candle holder red' is a near-duplicate of 'candle holder white' (bought with it twice).
    Prices: holder 10, tealights 2, matches 1, mug 8, spoon 3, big lamp 100 (bought with holders)."""
    rows = []
    t = 1_600_000_000
    baskets = ([["holder_w", "tealights"]] * 8 + [["holder_w", "matches"]] * 3 + [["mug", "spoon"]] * 6
               + [["holder_w", "holder_r"]] * 2 + [["holder_w", "lamp"]] * 4)
    for b, items in enumerate(baskets):
        t += 3600
        for it in items:
            rows.append((f"u{b % 9}", it, int(Behaviour.PURCHASE), t, f"b{b}"))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp", "session_id"])
    items = pd.DataFrame({
        "title": ["candle holder white", "tealights pack", "matches box", "coffee mug", "tea spoon",
                  "candle holder red", "big floor lamp", "garden gnome"],
        "category": ["candles", "candles", "candles", "kitchen", "kitchen", "candles", "lighting", "garden"],
        "price": [10.0, 2.0, 1.0, 8.0, 3.0, 10.0, 100.0, 5.0],
        "in_stock": [True, True, True, True, True, True, True, False],
    }, index=["holder_w", "tealights", "matches", "mug", "spoon", "holder_r", "lamp", "gnome"])
    return ShopData.from_frame(frame, name="baskets", item_table=items)


def cart_config(**rules):
    return scenario_from_dict({
        "scenario": {"name": "cart", "k": 4},
        "strategies": [{"name": "fbt", "params": {"measure": "confidence"}},
                       {"name": "popularity", "weight": 0.01}],
        "rules": {"complements_only": True, "max_similarity_to_basket": 0.4, **rules},
        "fallback": [{"name": "popularity"}],
    })


def ids(data, idx):
    return [data.items.to_external(np.array([i]))[0] if i >= 0 else None for i in idx]


# ----------------------------------------------------------------------------- configs
def test_every_shipped_scenario_loads():
    cfgs = default_scenarios()
    assert set(cfgs) == set(SCENARIO_NAMES)
    assert cfgs["cart"].rules.complements_only and cfgs["cart"].rules.exclude_basket
    assert cfgs["checkout"].rules.max_price_ratio is not None
    assert cfgs["post_purchase"].rules.repurchase
    assert cfgs["search"].rules.require_query_match


def test_scenario_file_errors_name_file_and_field(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[scenario]\nname = "x"\nk = 5\nsurprise = 1\n\n[[strategies]]\nname = "popularity"\n')
    with pytest.raises(ConfigError, match=r"(?s)bad.toml.*surprise: unknown field"):
        load_scenario(p)
    p.write_text('[scenario]\nname = "x"\n[[strategies]]\nname = "nope"\n')
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        load_scenario(p)
    p.write_text('[scenario]\nname = "x"\n[[strategies]]\nname = "item_knn"\nparams = { neighbors = 3 }\n')
    with pytest.raises(ConfigError, match="neighbors"):
        load_scenario(p)
    p.write_text('[scenario\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"(?s)bad.toml: not valid TOML.*line 1"):
        load_scenario(p)
    with pytest.raises(ConfigError, match="no such scenario file"):
        load_scenario(tmp_path / "missing.toml")
    p.write_text('[scenario]\nname = "x"\n[[strategies]]\nname = "popularity"\n[[strategies]]\nname = "popularity"\n')
    with pytest.raises(ConfigError, match="unique"):
        load_scenario(p)


def test_request_context_rejects_unknown_fields():
    with pytest.raises(RequestError, match=r"(?s)unknown field 'basekt'.*known fields: user_id"):
        RequestContext.parse({"basekt": ["a"]})
    with pytest.raises(RequestError, match=r"filters.colour"):
        RequestContext.parse({"filters": {"colour": "red"}})
    with pytest.raises(RequestError, match="k"):
        RequestContext.parse({"k": 0})
    ctx = RequestContext.parse({"session": ["a", {"item_id": "b", "behaviour": "add_to_cart"}],
                                "filters": {"category": "candles"}})
    assert ctx.filters.category == ["candles"]


# ----------------------------------------------------------------------------- rules
def test_cart_rules_complements_not_basket_not_near_duplicates_not_out_of_stock():
    data = basket_shop()
    pipe = ScenarioPipeline(cart_config()).fit(data)
    holder = data.items.to_index(["holder_w"])
    q = Queries(np.array([-1], np.int32), Ragged.empty(1), np.array([-1], np.int32), Ragged.from_lists([holder]))
    rec = pipe.recommend(q)
    got = ids(data, rec.item_idx[0])
    assert got[:3] == ["tealights", "lamp", "matches"]          # by confidence: 8/17, 4/17, 3/17
    assert "holder_w" not in got                                # never the basket
    assert "holder_r" not in got                                # near-duplicate of a basket item
    assert "gnome" not in got                                   # out of stock
    assert None not in got                                      # fallback fills K


def test_checkout_price_ratio_and_fallback_fill():
    data = basket_shop()
    pipe = ScenarioPipeline(cart_config(max_price_ratio=0.5)).fit(data)
    holder = data.items.to_index(["holder_w"])
    q = Queries(np.array([-1], np.int32), Ragged.empty(1), np.array([-1], np.int32), Ragged.from_lists([holder]))
    got = ids(data, pipe.recommend(q).item_idx[0])
    assert "lamp" not in got and "mug" not in got               # 100, 8 > 0.5 × 10
    assert got == ["tealights", "matches", "spoon", None]       # spoon from the fallback; nothing else allowed


def test_post_purchase_repurchase_timing():
    # u0 buys "coffee" every 10 days (consumable) and a "kettle" once (durable)
    rows, t, P = [], 1_600_000_000, int(Behaviour.PURCHASE)
    for d in range(0, 60, 10):
        rows.append(("u0", "coffee", P, t + d * 86400, f"s{d}"))
        rows.append((f"u{d + 1}", "coffee", P, t + d * 86400, f"x{d}"))
        rows.append((f"u{d + 1}", "coffee", P, t + (d + 10) * 86400, f"y{d}"))
    rows.append(("u0", "kettle", P, t + 50 * 86400, "s50"))
    rows.append(("u9", "kettle", P, t, "k9"))
    rows.append(("u9", "tea", P, t, "k9"))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp", "session_id"])
    data = ShopData.from_frame(frame)
    cfg = scenario_from_dict({"scenario": {"name": "pp", "k": 3}, "strategies": [{"name": "popularity"}],
                              "rules": {"exclude_history": "purchased", "repurchase": True, "exclude_basket": False}})
    pipe = ScenarioPipeline(cfg).fit(data)
    assert pipe.facts_.repurchase_days[data.items.to_index(["coffee"])[0]] == pytest.approx(10)
    u0 = data.users.to_index(["u0"])
    last = t + 50 * 86400.0   # u0's last coffee
    soon = Queries(u0, Ragged.empty(1), np.array([-1], np.int32), Ragged.empty(1),
                   context={"timestamp": np.array([last + 1 * 86400.0])})
    later = Queries(u0, Ragged.empty(1), np.array([-1], np.int32), Ragged.empty(1),
                    context={"timestamp": np.array([last + 9 * 86400.0])})
    got_soon = ids(data, pipe.recommend(soon).item_idx[0])
    got_later = ids(data, pipe.recommend(later).item_idx[0])
    assert "kettle" not in got_soon and "kettle" not in got_later   # durable: never re-offered
    assert "coffee" not in got_soon                                 # bought 1 day ago, interval 10 days
    assert "coffee" in got_later                                    # due again after ~8+ days


# ----------------------------------------------------------------------------- fusion
def test_normalise_and_top_pairs_known_answers():
    val = np.array([[4.0, 2.0, 1.0], [3.0, 3.0, -np.inf]], np.float32)
    valid = np.isfinite(val)
    np.testing.assert_allclose(_normalise(val, valid, "minmax"), [[1, 1 / 3, 0], [1, 1, 0]])
    np.testing.assert_allclose(_normalise(val, valid, "max"), [[1, .5, .25], [1, 1, 0]])
    row = np.array([0, 0, 0, 1, 1])
    item = np.array([5, 3, 7, 2, 9], np.int32)
    score = np.array([0.5, 0.9, 0.5, 0.1, 0.2], np.float32)
    idx, val, src = _top_pairs(row, item, score, np.arange(5, dtype=np.int64), 3, 2)
    np.testing.assert_array_equal(idx, [[3, 5], [9, 2], [-1, -1]])   # ties: lower item index first
    np.testing.assert_array_equal(src[:2], [[1, 0], [4, 3]])


def test_weighted_and_rrf_fusion_combine_strategies():
    data = tiny_shop()
    cfg = scenario_from_dict({"scenario": {"name": "home", "k": 5},
                              "strategies": [{"name": "item_knn"}, {"name": "popularity", "weight": 0.5}],
                              "rules": {"exclude_history": "all"}})
    pipe = ScenarioPipeline(cfg).fit(data)
    q = Queries.for_users(np.arange(10))
    single = pipe.recommend(q, method="item_knn")
    assert (single.sources[single.item_idx >= 0] & 1).all()
    for method in ("weighted", "rrf"):
        rec = pipe.recommend(q, method=method)
        assert (rec.item_idx >= 0).all()
        hist = pipe.models_[0].history(q).toarray() > 0
        assert not np.take_along_axis(hist, rec.item_idx, 1).any()
        # scores are sorted, sources name at least one strategy
        assert (np.diff(rec.scores, axis=1) <= 1e-6).all()
        assert (rec.sources > 0).all()
    # an item proposed by both strategies outranks one proposed by item_knn alone at the same rank
    rrf = pipe.recommend(q, method="rrf")
    both = (rrf.sources[:, 0] == 3)
    assert both.mean() > 0.5


def test_variants_share_candidates_and_equal_one_method_at_a_time():
    data = tiny_shop()
    cfg = scenario_from_dict({"scenario": {"name": "home", "k": 5},
                              "strategies": [{"name": "item_knn"}, {"name": "popularity", "weight": 0.5}],
                              "rules": {"exclude_history": "all"}, "diversity": {"method": "mmr", "pool": 8}})
    pipe = ScenarioPipeline(cfg).fit(data)
    pipe.block_cells = 7 * data.n_items          # several blocks
    q = Queries.for_users(np.arange(20))
    methods = ["item_knn", "popularity", "weighted", "rrf", None]
    many = pipe.recommend_variants(q, methods)
    for method in methods:
        one = pipe.recommend(q, method=method)
        np.testing.assert_array_equal(many[method].item_idx, one.item_idx)
        np.testing.assert_array_equal(many[method].scores, one.scores)
        np.testing.assert_array_equal(many[method].sources, one.sources)
    assert set(np.unique(many["popularity"].sources)) <= {0, 2, 4}   # its own bit (or a fallback's)


def test_ranker_trains_on_validation_slice_and_ranks(monkeypatch):
    monkeypatch.setattr(ScenarioPipeline, "block_cells", 30 * 16)   # validation requests in several blocks
    data = tiny_shop(n_users=120, n_items=30)
    cfg = scenario_from_dict({"scenario": {"name": "home", "k": 5},
                              "strategies": [{"name": "item_knn"}, {"name": "popularity"}],
                              "fusion": {"method": "ranker"},
                              "ranker": {"validation": "temporal", "validation_fraction": 0.3, "n_estimators": 20,
                                         "min_child_samples": 5, "max_queries": 100}})
    pipe = ScenarioPipeline(cfg).fit(data)
    assert pipe.ranker is not None and pipe.ranker.n_queries > 10
    assert "temporal" in pipe.ranker.validation
    rec = pipe.recommend(Queries.for_users(np.arange(20)))
    assert (rec.item_idx >= 0).all()
    imp = pipe.ranker.importance()
    assert abs(sum(imp.values()) - 1) < 1e-6
    assert {"sim_recent", "sim_history", "sim_basket"} <= set(imp)
    # the fusion methods are compared on validation requests the ranker did not train on
    held = pipe.validation_["held-out ndcg@10"]
    assert set(held) == {"weighted", "rrf", "ranker"} and all(0 <= v <= 1 for v in held.values())
    auto = ScenarioPipeline(cfg.with_overrides(fusion={"method": "auto"})).fit(data)
    assert auto.method_ == max(held, key=held.get)
    np.testing.assert_array_equal(auto.recommend(Queries.for_users(np.arange(20))).item_idx,
                                  pipe.recommend(Queries.for_users(np.arange(20)), method=auto.method_).item_idx)


def test_mmr_diversifies_categories():
    data = tiny_shop()
    base = {"scenario": {"name": "home", "k": 4}, "strategies": [{"name": "item_knn"}]}
    plain = ScenarioPipeline(scenario_from_dict(base)).fit(data)
    div = ScenarioPipeline(scenario_from_dict({**base, "diversity": {"method": "mmr", "trade_off": 0.3}})).fit(data)
    q = Queries.for_users(np.arange(20))
    cat = plain.facts_.category

    def n_cats(rec):
        return np.mean([len(set(cat[r[r >= 0]])) for r in rec.item_idx])

    assert n_cats(div.recommend(q)) > n_cats(plain.recommend(q))


def test_filters_category_price_exclude():
    data = basket_shop()
    rec = Recommender([cart_config()]).fit(data)
    r = rec.recommend("cart", {"basket": ["holder_w"], "filters": {"category": "candles", "exclude_ids": ["matches"]}})
    assert r.item_ids == ["tealights"]   # candles: holder_w in the basket, matches excluded, holder_r a near-duplicate
    r = rec.recommend("cart", basket=["holder_w"], filters={"price_max": 5})
    assert "lamp" not in r.item_ids and "mug" not in r.item_ids
    with pytest.raises(RequestError, match="unknown categories"):
        rec.recommend("cart", basket=["holder_w"], filters={"category": "shoes"})
    with pytest.raises(RequestError, match="unknown scenario"):
        rec.recommend("nope", {})


# ----------------------------------------------------------------------------- reasons / API
def test_every_item_has_a_readable_reason_with_its_anchor():
    data = basket_shop()
    rec = Recommender([cart_config()]).fit(data)
    resp = rec.recommend("cart", {"basket": ["holder_w", "unknown-sku"]})
    assert resp.items[0].item_id == "tealights"
    assert resp.items[0].reason == "frequently bought together with candle holder white"
    assert resp.items[0].reasons[0].anchor_item_id == "holder_w"
    assert all(it.reasons and it.reason for it in resp.items)
    assert any("unknown-sku" in n for n in resp.notes)


def test_strategies_the_data_cannot_serve_are_skipped_with_a_note():
    # no item texts, no purchases: content and fbt cannot be fitted; the scenario still answers
    data = tiny_shop()
    ev = data.events.copy()
    ev["behaviour"] = int(Behaviour.VIEW)
    bare = ShopData(ev, data.users, data.items, data.sessions, name="bare")
    pipe = ScenarioPipeline(load_scenario("cart")).fit(bare)
    assert [m is None for m in pipe.models_] == [True, False, True]
    assert any("fbt" in n and "no events of behaviours" in n for n in pipe.notes_)
    assert any("content_tfidf" in n and "no item table" in n for n in pipe.notes_)
    rec = pipe.recommend(Queries(np.array([-1], np.int32), Ragged.empty(1), np.array([-1], np.int32),
                                 Ragged.from_lists([[1, 2]])))
    assert (rec.item_idx >= 0).all() and not np.isin(rec.item_idx, [1, 2]).any()
    # no order at all (LightGCN-style files): the sequence models are skipped, the rest fit
    ev["timestamp"] = -1
    ev["session_idx"] = -1
    unordered = ShopData(ev, data.users, data.items, name="unordered")
    cfg = scenario_from_dict({"scenario": {"name": "home"},
                              "strategies": [{"name": "sequential"}, {"name": "item_knn"}]})
    pipe = ScenarioPipeline(cfg).fit(unordered)
    assert pipe.models_[0] is None and pipe.models_[1] is not None
    assert any("needs ordered events" in n for n in pipe.notes_)


def test_recommender_runs_every_default_scenario_on_a_tiny_shop():
    data = tiny_shop()
    cfgs = []
    for name, cfg in default_scenarios().items():
        # keep the neural model tiny here; its own tests cover it
        strategies = [s.model_copy(update={"params": {**s.params, "epochs": 2, "hidden": 8}})
                      if s.name == "sasrec" else s for s in cfg.strategies]
        cfgs.append(cfg.model_copy(update={"strategies": strategies}))
    rec = Recommender(cfgs).fit(data)
    requests = {
        "home": {"user_id": "u1"}, "first_visit": {"country": "DE"},
        "item_page": {"current_item": "i3", "session": ["i1", "i3"]}, "cart": {"basket": ["i2"]},
        "checkout": {"basket": ["i2", "i4"]}, "post_purchase": {"user_id": "u2"},
        "search": {"query": "item", "user_id": "u1"},
    }
    for name, ctx in requests.items():
        resp = rec.recommend(name, ctx)
        k = rec.configs[name].k
        assert len(resp.items) == min(k, data.n_items - len(ctx.get("basket", [])) - ("current_item" in ctx)), name
        assert len(set(resp.item_ids)) == len(resp.item_ids)
        assert all(it.reason for it in resp.items), name
        assert not set(ctx.get("basket", [])) & set(resp.item_ids)
