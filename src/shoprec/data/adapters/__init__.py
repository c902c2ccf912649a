"""Dataset adapters: one function per source format, each taking a PATH (never a dataset name).

On the command line a source is written ``FORMAT:PATH`` and resolved with :func:`load`::

    lightgcn:../shared/data/yelp2018            → TrainTest
    sasrec:../shared/data/amazon-beauty/Beauty.txt → ShopData
    sessions:../shared/data/diginetica/sessions → SessionCases
    online_retail:data/online_retail.parquet    → (ShopData, LoadReport)
    taobao:UserBehavior.csv                     → (ShopData, LoadReport)
    retailrocket:events.csv                     → (ShopData, LoadReport)
    olist:../shared/data/olist                  → (ShopData, LoadReport)
    movielens:../shared/data/movielens-1m       → ShopData
    open_bandit:obd/random/men/men.csv          → (pandas.DataFrame, LoadReport)
    csv:events.csv / tsv:… / parquet:… / jsonl:… → (ShopData, LoadReport)   (generic read_events)

Each adapter's module docstring documents its source format and how rows map to events.
"""

from __future__ import annotations

import inspect

from functools import partial
from pathlib import Path
from typing import Any, Callable

from ...exceptions import ConfigError
from ..readers import read_events
from .lightgcn import load_lightgcn
from .movielens import load_movielens_1m
from .olist import load_olist
from .online_retail import NON_PRODUCT_CODES, load_online_retail
from .open_bandit import load_open_bandit, read_open_bandit_items
from .retailrocket import load_retailrocket, read_category_tree
from .sasrec import load_sasrec
from .sessions import load_sessions
from .taobao import load_taobao_userbehavior


def _generic(fmt: str) -> Callable[..., Any]:
    f = partial(read_events, format=fmt)
    f.__doc__ = f"read_events(path, format={fmt!r}, ...) → (ShopData, LoadReport)"
    return f


#: Short format name (as used in ``FORMAT:PATH``) → adapter taking the path first.
ADAPTERS: dict[str, Callable[..., Any]] = {
    "lightgcn": load_lightgcn,
    "sasrec": load_sasrec,
    "sessions": load_sessions,
    "online_retail": load_online_retail,
    "taobao": load_taobao_userbehavior,
    "retailrocket": load_retailrocket,
    "movielens": load_movielens_1m,
    "olist": load_olist,
    "open_bandit": load_open_bandit,
    "csv": _generic("csv"),
    "tsv": _generic("tsv"),
    "parquet": _generic("parquet"),
    "jsonl": _generic("jsonl"),
}


def parse_spec(spec: str) -> tuple[str, Path]:
    """``"FORMAT:PATH"`` → (format, path), checking the format; raises :class:`ConfigError`."""
    formats = ", ".join(sorted(ADAPTERS))
    fmt, sep, path = str(spec).partition(":")
    fmt = fmt.strip().lower().replace("-", "_")
    if not sep or not path.strip():
        raise ConfigError(f"data source {spec!r}: expected FORMAT:PATH, e.g. lightgcn:../shared/data/yelp2018; "
                          f"formats: {formats}")
    if fmt not in ADAPTERS:
        raise ConfigError(f"data source {spec!r}: unknown format {fmt!r}; formats: {formats}")
    return fmt, Path(path.strip()).expanduser()


def load(spec: str, **kwargs: Any) -> Any:
    """Load ``"FORMAT:PATH"`` with the adapter of that format; keyword arguments go to the adapter.

    Returns what the adapter returns (see the table in this module's docstring).
    ``strict`` is passed only to adapters that skip rows; the research-split formats (lightgcn,
    sasrec, sessions) never skip a line, they raise on the first malformed one, so they are strict
    already.
    """
    fmt, path = parse_spec(spec)
    fn = ADAPTERS[fmt]
    if "strict" in kwargs and "strict" not in inspect.signature(fn).parameters:
        kwargs.pop("strict")
    return fn(path, **kwargs)


__all__ = [
    "ADAPTERS", "NON_PRODUCT_CODES", "load", "parse_spec",
    "load_lightgcn", "load_movielens_1m", "load_olist", "load_online_retail", "load_open_bandit", "load_retailrocket",
    "load_sasrec", "load_sessions", "load_taobao_userbehavior", "read_category_tree", "read_open_bandit_items",
]
