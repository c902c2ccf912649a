"""``shoprec.report``: the HTML benchmark report, on tiny synthetic result files with known answers."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from shoprec.exceptions import DataError
from shoprec.report import ScenarioRow, build_report, lift, load_results

REPO_RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _metrics(ndcg: float, recall: float, coverage: float) -> dict:
    return {"ndcg@10": ndcg, "recall@10": recall, "recall@20": recall + 0.1, "mrr@10": ndcg / 2,
            "hr@10": recall + 0.05, "coverage@10": coverage}


def _scenario(**overrides) -> dict:
    """Cart scenario: best single is item_knn (NDCG .20); the pipeline (.23) is 15 % better."""
    flat = [0.1] * 10
    doc = {
        "benchmark": "scenarios", "scenario": "cart", "dataset": "online-retail", "protocol": "temporal cut",
        "date": "2026-11-24", "machine": "test box", "n_queries": 1234, "ks": [10, 20],
        "rows": [
            {"label": "fbt", "kind": "single", "metrics": _metrics(0.10, 0.20, 0.05), "fit_seconds": 0.5,
             "recommend_seconds": 0.1, "exposure_by_popularity_decile": [0.55] + [0.05] * 9},
            {"label": "item_knn", "kind": "single", "metrics": _metrics(0.20, 0.30, 0.30) | {"ild@10": 0.4},
             "fit_seconds": 1.5, "recommend_seconds": 0.2, "exposure_by_popularity_decile": flat},
            {"label": "rrf <b>x</b>", "kind": "fusion", "metrics": _metrics(0.21, 0.31, 0.25),
             "contribution": {"fbt": 0.5, "item_knn": 0.5}, "exposure_by_popularity_decile": flat},
            {"label": "pipeline", "kind": "pipeline", "metrics": _metrics(0.23, 0.36, 0.28),
             "fit_seconds": 2.5, "recommend_seconds": 0.4,
             "contribution": {"fbt": 0.41, "item_knn": 0.59},
             "exposure_by_popularity_decile": [0.3] + [0.7 / 9] * 9},
        ],
    }
    doc.update(overrides)
    return doc


def _accuracy() -> dict:
    row = {"task": "t", "params": {}, "n_queries": 50, "peak_rss_gib": 0.3}
    return {"dataset": "tinyset", "protocol": "leave-one-out", "ks": [20], "n_queries": 50,
            "published": "SASRec NDCG@20 .0500 & <friends>", "date": "2026-11-23", "machine": "test box",
            "results": [
                row | {"strategy": "popularity", "recall@20": 0.05, "ndcg@20": 0.02, "hr@20": 0.05,
                       "fit_seconds": 0.01, "recommend_seconds": 0.1},
                row | {"strategy": "ease", "recall@20": 0.15, "ndcg@20": 0.07, "hr@20": 0.15,
                       "fit_seconds": 12.0, "recommend_seconds": 0.5},
            ]}


def _write(folder: Path, name: str, doc) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_full_report_has_every_plot_escaped_labels_and_the_known_lift(tmp_path):
    results = tmp_path / "results"
    _write(results, "scenarios-cart.json", _scenario())
    _write(results, "accuracy-tinyset.json", _accuracy())
    _write(results, "notes.txt", "not a result file")

    out = build_report(results, tmp_path / "site" / "report.html", title="Bench <3")

    assert out == tmp_path / "site" / "report.html"
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # scenario: accuracy bars, contribution bars, exposure curve, coverage bars; accuracy file: one chart
    images = _images(page)
    assert len(images) == 5 == page.count("<img ")
    assert all(img.startswith(PNG_MAGIC) for img in images)
    # lift of the pipeline over the best single strategy: .23 / .20 - 1 = +15 %; recall .36 / .30 = +20 %
    assert "+15 % over item_knn" in page
    assert "Recall@10: pipeline +20 % over the best single strategy, item_knn" in page
    # names, escaping, header, contents
    assert "Scenario: cart (online-retail)" in page and "Accuracy: tinyset" in page
    assert "rrf &lt;b&gt;x&lt;/b&gt;" in page and "rrf <b>x" not in page
    assert "<title>Bench &lt;3</title>" in page
    assert "SASRec NDCG@20 .0500 &amp; &lt;friends&gt;" in page
    assert "2026-11-23 to 2026-11-24" in page and "test box" in page
    assert "How to read this" in page
    for anchor in ("scenario-cart", "scenario-cart-contribution", "scenario-cart-popularity", "accuracy-tinyset"):
        assert f'href="#{anchor}"' in page and f'id="{anchor}"' in page
    # best per column in bold: pipeline NDCG, item_knn coverage, fbt fit time (lowest); ease on the dataset
    assert "<td><b>0.2300</b></td>" in page and "<td><b>0.3000</b></td>" in page
    assert "<td><b>0.50</b></td>" in page
    assert "Best NDCG@20 here: <b>ease</b> (0.0700, fit in 12 s)" in page
    # self-contained: no script, no external resource
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert 'class="skip"' not in page  # nothing was skipped
    # deterministic: the same input gives the same bytes
    assert build_report(results, tmp_path / "again.html", title="Bench <3").read_bytes() == out.read_bytes()


def test_missing_optional_fields_still_render_and_say_what_was_skipped(tmp_path):
    doc = {"scenario": "product page", "rows": [
        {"label": "fbt", "kind": "single", "metrics": {"ndcg@10": 0.1}},
        {"label": "item_knn", "kind": "single", "metrics": {"ndcg@10": 0.2, "recall@10": 0.3}},
        {"label": "rrf", "kind": "fusion", "metrics": {"recall@10": 0.25}},  # no ndcg: bar says n/a
    ]}
    _write(tmp_path / "r", "scenarios-product.json", doc)
    page = build_report(tmp_path / "r", tmp_path / "r.html").read_text()
    assert len(_images(page)) == 1  # only the accuracy bars
    assert "Scenario: product page" in page
    assert "No pipeline row in this file" in page
    assert 'no row of this file has a &quot;contribution&quot; field' in page
    assert "Exposure curve skipped" in page and "Coverage bars skipped" in page
    assert "machine: unknown" in page


def test_exposure_without_coverage_and_contribution_not_summing_to_one(tmp_path):
    doc = _scenario()
    for row in doc["rows"]:
        row["metrics"].pop("coverage@10")
    doc["rows"][3]["contribution"] = {"fbt": 0.5, "item_knn": 0.3}
    _write(tmp_path / "r", "scenarios-cart.json", doc)
    page = build_report(tmp_path / "r", tmp_path / "r.html").read_text()
    assert len(_images(page)) == 4  # accuracy, contribution, exposure curve, top-decile bars
    assert "Coverage bars skipped" in page
    assert "Shares do not add up to 100 % for pipeline (80 %)" in page
    assert "pipeline: 30 % of slots to the 10 % most popular items" in page


def test_lift_known_answers():
    rows = [ScenarioRow("a", "single", {"ndcg@10": 0.1}), ScenarioRow("b", "single", {"ndcg@10": 0.2}),
            ScenarioRow("f", "fusion", {"ndcg@10": 0.5}), ScenarioRow("p", "pipeline", {"ndcg@10": 0.17}),
            ScenarioRow("q", "pipeline", {"recall@10": 0.3})]
    ((p, value, best),) = lift(rows, "ndcg@10")
    assert (p.label, best.label) == ("p", "b")
    assert value == pytest.approx(-0.15)
    assert lift(rows, "recall@10") == []  # no single strategy has recall
    zero = [ScenarioRow("a", "single", {"m@1": 0.0}), ScenarioRow("p", "pipeline", {"m@1": 0.1})]
    assert lift(zero, "m@1")[0][1] != lift(zero, "m@1")[0][1]  # nan: no lift over a zero baseline


def test_load_results_keeps_file_and_row_order(tmp_path):
    _write(tmp_path, "scenarios-z.json", _scenario(scenario="z"))
    _write(tmp_path, "scenarios-a.json", _scenario(scenario="a"))
    scenarios, accuracy = load_results(tmp_path)
    assert [s.scenario for s in scenarios] == ["a", "z"]
    assert [r.label for r in scenarios[0].rows] == ["fbt", "item_knn", "rrf <b>x</b>", "pipeline"]
    assert accuracy == []


def test_missing_or_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_report(tmp_path / "nope", tmp_path / "r.html")
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "empty", "other.json", {})
    with pytest.raises(FileNotFoundError, match=r"empty holds no result files.*scenarios-\*\.json"):
        build_report(tmp_path / "empty", tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("name, doc, message", [
    ("scenarios-bad.json", '{"scenario": "cart", "rows": [', r"scenarios-bad\.json: not valid JSON"),
    ("scenarios-bad.json", "[1, 2]", r"scenarios-bad\.json: expected a JSON object"),
    ("scenarios-bad.json", {"scenario": "cart"}, r"scenarios-bad\.json, field 'rows': required key 'rows'"),
    ("scenarios-bad.json", {"scenario": "cart", "rows": [{"label": "a", "metrics": {}}]},
     r"scenarios-bad\.json, field 'rows\[0\]\.kind': required key 'rows\[0\]\.kind' is missing"),
    ("scenarios-bad.json", {"scenario": "cart", "rows": [{"label": "a", "kind": "solo", "metrics": {}}]},
     r"rows\[0\]\.kind'.*expected one of single, fusion, pipeline, found 'solo'"),
    ("scenarios-bad.json", {"scenario": "cart", "rows": [{"label": "a", "kind": "single",
                                                          "metrics": {"ndcg@10": "high"}}]},
     r"rows\[0\]\.metrics\.ndcg@10'.*expected a number"),
    ("scenarios-bad.json", {"scenario": "cart", "rows": [{"label": "a", "kind": "single", "metrics": {},
                                                          "exposure_by_popularity_decile": [1.0]}]},
     r"exposure_by_popularity_decile'.*10 shares"),
    ("accuracy-bad.json", {"dataset": "d", "results": [{"ndcg@20": 0.1}]},
     r"accuracy-bad\.json, field 'results\[0\]\.strategy': required key"),
    ("accuracy-bad.json", {"results": []}, r"accuracy-bad\.json, field 'dataset'"),
])
def test_malformed_file_names_the_file_and_the_key(tmp_path, name, doc, message):
    _write(tmp_path / "r", "accuracy-good.json", _accuracy())
    _write(tmp_path / "r", name, doc)
    with pytest.raises(DataError, match=message) as info:
        build_report(tmp_path / "r", tmp_path / "r.html")
    assert isinstance(info.value, ValueError)


def test_real_benchmark_results_render(tmp_path):
    if not any(REPO_RESULTS.glob("accuracy-*.json")):
        pytest.skip(f"no accuracy-*.json in {REPO_RESULTS}")
    out = build_report(REPO_RESULTS, tmp_path / "report.html")
    page = out.read_text()
    n_files = len(list(REPO_RESULTS.glob("accuracy-*.json"))) + len(list(REPO_RESULTS.glob("scenarios-*.json")))
    images = _images(page)
    assert len(images) >= n_files
    assert "Accuracy: diginetica" in page and "Published:" in page
    if (REPO_RESULTS / "scenarios-item_page_rules.json").exists():  # two cases of one scenario on one dataset
        assert "Scenario: item_page (diginetica, case item_page_rules)" in page
    # compact however many results there are: under 100 kB a plot on average, page text included
    assert out.stat().st_size < 100_000 * len(images)


def test_drawing_the_report_is_a_progress_step_per_file(tmp_path):
    from shoprec import progress

    _write(tmp_path, "scenarios-a.json", _scenario())
    _write(tmp_path, "scenarios-b.json", _scenario(scenario="cart"))
    _write(tmp_path, "accuracy-x.json", _accuracy())
    rec = progress.Recorder()
    with progress.reporting(rec):
        build_report(tmp_path, tmp_path / "r.html")
    (step,) = [s for s in rec.steps if s["description"].startswith("drawing the report")]
    assert step["total"] == 3 and step["done"] == 3 and step["unit"] == "file" and step["failed"] is False


def test_simulator_section_plots_regret_per_case(tmp_path):
    import json

    from shoprec.exceptions import DataError
    from shoprec.report.online import read_simulation, simulation_section

    runs = []
    for seed in (2, 3):
        for policy, rate in (("fixed: a", 0.03), ("fixed: b", 0.01), ("thompson", 0.028)):
            runs.append({"seed": seed, "drift": False, "policy": policy, "impressions": [1000, 2000, 3000],
                         "cumulative_reward": [rate * 1000, rate * 2000, rate * 3000]})
    p = tmp_path / "online-sim.json"
    p.write_text(json.dumps({"drift_at": None, "runs": runs}))
    cases = read_simulation(p)
    assert [(c["seed"], c["drift"], len(c["runs"])) for c in cases] == [(2, False, 3), (3, False, 3)]
    html, toc = simulation_section([p], "sim")
    assert html.count("<img") == 2 and "regret" in html and toc[0] == "sim"
    assert html.index("fixed: a") < html.index("thompson") < html.index("fixed: b")   # best first in the table
    (tmp_path / "bad.json").write_text(json.dumps({"runs": [{"policy": "x"}]}))
    with pytest.raises(DataError, match=r"bad\.json: runs\[0\] has no 'impressions'"):
        read_simulation(tmp_path / "bad.json")


def test_report_draws_the_fairness_curves(tmp_path):
    import json

    from shoprec.exceptions import DataError
    from shoprec.report.fairness import read_fairness
    from shoprec.report.page import build_report

    curve = [{"params": {"method": "exposure", "strength": s, "amortize": a}, "gini": 0.9 - s / 2, "ndcg": 0.2 - s / 10}
             for a in (False, True) for s in (0.0, 0.1, 0.3)]
    res = {"result": {"or": {"case": "Online Retail", "groups": "product type", "curve": curve}}}
    (tmp_path / "marketplace-fairness.json").write_text(json.dumps(res))
    _write(tmp_path, "accuracy-tinyset.json", _accuracy())
    text = build_report(tmp_path, tmp_path / "r.html").read_text()
    assert 'id="fairness"' in text and "exposure Gini against NDCG@10, Online Retail" in text   # the alt text
    assert text.count("data:image/png;base64") >= 2 and 'href="#fairness"' in text
    assert read_fairness(tmp_path / "marketplace-fairness.json")["or"]["case"] == "Online Retail"
    (tmp_path / "bad.json").write_text(json.dumps({"result": {"or": {"case": "x"}}}))
    import pytest

    with pytest.raises(DataError, match="has no 'groups'"):
        read_fairness(tmp_path / "bad.json")
