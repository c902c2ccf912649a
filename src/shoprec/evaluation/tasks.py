"""Turn whatever a loader returns into an :class:`EvalTask`, choosing the protocol the data calls for."""

from __future__ import annotations

from typing import Any

from ..data import Behaviour, SessionCases, ShopData, TrainTest
from .splits import (EvalTask, basket_hold_one_out, from_train_test, leave_one_out, session_next_item,
                     temporal_split)

SPLITS = ("auto", "given", "loo", "temporal", "basket")


def make_task(loaded: Any, split: str = "auto", *, sequential: bool = False) -> EvalTask:
    """Build the evaluation task for loaded data.

    ``auto``: a :class:`TrainTest` uses the split of its files, :class:`SessionCases` the given
    prefixes, sequence data (``sequential=True``) leave-one-out, any other event log a global
    temporal cut (last 10 % of events; purchases of known users are the test).
    """
    if isinstance(loaded, tuple):  # (data, LoadReport)
        loaded = loaded[0]
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if isinstance(loaded, TrainTest):
        if split not in ("auto", "given"):
            raise ValueError(f"{loaded.name}: a pre-split dataset only supports split 'given'")
        return from_train_test(loaded)
    if isinstance(loaded, SessionCases):
        if split not in ("auto", "given"):
            raise ValueError(f"{loaded.name}: session test cases only support split 'given'")
        return session_next_item(loaded)
    if not isinstance(loaded, ShopData):
        raise TypeError(f"cannot evaluate a {type(loaded).__name__}")
    if split == "given":
        raise ValueError(f"{loaded.name}: has no given split; use loo, temporal or basket")
    if split == "loo" or (split == "auto" and sequential):
        return leave_one_out(loaded)
    if split == "basket":
        return basket_hold_one_out(loaded)
    return temporal_split(loaded, behaviours=None if sequential else _test_behaviours(loaded))


def _test_behaviours(data: ShopData):
    present = set(data.events["behaviour"].unique().tolist())
    if int(Behaviour.PURCHASE) in present:
        return (Behaviour.PURCHASE,)
    return None
