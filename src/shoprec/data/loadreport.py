"""What a reader did with a file (:class:`LoadReport`) and the row checks that fill it (:class:`_Validator`).

Part of :mod:`shoprec.data.readers`, which re-exports :class:`LoadReport`; the skip reasons and the
message format are described there."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np
import pandas as pd

from ..exceptions import DataError

PathLike = str | Path

#: Number of example messages kept per skip reason.
MAX_EXAMPLES = 5


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
        shown = _collapse_duplicates(shown, self.skipped.get("duplicate_row", 0))
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


_DUPLICATE = re.compile(r"^\[duplicate_row\] (.*?) ((?:line|row) \d+): exact duplicate of ((?:line|row) \d+);")


def _collapse_duplicates(examples: list[str], n: int, show: int = 3) -> list[str]:
    """The duplicate-row examples as one line (``196 rows are exact copies of earlier ones, e.g.
    events.csv line 6 = line 2, …``) instead of one line each: a file with many repeated rows is
    common, and its report must stay short."""
    matches = [(e, _DUPLICATE.match(e)) for e in examples]
    found = [m for _, m in matches if m]
    if len(found) < 2:
        return examples
    pairs = ", ".join(f"{m.group(2)} = {m.group(3)}" for m in found[:show])
    line = (f"[duplicate_row] {n:,} rows are exact copies of earlier ones, e.g. {found[0].group(1)} {pairs}"
            f"{', …' if n > show else ''} (dedupe=False keeps them)")
    out, placed = [], False
    for e, m in matches:
        if m is None:
            out.append(e)
        elif not placed:
            out.append(line)
            placed = True
    return out


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
