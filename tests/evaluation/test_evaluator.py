"""The evaluator: ranking in blocks gives what one recommend call gives, AUC over the full catalogue,
progress steps for fit and ranking, and a failing strategy that does not stop the others."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec import progress
from shoprec.evaluation import EvalFailure, evaluate, evaluate_strategy, leave_one_out
from shoprec.evaluation import evaluator as E
from shoprec.evaluation import metrics as M
from shoprec.strategies import make_strategy
from shoprec.strategies.topk import mask_scores
from shoprec.testing import tiny_shop


@pytest.fixture(scope="module")
def task():
    return leave_one_out(tiny_shop(n_users=120, n_items=30))


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 7 queries, so that the tiny task is ranked in several."""
    monkeypatch.setattr(E, "MIN_BLOCK_QUERIES", 1)
    monkeypatch.setattr(E, "_block_rows", lambda strategy, n, n_items: 7)


def test_blocks_rank_as_one_recommend_call_and_auc_is_the_full_catalogue_auc(task, small_blocks):
    assert task.n_queries > 14  # several blocks
    s = make_strategy("item_knn")
    res = evaluate_strategy(s, task, (5, 10))
    top = s.recommend(task.queries, 10, exclude=task.exclude).item_idx
    assert res.metrics == pytest.approx(E.measure(top, task, (5, 10), categories=E.item_categories(task),
                                                  auc=res_auc(s, task)), nan_ok=True)
    assert 0.5 < res.metrics["auc"] <= 1.0  # item-kNN on two taste clusters ranks the relevant items high
    assert "auc_seconds" in res.extra


def res_auc(strategy, task) -> np.ndarray:
    scores = strategy.score(task.queries)
    mask_scores(scores, task.exclude)
    return M.auc(scores, task.relevant, task.exclude)


def test_auc_can_be_left_out(task):
    res = evaluate_strategy(make_strategy("popularity"), task, (5,), auc=False)
    assert "auc" not in res.metrics and "recall@5" in res.metrics


def test_fit_and_ranking_blocks_are_progress_steps(task, small_blocks):
    rec = progress.Recorder()
    with progress.reporting(rec):
        evaluate([("pop", "popularity", {}), ("knn", "item_knn", {})], task, (5,))
    (outer,) = rec.named("evaluating 2 strategies")
    assert outer["total"] == 2 and outer["done"] == 2 and outer["depth"] == 0
    for label in ("pop", "knn"):
        (fit,) = rec.named(f"{label}: fitting")
        (rank,) = rec.named(f"{label}: ranking")
        assert fit["depth"] == rank["depth"] == 1 and not fit["failed"] and not rank["failed"]
        assert rank["total"] == task.n_queries and rank["unit"] == "query"
        assert rank["done"] == task.n_queries and rank["advances"] == -(-task.n_queries // 7)


class Broken:
    """Stands in for a strategy whose ranking fails."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.block_cells = inner.block_cells

    def fit(self, data):
        self.inner.fit(data)
        return self

    def score(self, queries):
        raise RuntimeError("scores went missing")


def test_a_failing_strategy_is_recorded_and_the_others_still_run(task, monkeypatch):
    real = E.make_strategy

    def make(name, **params):
        return Broken(real("popularity")) if name == "broken" else real(name, **params)

    monkeypatch.setattr(E, "make_strategy", make)
    seen: list = []
    out = evaluate([("bad param", "item_knn", {"neighbors": 3}), ("broken", "broken", {}),
                    ("pop", "popularity", {})], task, (5,), on_error=seen.append)
    assert [r.failed for r in out] == [True, True, False]
    bad, broken, pop = out
    assert isinstance(bad, EvalFailure) and bad.stage == "fit" and "neighbors" in bad.message
    assert broken.stage == "ranking" and broken.error == "RuntimeError: scores went missing"
    assert broken.as_dict()["error_type"] == "RuntimeError"
    assert seen == [bad, broken] and pop.metrics["recall@5"] >= 0


def test_without_on_error_the_first_failure_propagates(task):
    with pytest.raises(Exception, match="neighbors"):
        evaluate([("bad", "item_knn", {"neighbors": 3})], task, (5,))


def test_no_test_queries_is_one_clear_error(task):
    from dataclasses import replace

    empty = replace(task, queries=task.queries.take(np.array([], dtype=np.int64)),
                    relevant=task.relevant[:0], exclude=None if task.exclude is None else task.exclude[:0])
    with pytest.raises(ValueError, match="no test queries"):
        evaluate([("pop", "popularity", {})], empty, (5,), on_error=lambda f: None)
