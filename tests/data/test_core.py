"""Unit tests of the data core: IdMap, Ragged, ShopData (known answers on tiny inputs)."""

import numpy as np
import pandas as pd
import pytest

from shoprec.data import Behaviour, IdMap, Ragged, ShopData


def test_idmap_roundtrip_and_unknown():
    m = IdMap(["a", "b", "c"])
    assert len(m) == 3 and "b" in m and "z" not in m
    np.testing.assert_array_equal(m.to_index(["c", "a"]), [2, 0])
    assert m.to_index(["c", "a"]).dtype == np.int32
    with pytest.raises(KeyError, match="z"):
        m.to_index(["z"])
    np.testing.assert_array_equal(m.to_index(["z", "b"], missing=-1), [-1, 1])
    assert list(m.to_external(np.array([1, -1]))) == ["b", None]
    m2 = m.extend(["c", "d"])
    assert list(m2.external_ids) == ["a", "b", "c", "d"]


def test_idmap_rejects_duplicates():
    with pytest.raises(ValueError, match="'a' occurs more than once"):
        IdMap(["a", "b", "a"])


def test_ragged_operations():
    r = Ragged.from_lists([[1, 2, 3], [], [4]])
    assert len(r) == 3
    np.testing.assert_array_equal(r.lengths, [3, 0, 1])
    np.testing.assert_array_equal(r.last(), [3, -1, 4])
    np.testing.assert_array_equal(r.tail(2)[0], [2, 3])
    t = r.take(np.array([2, 0]))
    assert [list(t[i]) for i in range(2)] == [[4], [1, 2, 3]]
    c = r.concat(Ragged.from_lists([[9], [8], []]))
    assert [list(c[i]) for i in range(3)] == [[1, 2, 3, 9], [8], [4]]
    m = Ragged.from_lists([[1, 1, 2], [0]]).to_csr(3)
    np.testing.assert_array_equal(m.toarray(), [[0, 2, 1], [1, 0, 0]])


def _shop():
    frame = pd.DataFrame({
        "user_id": ["u1", "u1", "u1", "u2", "u2"],
        "item_id": ["a", "b", "a", "b", "c"],
        "behaviour": [int(Behaviour.VIEW), int(Behaviour.ADD_TO_CART), int(Behaviour.PURCHASE),
                      int(Behaviour.VIEW), int(Behaviour.REMOVE_FROM_CART)],
        "timestamp": [30, 10, 20, 5, 6],
        "session_id": ["s1", "s1", "s2", "s3", "s3"],
    })
    return ShopData.from_frame(frame, name="t")


def test_interactions_behaviour_weights():
    d = _shop()
    m = d.interactions()  # view 1 + purchase 5 on (u1, a); cart 3 on (u1, b); remove_from_cart weighs 0
    assert m.dtype == np.float32
    np.testing.assert_array_equal(m.toarray(), [[6, 3, 0], [0, 1, 0]])
    np.testing.assert_array_equal(d.interactions(aggregate="max").toarray(), [[5, 3, 0], [0, 1, 0]])
    np.testing.assert_array_equal(d.interactions(binary=True).toarray(), [[1, 1, 0], [0, 1, 0]])
    custom = d.interactions({Behaviour.VIEW: 2.0})
    np.testing.assert_array_equal(custom.toarray(), [[2, 0, 0], [0, 2, 0]])


def test_sequences_in_time_order():
    d = _shop()
    seq = d.sequences()
    assert list(d.items.to_external(seq[0])) == ["b", "a", "a"]  # t=10, 20, 30
    s = d.sequences(by="session")
    assert [list(d.items.to_external(s[i])) for i in range(3)] == [["b", "a"], ["a"], ["b", "c"]]  # s1: b at t=10, a at t=30


def test_item_table_is_aligned_to_item_index():
    frame = pd.DataFrame({"user_id": ["u"], "item_id": ["b"]})
    items = pd.DataFrame({"title": ["A", "B", "C"]}, index=["a", "b", "c"])
    d = ShopData.from_frame(frame, item_table=items)
    assert d.n_items == 3  # catalogue items without events are kept
    assert d.item_table.loc[d.items.to_index(["c"])[0], "title"] == "C"
    assert d.item_table.loc[d.items.to_index(["b"])[0], "title"] == "B"
