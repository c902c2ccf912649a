"""Cell values of event, item and user files → typed columns: ids as text, numbers, timestamps, booleans,
behaviours (the rules are in :mod:`shoprec.data.readers`, which re-exports :func:`parse_timestamps`).
Vectorised over whole columns; a value that cannot be read is marked, never guessed."""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .schema import _ALIASES, Behaviour

#: Numbers above this are unix milliseconds, below unix seconds.
MS_THRESHOLD = 1e11

_TRUE = ("true", "1", "yes", "y", "t")
_FALSE = ("false", "0", "no", "n", "f")


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
