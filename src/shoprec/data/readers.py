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

import gzip
import io
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..exceptions import DataError, EmptyInputError, SchemaError
from .dataset import ShopData, _reindex_table, empty_events
from .idmap import IdMap
from .schema import _ALIASES, EVENT_COLUMNS, INTERNAL_EVENT_DTYPES, ITEM_COLUMNS, Behaviour

__all__ = ["LoadReport", "frame_to_shopdata", "infer_format", "parse_timestamps", "read_events", "read_items",
           "read_users"]

PathLike = str | Path

#: Number of example messages kept per skip reason.
MAX_EXAMPLES = 5
#: Numbers above this are unix milliseconds, below unix seconds.
MS_THRESHOLD = 1e11

_FORMATS = {"csv": "csv", "txt": "csv", "tsv": "tsv", "tab": "tsv", "parquet": "parquet", "pq": "parquet",
            "jsonl": "jsonl", "ndjson": "jsonl"}
_COMPRESSION = (".gz", ".bz2", ".xz", ".zip", ".zst")
_CONTEXT_COLUMNS = ("scenario", "country", "device")
_NUMERIC_COLUMNS = ("quantity", "price", "rating")
_COLUMN_ALIASES = {"behaviour": ("behavior",)}
_BEHAVIOUR_EXPECTED = ("one of " + ", ".join(b.name.lower() for b in Behaviour)
                       + " (or an alias such as pv, cart, buy, transaction, fav)")
_TIMESTAMP_EXPECTED = "an ISO 8601 date-time or unix seconds / milliseconds"
_TRUE = ("true", "1", "yes", "y", "t")
_FALSE = ("false", "0", "no", "n", "f")


# =============================================================================== report
@dataclass
class LoadReport:
    """What a reader did with a file.

    Attributes
    ----------
    path : str
        The file (or folder) read.
    rows_read : int
        Data rows (records) found in the file, good or bad.
    rows_kept : int
        Rows that made it into the result. ``rows_read == rows_kept + sum(skipped.values())``.
    skipped : dict
        Skip reason → number of rows not kept for that reason.
    examples : list of str
        The first few (up to 5) messages of each skip reason, each naming the file, the line, the field,
        the value and what was expected.
    recoded : dict
        Kept rows whose meaning was changed on purpose → count (a guest row given a session user,
        a cancellation stored as ``remove_from_cart``, …).
    notes : list of str
        Free-text remarks (columns ignored, conflicting attributes resolved, …).
    related : list of LoadReport
        Reports of files read along (an item table, a category tree, …).
    """

    path: str
    rows_read: int = 0
    rows_kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    recoded: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    related: list["LoadReport"] = field(default_factory=list)

    MAX_EXAMPLES: ClassVar[int] = MAX_EXAMPLES

    @property
    def rows_skipped(self) -> int:
        return int(sum(self.skipped.values()))

    def summary(self, examples: int | None = None) -> str:
        """A short human-readable account: counts, skip reasons, example messages (all of them, or
        the first ``examples`` per reason)."""
        name = Path(self.path).name or self.path
        out = [f"{name}: read {self.rows_read:,} rows, kept {self.rows_kept:,}, "
               f"skipped {self.rows_skipped:,}"]
        if self.skipped:
            out.append("  skipped: " + ", ".join(f"{k} {v:,}" for k, v in
                                                  sorted(self.skipped.items(), key=lambda kv: -kv[1])))
        if self.recoded:
            out.append("  recoded: " + ", ".join(f"{k} {v:,}" for k, v in self.recoded.items()))
        for note in self.notes:
            out.append(f"  note: {note}")
        shown = self.examples
        if examples is not None:
            seen: dict[str, int] = {}
            shown = []
            for e in self.examples:
                reason = e.split("]", 1)[0]
                seen[reason] = seen.get(reason, 0) + 1
                if seen[reason] <= examples:
                    shown.append(e)
        if shown:
            out.append("  examples:")
            out.extend(f"    {e}" for e in shown)
        for r in self.related:
            out.extend("  " + line for line in r.summary(examples).splitlines())
        return "\n".join(out)

    def __str__(self) -> str:
        return self.summary()

    def _add_skips(self, reason: str, n: int, messages: Sequence[str]) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + int(n)
        have = sum(1 for e in self.examples if e.startswith(f"[{reason}] "))
        self.examples.extend(f"[{reason}] {m}" for m in messages[:max(0, MAX_EXAMPLES - have)])

    def _recode(self, reason: str, n: int) -> None:
        if n:
            self.recoded[reason] = self.recoded.get(reason, 0) + int(n)


# ============================================================================ validator
class _Validator:
    """Applies row checks in order; a row failing one check is skipped and not checked again."""

    def __init__(self, report: LoadReport, path: PathLike, lines: np.ndarray, label: str,
                 strict: bool) -> None:
        self.report = report
        self.path = str(path)
        self.fname = Path(path).name
        self.lines = np.asarray(lines, dtype=np.int64)
        self.label = label
        self.strict = strict
        self.alive = np.ones(len(self.lines), dtype=bool)
        self.first: tuple[int, str | None, str] | None = None

    def fmt(self, line: int, fld: str | None, message: str) -> str:
        where = f"{self.fname} {self.label} {line}"
        if fld is not None:
            where += f", field {fld!r}"
        return f"{where}: {message}"

    def _error(self, line: int, fld: str | None, message: str) -> None:
        if self.strict and (self.first is None or line < self.first[0]):
            self.first = (int(line), fld, message)

    def outside(self, reason: str, line: int, fld: str | None, message: str, *, error: bool = True) -> None:
        """A problem record that is not a row of the frame (a line the parser could not split)."""
        self.report._add_skips(reason, 1, [self.fmt(line, fld, message)])
        if error:
            self._error(line, fld, message)

    def reject(self, reason: str, mask, fld: str | None, message: Callable[[int], str], *,
               error: bool = True) -> np.ndarray:
        """Skip the live rows where ``mask`` holds. ``message(i)`` describes row ``i``."""
        hit = self.alive & np.asarray(mask, dtype=bool)
        idx = np.flatnonzero(hit)
        if len(idx) == 0:
            return hit
        self.alive[idx] = False
        msgs = [self.fmt(self.lines[i], fld, message(i)) for i in idx[:MAX_EXAMPLES]]
        self.report._add_skips(reason, len(idx), msgs)
        if error:
            self._error(self.lines[idx[0]], fld, message(idx[0]))
        return hit

    def finish(self) -> None:
        if self.first is not None:
            line, fld, message = self.first
            raise DataError(message, path=self.path, line=line, field=fld)


def _show(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "an empty value"
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(values: pd.Series, expected: str) -> Callable[[int], str]:
    return lambda i: f"got {_show(values.iloc[i])}; expected {expected}"


# ============================================================================== parsing
def _null_text(n: int, index=None) -> pd.Series:
    return pd.Series(np.full(n, np.nan, dtype=object), index=index, dtype="str")


def _text(s: pd.Series) -> pd.Series:
    """Any column as text (str dtype), missing kept missing; integral floats print without '.0'."""
    if pd.api.types.is_string_dtype(s.dtype) and not pd.api.types.is_object_dtype(s.dtype):
        return s
    missing = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s.dtype):
        out = s.map({True: "true", False: "false"})
    elif pd.api.types.is_float_dtype(s.dtype):
        v = s.to_numpy(dtype=np.float64, na_value=np.nan)
        integral = np.isfinite(v) & (np.mod(v, 1.0) == 0) & (np.abs(v) < 2 ** 53)
        txt = s.astype(str).to_numpy(dtype=object)
        txt[integral] = v[integral].astype(np.int64).astype(str)
        out = pd.Series(txt, index=s.index)
    elif pd.api.types.is_datetime64_any_dtype(s.dtype):
        out = s.astype(str)
    else:
        out = s.astype(str)
    out = out.astype("str")
    if missing.any():
        out = out.mask(missing)
    return out


def _ids(s: pd.Series | None, n: int, index=None) -> pd.Series:
    """Ids as stripped text; empty → missing."""
    if s is None:
        return _null_text(n, index)
    t = _text(s).str.strip()
    return t.mask(t == "")


def _all_floats(t: pd.Series) -> np.ndarray:
    """Text → float64 (NaN where missing); raises ValueError if any present value is not a number."""
    try:
        arr = pa.array(t.array)
    except (TypeError, pa.ArrowException):
        arr = None
    if arr is not None and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        try:
            return np.array(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        except pa.ArrowException:
            pass  # not all plain numbers (blanks, '1e3 ', …): the slower general path decides
    return t.to_numpy(dtype=object, na_value=np.nan).astype(np.float64)


def _text_to_float(t: pd.Series) -> np.ndarray:
    """Text → float64; NaN where missing or not a number. Fast path when every value parses."""
    try:
        return _all_floats(t)
    except (ValueError, TypeError):
        return np.array(pd.to_numeric(t, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))


def _parse_float(s: pd.Series | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(float64 values with NaN for missing, mask of present-but-not-a-number values)."""
    if s is None:
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    if pd.api.types.is_bool_dtype(s.dtype):
        s = s.astype("float64")
    if pd.api.types.is_numeric_dtype(s.dtype):
        v = np.array(s.to_numpy(dtype=np.float64, na_value=np.nan))
        return v, np.isinf(v)
    t = _text(s).str.strip()
    missing = (t.isna() | (t == "")).to_numpy()
    v = _text_to_float(t.mask(missing))
    bad = ~missing & ~np.isfinite(v)
    v[bad] = np.nan
    return v, bad


def _numbers_to_seconds(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    missing = np.isnan(v)
    bad = ~missing & (~np.isfinite(v) | (v < 0))
    ok = ~missing & ~bad
    secs = np.where(v > MS_THRESHOLD, v / 1000.0, v)
    out = np.full(len(v), -1, dtype=np.int64)
    out[ok] = np.floor(secs[ok]).astype(np.int64)
    return out, bad


def _datetimes_to_seconds(dt: pd.Series) -> np.ndarray:
    """tz-aware or naive (taken as UTC) datetimes → int64 unix seconds (floored), -1 where missing."""
    if getattr(dt.dt, "tz", None) is not None:
        dt = dt.dt.tz_convert("UTC").dt.tz_localize(None)
    ok = dt.notna().to_numpy()
    out = np.full(len(dt), -1, dtype=np.int64)
    if ok.any():
        out[ok] = dt[ok].astype("datetime64[s]").astype(np.int64).to_numpy()
    return out


_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"


def _looks_numeric(t: pd.Series) -> np.ndarray:
    try:
        arr = pa.array(t.array)
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            return pc.match_substring_regex(arr, _NUMBER).to_numpy(zero_copy_only=False).astype(bool)
    except (TypeError, pa.ArrowException):
        pass
    return t.str.fullmatch(_NUMBER).fillna(False).to_numpy(dtype=bool)


def parse_timestamps(s: pd.Series | None, n: int | None = None, *,
                     extra_formats: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Parse a timestamp column to int64 unix seconds.

    Accepts datetime columns, numbers (unix seconds; above 1e11 unix milliseconds) and text holding
    either a number or an ISO 8601 date-time (taken as UTC without an offset); ``extra_formats`` are
    strptime formats tried for text that is not ISO 8601. Returns ``(seconds, bad)``: seconds is -1
    where the value is missing or bad; ``bad`` marks present values that do not parse or fall before
    1970-01-01 (negative unix time).
    """
    if s is None:
        return np.full(n or 0, -1, dtype=np.int64), np.zeros(n or 0, dtype=bool)
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        secs = _datetimes_to_seconds(s)
        bad = s.notna().to_numpy() & (secs < 0)
        secs[bad] = -1
        return secs, bad
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return _numbers_to_seconds(s.to_numpy(dtype=np.float64, na_value=np.nan))
    t = _text(s).str.strip()
    missing = (t.isna() | (t == "")).to_numpy()
    present = np.flatnonzero(~missing)
    out = np.full(len(t), -1, dtype=np.int64)
    bad = np.zeros(len(t), dtype=bool)
    txt = t.iloc[present]
    try:  # all numbers: the fast, common case
        secs, b = _numbers_to_seconds(_all_floats(txt))
        out[present], bad[present] = secs, b
        return out, bad
    except (ValueError, TypeError):
        pass
    secs = np.full(len(txt), -1, dtype=np.int64)
    bad_p = np.zeros(len(txt), dtype=bool)
    is_num = _looks_numeric(txt)
    if is_num.any():
        secs[is_num], bad_p[is_num] = _numbers_to_seconds(_text_to_float(txt[is_num]))
    rest = ~is_num
    if rest.any():
        words = txt[rest]
        dt = pd.to_datetime(words, format="ISO8601", utc=True, errors="coerce")
        for f in extra_formats:
            left = dt.isna().to_numpy()
            if not left.any():
                break
            dt[left] = pd.to_datetime(words[left], format=f, utc=True, errors="coerce")
        ds = _datetimes_to_seconds(dt)
        b = dt.isna().to_numpy() | (ds < 0)
        ds[b] = -1
        secs[rest], bad_p[rest] = ds, b
    out[present], bad[present] = secs, bad_p
    return out, bad


def _parse_bool(s: pd.Series | None, n: int) -> tuple[pd.Series, np.ndarray]:
    if s is None:
        return pd.Series(pd.array([pd.NA] * n, dtype="boolean")), np.zeros(n, dtype=bool)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("boolean").reset_index(drop=True), np.zeros(n, dtype=bool)
    t = _text(s).str.strip().str.lower()
    missing = (t.isna() | (t == "")).to_numpy()
    true = t.isin(_TRUE).to_numpy()
    false = t.isin(_FALSE).to_numpy()
    bad = ~missing & ~true & ~false
    vals = pd.array(np.where(true, True, False), dtype="boolean")
    vals[missing | bad] = pd.NA
    return pd.Series(vals), bad


def _behaviour_codes(behaviour_map: Mapping[str, object] | None) -> dict[str, int]:
    norm = _norm_behaviour
    codes = {norm(k): int(v) for k, v in _ALIASES.items()}
    codes.update({b.name.lower(): int(b) for b in Behaviour})
    for k, v in (behaviour_map or {}).items():
        b = v if isinstance(v, Behaviour) else Behaviour.parse(str(v))
        codes[norm(k)] = int(b)
    return codes


def _norm_behaviour(name: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _map_behaviours(src: pd.Series, behaviour_map: Mapping[str, object] | None) -> tuple[np.ndarray, np.ndarray]:
    """(behaviour code as float, NaN if unknown; mask of empty values). Works on the distinct values."""
    lookup = _behaviour_codes(behaviour_map)
    if not (isinstance(src.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(src.dtype)):
        src = _text(src)
    fcodes, uniques = pd.factorize(src, use_na_sentinel=True)
    norm = [_norm_behaviour(u) for u in uniques]
    table = np.array([lookup.get(u, np.nan) for u in norm] + [np.nan], dtype=np.float64)
    blank = np.array([u == "" for u in norm] + [True], dtype=bool)
    return table[fcodes], blank[fcodes]  # fcodes == -1 picks the last entry: missing


def _as_behaviour(b: Behaviour | str | int) -> Behaviour:
    if isinstance(b, Behaviour):
        return b
    if isinstance(b, (int, np.integer)):
        return Behaviour(int(b))
    return Behaviour.parse(b)


# ============================================================================ file level
def infer_format(path: PathLike, format: str | None = None) -> str:
    """``csv``, ``tsv``, ``parquet`` or ``jsonl`` from ``format`` or the file suffix."""
    if format is not None:
        key = format.lower().lstrip(".")
        if key not in _FORMATS:
            raise ValueError(f"unknown format {format!r}; expected one of csv, tsv, parquet, jsonl")
        return _FORMATS[key]
    name = Path(path).name.lower()
    for comp in _COMPRESSION:
        if name.endswith(comp):
            name = name[: -len(comp)]
            break
    suffix = name.rsplit(".", 1)[-1] if "." in name else ""
    if suffix not in _FORMATS:
        raise DataError(f"cannot tell the format from the suffix {suffix!r}; pass format='csv', 'tsv', "
                        "'parquet' or 'jsonl'", path=str(path))
    return _FORMATS[suffix]


def require_file(path: PathLike) -> Path:
    """The path of an existing file, or FileNotFoundError / IsADirectoryError naming it."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise IsADirectoryError(f"{p}: is a folder, expected a file")
    return p


@dataclass
class _Raw:
    frame: pd.DataFrame
    lines: np.ndarray
    label: str
    fmt: str
    sep: str | None
    path: Path
    outside: list[tuple[str, int, str | None, str]]  # records not in frame: (reason, line, field, message)

    @property
    def rows_read(self) -> int:
        return len(self.frame) + len(self.outside)


_SKIPPING = re.compile(r"Skipping line (\d+): ([^\n]*)")


def _read_raw(path: PathLike, fmt: str | None, delimiter: str | None, *, encoding: str = "utf-8",
              names: Sequence[str] | None = None) -> _Raw:
    """Read a file as-is (CSV: every column as text), with the file line of every row."""
    p = require_file(path)
    fmt = infer_format(p, fmt)
    if fmt in ("csv", "tsv"):
        return _read_csv(p, fmt, delimiter, encoding, names)
    if fmt == "parquet":
        frame = pd.read_parquet(p)
        if names is not None:
            frame.columns = list(names)[: len(frame.columns)]
        if frame.shape[1] == 0 or len(frame) == 0:
            raise EmptyInputError("the Parquet file has no rows", path=str(p))
        return _Raw(frame.reset_index(drop=True), np.arange(1, len(frame) + 1), "row", fmt, None, p, [])
    return _read_jsonl(p, encoding)


def _read_csv(p: Path, fmt: str, delimiter: str | None, encoding: str, names, data: bytes | None = None) -> _Raw:
    sep = delimiter if delimiter is not None else ("\t" if fmt == "tsv" else ",")
    kw = dict(sep=sep, dtype=str, skip_blank_lines=False, on_bad_lines="warn", encoding=encoding)
    if len(sep) > 1:
        kw["engine"] = "python"
    if names is not None:
        kw.update(header=None, names=list(names))
    fast = _read_csv_fast(p, sep, encoding, names, data)
    if fast is not None:
        first = 1 if names is not None else 2
        return _Raw(fast, np.arange(first, first + len(fast), dtype=np.int64), "line", fmt, sep, p, [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = pd.read_csv(p if data is None else io.BytesIO(data), **kw)
        except pd.errors.EmptyDataError:
            raise EmptyInputError("the file is empty", path=str(p)) from None
        except UnicodeDecodeError as e:
            raise DataError(f"cannot decode the file as {encoding} ({e.reason} at byte {e.start}); "
                            "pass encoding=...", path=str(p)) from None
    bad: list[tuple[int, str]] = []
    for w in caught:
        for m in _SKIPPING.finditer(str(w.message)):
            bad.append((int(m.group(1)), m.group(2).strip()))
    bad.sort()
    first = 1 if names is not None else 2
    n = len(frame)
    if bad:
        all_lines = np.arange(first, first + n + len(bad), dtype=np.int64)
        lines = np.setdiff1d(all_lines, np.array([b[0] for b in bad]))[:n]
        if len(lines) < n:  # multi-line records: numbers are approximate
            lines = np.concatenate([lines, np.arange(lines[-1] + 1 if len(lines) else first,
                                                     (lines[-1] + 1 if len(lines) else first) + n - len(lines))])
    else:
        lines = np.arange(first, first + n, dtype=np.int64)
    if n == 0 and not bad:
        raise EmptyInputError("the file has a header but no data rows", path=str(p))
    if n and not bad and frame.isna().all(axis=None):
        raise EmptyInputError("the file has no data rows (only blank lines)", path=str(p))
    width = frame.shape[1]
    outside = []
    for ln, msg in bad:
        m = re.search(r"saw (\d+)", msg)
        saw = f"{m.group(1)} fields" if m else f"a malformed line ({msg})"
        outside.append(("bad_line", ln, None, f"got {saw}; expected {width} as in the header"))
    return _Raw(frame, lines, "line", fmt, sep, p, outside)


def _read_csv_fast(p: Path, sep: str, encoding: str, names, data: bytes | None = None) -> pd.DataFrame | None:
    """The pyarrow CSV parser (several times faster), used only when the result is known to line up
    with the file's lines: plain file, no blank line, no malformed line, no record over several lines.
    Otherwise None, and the caller uses the C parser, which reports those cases line by line."""
    if (len(sep) != 1 or encoding.lower().replace("_", "-") not in ("utf-8", "utf8", "utf-8-sig")
            or (data is None and p.name.lower().endswith(_COMPRESSION))):
        return None
    if data is None:
        data = p.read_bytes()
    if not data.strip():
        return None
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    bad: list[object] = []
    kw: dict = dict(sep=sep, dtype=str, engine="pyarrow", on_bad_lines=lambda row: bad.append(row) or "skip")
    if names is not None:
        kw.update(header=None, names=list(names))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pd.read_csv(io.BytesIO(data), **kw)
    except Exception:  # noqa: BLE001 - any pyarrow complaint: let the C parser explain it
        return None
    if bad or len(frame) == 0 or n_lines != len(frame) + (0 if names is not None else 1):
        return None
    return frame


def _read_jsonl(p: Path, encoding: str) -> _Raw:
    opener = gzip.open if p.name.lower().endswith(".gz") else open
    with opener(p, "rt", encoding=encoding) as fh:
        text = fh.read()
    parts = text.split("\n")
    if parts and parts[-1].strip() == "":
        parts.pop()
    stripped = pd.Series(parts, dtype="str").str.strip()
    blank = (stripped == "").to_numpy()
    if len(parts) == 0 or blank.all():
        raise EmptyInputError("the file has no JSON lines", path=str(p))
    line_no = np.flatnonzero(~blank) + 1
    outside = [("empty_row", int(i) + 1, None, "empty line; expected a JSON object")
               for i in np.flatnonzero(blank)]
    good = stripped[~blank]
    frame = None
    if good.str.startswith("{").all():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                frame = pd.read_json(io.StringIO("\n".join(good)), lines=True, dtype=False)
            if len(frame) != len(good):
                frame = None
        except (ValueError, Warning):
            frame = None
    if frame is None:  # a broken line somewhere: find it line by line
        records, keep = [], []
        for ln, s in zip(line_no, good):
            try:
                obj = json.loads(s)
            except ValueError as e:
                outside.append(("bad_json", int(ln), None, f"not valid JSON ({e.msg}); expected a JSON object"))
                continue
            if not isinstance(obj, dict):
                outside.append(("bad_json", int(ln), None,
                                f"got a JSON {type(obj).__name__}; expected a JSON object"))
                continue
            records.append(obj)
            keep.append(ln)
        frame = pd.DataFrame.from_records(records)
        line_no = np.asarray(keep, dtype=np.int64)
    outside.sort(key=lambda t: t[1])
    return _Raw(frame.reset_index(drop=True), line_no, "line", "jsonl", None, p, outside)


def _delimiter_hint(columns: Sequence[object], sep: str | None) -> str:
    for cand in (";", "\t", "|", ",", ":"):
        if cand != sep and any(cand in str(c) for c in columns):
            return f"; wrong delimiter? pass delimiter={cand!r}"
    if len(columns) == 1 and " " in str(columns[0]) and sep != " ":
        return "; wrong delimiter? pass delimiter=' '"
    return ""


def _resolve_columns(raw: _Raw, columns: Mapping[str, str | None] | None, known: Sequence[str], *,
                     required: Sequence[str], any_of: Sequence[str] = (), what: str = "event",
                     allow_unknown_keys: bool = False) -> dict[str, str]:
    """shoprec name → source column name, checking the mapping and the required columns."""
    have = [str(c) for c in raw.frame.columns]
    haveset = set(have)
    columns = dict(columns or {})
    unknown = [k for k in columns if k not in known]
    if unknown and not allow_unknown_keys:
        raise SchemaError(f"unknown {what} column name(s) {unknown} in columns=; expected some of {list(known)}",
                          path=str(raw.path))
    colmap: dict[str, str] = {}
    for k, src in columns.items():
        if src is None:
            continue
        if str(src) not in haveset:
            raise SchemaError(f"columns= maps {k!r} to {src!r}, which the file does not have; its columns are "
                              f"{have}{_delimiter_hint(have, raw.sep) if raw.sep else ''}",
                              path=str(raw.path), field=str(src))
        colmap[k] = str(src)
    used = set(colmap.values())
    for k in known:
        if k in columns:
            continue
        for cand in (k, *_COLUMN_ALIASES.get(k, ())):
            if cand in haveset and cand not in used:
                colmap[k] = cand
                used.add(cand)
                break
    missing = [k for k in required if k not in colmap]
    if any_of and not any(k in colmap for k in any_of):
        missing.append(" or ".join(repr(k) for k in any_of))
    if missing:
        hint = _delimiter_hint(have, raw.sep) if raw.fmt in ("csv", "tsv") else ""
        names = ", ".join(m if m.startswith("'") else repr(m) for m in missing)
        raise SchemaError(f"missing required column {names}; the file has columns {have}{hint}"
                          + ("" if hint else "; map source names with columns={'item_id': '<source name>', ...}"),
                          path=str(raw.path), field=missing[0].strip("'"))
    return colmap


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
