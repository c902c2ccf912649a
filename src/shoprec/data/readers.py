"""Readers: event, item and user files (CSV / TSV, Parquet, JSON Lines) → validated shoprec tables.

Every reader validates row by row — vectorised with pandas — and returns a :class:`LoadReport` next to
the data. **Nothing is dropped silently**: every row read is either kept or counted under a skip reason,
and the first few skipped rows of each reason are quoted with file, line, field and what was expected.
``strict=True`` turns the first problem row into a :class:`~shoprec.exceptions.DataError` instead.

Formats
-------
The format comes from ``format=`` or the file suffix (a compression suffix such as ``.gz`` is looked
through):

========== ======================================= ===================================================
format      suffixes                                 notes
========== ======================================= ===================================================
``csv``     ``.csv``, ``.txt`` (+ ``.gz`` …)         delimiter ``,`` unless ``delimiter=`` is given
``tsv``     ``.tsv``, ``.tab``                       delimiter tab
``parquet`` ``.parquet``, ``.pq``                    native column types are used
``jsonl``   ``.jsonl``, ``.ndjson``                  one JSON object per line
========== ======================================= ===================================================

Line numbers in messages are the lines of the file: for CSV / TSV the header is line 1 and the first data
row line 2 (this assumes one record per line — a quoted field spanning several lines shifts later numbers);
for JSON Lines the 1-based line; for Parquet the 1-based row (reported as "row N").

Columns
-------
Event files use the names of :data:`shoprec.data.schema.EVENT_COLUMNS`. ``columns={"user_id":
"visitorid", …}`` maps shoprec names to the source's names; shoprec names absent from the mapping are still
picked up when the file has a column of exactly that name (and ``behavior`` is accepted for
``behaviour``); map a name to ``None`` to ignore such a column. Other source columns are ignored (but
count when detecting exact duplicate rows). ``item_id`` is required, and ``user_id`` unless the file has
``session_id`` (then every row is a guest row).

Values
------
* ids are text (``7`` and ``"007"`` differ); surrounding blanks are removed; empty, ``NA``, ``null`` … are
  missing.
* a row without ``user_id`` but with a ``session_id`` is a guest row: its user becomes
  ``"session:<session_id>"`` (counted under ``report.recoded``).
* ``behaviour``: a name or alias of :class:`~shoprec.data.schema.Behaviour`, case-insensitive, with
  blanks / hyphens read as ``_`` (``"Add to cart"`` = ``add_to_cart``); ``behaviour_map`` adds source
  codes (``{"1": "view", "2": "purchase"}``). An empty value, or no column at all, means
  ``default_behaviour``.
* ``timestamp``: ISO 8601 text (``2011-12-01 08:26:00``, ``2011-12-01T08:26:00+01:00``; without an offset
  it is taken as UTC), or a number of unix **seconds**; a number above 1e11 is read as unix
  **milliseconds** (1e11 s is in the year 5138, 1e11 ms in 1973). Parquet datetime columns are used as
  they are. Stored as int64 unix seconds; a missing timestamp is stored as -1 (unknown) and is not an
  error; a value before 1970 (negative unix time) is ``bad_timestamp``.
* ``quantity``, ``price``, ``rating``: numbers; empty means unknown (NaN).

Skip reasons (keys of ``LoadReport.skipped``)
---------------------------------------------
``bad_line`` (CSV line with more fields than the header), ``bad_json`` (JSONL line that is not a JSON
object), ``empty_row``, ``missing_user_id``, ``missing_item_id``, ``unknown_behaviour``,
``bad_timestamp``, ``bad_quantity``, ``bad_price``, ``bad_rating``, ``duplicate_row`` (an exact copy of an
earlier kept row, over all source columns; only with ``dedupe=True``). Item tables add ``bad_in_stock`` and
``duplicate_item_id`` (the last row of an id wins), user tables ``duplicate_user_id``.

Whole-file problems raise instead: :class:`~shoprec.exceptions.EmptyInputError` (empty file, header only,
no data rows), :class:`~shoprec.exceptions.SchemaError` (a required column missing — with a hint when the
header looks split on the wrong delimiter), :class:`~shoprec.exceptions.DataError` (no valid row at all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..exceptions import DataError
from .dataset import ShopData, _reindex_table, empty_events
from .idmap import IdMap
from .schema import EVENT_COLUMNS, INTERNAL_EVENT_DTYPES, ITEM_COLUMNS, Behaviour
# the readers' parts, re-exported: the adapters (data/adapters/) build on them from here
from .loadreport import MAX_EXAMPLES, LoadReport, _bad, _show, _Validator  # noqa: F401
from .rawfiles import (_COMPRESSION, _delimiter_hint, _Raw, _read_csv, _read_csv_fast, _read_jsonl,  # noqa: F401
                       _read_raw, _resolve_columns, infer_format, require_file)
from .values import (MS_THRESHOLD, _all_floats, _as_behaviour, _behaviour_codes,  # noqa: F401
                     _datetimes_to_seconds, _ids, _looks_numeric, _map_behaviours, _norm_behaviour, _null_text,
                     _numbers_to_seconds, _parse_bool, _parse_float, _text, _text_to_float, parse_timestamps)

__all__ = ["LoadReport", "frame_to_shopdata", "infer_format", "parse_timestamps", "read_events", "read_items",
           "read_users"]

PathLike = str | Path

_CONTEXT_COLUMNS = ("scenario", "country", "device")
_NUMERIC_COLUMNS = ("quantity", "price", "rating")
_BEHAVIOUR_EXPECTED = ("one of " + ", ".join(b.name.lower() for b in Behaviour)
                       + " (or an alias such as pv, cart, buy, transaction, fav)")
_TIMESTAMP_EXPECTED = "an ISO 8601 date-time or unix seconds / milliseconds"


# ================================================================================ events
def _events_core(raw: _Raw, colmap: Mapping[str, str], v: _Validator, *,
                 default_behaviour: Behaviour, behaviour_map: Mapping[str, object] | None,
                 dedupe: bool, timestamp_formats: Sequence[str] = (),
                 dup_columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Validate the rows of ``raw`` (source columns named by ``colmap``); return the kept events
    (external ids, internal value types). Rows already rejected in ``v`` stay rejected."""
    f = raw.frame
    n = len(f)

    def col(k: str) -> pd.Series | None:
        return f[colmap[k]] if k in colmap else None

    v.reject("empty_row", f.isna().all(axis=1).to_numpy(), None, lambda i: "empty line; expected a data row")
    user = _ids(col("user_id"), n, f.index)
    session = _ids(col("session_id"), n, f.index)
    item = _ids(col("item_id"), n, f.index)
    user_missing = user.isna().to_numpy()
    session_present = session.notna().to_numpy()
    v.reject("missing_user_id", user_missing & ~session_present, colmap.get("user_id", "user_id"),
             lambda i: "empty; expected a user id (or a session_id for a guest)")
    v.reject("missing_item_id", item.isna().to_numpy(), colmap["item_id"],
             lambda i: "empty; expected an item id")

    behaviour = np.full(n, int(default_behaviour), dtype=np.int8)
    if "behaviour" in colmap:
        src = col("behaviour")
        codes, empty = _map_behaviours(src, behaviour_map)
        v.reject("unknown_behaviour", ~empty & np.isnan(codes), colmap["behaviour"],
                 _bad(src, _BEHAVIOUR_EXPECTED))
        known = ~empty & ~np.isnan(codes)
        behaviour[known] = codes[known].astype(np.int8)

    ts, bad_ts = parse_timestamps(col("timestamp"), n, extra_formats=timestamp_formats)
    if "timestamp" in colmap:
        v.reject("bad_timestamp", bad_ts, colmap["timestamp"], _bad(col("timestamp"), _TIMESTAMP_EXPECTED))

    numeric = {}
    for k in _NUMERIC_COLUMNS:
        if k in colmap:
            vals, bad = _parse_float(col(k), n)
            v.reject(f"bad_{k}", bad, colmap[k], _bad(col(k), "a number"))
            numeric[k] = vals

    if dedupe:
        live = np.flatnonzero(v.alive)
        sub = (f if dup_columns is None else f[list(dup_columns)]).iloc[live]
        dup = sub.duplicated(keep="first").to_numpy()
        if dup.any():
            mask = np.zeros(n, dtype=bool)
            mask[live[dup]] = True
            hashes = pd.util.hash_pandas_object(sub, index=False).to_numpy()
            first_of = pd.Series(live).groupby(hashes, sort=False).transform("first").to_numpy()
            first_line = np.zeros(n, dtype=np.int64)
            first_line[live] = raw.lines[first_of]
            v.reject("duplicate_row", mask, None,
                     lambda i: f"exact duplicate of {raw.label} {first_line[i]}; expected each event once "
                               "(pass dedupe=False to keep duplicates)")

    keep = v.alive
    guest = user_missing & session_present & keep
    v.report._recode("guest_user_from_session", int(guest.sum()))
    user_k = user[keep]
    if guest.any():
        user_k = user_k.where(~guest[keep], "session:" + session[keep])
    out = {"user_id": user_k.array, "item_id": item[keep].array,
           "behaviour": behaviour[keep], "timestamp": ts[keep]}
    if "session_id" in colmap:
        out["session_id"] = session[keep].array
    for k, vals in numeric.items():
        out[k] = vals[keep].astype(np.float32)
    for k in _CONTEXT_COLUMNS:
        if k in colmap:
            out[k] = _text(col(k)).str.strip()[keep].array
    return pd.DataFrame(out)


def _index_table(table: pd.DataFrame | None, id_col: str) -> pd.DataFrame | None:
    if table is None:
        return None
    if id_col in table.columns and isinstance(table.index, pd.RangeIndex):
        table = table.set_index(id_col)
    return table


def _ids_with_table(ids: pd.Series, table: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``ids`` and the external ids in index order: ids in order of first appearance, then the
    table's ids not seen in events (the order :meth:`ShopData.from_frame` uses)."""
    codes, uniques = pd.factorize(ids, sort=False)
    uniques = np.asarray(uniques, dtype=object)
    if table is not None and len(table):
        extra = pd.unique(pd.Series(table.index.astype(str), dtype=object))
        extra = np.asarray(extra, dtype=object)[~pd.Index(extra).isin(pd.Index(uniques))]
        uniques = np.concatenate([uniques, extra])
    return codes.astype(np.int32), uniques


def frame_to_shopdata(frame: pd.DataFrame, *, name: str, item_table: pd.DataFrame | None = None,
                      user_table: pd.DataFrame | None = None,
                      meta: Mapping[str, object] | None = None) -> ShopData:
    """A :class:`ShopData` from validated events with external ids (the result of the readers).

    Same result as :meth:`ShopData.from_frame` (ids in order of first appearance, then table-only ids),
    but faster on large frames (ids are factorised once instead of looked up), rows without a session keep
    ``session_idx == -1``, the context columns (scenario, country, device) are stored as categoricals as
    the ShopData docstring says (``from_frame`` leaves them as text), and ``meta`` is attached.
    """
    item_table = _index_table(item_table, "item_id")
    user_table = _index_table(user_table, "user_id")
    n = len(frame)
    icodes, iids = _ids_with_table(frame["item_id"].astype("str"), item_table)
    ucodes, uids = _ids_with_table(frame["user_id"].astype("str"), user_table)
    items, users = IdMap(iids), IdMap(uids)
    events = empty_events(n)
    events["user_idx"] = ucodes
    events["item_idx"] = icodes
    for col in ("behaviour", "timestamp", "quantity", "price", "rating"):
        if col in frame.columns:
            events[col] = frame[col].to_numpy().astype(INTERNAL_EVENT_DTYPES[col])
    sessions = None
    if "session_id" in frame.columns:
        codes, uniques = pd.factorize(frame["session_id"].astype("str"), sort=False, use_na_sentinel=True)
        sessions = IdMap(np.asarray(uniques, dtype=object))
        events["session_idx"] = codes.astype(np.int32)
    for k in _CONTEXT_COLUMNS:
        if k in frame.columns:
            events[k] = pd.Categorical(frame[k])
    return ShopData(events=events, users=users, items=items, sessions=sessions,
                    item_table=_reindex_table(item_table, items), user_table=_reindex_table(user_table, users),
                    name=name, meta=dict(meta or {}))


def _table_arg(table, reader, what: str, report: LoadReport) -> pd.DataFrame | None:
    if table is None or isinstance(table, pd.DataFrame):
        return table
    t, r = reader(table)
    report.related.append(r)
    return t


def _stem(path: Path) -> str:
    name = path.name
    for comp in _COMPRESSION:
        if name.lower().endswith(comp):
            name = name[: -len(comp)]
    return name.rsplit(".", 1)[0] if "." in name else name


def read_events(path: PathLike, *, format: str | None = None, columns: Mapping[str, str | None] | None = None,
                delimiter: str | None = None, strict: bool = False,
                default_behaviour: Behaviour | str = "interaction", dedupe: bool = True,
                name: str | None = None, item_table: pd.DataFrame | PathLike | None = None,
                user_table: pd.DataFrame | PathLike | None = None,
                behaviour_map: Mapping[str, object] | None = None,
                encoding: str = "utf-8") -> tuple[ShopData, LoadReport]:
    """Read an event file into a :class:`ShopData` and a :class:`LoadReport`.

    Parameters
    ----------
    path : str or Path
        A CSV / TSV (also compressed, e.g. ``.csv.gz``), Parquet or JSON Lines file.
    format : ``"csv"``, ``"tsv"``, ``"parquet"``, ``"jsonl"``, optional
        Overrides the format inferred from the suffix.
    columns : mapping shoprec name → source column name (or None to ignore), optional
        See the module docstring; without it, columns named exactly like the shoprec names are used.
    delimiter : str, optional
        CSV field separator (default ``,``; tab for ``.tsv``).
    strict : bool
        Raise :class:`DataError` (file, line, field, expectation) at the first row that would be skipped.
    default_behaviour : Behaviour or name
        Behaviour of rows with no behaviour value, or of every row when there is no behaviour column.
    dedupe : bool
        Skip exact duplicate rows (all source columns equal), keeping the first.
    name : str, optional
        Label of the data (default: the file name without suffix).
    item_table, user_table : DataFrame indexed by external id, or a path read with
        :func:`read_items` / :func:`read_users`, optional
        Attributes; their ids join the id maps (catalogue items without events, users without history).
    behaviour_map : mapping source value → behaviour, optional
        Extra behaviour codes of the source, e.g. ``{"1": "view", "4": "purchase"}``.
    encoding : str
        Text encoding of CSV / JSONL files.

    Returns
    -------
    (ShopData, LoadReport)

    Raises
    ------
    EmptyInputError
        Empty file, header only, or no data rows.
    SchemaError
        A required column is missing (with a wrong-delimiter hint when the header suggests one), or
        ``columns`` names a column the file lacks.
    DataError
        ``strict=True`` and a row is bad; or no row at all is valid.
    """
    raw = _read_raw(path, format, delimiter, encoding=encoding)
    colmap = _resolve_columns(raw, columns, list(EVENT_COLUMNS), required=("item_id",),
                              any_of=("user_id", "session_id"))
    report = LoadReport(str(raw.path), rows_read=raw.rows_read)
    ignored = [str(c) for c in raw.frame.columns if str(c) not in set(colmap.values())]
    if ignored:
        report.notes.append(f"columns not used: {ignored}")
    v = _Validator(report, raw.path, raw.lines, raw.label, strict)
    for reason, line, fld, msg in raw.outside:
        v.outside(reason, line, fld, msg)
    frame = _events_core(raw, colmap, v, default_behaviour=_as_behaviour(default_behaviour),
                         behaviour_map=behaviour_map, dedupe=dedupe)
    v.finish()
    report.rows_kept = len(frame)
    if len(frame) == 0:
        raise DataError("no valid event rows.\n" + report.summary(), path=str(raw.path))
    items = _table_arg(item_table, read_items, "item", report)
    users = _table_arg(user_table, read_users, "user", report)
    data = frame_to_shopdata(frame, name=name or _stem(raw.path), item_table=items, user_table=users,
                             meta={"source": str(raw.path), "format": raw.fmt})
    return data, report


# ============================================================================ item / user
def _table_core(raw: _Raw, colmap: dict[str, str], strict: bool, id_key: str,
                what: str) -> tuple[LoadReport, _Validator, pd.Series, pd.DataFrame]:
    """Shared start of the item and user tables: report, validator, empty rows, missing ids."""
    report = LoadReport(str(raw.path), rows_read=raw.rows_read)
    v = _Validator(report, raw.path, raw.lines, raw.label, strict)
    for reason, line, fld, msg in raw.outside:
        v.outside(reason, line, fld, msg)
    f = raw.frame
    n = len(f)
    v.reject("empty_row", f.isna().all(axis=1).to_numpy(), None, lambda i: "empty line; expected a data row")
    ids = _ids(f[colmap[id_key]], n, f.index)
    v.reject(f"missing_{id_key}", ids.isna().to_numpy(), colmap[id_key], lambda i: f"empty; expected {what} id")
    return report, v, ids, f


def _drop_repeated_ids(ids: pd.Series, v: _Validator, raw: _Raw, id_key: str, fld: str) -> None:
    live = np.flatnonzero(v.alive)
    sub = ids.iloc[live]
    dup = sub.duplicated(keep="last").to_numpy()
    if dup.any():
        last_pos = pd.Series(live).groupby(sub.to_numpy(), sort=False).transform("last").to_numpy()
        last_line = np.zeros(len(ids), dtype=np.int64)
        last_line[live] = raw.lines[last_pos]
        mask = np.zeros(len(ids), dtype=bool)
        mask[live[dup]] = True
        v.reject(f"duplicate_{id_key}", mask, fld,
                 lambda i: f"{ids.iloc[i]!r} appears again on {raw.label} {last_line[i]}, which is kept; "
                           "expected each id once")


def _items_from_raw(raw: _Raw, colmap: dict[str, str], strict: bool) -> tuple[pd.DataFrame, LoadReport]:
    report, v, ids, f = _table_core(raw, colmap, strict, "item_id", "an item")
    n = len(f)
    cols: dict[str, object] = {}
    for k in ITEM_COLUMNS:
        if k == "item_id" or k not in colmap:
            continue
        src = f[colmap[k]]
        if k == "price":
            vals, bad = _parse_float(src, n)
            v.reject("bad_price", bad, colmap[k], _bad(src, "a number"))
            cols[k] = vals
        elif k == "in_stock":
            vals, bad = _parse_bool(src, n)
            v.reject("bad_in_stock", bad, colmap[k], _bad(src, "true/false, 1/0 or yes/no"))
            cols[k] = vals.array
        else:
            cols[k] = _text(src).str.strip().array
    _drop_repeated_ids(ids, v, raw, "item_id", colmap["item_id"])
    v.finish()
    keep = v.alive
    table = pd.DataFrame({k: val[keep] for k, val in cols.items()},
                         index=pd.Index(ids[keep].array, name="item_id", dtype="str"))
    used = set(colmap.values())
    for c in f.columns:
        if str(c) not in used:
            table[str(c)] = f[c].to_numpy()[keep]
    report.rows_kept = int(keep.sum())
    return table, report


def read_items(path: PathLike, *, format: str | None = None, columns: Mapping[str, str | None] | None = None,
               delimiter: str | None = None, strict: bool = False,
               encoding: str = "utf-8") -> tuple[pd.DataFrame, LoadReport]:
    """Read an item table: a DataFrame indexed by the external ``item_id`` (text).

    Columns of :data:`shoprec.data.schema.ITEM_COLUMNS` found in the file (or mapped with ``columns``) are
    parsed: ``price`` as float, ``in_stock`` as a nullable boolean from true/false/1/0/yes/no (also y/n,
    t/f), the others (``category`` included) as text. Other source columns are kept as read. A repeated
    item id keeps its last row (the earlier ones are counted as ``duplicate_item_id``); rows with a
    missing id, a non-numeric price or an unreadable ``in_stock`` are skipped and counted.
    """
    raw = _read_raw(path, format, delimiter, encoding=encoding)
    colmap = _resolve_columns(raw, columns, list(ITEM_COLUMNS), required=("item_id",), what="item")
    return _items_from_raw(raw, colmap, strict)


def _users_from_raw(raw: _Raw, colmap: dict[str, str], strict: bool) -> tuple[pd.DataFrame, LoadReport]:
    report, v, ids, f = _table_core(raw, colmap, strict, "user_id", "a user")
    _drop_repeated_ids(ids, v, raw, "user_id", colmap["user_id"])
    v.finish()
    keep = v.alive
    rename = {src: k for k, src in colmap.items()}
    table = f.loc[keep, [c for c in f.columns if str(c) != colmap["user_id"]]].rename(columns=rename)
    table.index = pd.Index(ids[keep].array, name="user_id", dtype="str")
    report.rows_kept = int(keep.sum())
    return table, report


def read_users(path: PathLike, *, format: str | None = None, columns: Mapping[str, str | None] | None = None,
               delimiter: str | None = None, strict: bool = False,
               encoding: str = "utf-8") -> tuple[pd.DataFrame, LoadReport]:
    """Read a user table: a DataFrame indexed by the external ``user_id`` (text), every other column kept
    as read (text for CSV). ``columns`` maps output names to source names (``{"user_id": "customer"}``);
    a repeated user id keeps its last row (earlier ones counted as ``duplicate_user_id``); rows without
    an id are counted as ``missing_user_id``."""
    raw = _read_raw(path, format, delimiter, encoding=encoding)
    colmap = _resolve_columns(raw, columns, ["user_id", *[k for k in (columns or {}) if k != "user_id"]],
                              required=("user_id",), what="user")
    return _users_from_raw(raw, colmap, strict)
