"""A fitted Recommender saved as an artifact (manifest + arrays, no pickle) answers exactly as before,
rankers and their feature arrays included; a corrupt artifact is a clear error."""

from __future__ import annotations

import json

import pytest

from shoprec import Recommender
from shoprec.exceptions import ArtifactError
from shoprec.scenarios import load_scenario


@pytest.fixture(scope="module")
def fitted():
    from shoprec.data.adapters import load_online_retail
    from shoprec.demo_data import DEMO_PATH

    data, _ = load_online_retail(DEMO_PATH)
    ts = data.events["timestamp"].to_numpy()
    data = data.filter_events(ts >= ts.max() - 30 * 86400)
    cfgs = [load_scenario(n) for n in ("cart", "item_page", "search")]
    cfgs[0] = cfgs[0].with_overrides(fusion={**cfgs[0].fusion.model_dump(), "method": "ranker"})
    return Recommender(cfgs).fit(data)


REQUESTS = [("cart", {"basket": ["85123A", "22423"]}), ("item_page", {"current_item": "22423", "session": ["85123A"]}),
            ("search", {"query": "christmas lights"})]


def test_round_trip_gives_the_same_answers_and_reasons(fitted, tmp_path):
    path = fitted.save(tmp_path / "model", trained_through_seq=7)
    loaded = Recommender.load(path)
    assert loaded.manifest_["meta"]["trained_through_seq"] == 7
    assert loaded.pipelines["cart"].ranker is not None and loaded.pipelines["cart"].method_ == "ranker"
    for scenario, ctx in REQUESTS:
        a, b = fitted.recommend(scenario, ctx), loaded.recommend(scenario, ctx)
        assert a.item_ids == b.item_ids, scenario
        assert [i.reason for i in a.items] == [i.reason for i in b.items]
    # nothing in the artifact is a pickle
    assert not list(path.rglob("*.pkl")) and not list(path.rglob("*.pickle"))


def test_a_broken_artifact_is_a_clear_error(fitted, tmp_path):
    path = fitted.save(tmp_path / "model")
    with pytest.raises(ArtifactError, match="not a shoprec model"):
        Recommender.load(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format 99"):
        Recommender.load(path)
    manifest["format"] = 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    (path / "ids" / "items.parquet").unlink()
    with pytest.raises(ArtifactError, match="incomplete or corrupt"):
        Recommender.load(path)
