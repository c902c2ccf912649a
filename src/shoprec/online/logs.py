"""Logged bandit feedback from files: the Open Bandit Dataset, and a plain table of logged choices.

:func:`open_bandit_feedback` turns a loaded Open Bandit log (``shoprec.data.adapters.load_open_bandit``)
into :class:`~shoprec.online.estimators.LoggedFeedback` plus the features OBP's examples give its
reward model: the user features one-hot (OBP's ``context_set="1"``) and each item's features
(``item_feature_0`` as a number, the hashed categories one-hot).

:func:`feedback_from_frame` reads any table with an action, a reward and the logging propensity per
row (a shop's own logs, exported by ``shoprec.online.rewards``); rows without a usable propensity are
an error naming the rows, never dropped quietly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .estimators import LoggedFeedback

__all__ = ["FeedbackTable", "feedback_from_frame", "one_hot", "open_bandit_feedback", "read_feedback", "read_table"]


def one_hot(frame: pd.DataFrame, numeric: bool = True) -> sp.csr_matrix:
    """Columns of text become one-hot blocks (one column per distinct value), numbers stay as they are."""
    blocks = []
    for c in frame.columns:
        col = frame[c]
        if numeric and pd.api.types.is_numeric_dtype(col):
            blocks.append(sp.csr_matrix(col.to_numpy(np.float64)[:, None]))
            continue
        codes, _ = pd.factorize(col.astype(str), sort=True)
        k = int(codes.max()) + 1
        blocks.append(sp.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), k)))
    if not blocks:
        return sp.csr_matrix((len(frame), 0))
    return sp.hstack(blocks, format="csr")


@dataclass
class FeedbackTable:
    """A log as the estimators read it, with the features a reward model reads and the action names."""

    log: LoggedFeedback
    context: sp.csr_matrix | None = None
    action_features: sp.csr_matrix | None = None
    actions: list[str] = field(default_factory=list)
    #: the table's own rows, aligned with the log (a shop's logs: created_at, features, …), when read from one
    frame: pd.DataFrame | None = None

    def take(self, rows: np.ndarray) -> "FeedbackTable":
        """The rows ``rows`` (an index array) of the log, features and frame."""
        rows = np.asarray(rows, np.int64)
        lg = self.log
        slate = pd.factorize(lg.slate[rows])[0]
        log = LoggedFeedback(lg.action[rows], lg.reward[rows], lg.pscore[rows], lg.n_actions,
                             position=lg.position[rows], slate=slate)
        return FeedbackTable(log, None if self.context is None else self.context[rows], self.action_features,
                             list(self.actions), None if self.frame is None else self.frame.iloc[rows].reset_index(drop=True))


def open_bandit_feedback(logs: pd.DataFrame, n_actions: int | None = None) -> FeedbackTable:
    """An Open Bandit log (one row per shown slot) as feedback: action = ``item_id``, position =
    ``position − 1`` (0, 1, 2 = left, centre, right), reward = ``click``."""
    items = logs.attrs.get("item_context")
    if n_actions is None:
        n_actions = len(items) if items is not None else int(logs["item_id"].max()) + 1
    log = LoggedFeedback(logs["item_id"].to_numpy(), logs["click"].to_numpy(np.float64),
                         logs["propensity_score"].to_numpy(), n_actions,
                         position=logs["position"].to_numpy() - int(logs["position"].min()))
    users = logs[[c for c in logs.columns if str(c).startswith("user_feature_")]]
    context = one_hot(users, numeric=False) if users.shape[1] else None
    feats = None
    if items is not None:
        feats = one_hot(items.sort_index().reindex(range(n_actions)))
    return FeedbackTable(log, context, feats, [str(a) for a in range(n_actions)])


def feedback_from_frame(frame: pd.DataFrame, *, action: str = "arm", reward: str = "reward",
                        propensity: str = "propensity", position: str | None = "position",
                        slate: str | None = "request_id", actions: list[str] | None = None,
                        context: list[str] | None = None, source: str = "the log") -> FeedbackTable:
    """A table of logged choices as feedback. ``actions`` fixes the action order (else the sorted
    distinct values of the ``action`` column); ``context`` names the columns a reward model reads."""
    missing = [c for c in (action, reward, propensity) if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: no column {missing[0]!r}; the table has {list(frame.columns)}")
    names = [str(a) for a in frame[action].tolist()]
    known = list(actions) if actions is not None else sorted(set(names))
    index = {a: i for i, a in enumerate(known)}
    act = np.array([index.get(a, -1) for a in names], np.int64)
    if (act < 0).any():
        bad = sorted({names[i] for i in np.flatnonzero(act < 0)})
        raise ValueError(f"{source}: {int((act < 0).sum()):,} rows name an action the policy does not have: "
                         f"{bad[:5]} (its actions: {known})")
    p = pd.to_numeric(frame[propensity], errors="coerce").to_numpy(np.float64)
    bad = ~((p > 0) & (p <= 1))
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(f"{source}: {len(rows):,} rows have no usable logging propensity in {propensity!r} "
                         f"(first at row {int(rows[0])}: {frame[propensity].iloc[rows[0]]!r}; expected a "
                         "probability in (0, 1]); log the policy's propensity with every impression")
    r = pd.to_numeric(frame[reward], errors="coerce").to_numpy(np.float64)
    if np.isnan(r).any():
        row = int(np.flatnonzero(np.isnan(r))[0])
        raise ValueError(f"{source}: row {row}: reward {frame[reward].iloc[row]!r} is not a number")
    pos = frame[position].to_numpy(np.int64) if position and position in frame.columns else None
    sl = pd.factorize(frame[slate])[0] if slate and slate in frame.columns else None
    log = LoggedFeedback(act, r, p, len(known), position=pos, slate=sl)
    ctx = one_hot(frame[context]) if context else None
    return FeedbackTable(log, ctx, None, known, frame.reset_index(drop=True))


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV, Parquet or JSON Lines file as a frame (by its suffix); a clear error when unreadable."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(p)
        if suffix in (".jsonl", ".ndjson", ".json"):
            return pd.read_json(p, lines=suffix != ".json")
        return pd.read_csv(p)
    except (ValueError, pd.errors.ParserError, OSError) as e:
        raise ValueError(f"{p}: cannot read it as {suffix.lstrip('.') or 'CSV'}: {e}") from None


def read_feedback(spec: str, *, action: str = "arm", reward: str = "reward", propensity: str = "propensity",
                  position: str | None = "position", slate: str | None = "request_id",
                  context: list[str] | None = None) -> FeedbackTable:
    """Logged feedback from ``open-bandit:PATH`` (an Open Bandit Dataset CSV) or from a table of
    logged choices (CSV / Parquet / JSON Lines with ``action``, ``reward`` and ``propensity`` columns,
    e.g. what ``shoprec rewards`` writes)."""
    kind, sep, rest = spec.partition(":")
    if sep and kind.lower() in ("open-bandit", "open_bandit", "obd"):
        from ..data.adapters import load_open_bandit

        logs, report = load_open_bandit(rest)
        if report.rows_skipped:
            import logging

            logging.getLogger(__name__).warning("%s", report.summary())
        return open_bandit_feedback(logs)
    frame = read_table(spec)
    return feedback_from_frame(frame, action=action, reward=reward, propensity=propensity, position=position,
                               slate=slate, context=context, source=str(spec))
