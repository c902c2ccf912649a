"""Policy snapshots: a restore from a snapshot plus the rows after it gives the state a full replay
gives, reads only those rows, skips what is still in flight, and ignores a snapshot of other settings."""

import numpy as np
import pytest

from shoprec.online.learner import PolicyLearner, rebuild_all
from shoprec.online.policies import LinUCBPolicy, ThompsonPolicy
from shoprec.online.snapshot import KIND, compact, restore_all
from shoprec.service.store import EventRecord, ImpressionRecord, open_store

from .test_learner import ARMS, CFG, EVENTS, IMPS

NOW = 10_000.0


def _imp(d, t_stored):
    return ImpressionRecord(**{k: v for k, v in d.items() if k != "created_at"}, created_at=float(d["created_at"]))


def _ev(i, d, received):
    return EventRecord(event_id=f"e{i}", item_id=d["item_id"], behaviour=d["behaviour"], timestamp=float(d["timestamp"]),
                       received_at=received, user_id=d["user_id"], session_id=d["session_id"], price=d["price"],
                       quantity=d["quantity"], request_id=d["request_id"], position=d["position"])


def _features(imps):
    # the linear policies learn from the answers' context features: give each a fixed vector
    out = []
    for j, d in enumerate(imps):
        d = {**d, "context": {**d["context"], "policy": {**d["context"]["policy"],
                                                         "features": np.eye(18)[j % 18].tolist()}}}
        out.append(d)
    return out


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:{tmp_path / 'events.db'}")
    yield s
    s.close()


def _fill(store, imps, events, received):
    store.append_impressions([_imp(d, received) for d in imps])
    store.append_events([_ev(f"{received}-{i}", d, received) for i, d in enumerate(events)])


@pytest.mark.parametrize("make", [lambda: ThompsonPolicy(arms=ARMS, reward="gaussian"),
                                  lambda: LinUCBPolicy(arms=ARMS, country_buckets=8)])
def test_snapshot_then_the_rest_equals_a_full_replay(store, make):
    imps = _features(IMPS)
    first, later = imps[:2], imps[2:]
    # the first half is old and settled; an event of r3 (in the later half) arrives before its answer
    _fill(store, first, EVENTS[:5] + [EVENTS[5]], received=1000.0)
    live = PolicyLearner("home", make(), CFG)
    through = compact([live], store, lag_seconds=60, now=NOW)
    assert through["home"] == {"impressions": 2, "events": 6}
    assert live.policy.pulls.sum() == 0                       # compact never touches the learner it is given
    # the later answers are settled (shown long ago), their two events still in flight at the next compaction
    _fill(store, later, EVENTS[6:], received=NOW - 5)
    assert compact([live], store, lag_seconds=60, now=NOW)["home"] == {"impressions": 4, "events": 6}

    restored = PolicyLearner("home", make(), CFG)
    got = restore_all([restored], store, now=NOW)
    assert got == {"impressions": 0, "events": 2, "from_snapshot": 1}     # only the rows after the snapshot
    full = PolicyLearner("home", make(), CFG)
    rebuild_all([full], store, now=NOW)
    for k, v in full.policy.state().items():
        np.testing.assert_allclose(restored.policy.state()[k], v, err_msg=k)
    assert {r: a.reward for r, a in restored._pending.items()} == \
        pytest.approx({r: a.reward for r, a in full._pending.items()})
    assert restored.rebuilt_from["snapshot_events"] == 6


def test_a_snapshot_of_other_settings_is_ignored(store):
    _fill(store, IMPS, EVENTS, received=1000.0)
    compact([PolicyLearner("home", ThompsonPolicy(arms=ARMS, reward="gaussian"), CFG)], store, now=NOW)
    assert [k for k, _, _ in store.iter_documents(KIND)] == ["home"]
    other = PolicyLearner("home", ThompsonPolicy(arms=ARMS, reward="gaussian", prior_sd=2.0), CFG)
    got = restore_all([other], store, now=NOW)
    assert got["from_snapshot"] == 0 and got["impressions"] == len(IMPS)
    assert other.policy.pulls.sum() == 3
