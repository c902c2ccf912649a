"""Content strategies (TF-IDF, sentence embeddings) on tiny catalogues with known answers."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from shoprec.data import IdMap, Ragged, ShopData
from shoprec.exceptions import ConfigError
from shoprec.strategies import content
from shoprec.strategies.base import Queries, Strategy, make_strategy
from shoprec.strategies.content import (ContentEmbeddingStrategy, ContentTFIDFConfig, ContentTFIDFStrategy,
                                        item_texts)
from shoprec.testing import check_strategy, tiny_shop

# items 0-2: candle holders; 3-4: mugs; 5: unrelated
TITLES = ["red heart candle holder", "white heart candle holder", "heart t-light candle holder",
          "blue ceramic coffee mug", "green ceramic coffee mug", "garden trowel"]
NEW_ITEM = "red heart candle holder large"
# (user, item, timestamp): u0 bought the red candle holder, later the blue mug
EVENTS = [("u0", 0, 1), ("u0", 3, 2), ("u1", 1, 3), ("u1", 4, 4), ("u2", 2, 5), ("u2", 5, 6),
          ("u3", 3, 7), ("u3", 5, 8)]


def catalogue_shop(titles: list[str | None] = TITLES, **columns) -> ShopData:
    """``EVENTS`` (on the first six items only, those the catalogue has); item ``i`` has index ``i``."""
    ids = [f"i{i}" for i in range(len(titles))]
    events = [e for e in EVENTS if e[1] < len(titles)]
    frame = pd.DataFrame({"user_id": [u for u, _, _ in events], "item_id": [f"i{i}" for _, i, _ in events],
                          "timestamp": [t for _, _, t in events]})
    table = pd.DataFrame({"title": titles, **columns}, index=ids)
    return ShopData.from_frame(frame, item_table=table, items=IdMap(ids))


def session(*rows: list[int], query: list[str | None] | None = None, basket=None) -> Queries:
    n = len(rows)
    items = Ragged.from_lists(rows)
    ctx = None if query is None else {"query": np.array(query, dtype=object)}
    b = Ragged.empty(n) if basket is None else Ragged.from_lists(basket)
    return Queries(np.full(n, -1, np.int32), items, items.last(), b, context=ctx)


def top(strategy, queries: Queries, k: int, **kw) -> np.ndarray:
    return strategy.recommend(queries, k, **kw).item_idx


# ------------------------------------------------------------------------------ TF-IDF
def test_tfidf_history_ranks_similar_texts_first():
    s = ContentTFIDFStrategy().fit(catalogue_shop())
    got = top(s, session([0]), 2, filter_history=True)
    assert got[0].tolist() == [1, 2]  # 1 shares "heart candle" and "candle holder", 2 only the latter
    scores = s.score(session([0]))[0]
    assert (scores[[3, 4, 5]] == 0).all() and np.isfinite(scores).all()


def test_tfidf_neighbourhood_is_the_cosine_of_sklearn_tfidf():
    from sklearn.feature_extraction.text import TfidfVectorizer

    data = catalogue_shop()
    x = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), strip_accents="unicode").fit_transform(TITLES)
    cos = (x @ x.T).toarray()
    np.fill_diagonal(cos, 0.0)
    s = ContentTFIDFStrategy(neighbours=10).fit(data)
    np.testing.assert_allclose(s.similarity_.toarray(), cos, rtol=1e-5, atol=1e-6)
    # one neighbour per item, made symmetric: 0↔1 (each other's nearest), 2→0, 3↔4; 5 has none
    one = ContentTFIDFStrategy(neighbours=1).fit(data).similarity_.toarray() > 0
    expected = np.zeros_like(one)
    for a, b in [(0, 1), (2, 0), (3, 4)]:
        expected[a, b] = expected[b, a] = True
    np.testing.assert_array_equal(one, expected)


def test_tfidf_recommends_a_new_item_without_events():
    data = catalogue_shop(TITLES + [NEW_ITEM])
    assert data.item_popularity()[6] == 0
    s = ContentTFIDFStrategy().fit(data)
    assert top(s, session([0]), 1, filter_history=True)[0, 0] == 6
    # a known user whose history holds the red candle holder gets it too
    assert 6 in top(s, Queries.for_users([0]), 3, filter_history=True)[0]


def test_tfidf_search_text_ranks_matching_items_only():
    s = ContentTFIDFStrategy().fit(catalogue_shop())
    q = session([], [], [], query=["candle", "Coffee MUG", None])
    scores = s.score(q)
    assert set(np.flatnonzero(scores[0] > 0)) == {0, 1, 2}
    assert set(np.flatnonzero(scores[1] > 0)) == {3, 4}
    assert (scores[2] == 0).all()  # no text, no history
    assert set(top(s, q, 3)[0]) == {0, 1, 2}
    # search and history add up: a mug in the history and a search for candles score both
    both = s.score(session([3], query=["candle holder"]))[0]
    assert both[[0, 1, 2]].min() > 0 and both[4] > 0 and both[5] == 0


def test_tfidf_recency_decay_weighs_recent_items_more():
    s = ContentTFIDFStrategy(recency_decay=0.5).fit(catalogue_shop())
    q = session([3, 0], [0, 3])
    assert top(s, q, 1, filter_history=True)[:, 0].tolist() == [1, 4]
    # u0 bought the candle holder, then the blue mug: the other mug comes first
    assert top(s, Queries.for_users([0]), 1, filter_history=True)[0, 0] == 4
    # a basket item is current: it outweighs the user's older purchases
    q = Queries(np.array([0], np.int32), Ragged.empty(1), np.array([-1], np.int32), Ragged.from_lists([[1]]))
    assert top(s, q, 1, filter_history=True)[0, 0] == 2
    # weights: basket 1, training mug (newest) 0.5, training candle 0.25, scaled to sum 1
    w = s.weighted_history(q).toarray()[0]
    np.testing.assert_allclose(w[[0, 1, 3]], np.array([0.25, 1.0, 0.5]) / 1.75, rtol=1e-6)
    # without decay both histories are the same set
    flat = ContentTFIDFStrategy(recency_decay=1.0).fit(catalogue_shop())
    a, b = flat.score(session([3, 0], [0, 3]))
    np.testing.assert_allclose(a, b)


def test_tfidf_item_vectors_and_similarity():
    data = catalogue_shop(TITLES + [None])  # item 6 has no text
    s = ContentTFIDFStrategy().fit(data)
    x = s.item_vectors()
    assert x.shape[0] == 7 and x.dtype == np.float32
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms, [1, 1, 1, 1, 1, 1, 0], atol=1e-6)
    a, b = np.array([0, 0, 3, 6]), np.array([1, 5, 4, 0])
    sim = s.similarity(a, b)
    np.testing.assert_allclose(sim, (x[a].multiply(x[b])).sum(axis=1).A1, rtol=1e-6)
    assert sim[0] > 0.3 and sim[1] == 0 and sim[2] > 0.3 and sim[3] == 0
    assert s.similarity(np.array([[0, 1]]), np.array([[1, 0]])).shape == (1, 2)
    with pytest.raises(ValueError, match="aligned"):
        s.similarity([0, 1], [1])
    with pytest.raises(ValueError, match="item indices"):
        s.similarity([0], [99])
    # the text-less item is never a neighbour and scores 0
    assert s.similarity_[6].nnz == 0 and s.score(session([0]))[0, 6] == 0


def test_item_texts_join_fields_without_repeats():
    data = catalogue_shop(["mug", None, "vase"], description=["mug", "candle", "glass vase"],
                          category=pd.Categorical(["kitchen", "home", None]))
    got = item_texts(data, ("title", "description", "category", "brand"))
    assert got.tolist() == ["mug. kitchen", "candle. home", "vase. glass vase"]


def test_tfidf_char_ngrams_match_spelling_variants():
    data = catalogue_shop(["t-light holder", "tlight holders", "garden trowel"])
    s = ContentTFIDFStrategy(analyzer="char_wb").fit(data)
    assert s.score(session([], query=["tlights"]))[0].argmax() == 1
    both = ContentTFIDFStrategy(analyzer="both").fit(data)
    assert top(both, session([0]), 1, filter_history=True)[0, 0] == 1


def test_tfidf_search_survives_save_and_load(tmp_path):
    s = ContentTFIDFStrategy(analyzer="both").fit(catalogue_shop())
    q = session([3], [], query=["heart holder", "ceramic"])
    loaded = Strategy.load(s.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.score(q), s.score(q), rtol=1e-6)
    np.testing.assert_allclose(loaded.similarity([0, 3], [1, 4]), s.similarity([0, 3], [1, 4]))


def test_tfidf_bad_config_and_fields():
    with pytest.raises(ValidationError):
        ContentTFIDFConfig(colour_field="title")  # unknown option
    with pytest.raises(ConfigError, match="content_tfidf"):
        make_strategy("content_tfidf", fields=[])
    with pytest.raises(ConfigError):
        make_strategy("content_tfidf", word_ngrams=(2, 1))
    with pytest.raises(ValueError, match=r"none of the text fields \['colour'\].*title"):
        ContentTFIDFStrategy(fields=("colour",)).fit(catalogue_shop())
    plain = ShopData.from_frame(pd.DataFrame({"user_id": ["u"], "item_id": ["i"]}))
    with pytest.raises(ValueError, match="no item table"):
        ContentTFIDFStrategy().fit(plain)
    with pytest.raises(ValueError, match="no word terms"):
        ContentTFIDFStrategy().fit(catalogue_shop([None] * 6))


@pytest.mark.parametrize("params", [{}, {"analyzer": "both", "neighbours": 3}, {"recency_decay": 1.0}])
def test_tfidf_conformance(tmp_path, params):
    check_strategy(lambda: ContentTFIDFStrategy(**params), tiny_shop(), tmp_path)


# -------------------------------------------------------------------------- embeddings
def test_embedding_without_sentence_transformers_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import fails
    with pytest.raises(ConfigError, match=r'pip install "shoprec\[embeddings\]"'):
        content._load_model("/no/such/model/for/this/test")


def test_embedding_unknown_model_is_a_config_error():
    with pytest.raises(ConfigError, match="no_such_model_package"):
        content.resolve_model_path("no-such-model-package")


@pytest.fixture(scope="module")
def embedding():
    pytest.importorskip("sentence_transformers",
                        reason='content_embedding needs sentence-transformers: pip install "shoprec[embeddings]"')
    return ContentEmbeddingStrategy().fit(catalogue_shop(TITLES + [NEW_ITEM]))


def test_embedding_history_new_item_and_search(embedding):
    s = embedding
    e = s.item_vectors()
    assert e.shape == (7, 384) and e.dtype == np.float32 and not e.flags.writeable
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    got = top(s, session([0]), 3, filter_history=True)[0]
    assert set(got) == {1, 2, 6}  # the new item 6 has no event, only text
    assert top(s, session([3]), 1, filter_history=True)[0, 0] == 4
    q = session([], query=["candle"])
    assert set(top(s, q, 4)[0]) == {0, 1, 2, 6}
    scores = s.score(q)[0]
    assert (scores[[3, 4, 5]] == 0).all()  # below min_query_similarity
    np.testing.assert_allclose(s.similarity([0, 0], [1, 5]), [e[0] @ e[1], e[0] @ e[5]], rtol=1e-5)
    assert s.similarity([0], [1])[0] > s.similarity([0], [5])[0]


def test_embedding_saved_strategy_needs_no_model(embedding, tmp_path, monkeypatch):
    loaded = Strategy.load(embedding.save(tmp_path / "emb"))
    q = session([0], [3, 4])

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(content, "_load_model", no_model)
    np.testing.assert_allclose(loaded.score(q), embedding.score(q), rtol=1e-6)


def test_embedding_conformance(embedding, tmp_path):
    check_strategy(lambda: ContentEmbeddingStrategy(neighbours=5), tiny_shop(), tmp_path)


# ---------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_tfidf_online_retail_t_light_holders(shared_data):
    from shoprec.data.adapters import load

    path = shared_data("online-retail", "online_retail_2010_2011.parquet")
    data, _ = load(f"online_retail:{path}")
    titles = data.item_table["title"].astype(str).to_numpy()
    s = ContentTFIDFStrategy().fit(data)
    item = int(data.items.to_index(["85123A"])[0])
    assert titles[item] == "WHITE HANGING HEART T-LIGHT HOLDER"
    # a basket with the t-light holder and a customer with a long history behind it
    user = int(data.events["user_idx"].iloc[0])
    q = Queries(np.array([-1, user], np.int32), Ragged.empty(2), np.full(2, -1, np.int32),
                Ragged.from_lists([[item], [item]]))
    got = s.recommend(q, 5, filter_history=True).item_idx
    for row in got[:1]:
        assert all("T-LIGHT HOLDER" in titles[j] for j in row), titles[row]
    assert sum("T-LIGHT" in titles[j] for j in got[1]) >= 3, titles[got[1]]
    sim = s.similarity(np.full(5, item), got[0])
    assert (np.diff(sim) <= 1e-6).all() and sim.min() > 0.5
