"""Reading a file as text columns with line numbers (:class:`_Raw`): format from the suffix, CSV / TSV
(with pandas' fast path when the file is clean, and its bad lines counted), JSON Lines, Parquet; and
resolving the caller's column names against the file's header. Part of :mod:`shoprec.data.readers`."""

from __future__ import annotations

import gzip
import io
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..exceptions import DataError, EmptyInputError, SchemaError

PathLike = str | Path

_FORMATS = {"csv": "csv", "txt": "csv", "tsv": "tsv", "tab": "tsv", "parquet": "parquet", "pq": "parquet",
            "jsonl": "jsonl", "ndjson": "jsonl"}
_COMPRESSION = (".gz", ".bz2", ".xz", ".zip", ".zst")
_COLUMN_ALIASES = {"behaviour": ("behavior",)}


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
