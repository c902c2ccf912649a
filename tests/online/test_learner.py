"""The online learner attributes events like the batch join, feeds its policy deltas, and rebuilds the
same state from a store."""

import numpy as np
import pytest

from shoprec.online.learner import PolicyLearner
from shoprec.online.policies import ThompsonPolicy
from shoprec.online.rewards import join_rewards
from shoprec.scenarios.config import RewardConfig

from .test_rewards import ev, imp

ARMS = {"a": {"ease": 1.0}, "b": {"popularity": 1.0}}
CFG = RewardConfig(click=0.1, cart=0.3, purchase=1.0, revenue=0.01, window_seconds=3600)
IMPS = [imp("r1", 1000, ["x", "y", "z"], arm="a"), imp("r2", 2000, ["y", "w"], arm="b", session="s2"),
        imp("r3", 3000, ["q"], arm="a", user="u2", session="s3"),
        imp("c1", 1000, ["x"], arm="a", scenario="cart")]
EVENTS = [ev("x", "click", 1010, "r1", 1), ev("x", "purchase", 1100, "r1", 1, price=50, quantity=2),
          ev("y", "add_to_cart", 1200), ev("w", "click", 2100, session="s9"), ev("z", "click", 1020, "r1", 2),
          ev("q", "click", 3000 + 7200, "r3", 1, user="u2", session="s3"), ev("x", "click", 1010, "r404", 1),
          ev("nope", "click", 5000)]


class FakeStore:
    def __init__(self, impressions, events):
        self.imps, self.evs = impressions, events

    def iter_impressions(self):
        yield self.imps

    def iter_events(self):
        yield self.evs


def test_learner_matches_the_batch_join():
    pol = ThompsonPolicy(arms=ARMS, reward="gaussian")
    learner = PolicyLearner("home", pol, CFG)
    assert learner.answers(IMPS) == 3                       # the cart answer is another scenario's
    assert learner.events(EVENTS) == 4
    batch = join_rewards(IMPS, EVENTS, CFG, scenario="home").requests.set_index("request_id")["reward"]
    got = {rid: a.reward for rid, a in learner._pending.items()}
    assert got == pytest.approx(batch.to_dict())
    s = {x["arm"]: x for x in pol.summary()}
    assert s["a"]["pulls"] == 2 and s["b"]["pulls"] == 1
    assert s["a"]["reward"] == pytest.approx(batch["r1"] + batch["r3"])
    assert learner.counts["by_request"] == 2 and learner.counts["by_session"] == 1 and learner.counts["by_user"] == 1
    assert learner.counts["not_shown"] == 1 and learner.counts["outside_window"] == 1
    assert learner.summary()["events_waiting_for_their_answer"] == 1     # r404, until it expires


def test_rebuild_gives_the_same_state_and_events_before_answers_wait_for_nothing():
    live = PolicyLearner("home", ThompsonPolicy(arms=ARMS, reward="gaussian"), CFG)
    imps = sorted(IMPS, key=lambda i: i["created_at"])     # in time order, each event once, as they come
    bounds = [i["created_at"] for i in imps[1:]] + [float("inf")]
    for i, end in zip(imps, bounds):
        live.answers([i])
        live.events([e for e in EVENTS if i["created_at"] <= e["timestamp"] < end])
    rebuilt = PolicyLearner("home", ThompsonPolicy(arms=ARMS, reward="gaussian"), CFG)
    rebuilt.rebuild(FakeStore(IMPS, EVENTS), now=4000)
    for k, v in live.policy.state().items():
        np.testing.assert_allclose(rebuilt.policy.state()[k], v)


def test_unknown_arms_and_missing_propensities_are_counted():
    bad = [imp("r9", 1000, ["x"], arm="gone"), imp("r8", 1000, ["x"], propensity=None)]
    learner = PolicyLearner("home", ThompsonPolicy(arms=ARMS), CFG)
    assert learner.answers(bad) == 0
    assert learner.counts["answers_unknown_arm"] == 1 and learner.counts["answers_without_propensity"] == 1


def test_expire_and_adopt():
    learner = PolicyLearner("home", ThompsonPolicy(arms=ARMS), CFG)
    learner.answers(IMPS)
    assert learner.expire(now=1000 + 3600 + 61 + 1) == 1 and len(learner._pending) == 2
    fresh = ThompsonPolicy(arms=ARMS)
    assert learner.adopt(fresh) and learner.policy is fresh and fresh.pulls.sum() == 3
    assert not learner.adopt(ThompsonPolicy(arms={"only": {"ease": 1.0}}))


def test_an_event_before_its_answer_waits_for_it():
    """Another worker's answer can reach this one after the click it led to (both travel the bus)."""
    learner = PolicyLearner("home", ThompsonPolicy(arms=ARMS, reward="gaussian"), CFG)
    learner.events([ev("x", "purchase", 1100, "r1", 1, price=50, quantity=2), ev("x", "click", 1010, "zzz", 1)])
    assert learner.counts["unknown_request"] == 0
    learner.answers(IMPS[:1])
    assert learner._pending["r1"].reward == pytest.approx(1.0 + 0.01 * 100)
    learner.orphan_seconds = 0.0
    learner.expire(now=0)
    assert learner.counts["unknown_request"] == 1
