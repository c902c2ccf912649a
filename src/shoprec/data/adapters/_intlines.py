"""Fast parsing of text files made of lines of whitespace-separated integers (research splits)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...exceptions import DataError, EmptyInputError
from ..readers import require_file  # noqa: F401  (re-exported for the adapters)


@dataclass(frozen=True)
class IntLines:
    """Every line of a file as a row of int64 values (blank lines are rows of length 0).

    ``line_no[r]`` is the 1-based line number of row ``r``; row ``r`` is
    ``values[indptr[r]:indptr[r + 1]]``. ``raw_lines`` keeps the bytes of each line (for callers that
    need to look at separators, e.g. a tab).
    """

    line_no: np.ndarray
    indptr: np.ndarray
    values: np.ndarray
    raw_lines: list[bytes]

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.indptr)

    def __len__(self) -> int:
        return len(self.line_no)


def require_folder(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such folder")
    if not p.is_dir():
        raise NotADirectoryError(f"{p}: is a file, expected a folder")
    return p


def read_int_lines(path: str | Path, *, what: str = "integer id", allow_negative: bool = False) -> IntLines:
    """Parse a file of whitespace-separated integers, one record per line, fast (numpy, not per token).

    Raises :class:`EmptyInputError` for a file without any number and :class:`DataError` naming the
    line and the token for anything that is not a (non-negative) integer.
    """
    p = require_file(path)
    raw = p.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1].strip() == b"":
        lines.pop()
    counts = np.fromiter((len(line.split()) for line in lines), dtype=np.int64, count=len(lines))
    total = int(counts.sum())
    if total == 0:
        raise EmptyInputError("the file holds no data", path=str(p))
    values = None
    try:
        values = np.fromstring(raw.decode("ascii"), dtype=np.int64, sep=" ")
    except (ValueError, UnicodeDecodeError):
        values = None
    if values is None or len(values) != total:
        _raise_bad_token(p, lines, what)
    if not allow_negative and len(values) and values.min() < 0:
        row = int(np.searchsorted(np.cumsum(counts), int(np.argmax(values < 0)), side="right"))
        raise DataError(f"got a negative number; expected a non-negative {what}", path=str(p), line=row + 1)
    indptr = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return IntLines(np.arange(1, len(lines) + 1, dtype=np.int64), indptr, values, lines)


def _raise_bad_token(p: Path, lines: list[bytes], what: str) -> None:
    for i, line in enumerate(lines):
        for tok in line.split():
            try:
                int(tok)
            except ValueError:
                shown = tok.decode("utf-8", "replace")
                raise DataError(f"got {shown!r}; expected an {what} (whitespace-separated integers)",
                                path=str(p), line=i + 1) from None
    raise DataError(f"could not parse the file as whitespace-separated integers ({what}s)", path=str(p))
