"""Fake-review detectors and seller figures on small synthetic frames with known answers, the Olist
loader on small files, and bad input reported."""

import numpy as np
import pandas as pd
import pytest

from shoprec.health import FLAG_COLUMNS, ReviewConfig, ReviewDetector, olist_reviews, seller_review_stats
from shoprec.health.reviews import olist_deliveries, poor_seller_flags

DAY = 86_400
T0 = 1_500_000_000 // DAY * DAY


def _frame(rows):
    """A review frame from dicts; every column not given takes a neutral default."""
    out = []
    for i, r in enumerate(rows):
        out.append({"review_id": f"r{i}", "order_id": f"o{i}", "account": f"a{i}", "product": None, "seller": None,
                    "score": 5, "created": T0, "text": "", "delivered_late": None, "days_late": np.nan,
                    "undelivered": None, "orders_of_account": 1, **r})
    return pd.DataFrame(out)


def _background(n=200, seed=0):
    # a quiet shop around the products under test: reviews of many other products over two years
    rng = np.random.default_rng(seed)
    return [{"product": f"bg{k % 80}", "seller": f"bgs{k % 30}", "score": int(rng.choice([1, 3, 4, 5, 5])),
             "created": T0 + int(rng.integers(0, 730)) * DAY} for k in range(n)]


def _flagged(flags, kind, subject="review"):
    f = flags.frame
    return set(f.loc[(f["subject"] == subject) & (f["kind"] == kind), "key"])


def _ids(frame, mask):
    return set(frame.loc[mask, "review_id"])


# ------------------------------------------------------------------------------------------ bursts

def _slow_history():
    # six reviews over the year before, mixed scores
    return [{"product": "p", "seller": "s", "score": s, "created": T0 + d * DAY}
            for s, d in zip([4, 5, 3, 5, 4, 2], [10, 70, 130, 190, 250, 310])]


def test_a_two_day_burst_of_top_ratings_from_one_order_accounts_is_flagged():
    burst = [{"product": "p", "seller": "s", "created": T0 + (400 + k % 2) * DAY} for k in range(5)]
    df = _frame(_background() + _slow_history() + burst)
    flags = ReviewDetector().flags(df)
    fake = _ids(df, df.index >= len(df) - 5)
    assert _flagged(flags, "burst") == fake
    row = flags.frame[flags.frame["kind"] == "burst"].iloc[0]
    assert row["value"] == 5 and row["expected"] < 0.5 and row["score"] >= 1
    assert "5 top ratings of the product within 3 days" in row["reason"] and "5 from one-order accounts" in row["reason"]
    assert list(flags.frame.columns) == list(FLAG_COLUMNS) and set(flags.frame["detector"]) == {"reviews"}
    # most of the product's reviews are flagged: the product is flagged too
    assert "p" in _flagged(flags, "fake_reviews", "item")


def test_the_same_top_ratings_spread_over_a_year_are_no_burst():
    spread = [{"product": "p", "seller": "s", "created": T0 + (400 + 70 * k) * DAY} for k in range(5)]
    flags = ReviewDetector().flags(_frame(_background() + _slow_history() + spread))
    assert _flagged(flags, "burst") == set()


def test_a_busy_product_s_usual_pace_is_no_burst_nor_established_accounts():
    # two top ratings a day for months: five in two days is its usual pace
    busy = [{"product": "hit", "seller": "big", "created": T0 + (k // 2) * DAY} for k in range(360)]
    assert _flagged(ReviewDetector().flags(_frame(_background() + busy)), "burst") == set()
    # a burst from accounts with many orders each is a loyal crowd, not a farm
    loyal = [{"product": "p", "seller": "s", "created": T0 + 400 * DAY, "orders_of_account": 6} for _ in range(5)]
    assert _flagged(ReviewDetector().flags(_frame(_background() + _slow_history() + loyal)), "burst") == set()


def test_a_shop_wide_peak_lifts_what_a_product_is_expected_to_get():
    # Black Friday: the whole shop gets 20× its usual reviews in those three days
    rng = np.random.default_rng(1)
    quiet = [{"product": f"q{k % 50}", "created": T0 + int(rng.integers(0, 365)) * DAY} for k in range(300)]
    peak = [{"product": f"q{k % 50}", "created": T0 + (200 + k % 3) * DAY} for k in range(330)]
    product = [{"product": "p", "created": T0 + d * DAY} for d in range(0, 365, 30)]
    product += [{"product": "p", "created": T0 + (200 + k % 2) * DAY} for k in range(4)]
    assert _flagged(ReviewDetector().flags(_frame(quiet + product)), "burst") != set()
    assert _flagged(ReviewDetector().flags(_frame(quiet + peak + product)), "burst") == set()


# -------------------------------------------------------------------------------------- duplicates

TEXT = "Comprei meio receosa mas me surpreendi, o tecido é macio e as costuras firmes"


def test_the_same_text_from_different_accounts_is_flagged_and_from_one_account_is_not():
    df = _frame(_background() + [{"text": TEXT, "created": T0 + k * DAY} for k in range(3)])
    flags = ReviewDetector().flags(df)
    assert _flagged(flags, "duplicate_text") == {"r200", "r201", "r202"}
    assert "shared by 2 other review(s), from 2 other account(s)" in flags.frame["reason"].iloc[-1]
    # the same person writing it on three orders
    same = _frame([{"text": TEXT, "created": T0 + k * DAY, "account": "me"} for k in range(3)])
    assert _flagged(ReviewDetector().flags(same), "duplicate_text") == set()


def test_normalised_and_near_same_texts_count_generic_ones_do_not():
    variants = ["COMPREI meio receosa, mas me surpreendi: o tecido é macio e as costuras firmes!!!",
                "comprei meio receosa mas me surpreendi o tecido e macio e as costuras firmes",
                "Comprei meio receosa mas me surpreendi, o tecido é macio e as costuras bem firmes",
                "Comprei meio desconfiada mas me surpreendi, o tecido é macio e as costuras firmes"]
    generic = ["bom", "Muito bom!", "recomendo", "Produto chegou antes do prazo", "muito bom, recomendo",
               "O produto chegou dentro do prazo."]
    rows = [{"text": t, "created": T0 + k * DAY} for k, t in enumerate(variants)]
    rows += [{"text": t, "created": T0 + k * DAY} for t in generic for k in range(4)]
    flags = ReviewDetector().flags(_frame(rows))
    assert _flagged(flags, "duplicate_text") == {"r0", "r1", "r2", "r3"}
    assert "some near-same" in flags.frame["reason"].iloc[0]


def test_a_pair_of_near_same_texts_is_chance_the_original_of_copies_is_not_flagged():
    pair = _frame([{"text": TEXT}, {"text": TEXT.replace("macio", "grosso"), "created": T0 + DAY}])
    assert _flagged(ReviewDetector().flags(pair), "duplicate_text") == set()
    # written months before three copies: the first is the original
    copies = _frame([{"text": TEXT}] + [{"text": TEXT, "created": T0 + (90 + k) * DAY} for k in range(3)])
    assert _flagged(ReviewDetector().flags(copies), "duplicate_text") == {"r1", "r2", "r3"}


# --------------------------------------------------------------------------------------- delivery

def _late(seller, score, days=20.0, undelivered=False, **kw):
    return {"seller": seller, "product": f"{seller}-x", "score": score, "delivered_late": True,
            "days_late": days, "undelivered": undelivered, **kw}


def test_one_happy_customer_after_a_late_delivery_is_not_fraud_a_pattern_is():
    on_time = [{"seller": s, "score": 4, "delivered_late": False, "days_late": -5.0} for s in ("a", "b") for _ in range(5)]
    rows = on_time + [_late("a", 5), _late("a", 1), _late("a", 2)]
    rows += [_late("b", 5, created=T0 + k * 20 * DAY) for k in range(3)]
    rows += [_late("b", 5, days=np.nan, undelivered=True, created=T0 + 70 * DAY)]
    df = _frame(rows)
    flags = ReviewDetector().flags(df)
    assert _flagged(flags, "disagrees_with_delivery") == _ids(df, (df["seller"] == "b") & df["delivered_late"].eq(True))
    reasons = flags.frame.loc[flags.frame["kind"] == "disagrees_with_delivery", "reason"].tolist()
    assert any("never delivered" in r for r in reasons) and any("delivered 20 days late" in r for r in reasons)
    assert all("4 of the 4 very late orders" in r for r in reasons)
    # a little late is not very late
    mild = _frame([_late("c", 5, days=2.0) for _ in range(4)])
    assert _flagged(ReviewDetector().flags(mild), "disagrees_with_delivery") == set()
    # four of b's nine reviews are flagged: the seller is flagged as having fake reviews
    assert _flagged(flags, "fake_reviews", "seller") == {"b"}


def test_reviews_without_orders_or_products_are_judged_on_what_they_have():
    df = pd.DataFrame({"review_id": ["x", "y", "z"], "score": [5, 5, 5], "created": [T0, T0, T0],
                       "text": [TEXT, TEXT, ""]})
    flags = ReviewDetector().flags(df)         # no account: each review its own; no product, seller, outcome
    assert _flagged(flags, "duplicate_text") == {"x", "y"}
    assert flags.checked["with_product"] == 0 and flags.checked["with_outcome"] == 0


# ------------------------------------------------------------------------------------- bad input

def test_bad_scores_and_times_are_counted_and_left_out_missing_columns_raise():
    df = _frame([{"score": -1}, {"score": "5"}, {"score": "five"}, {"score": 7}, {"score": 4.5},
                 {"score": None}, {"created": np.nan}, {}, {}, {}])
    flags = ReviewDetector().flags(df)
    c = flags.checked
    assert (c["skipped_score_out_of_range"], c["skipped_score_not_a_number"], c["skipped_missing_score"],
            c["skipped_bad_time"], c["judged"]) == (3, 1, 1, 1, 4)
    with pytest.raises(ValueError, match="no column 'score'"):
        ReviewDetector().flags(df.drop(columns="score"))
    with pytest.raises(ValueError, match="column 'score': 3 of 3 values are not numbers"):
        ReviewDetector().flags(_frame([{"score": "great"}, {"score": "bad"}, {"score": "ok"}]))


# ---------------------------------------------------------------------------------------- loader

def _write(path, name, frame):
    frame.to_csv(path / name, index=False)


def _olist(tmp_path, reviews=None):
    rv = reviews if reviews is not None else pd.DataFrame({
        "review_id": ["r1", "r2", "r3", "r4", "r5", "r6", None],
        "order_id": ["o1", "o2", "o3", "o4", None, "o6", "o7"],
        "review_score": ["5", "1", "-2", "4", "5", "abc", "3"],
        "review_comment_title": ["Ótimo", None, None, None, None, None, None],
        "review_comment_message": ["chegou rápido", None, "x", None, None, None, None],
        "review_creation_date": ["2018-01-10 00:00:00", "2018-01-20 00:00:00", "2018-01-05 00:00:00",
                                 "2018-02-30 00:00:00", "2018-01-05 00:00:00", "2018-01-05 00:00:00",
                                 "2018-01-05 00:00:00"],
        "review_answer_timestamp": "2018-01-21 10:00:00"})
    _write(tmp_path, "olist_order_reviews_dataset.csv", rv)
    _write(tmp_path, "olist_orders_dataset.csv", pd.DataFrame({
        "order_id": ["o1", "o2", "o9"], "customer_id": ["c1", "c2", "c9"],
        "order_status": ["delivered", "shipped", "delivered"],
        "order_purchase_timestamp": ["1/1/2018 10:00", "1/2/2018 10:00", "1/3/2018 10:00"],
        "order_delivered_customer_date": ["1/9/2018 15:00", None, "1/8/2018 10:00"],
        "order_estimated_delivery_date": ["1/5/2018 0:00", "1/10/2018 0:00", "1/20/2018 0:00"]}))
    _write(tmp_path, "olist_order_items_dataset.csv", pd.DataFrame({
        "order_id": ["o1", "o1", "o4", "o9"], "order_item_id": [1, 2, 1, 1], "product_id": ["p1", "p2", "p4", "p9"],
        "seller_id": ["s1", "s2", "s1", "s1"], "price": [10.0, 5.0, 3.0, 7.0]}))
    _write(tmp_path, "olistcustomerdataset.csv", pd.DataFrame({
        "customer_id": ["c1", "c9"], "customer_unique_id": ["u1", "u1"]}))
    return tmp_path


def test_the_olist_loader_joins_what_it_can_and_counts_what_it_skips(tmp_path):
    rev, c = olist_reviews(_olist(tmp_path))
    assert rev["review_id"].tolist() == ["r1", "r2"]
    assert (c["skipped_missing_review_id"], c["skipped_missing_order_id"], c["skipped_score_out_of_range"],
            c["skipped_score_not_a_number"], c["skipped_bad_date"]) == (1, 1, 1, 1, 1)
    assert (c["reviews_with_order"], c["reviews_with_items"], c["reviews_with_customer"],
            c["reviews_with_items_and_order"], c["reviews_of_orders_with_several_products"]) == (2, 1, 1, 1, 1)
    r1, r2 = rev.iloc[0], rev.iloc[1]
    # o1: delivered four days after its estimate; the customer's person has two orders in the files
    assert r1["account"] == "u1" and r1["orders_of_account"] == 2 and r1["product"] == "p1" and r1["seller"] == "s1"
    assert bool(r1["delivered_late"]) and r1["days_late"] == pytest.approx(4.625) and not bool(r1["undelivered"])
    assert r1["text"] == "Ótimo chegou rápido" and r1["score"] == 5 and r1["created"] == 1515542400
    # o2: shipped, not delivered, reviewed ten days after its estimate: late by ten days
    assert r2["account"] == "c2" and bool(r2["undelivered"]) and bool(r2["delivered_late"])
    assert r2["days_late"] == pytest.approx(10.0) and pd.isna(r2["product"])
    d, dc = olist_deliveries(tmp_path)
    assert sorted(d["order_id"]) == ["o1", "o1", "o9"] and dc["order_sellers_without_order"] == 1


def test_the_olist_loader_names_the_file_and_column_of_malformed_input(tmp_path):
    bad = pd.DataFrame({"review_id": ["r1"], "order_id": ["o1"], "review_creation_date": ["2018-01-10"]})
    with pytest.raises(ValueError, match="olist_order_reviews_dataset.csv: no column 'review_score'"):
        olist_reviews(_olist(tmp_path, bad))
    bad = pd.DataFrame({"review_id": ["r1", "r2"], "order_id": ["o1", "o2"], "review_score": [5, 4],
                        "review_creation_date": ["yesterday", "soon"]})
    with pytest.raises(ValueError, match="olist_order_reviews_dataset.csv: column 'review_creation_date'"):
        olist_reviews(_olist(tmp_path, bad))


# ---------------------------------------------------------------------------- consumer protection

def test_poorly_reviewed_and_late_sellers_are_flagged_with_a_reason_a_shopper_reads():
    rows = [{"seller": "fine", "score": 5, "delivered_late": False, "days_late": -3.0} for _ in range(30)]
    rows += [{"seller": "bad", "score": s} for s in [1, 1, 2, 1, 2, 1, 5, 4, 1, 2, 1, 2]]
    rows += [{"seller": "slow", "score": 4, "delivered_late": k < 8, "days_late": 9.0 if k < 8 else -1.0}
             for k in range(12)]
    rows += [{"seller": "new", "score": 1}]                  # one bad review: too few to judge
    stats = seller_review_stats(_frame(rows))
    assert stats.loc["bad", "poor_reviews"] and not stats.loc["bad", "late_deliveries"]
    assert stats.loc["bad", "reason"] == "poorly reviewed (83 % 1–2 stars)"
    assert stats.loc["slow", "late_deliveries"] and stats.loc["slow", "reason"] == "often delivered late (67 % of orders)"
    assert stats.loc["slow", "mean_days_late"] == pytest.approx((8 * 9 - 4) / 12)
    assert not stats.loc["new", "poor_seller"] and not stats.loc["fine", "poor_seller"]
    gm = stats.attrs["global_mean_score"]
    assert stats.loc["new", "mean_score_shrunk"] == pytest.approx((1 + 10 * gm) / 11)
    flags = poor_seller_flags(stats)
    assert sorted(zip(flags.frame["key"], flags.frame["kind"])) == [("bad", "poor_reviews"), ("slow", "late_deliveries")]
    assert flags.frame["score"].min() >= 1
    # the bad reviews left out (say they were flagged as fake): the seller is no longer poorly reviewed
    bad_ids = [f"r{30 + k}" for k, s in enumerate([1, 1, 2, 1, 2, 1, 5, 4, 1, 2, 1, 2]) if s <= 2]
    left = seller_review_stats(_frame(rows), exclude=bad_ids).loc["bad"]
    assert left["reviews"] == 2 and not left["poor_reviews"]
    # lateness from an orders table instead of the reviews' own orders
    orders = pd.DataFrame({"order_id": [f"x{k}" for k in range(10)], "seller": "fine", "delivered_late": True,
                           "days_late": 12.0})
    assert seller_review_stats(_frame(rows), orders=orders).loc["fine", "late_deliveries"]
    assert ReviewConfig().min_reviews == 5


def test_the_fake_reviews_filter_drops_the_orders_of_a_review_burst_from_the_training_data():
    from dataclasses import replace

    from shoprec.data import Behaviour, ShopData
    from shoprec.scenarios.config import scenario_from_dict
    from shoprec.scenarios.engine import Recommender

    day, t0 = 86_400, 1_600_000_000
    rows, reviews = [], []
    for k in range(60):                      # honest orders of p0–p5 over a year, each reviewed
        t = t0 + k * 6 * day
        rows.append((f"c{k % 20}", f"p{k % 6}", int(Behaviour.PURCHASE), t, f"o{k}"))
        reviews.append((f"r{k}", f"o{k}", 4.0 if k % 3 else 5.0, t + 5 * day, ""))
    for k in range(8):                       # a ring of one-order accounts: p9 five-starred within two days
        t = t0 + 200 * day + k * 6 * 3600
        rows.append((f"ring{k}", "p9", int(Behaviour.PURCHASE), t, f"f{k}"))
        reviews.append((f"fr{k}", f"f{k}", 5.0, t + day, ""))
    rows.append(("c0", "p0", int(Behaviour.PURCHASE), t0 + 400 * day, "o-end"))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp", "session_id"])
    data = ShopData.from_frame(frame)
    data = replace(data, meta={"reviews": pd.DataFrame(reviews, columns=["review_id", "session_id", "score",
                                                                          "created", "text"])})
    cfg = scenario_from_dict({"scenario": {"name": "t"}, "strategies": [{"name": "popularity"}],
                              "training_filters": [{"name": "fake_reviews"}]})
    rec = Recommender([cfg]).fit(data)
    report = rec.pipelines["t"].filter_reports_[0]
    assert report.dropped == {"events of orders with fake reviews": 8}
    # without reviews the filter keeps everything
    plain = Recommender([cfg]).fit(ShopData.from_frame(frame))
    assert plain.pipelines["t"].filter_reports_[0].n_kept == len(frame)
