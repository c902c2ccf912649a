"""The online loop of one scenario: answers and events in, reward deltas into its learning policy.

:class:`PolicyLearner` keeps the answers still inside the reward window (arm, context features,
shown items, reward so far) and attributes each incoming event exactly as
:func:`shoprec.online.rewards.join_rewards` does (request id + position, else session + item, then
user + item; the best behaviour per shown item; revenue), feeding the policy a pull when an answer is
registered and a reward delta when its reward grows. Nothing is refitted.

Durability and sharing follow from the state being a function of the log: the answers (impressions,
with the arm, its propensity and the context features) and the events are what the event store keeps,
so :meth:`rebuild` replays them after a restart (``kill -9`` included) and gets the same state; every
worker that registers the same answers and events (its own, and the others' through the state bus)
holds the same state.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..scenarios.config import RewardConfig
from ..scenarios.stages import MixFeedback
from .rewards import SLACK_SECONDS, _rows

__all__ = ["PolicyLearner", "rebuild_all"]


@dataclass
class _Answer:
    arm: int
    created_at: float
    items: dict[int, str]                      # position → item id
    features: np.ndarray | None
    user: str | None
    session: str | None
    best: dict[int, float] = field(default_factory=dict)      # position → best behaviour weight so far
    revenue: dict[int, float] = field(default_factory=dict)   # position → revenue so far
    reward: float = 0.0


class PolicyLearner:
    """Feeds ``policy`` (a learning mix policy of ``scenario``) from answers and events."""

    def __init__(self, scenario: str, policy: Any, reward: RewardConfig | None = None,
                 max_pending: int = 1_000_000) -> None:
        self.scenario = scenario
        self.policy = policy
        self.reward = reward or RewardConfig()
        self.max_pending = max_pending
        self._pending: OrderedDict[str, _Answer] = OrderedDict()
        self._by_session: dict[tuple[str, str], str] = {}
        self._by_user: dict[tuple[str, str], str] = {}
        #: events naming a request not registered yet (another worker's answer still on the bus),
        #: kept ``orphan_seconds`` and then counted as unknown requests
        self._orphans: OrderedDict[str, list[tuple[float, dict]]] = OrderedDict()
        self.orphan_seconds = 60.0
        self.max_orphans = 100_000
        self.counts = {"answers": 0, "answers_unknown_arm": 0, "answers_without_propensity": 0,
                       "answers_failed": 0, "answers_of_overrides": 0, "answers_to_bots": 0,
                       "events_rewarded": 0, "by_request": 0, "by_session": 0, "by_user": 0,
                       "unknown_request": 0, "not_shown": 0, "outside_window": 0, "no_answer": 0}
        self.rebuilt_from: dict[str, int] = {}

    # ------------------------------------------------------------------ answers
    def answers(self, impressions: Iterable[Any]) -> int:
        """Register answers of this scenario (impression records or dicts); returns how many."""
        names = {n: i for i, n in enumerate(self.policy.arm_names)}
        arms, feats = [], []
        for r in _rows(impressions):
            if r.get("scenario") != self.scenario:
                continue
            ctx = r.get("context") or {}
            pol = ctx.get("policy") or {}
            rid = r["request_id"]
            if rid in self._pending:
                continue
            if ctx.get("error"):                    # a request that failed: nothing was shown
                self.counts["answers_failed"] += 1
                continue
            if ctx.get("bot"):                      # an answer to a visit recognised as a bot
                self.counts["answers_to_bots"] += 1
                continue
            if str(pol.get("arm") or "").startswith("override:"):
                self.counts["answers_of_overrides"] += 1   # an A/B variant's fixed mix, not the policy's choice
                continue
            if pol.get("propensity") is None:
                self.counts["answers_without_propensity"] += 1
                continue
            arm = names.get(pol.get("arm"))
            if arm is None:
                self.counts["answers_unknown_arm"] += 1
                continue
            x = pol.get("features")
            x = None if x is None else np.asarray(x, np.float64)
            items = {int(it["position"]): str(it["item_id"]) for it in r.get("items") or []}
            ans = _Answer(arm, float(r["created_at"]), items, x, r.get("user_id"), r.get("session_id"))
            self._pending[rid] = ans
            for item in items.values():
                if ans.session:
                    self._by_session[(ans.session, item)] = rid
                if ans.user:
                    self._by_user[(ans.user, item)] = rid
            arms.append(arm)
            feats.append(x)
        if arms:
            self.counts["answers"] += len(arms)
            self._feed(np.asarray(arms), np.zeros(len(arms)), np.ones(len(arms)), np.zeros(len(arms)), feats)
        while len(self._pending) > self.max_pending:
            self._drop(next(iter(self._pending)))
        if self._orphans:
            waiting = [e for rid in list(self._orphans) if rid in self._pending for _, e in self._orphans.pop(rid)]
            if waiting:
                self.events(waiting)
        return len(arms)

    def _feed(self, arm, delta, pull, prev, feats) -> None:
        x = None
        if feats and feats[0] is not None and all(f is not None for f in feats):
            x = np.vstack(feats)
        self.policy.update(MixFeedback(arm.astype(np.int32), delta, pull=pull, previous=prev, features=x))

    # ------------------------------------------------------------------ events
    def events(self, events: Iterable[Any]) -> int:
        """Attribute events to registered answers; returns how many earned a reward."""
        cfg = self.reward
        weights = cfg.behaviour_weights()
        arms, deltas, prevs, feats = [], [], [], []
        n = 0
        for e in _rows(events):
            w = weights.get(str(e.get("behaviour")))
            if w is None:
                continue
            item = str(e["item_id"])
            t = float(e.get("timestamp") or 0.0)
            rid = e.get("request_id")
            pos = e.get("position")
            if rid is not None:
                ans = self._pending.get(rid)
                if ans is None:
                    # not this scenario's, too old, never logged, or not here yet: kept for a while
                    self._orphans.setdefault(rid, []).append((time.monotonic(), e))
                    if len(self._orphans) > self.max_orphans:
                        self._orphans.popitem(last=False)
                        self.counts["unknown_request"] += 1
                    continue
                if pos is not None:
                    pos = int(pos)
                    if ans.items.get(pos) != item:
                        self.counts["not_shown"] += 1
                        continue
                else:
                    pos = next((p for p, i in ans.items.items() if i == item), None)
                    if pos is None:
                        self.counts["not_shown"] += 1
                        continue
                if not (-SLACK_SECONDS <= t - ans.created_at <= cfg.window_seconds):
                    self.counts["outside_window"] += 1
                    continue
                how = "by_request"
            else:
                rid, how = None, None
                keys = []
                if cfg.attribution in ("session", "user") and e.get("session_id"):
                    keys.append(("by_session", self._by_session, (str(e["session_id"]), item)))
                if cfg.attribution == "user" and e.get("user_id"):
                    keys.append(("by_user", self._by_user, (str(e["user_id"]), item)))
                for name, index, key in keys:
                    cand = index.get(key)
                    a = self._pending.get(cand) if cand else None
                    if a is not None and 0 <= t - a.created_at <= cfg.window_seconds:
                        rid, how = cand, name
                        break
                if rid is None:
                    self.counts["no_answer"] += 1
                    continue
                ans = self._pending[rid]
                pos = next(p for p, i in ans.items.items() if i == item)
            self.counts[how] += 1
            self.counts["events_rewarded"] += 1
            n += 1
            rev = 0.0
            if cfg.revenue > 0 and str(e.get("behaviour")) == "purchase":
                rev = float(e.get("price") or 0.0) * float(e.get("quantity") or 1.0)
            ans.best[pos] = max(ans.best.get(pos, 0.0), w)
            ans.revenue[pos] = ans.revenue.get(pos, 0.0) + rev
            total = sum(ans.best.values()) + cfg.revenue * sum(ans.revenue.values())
            delta = total - ans.reward
            if delta:
                arms.append(ans.arm)
                deltas.append(delta)
                prevs.append(ans.reward)
                feats.append(ans.features)
                ans.reward = total
        if arms:
            k = len(arms)
            self._feed(np.asarray(arms), np.asarray(deltas), np.zeros(k), np.asarray(prevs), feats)
        return n

    # ------------------------------------------------------------------ bookkeeping
    def _drop(self, rid: str) -> None:
        ans = self._pending.pop(rid, None)
        if ans is None:
            return
        for item in ans.items.values():
            if ans.session and self._by_session.get((ans.session, item)) == rid:
                del self._by_session[(ans.session, item)]
            if ans.user and self._by_user.get((ans.user, item)) == rid:
                del self._by_user[(ans.user, item)]

    def expire(self, now: float | None = None) -> int:
        """Forget answers older than the reward window (their rewards are final); returns how many."""
        mono = time.monotonic()
        while self._orphans:
            rid, evs = next(iter(self._orphans.items()))
            if mono - evs[0][0] < self.orphan_seconds:
                break
            self._orphans.popitem(last=False)
            self.counts["unknown_request"] += len(evs)
        now = time.time() if now is None else now
        cut = now - self.reward.window_seconds - SLACK_SECONDS
        old = [rid for rid, a in self._pending.items() if a.created_at < cut]
        for rid in old:
            self._drop(rid)
        return len(old)

    def rebuild(self, store: Any, now: float | None = None) -> dict[str, int]:
        """Start over from everything ``store`` holds (``iter_impressions`` / ``iter_events``): the
        policy's state after a restart is the one it had before."""
        return rebuild_all([self], store, now)

    def _reset(self) -> None:
        self.policy.reset()
        self._pending.clear()
        self._by_session.clear()
        self._by_user.clear()
        self._orphans.clear()
        for k in self.counts:
            self.counts[k] = 0

    def _finish_rebuild(self, rebuilt_from: dict[str, int], now: float | None) -> None:
        # what still names no answer after the whole log never will
        self.counts["unknown_request"] += sum(len(v) for v in self._orphans.values())
        self._orphans.clear()
        self.expire(now)
        self.rebuilt_from = dict(rebuilt_from)

    def adopt(self, policy: Any) -> bool:
        """Carry the learned state over to ``policy`` (a new model's) when it has the same arms and
        kind; returns whether it could (else the caller rebuilds from the store)."""
        same = (type(policy) is type(self.policy) and list(policy.arm_names) == list(self.policy.arm_names)
                and policy.config == self.policy.config)
        if same:
            policy.set_state(self.policy.state())
            self.policy = policy
        return same

    def summary(self, probabilities: np.ndarray | None = None) -> dict[str, Any]:
        """What ``GET /v1/policies/{scenario}`` and ``shoprec policy show`` report."""
        arms = self.policy.summary()
        if probabilities is not None:
            for a, p in zip(arms, probabilities.tolist()):
                a["probability"] = p
        return {"scenario": self.scenario, "policy": self.policy.name, "arms": arms,
                "pending_answers": len(self._pending), "counts": dict(self.counts),
                "events_waiting_for_their_answer": sum(len(v) for v in self._orphans.values()),
                "reward": self.reward.model_dump(), "rebuilt_from": self.rebuilt_from}


def rebuild_all(learners: Iterable[PolicyLearner], store: Any, now: float | None = None) -> dict[str, int]:
    """Rebuild every learner from ``store`` in one pass over its impressions, then one over its events
    (each learner keeps its own scenario's answers)."""
    learners = list(learners)
    for learner in learners:
        learner._reset()
    n_imp = n_ev = 0
    if learners:
        for batch in store.iter_impressions():
            n_imp += len(batch)
            for learner in learners:
                learner.answers(batch)
        for batch in store.iter_events():
            n_ev += len(batch)
            for learner in learners:
                learner.events(batch)
    got = {"impressions": n_imp, "events": n_ev}
    for learner in learners:
        learner._finish_rebuild(got, now)
    return got
