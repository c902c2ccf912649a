"""Open Bandit Dataset (ZOZOTOWN; Saito et al., 2020) — logged bandit feedback, not ShopData.

Format of a log (``<policy>/<campaign>/<campaign>.csv``, e.g. ``random/men/men.csv``)::

    ,timestamp,item_id,position,click,propensity_score,user_feature_0,…,user-item_affinity_0,…
    0,2019-11-24 00:01:03.979311+00:00,2,2,0,0.045525,cef33…,…,0.0,…

one row per impression: the item the logging policy showed, the slot ``position`` (1, 2, 3 in the file),
whether it was clicked, and the probability with which the policy chose it. A leading unnamed column is
the row index and is dropped. ``item_context.csv`` beside the log (``,item_id,item_feature_0..3``) holds
the item features.

Validation (skip reasons): ``bad_timestamp``, ``bad_item_id`` (not an integer ≥ 0), ``unknown_item_id``
(not in item_context, when present), ``bad_position`` (not an integer ≥ 0), ``bad_click`` (not 0 / 1),
``bad_propensity_score`` (not in (0, 1]), ``bad_affinity`` (a user-item_affinity value not a number),
``duplicate_row``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...exceptions import DataError
from ..readers import (LoadReport, _bad, _parse_float, _read_raw, _resolve_columns, _text, _Validator)
from ._intlines import require_file

REQUIRED = ("timestamp", "item_id", "position", "click", "propensity_score")


def _drop_index_column(frame: pd.DataFrame) -> pd.DataFrame:
    first = str(frame.columns[0]) if len(frame.columns) else ""
    if first == "" or first.startswith("Unnamed: 0"):
        return frame.drop(columns=frame.columns[0])
    return frame


def read_open_bandit_items(path: str | Path) -> pd.DataFrame:
    """``item_context.csv`` → DataFrame indexed by the integer ``item_id``: ``item_feature_0`` as float,
    the other features (hashed categories) as text."""
    p = require_file(path)
    t = _drop_index_column(pd.read_csv(p, dtype=str))
    if "item_id" not in t.columns:
        raise DataError(f"no item_id column; the file has {list(t.columns)}", path=str(p))
    ids = pd.to_numeric(t["item_id"], errors="coerce")
    if ids.isna().any():
        line = int(np.flatnonzero(ids.isna().to_numpy())[0]) + 2
        raise DataError("got a non-integer item id; expected an integer", path=str(p), line=line, field="item_id")
    t.index = pd.Index(ids.astype(np.int64), name="item_id")
    t = t.drop(columns="item_id")
    for c in t.columns:
        num = pd.to_numeric(t[c], errors="coerce")
        if num.notna().all():
            t[c] = num.astype(np.float64)
    return t


def load_open_bandit(csv: str | Path, *, item_context: str | Path | None = "auto", strict: bool = False,
                     dedupe: bool = True) -> tuple[pd.DataFrame, LoadReport]:
    """Load and validate an Open Bandit log.

    Returns ``(logs, report)``: ``logs`` has ``timestamp`` (datetime64, UTC), ``item_id`` (int64),
    ``position`` (int64, as in the file), ``click`` (int8), ``propensity_score`` (float64), the
    ``user_feature_*`` columns (text) and the ``user-item_affinity_*`` columns (float64), one row per kept
    impression. ``logs.attrs`` holds ``item_context`` (the item features, see
    :func:`read_open_bandit_items`, or None), ``behavior_policy`` and ``campaign`` (from the folder names
    ``<policy>/<campaign>/``) and ``source``.
    """
    p = require_file(csv)
    raw = _read_raw(p, "csv", None)
    raw.frame = _drop_index_column(raw.frame)
    _resolve_columns(raw, None, list(REQUIRED), required=REQUIRED, what="Open Bandit")
    f = raw.frame
    n = len(f)
    report = LoadReport(str(p), rows_read=raw.rows_read)
    v = _Validator(report, p, raw.lines, raw.label, strict)
    for reason, line, fld, msg in raw.outside:
        v.outside(reason, line, fld, msg)

    ctx_path = None
    if item_context == "auto":
        cand = p.with_name("item_context.csv")
        ctx_path = cand if cand.exists() else None
    elif item_context is not None:
        ctx_path = Path(item_context)
    context = read_open_bandit_items(ctx_path) if ctx_path is not None else None

    ts = pd.to_datetime(_text(f["timestamp"]).str.strip(), format="ISO8601", utc=True, errors="coerce")
    v.reject("bad_timestamp", ts.isna().to_numpy(), "timestamp", _bad(f["timestamp"], "an ISO 8601 date-time"))
    item, bad = _parse_float(f["item_id"], n)
    v.reject("bad_item_id", bad | np.isnan(item) | (item < 0) | (np.mod(item, 1) != 0), "item_id",
             _bad(f["item_id"], "an integer item id ≥ 0"))
    if context is not None:
        v.reject("unknown_item_id", ~np.isin(np.nan_to_num(item, nan=-1), context.index.to_numpy()), "item_id",
                 _bad(f["item_id"], f"an item of {ctx_path.name} (0..{int(context.index.max())})"))
    pos, bad = _parse_float(f["position"], n)
    v.reject("bad_position", bad | np.isnan(pos) | (pos < 0) | (np.mod(pos, 1) != 0), "position",
             _bad(f["position"], "an integer slot position ≥ 0"))
    click, bad = _parse_float(f["click"], n)
    v.reject("bad_click", ~np.isin(click, (0.0, 1.0)), "click", _bad(f["click"], "0 or 1"))
    prop, bad = _parse_float(f["propensity_score"], n)
    v.reject("bad_propensity_score", bad | np.isnan(prop) | (prop <= 0) | (prop > 1), "propensity_score",
             _bad(f["propensity_score"], "a probability in (0, 1]"))
    affinity = {}
    for c in f.columns:
        if str(c).startswith("user-item_affinity_"):
            vals, bad = _parse_float(f[c], n)
            v.reject("bad_affinity", bad, str(c), _bad(f[c], "a number"))
            affinity[str(c)] = vals
    if dedupe:
        live = np.flatnonzero(v.alive)
        dup = f.iloc[live].duplicated(keep="first").to_numpy()
        mask = np.zeros(n, dtype=bool)
        mask[live[dup]] = True
        v.reject("duplicate_row", mask, None, lambda i: "exact duplicate of an earlier row; expected each "
                                                        "impression once")
    v.finish()
    keep = v.alive
    report.rows_kept = int(keep.sum())
    if report.rows_kept == 0:
        raise DataError("no valid impression.\n" + report.summary(), path=str(p))
    out = pd.DataFrame({"timestamp": ts[keep].array, "item_id": item[keep].astype(np.int64),
                        "position": pos[keep].astype(np.int64), "click": click[keep].astype(np.int8),
                        "propensity_score": prop[keep]})
    for c in f.columns:
        if str(c).startswith("user_feature_"):
            out[str(c)] = _text(f[c])[keep].array
    for c, vals in affinity.items():
        out[c] = vals[keep]
    out.attrs.update({"item_context": context, "source": str(p),
                      "behavior_policy": p.parent.parent.name, "campaign": p.parent.name})
    return out, report
