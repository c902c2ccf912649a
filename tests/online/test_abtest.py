"""A/B tests as a product: experiment files, sticky routing, and the report's figures by hand."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.exceptions import ConfigError
from shoprec.online.abtest import Experiment, ExperimentRouter, experiment_report, format_report, read_experiment
from shoprec.online.experiments import assign

KEY = "k" * 32
DAY = 86_400.0
T0 = 1_700_000_000.0


def exp(**kw) -> Experiment:
    base = {"id": "home-ease", "page": "home", "started_at": T0, "min_visitors": 2, "pre_days": 0,
            "variants": [{"name": "control", "scenario": "home"}, {"name": "ease", "scenario": "home_ease"}]}
    base.update(kw)
    return Experiment.model_validate(base)


def imp(rid, variant, t, user=None, session=None, items=("a", "b"), latency=5.0, exp_id="home-ease"):
    return {"request_id": rid, "created_at": t, "scenario": "home" if variant == "control" else "home_ease",
            "user_id": user, "session_id": session,
            "items": [{"item_id": it, "position": p} for p, it in enumerate(items, 1)],
            "context": {"experiment": {"id": exp_id, "variant": variant}, "latency_ms": latency}}


def test_experiment_file_errors_name_the_file_and_field(tmp_path):
    p = tmp_path / "e.toml"
    p.write_text('id = "x"\npage = "home"\n[[variants]]\nname = "a"\nscenario = "home"\n')
    with pytest.raises(ConfigError, match=r"e\.toml: variants: List should have at least 2"):
        read_experiment(p)
    p.write_text('id = "x"\npage = "home"\nprimary_metric = "clicks"\n'
                 '[[variants]]\nname = "a"\nscenario = "home"\n[[variants]]\nname = "b"\nscenario = "h2"\n')
    with pytest.raises(ConfigError, match="primary_metric"):
        read_experiment(p)
    p.write_text('[experiment]\nid = "x"\npage = "home"\n'
                 '[[experiment.variants]]\nname = "a"\nscenario = "home"\n'
                 '[[experiment.variants]]\nname = "a"\nscenario = "h2"\n')
    with pytest.raises(ConfigError, match="repeated"):
        read_experiment(p)


def test_inline_overrides_route_to_the_page_with_their_weights(tmp_path):
    p = tmp_path / "e.toml"
    p.write_text('[experiment]\nid = "x"\npage = "home"\n'
                 '[[experiment.variants]]\nname = "control"\n'
                 '[[experiment.variants]]\nname = "no_trending"\nweights = { trending = 0.0 }\n')
    e = read_experiment(p).model_copy(update={"started_at": T0})
    r = ExperimentRouter([e], KEY)
    got = {repr(r.route("home", f"user{i}", None)) for i in range(200)}
    assert got == {repr(("home", {"id": "x", "variant": "control"}, None)),
                   repr(("home", {"id": "x", "variant": "no_trending"},
                         {"name": "no_trending", "weights": {"trending": 0.0}}))}
    # the page twice, or the same override twice, serve the same thing: refused
    p.write_text('[experiment]\nid = "x"\npage = "home"\n'
                 '[[experiment.variants]]\nname = "a"\n[[experiment.variants]]\nname = "b"\nscenario = "home"\n')
    with pytest.raises(ConfigError, match=r"variants \['a', 'b'\] would serve the same thing"):
        read_experiment(p)
    p.write_text('[experiment]\nid = "x"\npage = "home"\n'
                 '[[experiment.variants]]\nname = "a"\n[[experiment.variants]]\nname = "b"\nweights = { ease = -1 }\n')
    with pytest.raises(ConfigError, match="finite and ≥ 0"):
        read_experiment(p)


def test_router_is_sticky_matches_assign_and_keeps_the_shares():
    e = exp(variants=[{"name": "control", "scenario": "home", "share": 3},
                      {"name": "ease", "scenario": "home_ease", "share": 1}])
    r = ExperimentRouter([e], KEY)
    users = [f"user{i}" for i in range(4000)]
    got = [r.route("home", u, f"sess{i}") for i, u in enumerate(users)]
    # the user decides, whatever the session (sticky across sessions)
    again = [r.route("home", u, "another-session") for u in users]
    assert got == again
    idx = np.array([0 if g[1]["variant"] == "control" else 1 for g in got])
    assert (idx == assign(["u:" + u for u in users], e.id, e.shares, KEY)).all()
    assert abs(idx.mean() - 0.25) < 0.03
    assert {g[0] for g in got} == {"home", "home_ease"}
    # other pages, and visitors without an id, are not in the experiment
    assert r.route("cart", "user1", None) == ("cart", None, None)
    assert r.route("home", None, None) == ("home", None, None)
    # a different key reassigns (the key is the secret of the shop's)
    other = ExperimentRouter([e], "z" * 32)
    assert [o[1]["variant"] for o in (other.route("home", u, None) for u in users)] != [g[1]["variant"] for g in got]
    stopped = e.model_copy(update={"stopped_at": T0 + 1})
    assert ExperimentRouter([stopped], KEY).route("home", "user1", None) == ("home", None, None)
    with pytest.raises(ValueError, match="two running experiments"):
        ExperimentRouter([e, e.model_copy(update={"id": "other"})], KEY)


def test_report_figures_by_hand():
    """Two visitors per variant, two answers each; events attributed by request+position, by user+item,
    one too late and one for another page's request."""
    e = exp(primary_metric="ctr")
    imps = [imp("c1", "control", T0 + 10, user="u1"), imp("c2", "control", T0 + 20, user="u1"),
            imp("c3", "control", T0 + 30, user="u2", items=()),          # an empty answer
            imp("c4", "control", T0 + 40, user="u2"),
            imp("t1", "ease", T0 + 10, user="u3", latency=50.0), imp("t2", "ease", T0 + 20, user="u3"),
            imp("t3", "ease", T0 + 30, user="u4"), imp("t4", "ease", T0 + 40, user="u4"),
            imp("x1", "ease", T0 + 40, user="u9", exp_id="another")]    # not this experiment's
    events = [
        {"item_id": "a", "behaviour": "click", "timestamp": T0 + 11, "request_id": "c1", "position": 1},
        {"item_id": "a", "behaviour": "purchase", "timestamp": T0 + 12, "request_id": "c1", "position": 1,
         "price": 10.0, "quantity": 2},
        {"item_id": "b", "behaviour": "add_to_cart", "timestamp": T0 + 50, "user_id": "u3"},   # by user: t2
        {"item_id": "a", "behaviour": "view", "timestamp": T0 + 2 * DAY, "request_id": "t3", "position": 1},  # late
        {"item_id": "a", "behaviour": "view", "timestamp": T0 + 45, "request_id": "x1", "position": 1},
    ]
    rep = experiment_report(e, imps, events, now=T0 + 3 * DAY)
    c, t = rep["variants"]
    assert (c["visitors"], c["impressions"], t["visitors"], t["impressions"]) == (2, 4, 2, 4)
    assert c["ctr"] == 0.25 and c["cart_rate"] == 0.25 and c["conversion"] == 0.25 and c["buyers"] == 0.5
    assert c["revenue"] == 20.0 and c["revenue_per_impression"] == 5.0
    assert t["ctr"] == 0.25 and t["cart_rate"] == 0.25 and t["conversion"] == 0.0 and t["revenue"] == 0.0
    assert c["empty_answers"] == 0.25 and t["empty_answers"] == 0.0
    assert t["latency_p99_ms"] > 40 and c["latency_p99_ms"] == 5.0
    assert any("p99 latency" in b for b in t["guardrail_breaches"])
    assert rep["counts"]["impressions_logged"] == 8 and rep["counts"]["impressions_counted"] == 8
    # the looks: after day 1, 2 and at the end (3 days); the late view (day 2) is not a click at any look
    assert [round(lk["day"], 3) for lk in rep["looks"]] == [1.0, 2.0, 3.0]
    # delta method by hand for the control's CTR: n = (1, 0), d = (2, 2) → R = 0.25, l = R + (n − R d)/2
    assert rep["looks"][-1]["metric"]["control"] == pytest.approx(0.25)
    (test,) = rep["tests"]
    lin_c = 0.25 + (np.array([1, 0]) - 0.25 * np.array([2, 2])) / 2
    lin_t = 0.25 + (np.array([0, 1]) - 0.25 * np.array([2, 2])) / 2
    var = lin_c.var(ddof=1) / 2 + lin_t.var(ddof=1) / 2
    assert test["difference"] == pytest.approx(0.0)
    assert rep["looks"][-1]["tests"]["ease"]["variance"] == pytest.approx(var)
    assert test["decision"] == "no difference yet"
    assert "ease vs control" in format_report(rep)


def test_report_waits_for_enough_visitors_and_reassigned_visitors_are_counted():
    e = exp(min_visitors=10)
    imps = [imp("c1", "control", T0 + 10, user="u1"), imp("t1", "ease", T0 + 10, user="u2"),
            imp("t2", "ease", T0 + 20, user="u1")]               # u1 moved to another variant: left out
    rep = experiment_report(e, imps, [], now=T0 + DAY / 2)
    assert rep["tests"][0]["decision"] == "waiting"
    assert rep["counts"]["impressions_of_reassigned_visitors"] == 1
    assert [v["visitors"] for v in rep["variants"]] == [1, 1]


def _simulated(lift: float, seed: int, n: int = 3000, days: int = 10, pre: bool = True):
    """Visitors with a taste for buying (seen in the pre-period too), split 50/50, one visit a day."""
    rng = np.random.default_rng(seed)
    e = exp(id=f"sim{seed}", pre_days=28 if pre else 0, min_visitors=100)
    router = ExperimentRouter([e], KEY)
    taste = rng.gamma(0.5, 0.08, n)
    imps, events = [], []
    for u in range(n):
        events += [{"item_id": "p", "behaviour": "purchase", "timestamp": T0 - 1000.0 - k, "user_id": f"u{u}"}
                   for k in range(rng.poisson(taste[u] * 20))]
    for day in range(days):
        for u in range(n):
            _, meta, _ = router.route("home", f"u{u}", None)
            rid = f"r{day}-{u}"
            t = T0 + day * DAY + rng.uniform(0, DAY / 2)
            imps.append(imp(rid, meta["variant"], t, user=f"u{u}", exp_id=e.id))
            p = min(taste[u] * (1 + lift if meta["variant"] == "ease" else 1.0), 1.0)
            if rng.random() < p:
                events.append({"item_id": "a", "behaviour": "purchase", "timestamp": t + 60, "request_id": rid,
                               "position": 1, "user_id": f"u{u}", "price": 5.0})
    return e, imps, events, T0 + days * DAY


def test_a_real_lift_is_found_an_aa_test_is_not_and_cuped_shrinks_the_variance():
    e, imps, events, end = _simulated(0.5, seed=1)
    rep = experiment_report(e, imps, events, now=end)
    t = rep["tests"][0]
    assert t["decision"] == "better" and t["p_value"] < 0.05 and t["relative"] > 0.2
    assert t["cuped_variance_reduction"] > 0.05       # the pre-period purchases predict the conversion
    assert t["low"] < t["difference"] < t["high"]
    e, imps, events, end = _simulated(0.0, seed=2)
    rep = experiment_report(e, imps, events, now=end)
    assert rep["tests"][0]["decision"] == "no difference yet"
    assert len(rep["looks"]) == 10
