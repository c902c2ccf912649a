"""Alibaba Taobao UserBehavior (Tianchi dataset 649; Zhu et al., KDD 2018).

Format: CSV **without header**, one event per line::

    user_id,item_id,category_id,behavior_type,timestamp
    1,2268318,2520377,pv,1511544070

``behavior_type`` ∈ ``pv`` (page view → ``VIEW``), ``cart`` (``ADD_TO_CART``), ``fav`` (``FAVOURITE``),
``buy`` (``PURCHASE``); ``timestamp`` in unix seconds. Each item's ``category_id`` goes to the item table
(``category``, as text); when an item shows several categories the last one seen is kept (a note in the
report says how many). A first line that looks like a header (non-numeric timestamp and an unknown
behaviour) is skipped under ``header_row``. Other skip reasons are those of
:func:`shoprec.data.readers.read_events`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...exceptions import DataError
from ..dataset import ShopData
from ..readers import (LoadReport, _events_core, _map_behaviours, _read_raw, _stem, _text, _Validator,
                       frame_to_shopdata)
from ..schema import Behaviour
from ._intlines import require_file

COLUMNS = ("user_id", "item_id", "category", "behaviour", "timestamp")


def load_taobao_userbehavior(csv: str | Path, *, strict: bool = False, dedupe: bool = True,
                             name: str | None = None) -> tuple[ShopData, LoadReport]:
    """Load a Taobao UserBehavior CSV into ``(ShopData, LoadReport)`` (see the module docstring)."""
    p = require_file(csv)
    raw = _read_raw(p, "csv", ",", names=COLUMNS)
    f = raw.frame
    report = LoadReport(str(p), rows_read=raw.rows_read)
    v = _Validator(report, p, raw.lines, raw.label, strict)
    for reason, line, fld, msg in raw.outside:
        v.outside(reason, line, fld, msg)
    if len(f):
        codes, _ = _map_behaviours(f["behaviour"].iloc[:1], None)
        ts0 = pd.to_numeric(pd.Series([f["timestamp"].iloc[0]]), errors="coerce").iloc[0]
        if np.isnan(codes[0]) and pd.isna(ts0):
            head = np.zeros(len(f), dtype=bool)
            head[0] = True
            v.reject("header_row", head, None,
                     lambda i: "looks like a header; the UserBehavior format has none", error=False)
    colmap = {"user_id": "user_id", "item_id": "item_id", "behaviour": "behaviour", "timestamp": "timestamp"}
    frame = _events_core(raw, colmap, v, default_behaviour=Behaviour.VIEW, behaviour_map=None, dedupe=dedupe)
    v.finish()
    report.rows_kept = len(frame)
    if len(frame) == 0:
        raise DataError("no valid event rows.\n" + report.summary(), path=str(p))
    kept = v.alive
    cats = pd.DataFrame({"item_id": frame["item_id"].array,
                         "category": _text(f["category"]).str.strip()[kept].array}).dropna()
    several = int((cats.groupby("item_id", sort=False)["category"].nunique() > 1).sum())
    if several:
        report.notes.append(f"{several:,} items appear with several categories; the last one seen is kept")
    item_table = cats.drop_duplicates("item_id", keep="last").set_index("item_id")
    data = frame_to_shopdata(frame, name=name or _stem(p), item_table=item_table,
                             meta={"source": str(p), "format": "taobao"})
    return data, report
