"""The exposure audit on small lists with known answers."""

import numpy as np
import pytest
import scipy.sparse as sp

from shoprec.evaluation.exposure import exposure_audit, gini, position_weights


def test_gini_known_values():
    assert gini(np.array([1.0, 1.0, 1.0])) == pytest.approx(0.0)
    assert gini(np.array([0.0, 0.0, 0.0, 4.0])) == pytest.approx(0.75)        # (n − 1) / n: one holds all
    assert gini(np.array([1.0, 3.0])) == pytest.approx(0.25)
    assert gini(np.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        gini(np.array([-1.0, 2.0]))


def test_exposure_shares_follow_the_position_weights():
    # items 0, 1 of group 0 (seller A), item 2 of group 1 (seller B), item 3 of no group
    group = np.array([0, 0, 1, -1])
    lists = np.array([[0, 2, -1], [1, 3, 2]])
    w = position_weights(3)                          # 1, 0.631, 0.5
    audit = exposure_audit(lists, group, names=["A", "B"], small=np.array([False, True]),
                           relevant=sp.csr_matrix(np.array([[0, 0, 1, 0], [0, 0, 1, 1]])))
    a, b = 2 * w[0], w[1] + w[2]                     # A: two first slots; B: a second and a third
    got = audit.groups.set_index("group")
    assert got.loc["A", "exposure_share"] == pytest.approx(a / (a + b))
    assert got.loc["B", "exposure_share"] == pytest.approx(b / (a + b))
    assert got.loc["B", "relevance_share"] == pytest.approx(1.0) and got.loc["A", "relevance_share"] == 0.0
    assert audit.small_share == pytest.approx(b / (a + b))
    assert audit.gini == pytest.approx(gini(np.array([a, b])))
    assert got.loc["A", "items_shown"] == 2 and got.loc["B", "items_shown"] == 1


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="requests, k"):
        exposure_audit(np.array([0, 1]), np.array([0, 0]))
    with pytest.raises(ValueError, match="beyond the 2 items"):
        exposure_audit(np.array([[0, 5]]), np.array([0, 0]))
    with pytest.raises(ValueError, match="rows for 1 lists"):
        exposure_audit(np.array([[0, 1]]), np.array([0, 0]), relevant=sp.csr_matrix((2, 2)))


def test_evaluation_reports_the_exposure_audit_by_the_catalogues_groups():
    from shoprec.evaluation.evaluator import evaluate_strategy
    from shoprec.evaluation.splits import temporal_split
    from shoprec.strategies import make_strategy
    from shoprec.testing import tiny_shop

    task = temporal_split(tiny_shop(), test_fraction=0.3)
    res = evaluate_strategy(make_strategy("popularity"), task, ks=(5,), auc=False)
    assert res.extra["exposure_by"] == "category"
    assert 0.0 <= res.metrics["exposure_gini@5"] <= 1.0 and "small_group_share@5" in res.metrics
    task.meta["exposure_by"] = "brand"
    with pytest.raises(ValueError, match="no such column"):
        evaluate_strategy(make_strategy("popularity"), task, ks=(5,), auc=False)
