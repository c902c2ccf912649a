"""The online state and the engine that owns it.

* :class:`LiveState` — per visitor (a user id, or a session id for a guest): the recent events, the
  basket, what was bought. Requests that name a visitor but do not send their session or basket get
  them from here, so an event changes the next answer at once.
* :class:`Engine` — one thread (an actor) owns the fitted :class:`~shoprec.scenarios.Recommender`
  and the live state. Requests, acknowledged events, catalogue changes and model swaps are tasks
  on its queue; of the tasks waiting at one moment, the changes run first (in arrival order), then
  the recommendation requests, those of one scenario answered as one vectorised batch
  (micro-batching). No lock is needed, an
  event acknowledged before a request is always applied before that request is answered, and the
  HTTP event loop keeps the other core.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..data import Behaviour, Ragged
from ..exceptions import RequestError
from ..scenarios import Recommender, RequestContext, SessionEvent
from ..strategies.base import LiveEvents
from .store import EventRecord, EventStore, ImpressionRecord, ItemRecord

log = logging.getLogger(__name__)

#: canonical behaviour name → code (names are canonical once validated by the API)
_BEHAVIOUR_CODE = {b.name.lower(): int(b) for b in Behaviour}
#: behaviours that put an item in the visitor's recent history
_HISTORY = {"view", "click", "favourite", "add_to_cart", "purchase", "rating", "interaction"}


# --------------------------------------------------------------------------- visitors
@dataclass
class Visitor:
    recent: deque = field(default_factory=lambda: deque(maxlen=50))   # (item_id, behaviour)
    basket: dict[str, float] = field(default_factory=dict)            # item_id → quantity, insertion order
    purchased: deque = field(default_factory=lambda: deque(maxlen=200))
    last_seen: float = 0.0


def visitor_key(user_id: str | None, session_id: str | None) -> str | None:
    """The state key of a visitor: the user id when known, else the session id."""
    if user_id:
        return f"u:{user_id}"
    if session_id:
        return f"s:{session_id}"
    return None


class LiveState:
    """Recent events, basket and purchases per visitor, most recently active kept (LRU bound)."""

    def __init__(self, max_visitors: int = 1_000_000, context_items: int = 10) -> None:
        self.visitors: OrderedDict[str, Visitor] = OrderedDict()
        self.max_visitors = max_visitors
        self.context_items = context_items
        self.events_applied = 0

    def get(self, key: str | None) -> Visitor | None:
        return None if key is None else self.visitors.get(key)

    def _visitor(self, key: str) -> Visitor:
        v = self.visitors.get(key)
        if v is None:
            v = self.visitors[key] = Visitor()
            if len(self.visitors) > self.max_visitors:
                self.visitors.popitem(last=False)
        else:
            self.visitors.move_to_end(key)
        return v

    def apply(self, events: Sequence[EventRecord]) -> list[list[str]]:
        """Update the visitors; returns per event the visitor's recent distinct items before it
        (latest last), the context its co-occurrences are counted against."""
        contexts: list[list[str]] = []
        for e in events:
            key = visitor_key(e.user_id, e.session_id)
            if key is None:
                contexts.append([])
                continue
            v = self._visitor(key)
            ctx: list[str] = []
            for item, _ in reversed(v.recent):
                if item != e.item_id and item not in ctx:
                    ctx.append(item)
                    if len(ctx) >= self.context_items:
                        break
            contexts.append(ctx[::-1])
            b = e.behaviour
            if b in _HISTORY:
                v.recent.append((e.item_id, b))
            if b == "add_to_cart":
                v.basket[e.item_id] = v.basket.get(e.item_id, 0.0) + float(e.quantity or 1.0)
            elif b == "remove_from_cart":
                v.basket.pop(e.item_id, None)
            elif b == "purchase":
                v.basket.pop(e.item_id, None)
                v.purchased.append(e.item_id)
            v.last_seen = max(v.last_seen, float(e.timestamp))
        self.events_applied += len(events)
        return contexts

    def fill(self, ctx: RequestContext, session_id: str | None, recent: int = 20) -> tuple[RequestContext, list[str]]:
        """The request with the visitor's session and basket where the page did not send them, and
        the items the visitor bought live (for the scenarios that do not re-offer purchases)."""
        v = self.get(visitor_key(ctx.user_id, session_id))
        if v is None:
            return ctx, []
        update: dict[str, Any] = {}
        if not ctx.session and v.recent:
            update["session"] = [SessionEvent.model_construct(item_id=i, behaviour=b, timestamp=None)
                                 for i, b in list(v.recent)[-recent:]]
        if not ctx.basket and v.basket:
            update["basket"] = list(v.basket)
        return (ctx.model_copy(update=update) if update else ctx), list(v.purchased)


# --------------------------------------------------------------------------- the engine
@dataclass
class _Task:
    kind: str                       # "recommend", "events", "items", "call"
    payload: Any
    future: Any                     # a concurrent Future, or an asyncio one of ``loop``
    scenario: str | None = None
    enqueued: float = field(default_factory=time.perf_counter)
    loop: asyncio.AbstractEventLoop | None = None


def _settle_async(outcomes: list[tuple[Any, Any, BaseException | None]]) -> None:
    """Resolve asyncio futures on their loop (one wake-up of the loop for a whole batch)."""
    for fut, result, exc in outcomes:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)


def settle(outcomes: list[tuple[_Task, Any, BaseException | None]]) -> None:
    """Give each task its result or exception: concurrent futures at once, asyncio futures with
    one ``call_soon_threadsafe`` per event loop rather than one per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list] = {}
    for t, result, exc in outcomes:
        if t.loop is None:
            if exc is not None:
                t.future.set_exception(exc)
            else:
                t.future.set_result(result)
        else:
            by_loop.setdefault(t.loop, []).append((t.future, result, exc))
    for loop, batch in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_async, batch)
        except RuntimeError:  # the loop has closed: nobody waits for these answers any more
            pass


@dataclass
class EngineStats:
    batches: int = 0
    batched_requests: int = 0
    largest_batch: int = 0
    events_applied: int = 0
    items_applied: int = 0
    last_event_seq: int = 0


class Engine:
    """Owns the model and the live state on one thread (see the module docstring)."""

    def __init__(self, rec: Recommender, *, version: str, trained_through_seq: int = 0,
                 trained_through_item_seq: int = 0, store: EventStore | None = None,
                 exploration: float = 0.0, seed: int = 0, max_batch: int = 64, threads: int = 1,
                 on_impressions: Callable[[list[ImpressionRecord]], None] | None = None,
                 on_batch: Callable[[str, int, float], None] | None = None,
                 snapshot_seconds: float = 300.0, bot_guard: bool = True) -> None:
        self.rec = rec
        self.version = version
        self.trained_through_seq = trained_through_seq
        self.trained_through_item_seq = trained_through_item_seq
        self.store = store
        self.state = LiveState()
        self.exploration = exploration
        self.rng = np.random.default_rng(seed)
        self.max_batch = max_batch
        self.threads = threads
        self.on_impressions = on_impressions
        self.on_batch = on_batch
        self.stats = EngineStats()
        self._applied_seqs: set[int] = set()
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self.ready = False
        #: scenario → the learner of its learning mix policy (see shoprec.online.learner)
        self.learners: dict[str, Any] = self._make_learners(rec)
        self._expired_at = time.monotonic()
        self.snapshot_seconds = snapshot_seconds
        #: visits recognised as bots as their events arrive: those events move no counter and no reward
        #: (shoprec.health.live); the sequence numbers held, for models caught up later
        from ..health.live import SessionGuard

        self.guard = SessionGuard() if bot_guard else None
        self._held_seqs: set[int] = set()
        self._snapshots_stop = threading.Event()
        self._snapshotter: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Rebuild the online state from the store, then start the engine thread."""
        if self.store is not None:
            n_items, n_events = self.replay(self.rec, self.state, self.trained_through_seq,
                                            self.trained_through_item_seq)
            log.info("replayed %d item changes and %d events from %s", n_items, n_events, self.store.url)
            if self.learners:
                from ..online.snapshot import restore_all

                got = restore_all(self.learners.values(), self.store)
                log.info("policies of %s rebuilt from %d snapshot(s), then %d impressions and %d events",
                         sorted(self.learners), got["from_snapshot"], got["impressions"], got["events"])
        self.warm_up(self.rec)
        self._thread = threading.Thread(target=self._run, name="shoprec-engine", daemon=True)
        self._thread.start()
        if self.store is not None and self.snapshot_seconds > 0:
            self._snapshotter = threading.Thread(target=self._snapshot_loop, name="policy-snapshots", daemon=True)
            self._snapshotter.start()
        self.ready = True

    def _snapshot_loop(self) -> None:
        """Snapshot the learning policies' state (shoprec.online.snapshot.compact) at once and then
        every ``snapshot_seconds``; from copies rebuilt from the store, never from the live learners."""
        from ..online.snapshot import compact

        while not self._snapshots_stop.is_set():
            learners = list(self.learners.values())
            if learners:
                try:
                    got = compact(learners, self.store)
                    log.debug("policy snapshots stored: %s", got)
                except Exception:  # noqa: BLE001 - a failed snapshot only makes the next restart longer
                    log.exception("policy snapshot failed")
            self._snapshots_stop.wait(self.snapshot_seconds)

    @staticmethod
    def _make_learners(rec: Recommender, old: dict[str, Any] | None = None) -> dict[str, Any]:
        """A learner per scenario whose mix policy learns; a previous learner keeps its state when the
        new model's policy has the same arms and settings."""
        out: dict[str, Any] = {}
        for scenario, pipe in rec.pipelines.items():
            policy = pipe.policy_
            if not getattr(policy, "learns", False):
                continue
            prev = (old or {}).get(scenario)
            if prev is not None and prev.adopt(policy):
                prev.reward = pipe.config.reward
                out[scenario] = prev
                continue
            from ..online.learner import PolicyLearner

            out[scenario] = PolicyLearner(scenario, policy, pipe.config.reward)
        return out

    def learn_answers(self, records: Sequence[Any]) -> int:
        """Answers (this worker's, or another's from the bus) into the learners (engine thread)."""
        n = 0
        for learner in self.learners.values():
            n += learner.answers(records)
        return n

    def policy_summary(self, scenario: str) -> dict[str, Any] | None:
        """The scenario's policy as ``GET /v1/policies/{scenario}`` shows it (engine thread)."""
        learner = self.learners.get(scenario)
        if learner is None:
            return None
        policy = learner.policy
        probs = None
        if getattr(policy, "context_free", False):
            probs = policy.posterior_probabilities()
        return learner.summary(probs)

    def forget(self, user_id: str, sessions: Sequence[str] = ()) -> dict[str, int]:
        """An erased user (engine thread): their live state by user and by session, the bot guard's
        visits of the same keys, the served model's copy (served as a new visitor from now on), and
        the learners rebuilt from what the store still holds."""
        keys = [visitor_key(user_id, None)] + [visitor_key(None, s) for s in sessions]
        dropped = sum(self.state.visitors.pop(k, None) is not None for k in keys)
        if self.guard is not None:
            for k in [user_id, *sessions]:
                self.guard.visits.pop(str(k), None)
        known = self.rec.forget_users([user_id])
        if self.learners and self.store is not None:
            from ..online.snapshot import restore_all

            self.learners = self._make_learners(self.rec)
            restore_all(self.learners.values(), self.store)
        return {"visitors": int(dropped), "model_users": known}

    @staticmethod
    def warm_up(rec: Recommender) -> None:
        """One request per scenario before serving, so lazily built structures are not built on a
        customer's request."""
        for scenario in rec.pipelines:
            try:
                rec.recommend_raw(scenario, [RequestContext()])
            except Exception:  # noqa: BLE001 - a warm-up failure shows on the first real request
                log.exception("warm-up of %s failed", scenario)

    def stop(self) -> None:
        self._snapshots_stop.set()
        if self._snapshotter is not None:
            self._snapshotter.join(timeout=30)
            self._snapshotter = None
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        self.ready = False

    def replay(self, rec: Recommender, state: LiveState, after_seq: int, after_item_seq: int,
               until_seq: int | None = None, serving: bool = True) -> tuple[int, int]:
        """Apply stored item changes and events newer than the model to ``rec`` and ``state``
        (``serving``: they are the engine's own, so its bookkeeping follows)."""
        batch = [it for it in self.store.iter_items() if it.seq > after_item_seq]
        if batch:
            self._apply_items(rec, batch, count=serving)
        n_events = 0
        for chunk in self.store.iter_events(after_seq):
            if until_seq is not None:
                chunk = [e for e in chunk if e.seq <= until_seq]
                if not chunk:
                    break
            if serving:
                self._apply_events(rec, state, chunk)
            else:
                self._observe(rec, state, chunk, self._admitted(chunk))
            n_events += len(chunk)
        return len(batch), n_events

    # ------------------------------------------------------------------ submit (any thread)
    def submit(self, kind: str, payload: Any, scenario: str | None = None) -> Future:
        fut: Future = Future()
        self._queue.put(_Task(kind, payload, fut, scenario))
        return fut

    async def run(self, kind: str, payload: Any, scenario: str | None = None) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put(_Task(kind, payload, fut, scenario, loop=loop))
        return await fut

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        from threadpoolctl import threadpool_limits

        # the HTTP loop has the other core: BLAS threads would only contend with it
        with threadpool_limits(self.threads):
            self._loop()

    def _loop(self) -> None:
        # Events, catalogue changes and swaps run the moment the thread sees them, in arrival order;
        # recommendation requests wait per scenario and are answered one batch (<= max_batch) at a
        # time, the scenario whose head has waited longest first. The queue is read again after
        # every batch, so an acknowledged event waits for at most the batch in progress, never for
        # the requests queued before it (which may as well see it).
        pending: dict[str, deque[_Task]] = {}
        stopping = False
        while True:
            if not any(pending.values()):
                if stopping:
                    return
                first = self._queue.get()
                if first is None:
                    return
                self._take(first, pending)
            while not stopping:
                try:
                    t = self._queue.get_nowait()
                except queue.Empty:
                    break
                if t is None:
                    stopping = True   # answer what was accepted, then stop
                    break
                self._take(t, pending)
            waiting = [(g[0].enqueued, sc) for sc, g in pending.items() if g]
            if not waiting:
                continue
            scenario = min(waiting)[1]
            group = pending[scenario]
            batch = [group.popleft() for _ in range(min(len(group), self.max_batch))]
            self._answer(scenario, batch)

    def _take(self, t: _Task, pending: dict[str, deque[_Task]]) -> None:
        if t.kind == "recommend":
            pending.setdefault(t.scenario, deque()).append(t)
        else:
            self._mutate(t)

    def _mutate(self, t: _Task) -> None:
        try:
            if t.kind == "events":
                res = self._apply_events(self.rec, self.state, t.payload)
            elif t.kind == "items":
                res = self._apply_items(self.rec, t.payload)
            elif t.kind == "call":
                res = t.payload(self)
            else:
                raise ValueError(f"unknown task {t.kind!r}")
            settle([(t, res, None)])
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            log.exception("engine task %s failed", t.kind)
            settle([(t, None, e)])

    def _answer(self, scenario: str, group: list[_Task]) -> None:
        start = time.perf_counter()
        try:
            results = self._recommend(scenario, [t.payload for t in group])
        except RequestError:
            if len(group) == 1:
                import sys

                settle([(group[0], None, sys.exc_info()[1])])
                return
            for t in group:  # one bad request must not fail the others
                self._answer(scenario, [t])
            return
        except BaseException as e:  # noqa: BLE001
            log.exception("recommendation batch failed")
            settle([(t, None, e) for t in group])
            return
        seconds = time.perf_counter() - start
        self.stats.batches += 1
        self.stats.batched_requests += len(group)
        self.stats.largest_batch = max(self.stats.largest_batch, len(group))
        if self.on_batch is not None:
            self.on_batch(scenario, len(group), seconds)
        settle([(t, res, None) for t, (res, _) in zip(group, results)])
        impressions = [imp for _, imp in results]
        for imp in impressions:   # the batch's compute time: the experiments' latency guardrail
            imp.context["latency_ms"] = round(seconds * 1000.0, 3)
        learner = self.learners.get(scenario)
        if learner is not None:
            learner.answers(impressions)
        if self.on_impressions is not None:
            self.on_impressions(impressions)

    # ------------------------------------------------------------------ work
    def _recommend(self, scenario: str, payloads: list[dict[str, Any]]) -> list[tuple[dict, ImpressionRecord]]:
        rec = self.rec
        if scenario not in rec.pipelines:
            raise RequestError(f"unknown scenario {scenario!r}; this model serves {sorted(rec.pipelines)}")
        pipe = rec.pipelines[scenario]
        excludes_bought = pipe.config.rules.exclude_history != "none"
        contexts, metas = [], []
        for p in payloads:
            ctx = p["context"]
            if not isinstance(ctx, RequestContext):
                ctx = RequestContext.parse(ctx)
            ctx, bought = self.state.fill(ctx, p.get("session_id"))
            if excludes_bought and bought:
                filters = ctx.filters.model_copy(update={"exclude_ids": list(ctx.filters.exclude_ids) + bought})
                ctx = ctx.model_copy(update={"filters": filters})
            contexts.append(ctx)
            metas.append(p)
        mixes = [p.get("mix") for p in payloads]
        responses = rec.recommend_raw(scenario, contexts, mixes if any(mixes) else None)
        out = []
        now = time.time()
        for p, ctx, resp in zip(metas, contexts, responses):
            items = resp["items"]   # fresh dicts per request: positions and propensities go in place
            shown, propensity = self._explore(len(items))
            items = [items[i] for i in shown]
            for pos, (it, pr) in enumerate(zip(items, propensity), 1):
                it["position"] = pos
                it["propensity"] = pr
            body = {"request_id": p["request_id"], "scenario": scenario, "model_version": self.version,
                    "items": items, "notes": resp["notes"]}
            if p.get("experiment"):
                body["experiment"] = p["experiment"]
            imp = ImpressionRecord(
                request_id=p["request_id"], created_at=now, scenario=scenario, model_version=self.version,
                items=[{"item_id": it["item_id"], "position": it["position"], "score": it["score"],
                        "strategies": it["strategies"], "propensity": it["propensity"]} for it in items],
                user_id=ctx.user_id, session_id=p.get("session_id"),
                context={"current_item": ctx.current_item, "basket": list(ctx.basket), "query": ctx.query,
                         "country": ctx.country, "device": ctx.device, "k": ctx.k,
                         "session_length": len(ctx.session),
                         # the mix policy's choice: arm and its propensity (items' own propensities are
                         # those of the order they are shown in, given that arm's ranking)
                         "policy": resp.get("policy"),
                         "experiment": p.get("experiment")})
            bot = self.guard.kind_of(p.get("session_id") or ctx.user_id) if self.guard is not None else ""
            if bot:   # an answer to a recognised bot: logged, never learned from
                imp.context["bot"] = bot
            out.append((body, imp))
        return out

    def _explore(self, n: int) -> tuple[Sequence[int], list[float]]:
        """The order to show ``n`` ranked items in, and each shown item's probability of being at
        its position: with probability ``exploration`` the list is shown in a uniformly random order,
        otherwise as ranked, so ``P = (1 − ε)·[ranked there] + ε / n``."""
        eps = self.exploration
        if n == 0 or eps <= 0:
            return range(n), [1.0] * n
        order = np.arange(n)
        if self.rng.random() < eps:
            order = self.rng.permutation(n)
        prop = [(1 - eps) * float(order[p] == p) + eps / n for p in range(n)]
        return order, prop

    def _apply_events(self, rec: Recommender, state: LiveState, records: Sequence[EventRecord]) -> dict:
        fresh = [e for e in records if e.seq <= 0 or e.seq not in self._applied_seqs]
        for e in fresh:
            if e.seq > 0:
                self._applied_seqs.add(e.seq)
        if len(self._applied_seqs) > 200_000:  # keep the recent window (races are short)
            cut = sorted(self._applied_seqs)[-100_000]
            self._applied_seqs = {s for s in self._applied_seqs if s >= cut}
        if not fresh:
            return {"applied": 0, "unknown_items": 0}
        admitted = None
        if self.guard is not None and state is self.state:
            admitted = self.guard.admit(fresh)
            if not admitted.all():
                self._held_seqs.update(e.seq for e, ok in zip(fresh, admitted) if not ok and e.seq > 0)
                if len(self._held_seqs) > 1_000_000:
                    self._held_seqs = set(sorted(self._held_seqs)[-500_000:])
        res = self._observe(rec, state, fresh, admitted)
        if state is self.state:
            learnable = fresh if admitted is None or admitted.all() else [e for e, ok in zip(fresh, admitted) if ok]
            for learner in self.learners.values():
                learner.events(learnable)
            if time.monotonic() - self._expired_at > 60:
                self._expired_at = time.monotonic()
                for learner in self.learners.values():
                    learner.expire()
        self.stats.events_applied += len(fresh)
        self.stats.last_event_seq = max([self.stats.last_event_seq] + [e.seq for e in fresh])
        return res

    def _admitted(self, events: Sequence[EventRecord]) -> np.ndarray | None:
        """Which of these (already judged) events may move counters: those the guard did not hold."""
        if not self._held_seqs:
            return None
        return np.array([e.seq not in self._held_seqs for e in events], bool)

    @staticmethod
    def _observe(rec: Recommender, state: LiveState, fresh: Sequence[EventRecord],
                 admitted: np.ndarray | None = None) -> dict:
        """Events into the visitors' state and (those ``admitted``, default all) into the model's
        online strategies."""
        contexts = state.apply(fresh)
        items = rec.data_.items
        item_idx = items.to_index([e.item_id for e in fresh], missing=-1)
        known = item_idx >= 0
        n_unknown = int((~known).sum())
        if admitted is not None:
            known &= admitted
        if known.any():
            sel = np.flatnonzero(known)
            users = rec.data_.users.to_index([fresh[i].user_id or "" for i in sel], missing=-1)
            beh = np.array([_BEHAVIOUR_CODE.get(fresh[i].behaviour, int(Behaviour.INTERACTION)) for i in sel], np.int8)
            ts = np.array([fresh[i].timestamp for i in sel], np.float64)
            # the contexts of the whole batch in one id lookup
            lengths = np.array([len(contexts[i]) for i in sel], np.int64)
            flat = [x for i in sel for x in contexts[i]]
            codes = items.to_index(flat, missing=-1) if flat else np.zeros(0, np.int32)
            keep = codes >= 0
            counts = np.bincount(np.repeat(np.arange(len(sel)), lengths)[keep], minlength=len(sel))
            indptr = np.zeros(len(sel) + 1, np.int64)
            np.cumsum(counts, out=indptr[1:])
            ctx = Ragged(indptr, codes[keep].astype(np.int32))
            price = np.array([np.nan if fresh[i].price is None else fresh[i].price for i in sel], np.float64)
            rec.observe(LiveEvents(users.astype(np.int32), item_idx[sel].astype(np.int32), beh, ts, ctx, price))
        return {"applied": len(fresh), "unknown_items": n_unknown}

    def _apply_items(self, rec: Recommender, records: Sequence[ItemRecord], count: bool = True) -> dict:
        if not records:
            return {"added": 0, "updated": 0}
        rows = [{"item_id": r.item_id, **r.attributes} for r in records]
        res = rec.upsert_items(pd.DataFrame(rows))
        if count:
            self.stats.items_applied += len(records)
        return res

    # ------------------------------------------------------------------ model swap
    def prepare(self, rec: Recommender, manifest: dict) -> "PreparedModel":
        """Bring a newly loaded model up to the store's present, off the engine thread: replay the
        item changes and events it was not trained on, warm it up."""
        self.warm_up(rec)
        meta = manifest.get("meta", {})
        scratch = LiveState()
        until = 0
        if self.store is not None:
            until = self.store.last_seq()
            self.replay(rec, scratch, int(meta.get("trained_through_seq", 0)),
                        int(meta.get("trained_through_item_seq", 0)), until_seq=until, serving=False)
        return PreparedModel(rec, manifest, until, scratch)

    @staticmethod
    def swap(prepared: "PreparedModel") -> Callable[["Engine"], str]:
        """The engine task that catches a prepared model up with the events stored since and makes
        it the serving model; batches already answered used the old one, the next use the new."""
        def task(engine: "Engine") -> str:
            rec = prepared.rec
            if engine.store is not None:
                gap = [e for chunk in engine.store.iter_events(prepared.replayed_until) for e in chunk]
                if gap:
                    engine._observe(rec, prepared.scratch, gap, engine._admitted(gap))
                    engine._applied_seqs.update(e.seq for e in gap)
            meta = prepared.manifest.get("meta", {})
            learners = engine._make_learners(rec, engine.learners)
            fresh = [ln for s, ln in learners.items() if ln is not engine.learners.get(s)]
            if fresh and engine.store is not None:
                from ..online.snapshot import restore_all

                restore_all(fresh, engine.store)
            engine.learners = learners
            engine.rec = rec
            engine.version = prepared.manifest["version"]
            engine.trained_through_seq = int(meta.get("trained_through_seq", 0))
            engine.trained_through_item_seq = int(meta.get("trained_through_item_seq", 0))
            return engine.version
        return task


@dataclass
class PreparedModel:
    rec: Recommender
    manifest: dict
    replayed_until: int
    scratch: LiveState
