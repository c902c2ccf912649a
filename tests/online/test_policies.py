"""The learning mix policies: exact choice probabilities with known answers, conformance, and bandits
that must converge on simulated two-arm problems with a seeded reward."""

import numpy as np
import pytest
from scipy.stats import norm

from shoprec.online.policies import LinTSPolicy, LinUCBPolicy, ThompsonPolicy, context_features, prob_max
from shoprec.scenarios.stages import MixContext, MixFeedback, make_stage
from shoprec.testing import check_mix_policy, sample_queries, tiny_shop

ARMS = {"knn": {"item_knn": 1.0}, "blend": {"ease": 1.0, "popularity": 0.5}}
LABELS = ["item_knn", "ease", "popularity"]


def test_prob_max_known_answers():
    # Beta(2, 1) vs Beta(1, 1): P(X > Y) = ∫ 2x · x dx = 2/3
    np.testing.assert_allclose(prob_max("beta", [2, 1], [1, 1])[0], [2 / 3, 1 / 3], atol=1e-4)
    # N(1, 1) vs N(0, 1): P = Φ(1 / √2)
    np.testing.assert_allclose(prob_max("normal", [1, 0], [1, 1])[0, 0], norm.cdf(1 / np.sqrt(2)), atol=1e-4)
    # three equal arms: 1/3 each; per-row parameters (n, A)
    p = prob_max("normal", np.array([[0, 0, 0], [5, 0, 0]]), np.ones((2, 3)))
    np.testing.assert_allclose(p[0], 1 / 3, atol=1e-4)
    assert p[1, 0] == pytest.approx(1 - 2 * norm.cdf(-5 / np.sqrt(2)), abs=2e-4)   # ≈ .9996


def test_prob_max_matches_monte_carlo_on_peaked_posteriors():
    a, b = np.array([300.0, 280, 5]), np.array([9700.0, 9720, 200])
    rng = np.random.default_rng(0)
    draws = rng.beta(a, b, size=(200_000, 3)).argmax(1)
    mc = np.bincount(draws, minlength=3) / len(draws)
    np.testing.assert_allclose(prob_max("beta", a, b)[0], mc, atol=0.005)


def _ctx(n=None):
    q = sample_queries(tiny_shop())
    if n is not None:
        q = q.take(np.zeros(n, np.int64))
    return MixContext(q, LABELS, np.ones(3, np.float32), np.ones(3, bool))


@pytest.mark.parametrize("name,params", [("thompson", {"arms": ARMS}),
                                         ("thompson", {"arms": ARMS, "reward": "gaussian"}),
                                         ("linucb", {"arms": ARMS}), ("lin_ts", {"arms": ARMS})])
def test_conformance_after_learning(name, params):
    def factory():
        pol = make_stage("mix_policy", {"name": name, "params": params})
        ctx = _ctx()
        ch = pol.choose(ctx)
        rng = np.random.default_rng(1)
        pol.update(MixFeedback(ch.arm, rng.random(len(ctx)) * (ch.arm == 0), features=ch.features))
        return pol
    check_mix_policy(factory, labels=LABELS)


def simulate(policy, means, rounds=60, batch=100, seed=12345):
    """A seeded two-arm problem: answers in batches, Bernoulli rewards with arm means ``means``,
    fed back as a pull and its reward. Returns the share of the best arm per round.
    (The simulator's seed differs from the policy's: the same stream would tie rewards to choices.)"""
    rng = np.random.default_rng(seed)
    shares = []
    ctx = _ctx(batch)
    for _ in range(rounds):
        ch = policy.choose(ctx)
        r = (rng.random(batch) < np.asarray(means)[ch.arm]).astype(float)
        policy.update(MixFeedback(ch.arm, r, features=ch.features))
        shares.append(float((ch.arm == int(np.argmax(means))).mean()))
    return shares


@pytest.mark.parametrize("reward", ["beta", "gaussian"])
def test_thompson_converges_to_the_better_arm(reward):
    pol = ThompsonPolicy(arms=ARMS, reward=reward, explore=0.02, prior_sd=0.5, refresh_seconds=0)
    shares = simulate(pol, [0.05, 0.10])
    assert np.mean(shares[-10:]) > 0.9
    summary = {s["arm"]: s for s in pol.summary()}
    assert summary["blend"]["pulls"] > summary["knn"]["pulls"]
    assert summary["blend"]["posterior_mean"] == pytest.approx(0.10, abs=0.02)


def test_delayed_rewards_are_deltas():
    pol = ThompsonPolicy(arms=ARMS)
    pol.update(MixFeedback(np.array([1, 1]), np.zeros(2)))                        # two answers shown
    pol.update(MixFeedback(np.array([1]), np.array([0.3]), pull=np.zeros(1)))     # a cart, later
    pol.update(MixFeedback(np.array([1]), np.array([1.0]), pull=np.zeros(1), previous=np.array([0.3])))
    s = {x["arm"]: x for x in pol.summary()}["blend"]
    assert s["pulls"] == 2 and s["reward"] == pytest.approx(1.0)   # capped at 1 per answer (beta)
    # Beta(1 + 1, 1 + 1) → mean .5
    assert s["posterior_mean"] == pytest.approx(0.5)


@pytest.mark.parametrize("cls", [LinUCBPolicy, LinTSPolicy])
def test_linear_policies_learn_a_context_dependent_arm(cls):
    # mobile visitors like arm 0, everyone else arm 1
    pol = cls(arms=ARMS, explore=0.02, country_buckets=0)
    ctx = _ctx()
    x = context_features(ctx, 0)
    n = len(ctx)
    mobile = np.array([i % 2 == 0 for i in range(n)])
    x[:, 1] = mobile
    rng = np.random.default_rng(3)
    for _ in range(150):
        p = pol._probabilities(ctx, x)
        arm = (p.cumsum(1) < rng.random(n)[:, None]).sum(1)
        best = np.where(mobile, 0, 1)
        r = (rng.random(n) < np.where(arm == best, 0.3, 0.05)).astype(float)
        pol.update(MixFeedback(arm, r, features=x))
    p = pol._probabilities(ctx, x)
    assert p[mobile, 0].mean() > 0.8 and p[~mobile, 1].mean() > 0.8


def test_context_features_shape_and_values():
    ctx = _ctx()
    x = context_features(ctx, 8)
    assert x.shape == (len(ctx), 18) and np.isfinite(x).all()
    assert (x[:, 0] == 1).all()


def test_bad_arms_are_a_config_error():
    from shoprec.exceptions import ConfigError
    from shoprec.scenarios.config import scenario_from_dict

    raw = {"scenario": {"name": "home"}, "strategies": [{"name": "popularity"}],
           "policy": {"name": "thompson", "params": {"arms": {"a": {"nope": 1.0}}}}}
    with pytest.raises(ConfigError, match="names strategies the scenario does not have"):
        scenario_from_dict(raw)


def test_thompson_probabilities_refresh_at_most_every_refresh_seconds():
    pol = ThompsonPolicy(arms=ARMS, refresh_seconds=3600)
    before = pol.probabilities_now().copy()
    pol.update(MixFeedback(np.zeros(50, np.int32), np.ones(50)))      # arm 0 wins everything
    # still the probabilities in force (and the choices are drawn from, and logged with, them) …
    np.testing.assert_allclose(pol.probabilities_now(), before)
    ch = pol.choose(_ctx(400))
    np.testing.assert_allclose(ch.propensity, before[ch.arm])
    # … while the posterior has moved; with refresh_seconds = 0 the next choice uses it
    assert pol.posterior_probabilities()[0] > 0.9
    fresh = ThompsonPolicy(arms=ARMS, refresh_seconds=0)
    fresh.set_state({k: v for k, v in pol.state().items() if k != "probabilities"})
    assert fresh.probabilities_now()[0] > 0.9


def test_discounted_thompson_forgets_and_follows_a_drift():
    fixed = ThompsonPolicy(arms=ARMS, refresh_seconds=0)
    forgetful = ThompsonPolicy(arms=ARMS, refresh_seconds=0, discount=0.99)
    for pol in (fixed, forgetful):
        pol.update(MixFeedback(np.zeros(500, np.int32), np.ones(500)))          # arm 0 was great …
        pol.update(MixFeedback(np.zeros(300, np.int32), np.zeros(300)))         # … then never again
        pol.update(MixFeedback(np.ones(100, np.int32), np.full(100, 0.5)))
    # 0.99 ** 100 of the arm-0 history is left: it has forgotten the old successes
    assert forgetful.posterior_mean()[0] < 0.1 < fixed.posterior_mean()[0]
    assert forgetful.probabilities_now()[1] > 0.9 > fixed.probabilities_now()[1]


@pytest.mark.parametrize("cls", [LinUCBPolicy, LinTSPolicy])
def test_discounted_linear_policies_follow_a_drift(cls):
    # arm 0 is best for 40 rounds, then arm 1 is: with a discount the policy switches, without it lags
    ctx = _ctx(50)
    fixed, forgetful = cls(arms=ARMS, explore=0.02, country_buckets=0), \
        cls(arms=ARMS, explore=0.02, country_buckets=0, discount=0.995)
    for pol in (fixed, forgetful):
        rng = np.random.default_rng(7)
        x = context_features(ctx, 0)
        for t in range(80):
            p = pol._probabilities(ctx, x)
            arm = (p.cumsum(1) < rng.random(len(ctx))[:, None]).sum(1)
            good = 0 if t < 40 else 1
            r = (rng.random(len(ctx)) < np.where(arm == good, 0.4, 0.05)).astype(float)
            pol.update(MixFeedback(arm, r, features=x))
    assert forgetful.posterior_mean()[1] > forgetful.posterior_mean()[0]
    assert forgetful._probabilities(ctx, context_features(ctx, 0))[:, 1].mean() > 0.9
    # the prior λI is kept: A stays positive definite however much is forgotten
    assert np.all(np.linalg.eigvalsh(forgetful.A) >= forgetful.config.ridge - 1e-9)
    # the undiscounted one still weighs the old 40 rounds as much as the new ones
    assert fixed.posterior_mean()[0] > forgetful.posterior_mean()[0]
