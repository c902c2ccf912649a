"""A shop simulator: visitors from real data see the engine's real answers and click, cart and buy.

The simulated visitor and the choice model (stated, seeded, and kept apart from the policies they
test):

* **Who visits**: a known customer of the training period, drawn uniformly; what they want is what
  they really bought after the temporal cut (``EvalTask.relevant`` of a temporal split of the shop's
  own events).
* **What they see**: the scenario's answer for them from the same in-process
  :class:`~shoprec.scenarios.engine.Recommender` the service runs, with the mix policy under test
  choosing the arm.
* **Choice model** (position-based click model): the item at position ``p`` is examined with
  probability ``p ** -eta`` and clicked, once examined, with probability ``click_wanted`` if the visitor
  wants it, else ``click_other``. A click leads to an add-to-cart with probability ``cart_rate`` and a
  cart to a purchase with ``buy_rate``; the defaults are RetailRocket's funnel (view → add-to-cart
  263 / 9,076, add-to-cart → transaction 46 / 263 in ``../shared/data/retailrocket-sample``), and
  :func:`funnel_rates` computes them from any event table.
* **Drift on demand**: from impression ``drift_at`` on, every visitor also wants ``drift_items`` (e.g.
  the items a category or a sale made popular).
* **Live events** (``live=True``): the visitors' clicks, add-to-carts and purchases flow back into the
  recommender's online state after each batch (``Recommender.observe``: live co-visitation, trending
  and popularity counts, as the service applies posted events), on a simulated clock that starts at
  the end of the training data and advances ``seconds_per_answer`` per answer. Each run starts from
  its own copy of the fitted recommender, so every policy meets the same starting state.

Each answer's reward is the scenario's ``[reward]`` (best behaviour per shown item, summed over the
answer) and is fed to the policy at once (``MixFeedback``: a pull and its reward).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..scenarios.config import RewardConfig
from ..scenarios.stages import MixFeedback

__all__ = ["ChoiceModel", "ShopSimulator", "funnel_rates"]


def funnel_rates(events: pd.DataFrame, behaviour: str = "event") -> tuple[float, float]:
    """(add-to-cart per view, purchase per add-to-cart) of an event table (RetailRocket's names
    ``view``, ``addtocart``, ``transaction`` or shoprec's)."""
    names = events[behaviour].astype(str).str.lower()
    views = int(names.isin(["view", "pv"]).sum())
    carts = int(names.isin(["addtocart", "add_to_cart", "cart"]).sum())
    buys = int(names.isin(["transaction", "purchase", "buy"]).sum())
    if not views or not carts:
        raise ValueError("the events need views and add-to-carts to give a funnel")
    return carts / views, buys / carts


@dataclass(frozen=True)
class ChoiceModel:
    """The simulated visitor's choices (module docstring)."""

    eta: float = 1.0
    click_wanted: float = 0.3
    click_other: float = 0.01
    cart_rate: float = 263 / 9076
    buy_rate: float = 46 / 263


@dataclass
class SimRun:
    """One policy's run: the reward of every answer, in order, its arm, and the arms' names."""

    policy: str
    reward: np.ndarray
    arm: np.ndarray
    arms: tuple[str, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def curve(self, every: int = 1000) -> dict[str, list[float]]:
        c = np.cumsum(self.reward)
        idx = np.arange(every, len(c) + 1, every)
        return {"impressions": idx.tolist(), "cumulative_reward": c[idx - 1].tolist()}


class ShopSimulator:
    """Runs a scenario of ``rec`` against simulated visitors (module docstring).

    ``task``: a temporal split of the shop's events whose ``train`` the Recommender was fitted on;
    its queries are the visitors and ``relevant`` what each wants."""

    def __init__(self, rec: Any, scenario: str, task: Any, choice: ChoiceModel | None = None,
                 reward: RewardConfig | None = None, seed: int = 0, live: bool = False,
                 seconds_per_answer: float = 60.0) -> None:
        self.rec = rec
        self.live = live
        self.seconds_per_answer = seconds_per_answer
        ts = task.train.events["timestamp"].to_numpy()
        self.clock0 = float(ts.max()) if len(ts) else 0.0
        self.scenario = scenario
        self.pipe = rec.pipelines[scenario]
        self.choice = choice or ChoiceModel()
        self.reward = reward or self.pipe.config.reward
        self.seed = seed
        q = task.queries
        users = np.asarray(q.user_idx)
        basket = q.basket
        with_basket = len(basket) == len(users) and int(basket.lengths.sum()) > 0
        # a home visitor is a known customer; a cart visitor is a basket (its customer may be anonymous)
        keep = np.flatnonzero(np.ones(len(users), bool) if with_basket else users >= 0)
        self.users = users[keep]
        self.wanted = sp.csr_matrix(task.relevant)[keep]
        known = self.users >= 0
        ext = np.asarray(task.train.users.to_external(np.where(known, self.users, 0)), dtype=object)
        self.user_ids = [str(e) if k else None for e, k in zip(ext, known)]
        self.baskets = [np.asarray(basket[r], np.int32) if with_basket else np.zeros(0, np.int32) for r in keep]
        self.contexts: list[dict[str, Any]] = []
        for j, r in enumerate(keep):
            ctx: dict[str, Any] = {} if self.user_ids[j] is None else {"user_id": self.user_ids[j]}
            if with_basket:
                ctx["basket"] = [str(i) for i in task.train.items.to_external(basket[r])]
            self.contexts.append(ctx)

    def run(self, policy: Any, impressions: int = 50_000, batch: int = 100, drift_at: int | None = None,
            drift_items: np.ndarray | None = None, label: str | None = None) -> SimRun:
        """Serve ``impressions`` answers in batches with ``policy`` as the scenario's mix policy.
        The visitor sequence and their choices' random numbers depend only on ``seed``, so every
        policy meets the same visitors (paired comparison)."""
        rec = self.rec
        if self.live:
            import copy

            rec = copy.deepcopy(self.rec)        # the live events change it: every run from the same start
        pipe = rec.pipelines[self.scenario]
        old = pipe.policy_
        policy.bind(pipe.env_)
        pipe.policy_ = policy
        rng = np.random.default_rng(self.seed)
        k = pipe.config.k
        c = self.choice
        examine = np.arange(1, k + 1, dtype=np.float64) ** -c.eta
        w_click, w_cart, w_buy = self.reward.click, self.reward.cart, self.reward.purchase
        drift = np.zeros(rec.data_.n_items, bool)
        if drift_items is not None:
            drift[np.asarray(drift_items, np.int64)] = True
        rewards = np.zeros(impressions)
        arms = np.zeros(impressions, np.int32)
        names = tuple(policy.arms([sp_.display for sp_ in pipe.specs_], pipe.weights_)[0])
        index = {a: i for i, a in enumerate(names)}
        try:
            for lo in range(0, impressions, batch):
                n = min(batch, impressions - lo)
                rows = rng.integers(0, len(self.users), n)
                u = rng.random((n, k, 4))            # examine, click, cart, buy: drawn whatever the policy
                resp = rec.recommend_raw(self.scenario, [dict(self.contexts[r]) for r in rows])
                items = np.full((n, k), -1, np.int64)
                for i, rsp in enumerate(resp):
                    ids = [it["item_id"] for it in rsp["items"]][:k]
                    if ids:
                        items[i, :len(ids)] = rec.data_.items.to_index(ids, missing=-1)
                valid = items >= 0
                safe = np.where(valid, items, 0)
                want = np.asarray(self.wanted[np.repeat(rows, k), safe.ravel()]).reshape(n, k) > 0
                if drift_items is not None and lo >= (drift_at or 0):
                    want |= drift[safe]
                want &= valid
                p_click = np.where(want, c.click_wanted, c.click_other) * valid
                clicked = (u[..., 0] < examine) & (u[..., 1] < p_click)
                carted = clicked & (u[..., 2] < c.cart_rate)
                bought = carted & (u[..., 3] < c.buy_rate)
                per_item = np.where(bought, max(w_buy, w_cart, w_click),
                                    np.where(carted, max(w_cart, w_click), np.where(clicked, w_click, 0.0)))
                r = per_item.sum(1)
                arm = np.array([index.get((rsp.get("policy") or {}).get("arm"), 0) for rsp in resp], np.int32)
                feats = None
                if any("features" in (rsp.get("policy") or {}) for rsp in resp):
                    feats = np.array([rsp["policy"]["features"] for rsp in resp], np.float64)
                policy.update(MixFeedback(arm, r, features=feats))
                if self.live and clicked.any():
                    self._observe(rec, rows, items, clicked, carted, bought, lo)
                rewards[lo:lo + n] = r
                arms[lo:lo + n] = arm
        finally:
            pipe.policy_ = old
        return SimRun(label or policy.name, rewards, arms, names)

    def _observe(self, rec: Any, rows: np.ndarray, items: np.ndarray, clicked: np.ndarray, carted: np.ndarray,
                 bought: np.ndarray, lo: int) -> None:
        """The batch's clicks (as views), add-to-carts and purchases into ``rec``'s online state."""
        from ..data.schema import Behaviour
        from ..strategies.base import LiveEvents
        from ..data.ragged import Ragged

        i, p = np.nonzero(clicked)
        beh = np.where(bought[i, p], int(Behaviour.PURCHASE),
                       np.where(carted[i, p], int(Behaviour.ADD_TO_CART), int(Behaviour.VIEW))).astype(np.int8)
        t = self.clock0 + (lo + i).astype(np.float64) * self.seconds_per_answer
        ctx = Ragged.from_lists([self.baskets[rows[a]] for a in i.tolist()])
        rec.observe(LiveEvents(self.users[rows[i]].astype(np.int32), items[i, p].astype(np.int32), beh, t, ctx))


#: the simulated home page of ``shoprec simulate`` and ``benchmarks/online.py --parts sim``
DEMO_ARMS = {"ease": {"ease": 1.0}, "item_knn": {"item_knn": 1.0}, "trending": {"trending": 1.0}}
DEMO_SCENARIO = {"scenario": {"name": "home", "k": 10},
                 "strategies": [{"name": "ease"}, {"name": "item_knn"},
                                {"label": "trending", "name": "popularity", "params": {"mode": "trending"},
                                 "weight": 0.3}],
                 "fusion": {"method": "weighted"}, "rules": {"exclude_history": "none"}}


#: the simulated cart page: complements of a real basket of the later period (one of its items hidden:
#: the visitor wants it), from bought-together counts, item-kNN over baskets, or what is trending
CART_ARMS = {"fbt": {"fbt": 1.0}, "session_knn": {"session_knn": 1.0}, "trending": {"trending": 1.0}}
CART_SCENARIO = {"scenario": {"name": "cart", "k": 10},
                 "strategies": [{"name": "fbt", "weight": 4.0}, {"name": "session_knn", "weight": 0.5},
                                {"label": "trending", "name": "popularity", "params": {"mode": "trending"},
                                 "weight": 0.3}],
                 "fusion": {"method": "weighted"}, "rules": {"exclude_basket": True, "exclude_history": "none"}}


def cart_world(data: Any, test_fraction: float = 0.2) -> tuple[Any, Any]:
    """(Recommender, task) of the simulated cart page: ``data`` cut in time, the CART_SCENARIO fitted
    on the first part, and the later baskets with one item hidden (:func:`basket_hold_one_out`)."""
    from ..evaluation.splits import basket_hold_one_out
    from ..scenarios.config import scenario_from_dict
    from ..scenarios.engine import Recommender

    task = basket_hold_one_out(data, test_fraction=test_fraction)
    rec = Recommender([scenario_from_dict(CART_SCENARIO, "simulated cart")]).fit(task.train)
    return rec, task


def demo_world(data: Any, test_fraction: float = 0.2, n_drift_items: int = 30) -> tuple[Any, Any, np.ndarray]:
    """(Recommender, task, drift items) of the simulated home page: ``data`` (the embedded demo shop
    in ``shoprec simulate``) cut in time, the DEMO_SCENARIO fitted on its first part, and the items its
    trending strategy ranks first (the promotion a drift makes everyone want)."""
    from ..evaluation.splits import temporal_split
    from ..scenarios.config import scenario_from_dict
    from ..scenarios.engine import Recommender
    from ..strategies import Queries

    task = temporal_split(data, test_fraction=test_fraction)
    rec = Recommender([scenario_from_dict(DEMO_SCENARIO, "simulated home")]).fit(task.train)
    top = rec.pipelines["home"].models_[2].recommend(Queries.for_users(np.array([-1], np.int32)),
                                                     n_drift_items).item_idx[0]
    return rec, task, top[top >= 0]


def policy_specs(names: list[str], arms: dict[str, dict[str, float]]) -> list[tuple[str, dict]]:
    """(label, stage spec) per policy name: ``fixed`` expands to one fixed policy per arm, ``shipped``
    is the scenario's own static mix, any other name a mix policy over ``arms``."""
    out = []
    for name in names:
        if name == "fixed":
            out += [(f"fixed: {a}", {"name": "uniform", "params": {"arms": {a: mix}}}) for a, mix in arms.items()]
        elif name in ("shipped", "static"):
            out.append(("shipped mix", {"name": "static"}))
        else:
            params: dict[str, Any] = {"arms": arms}
            if name == "thompson":
                params["refresh_seconds"] = 0
            out.append((name, {"name": name, "params": params}))
    return out


def compare_policies(sim: ShopSimulator, specs: list[tuple[str, dict]], impressions: int, *, batch: int = 200,
                     drift_at: int | None = None, drift_items: np.ndarray | None = None) -> list[SimRun]:
    """Every policy on the same visitors (see :meth:`ShopSimulator.run`)."""
    from ..scenarios.stages import make_stage

    return [sim.run(make_stage("mix_policy", spec), impressions, batch=batch, label=label, drift_at=drift_at,
                    drift_items=drift_items) for label, spec in specs]
