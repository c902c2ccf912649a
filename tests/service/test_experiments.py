"""A/B tests through the service: create, sticky routing, the report from posted events, stop, restart."""

from __future__ import annotations

from fastapi.testclient import TestClient

from shoprec.service.app import create_app

from .conftest import API_KEY, PUBLIC_KEY

ADMIN = {"X-API-Key": API_KEY}
PUBLIC = {"X-API-Key": PUBLIC_KEY}
EXP = {"id": "home-vs-trending", "page": "home", "primary_metric": "conversion", "min_visitors": 5,
       "variants": [{"name": "control", "scenario": "home"}, {"name": "trending", "scenario": "first_visit"}]}


def test_experiment_routes_visitors_reports_and_stops(service_settings):
    with TestClient(create_app(service_settings)) as c:
        bad = dict(EXP, variants=[EXP["variants"][0], {"name": "b", "scenario": "no_such"}])
        r = c.post("/v1/experiments", json=bad, headers=ADMIN)
        assert r.status_code == 422 and "no_such" in r.json()["error"]["message"]
        assert c.post("/v1/experiments", json=EXP, headers=PUBLIC).status_code in (401, 403)
        r = c.post("/v1/experiments", json=EXP, headers=ADMIN)
        assert r.status_code == 201, r.text
        assert r.json()["started_at"] > 0
        assert c.post("/v1/experiments", json=EXP, headers=ADMIN).status_code == 409
        r = c.post("/v1/experiments", json=dict(EXP, id="other"), headers=ADMIN)
        assert r.status_code == 409 and r.json()["error"]["code"] == "page_in_test"

        seen = {}
        buys = []
        for i in range(40):
            user = f"visitor{i}"
            for session in ("s1", "s2"):          # sticky across sessions
                body = c.post("/v1/recommendations/home", json={"user_id": user, "session_id": f"{user}-{session}",
                                                                "k": 5}).json()
                variant = body["experiment"]["variant"]
                assert seen.setdefault(user, variant) == variant
                assert body["scenario"] == {"control": "home", "trending": "first_visit"}[variant]
                if variant == "trending" and session == "s1" and body["items"]:
                    buys.append({"item_id": body["items"][0]["item_id"], "behaviour": "purchase", "user_id": user,
                                 "request_id": body["request_id"], "position": 1, "price": 3.0})
        assert set(seen.values()) == {"control", "trending"}
        assert c.post("/v1/events", json={"events": buys}, headers=PUBLIC).status_code == 200
        # other pages are not in the test
        assert "experiment" not in c.post("/v1/recommendations/cart", json={"user_id": "visitor1"}).json()
        c.app.state.service.impressions.close()     # flush the impression log
        c.app.state.service.impressions = None

    with TestClient(create_app(service_settings)) as c:    # a restart keeps the experiment and its routing
        body = c.post("/v1/recommendations/home", json={"user_id": "visitor0", "k": 5}).json()
        assert body["experiment"]["variant"] == seen["visitor0"]
        rep = c.get("/v1/experiments/home-vs-trending", headers=ADMIN).json()
        by = {v["name"]: v for v in rep["variants"]}
        n_t = sum(v == "trending" for v in seen.values())
        assert by["trending"]["visitors"] == n_t and by["control"]["visitors"] == 40 - n_t
        assert by["trending"]["impressions"] == 2 * n_t
        assert by["trending"]["conversion"] == len(buys) / (2 * n_t)
        assert by["trending"]["revenue"] == 3.0 * len(buys) and by["control"]["conversion"] == 0.0
        assert by["control"]["latency_p99_ms"] is not None
        assert rep["tests"][0]["variant"] == "trending" and rep["tests"][0]["looks"] >= 1
        assert c.get("/v1/experiments/nope", headers=ADMIN).status_code == 404

        r = c.post("/v1/experiments/home-vs-trending/stop", headers=ADMIN)
        assert r.status_code == 200 and r.json()["stopped_at"] >= r.json()["started_at"]
        body = c.post("/v1/recommendations/home", json={"user_id": "visitor0", "k": 5}).json()
        assert "experiment" not in body and body["scenario"] == "home"
        listed = c.get("/v1/experiments", headers=ADMIN).json()["experiments"]
        assert [e["id"] for e in listed] == ["home-vs-trending"] and listed[0]["stopped_at"]
        # a stopped test frees its page
        assert c.post("/v1/experiments", json=dict(EXP, id="second"), headers=ADMIN).status_code == 201
        c.app.state.service.impressions.close()
        c.app.state.service.impressions = None

    # the same report offline from the store, by the command line
    from typer.testing import CliRunner

    from shoprec.cli import app

    run = CliRunner().invoke(app, ["experiment", "report", "home-vs-trending", "--store", service_settings.store])
    assert run.exit_code == 0, run.output
    assert "trending vs control: conversion" in run.output and "first_visit" in run.output
    run = CliRunner().invoke(app, ["experiment", "report", "nope", "--store", service_settings.store])
    assert run.exit_code == 2 and "no experiment 'nope'" in run.output


def test_experiment_file_errors_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from shoprec.cli import app

    p = tmp_path / "exp.toml"
    p.write_text('id = "x"\npage = "home"\n')
    run = CliRunner().invoke(app, ["experiment", "start", str(p)])
    assert run.exit_code == 2 and "exp.toml: variants: Field required" in run.output


def test_an_inline_override_variant_and_server_errors_per_variant(service_settings):
    with TestClient(create_app(service_settings)) as c:
        service = c.app.state.service
        labels = [s.display for s in service.engine.rec.pipelines["home"].specs_]
        exp = {"id": "override", "page": "home", "min_visitors": 2,
               "variants": [{"name": "control"}, {"name": "only_first", "weights": {x: 0.0 for x in labels[1:]}}]}
        bad = dict(exp, variants=[{"name": "control"}, {"name": "b", "weights": {"no_such_strategy": 1.0}}])
        r = c.post("/v1/experiments", json=bad, headers=ADMIN)
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_strategy"
        assert c.post("/v1/experiments", json=exp, headers=ADMIN).status_code == 201, r.text
        # one visitor's requests fail inside the engine (an injected fault)
        rec = service.engine.rec
        real = rec.recommend_raw

        def flaky(scenario, contexts, mixes=None):
            if any(getattr(x, "user_id", None) == "crash" for x in contexts):
                raise RuntimeError("injected fault")
            return real(scenario, contexts, mixes)

        rec.recommend_raw = flaky
        seen = {}
        for i in range(30):
            body = c.post("/v1/recommendations/home", json={"user_id": f"v{i}", "k": 5}).json()
            seen[f"v{i}"] = body["experiment"]["variant"]
            assert body["scenario"] == "home"
        r = c.post("/v1/recommendations/home", json={"user_id": "crash", "k": 5})
        assert r.status_code == 500
        service.impressions.close()
        service.impressions = None
    from shoprec.service.store import open_store

    with open_store(service_settings.store) as st:
        imps = [i for b in st.iter_impressions() for i in b if (i.context.get("experiment") or {}).get("id") == "override"]
        events = [e for b in st.iter_events() for e in b]
    arms = {i.user_id: i.context["policy"]["arm"] for i in imps if i.items}
    for user, variant in seen.items():
        # the override's answers are logged as its own arm, with propensity 1
        assert (arms[user] == "override:only_first") == (variant == "only_first")
    from shoprec.online.abtest import Experiment, experiment_report

    stored = next(body for key, body, _ in open_store(service_settings.store).iter_documents("experiment")
                  if key == "override")
    rep = experiment_report(Experiment.model_validate(stored), imps, events)
    by = {v["name"]: v for v in rep["variants"]}
    crashed = next(i.context["experiment"]["variant"] for i in imps if i.context.get("error"))
    assert by[crashed]["errors"] == 1 and by[crashed]["error_rate"] > 0
    assert sum(v["errors"] for v in by.values()) == 1 and rep["counts"]["errors_logged"] == 1
    assert by[crashed]["impressions"] == sum(v == crashed for v in seen.values())   # the failure is no answer
    if crashed != "control":
        assert any("requests failed" in b for b in by[crashed]["guardrail_breaches"])
