"""RetailRocket e-commerce dataset (Kaggle ``retailrocket/ecommerce-dataset``).

Files::

    events.csv            timestamp,visitorid,event,itemid,transactionid
                          (unix milliseconds; event ∈ view / addtocart / transaction; transactionid only on
                          transactions; extra columns, e.g. a derived ``datetime``, are ignored)
    category_tree.csv     categoryid,parentid (parentid empty for a root)
    item_properties_part1.csv, …_part2.csv
                          timestamp,itemid,property,value (a time series of item properties; the
                          property ``categoryid`` gives the item's category, ``available`` 1/0 its stock)

Events: ``view`` → ``VIEW``, ``addtocart`` → ``ADD_TO_CART``, ``transaction`` → ``PURCHASE``;
``user_id`` = visitorid, ``item_id`` = itemid, timestamps converted to unix seconds. The data has no
sessions; ``transactionid`` (the order) is not part of the event schema and is dropped (transactions
without it are counted in a note). Skip reasons are those of :func:`shoprec.data.readers.read_events`.

``category_tree`` (optional) is validated and stored as ``data.meta["category_tree"]`` (DataFrame indexed
by ``categoryid`` with a nullable ``parentid``). Items reach their category only through the item
properties: with ``item_properties`` the latest ``categoryid`` of each item becomes the item table's
``category`` — the path from the root, ``"root > … > leaf"`` in category ids, when the tree is given —
and the latest ``available`` its ``in_stock``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ...exceptions import DataError
from ..dataset import ShopData
from ..readers import (LoadReport, _events_core, _ids, _read_raw, _resolve_columns, _Validator,
                       frame_to_shopdata)
from ..schema import Behaviour
from ._intlines import require_file

_EVENT_COLUMNS = {"timestamp": "timestamp", "user_id": "visitorid", "behaviour": "event", "item_id": "itemid"}


def read_category_tree(path: str | Path, *, strict: bool = False) -> tuple[pd.DataFrame, LoadReport]:
    """``categoryid,parentid`` → DataFrame indexed by ``categoryid`` (text) with ``parentid`` (text, NA
    for roots). Rows with a missing id, a non-integer id, or a repeated id are skipped and counted."""
    raw = _read_raw(require_file(path), "csv", None)
    _resolve_columns(raw, None, ["categoryid", "parentid"], required=("categoryid", "parentid"),
                     what="category tree")
    f = raw.frame
    report = LoadReport(str(raw.path), rows_read=raw.rows_read)
    v = _Validator(report, raw.path, raw.lines, raw.label, strict)
    for reason, line, fld, msg in raw.outside:
        v.outside(reason, line, fld, msg)
    cid = _ids(f["categoryid"], len(f), f.index)
    pid = _ids(f["parentid"], len(f), f.index).str.replace(r"\.0$", "", regex=True)
    v.reject("missing_categoryid", cid.isna().to_numpy(), "categoryid", lambda i: "empty; expected a category id")
    v.reject("bad_categoryid", ~cid.str.fullmatch(r"\d+").fillna(False).to_numpy(dtype=bool), "categoryid",
             lambda i: f"got {cid.iloc[i]!r}; expected an integer id")
    v.reject("bad_parentid", (pid.notna() & ~pid.str.fullmatch(r"\d+").fillna(False)).to_numpy(dtype=bool),
             "parentid", lambda i: f"got {pid.iloc[i]!r}; expected an integer id or empty for a root")
    v.reject("duplicate_categoryid", (cid.duplicated(keep="first")).to_numpy() & v.alive, "categoryid",
             lambda i: f"{cid.iloc[i]!r} appears twice; expected each category once")
    v.finish()
    keep = v.alive
    report.rows_kept = int(keep.sum())
    tree = pd.DataFrame({"parentid": pid[keep].array}, index=pd.Index(cid[keep].array, name="categoryid"))
    return tree, report


def _category_paths(leaf: pd.Series, tree: pd.DataFrame | None, max_depth: int = 32) -> pd.Series:
    """Leaf category ids → ``"root > … > leaf"`` (just the leaf without a tree)."""
    if tree is None:
        return leaf
    parent = tree["parentid"]
    path = leaf.astype(object).copy()
    cur = leaf.astype(object)
    for _ in range(max_depth):
        up = parent.reindex(cur.to_numpy()).to_numpy(dtype=object, na_value=None)
        has = pd.notna(up) & pd.notna(cur.to_numpy())
        if not has.any():
            break
        path = path.where(~has, pd.Series(up, index=path.index).astype(str) + " > " + path.astype(str))
        cur = pd.Series(np.where(has, up, None), index=cur.index, dtype=object)
    return path.astype("str")


def _item_properties(paths: Sequence[Path], tree: pd.DataFrame | None) -> tuple[pd.DataFrame, LoadReport]:
    frames, report = [], LoadReport(", ".join(str(p) for p in paths))
    for p in paths:
        raw = _read_raw(require_file(p), "csv", None)
        _resolve_columns(raw, None, ["timestamp", "itemid", "property", "value"],
                         required=("timestamp", "itemid", "property", "value"), what="item property")
        report.rows_read += raw.rows_read
        f = raw.frame
        frames.append(f[f["property"].isin(["categoryid", "available"])][["timestamp", "itemid", "property", "value"]])
    props = pd.concat(frames, ignore_index=True)
    props["timestamp"] = pd.to_numeric(props["timestamp"], errors="coerce")
    bad = props["timestamp"].isna() | props["itemid"].isna() | props["value"].isna()
    if bad.any():
        report._add_skips("bad_property_row", int(bad.sum()), [])
        props = props[~bad]
    report.rows_kept = len(props)
    report.skipped["other_property"] = report.rows_read - report.rows_kept - report.skipped.get("bad_property_row", 0)
    report.notes.append("only the properties categoryid and available are used (their latest value)")
    latest = props.sort_values("timestamp", kind="stable").drop_duplicates(["itemid", "property"], keep="last")
    wide = latest.pivot(index="itemid", columns="property", values="value")
    table = pd.DataFrame(index=pd.Index(wide.index.astype(str), name="item_id"))
    if "categoryid" in wide:
        table["category"] = _category_paths(pd.Series(wide["categoryid"].to_numpy(), index=table.index), tree)
    if "available" in wide:
        av = wide["available"].to_numpy(dtype=object)
        table["in_stock"] = pd.array([None if pd.isna(a) else str(a).strip() == "1" for a in av], dtype="boolean")
    return table, report


def load_retailrocket(events_csv: str | Path, category_tree: str | Path | None = None, *,
                      item_properties: str | Path | Sequence[str | Path] | None = None,
                      strict: bool = False, dedupe: bool = True,
                      name: str | None = None) -> tuple[ShopData, LoadReport]:
    """Load RetailRocket events into ``(ShopData, LoadReport)`` (see the module docstring)."""
    p = require_file(events_csv)
    raw = _read_raw(p, "csv", None)
    colmap = _resolve_columns(raw, _EVENT_COLUMNS, list(_EVENT_COLUMNS), required=tuple(_EVENT_COLUMNS),
                              what="RetailRocket event")
    report = LoadReport(str(p), rows_read=raw.rows_read)
    v = _Validator(report, p, raw.lines, raw.label, strict)
    for reason, line, fld, msg in raw.outside:
        v.outside(reason, line, fld, msg)
    original = [c for c in ("timestamp", "visitorid", "event", "itemid", "transactionid") if c in raw.frame.columns]
    frame = _events_core(raw, colmap, v, default_behaviour=Behaviour.VIEW, behaviour_map=None, dedupe=dedupe,
                         dup_columns=original)
    v.finish()
    report.rows_kept = len(frame)
    if len(frame) == 0:
        raise DataError("no valid event rows.\n" + report.summary(), path=str(p))
    if "transactionid" in raw.frame.columns:
        tid = raw.frame["transactionid"][v.alive]
        no_tid = int(((frame["behaviour"].to_numpy() == int(Behaviour.PURCHASE)) & tid.isna().to_numpy()).sum())
        if no_tid:
            report.notes.append(f"{no_tid:,} transaction events without a transactionid")
    meta: dict[str, object] = {"source": str(p), "format": "retailrocket"}
    tree = None
    if category_tree is not None:
        tree, tree_report = read_category_tree(category_tree, strict=strict)
        report.related.append(tree_report)
        meta["category_tree"] = tree
    item_table = None
    if item_properties is not None:
        paths = [Path(item_properties)] if isinstance(item_properties, (str, Path)) else [Path(x) for x in item_properties]
        item_table, prop_report = _item_properties(paths, tree)
        report.related.append(prop_report)
    data = frame_to_shopdata(frame, name=name or "retailrocket", item_table=item_table, meta=meta)
    return data, report
