"""The shop simulator on a tiny shop whose answers are known: the visitors want exactly what the
popularity arm shows, every shown item is examined and a wanted one is always clicked."""

import numpy as np
import pytest
import scipy.sparse as sp

from shoprec.evaluation.splits import EvalTask
from shoprec.online.simulator import ChoiceModel, ShopSimulator, funnel_rates
from shoprec.scenarios import Recommender
from shoprec.scenarios.config import scenario_from_dict
from shoprec.scenarios.stages import make_stage
from shoprec.strategies import Queries
from shoprec.testing import tiny_shop

K = 3
ARMS = {"pop": {"pop": 1.0}, "knn": {"item_knn": 1.0}}


@pytest.fixture(scope="module")
def world():
    data = tiny_shop()
    cfg = scenario_from_dict({"scenario": {"name": "home", "k": K},
                              "strategies": [{"label": "pop", "name": "popularity"}, {"name": "item_knn"}],
                              "fusion": {"method": "weighted"}, "rules": {"exclude_history": "none"}}, "test")
    rec = Recommender([cfg]).fit(data)
    users = np.arange(data.n_users, dtype=np.int32)
    # every visitor wants the K items popularity ranks first (what the "pop" arm shows everyone)
    top = rec.pipelines["home"].models_[0].recommend(Queries.for_users(np.array([-1], np.int32)), K).item_idx[0]
    wanted = sp.csr_matrix((np.ones(len(users) * K), (np.repeat(users, K), np.tile(top, len(users)))),
                           shape=(len(users), data.n_items))
    task = EvalTask("tiny", data, Queries.for_users(users), wanted, None, "test")
    return rec, task


CERTAIN = ChoiceModel(eta=0.0, click_wanted=1.0, click_other=0.0, cart_rate=0.0, buy_rate=0.0)


def test_known_reward_of_a_fixed_arm(world):
    rec, task = world
    sim = ShopSimulator(rec, "home", task, choice=CERTAIN, seed=0)
    run = sim.run(make_stage("mix_policy", {"name": "uniform", "params": {"arms": {"pop": ARMS["pop"]}}}),
                  impressions=300, batch=50)
    # K wanted items shown and clicked in every answer, click weight .1
    np.testing.assert_allclose(run.reward, 0.1 * K)
    assert run.curve(100)["cumulative_reward"] == pytest.approx([100 * K * 0.1 * i for i in (1, 2, 3)])


def test_thompson_finds_the_arm_visitors_want_and_drift_changes_it(world):
    rec, task = world
    sim = ShopSimulator(rec, "home", task, choice=CERTAIN, seed=0)
    pol = make_stage("mix_policy", {"name": "thompson", "params": {"arms": ARMS, "refresh_seconds": 0,
                                                                   "reward": "gaussian", "prior_sd": 0.1}})
    run = sim.run(pol, impressions=2000, batch=50)
    assert (run.arm[-500:] == 0).mean() > 0.9
    # the same visitors and random numbers: a fixed knn arm earns less
    knn = sim.run(make_stage("mix_policy", {"name": "uniform", "params": {"arms": {"knn": ARMS["knn"]}}}),
                  impressions=2000, batch=50)
    assert run.reward.sum() > knn.reward.sum()
    # drift: every visitor also wants all items from impression 1000 on: every arm earns .1·K after it
    both = sim.run(make_stage("mix_policy", {"name": "uniform", "params": {"arms": {"knn": ARMS["knn"]}}}),
                   impressions=2000, batch=50, drift_at=1000, drift_items=np.arange(rec.data_.n_items))
    np.testing.assert_allclose(both.reward[1000:], 0.1 * K)


def test_funnel_rates():
    import pandas as pd

    ev = pd.DataFrame({"event": ["view"] * 8 + ["addtocart"] * 2 + ["transaction"]})
    assert funnel_rates(ev) == (2 / 8, 1 / 2)
    with pytest.raises(ValueError, match="views and add-to-carts"):
        funnel_rates(pd.DataFrame({"event": ["view"]}))


def test_cli_simulate(tmp_path):
    import json

    from typer.testing import CliRunner

    from shoprec.cli import app

    out = tmp_path / "sim.json"
    r = CliRunner().invoke(app, ["simulate", "--policies", "fixed,thompson", "--impressions", "400",
                                 "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "fixed: ease" in r.output and "thompson" in r.output
    runs = json.loads(out.read_text())["runs"]
    assert [x["policy"] for x in runs] == ["fixed: ease", "fixed: item_knn", "fixed: trending", "thompson"]
    r = CliRunner().invoke(app, ["simulate", "--policies", "greedy"])
    assert r.exit_code == 2 and "unknown policies" in r.output


def test_cart_visitors_are_real_baskets_with_one_item_wanted():
    """The cart page's simulated visitors: later baskets of the demo shop, one item hidden; answers
    come from the basket (fbt) and the hidden item is what earns a reward."""
    from shoprec.data.adapters import load_online_retail
    from shoprec.demo_data import DEMO_PATH
    from shoprec.online.simulator import CART_ARMS, cart_world, policy_specs

    rec, task = cart_world(load_online_retail(DEMO_PATH)[0])
    sim = ShopSimulator(rec, "cart", task, seed=1)
    assert len(sim.contexts) == len(task.queries.user_idx)          # anonymous baskets are visitors too
    assert all(ctx["basket"] for ctx in sim.contexts)
    assert (np.diff(sim.wanted.indptr) == 1).all()                  # one hidden item each
    (label, spec), = [s for s in policy_specs(["fixed"], CART_ARMS) if s[0] == "fixed: fbt"]
    run = sim.run(make_stage("mix_policy", spec), impressions=400, batch=200, label=label)
    assert len(run.reward) == 400 and run.reward.min() >= 0


def test_live_events_flow_into_the_online_state_of_a_copy(world):
    rec, task = world
    pop_model = rec.pipelines["home"].models_[0]
    top = pop_model.recommend(Queries.for_users(np.array([-1], np.int32)), K).item_idx[0]
    # the visitors want everything but what popularity shows first: its arm earns nothing at the start
    # and only the knn arm's clicks can change that, by raising the clicked items' popularity
    n_users, n_items = task.relevant.shape
    wanted = np.ones((n_users, n_items))
    wanted[:, top] = 0
    others = EvalTask("tiny", task.train, task.queries, sp.csr_matrix(wanted), None, "test")
    before = pop_model.scores_.copy()
    uniform = {"name": "uniform", "params": {"arms": ARMS, "seed": 3}}
    runs = {live: ShopSimulator(rec, "home", others, choice=CERTAIN, seed=0, live=live).run(
        make_stage("mix_policy", uniform), impressions=3000, batch=50) for live in (False, True)}
    pop_reward = {live: r.reward[r.arm == 0] for live, r in runs.items()}
    assert pop_reward[False].sum() == 0                     # without live events nothing moves
    assert pop_reward[True][-200:].mean() > 0.1             # with them, the clicked items climb the ranking
    np.testing.assert_array_equal(pop_model.scores_, before)   # the simulator's own recommender is untouched
