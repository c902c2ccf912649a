"""Snapshots of the policies' online state, so a restart replays only what came after.

A learner's state is a function of a prefix of the event store (its impressions and events in
sequence order, see :mod:`shoprec.online.learner`). A snapshot records that state together with the
prefix it is the function of: the last impression and event sequence numbers it includes. Restoring
is then "load the snapshot, replay what the store holds after it", which gives the state a full
replay would (the policy's statistics, the answers still inside the reward window with the reward
each has earned, the events that name an answer not registered yet), at a cost in proportion to the
traffic since the snapshot instead of the whole log.

Snapshots are made by :func:`compact` from the store itself, never from a live learner (whose answers
and events arrive in an order the store's sequence does not record): it restores the last snapshot
into a fresh copy of each learner, replays the rows after it that are older than ``lag_seconds``
(so that no row with a smaller sequence number can still be in flight: PostgreSQL hands out sequence
numbers before commit), and stores the result as the ``policy_snapshot`` document of the scenario.
The service compacts after its start-up and then every ``snapshot_seconds``.

A snapshot is used only by a policy of the same kind, arms and settings; any other starts over from
the whole log (as after a change of the scenario's ``[policy]``). Its size is in proportion to the
answers inside the reward window (each with its shown items and context features).
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import numpy as np

from .learner import PolicyLearner, _Answer
from .rewards import SLACK_SECONDS

__all__ = ["KIND", "compact", "dump", "load", "restore_all"]

#: the event store's document kind of the snapshots (key: the scenario)
KIND = "policy_snapshot"
FORMAT = 1


def _signature(learner: PolicyLearner) -> dict[str, Any]:
    pol = learner.policy
    return {"policy": pol.name, "arms": list(pol.arm_names), "config": pol.config.model_dump(mode="json"),
            "reward": learner.reward.model_dump(mode="json")}


def dump(learner: PolicyLearner, through: dict[str, int]) -> dict[str, Any]:
    """The JSON document of ``learner``'s state, which includes the store's rows up to ``through``
    (``{"impressions": seq, "events": seq}``)."""
    pending = [{"rid": rid, "arm": a.arm, "t": a.created_at, "items": {str(p): i for p, i in a.items.items()},
                "x": None if a.features is None else a.features.tolist(), "user": a.user, "session": a.session,
                "best": {str(p): v for p, v in a.best.items()}, "revenue": {str(p): v for p, v in a.revenue.items()},
                "reward": a.reward} for rid, a in learner._pending.items()]
    orphans = [{"rid": rid, "events": [e for _, e in evs]} for rid, evs in learner._orphans.items()]
    state = {k: np.asarray(v).tolist() for k, v in learner.policy.state().items()}
    return {"format": FORMAT, **_signature(learner), "through": dict(through), "created_at": time.time(),
            "state": state, "pending": pending, "orphans": orphans, "counts": dict(learner.counts)}


def load(learner: PolicyLearner, doc: dict[str, Any]) -> dict[str, int] | None:
    """Put the snapshot ``doc`` into ``learner`` (reset first) when it is of the same policy, arms,
    settings and reward; returns the rows it includes (``through``), or None when it does not fit."""
    if doc.get("format") != FORMAT or any(doc.get(k) != v for k, v in _signature(learner).items()):
        return None
    learner._reset()
    # the statistics only: probabilities in force then are recomputed from them
    learner.policy.set_state({k: np.asarray(v, np.float64) for k, v in doc["state"].items() if k != "probabilities"})
    for p in doc["pending"]:
        ans = _Answer(int(p["arm"]), float(p["t"]), {int(k): v for k, v in p["items"].items()},
                      None if p["x"] is None else np.asarray(p["x"], np.float64), p["user"], p["session"],
                      {int(k): float(v) for k, v in p["best"].items()},
                      {int(k): float(v) for k, v in p["revenue"].items()}, float(p["reward"]))
        learner._pending[p["rid"]] = ans
        for item in ans.items.values():
            if ans.session:
                learner._by_session[(ans.session, item)] = p["rid"]
            if ans.user:
                learner._by_user[(ans.user, item)] = p["rid"]
    now = time.monotonic()
    for o in doc["orphans"]:
        learner._orphans[o["rid"]] = [(now, e) for e in o["events"]]
    learner.counts.update({k: int(v) for k, v in doc["counts"].items() if k in learner.counts})
    return {"impressions": int(doc["through"]["impressions"]), "events": int(doc["through"]["events"])}


def _snapshots(store: Any) -> dict[str, dict[str, Any]]:
    return {key: body for key, body, _ in store.iter_documents(KIND)}


def _replay(learners: list[PolicyLearner], since: list[dict[str, int]], store: Any,
            cut: float | None = None) -> dict[str, int]:
    """Feed each learner the store's impressions, then events, after its own ``since``; with ``cut``,
    only the prefix of rows stored before it (impressions by ``created_at``, events by
    ``received_at``). Returns the last sequence number read per kind and how many rows were read."""
    last = {"impressions": 0, "events": 0, "impressions_read": 0, "events_read": 0}
    for kind, feed, stamp in (("impressions", PolicyLearner.answers, "created_at"),
                              ("events", PolicyLearner.events, "received_at")):
        start = min((s[kind] for s in since), default=0)
        it = store.iter_impressions(start) if kind == "impressions" else store.iter_events(start)
        for batch in it:
            if cut is not None:
                young = next((i for i, r in enumerate(batch) if float(getattr(r, stamp)) >= cut), None)
                if young is not None:
                    batch = batch[:young]
            if batch:
                last[f"{kind}_read"] += len(batch)
                for learner, s in zip(learners, since):
                    rows = [r for r in batch if r.seq > s[kind]] if s[kind] > start else batch
                    if rows:
                        feed(learner, rows)
                last[kind] = max(last[kind], batch[-1].seq)
            if cut is not None and young is not None:
                break
        last[kind] = max(last[kind], max((s[kind] for s in since), default=0))
    return last


def _start(learner: PolicyLearner, docs: dict[str, dict[str, Any]]) -> dict[str, int] | None:
    """``learner`` from its snapshot in ``docs`` when one fits (the rows it includes), else reset (None)."""
    got = load(learner, docs[learner.scenario]) if learner.scenario in docs else None
    if got is None:
        learner._reset()
    return got


def restore_all(learners: Iterable[PolicyLearner], store: Any, now: float | None = None) -> dict[str, int]:
    """Rebuild every learner from its snapshot in ``store`` (where one fits) and the rows after it,
    or from the whole log; returns how many impressions and events were replayed and how many
    learners started from a snapshot."""
    learners = list(learners)
    docs = _snapshots(store) if learners else {}
    got = [_start(learner, docs) for learner in learners]
    since = [g or {"impressions": 0, "events": 0} for g in got]
    last = _replay(learners, since, store) if learners else {"impressions_read": 0, "events_read": 0}
    out = {"impressions": last["impressions_read"], "events": last["events_read"],
           "from_snapshot": sum(g is not None for g in got)}
    for learner, s in zip(learners, since):
        learner._finish_rebuild({**out, "snapshot_impressions": s["impressions"],
                                 "snapshot_events": s["events"]}, now)
    return out


def compact(learners: Iterable[PolicyLearner], store: Any, lag_seconds: float = 60.0,
            now: float | None = None) -> dict[str, dict[str, int]]:
    """Store a fresh snapshot per learner (module docstring) without touching the learners given
    (copies are restored and advanced); returns scenario → the rows the new snapshot includes."""
    learners = list(learners)
    if not learners:
        return {}
    now = time.time() if now is None else now
    docs = _snapshots(store)
    copies, since = [], []
    for learner in learners:
        # a fresh policy of the same settings (not a deep copy: it would copy the model it is bound to)
        policy = type(learner.policy)(learner.policy.config)
        if learner.policy.env is not None:
            policy.bind(learner.policy.env)
        c = PolicyLearner(learner.scenario, policy, learner.reward, learner.max_pending)
        copies.append(c)
        since.append(_start(c, docs) or {"impressions": 0, "events": 0})
    until = _replay(copies, since, store, cut=now - lag_seconds)
    out = {}
    window_cut = now - SLACK_SECONDS
    for c, s in zip(copies, since):
        through = {k: max(until[k], s[k]) for k in ("impressions", "events")}
        # answers whose window closed hold final rewards: forgotten, as the live learner does
        old = [rid for rid, a in c._pending.items() if a.created_at < window_cut - c.reward.window_seconds]
        for rid in old:
            c._drop(rid)
        # events still naming no answer are kept while their answer could yet be stored
        for rid in [rid for rid, evs in c._orphans.items()
                    if float(evs[-1][1].get("received_at") or 0.0) < window_cut - c.reward.window_seconds]:
            c.counts["unknown_request"] += len(c._orphans.pop(rid))
        store.put_document(KIND, c.scenario, dump(c, through))
        out[c.scenario] = through
    return out
