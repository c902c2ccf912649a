"""LightGCN / NGCF / KGAT research splits (yelp2018, amazon-book, gowalla, amazon-book-kgat, …).

Format of the folder::

    train.txt   one line per user: ``user item item …`` (0-based ints, space separated)
    test.txt    same format; a line may hold only the user (no test item)
    user_list.txt, item_list.txt   optional: ``org_id remap_id [freebase_id]`` with a header line

Every (user, item) token pair is one event of behaviour ``INTERACTION`` with no timestamp (-1). The id
maps cover the users and items of *both* files (test-only items included); external ids are the ints as
text, and the map is sorted by the int, so when ids are contiguous from 0 (as in these splits) the
internal index equals the file's id. When ``user_list.txt`` / ``item_list.txt`` are present, their
original ids become the ``org_id`` column (and ``freebase_id`` when given) of the user / item table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...exceptions import DataError
from ..dataset import ShopData, TrainTest, empty_events
from ..idmap import IdMap
from ..schema import Behaviour
from ._intlines import read_int_lines, require_file, require_folder


def _pairs(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user per event, item per event, users of every line) of a ``user item item …`` file."""
    il = read_int_lines(path, what="id")
    counts = il.counts
    rows = counts > 0
    starts = il.indptr[:-1][rows]
    line_users = il.values[starts]
    is_item = np.ones(len(il.values), dtype=bool)
    is_item[starts] = False
    users = np.repeat(line_users, counts[rows] - 1)
    items = il.values[is_item]
    return users, items, line_users


def _id_table(path: Path, ids: IdMap, n: int) -> pd.DataFrame | None:
    """``org_id remap_id [freebase_id]`` → a table indexed by internal index (None if absent / unusable)."""
    if not path.exists():
        return None
    try:
        t = pd.read_csv(path, sep=" ", dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None
    if "remap_id" not in t.columns or "org_id" not in t.columns:
        return None
    t = t.drop_duplicates("remap_id", keep="last").set_index("remap_id")
    t = t.reindex(pd.Index(ids.external_ids, dtype=object))
    t.index = pd.RangeIndex(n)
    return t


def load_lightgcn(folder: str | Path, *, name: str | None = None, train: str = "train.txt",
                  test: str = "test.txt", original_ids: bool = True) -> TrainTest:
    """Load a LightGCN-format split folder into a :class:`TrainTest` (see the module docstring).

    Parameters
    ----------
    folder : path
        Folder holding ``train.txt`` and ``test.txt`` (names changeable with ``train=`` / ``test=``).
    name : str, optional
        Label (default: the folder name). The sides are named ``<name>/train`` and ``<name>/test``.
    original_ids : bool
        Read ``user_list.txt`` / ``item_list.txt`` into the user / item tables when present.
    """
    root = require_folder(folder)
    name = name or root.resolve().name
    tr_u, tr_i, tr_lines = _pairs(require_file(root / train))
    te_u, te_i, te_lines = _pairs(require_file(root / test))
    if len(tr_u) == 0:
        raise DataError("no (user, item) pair in the training file", path=str(root / train))
    uid = np.unique(np.concatenate([tr_lines, te_lines]))
    iid = np.unique(np.concatenate([tr_i, te_i]))
    users = IdMap(uid.astype(str).astype(object))
    items = IdMap(iid.astype(str).astype(object))
    user_table = item_table = None
    if original_ids:
        user_table = _id_table(root / "user_list.txt", users, len(users))
        item_table = _id_table(root / "item_list.txt", items, len(items))

    def side(u: np.ndarray, i: np.ndarray, label: str) -> ShopData:
        ev = empty_events(len(u))
        ev["user_idx"] = np.searchsorted(uid, u).astype(np.int32)
        ev["item_idx"] = np.searchsorted(iid, i).astype(np.int32)
        ev["behaviour"] = np.int8(Behaviour.INTERACTION)
        return ShopData(events=ev, users=users, items=items, item_table=item_table, user_table=user_table,
                        name=f"{name}/{label}",
                        meta={"source": str(root / (train if label == "train" else test)), "format": "lightgcn"})

    return TrainTest(train=side(tr_u, tr_i, "train"), test=side(te_u, te_i, "test"), name=name)
