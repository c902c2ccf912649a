"""Olist Brazilian E-Commerce (Kaggle ``olistbr/brazilian-ecommerce``): a marketplace's orders.

Files, found anywhere under the folder given (so ``../shared/data/olist`` with its ``sample/`` and
``full/`` works as well as the Kaggle folder)::

    olist_order_items_dataset.csv   order_id, order_item_id, product_id, seller_id, shipping_limit_date,
                                    price, freight_value                           (required)
    olist_orders_dataset.csv        order_id, customer_id, order_status, order_purchase_timestamp, …,
                                    order_delivered_customer_date, order_estimated_delivery_date
    olist_customers_dataset.csv     customer_id, customer_unique_id, customer_zip_code_prefix, …,
                                    customer_state                      (also ``olistcustomerdataset.csv``)
    olist_order_reviews_dataset.csv review_id, order_id, review_score, …
    olist_products_dataset.csv      product_id, product_category_name, …
    olist_sellers_dataset.csv       seller_id, seller_zip_code_prefix, seller_city, seller_state
    product_category_name_translation.csv   product_category_name, product_category_name_english

Dates are read as Kaggle writes them (``2017-10-02 10:56:33``) or as the shared samples do
(``10/2/2017 10:56``, month first).

How rows become events
----------------------
* an order line → a ``PURCHASE`` of ``product_id`` with ``price``, quantity 1, ``session_id =
  order_id``; its time is the order's ``order_purchase_timestamp``, or, for a line whose order is not
  in the orders file, its ``shipping_limit_date`` (counted in ``report.recoded``);
* ``user_id`` = the customer's ``customer_unique_id`` (one person across orders), else the order's
  ``customer_id``, else ``guest:<order_id>`` (both counted in ``report.recoded``);
* ``rating`` = the order's review score (its latest review), where the order has one;
* a line of a ``canceled`` or ``unavailable`` order also gives a ``REMOVE_FROM_CART`` at the same time
  (a cancellation, as Online Retail's ``C`` invoices are loaded).

Skipped lines: ``missing_product``, ``missing_order``, ``bad_price`` (not a number, or ≤ 0),
``bad_timestamp`` (neither the order's time nor the shipping limit parses), ``duplicate_row``.

Item table: ``category`` (English where the translation is given), ``seller`` (the seller of most of
the product's lines), ``price`` (the median of its lines), and with a sellers file ``seller_state``
(that seller's state, where the file names it). ``data.meta["orders"]`` holds one row per
order of the events: ``session_id`` (the order id), ``status``, ``purchased`` (unix seconds of the
purchase), ``delivered`` (unix seconds, NaN if not delivered), ``estimated`` (unix seconds),
``days_late`` (delivered − estimated, in days; NaN where either is missing), and where the order's
customer is in the customers file ``customer_state`` and ``customer_zip_prefix`` (else missing): the
delivery outcomes the consumer-protection signals and the delivery estimates
(:mod:`shoprec.scenarios.delivery`) read; and, with a reviews
file, ``data.meta["reviews"]``: ``review_id``, ``session_id`` (the order), ``score``, ``created``
(unix seconds), ``text`` (title and message), what the ``fake_reviews`` training filter judges.

The shared copy holds only the first ~10k rows of each file, which join only in part (of 9,998 order
lines, 855 orders are in the orders sample); the loader reports how much joined.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...exceptions import DataError
from ..readers import LoadReport, frame_to_shopdata
from ..schema import Behaviour

__all__ = ["load_olist", "parse_olist_dates"]

_FILES = {"items": ("olist_order_items_dataset.csv",), "orders": ("olist_orders_dataset.csv",),
          "customers": ("olist_customers_dataset.csv", "olistcustomerdataset.csv"),
          "reviews": ("olist_order_reviews_dataset.csv",), "products": ("olist_products_dataset.csv",),
          "translation": ("product_category_name_translation.csv",), "sellers": ("olist_sellers_dataset.csv",)}

_CANCELLED = ("canceled", "unavailable")


def _find(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        hits = sorted(folder.rglob(name))
        if hits:
            return hits[0]
    return None


def _read(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError("the file is empty", path=str(path)) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"no column {missing[0]!r}; expected the columns {list(required)} "
                        f"(the file has {list(frame.columns)})", path=str(path))
    return frame


def parse_olist_dates(values: pd.Series) -> np.ndarray:
    """Olist date text → unix seconds (float64, NaN where empty or not a date): ISO
    (``2017-10-02 10:56:33``) or month first (``10/2/2017 10:56``)."""
    text = values.astype("string").str.strip().replace("", pd.NA)
    dt = pd.to_datetime(text, format="%m/%d/%Y %H:%M", errors="coerce")
    rest = dt.isna() & text.notna()
    if rest.any():
        dt = dt.where(~rest, pd.to_datetime(text.where(rest), format="ISO8601", errors="coerce"))
    return (dt - pd.Timestamp("1970-01-01")).dt.total_seconds().to_numpy(np.float64)


def load_olist(folder: str | Path, *, name: str | None = None) -> tuple:
    """Load an Olist folder into ``(ShopData, LoadReport)`` (see the module docstring)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError("expected a folder holding the Olist CSV files", path=str(root))
    paths = {k: _find(root, v) for k, v in _FILES.items()}
    if paths["items"] is None:
        raise DataError(f"no {_FILES['items'][0]} under the folder (it holds the order lines)", path=str(root))
    items = _read(paths["items"], ("order_id", "product_id", "seller_id", "price", "shipping_limit_date"))
    report = LoadReport(str(paths["items"]), rows_read=len(items))
    line = np.arange(2, len(items) + 2)
    alive = np.ones(len(items), bool)

    def skip(reason: str, mask: np.ndarray, field: str, what) -> None:
        hit = alive & mask
        idx = np.flatnonzero(hit)
        if len(idx):
            alive[idx] = False
            report._add_skips(reason, len(idx), [f"{paths['items'].name} line {line[i]}, field {field!r}: {what(i)}"
                                                 for i in idx[:5]])

    skip("missing_order", items["order_id"].isna().to_numpy(), "order_id", lambda i: "empty; expected an order id")
    skip("missing_product", items["product_id"].isna().to_numpy(), "product_id",
         lambda i: "empty; expected a product id")
    price = pd.to_numeric(items["price"], errors="coerce").to_numpy(np.float64)
    skip("bad_price", ~(np.isfinite(price) & (price > 0)), "price",
         lambda i: f"got {items['price'].iloc[i]!r}; expected a positive number")

    orders = None
    if paths["orders"] is not None:
        orders = _read(paths["orders"], ("order_id", "customer_id", "order_status", "order_purchase_timestamp"))
        report.related.append(LoadReport(str(paths["orders"]), rows_read=len(orders), rows_kept=len(orders)))
        orders = orders.drop_duplicates("order_id", keep="last").set_index("order_id")
    else:
        report.notes.append("no orders file: times are the shipping limits, users the orders")
    oid = items["order_id"]
    known = oid.isin(orders.index).to_numpy() if orders is not None else np.zeros(len(items), bool)
    t_order = (parse_olist_dates(orders["order_purchase_timestamp"].reindex(oid).reset_index(drop=True))
               if orders is not None else np.full(len(items), np.nan))
    t_ship = parse_olist_dates(items["shipping_limit_date"])
    ts = np.where(np.isfinite(t_order), t_order, t_ship)
    skip("bad_timestamp", ~np.isfinite(ts), "shipping_limit_date",
         lambda i: f"got {items['shipping_limit_date'].iloc[i]!r} and no order time; expected a date")
    dup = items.duplicated(keep="first").to_numpy()
    skip("duplicate_row", dup, "order_id", lambda i: "the same order line twice")
    from_ship = alive & ~np.isfinite(t_order)
    if from_ship.any():
        report.recoded["time_from_shipping_limit"] = int(from_ship.sum())

    # users: the person behind the order where the customers file names them
    cust = orders["customer_id"].reindex(oid).reset_index(drop=True) if orders is not None else pd.Series([None] * len(items))
    user = cust.astype(object).copy()
    customers = None
    if paths["customers"] is not None and orders is not None:
        customers = _read(paths["customers"], ("customer_id", "customer_unique_id"))
        report.related.append(LoadReport(str(paths["customers"]), rows_read=len(customers), rows_kept=len(customers)))
        person = customers.drop_duplicates("customer_id").set_index("customer_id")["customer_unique_id"]
        unique = cust.map(person)
        has_unique = unique.notna().to_numpy()
        user[has_unique] = unique[has_unique]
        n_cust = int((alive & ~has_unique & cust.notna().to_numpy()).sum())
        if n_cust:
            report.recoded["user_is_customer_id"] = n_cust
    guest = user.isna().to_numpy()
    user[guest] = "guest:" + oid[guest].astype(str)
    if (alive & guest).any():
        report.recoded["guest_order"] = int((alive & guest).sum())

    rating = np.full(len(items), np.nan)
    if paths["reviews"] is not None:
        reviews = pd.read_csv(paths["reviews"], dtype=str, encoding="utf-8-sig")
        for c in ("order_id", "review_score"):
            if c not in reviews.columns:
                raise DataError(f"no column {c!r}; expected review_id, order_id, review_score, …",
                                path=str(paths["reviews"]))
        score = pd.to_numeric(reviews["review_score"], errors="coerce")
        bad = ~score.between(1, 5)
        rrep = LoadReport(str(paths["reviews"]), rows_read=len(reviews), rows_kept=int((~bad).sum()))
        if bad.any():
            rrep._add_skips("bad_score", int(bad.sum()), [f"{paths['reviews'].name} review {reviews['review_id'].iloc[i]!r}, "
                                                          f"field 'review_score': got {reviews['review_score'].iloc[i]!r}; "
                                                          "expected 1 to 5" for i in np.flatnonzero(bad.to_numpy())[:5]])
        report.related.append(rrep)
        date = parse_olist_dates(reviews.get("review_creation_date", pd.Series([None] * len(reviews))))
        r = pd.DataFrame({"order_id": reviews["order_id"], "score": score, "t": date})[~bad.to_numpy()]
        latest = r.sort_values("t", kind="stable").drop_duplicates("order_id", keep="last").set_index("order_id")["score"]
        rating = oid.map(latest).to_numpy(np.float64)
        ok = ~bad.to_numpy()
        empty = pd.Series([""] * len(reviews))
        text = (reviews.get("review_comment_title", empty).fillna("") + " "
                + reviews.get("review_comment_message", empty).fillna("")).str.strip()
        reviews_meta = pd.DataFrame({"review_id": reviews.get("review_id", reviews["order_id"]).astype(str)[ok].to_numpy(),
                                     "session_id": reviews["order_id"].astype(str)[ok].to_numpy(),
                                     "score": score[ok].to_numpy(np.float64), "created": date[ok],
                                     "text": text[ok].to_numpy(object)})

    keep = alive
    n_keep = int(keep.sum())
    report.rows_kept = n_keep
    if n_keep == 0:
        raise DataError("no valid order lines.\n" + report.summary(), path=str(paths["items"]))
    status = (orders["order_status"].reindex(oid).reset_index(drop=True).fillna("").to_numpy(object)
              if orders is not None else np.full(len(items), "", object))
    frame = pd.DataFrame({"user_id": user[keep].astype(str).to_numpy(), "item_id": items["product_id"][keep].to_numpy(),
                          "behaviour": int(Behaviour.PURCHASE), "timestamp": np.floor(ts[keep]).astype(np.int64),
                          "session_id": oid[keep].to_numpy(), "quantity": 1.0, "price": price[keep],
                          "rating": rating[keep]})
    cancelled = np.isin(status[keep], _CANCELLED)
    if cancelled.any():
        back = frame[cancelled].assign(behaviour=int(Behaviour.REMOVE_FROM_CART), rating=np.nan)
        frame = pd.concat([frame, back], ignore_index=True)
        report.recoded["cancelled_line_as_remove_from_cart"] = int(cancelled.sum())
    report.notes.append(f"{int(known[keep].sum()):,} of {n_keep:,} order lines joined an order; "
                        f"{int(np.isfinite(rating[keep]).sum()):,} carry their order's review score")

    # item table: category, seller, median price
    lines = pd.DataFrame({"item_id": items["product_id"][keep].to_numpy(), "seller": items["seller_id"][keep].to_numpy(),
                          "price": price[keep]})
    table = lines.groupby("item_id").agg(price=("price", "median"))
    table["seller"] = lines.groupby(["item_id", "seller"]).size().reset_index().sort_values(
        ["item_id", 0], ascending=[True, False], kind="stable").drop_duplicates("item_id").set_index("item_id")["seller"]
    if paths["products"] is not None:
        products = _read(paths["products"], ("product_id", "product_category_name"))
        cat = products.drop_duplicates("product_id").set_index("product_id")["product_category_name"]
        if paths["translation"] is not None:
            tr = _read(paths["translation"], ("product_category_name", "product_category_name_english"))
            cat = cat.map(tr.set_index("product_category_name")["product_category_name_english"]).fillna(cat)
        table["category"] = cat.reindex(table.index)
    if paths["sellers"] is not None:
        sellers = _read(paths["sellers"], ("seller_id", "seller_state"))
        report.related.append(LoadReport(str(paths["sellers"]), rows_read=len(sellers), rows_kept=len(sellers)))
        state = sellers.drop_duplicates("seller_id").set_index("seller_id")["seller_state"].str.strip()
        table["seller_state"] = table["seller"].map(state)
    table = table.reset_index()

    meta: dict[str, object] = {"source": str(root), "format": "olist"}
    if paths["reviews"] is not None:
        meta["reviews"] = reviews_meta
    if orders is not None:
        o = orders.loc[orders.index.intersection(pd.Index(pd.unique(oid[keep])))]
        delivered = parse_olist_dates(o["order_delivered_customer_date"]) if "order_delivered_customer_date" in o else np.nan
        estimated = parse_olist_dates(o["order_estimated_delivery_date"]) if "order_estimated_delivery_date" in o else np.nan
        meta["orders"] = pd.DataFrame({"session_id": o.index.astype(str), "status": o["order_status"].fillna("").to_numpy(),
                                       "delivered": delivered, "estimated": estimated,
                                       "days_late": (np.asarray(delivered) - np.asarray(estimated)) / 86_400.0})
        meta["orders"]["purchased"] = parse_olist_dates(o["order_purchase_timestamp"])
        where = pd.DataFrame(index=o["customer_id"])
        if customers is not None:
            c = customers.drop_duplicates("customer_id").set_index("customer_id")
            for col, field in (("customer_state", "customer_state"), ("customer_zip_code_prefix", "customer_zip_prefix")):
                if col in c.columns:
                    where[field] = c[col].str.strip().reindex(where.index).to_numpy(object)
        for field in ("customer_state", "customer_zip_prefix"):
            meta["orders"][field] = where[field].to_numpy(object) if field in where.columns else None
    data = frame_to_shopdata(frame, name=name or "olist", item_table=table, meta=meta)
    return data, report
