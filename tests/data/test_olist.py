"""The Olist adapter on a tiny synthetic folder with known answers, bad lines reported, and on the
shared sample (realdata)."""

from pathlib import Path

import numpy as np
import pytest

from shoprec.data import Behaviour
from shoprec.data.adapters import load, load_olist
from shoprec.exceptions import DataError

DATA = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


def _folder(tmp_path: Path) -> Path:
    (tmp_path / "sample").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "sample" / "olist_order_items_dataset.csv").write_text(
        "order_id,order_item_id,product_id,seller_id,shipping_limit_date,price,freight_value\n"
        "o1,1,p1,s1,10/5/2017 10:00,10.00,2\n"
        "o1,2,p2,s1,10/5/2017 10:00,20.00,2\n"
        "o2,1,p1,s2,2017-11-02 09:00:00,12.00,2\n"
        "o3,1,p3,s2,11/20/2017 9:00,5.50,1\n"          # an order not in the orders file
        "o4,1,,s2,11/20/2017 9:00,5.50,1\n"            # no product
        "o5,1,p3,s2,11/20/2017 9:00,free,1\n"          # a price in words
        "o6,1,p2,s1,11/21/2017 9:00,15.00,1\n")        # a cancelled order
    (tmp_path / "sample" / "olist_orders_dataset.csv").write_text(
        "order_id,customer_id,order_status,order_purchase_timestamp,order_approved_at,order_delivered_carrier_date,"
        "order_delivered_customer_date,order_estimated_delivery_date\n"
        "o1,c1,delivered,10/2/2017 10:56,,,10/10/2017 21:25,10/18/2017 0:00\n"
        "o2,c2,delivered,10/30/2017 8:00,,,11/20/2017 12:00,11/15/2017 0:00\n"
        "o6,c1,canceled,11/18/2017 8:00,,,,12/1/2017 0:00\n")
    (tmp_path / "sample" / "olistcustomerdataset.csv").write_text(
        "customer_id,customer_unique_id,customer_zip_code_prefix,customer_city,customer_state\n"
        "c1,person-a,1,x,SP\nc2,person-b,2,y,RJ\n")
    (tmp_path / "sample" / "olist_order_reviews_dataset.csv").write_text(
        "review_id,order_id,review_score,review_comment_title,review_comment_message,review_creation_date,"
        "review_answer_timestamp\n"
        "r1,o1,5,,\"bom,\nmuito bom\",2017-10-11 00:00:00,2017-10-12 10:00:00\n"
        "r2,o2,1,,atrasou,2017-11-21 00:00:00,2017-11-22 10:00:00\n")
    (tmp_path / "full" / "olist_products_dataset.csv").write_text(
        "product_id,product_category_name\np1,beleza_saude\np2,esporte_lazer\np3,beleza_saude\n")
    (tmp_path / "full" / "product_category_name_translation.csv").write_text(
        "\ufeffproduct_category_name,product_category_name_english\nbeleza_saude,health_beauty\n")
    return tmp_path


def test_order_lines_become_purchases_with_users_ratings_and_delivery_outcomes(tmp_path):
    data, report = load("olist:" + str(_folder(tmp_path)))
    assert report.rows_read == 7 and report.rows_kept == 5
    assert report.skipped == {"missing_product": 1, "bad_price": 1}
    assert "line 6, field 'product_id'" in " ".join(report.examples)
    assert "got 'free'; expected a positive number" in " ".join(report.examples)
    assert report.recoded["time_from_shipping_limit"] == 1 and report.recoded["guest_order"] == 1
    assert report.recoded["cancelled_line_as_remove_from_cart"] == 1
    ev = data.events
    users = data.users.to_external(ev["user_idx"].to_numpy())
    items = data.items.to_external(ev["item_idx"].to_numpy())
    buy = ev["behaviour"].to_numpy() == int(Behaviour.PURCHASE)
    assert sorted(zip(users[buy], items[buy])) == [("guest:o3", "p3"), ("person-a", "p1"), ("person-a", "p2"),
                                                   ("person-a", "p2"), ("person-b", "p1")]
    back = ev["behaviour"].to_numpy() == int(Behaviour.REMOVE_FROM_CART)
    assert list(items[back]) == ["p2"]
    rating = dict(zip(data.sessions.to_external(ev["session_idx"].to_numpy()), ev["rating"].to_numpy()))
    assert rating["o1"] == 5 and rating["o2"] == 1 and np.isnan(rating["o3"])
    t = dict(zip(data.sessions.to_external(ev["session_idx"].to_numpy()), ev["timestamp"].to_numpy()))
    assert t["o1"] == 1506941760                               # 2017-10-02 10:56 UTC, the order's time
    table = data.item_table
    p1, p2 = data.items.to_index(["p1", "p2"])
    assert table["category"].iloc[p1] == "health_beauty" and table["category"].iloc[p2] == "esporte_lazer"
    assert table["price"].iloc[p1] == pytest.approx(11.0)
    orders = data.meta["orders"].set_index("session_id")
    assert orders.loc["o1", "days_late"] == pytest.approx(-(7 + (24 - 21 - 25 / 60) / 24))   # 10/10 21:25 vs 10/18
    assert orders.loc["o2", "days_late"] == pytest.approx(5.5)
    assert np.isnan(orders.loc["o6", "days_late"]) and "o3" not in orders.index


def test_a_folder_without_order_lines_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no olist_order_items_dataset.csv under the folder"):
        load_olist(tmp_path)
    (tmp_path / "olist_order_items_dataset.csv").write_text("order_id,product_id\no1,p1\n")
    with pytest.raises(DataError, match="no column 'seller_id'"):
        load_olist(tmp_path)


@pytest.mark.realdata
def test_real_olist_sample():
    if not (DATA / "olist" / "sample").exists():
        pytest.skip(f"real dataset not available: {DATA / 'olist'} is missing (realdata tests need ../shared/data)")
    data, report = load_olist(DATA / "olist")
    assert report.rows_read == 9_998 and report.rows_kept == 9_998
    assert data.n_items == data.item_table.shape[0] and data.item_table["category"].notna().mean() > 0.95
    orders = data.meta["orders"]
    assert 800 < len(orders) < 1_000 and orders["days_late"].notna().sum() > 800
    assert 500 < int(np.isfinite(data.events["rating"].to_numpy()).sum()) < 700


def test_the_data_keeps_its_name():
    if not (DATA / "olist" / "sample").exists():
        pytest.skip("no Olist sample")
    assert load_olist(DATA / "olist")[0].name == "olist"
    assert load_olist(DATA / "olist", name="shop")[0].name == "shop"
