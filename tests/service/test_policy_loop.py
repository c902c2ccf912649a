"""The loop, live: a served scenario with a Thompson-sampling [policy] shifts its traffic toward the arm
whose answers earn rewards (posted as events), and after kill -9 and a restart the policy's state is
the one it had (rebuilt from the store's impressions and events).

The simulated shopper (seeded, here in the test): every answer of arm ``pop`` gets a click and a
purchase of its first item, by request id and position; answers of arm ``knn`` get nothing.
"""

from __future__ import annotations

import sqlite3
import time

import httpx
import numpy as np
import pytest

from shoprec.scenarios.config import scenario_from_dict

from ._server import ServerProcess
from .conftest import API_KEY, PUBLIC_KEY, demo_shop_recent

ROUNDS, PER_ROUND = 8, 25


@pytest.fixture(scope="module")
def policy_models(tmp_path_factory):
    from shoprec.service.training import train

    cfg = scenario_from_dict({
        "scenario": {"name": "home", "k": 5},
        "strategies": [{"label": "pop", "name": "popularity"}, {"name": "item_knn"}],
        "policy": {"name": "thompson", "params": {"explore": 0.05, "seed": 7,
                                                  "arms": {"pop": {"pop": 1.0}, "knn": {"item_knn": 1.0}}}},
        "reward": {"click": 0.1, "purchase": 1.0},
    }, "test scenario")
    root = tmp_path_factory.mktemp("policy-models")
    train(demo_shop_recent(), root, scenarios=[cfg])
    return root


def arms_of(store, request_ids, timeout=10.0):
    """The arm each answer was logged with (the impression log is written within a second)."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(store) as db:
            rows = db.execute("SELECT request_id, context FROM impressions").fetchall()
        import json

        got = {r: json.loads(c)["policy"]["arm"] for r, c in rows}
        if all(r in got for r in request_ids) or time.monotonic() > deadline:
            return [got.get(r) for r in request_ids]
        time.sleep(0.1)


def policy(srv):
    r = httpx.get(f"{srv.url}/v1/policies/home", headers={"X-API-Key": API_KEY}, timeout=10)
    assert r.status_code == 200, r.text
    return {a["arm"]: a for a in r.json()["arms"]}, r.json()


def test_posted_rewards_shift_traffic_and_survive_kill_9(policy_models, tmp_path):
    store = tmp_path / "events.db"
    rng = np.random.default_rng(11)
    shares = []
    with ServerProcess(policy_models, store, log=tmp_path / "server.log") as srv:
        start, _ = policy(srv)
        assert start["pop"]["probability"] == pytest.approx(0.5, abs=1e-6)
        pub = {"X-API-Key": PUBLIC_KEY}
        for rnd in range(ROUNDS):
            answers = []
            for i in range(PER_ROUND):
                r = httpx.post(f"{srv.url}/v1/recommendations/home", headers=pub, timeout=10,
                               json={"session_id": f"s{rnd}-{i}-{rng.integers(1 << 30)}", "k": 5})
                assert r.status_code == 200, r.text
                answers.append(r.json())
            arms = arms_of(store, [a["request_id"] for a in answers])
            shares.append(np.mean([a == "pop" for a in arms]))
            events = []
            for a, arm in zip(answers, arms):
                if arm == "pop" and a["items"]:
                    first = a["items"][0]
                    for beh in ("click", "purchase"):
                        events.append({"item_id": first["item_id"], "behaviour": beh, "request_id": a["request_id"],
                                       "position": first["position"], "session_id": "buyer"})
            if events:
                r = httpx.post(f"{srv.url}/v1/events", headers=pub, json={"events": events}, timeout=10)
                assert r.status_code == 200, r.text
        before, body = policy(srv)
        assert before["pop"]["probability"] > 0.9, (shares, body)
        assert np.mean(shares[-2:]) > np.mean(shares[:2]) and np.mean(shares[-2:]) > 0.8, shares
        assert before["pop"]["posterior_mean"] > 0.8 and before["knn"]["posterior_mean"] < 0.2
        assert body["counts"]["by_request"] > 0 and body["counts"]["not_shown"] == 0
        pulls = sum(a["pulls"] for a in before.values())
        assert pulls == ROUNDS * PER_ROUND
        srv.kill()
        srv.start()
        after, body = policy(srv)
        for arm in ("pop", "knn"):
            assert after[arm]["pulls"] == before[arm]["pulls"]
            assert after[arm]["reward"] == pytest.approx(before[arm]["reward"])
            assert after[arm]["probability"] == pytest.approx(before[arm]["probability"], abs=1e-9)
        assert body["rebuilt_from"]["impressions"] == ROUNDS * PER_ROUND
        # the snapshot taken at the first start (of an empty log) was used, and the whole log after it
        assert body["rebuilt_from"]["from_snapshot"] == 1 and body["rebuilt_from"]["snapshot_impressions"] == 0
        r = httpx.get(f"{srv.url}/v1/policies/cart", headers={"X-API-Key": API_KEY}, timeout=10)
        assert r.status_code == 404 and r.json()["error"]["code"] == "no_learning_policy"


def test_policy_show_offline_and_against_the_server(policy_models, tmp_path):
    from typer.testing import CliRunner

    from shoprec.cli import app

    store = tmp_path / "events.db"
    runner = CliRunner()
    with ServerProcess(policy_models, store, log=tmp_path / "server.log") as srv:
        r = httpx.post(f"{srv.url}/v1/recommendations/home", headers={"X-API-Key": PUBLIC_KEY}, json={"k": 3})
        arms_of(store, [r.json()["request_id"]])
        got = runner.invoke(app, ["policy", "show", "home", "--server", srv.url, "--api-key", API_KEY])
        assert got.exit_code == 0, got.output
        assert "pop" in got.output and "knn" in got.output and "1 answers" in got.output
        bad = runner.invoke(app, ["policy", "show", "home", "--server", srv.url, "--api-key", "wrong"])
        assert bad.exit_code == 2 and "401" in bad.output
    got = runner.invoke(app, ["policy", "show", "home", "--model", str(policy_models), "--store", f"sqlite:///{store}"])
    assert got.exit_code == 0, got.output
    assert "1 answers" in got.output
    got = runner.invoke(app, ["policy", "show", "cart", "--model", str(policy_models), "--store", f"sqlite:///{store}"])
    assert got.exit_code == 2 and "no learning mix policy" in got.output


def test_two_workers_count_every_answer_and_reward(policy_models, tmp_path):
    """--workers 2 with the Redis state bus: whichever worker answered and whichever took the events,
    both workers' policies hold the same pulls and rewards."""
    from .conftest import REDIS_URL, require_redis

    require_redis()
    store = tmp_path / "events.db"
    srv = ServerProcess(policy_models, store, log=tmp_path / "server.log",
                        extra_args=("--workers", "2", "--state-bus", REDIS_URL))
    srv.start(timeout=120)
    try:
        pub = {"X-API-Key": PUBLIC_KEY}
        answers = []
        for i in range(40):
            with httpx.Client() as c:                      # a new connection each: both workers answer
                r = c.post(f"{srv.url}/v1/recommendations/home", headers=pub, json={"session_id": f"w{i}", "k": 5},
                           timeout=10)
            assert r.status_code == 200, r.text
            answers.append(r.json())
        arms = arms_of(store, [a["request_id"] for a in answers])
        events = [{"item_id": a["items"][0]["item_id"], "behaviour": "purchase", "request_id": a["request_id"],
                   "position": 1, "session_id": "buyer"} for a, arm in zip(answers, arms) if arm == "pop" and a["items"]]
        for e in events:                                   # spread over both workers too
            with httpx.Client() as c:
                assert c.post(f"{srv.url}/v1/events", headers=pub, json={"events": [e]}, timeout=10).status_code == 200
        seen = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with httpx.Client() as c:
                body = c.get(f"{srv.url}/v1/policies/home", headers={"X-API-Key": API_KEY}, timeout=10).json()
            arms_now = {a["arm"]: a for a in body["arms"]}
            seen[body["pid"]] = (sum(a["pulls"] for a in arms_now.values()), arms_now["pop"]["reward"])
            if len(seen) == 2 and all(v == (40, float(len(events))) for v in seen.values()):
                break
            time.sleep(0.1)
        assert len(seen) == 2, f"only one worker answered: {seen}"
        assert all(v == (40, float(len(events))) for v in seen.values()), seen
    finally:
        srv.stop()
