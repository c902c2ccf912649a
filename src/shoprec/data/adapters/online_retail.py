"""UCI Online Retail (dataset 352: a UK gift wholesaler, 2010-12-01 … 2011-12-09).

Format: one row per invoice line with the columns ``InvoiceNo, StockCode, Description, Quantity,
InvoiceDate, UnitPrice, CustomerID, Country`` — as Parquet, CSV (``InvoiceDate`` ISO 8601 or
``12/1/2010 8:26`` = month/day/year) or the original ``.xlsx`` (needs the optional ``openpyxl``).

How rows become events
----------------------
* an invoice line → a ``PURCHASE`` event with ``quantity``, unit ``price``, ``timestamp``
  (``InvoiceDate``, local UK time stored as if UTC), ``country`` and ``session_id = InvoiceNo`` (one basket
  = one session);
* ``user_id`` = ``CustomerID`` as text (``"17850"``); a line without customer is a guest line whose user is
  ``"guest:<InvoiceNo>"`` (one guest per invoice; counted in ``report.recoded``);
* ``item_id`` = ``StockCode`` upper-cased (the file spells ~110 codes both ways, e.g. ``85049e`` /
  ``85049E``);
* **cancellations** (``InvoiceNo`` starting with ``C``, or a negative quantity) are not purchases. By
  default (``cancellations="remove_from_cart"``) they are kept as ``REMOVE_FROM_CART`` events with the
  positive number of units returned — weight 0 in :data:`DEFAULT_WEIGHTS`, so they do not count as
  positive signal but remain visible to strategies that want returns; ``cancellations="skip"`` drops
  them (skip reason ``cancellation``). Either way they are counted in the report.

Skipped rows (reasons of the :class:`~shoprec.data.readers.LoadReport`)
-----------------------------------------------------------------------
``non_product_code``: postage, fees and adjustments (:data:`NON_PRODUCT_CODES`: POST, DOT, M, C2, D, S,
BANK CHARGES, AMAZONFEE, CRUK, B); ``non_positive_price``: ``UnitPrice <= 0`` — stock adjustments
("damaged", "check", "?") and free samples, not sales; ``missing_stock_code``, ``missing_invoice``,
``bad_quantity`` (empty, zero or not a number), ``bad_price``, ``bad_timestamp``; ``duplicate_row``
(the same invoice line twice, all 8 columns equal; ``dedupe=False`` keeps them); ``cancellation`` with
``cancellations="skip"``. In ``strict`` mode the data problems raise (duplicates included, as in
:func:`~shoprec.data.readers.read_events`); the by-design skips (``non_product_code``,
``non_positive_price``, ``cancellation``) never do.

Item table: per stock code, ``title`` and ``description`` = its most frequent ``Description`` among the
kept lines, ``price`` = the ``UnitPrice`` of its latest purchase, ``in_stock`` = True.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...exceptions import DataError, EmptyInputError, SchemaError
from ..readers import (LoadReport, _events_core, _ids, _parse_float, _Raw, _read_raw, _Validator,
                       frame_to_shopdata, infer_format)
from ..dataset import ShopData
from ..schema import Behaviour
from ._intlines import require_file

COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
           "Country")

#: Stock codes that are postage, fees, discounts or accounting adjustments, not products.
NON_PRODUCT_CODES = frozenset({"POST", "DOT", "M", "C2", "D", "S", "BANK CHARGES", "AMAZONFEE", "CRUK", "B"})

_US_DATE = "%m/%d/%Y %H:%M"


def _desc(desc: pd.Series, i: int) -> str:
    d = desc.iloc[i]
    return "no description" if pd.isna(d) else repr(d)


def _read(path: Path) -> _Raw:
    suffix = path.name.lower().rsplit(".", 1)[-1]
    if suffix in ("xlsx", "xls"):
        try:
            frame = pd.read_excel(path, dtype={"InvoiceNo": str, "StockCode": str})
        except ImportError as e:
            raise ImportError(f"reading {path.name} needs openpyxl (pip install openpyxl), or convert it to "
                              f"CSV / Parquet first: {e}") from None
        if len(frame) == 0:
            raise EmptyInputError("the sheet has no rows", path=str(path))
        return _Raw(frame, np.arange(2, len(frame) + 2), "row", "xlsx", None, path, [])
    fmt = infer_format(path)
    return _read_raw(path, fmt, None)


def load_online_retail(path: str | Path, *, cancellations: str = "remove_from_cart", dedupe: bool = True,
                       strict: bool = False, non_product_codes=NON_PRODUCT_CODES,
                       name: str | None = None) -> tuple[ShopData, LoadReport]:
    """Load UCI Online Retail into ``(ShopData, LoadReport)`` (see the module docstring).

    Parameters
    ----------
    path : path
        ``.parquet``, ``.csv`` or ``.xlsx`` with the 8 UCI columns.
    cancellations : ``"remove_from_cart"`` or ``"skip"``
        What cancellation lines become.
    dedupe : bool
        Skip exact duplicate invoice lines.
    strict : bool
        Raise :class:`DataError` on the first malformed row (by-design skips never raise).
    non_product_codes : set of str
        Upper-case stock codes to skip as non-products.
    name : str, optional
        Label (default ``"online_retail"``).
    """
    if cancellations not in ("remove_from_cart", "skip"):
        raise ValueError(f"cancellations must be 'remove_from_cart' or 'skip', not {cancellations!r}")
    p = require_file(path)
    raw = _read(p)
    df = raw.frame
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(f"missing Online Retail column(s) {missing}; the file has {list(df.columns)}",
                          path=str(p), field=missing[0])
    n = len(df)
    report = LoadReport(str(p), rows_read=raw.rows_read)
    v = _Validator(report, p, raw.lines, raw.label, strict)
    for reason, line, fld, msg in raw.outside:
        v.outside(reason, line, fld, msg)

    desc = df["Description"]
    code_raw = _ids(df["StockCode"], n, df.index)
    code = code_raw.str.upper()
    v.reject("missing_stock_code", code.isna().to_numpy(), "StockCode", lambda i: "empty; expected a stock code")
    v.reject("non_product_code", code.isin(list(non_product_codes)).to_numpy(), "StockCode",
             lambda i: f"{code.iloc[i]!r} ({_desc(desc, i)}) is postage / a fee / an adjustment, not a product",
             error=False)
    inv = _ids(df["InvoiceNo"], n, df.index)
    v.reject("missing_invoice", inv.isna().to_numpy(), "InvoiceNo", lambda i: "empty; expected an invoice number")
    qty, bad_q = _parse_float(df["Quantity"], n)
    v.reject("bad_quantity", bad_q | np.isnan(qty) | (qty == 0), "Quantity",
             lambda i: f"got {df['Quantity'].iloc[i]!r}; expected a non-zero number of units")
    price, bad_p = _parse_float(df["UnitPrice"], n)
    v.reject("bad_price", bad_p | np.isnan(price), "UnitPrice",
             lambda i: f"got {df['UnitPrice'].iloc[i]!r}; expected a number")
    v.reject("non_positive_price", price <= 0, "UnitPrice",
             lambda i: f"got {price[i]:g} ({_desc(desc, i)}); a sale has a positive price — a stock adjustment "
                       "or free sample, not a purchase", error=False)
    cancel = (inv.str.startswith("C").fillna(False).to_numpy(dtype=bool)) | (qty < 0)
    if cancellations == "skip":
        v.reject("cancellation", cancel, "InvoiceNo",
                 lambda i: f"{inv.iloc[i]!r} is a cancellation (quantity {qty[i]:g}), not a purchase", error=False)

    cust = _ids(df["CustomerID"], n, df.index).str.replace(r"\.0+$", "", regex=True)
    guest = cust.isna().to_numpy()
    user = cust.where(~guest, "guest:" + inv)
    behaviour = pd.Categorical.from_codes(cancel.astype(np.int8), ["purchase", "remove_from_cart"])
    work = df.assign(_user=user, _item=code, _behaviour=behaviour, _quantity=np.abs(qty), _price=price,
                     _session=inv)
    raw.frame = work
    colmap = {"user_id": "_user", "item_id": "_item", "behaviour": "_behaviour", "timestamp": "InvoiceDate",
              "session_id": "_session", "quantity": "_quantity", "price": "_price", "country": "Country"}
    frame = _events_core(raw, colmap, v, default_behaviour=Behaviour.PURCHASE, behaviour_map=None,
                         dedupe=dedupe, timestamp_formats=(_US_DATE,), dup_columns=list(COLUMNS))
    v.finish()
    kept = v.alive
    report.rows_kept = int(kept.sum())
    if report.rows_kept == 0:
        raise DataError("no valid invoice line.\n" + report.summary(), path=str(p))
    if cancellations == "remove_from_cart":
        report._recode("cancellation_to_remove_from_cart", int((cancel & kept).sum()))
    report._recode("guest_user_from_invoice", int((guest & kept).sum()))
    lower = (code_raw.notna() & (code_raw != code)).to_numpy()
    report._recode("stock_code_upper_cased", int((lower & kept).sum()))

    item_table = _item_table(frame, desc[kept].array)
    data = frame_to_shopdata(frame, name=name or "online_retail", item_table=item_table,
                             meta={"source": str(p), "format": "online_retail", "cancellations": cancellations})
    return data, report


def _item_table(frame: pd.DataFrame, description: np.ndarray) -> pd.DataFrame:
    k = pd.DataFrame({"item_id": frame["item_id"].array, "description": description,
                      "price": frame["price"].to_numpy(), "timestamp": frame["timestamp"].to_numpy(),
                      "purchase": (frame["behaviour"].to_numpy() == int(Behaviour.PURCHASE))})
    d = k.dropna(subset=["description"])
    d = d.assign(description=d["description"].astype(str).str.strip())
    d = d[d["description"] != ""]
    mode = (d.groupby(["item_id", "description"], sort=False).size().rename("n").reset_index()
            .sort_values(["item_id", "n", "description"], ascending=[True, False, True], kind="stable")
            .drop_duplicates("item_id").set_index("item_id")["description"])
    last = (k.sort_values(["purchase", "timestamp"], kind="stable").drop_duplicates("item_id", keep="last")
            .set_index("item_id")["price"])
    ids = pd.Index(pd.unique(k["item_id"]), name="item_id", dtype="str")
    title = mode.reindex(ids)
    return pd.DataFrame({"title": pd.array(title.to_numpy(dtype=object), dtype="str"),
                         "description": pd.array(title.to_numpy(dtype=object), dtype="str"),
                         "price": last.reindex(ids).to_numpy(dtype=np.float64),
                         "in_stock": pd.array(np.ones(len(ids), dtype=bool), dtype="boolean")}, index=ids)
