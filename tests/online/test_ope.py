"""Policy specs and the one-call evaluation, and `shoprec ope` on a tiny table worked out by hand."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shoprec.cli import app
from shoprec.online.logs import feedback_from_frame, read_feedback
from shoprec.online.ope import evaluate_policy, target_policy

runner = CliRunner()

# four logged choices between arms a and b, each taken with probability .5:
#   arm  reward  → IPS of "always a" = (2·1 + 2·0) / 4 = 1.0 … rows 0, 2 are a with rewards 1, 1
FRAME = pd.DataFrame({"arm": ["a", "b", "a", "b"], "reward": [1.0, 0.0, 1.0, 1.0],
                      "propensity": [0.5, 0.5, 0.5, 0.5]})


def test_policy_specs():
    table = feedback_from_frame(FRAME)
    assert table.actions == ["a", "b"]
    np.testing.assert_allclose(target_policy("uniform", table), np.full((4, 2), 0.5))
    np.testing.assert_allclose(target_policy("arm:b", table), np.tile([0, 1], (4, 1)))
    np.testing.assert_allclose(target_policy("weights:a=0.25,b=0.75", table), np.tile([0.25, 0.75], (4, 1)))
    with pytest.raises(ValueError, match="unknown action 'c'"):
        target_policy("arm:c", table)
    with pytest.raises(ValueError, match="sum to 1"):
        target_policy("weights:a=0.5", table)
    with pytest.raises(ValueError, match="unknown policy"):
        target_policy("greedy", table)


def test_thompson_spec_reads_a_prior(tmp_path):
    prior = tmp_path / "prior.json"
    # arm a is far better a priori: Thompson sampling picks it almost always
    prior.write_text(json.dumps({"shop": {"alpha": [900, 1], "beta": [100, 999]}}))
    table = feedback_from_frame(FRAME)
    t = target_policy(f"thompson:{prior}#shop", table, n_sim=2000)
    assert t.shape == (4, 2)
    np.testing.assert_allclose(t.sum(1), 1.0)
    assert (t[:, 0] > 0.99).all()
    with pytest.raises(ValueError, match="no key 'other'"):
        target_policy(f"thompson:{prior}#other", table)


def test_evaluate_policy_by_hand():
    table = feedback_from_frame(FRAME)
    res = {r.estimator: r for r in evaluate_policy(table, target_policy("arm:a", table), ["ips", "snips"],
                                                   n_boot=200)}
    # IPS: weights 2, 0, 2, 0 → (2 + 2) / 4 = 1 ; SNIPS: 4 / 4 = 1
    assert res["ips"].value == pytest.approx(1.0)
    assert res["snips"].value == pytest.approx(1.0)
    assert res["ips"].low <= 1.0 <= res["ips"].high
    # "always b": (0 + 2·1) / 4 = .5
    (b,) = evaluate_policy(table, target_policy("arm:b", table), ["ips"], n_boot=0)
    assert b.value == pytest.approx(0.5)


def test_default_estimators_include_slates_only_for_lists():
    table = feedback_from_frame(FRAME)
    names = [r.estimator for r in evaluate_policy(table, target_policy("uniform", table), n_boot=0)]
    assert names == ["ips", "snips", "dm", "dr", "switch-dr"]
    lists = feedback_from_frame(FRAME.assign(request_id=[1, 1, 2, 2], position=[0, 1, 0, 1]))
    names = [r.estimator for r in evaluate_policy(lists, target_policy("uniform", lists), n_boot=0)]
    assert names[-3:] == ["iips", "rips", "sips"]


def test_cli_ope(tmp_path):
    logs = tmp_path / "logs.csv"
    FRAME.to_csv(logs, index=False)
    out = tmp_path / "ope.json"
    r = runner.invoke(app, ["ope", "--logs", str(logs), "--policy", "arm:a", "--estimators", "ips,snips",
                            "--n-boot", "100", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "ips" in r.output
    got = json.loads(out.read_text())
    assert got["rows"] == 4 and got["estimates"][0]["value"] == pytest.approx(1.0)


def test_cli_ope_bad_input(tmp_path):
    logs = tmp_path / "logs.csv"
    FRAME.drop(columns="propensity").to_csv(logs, index=False)
    r = runner.invoke(app, ["ope", "--logs", str(logs), "--policy", "uniform"])
    assert r.exit_code == 2
    assert "no column 'propensity'" in r.output
    FRAME.assign(propensity=[0.5, None, 0.5, 0.5]).to_csv(logs, index=False)
    r = runner.invoke(app, ["ope", "--logs", str(logs), "--policy", "uniform"])
    assert r.exit_code == 2 and "no usable logging propensity" in r.output
    r = runner.invoke(app, ["ope", "--logs", str(tmp_path / "absent.csv"), "--policy", "uniform"])
    assert r.exit_code == 2 and "no such file" in r.output


@pytest.mark.realdata
def test_open_bandit_logs(shared_data):
    path = shared_data("open-bandit", "random", "men", "men.csv")
    table = read_feedback(f"open-bandit:{path}")
    assert len(table.log) == 10_000 and table.log.n_actions == 34
    (ips,) = evaluate_policy(table, target_policy("uniform", table), ["ips"], n_boot=0)
    # the uniform policy evaluated on its own uniform logs is the logged mean exactly
    assert ips.value == pytest.approx(table.log.on_policy_value)


SCENARIO = """
[scenario]
name = "home"

[[strategies]]
name = "ease"

[[strategies]]
name = "popularity"

[policy]
name = "{name}"
params = {{ explore = 0.1, arms = {{ a = {{ ease = 1.0 }}, b = {{ popularity = 1.0 }} }} }}
"""


def _shop_log(n=600, seed=0):
    """Answers logged uniformly over arms a and b (propensity .5) in time order. Mobile visitors
    (feature 1) buy from a with probability .8 and from b .1; the others the other way round."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(["a", "b"], n)
    mobile = rng.random(n) < 0.5
    p = np.where(mobile == (arm == "a"), 0.8, 0.1)
    x = np.zeros((n, 18))
    x[:, 0], x[:, 1] = 1.0, mobile
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(n)], "created_at": np.arange(n, dtype=float),
                         "arm": arm, "reward": (rng.random(n) < p).astype(float), "propensity": 0.5,
                         "features": [json.dumps(v.tolist()) for v in x]}), mobile


@pytest.mark.parametrize("name", ["thompson", "linucb"])
def test_a_scenario_policy_learns_on_the_first_part_and_is_evaluated_on_the_rest(tmp_path, name):
    from shoprec.online.ope import scenario_target

    frame, mobile = _shop_log()
    path = tmp_path / "home.toml"
    path.write_text(SCENARIO.format(name=name))
    table = feedback_from_frame(frame)
    target, rest = scenario_target(path, table, fit_fraction=0.5)
    assert len(rest.log) == 300 and target.shape == (300, 2)
    np.testing.assert_allclose(target.sum(1), 1.0)
    assert (target >= 0.05 - 1e-12).all()                 # explore .1 over two arms
    late = mobile[300:]
    if name == "linucb":
        # the context decides: a for mobile visitors, b for the others (explore aside)
        assert (target[late, 0] == pytest.approx(0.95)) and (target[~late, 1] == pytest.approx(0.95))
        truth = 0.95 * 0.8 + 0.05 * 0.1
    else:
        # context-free: both arms earn .45 on average, so neither wins by much
        assert np.allclose(target, target[0]) and abs(target[0, 0] - 0.5) < 0.45
        truth = None
    (ips,) = evaluate_policy(rest, target, ["snips"], n_boot=0)
    if truth is not None:
        assert ips.value == pytest.approx(truth, abs=0.08)
    r = runner.invoke(app, ["ope", "--logs", str(_write(tmp_path, frame)), "--policy", f"scenario:{path}",
                            "--estimators", "ips,snips", "--n-boot", "50"])
    assert r.exit_code == 0, r.output
    assert "learned from 300 answers" in r.output


def _write(tmp_path, frame):
    p = tmp_path / "logs.csv"
    frame.to_csv(p, index=False)
    return p


def test_a_scenario_policy_that_cannot_be_evaluated_is_a_clear_error(tmp_path):
    from shoprec.online.ope import scenario_target

    frame, _ = _shop_log(40)
    path = tmp_path / "home.toml"
    path.write_text(SCENARIO.format(name="linucb").replace("b = { popularity", "c = { popularity"))
    with pytest.raises(ValueError, match=r"arms \['c'\] were never logged"):
        scenario_target(path, feedback_from_frame(frame))
    path.write_text(SCENARIO.format(name="linucb"))
    with pytest.raises(ValueError, match="have none"):
        scenario_target(path, feedback_from_frame(frame.assign(features=None)))
    static = tmp_path / "static.toml"
    static.write_text(SCENARIO.split("[policy]")[0])
    with pytest.raises(ValueError, match="does not learn"):
        scenario_target(static, feedback_from_frame(frame))
