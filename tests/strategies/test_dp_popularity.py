"""Differentially private popularity counts: known answers on tiny shops (the bound, the noise scale,
the exact ranking at a huge ε), reproducibility, validation, and the missing extra."""

from __future__ import annotations

import logging
import math
import sys

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from shoprec.data import Behaviour, IdMap, Ragged, ShopData
from shoprec.exceptions import ConfigError
from shoprec.strategies import make_strategy
from shoprec.strategies.base import LiveEvents
from shoprec.strategies.popularity import PopularityConfig, PopularityStrategy, bounded_counts
from shoprec.testing import check_strategy, tiny_shop

T0 = 1_700_000_000
DAY = 86_400.0


@pytest.fixture
def opendp():
    return pytest.importorskip("opendp", reason="DP counts need the 'privacy' extra (OpenDP)")


def shop(rows, items=None, users=None) -> ShopData:
    """``rows`` = (user_id, item_id, Behaviour, timestamp)."""
    frame = pd.DataFrame([(u, i, int(b), t) for u, i, b, t in rows],
                         columns=["user_id", "item_id", "behaviour", "timestamp"])
    return ShopData.from_frame(frame, users=None if users is None else IdMap(users),
                               items=None if items is None else IdMap(items))


def counts_shop(n_items: int = 500, users_per_item: int = 20) -> ShopData:
    """Item ``i`` bought by ``users_per_item`` users of its own, once each: every count is exactly
    ``users_per_item`` (5 × that in trending weight at age 0), far from the clip at 0."""
    rows = [(f"u{i}-{j}", f"i{i}", Behaviour.PURCHASE, T0) for i in range(n_items) for j in range(users_per_item)]
    return shop(rows)


def ranking(s: PopularityStrategy) -> np.ndarray:
    return np.lexsort((np.arange(len(s.scores_)), -s.scores_))


def noise(s: PopularityStrategy, exact: np.ndarray) -> np.ndarray:
    return s.scores_.astype(np.float64) / s.scale_ - exact


# ------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("eps", [0.0, -1.0, math.inf, math.nan])
def test_epsilon_must_be_positive_and_finite(eps):
    with pytest.raises(ConfigError, match="dp_epsilon"):
        make_strategy("popularity", dp_epsilon=eps)
    with pytest.raises(ValidationError):
        PopularityConfig(dp_epsilon=eps)


def test_mechanism_and_delta_must_agree():
    with pytest.raises(ConfigError, match="needs dp_delta"):
        make_strategy("popularity", dp_epsilon=1.0, dp_mechanism="gaussian")
    with pytest.raises(ConfigError, match="dp_delta is for"):
        make_strategy("popularity", dp_epsilon=1.0, dp_delta=1e-6)
    for bad in ({"dp_delta": 0.0}, {"dp_delta": 1.0}, {"dp_max_items": 0}):
        with pytest.raises(ConfigError):
            make_strategy("popularity", dp_epsilon=1.0, dp_mechanism="gaussian", **{"dp_delta": 1e-6, **bad})
    make_strategy("popularity", dp_epsilon=1.0, dp_mechanism="gaussian", dp_delta=1e-6)  # valid


def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "opendp", None)  # import opendp → ImportError
    monkeypatch.setitem(sys.modules, "opendp.prelude", None)
    s = make_strategy("popularity", dp_epsilon=1.0, dp_seed=0)  # the config needs no library
    with pytest.raises(ConfigError, match=r"privacy.*shoprec\[privacy\]"):
        s.fit(tiny_shop())
    make_strategy("popularity").fit(tiny_shop())  # DP off needs nothing


# ------------------------------------------------------------------------- known answers
def test_huge_epsilon_gives_exactly_the_non_private_ranking(opendp):
    # item i has i + 1 distinct users (no ties); nobody exceeds the bound
    rows = [(f"u{j}", f"i{i}", Behaviour.VIEW, T0 + j) for i in range(8) for j in range(i + 1)]
    data = shop(rows)
    exact = make_strategy("popularity").fit(data)
    dp = make_strategy("popularity", dp_epsilon=1e9, dp_max_items=8, dp_seed=3).fit(data)
    np.testing.assert_array_equal(ranking(dp), ranking(exact))
    assert dp.dp_report_["dropped_events"] == 0
    np.testing.assert_allclose(dp.scores_, exact.scores_, rtol=1e-5)


def test_huge_epsilon_trending_matches_the_exact_trending_ranking(opendp):
    # one event per (user, item): no cap binds; the reference is the newest event, as without DP
    rng = np.random.default_rng(0)
    rows = [(f"u{j}", f"i{i}", Behaviour.PURCHASE, T0 + int(rng.integers(0, 30 * DAY)))
            for i in range(10) for j in range(2 * i + 1)]
    data = shop(rows)
    ref = float(data.events["timestamp"].max())
    exact = make_strategy("popularity", mode="trending", half_life_days=5.0).fit(data)
    dp = make_strategy("popularity", mode="trending", half_life_days=5.0, dp_epsilon=1e9, dp_max_items=10,
                       dp_seed=1, dp_reference_time=ref).fit(data)
    np.testing.assert_array_equal(ranking(dp), ranking(exact))
    assert dp.dp_report_["capped_items"] == 0 and dp.dp_report_["dropped_events"] == 0


def test_the_bound_keeps_each_users_strongest_items_and_counts_the_rest():
    rows = [("a", "i0", Behaviour.PURCHASE, T0), ("a", "i1", Behaviour.ADD_TO_CART, T0),
            ("a", "i2", Behaviour.VIEW, T0), ("a", "i3", Behaviour.VIEW, T0), ("a", "i3", Behaviour.VIEW, T0 + 1),
            ("b", "i2", Behaviour.VIEW, T0), ("c", "i3", Behaviour.SEARCH, T0)]  # a search weighs 0
    data = shop(rows)
    w = data.behaviour_weights().astype(np.float64)
    counts, rep = bounded_counts(data, w, cap=1.0, max_items=2, per_user=True)
    # a: totals i0 5, i1 3, i3 2, i2 1 → keeps i0, i1; drops i3 (2 events) and i2 (1 event)
    np.testing.assert_array_equal(counts, [1, 1, 1, 0])
    assert rep == {"events": 6, "users": 2, "dropped_events": 3, "dropped_items": 2, "capped_items": 0,
                   "users_over_bound": 1}
    # weighted (trending): a user's weight on one item is capped at the cap
    counts, rep = bounded_counts(data, w, cap=4.0, max_items=3, per_user=False)
    np.testing.assert_array_equal(counts, [4, 3, 1, 2])  # i0 5 → 4; a keeps i0, i1, i3; i2 from b only
    assert rep["capped_items"] == 1 and rep["dropped_events"] == 1 and rep["dropped_items"] == 1


def test_the_bound_in_the_strategy_report(opendp):
    rows = [("a", f"i{i}", Behaviour.VIEW, T0 + i) for i in range(6)] + [("b", "i0", Behaviour.VIEW, T0)]
    s = make_strategy("popularity", dp_epsilon=1.0, dp_max_items=4, dp_seed=0).fit(shop(rows))
    assert s.dp_report_["dropped_events"] == 2 and s.dp_report_["users_over_bound"] == 1
    assert s.dp_report_["sensitivity_l1"] == 4.0 and s.dp_report_["sensitivity_l2"] == 2.0


def test_equal_items_are_ordered_by_external_ids_not_by_indices():
    """Which of a user's equally strong items the bound keeps reads only that user's ids: permuting the
    internal item indices (which depend on everyone's data) changes nothing."""
    rows = [("a", f"i{i}", Behaviour.VIEW, T0) for i in range(6)]
    names = [f"i{i}" for i in range(6)]
    kept = []
    for items in (names, names[::-1], names[3:] + names[:3]):
        data = shop(rows, items=items)
        counts, _ = bounded_counts(data, data.behaviour_weights().astype(np.float64), cap=1.0, max_items=2,
                                   per_user=True, seed=7)
        kept.append(sorted(np.asarray(items)[counts > 0]))
    assert kept[0] == kept[1] == kept[2] and len(kept[0]) == 2
    other, _ = bounded_counts(data, data.behaviour_weights().astype(np.float64), cap=1.0, max_items=2,
                              per_user=True, seed=8)
    assert other.sum() == 2  # another seed: maybe other items, still two


# ------------------------------------------------------------------------------ the noise
def test_laplace_scale_is_sensitivity_over_epsilon_and_the_noise_has_that_spread(opendp):
    data = counts_shop()
    exact = np.full(data.n_items, 20.0)
    draws = []
    for seed in range(20):
        s = make_strategy("popularity", dp_epsilon=0.5, dp_max_items=1, dp_seed=seed).fit(data)
        assert s.dp_report_["noise_scale"] == pytest.approx(1 / 0.5, rel=1e-9)  # Δ₁ = m·1 = 1
        draws.append(noise(s, exact))
    x = np.concatenate(draws)  # 10,000 draws of Laplace(b = 2)
    assert abs(x.mean()) < 0.1
    assert x.std() == pytest.approx(math.sqrt(2) * 2.0, rel=0.04)
    assert np.mean(np.abs(x)) == pytest.approx(2.0, rel=0.04)  # E|X| = b


def test_trending_sensitivity_is_bound_times_largest_weight(opendp):
    s = make_strategy("popularity", mode="trending", dp_epsilon=2.0, dp_max_items=3, dp_seed=0,
                      dp_reference_time=float(T0)).fit(counts_shop(50, 5))
    assert s.dp_report_["contribution_cap"] == 5.0  # a purchase
    assert s.dp_report_["noise_scale"] == pytest.approx(3 * 5.0 / 2.0, rel=1e-9)
    assert s.dp_report_["sensitivity_l2"] == pytest.approx(math.sqrt(3) * 5.0)


def test_gaussian_sigma_is_calibrated_by_opendp_and_the_noise_has_it(opendp):
    data = counts_shop(n_items=1000, users_per_item=50)
    exact = np.full(data.n_items, 50.0)
    draws, sigma = [], None
    for seed in range(8):  # 8,000 draws
        s = make_strategy("popularity", dp_epsilon=1.0, dp_mechanism="gaussian", dp_delta=1e-6, dp_max_items=4,
                          dp_seed=seed).fit(data)
        sigma = s.dp_report_["noise_scale"]
        draws.append(noise(s, exact))
    # Δ₂ = √4 = 2: tighter than the classic σ = Δ₂·√(2 ln(1.25/δ))/ε = 10.6; σ scales with Δ₂, and
    # OpenDP's exact Gaussian profile at ε = 1, δ = 1e-6 gives σ = 4.5309 per unit of Δ₂
    assert sigma < 2 * math.sqrt(2 * math.log(1.25 / 1e-6))
    assert sigma == pytest.approx(2 * 4.5309, rel=1e-3)
    assert np.concatenate(draws).std() == pytest.approx(sigma, rel=0.04)


def test_unseeded_release_uses_opendps_sampler_with_the_same_scale(opendp):
    data = counts_shop()
    exact = np.full(data.n_items, 20.0)
    fits = [make_strategy("popularity", dp_epsilon=1.0, dp_max_items=1).fit(data) for _ in range(6)]
    assert {f.dp_report_["sampler"] for f in fits} == {"opendp"}
    x = np.concatenate([noise(f, exact) for f in fits])  # 3,000 draws of Laplace(1)
    assert x.std() == pytest.approx(math.sqrt(2), rel=0.08)
    assert not np.array_equal(fits[0].scores_, fits[1].scores_)


def test_negative_noisy_counts_are_clipped_to_zero(opendp):
    data = counts_shop(n_items=300, users_per_item=1)
    s = make_strategy("popularity", dp_epsilon=0.1, dp_max_items=1, dp_seed=0).fit(data)
    assert (s.scores_ >= 0).all() and (s.scores_ == 0).mean() > 0.3  # count 1, noise of scale 10


# ------------------------------------------------------------------------ reproducibility
def test_same_seed_same_release_other_seed_other_release(opendp):
    data = tiny_shop()
    params = {"dp_epsilon": 1.0, "dp_max_items": 5, "dp_seed": 11}
    a = make_strategy("popularity", **params).fit(data)
    b = make_strategy("popularity", **params).fit(data)
    np.testing.assert_array_equal(a.scores_, b.scores_)
    c = make_strategy("popularity", **{**params, "dp_seed": 12}).fit(data)
    assert not np.array_equal(a.scores_, c.scores_)


@pytest.mark.parametrize("params", [
    {"dp_epsilon": 1.0, "dp_seed": 1},
    {"mode": "category", "dp_epsilon": 2.0, "dp_max_items": 3, "dp_seed": 2},
    {"mode": "trending", "half_life_days": 1.0, "dp_epsilon": 1.0, "dp_mechanism": "gaussian", "dp_delta": 1e-6,
     "dp_seed": 3, "dp_reference_time": 1_600_500_000.0},
], ids=["global", "category", "trending-gaussian"])
def test_seeded_dp_configs_pass_the_conformance_suite(opendp, params, tmp_path):
    check_strategy(lambda: make_strategy("popularity", **params), tiny_shop(), tmp_path)


def test_report_survives_save_and_load(opendp, tmp_path):
    s = make_strategy("popularity", dp_epsilon=1.0, dp_seed=1).fit(tiny_shop())
    loaded = PopularityStrategy.load(s.save(tmp_path / "p"))
    assert loaded.dp_report_ == s.dp_report_
    assert make_strategy("popularity").fit(tiny_shop()).dp_report_ is None


# ----------------------------------------------------------------------------- live updates
def test_live_updates_are_off_under_dp(opendp):
    data = tiny_shop()
    s = make_strategy("popularity", mode="trending", dp_epsilon=1.0, dp_seed=0,
                      dp_reference_time=float(data.events["timestamp"].max())).fit(data)
    before = s.scores_.copy()
    events = LiveEvents(np.array([0, 1], np.int32), np.array([3, 3], np.int32),
                        np.full(2, int(Behaviour.PURCHASE), np.int8), np.full(2, s.ref_time_ + 60.0),
                        Ragged.empty(2))
    assert s.observe(events) is False
    np.testing.assert_array_equal(s.scores_, before)
    plain = make_strategy("popularity", mode="trending").fit(data)
    assert plain.observe(events) is True  # without DP the counts move


def test_trending_reference_defaults_to_now_and_warns_on_stale_data(opendp, caplog):
    with caplog.at_level(logging.WARNING, logger="shoprec.strategies.popularity"):
        s = make_strategy("popularity", mode="trending", dp_epsilon=1.0, dp_seed=0).fit(tiny_shop())
    assert s.dp_report_["reference_time"] > 1.7e9  # the time of the fit, not the data's 2020
    assert "dp_reference_time" in caplog.text
