"""The fair-exposure re-ranker: FA*IR against the paper's Table 2 and the authors' worked example,
the vectorised merge against the reference loop, amortised exposure on known answers."""

import numpy as np
import pandas as pd
import pytest

from shoprec.data.dataset import ShopData
from shoprec.evaluation.exposure import exposure_audit, small_groups
from shoprec.exceptions import ConfigError
from shoprec.scenarios.config import load_scenario
from shoprec.scenarios.rerank.fairness import (FairExposureReRanker, fa_ir_merge, fail_probability, fair_mtable,
                                               mtable)
from shoprec.scenarios.stages import Ranked, make_stage
from shoprec.testing import tiny_pipeline, tiny_shop

#: Zehlike et al. (CIKM 2017), Table 2: m_{α=0.1, p}(k) for k = 1..12
TABLE_2 = {
    0.1: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    0.2: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
    0.3: [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2],
    0.4: [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3],
    0.5: [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4],
    0.6: [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
    0.7: [0, 1, 1, 2, 2, 3, 3, 4, 5, 5, 6, 6],
}


@pytest.mark.parametrize("p", sorted(TABLE_2))
def test_mtable_is_the_papers_table_2(p):
    assert mtable(12, p, 0.1).tolist() == TABLE_2[p]


def test_adjusted_mtable_is_the_authors_worked_example():
    # fairsearchcore's README: k = 20, p = 0.25, alpha = 0.1
    assert list(fair_mtable(20, 0.25, 0.1, adjust=False)) == [0] * 8 + [1] * 6 + [2] * 5 + [3]
    assert list(fair_mtable(20, 0.25, 0.1)) == [0] * 8 + [1] * 7 + [2] * 5


def test_fail_probability_is_exact():
    rng = np.random.default_rng(0)
    for table in (mtable(20, 0.25, 0.1), np.array(fair_mtable(20, 0.25, 0.1))):
        draws = (rng.random((200_000, 20)) < 0.25).cumsum(axis=1)
        simulated = (draws < table).any(axis=1).mean()
        assert fail_probability(table, 0.25) == pytest.approx(simulated, abs=0.004)
    assert fail_probability(np.zeros(10, int), 0.3) == pytest.approx(0.0, abs=1e-12)


def test_merge_reproduces_the_worked_example():
    # 14 non-protected items scored 20..7, then 6 protected scored 6..1: the README's re-ranking puts a
    # protected item at position 9 and the rest from 16 on
    rel = np.arange(20, 0, -1, dtype=float)[None]
    prot = np.zeros((1, 20), bool)
    prot[0, 14:] = True
    picks = fa_ir_merge(rel, prot, np.array(fair_mtable(20, 0.25, 0.1)), 20)[0]
    assert np.flatnonzero(prot[0][picks]).tolist() == [8, 15, 16, 17, 18, 19]


def _reference_fair_top_k(k, rel, prot, table):
    """fairsearchcore.re_ranker.fair_top_k, on positions (the authors' loop)."""
    P = [i for i in np.argsort(-rel, kind="stable") if prot[i] and np.isfinite(rel[i])]
    N = [i for i in np.argsort(-rel, kind="stable") if not prot[i] and np.isfinite(rel[i])]
    out, count, ip, inn = [], 0, 0, 0
    for i in range(k):
        if ip >= len(P) and inn >= len(N):
            break
        take_p = inn >= len(N) or (ip < len(P) and (count < table[i] or rel[P[ip]] >= rel[N[inn]]))
        if take_p:
            out.append(P[ip])
            ip += 1
            count += 1
        else:
            out.append(N[inn])
            inn += 1
    return out + [-1] * (k - len(out))


def test_vectorised_merge_equals_the_reference_loop():
    rng = np.random.default_rng(3)
    rel = rng.random((200, 15)).round(1)                 # ties included
    rel[rng.random(rel.shape) < 0.15] = -np.inf          # empty slots
    prot = rng.random(rel.shape) < 0.3
    table = np.array(fair_mtable(10, 0.5, 0.1))
    got = fa_ir_merge(rel, prot, table, 10)
    for r in range(len(rel)):
        assert got[r].tolist() == _reference_fair_top_k(10, rel[r], prot[r], table), r


def _shop_with_sellers():
    data = tiny_shop()
    table = data.item_table.copy()
    # seller "big" has the 6 most bought items, the others one each
    pop = np.bincount(data.events["item_idx"], minlength=data.n_items)
    order = np.argsort(-pop, kind="stable")
    seller = np.empty(data.n_items, object)
    seller[order[:6]] = "big"
    for j, i in enumerate(order[6:]):
        seller[i] = f"s{j % 6}"
    table["seller"] = seller
    return ShopData(data.events, data.users, data.items, item_table=table)


def _fitted(data, **params):
    pipe = tiny_pipeline(data)
    stage = make_stage("reranker", {"name": "fair_exposure", "params": params})
    return stage.fit(pipe.data_, pipe.env_)


def test_exposure_demotes_the_big_seller_known_answer():
    data = _shop_with_sellers()
    stage = _fitted(data, group="seller", strength=10.0)
    big = stage.names_.index("big")
    # a pool of 4 items: the two best of the big seller, then two of small sellers
    items = [np.flatnonzero(stage.group_ == big)[:2].tolist() + np.flatnonzero(stage.group_ != big)[:2].tolist()]
    ranked = Ranked(np.array(items, np.int32), np.array([[4, 3, 2, 1]], np.float32), np.ones((1, 4), np.int64))
    out = stage.rerank(ranked, None, 4)
    assert out.item_idx[0].tolist() == [items[0][2], items[0][3], items[0][0], items[0][1]]
    weak = _fitted(data, group="seller", strength=0.0)
    assert weak.rerank(ranked, None, 4).item_idx[0].tolist() == items[0]


def test_amortized_exposure_evens_out_across_requests():
    data = _shop_with_sellers()
    # every request has the same pool: 3 items of seller big, 3 of small sellers, big ones first
    stage = _fitted(data, group="seller", strength=0.5, amortize=True, chunk=1, half_life=50.0)
    big = stage.names_.index("big")
    pool = np.flatnonzero(stage.group_ == big)[:3].tolist() + np.flatnonzero(stage.group_ != big)[:3].tolist()
    n = 200
    ranked = Ranked(np.tile(np.array(pool, np.int32), (n, 1)), np.tile(np.linspace(1, 0.8, 6, dtype=np.float32), (n, 1)),
                    np.ones((n, 6), np.int64))
    static = _fitted(data, group="seller", strength=0.5).rerank(ranked, None, 2)
    amort = stage.rerank(ranked, None, 2)
    g = stage.group_
    gini_static = exposure_audit(static.item_idx, g).gini
    gini_amort = exposure_audit(amort.item_idx, g).gini
    assert gini_amort < gini_static
    assert len(np.unique(amort.item_idx)) > len(np.unique(static.item_idx))


def test_fair_method_puts_protected_items_in_every_prefix():
    data = _shop_with_sellers()
    stage = _fitted(data, group="seller", method="fair", min_proportion=0.5, alpha=0.1)
    assert not stage.small_[stage.names_.index("big")]
    big = stage.names_.index("big")
    pool = np.flatnonzero(stage.group_ == big)[:6].tolist() + np.flatnonzero(stage.group_ != big)[:6].tolist()
    ranked = Ranked(np.array([pool], np.int32), np.linspace(1, 0, 12, dtype=np.float32)[None], np.ones((1, 12), np.int64))
    out = stage.rerank(ranked, None, 10).item_idx[0]
    prot = stage.small_[stage.group_[out]]
    table = np.array(fair_mtable(10, 0.5, 0.1))
    assert (np.cumsum(prot) >= table).all() and prot.sum() >= table[-1] >= 1


def test_groups_missing_from_the_catalogue_are_a_clear_error():
    with pytest.raises(ConfigError, match="no such column.*item columns: category"):
        _fitted(tiny_shop(), group="brand")
    with pytest.raises(ConfigError, match="protected groups not in column"):
        _fitted(_shop_with_sellers(), group="seller", method="fair", protected=["nobody"])


def test_small_groups_by_volume_and_age():
    events = pd.DataFrame({"user_id": ["u1", "u2", "u3", "u1", "u4"], "item_id": ["a", "a", "a", "b", "c"],
                           "behaviour": 4, "timestamp": [0.0, 1.0, 2.0, 3.0, 400 * 86400.0]})
    data = ShopData.from_frame(events)
    codes = np.array([0, 1, 2])           # a, b, c each its own group
    small, volume = small_groups(data, codes, 3, big_share=0.5, new_days=30)
    assert volume.tolist() == pytest.approx([3 * volume[1], volume[1], volume[1]])
    assert small.tolist() == [False, True, True]          # c is both small and new


def test_scenario_section_adds_the_stage_before_diversity():
    import tomllib

    cfg = load_scenario("home").model_copy(update={})
    raw = cfg.model_dump()
    raw["fairness"] = {"method": "exposure", "group": "category", "strength": 0.5}
    raw["diversity"] = {"method": "mmr"}
    from shoprec.scenarios.config import ScenarioConfig
    cfg = ScenarioConfig.model_validate(raw)
    pipe = tiny_pipeline(None)
    pipe.config = cfg
    pipe._build_stages()
    names = [s.name for s in pipe.rerankers_]
    assert names[-2:] == ["fair_exposure", "mmr"]
    assert isinstance(pipe.rerankers_[-2], FairExposureReRanker)
    assert tomllib  # the section is what a scenario file writes as [fairness]
