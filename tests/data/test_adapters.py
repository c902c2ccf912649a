"""Tests of shoprec.data.adapters: a tiny synthetic fixture per adapter with known answers, and a
``realdata`` test per adapter on the public datasets in ../shared/data (skipped when absent)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprec.data import Behaviour, SessionCases, ShopData, TrainTest
from shoprec.data.adapters import (ADAPTERS, load, load_lightgcn, load_movielens_1m, load_online_retail,
                                   load_open_bandit, load_retailrocket, load_sasrec, load_sessions,
                                   load_taobao_userbehavior)
from shoprec.data.readers import LoadReport
from shoprec.exceptions import ConfigError, DataError, EmptyInputError, SchemaError

DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


def need(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with a clear message when it is absent."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real dataset not available: {p} is missing (the realdata tests need ../shared/data, "
                    "see its README.md)")
    return p


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def check_invariant(report: LoadReport) -> None:
    assert report.rows_read == report.rows_kept + sum(report.skipped.values())


def ts(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").timestamp())


# =============================================================================== lightgcn
def lightgcn_folder(tmp_path: Path) -> Path:
    root = tmp_path / "lgcn"
    write(root / "train.txt", "0 0 1 2\n1 1 2\n2 0\n")
    write(root / "test.txt", "0 3\n1 4 1\n2\n")  # items 3 and 4 only in test; user 2 without test item
    write(root / "item_list.txt", "org_id remap_id\nA 0\nB 1\nC 2\nD 3\nE 4\n")
    return root


def test_lightgcn(tmp_path):
    tt = load_lightgcn(lightgcn_folder(tmp_path))
    assert isinstance(tt, TrainTest) and tt.name == "lgcn"
    tr, te = tt.train, tt.test
    assert tr.users == te.users and tr.items == te.items
    assert tr.n_users == 3 and tr.n_items == 5  # test-only items 3, 4 are in the map
    assert list(tr.items.external_ids) == ["0", "1", "2", "3", "4"]  # index == file id
    assert tr.n_events == 6 and te.n_events == 3
    assert list(tr.events["user_idx"]) == [0, 0, 0, 1, 1, 2]
    assert list(tr.events["item_idx"]) == [0, 1, 2, 1, 2, 0]
    assert list(te.events["item_idx"]) == [3, 4, 1]
    assert set(tr.events["behaviour"]) == {int(Behaviour.INTERACTION)}
    assert (tr.events["timestamp"] == -1).all()
    assert list(tr.item_table["org_id"]) == ["A", "B", "C", "D", "E"]
    m = tr.interactions()
    assert m.shape == (3, 5) and m.nnz == 6


def test_lightgcn_bad_token(tmp_path):
    root = lightgcn_folder(tmp_path)
    write(root / "test.txt", "0 3\n1 4 x1\n")
    with pytest.raises(DataError) as err:
        load_lightgcn(root)
    assert err.value.line == 2 and "'x1'" in str(err.value) and "test.txt" in str(err.value)
    write(root / "test.txt", "")
    with pytest.raises(EmptyInputError):
        load_lightgcn(root)
    with pytest.raises(FileNotFoundError):
        load_lightgcn(tmp_path / "nowhere")


# ================================================================================= sasrec
def test_sasrec(tmp_path):
    f = write(tmp_path / "Toy.txt", "1 1 2 3\n2 2 4 2\n")
    write(tmp_path / "Toy_item2attributes.json", json.dumps({"1": [7, 8], "2": [9], "3": [], "4": [7], "5": [1]}))
    data = load_sasrec(f)
    assert data.name == "Toy" and data.n_users == 2 and data.n_events == 6
    assert data.n_items == 5  # item 5 has attributes but no event: still in the catalogue
    assert list(data.items.external_ids) == ["1", "2", "3", "4", "5"]
    assert list(data.events["timestamp"]) == [0, 1, 2, 0, 1, 2]  # the position in the sequence
    seq = data.sequences()
    assert list(data.items.to_external(seq[0])) == ["1", "2", "3"]
    assert list(data.items.to_external(seq[1])) == ["2", "4", "2"]  # repeats kept, order kept
    assert list(data.item_table["attributes"]) == ["7 8", "9", "", "7", "1"]
    assert load_sasrec(f, attributes=None).item_table is None


# =============================================================================== sessions
def sessions_folder(tmp_path: Path) -> Path:
    root = tmp_path / "shop" / "sessions"
    write(root / "train_sessions.txt", "1 2\n3 4 5\n2 1 2\n")
    write(root / "test_cases.txt", "1 2\t3\n6\t7\n4 5 1\t2\n")  # 6 and 7 never in training
    return root


def test_sessions(tmp_path):
    sc = load_sessions(sessions_folder(tmp_path))
    assert isinstance(sc, SessionCases) and sc.name == "shop"
    tr = sc.train
    assert tr.n_items == 7 and list(tr.items.external_ids) == [str(i) for i in range(1, 8)]
    assert list(tr.users.external_ids) == ["s1", "s2", "s3"]
    assert list(tr.sessions.external_ids) == ["s1", "s2", "s3"]
    assert tr.n_events == 8
    assert list(tr.events["timestamp"]) == [0, 1, 0, 1, 2, 0, 1, 2]
    assert list(tr.items.to_external(tr.sequences("session")[2])) == ["2", "1", "2"]
    assert len(sc.prefixes) == 3 and list(sc.prefixes.lengths) == [2, 1, 3]
    assert list(tr.items.to_external(sc.prefixes[1])) == ["6"]
    assert list(tr.items.to_external(sc.targets)) == ["3", "7", "2"]
    assert sc.targets.dtype == np.int32


def test_sessions_bad_test_line(tmp_path):
    root = sessions_folder(tmp_path)
    write(root / "test_cases.txt", "1 2\t3\n1 2 3\n")
    with pytest.raises(DataError) as err:
        load_sessions(root)
    assert err.value.line == 2 and "TAB" in str(err.value)


# ========================================================================== online retail
RETAIL = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom
536365,POST,POSTAGE,1,2010-12-01 08:26:00,18.0,17850.0,United Kingdom
536366,85123a,WHITE HANGING HEART T-LIGHT,2,12/1/2010 9:00,2.65,,France
C536367,71053,WHITE METAL LANTERN,-1,2010-12-02 10:00:00,3.39,17850.0,United Kingdom
536368,21777,damaged,-10,2010-12-02 11:00:00,0.0,,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom
536369,85123A,WHITE HANGING HEART,1,2010-12-03 10:00:00,2.95,13047,United Kingdom
536370,22222,MYSTERY,x,2010-12-03 10:00:00,1.0,13047,United Kingdom
"""


def test_online_retail(tmp_path):
    data, report = load_online_retail(write(tmp_path / "retail.csv", RETAIL))
    assert report.rows_read == 9 and report.rows_kept == 5
    assert report.skipped == {"non_product_code": 1, "non_positive_price": 1, "duplicate_row": 1,
                              "bad_quantity": 1}
    assert report.recoded == {"cancellation_to_remove_from_cart": 1, "guest_user_from_invoice": 1,
                              "stock_code_upper_cased": 1}
    check_invariant(report)
    ev = data.events
    assert list(data.users.external_ids) == ["17850", "guest:536366", "13047"]
    assert list(data.items.external_ids) == ["85123A", "71053"]
    assert list(ev["behaviour"]) == [Behaviour.PURCHASE, Behaviour.PURCHASE, Behaviour.PURCHASE,
                                     Behaviour.REMOVE_FROM_CART, Behaviour.PURCHASE]
    assert list(ev["quantity"]) == [6, 6, 2, 1, 1]  # the cancellation holds the units returned
    assert list(ev["timestamp"]) == [ts("2010-12-01 08:26"), ts("2010-12-01 08:26"), ts("2010-12-01 09:00"),
                                     ts("2010-12-02 10:00"), ts("2010-12-03 10:00")]
    assert list(data.sessions.external_ids) == ["536365", "536366", "C536367", "536369"]
    assert list(ev["country"].astype(str)) == ["United Kingdom", "United Kingdom", "France", "United Kingdom",
                                                "United Kingdom"]
    items = data.item_table
    assert items.loc[0, "title"] == "WHITE HANGING HEART"  # the most frequent description
    assert items.loc[0, "price"] == pytest.approx(2.95)  # the latest purchase price
    assert bool(items["in_stock"].all())
    # cancellations weigh 0 by default: they do not add to the interaction matrix
    m = data.interactions()
    assert m[0, 1] == pytest.approx(5.0)


def test_online_retail_skip_cancellations_and_parquet(tmp_path):
    csv = write(tmp_path / "retail.csv", RETAIL)
    data, report = load_online_retail(csv, cancellations="skip")
    assert report.skipped["cancellation"] == 1 and report.rows_kept == 4
    assert "cancellation_to_remove_from_cart" not in report.recoded
    assert Behaviour.REMOVE_FROM_CART not in set(data.events["behaviour"])
    # the same data as Parquet with native types (float CustomerID, datetime InvoiceDate)
    df = pd.read_csv(csv, dtype={"InvoiceNo": str, "StockCode": str, "Quantity": str})
    df["InvoiceDate"] = pd.to_datetime(df["InvoiceDate"], format="mixed")
    df.to_parquet(tmp_path / "retail.parquet")
    a, _ = load_online_retail(csv)
    b, rb = load_online_retail(tmp_path / "retail.parquet")
    assert rb.skipped == {"non_product_code": 1, "non_positive_price": 1, "duplicate_row": 1, "bad_quantity": 1}
    assert a.users == b.users and a.items == b.items
    cols = ["user_idx", "item_idx", "behaviour", "timestamp", "session_idx", "quantity", "price"]
    pd.testing.assert_frame_equal(a.events[cols], b.events[cols])


def test_online_retail_strict_and_schema(tmp_path):
    with pytest.raises(DataError) as err:
        load_online_retail(write(tmp_path / "retail.csv", RETAIL), strict=True)
    assert err.value.line == 8 and "exact duplicate of line 3" in str(err.value)  # the first data problem
    lines = RETAIL.splitlines()
    with pytest.raises(DataError) as err:
        load_online_retail(write(tmp_path / "nodup.csv", "\n".join(lines[:7] + lines[8:]) + "\n"), strict=True)
    assert err.value.line == 9 and err.value.field == "Quantity" and "'x'" in str(err.value)
    # by-design skips (postage, zero-price adjustments) and recodings never raise
    data, report = load_online_retail(write(tmp_path / "clean.csv", "\n".join(lines[:7] + lines[8:9]) + "\n"),
                                      strict=True)
    assert report.rows_kept == 5 and report.skipped == {"non_product_code": 1, "non_positive_price": 1}
    with pytest.raises(SchemaError, match="UnitPrice"):
        load_online_retail(write(tmp_path / "bad.csv", "InvoiceNo,StockCode\n1,2\n"))


# ================================================================================= taobao
TAOBAO = """1,100,10,pv,1511544070
1,101,10,cart,1511544080
1,101,10,buy,1511544090
2,100,11,fav,1511544100
2,102,12,click2,1511544110
2,102,12,pv,1511544110
2,102,12,pv,1511544110
"""


def test_taobao(tmp_path):
    data, report = load_taobao_userbehavior(write(tmp_path / "UserBehavior.csv", TAOBAO))
    assert report.rows_read == 7 and report.rows_kept == 5
    assert report.skipped == {"unknown_behaviour": 1, "duplicate_row": 1}
    assert any("line 5" in e and "'click2'" in e for e in report.examples)  # no header: data starts on line 1
    assert list(data.events["behaviour"]) == [Behaviour.VIEW, Behaviour.ADD_TO_CART, Behaviour.PURCHASE,
                                              Behaviour.FAVOURITE, Behaviour.VIEW]
    assert list(data.events["timestamp"]) == [1511544070, 1511544080, 1511544090, 1511544100, 1511544110]
    cat = dict(zip(data.items.external_ids, data.item_table["category"]))
    assert cat == {"100": "11", "101": "10", "102": "12"}  # item 100: the last category seen
    assert any("several categories" in n for n in report.notes)
    # a header line is recognised and counted, not silently taken as data
    data, report = load_taobao_userbehavior(
        write(tmp_path / "with_header.csv", "user_id,item_id,category_id,behavior_type,timestamp\n" + TAOBAO))
    assert report.skipped["header_row"] == 1 and report.rows_kept == 5


# =========================================================================== retailrocket
def test_retailrocket(tmp_path):
    events = write(tmp_path / "events.csv", """timestamp,visitorid,event,itemid,transactionid
1433221332117,257597,view,355908,
1433224214164,992329,view,248676,
1433221999827,111016,addtocart,248676,
1433221955914,111016,transaction,248676,4000
1433221955914,111016,transaction,248676,4000
1433221955914,111016,transaction,355908,
1433221955914,111016,refund,355908,
""")
    tree = write(tmp_path / "category_tree.csv", "categoryid,parentid\n1,\n2,1\n3,2\n")
    props = write(tmp_path / "item_properties_part1.csv", """timestamp,itemid,property,value
1433221332117,355908,categoryid,3
1433221332118,355908,categoryid,2
1433221332117,355908,available,1
1433221332117,248676,available,0
1433221332117,248676,790,n5.0
1433221332117,999,categoryid,1
""")
    data, report = load_retailrocket(events, tree, item_properties=props)
    assert report.rows_read == 7 and report.rows_kept == 5
    assert report.skipped == {"duplicate_row": 1, "unknown_behaviour": 1}
    assert list(data.events["behaviour"]) == [Behaviour.VIEW, Behaviour.VIEW, Behaviour.ADD_TO_CART,
                                              Behaviour.PURCHASE, Behaviour.PURCHASE]
    assert data.events["timestamp"].iloc[0] == 1433221332  # milliseconds → seconds
    assert any("without a transactionid" in n for n in report.notes)
    assert list(data.users.external_ids) == ["257597", "992329", "111016"]
    assert data.n_items == 3 and "999" in data.items  # an item known only from its properties
    t = data.item_table.set_index(pd.Index(data.items.external_ids))
    assert t.loc["355908", "category"] == "1 > 2" and t.loc["999", "category"] == "1"
    assert bool(t.loc["355908", "in_stock"]) and not bool(t.loc["248676", "in_stock"])
    assert list(data.meta["category_tree"].index) == ["1", "2", "3"]
    assert pd.isna(data.meta["category_tree"].loc["1", "parentid"])
    data2, _ = load_retailrocket(events)
    assert data2.item_table is None and "category_tree" not in data2.meta


# ============================================================================== movielens
def test_movielens_dat(tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings.dat", "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n")
    write(root / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n")
    write(root / "movies.dat", "10::Misérables, Les (1995)::Drama|Romance\n"
                               "20::Toy Story (1995)::Animation|Children's|Comedy\n30::Unrated (2000)::Drama\n",
          encoding="latin-1")
    data = load_movielens_1m(root)
    assert isinstance(data, ShopData) and data.n_events == 3
    assert data.n_users == 3 and data.n_items == 3  # user 3 and movie 30 without ratings are kept
    assert set(data.events["behaviour"]) == {int(Behaviour.RATING)}
    assert list(data.events["rating"]) == [5, 3, 4]
    assert list(data.events["timestamp"]) == [978300760, 978302109, 978301968]
    items = data.item_table.set_index(pd.Index(data.items.external_ids))
    assert items.loc["10", "title"] == "Misérables, Les (1995)"  # latin-1 decoded
    assert items.loc["20", "category"] == "Animation|Children's|Comedy" and items.loc["20", "year"] == 1995
    users = data.user_table.set_index(pd.Index(data.users.external_ids))
    assert users.loc["2", "gender"] == "M" and users.loc["2", "age"] == 56 and users.loc["3", "zip"] == "55117"
    assert data.meta["load_report"].rows_kept == 3


def test_movielens_without_timestamps(tmp_path):
    root = tmp_path / "ml"
    write(root / "ratings_no_timestamp.csv", "user_id,movie_id,rating\n1,10,5\n1,20,3\n2,10,x\n")
    data = load_movielens_1m(root)
    assert data.n_events == 2 and (data.events["timestamp"] == -1).all()
    assert data.meta["load_report"].skipped == {"bad_rating": 1}
    assert data.user_table is None and data.item_table is None


# ============================================================================ open bandit
def test_open_bandit(tmp_path):
    log = write(tmp_path / "random" / "men" / "men.csv", """,timestamp,item_id,position,click,propensity_score,user_feature_0,user-item_affinity_0
0,2019-11-24 00:01:03.979311+00:00,0,1,0,0.5,abc,0.0
1,2019-11-24 00:01:04+00:00,1,2,1,0.25,abd,1.0
2,2019-11-24 00:01:05+00:00,1,3,2,0.25,abd,1.0
3,2019-11-24 00:01:06+00:00,1,3,0,0,abd,1.0
4,2019-11-24 00:01:07+00:00,7,3,0,0.5,abd,1.0
5,not a time,1,3,0,0.5,abd,1.0
""")
    write(tmp_path / "random" / "men" / "item_context.csv",
          ",item_id,item_feature_0,item_feature_1\n0,0,-0.5,aaa\n1,1,0.3,bbb\n")
    logs, report = load_open_bandit(log)
    assert report.rows_read == 6 and report.rows_kept == 2
    assert report.skipped == {"bad_click": 1, "bad_propensity_score": 1, "unknown_item_id": 1, "bad_timestamp": 1}
    check_invariant(report)
    assert list(logs.columns[:5]) == ["timestamp", "item_id", "position", "click", "propensity_score"]
    assert list(logs["click"]) == [0, 1] and logs["click"].dtype == np.int8
    assert list(logs["propensity_score"]) == [0.5, 0.25]
    assert logs["timestamp"].iloc[0] == pd.Timestamp("2019-11-24 00:01:03.979311", tz="UTC")
    assert logs.attrs["behavior_policy"] == "random" and logs.attrs["campaign"] == "men"
    ctx = logs.attrs["item_context"]
    assert list(ctx.index) == [0, 1] and ctx["item_feature_0"].dtype == np.float64
    with pytest.raises(DataError) as err:
        load_open_bandit(log, strict=True)
    assert err.value.line == 4 and err.value.field == "click"


# ========================================================================= registry, load()
def test_registry_and_load(tmp_path):
    assert {"lightgcn", "sasrec", "sessions", "online_retail", "taobao", "retailrocket", "movielens",
            "open_bandit", "csv", "parquet", "jsonl"} <= set(ADAPTERS)
    assert isinstance(load(f"lightgcn:{lightgcn_folder(tmp_path)}"), TrainTest)
    assert isinstance(load(f"sessions:{sessions_folder(tmp_path)}"), SessionCases)
    data, report = load(f"taobao:{write(tmp_path / 'ub.csv', TAOBAO)}")
    assert data.n_events == 5
    csv = write(tmp_path / "ev.csv", "user_id,item_id,behaviour\nu,i,view\nu,j,buy\n")
    data, report = load(f"csv:{csv}")
    assert data.n_events == 2
    pd.read_csv(csv).to_parquet(tmp_path / "ev.pq")
    data, _ = load(f"parquet:{tmp_path / 'ev.pq'}")
    assert data.n_events == 2
    data, _ = load(f"csv:{csv}", default_behaviour="click", strict=True)  # keyword arguments pass through
    with pytest.raises(ConfigError) as err:
        load(f"nosuch:{csv}")
    assert "unknown format 'nosuch'" in str(err.value) and "lightgcn" in str(err.value)
    with pytest.raises(ConfigError, match="FORMAT:PATH"):
        load("just-a-path")


# ============================================================================ real datasets
@pytest.mark.realdata
@pytest.mark.parametrize("folder, users, items, train, test", [
    ("yelp2018", 31_668, 38_048, 1_237_259, 324_147),
    ("amazon-book-kgat", 70_679, 24_915, 652_514, 193_920),
])
def test_real_lightgcn(folder, users, items, train, test):
    root = need(folder)
    t0 = time.perf_counter()
    tt = load_lightgcn(root)
    elapsed = time.perf_counter() - t0
    assert elapsed < 10, f"loading {folder} took {elapsed:.1f} s"
    assert tt.train.n_users == users and tt.train.n_items == items
    assert tt.train.n_events == train and tt.test.n_events == test
    # contiguous ids: the internal index is the file's id
    assert tt.train.items.external_ids[-1] == str(items - 1) and tt.train.users.external_ids[-1] == str(users - 1)
    assert tt.train.item_table is not None and tt.train.item_table["org_id"].notna().all()


@pytest.mark.realdata
def test_real_beauty():
    data = load_sasrec(need("amazon-beauty", "Beauty.txt"))
    assert (data.n_users, data.n_items, data.n_events) == (22_363, 12_101, 198_502)
    assert data.item_table is not None and data.item_table["attributes"].notna().all()
    seq = data.sequences()
    assert seq.lengths.min() >= 5  # a 5-core
    first = Path(need("amazon-beauty", "Beauty.txt")).read_text().split("\n", 1)[0].split()
    assert list(data.items.to_external(seq[data.users.to_index([first[0]])[0]])) == first[1:]


@pytest.mark.realdata
def test_real_diginetica():
    sc = load_sessions(need("diginetica", "sessions"))
    assert len(sc.train.sessions) == 186_670 and sc.train.n_users == 186_670
    assert sc.train.n_events == 906_140
    assert len(sc.targets) == 60_858 and len(sc.prefixes) == 60_858
    assert sc.train.n_items == 43_097
    assert sc.prefixes.lengths.min() >= 1 and sc.targets.max() < sc.train.n_items


@pytest.mark.realdata
def test_real_online_retail():
    data, report = load_online_retail(need("online-retail", "online_retail_2010_2011.parquet"))
    assert report.rows_read == 541_909
    check_invariant(report)
    assert set(report.skipped) <= {"non_product_code", "non_positive_price", "duplicate_row"}
    assert report.skipped["non_product_code"] > 2_000 and report.skipped["non_positive_price"] > 2_000
    # every cancellation line of a product with a price is kept as a remove_from_cart
    n_cancel = int((data.events["behaviour"] == int(Behaviour.REMOVE_FROM_CART)).sum())
    assert n_cancel == report.recoded["cancellation_to_remove_from_cart"] and 0 < n_cancel < 9_288
    customers = [u for u in data.users.external_ids if not u.startswith("guest:")]
    assert 4_000 < len(customers) <= 4_372
    assert data.events["timestamp"].min() == ts("2010-12-01 08:26")
    assert data.events["timestamp"].max() == ts("2011-12-09 12:50")
    assert data.item_table["title"].notna().mean() > 0.99 and (data.item_table["price"] > 0).all()


@pytest.mark.realdata
def test_real_taobao():
    data, report = load_taobao_userbehavior(need("taobao-sample", "userbehavior_head_sample",
                                                 "UserBehavior_head.csv"))
    assert report.rows_read == 84_474 and report.rows_kept == 84_474 and report.skipped == {}
    assert data.n_users == 815
    counts = data.events["behaviour"].value_counts()
    assert counts[int(Behaviour.VIEW)] == 75_871 and counts[int(Behaviour.ADD_TO_CART)] == 4_497
    assert counts[int(Behaviour.FAVOURITE)] == 2_356 and counts[int(Behaviour.PURCHASE)] == 1_750
    assert data.item_table["category"].nunique() == 2_914


@pytest.mark.realdata
def test_real_retailrocket():
    root = need("retailrocket-sample")
    data, report = load_retailrocket(root / "events_sample_9385rows.csv", root / "category_tree.csv")
    assert report.rows_read == 9_385
    check_invariant(report)
    assert set(report.skipped) <= {"duplicate_row"}
    assert data.n_users == 5_000 and data.n_items == 6_610
    counts = data.events["behaviour"].value_counts()
    dups = report.skipped.get("duplicate_row", 0)
    assert counts[int(Behaviour.PURCHASE)] == 46
    assert counts.sum() == 9_385 - dups
    assert len(data.meta["category_tree"]) == 1_669


@pytest.mark.realdata
def test_real_movielens():
    data = load_movielens_1m(need("movielens-1m"))
    assert data.n_events == 1_000_209 and data.n_users == 6_040 and data.n_items == 3_883
    assert len(np.unique(data.events["item_idx"])) == 3_706
    hist = data.events["rating"].value_counts().sort_index()
    assert list(hist) == [56_174, 107_557, 261_197, 348_971, 226_310]
    assert data.user_table["age"].notna().all() and data.item_table["title"].notna().all()


@pytest.mark.realdata
@pytest.mark.parametrize("policy, campaign, n_items", [("random", "men", 34), ("bts", "women", 46)])
def test_real_open_bandit(policy, campaign, n_items):
    logs, report = load_open_bandit(need("open-bandit", policy, campaign, f"{campaign}.csv"))
    assert report.rows_read == 10_000
    check_invariant(report)
    assert report.rows_kept == 10_000
    assert len(logs.attrs["item_context"]) == n_items
    assert logs["propensity_score"].between(0, 1, inclusive="right").all()
    assert 0 < logs["click"].mean() < 0.02
