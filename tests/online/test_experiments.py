"""A/B building blocks with known answers: sticky keyed assignment, mSPRT by hand, CUPED."""

import numpy as np
import pytest

from shoprec.online.experiments import MSPRT, assign, cuped, difference

KEY = "a-secret-key-of-the-shop-0123"


def test_assignment_is_sticky_keyed_and_follows_the_shares():
    ids = [f"visitor-{i}" for i in range(20_000)]
    a = assign(ids, "home-v2", [0.2, 0.8], KEY)
    np.testing.assert_array_equal(a, assign(ids, "home-v2", [0.2, 0.8], KEY))     # sticky
    share = (a == 0).mean()
    assert abs(share - 0.2) < 4 * np.sqrt(0.2 * 0.8 / len(ids))
    other = assign(ids, "home-v2", [0.2, 0.8], KEY + "x")
    assert 0.6 < (other == a).mean() < 0.75            # another key: independent (.2² + .8² = .68)
    third = assign(ids, "cart-v2", [1, 1], KEY)       # another experiment: independent of this one
    assert abs((third[a == 0] == 0).mean() - 0.5) < 0.03
    with pytest.raises(ValueError, match="two or more positive"):
        assign(ids[:3], "x", [1.0], KEY)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        assign(ids[:3], "x", [1, 1], "short")


def test_msprt_by_hand():
    t = MSPRT(tau2=1.0)
    # V = 1, τ² = 1, Δ = 2: log Λ = ½ log ½ + 1·4 / (2·1·2) = 1 − .3466 → p = e^−.6534
    assert t.look(2.0, 1.0) == pytest.approx(np.exp(-(1 - 0.5 * np.log(2))))
    # the p-value never rises again
    assert t.look(0.0, 1.0) == pytest.approx(np.exp(-(1 - 0.5 * np.log(2))))
    assert not t.significant
    assert MSPRT(tau2=1.0).look(0.0, 1.0) == 1.0
    # the interval's ends are where the p-value is α
    t = MSPRT(tau2=0.5, alpha=0.05)
    lo, hi = t.interval(1.0, 0.1)
    assert MSPRT(tau2=0.5).look(1.0 - lo, 0.1) == pytest.approx(0.05, rel=1e-6)
    assert MSPRT(tau2=0.5).look(hi - 1.0, 0.1) == pytest.approx(0.05, rel=1e-6)


def test_cuped_keeps_the_difference_and_shrinks_its_variance():
    rng = np.random.default_rng(0)
    n = 20_000
    x = rng.normal(size=n)
    variant = rng.integers(0, 2, n)
    y = x + 0.5 * rng.normal(size=n) + 0.1 * variant
    adj, theta = cuped(y, x)
    assert theta == pytest.approx(1.0, abs=0.02)
    d0, v0 = difference(y, variant)
    d1, v1 = difference(adj, variant)
    assert d1 == pytest.approx(0.1, abs=0.02)
    # var(y) = 1.25, var(adj) = .25: 80 % less variance
    assert 1 - v1 / v0 == pytest.approx(0.8, abs=0.02)
    assert cuped(y, np.ones(n))[1] == 0.0
