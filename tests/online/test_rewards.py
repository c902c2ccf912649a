"""Rewards joined to answers on a tiny log worked out by hand."""

import json

import pytest

from shoprec.online.rewards import join_rewards, read_impressions
from shoprec.scenarios.config import RewardConfig


def imp(rid, t, items, user="u1", session="s1", arm="a", propensity=0.5, scenario="home"):
    return {"request_id": rid, "created_at": t, "scenario": scenario, "model_version": "v", "user_id": user,
            "session_id": session, "items": [{"item_id": i, "position": p, "propensity": 1.0}
                                             for p, i in enumerate(items, 1)],
            "context": {"policy": {"name": "thompson", "arm": arm, "propensity": propensity}, "device": "mobile"}}


def ev(item, behaviour, t, request_id=None, position=None, user="u1", session="s1", price=None, quantity=None):
    return {"item_id": item, "behaviour": behaviour, "timestamp": t, "request_id": request_id, "position": position,
            "user_id": user, "session_id": session, "price": price, "quantity": quantity}


IMPRESSIONS = [imp("r1", 1000, ["x", "y", "z"], arm="a"), imp("r2", 2000, ["y", "w"], arm="b", session="s2"),
               imp("r3", 3000, ["q"], arm="a", user="u2", session="s3")]


def test_join_by_request_position_then_session_then_user():
    cfg = RewardConfig(click=0.1, cart=0.3, purchase=1.0, revenue=0.01, window_seconds=3600)
    events = [
        ev("x", "click", 1010, "r1", 1),          # r1/x: click …
        ev("x", "purchase", 1100, "r1", 1, price=50, quantity=2),   # … then purchase: 1 + .01·100 = 2
        ev("y", "add_to_cart", 1200),             # no request id: session s1 + y → r1 (r2 is session s2): .3
        ev("w", "click", 2100, session="s9"),     # session s9 unknown; user u1 + w → r2: .1
        ev("z", "click", 1020, "r1", 2),          # position 2 showed y, not z: not shown
        ev("q", "click", 3000 + 7200, "r3", 1, user="u2", session="s3"),  # 2 h later: outside the window
        ev("x", "click", 1010, "r404", 1),        # unknown request
        ev("x", "view", 1010, "r1", 1),           # views weigh 0 here: not rewarded
        ev("nope", "click", 5000),                # nothing showed it
    ]
    j = join_rewards(IMPRESSIONS, events, cfg)
    r = j.requests.set_index("request_id")
    assert r.loc["r1", "reward"] == pytest.approx(2.0 + 0.3)
    assert r.loc["r2", "reward"] == pytest.approx(0.1)
    assert r.loc["r3", "reward"] == 0.0
    assert r.loc["r1", "revenue"] == pytest.approx(100.0)
    assert r.loc["r1", "arm"] == "a" and r.loc["r1", "propensity"] == 0.5 and r.loc["r1", "device"] == "mobile"
    rep = j.report
    assert rep["by_request"] == 2 and rep["by_session"] == 1 and rep["by_user"] == 1
    assert rep["not_shown"] == 1 and rep["outside_window"] == 1 and rep["unknown_request"] == 1
    assert rep["not_rewarded"] == 1 and rep["no_answer"] == 1
    assert rep["attributed"] == 4 and rep["events"] == 9
    s = j.shown.set_index(["request_id", "position"])
    assert s.loc[("r1", 1), "behaviour"] == "purchase"
    assert "1 for items the answer did not show" in j.summary()


def test_attribution_request_only_and_pending():
    events = [ev("y", "add_to_cart", 1200), ev("x", "click", 1010, "r1", 1)]
    j = join_rewards(IMPRESSIONS, events, RewardConfig(attribution="request"), now=2500.0)
    r = j.requests.set_index("request_id")
    assert r.loc["r1", "reward"] == pytest.approx(0.1)
    assert j.report["no_answer"] == 1
    # the window (24 h default) has not passed for any answer yet
    assert j.report["answers_pending"] == 3 and j.feedback_frame().empty
    assert len(j.feedback_frame(final_only=False)) == 3


def test_scenario_filter_and_missing_propensity():
    imps = IMPRESSIONS + [imp("c1", 1000, ["x"], scenario="cart", propensity=None)]
    j = join_rewards(imps, [], scenario="cart")
    assert list(j.requests["request_id"]) == ["c1"]
    assert j.report["answers_without_propensity"] == 1
    assert j.feedback_frame().empty
    assert "without the policy's propensity" in j.summary()


def test_read_impressions(tmp_path):
    p = tmp_path / "imp.jsonl"
    p.write_text("\n".join(json.dumps(i) for i in IMPRESSIONS) + "\n")
    assert [r["request_id"] for r in read_impressions(p)] == ["r1", "r2", "r3"]
    p.write_text(json.dumps(IMPRESSIONS[0]) + "\n{bad\n")
    with pytest.raises(ValueError, match="line 2: not JSON"):
        read_impressions(p)
    p.write_text(json.dumps({"request_id": "r"}) + "\n")
    with pytest.raises(ValueError, match="line 1: an impression needs"):
        read_impressions(p)


def test_cli_rewards_then_ope(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from shoprec.cli import app

    imps = tmp_path / "imp.jsonl"
    imps.write_text("\n".join(json.dumps(i) for i in IMPRESSIONS) + "\n")
    evs = tmp_path / "events.csv"
    pd.DataFrame([ev("x", "purchase", 1100, "r1", 1), ev("q", "click", 3010, "r3", 1, user="u2", session="s3")]
                 ).to_csv(evs, index=False)
    out = tmp_path / "answers.csv"
    runner = CliRunner()
    r = runner.invoke(app, ["rewards", "--impressions", str(imps), "--events", str(evs), "--scenario", "home",
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "3 answers, 2 with a reward" in r.output and "reward per arm" in r.output
    got = pd.read_csv(out).set_index("request_id")
    assert got.loc["r1", "reward"] == 1.0 and got.loc["r3", "reward"] == pytest.approx(0.1)
    # "always arm a" from answers logged with propensity .5: (1/.5·1 + 0 + 1/.5·.1) / 3
    r = runner.invoke(app, ["ope", "--logs", str(out), "--policy", "arm:a", "--estimators", "ips", "--n-boot", "0",
                            "--json", str(tmp_path / "o.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "o.json").read_text())["estimates"][0]["value"] == pytest.approx(2.2 / 3)
    r = runner.invoke(app, ["rewards", "--impressions", str(imps)])
    assert r.exit_code == 2 and "--events" in r.output
