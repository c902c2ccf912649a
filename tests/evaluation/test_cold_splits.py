"""Cold-start splits: new users by user split, first visits after a temporal cut. No leakage."""

import numpy as np
import pandas as pd
import pytest

from shoprec.data import Behaviour, ShopData
from shoprec.evaluation.cold_splits import first_visit, new_users

P, R = int(Behaviour.PURCHASE), int(Behaviour.REMOVE_FROM_CART)
DAY = 86_400


def _rated_shop(n_users=20):
    """MovieLens-like: every user rates 3 items, no timestamps; demographics in the user table."""
    rows = [(f"u{u}", f"i{(u + j) % 7}") for u in range(n_users) for j in range(3)]
    f = pd.DataFrame(rows, columns=["user_id", "item_id"])
    users = pd.DataFrame({"gender": ["F" if u % 2 else "M" for u in range(n_users)],
                          "age": pd.array([25 if u % 3 else None for u in range(n_users)], dtype="Int64"),
                          "occupation": pd.array([u % 4 for u in range(n_users)], dtype="Int64")},
                         index=[f"u{u}" for u in range(n_users)])
    return ShopData.from_frame(f, user_table=users, name="rated")


def test_new_users_removes_test_users_from_training_and_gives_only_attributes():
    d = _rated_shop()
    t = new_users(d, test_fraction=0.2, seed=3)
    assert t.n_queries == 4
    assert (t.queries.user_idx == -1).all() and t.queries.items.indptr[-1] == 0
    assert t.queries.basket.indptr[-1] == 0 and t.exclude is None
    test_users = t.meta["test_users"]
    assert len(np.unique(test_users)) == 4
    train_users = set(t.train.events["user_idx"].tolist())
    assert not train_users & set(test_users.tolist())  # no leakage
    assert t.train.n_events == d.n_events - 4 * 3
    ev = d.events
    for row, u in enumerate(test_users):
        items = set(ev.loc[ev["user_idx"] == u, "item_idx"].tolist())
        assert set(t.relevant[row].indices.tolist()) == items  # relevant = all their items
        assert t.queries.context["gender"][row] == d.user_table["gender"].iloc[u]
        assert t.queries.context["occupation"][row] == u % 4
        assert t.queries.context["age"][row] == (25 if u % 3 else -1)  # missing → -1
    assert t.protocol.startswith("split by user, new users given only gender, age, occupation")
    # deterministic per seed, different across seeds
    np.testing.assert_array_equal(new_users(d, test_fraction=0.2, seed=3).meta["test_users"], test_users)
    assert not np.array_equal(new_users(d, test_fraction=0.2, seed=4).meta["test_users"], test_users)


def test_new_users_errors():
    d = _rated_shop()
    with pytest.raises(ValueError, match="user_table columns \\['zip'\\]"):
        new_users(d, attributes=("zip",))
    no_table = ShopData.from_frame(pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"]}))
    with pytest.raises(ValueError, match="needs user_table"):
        new_users(no_table)
    with pytest.raises(ValueError, match="test_fraction"):
        new_users(d, test_fraction=1.5)
    with pytest.raises(ValueError, match="at least one"):
        new_users(d, test_fraction=0.01)


def _retail_shop():
    """Old customers before day 10; new ones after; a guest order; cancellations."""
    t0 = 10 * DAY
    rows = [
        # old customer: bought before the cut and again after (not a first visit)
        ("c1", "a", P, 1 * DAY, "inv1", "UK"), ("c1", "b", P, 12 * DAY, "inv5", "UK"),
        ("c2", "a", P, 2 * DAY, "inv2", "UK"), ("c2", "c", P, 2 * DAY, "inv2", "UK"),
        ("c3", "d", P, 3 * DAY, "inv3", "Germany"),
        # new customer n1: first basket inv6 (a cancelled line in it), a second basket later
        ("n1", "b", P, t0 + 3600 * 9, "inv6", "Germany"), ("n1", "c", P, t0 + 3600 * 9, "inv6", "Germany"),
        ("n1", "d", R, t0 + 3600 * 9, "inv6", "Germany"),
        ("n1", "e", P, t0 + 5 * DAY, "inv8", "France"),
        # new customer n2 in France
        ("n2", "a", P, t0 + DAY + 3600 * 15, "inv7", "France"),
        # a guest order after the cut
        ("guest:inv9", "e", P, t0 + 2 * DAY, "inv9", "EIRE"),
        # new customer n3 whose first basket is only a cancellation: not queried
        ("n3", "a", R, t0 + 3 * DAY, "C10", "UK"),
    ]
    f = pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp", "session_id", "country"])
    return ShopData.from_frame(f, name="retail")


def test_first_visit_queries_new_customers_with_their_first_basket():
    d = _retail_shop()
    cut = 10 * DAY
    t = first_visit(d, cut=cut)
    users = d.users.to_external(t.meta["test_users"]).tolist()
    assert users == ["n1", "n2"]
    assert (t.queries.user_idx == -1).all() and t.exclude is None
    # training = events before the cut; queried users have none there
    assert (t.train.events["timestamp"] < cut).all()
    assert t.train.n_events == 4
    assert not set(t.train.events["user_idx"].tolist()) & set(t.meta["test_users"].tolist())
    rel = [sorted(d.items.to_external(t.relevant[i].indices)) for i in range(2)]
    assert rel == [["b", "c"], ["a"]]  # first basket only, purchases only
    ctx = t.queries.context
    assert ctx["country"].tolist() == ["Germany", "France"]
    assert ctx["timestamp"].tolist() == [cut + 3600 * 9, cut + DAY + 3600 * 15]
    assert ctx["hour"].tolist() == [9, 15]
    assert ctx["weekday"].tolist() == [6, 0]  # day 10 of 1970 = Sunday, day 11 = Monday
    assert t.protocol.startswith("new customers whose first event is after the temporal cut")


def test_first_visit_guests_and_default_cut():
    d = _retail_shop()
    t = first_visit(d, cut=10 * DAY, include_guests=True)
    assert d.users.to_external(t.meta["test_users"]).tolist() == ["n1", "n2", "guest:inv9"]
    t = first_visit(d, test_fraction=0.5)
    ts = d.events["timestamp"].to_numpy()
    assert t.meta["cut"] == int(np.quantile(ts, 0.5))
    first = d.events.groupby("user_idx")["timestamp"].min()
    for u in t.meta["test_users"]:
        assert first[u] >= t.meta["cut"]
        assert (t.train.events["user_idx"] != u).all()


def test_first_visit_without_sessions_uses_the_first_day():
    rows = [("old", "a", 0), ("n", "b", 10 * DAY + 5), ("n", "c", 10 * DAY + 600), ("n", "d", 11 * DAY + 5)]
    f = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(behaviour=P, country="DE")
    d = ShopData.from_frame(f)
    t = first_visit(d, cut=DAY)
    assert sorted(d.items.to_external(t.relevant[0].indices)) == ["b", "c"]


def test_first_visit_errors():
    d = _retail_shop()
    with pytest.raises(ValueError, match="'device' is neither"):
        first_visit(d, cut=10 * DAY, attributes=("device",))
    no_time = ShopData.from_frame(pd.DataFrame({"user_id": ["a"], "item_id": ["x"]}))
    with pytest.raises(ValueError, match="timestamp on every event"):
        first_visit(no_time)


@pytest.mark.realdata
def test_cold_splits_on_real_data(shared_data):
    from shoprec.data.adapters import load

    ml = load(f"movielens:{shared_data('movielens-1m')}")
    t = new_users(ml)
    assert t.n_queries == 604 and t.train.n_users == ml.n_users
    assert not np.isin(t.train.events["user_idx"].to_numpy(), t.meta["test_users"]).any()
    assert set(t.queries.context["gender"]) == {"F", "M"}
    assert t.relevant.nnz == ml.n_events - t.train.n_events

    retail, _ = load(f"online_retail:{shared_data('online-retail', 'online_retail_2010_2011.parquet')}")
    f = first_visit(retail)
    assert 100 < f.n_queries < 200
    assert not np.isin(f.train.events["user_idx"].to_numpy(), f.meta["test_users"]).any()
    assert (f.queries.context["country"] != "").all()
    assert (np.diff(f.relevant.indptr) > 0).all()
