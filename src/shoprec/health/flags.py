"""Flags: what every detector of :mod:`shoprec.health` produces, and the one thing the rest of the
engine reads from it (training filters, live counters, scenario rules, the API and the CLI).

A flag is one row: ``subject`` (``item``, ``session``, ``user``, ``seller``), ``key`` (the subject's
external id), ``detector`` (``price``, ``bot``, …), ``kind`` (the detector's own: ``spike``, ``drop``,
``creep``, ``subsidy`` for prices), ``at`` (unix seconds of the observation that raised it),
``score`` (how far past the detector's threshold, ≥ 1 when flagged), ``reason`` (a sentence a shop
operator or a shopper can read) and ``value`` / ``expected`` (the observed figure and what the
detector expected instead, e.g. a price and the item's usual one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

__all__ = ["FLAG_COLUMNS", "Flags"]

FLAG_COLUMNS = ("subject", "key", "detector", "kind", "at", "score", "reason", "value", "expected")


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c in ("at", "score", "value", "expected") else "object")
                         for c in FLAG_COLUMNS})


@dataclass
class Flags:
    """A table of flags (module docstring), with the counts of what was checked."""

    frame: pd.DataFrame = field(default_factory=_empty)
    checked: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in FLAG_COLUMNS if c not in self.frame.columns]
        if missing:
            raise ValueError(f"flags need the columns {list(FLAG_COLUMNS)}; missing {missing}")

    def __len__(self) -> int:
        return len(self.frame)

    def latest(self) -> pd.DataFrame:
        """The most recent flag per (subject, key, detector): what holds now."""
        f = self.frame.sort_values("at")
        return f.drop_duplicates(["subject", "key", "detector"], keep="last").reset_index(drop=True)

    def keys(self, subject: str = "item", kind: str | None = None) -> set[str]:
        f = self.frame[self.frame["subject"] == subject]
        if kind is not None:
            f = f[f["kind"] == kind]
        return set(f["key"].astype(str))

    def counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.frame.groupby("kind").size().items()}

    def summary(self) -> str:
        checked = ", ".join(f"{k} {v:,}" for k, v in self.checked.items())
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(self.counts().items())) or "none"
        return f"{len(self):,} flags ({kinds}); checked: {checked}"
