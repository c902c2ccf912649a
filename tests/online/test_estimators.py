"""Off-policy estimators on tiny logs whose answers are worked out by hand in the comments."""

import numpy as np
import pandas as pd
import pytest

from shoprec.online.estimators import (DM, DR, IIPS, IPS, RIPS, SIPS, SNIPS, LoggedFeedback, SwitchDR,
                                       bootstrap_interval, estimator)
from shoprec.online.logs import feedback_from_frame
from shoprec.online.reward_model import RewardModel
from shoprec.online.thompson import ranking_distribution

# three rows, two actions
#   row  action  reward  pscore  target        w = target[a] / pscore   q_hat
#   0    0       1       .5      [1, 0]        2                         [.5, .2]
#   1    1       .5      .5      [.5, .5]      1                         [.4, .3]
#   2    0       1       .5      [.25, .75]    .5                        [.6, .1]
LOG = LoggedFeedback(action=[0, 1, 0], reward=[1, 0.5, 1], pscore=[0.5, 0.5, 0.5], n_actions=2)
TARGET = np.array([[1, 0], [0.5, 0.5], [0.25, 0.75]])
Q = np.array([[0.5, 0.2], [0.4, 0.3], [0.6, 0.1]])


def test_ips_and_snips_by_hand():
    # IPS = (2·1 + 1·.5 + .5·1) / 3 = 1.0 ; SNIPS = 3 / (2 + 1 + .5) = 6/7
    assert IPS().estimate(LOG, TARGET).value == pytest.approx(1.0)
    assert SNIPS().estimate(LOG, TARGET).value == pytest.approx(6 / 7)
    # clipped at 1.5: (1.5 + .5 + .5) / 3
    assert IPS(clip=1.5).estimate(LOG, TARGET).value == pytest.approx(2.5 / 3)


def test_model_based_estimators_by_hand():
    # DM per row: .5 ; .5·.4 + .5·.3 = .35 ; .25·.6 + .75·.1 = .225  → 1.075 / 3
    assert DM().estimate(LOG, TARGET, Q).value == pytest.approx(1.075 / 3)
    # DR corrections w·(r − q̂[a]): 2·(1 − .5) = 1 ; 1·(.5 − .3) = .2 ; .5·(1 − .6) = .2 → (1.075 + 1.4) / 3
    assert DR().estimate(LOG, TARGET, Q).value == pytest.approx(2.475 / 3)
    # Switch-DR with tau 1.5 drops row 0's correction (w = 2): (1.075 + .4) / 3
    assert SwitchDR(tau=1.5).estimate(LOG, TARGET, Q).value == pytest.approx(1.475 / 3)
    # a huge tau is DR
    assert SwitchDR(tau=1e9).estimate(LOG, TARGET, Q).value == pytest.approx(2.475 / 3)
    with pytest.raises(ValueError, match="needs q_hat"):
        DR().estimate(LOG, TARGET)


def test_weight_diagnostics():
    est = IPS().estimate(LOG, TARGET)
    # ESS = (Σw)² / Σw² = 3.5² / (4 + 1 + .25)
    assert est.ess == pytest.approx(3.5 ** 2 / 5.25)
    assert est.max_weight == pytest.approx(2.0)


# two slates of two positions, rows shuffled; per-position weights w and rewards r:
#   slate 0: position 0 w = 2, r = 1 ; position 1 w = .5, r = 1
#   slate 1: position 0 w = 1, r = 0 ; position 1 w = 3,  r = 1
SLATE = LoggedFeedback(action=[1, 0, 0, 0], reward=[1, 1, 0, 1], pscore=[0.25, 0.5, 0.5, 0.5], n_actions=2,
                       position=[1, 1, 0, 0], slate=[1, 0, 1, 0])
SLATE_TARGET = np.array([[0.25, 0.75], [0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])


def test_slate_estimators_by_hand():
    # IIPS: slate 0: 2·1 + .5·1 = 2.5 ; slate 1: 1·0 + 3·1 = 3 → 2.75
    assert IIPS().estimate(SLATE, SLATE_TARGET).value == pytest.approx(2.75)
    # RIPS: slate 0: 2·1 + (2·.5)·1 = 3 ; slate 1: 1·0 + (1·3)·1 = 3 → 3
    assert RIPS().estimate(SLATE, SLATE_TARGET).value == pytest.approx(3.0)
    # SIPS: slate 0: (2·.5)·2 = 2 ; slate 1: (1·3)·1 = 3 → 2.5
    est = SIPS().estimate(SLATE, SLATE_TARGET)
    assert est.value == pytest.approx(2.5)
    assert est.n_units == 2


def test_a_zero_weight_does_not_poison_other_slates():
    target = SLATE_TARGET.copy()
    target[3] = [0.0, 1.0]                 # slate 0 position 0 (row 3) now has weight 0
    # RIPS: slate 0: 0 + 0 ; slate 1: 3 → 1.5 ; SIPS: slate 0: 0 ; slate 1: 3 → 1.5
    assert RIPS().estimate(SLATE, target).value == pytest.approx(1.5)
    assert SIPS().estimate(SLATE, target).value == pytest.approx(1.5)


def test_bootstrap_interval():
    est = IPS().estimate(LOG, TARGET, n_boot=500, seed=1)
    assert est.low <= est.value <= est.high
    assert est.low >= 0.5 / 3 - 1e-12 and est.high <= 2.0 + 1e-12   # the extremes a resample can reach
    again = IPS().estimate(LOG, TARGET, n_boot=500, seed=1)
    assert (again.low, again.high) == (est.low, est.high)
    low, high = bootstrap_interval(np.full(10, 0.3), np.ones(10), 100)
    assert low == pytest.approx(0.3) and high == pytest.approx(0.3)


def test_ips_and_dr_are_unbiased_on_a_simulated_bandit():
    """Uniform logging over three actions with click rates .1/.5/.3; the target always plays action 2,
    so its true value is .3. Seeded; the tolerance is 4 standard errors."""
    rng = np.random.default_rng(7)
    n, rates = 60_000, np.array([0.1, 0.5, 0.3])
    a = rng.integers(0, 3, n)
    r = (rng.random(n) < rates[a]).astype(float)
    log = LoggedFeedback(a, r, np.full(n, 1 / 3), 3)
    target = np.tile([0.0, 0.0, 1.0], (n, 1))
    se = np.sqrt(0.3 * 0.7 * 3 / n)
    for est in (IPS(), SNIPS()):
        assert est.estimate(log, target).value == pytest.approx(0.3, abs=4 * se)
    # a reward model that is wrong by a constant: DM is off by it, DR corrects it
    q = np.tile(rates + 0.1, (n, 1))
    assert DM().estimate(log, target, q).value == pytest.approx(0.4)
    assert DR().estimate(log, target, q).value == pytest.approx(0.3, abs=4 * se)


def test_bad_logs_are_errors():
    with pytest.raises(ValueError, match="propensity outside"):
        LoggedFeedback([0, 1], [1, 0], [0.5, 0.0], 2)
    with pytest.raises(ValueError, match="action outside"):
        LoggedFeedback([0, 2], [1, 0], [0.5, 0.5], 2)
    with pytest.raises(ValueError, match="not a finite"):
        LoggedFeedback([0, 1], [1, np.nan], [0.5, 0.5], 2)
    with pytest.raises(ValueError, match="probability distribution"):
        IPS().estimate(LOG, TARGET * 2)
    with pytest.raises(ValueError, match="shape"):
        IPS().estimate(LOG, TARGET[:2])
    with pytest.raises(ValueError, match="unknown estimator"):
        estimator("magic")


def test_feedback_from_frame_reports_bad_rows():
    frame = pd.DataFrame({"arm": ["a", "b", "a"], "reward": [1, 0, 1], "propensity": [0.5, None, 0.5]})
    with pytest.raises(ValueError, match=r"1 rows have no usable logging propensity .* row 1"):
        feedback_from_frame(frame, source="logs.csv")
    frame["propensity"] = 0.5
    with pytest.raises(ValueError, match=r"name an action the policy does not have: \['b'\]"):
        feedback_from_frame(frame, actions=["a", "c"])
    table = feedback_from_frame(frame)
    assert table.actions == ["a", "b"] and table.log.action.tolist() == [0, 1, 0]


def test_reward_model_learns_known_rewards():
    """Click probability sigmoid(−2 + 2·[context y] + 1.5·[action 0]): additive in the logistic
    model's features, so the cross-fitted predictions must come back close to it."""
    rng = np.random.default_rng(0)
    n = 20_000
    ctx = rng.integers(0, 2, n)
    a = rng.integers(0, 2, n)
    truth = 1 / (1 + np.exp(-(-2 + 2 * ctx[:, None] + 1.5 * (np.arange(2)[None, :] == 0))))
    r = (rng.random(n) < truth[np.arange(n), a]).astype(float)
    log = LoggedFeedback(a, r, np.full(n, 0.5), 2)
    q = RewardModel(n_folds=3).fit_predict(log, context=np.eye(2)[ctx])
    assert q.shape == (n, 2)
    np.testing.assert_allclose(q, truth, atol=0.03)
    # one class only in a fold (no click ever): the prediction is that rate, not a crash
    q0 = RewardModel(n_folds=2).fit_predict(LoggedFeedback(a, np.zeros(n), np.full(n, 0.5), 2))
    assert (q0 == 0).all()
    # continuous rewards: ridge
    rev = np.where(a == 0, 10.0, 2.0)
    qr = RewardModel(n_folds=2, alpha=1e-6).fit_predict(LoggedFeedback(a, rev, np.full(n, 0.5), 2))
    np.testing.assert_allclose(qr, np.tile([10.0, 2.0], (n, 1)), atol=1e-3)


def test_ranking_distribution():
    # equal posteriors: every action equally likely at every position
    d = ranking_distribution(np.ones(4), np.ones(4), len_list=2, n_sim=40_000, seed=0)
    assert d.shape == (4, 2)
    np.testing.assert_allclose(d.sum(0), 1.0)
    np.testing.assert_allclose(d, 0.25, atol=0.01)
    # a far better action is first almost always, and never also second
    d = ranking_distribution(np.array([900.0, 1.0, 1.0]), np.array([100.0, 9.0, 9.0]), len_list=2, n_sim=5_000)
    assert d[0, 0] > 0.99 and d[0, 1] < 0.01
    assert d[1, 1] == pytest.approx(0.5, abs=0.05)
