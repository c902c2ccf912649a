"""SASRec / S3-Rec sequence files (Amazon Beauty, Sports, Toys, Yelp in that form, ML-1M of SASRec …).

Format::

    Beauty.txt                  one line per user: ``user item item …`` (ints from 1), items in time order
    Beauty_item2attributes.json optional, beside it: ``{"<item>": [attribute id, …], …}`` (brand and
                                category ids; the vocabulary is not part of the data)

There are no timestamps: each event's ``timestamp`` is its **position** in the user's sequence (0, 1, 2,
…), so :meth:`ShopData.sequences` returns the file's order and a leave-one-out split can take the largest
"timestamp" as the last item. Behaviour ``INTERACTION``. External ids are the ints as text; users and
items are sorted by the int (so with ids 1..n the internal index is id - 1). Attribute-file items join the
item map even when no sequence holds them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ...exceptions import DataError
from ..dataset import ShopData, empty_events
from ..idmap import IdMap
from ..schema import Behaviour
from .lightgcn import _pairs
from ._intlines import require_file


def _attributes_path(file: Path, attributes: str | Path | None | bool) -> Path | None:
    if attributes is None or attributes is False:
        return None
    if attributes == "auto" or attributes is True:
        cand = file.with_name(f"{file.stem}_item2attributes.json")
        return cand if cand.exists() else None
    p = Path(attributes)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    return p


def _read_attributes(path: Path) -> pd.DataFrame:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DataError(f"not valid JSON ({e}); expected an object item → list of attribute ids",
                        path=str(path)) from None
    if not isinstance(obj, dict):
        raise DataError("expected a JSON object mapping item ids to attribute lists", path=str(path))
    ids = [str(k).strip() for k in obj]
    attrs = [" ".join(str(a) for a in v) if isinstance(v, (list, tuple)) else str(v) for v in obj.values()]
    return pd.DataFrame({"attributes": pd.array(attrs, dtype="str")},
                        index=pd.Index(ids, name="item_id", dtype="str"))


def load_sasrec(file: str | Path, *, attributes: str | Path | None = "auto", name: str | None = None) -> ShopData:
    """Load a SASRec-format sequence file into :class:`ShopData` (see the module docstring).

    Parameters
    ----------
    file : path
        The sequence file (``Beauty.txt``).
    attributes : ``"auto"``, path or None
        Item attribute JSON; ``"auto"`` uses ``<stem>_item2attributes.json`` beside the file if present.
        It becomes the ``attributes`` column of the item table: the item's attribute ids joined by spaces
        (``"1 2 3"``), ready for a bag-of-tokens vectoriser.
    name : str, optional
        Label (default: the file stem).
    """
    p = require_file(file)
    users_ev, items_ev, line_users = _pairs(p)
    if len(items_ev) == 0:
        raise DataError("no item in any sequence", path=str(p))
    # position within the user's sequence (continues if a user has several lines)
    position = pd.Series(users_ev).groupby(users_ev, sort=False).cumcount().to_numpy(dtype=np.int64)

    apath = _attributes_path(p, attributes)
    item_table = _read_attributes(apath) if apath is not None else None
    iid = np.unique(items_ev)
    if item_table is not None:
        extra = pd.to_numeric(pd.Series(item_table.index), errors="coerce").dropna().astype(np.int64).to_numpy()
        iid = np.union1d(iid, extra)
    uid = np.unique(line_users)
    users = IdMap(uid.astype(str).astype(object))
    items = IdMap(iid.astype(str).astype(object))
    ev = empty_events(len(items_ev))
    ev["user_idx"] = np.searchsorted(uid, users_ev).astype(np.int32)
    ev["item_idx"] = np.searchsorted(iid, items_ev).astype(np.int32)
    ev["behaviour"] = np.int8(Behaviour.INTERACTION)
    ev["timestamp"] = position
    if item_table is not None:
        t = item_table[~item_table.index.duplicated(keep="last")].reindex(pd.Index(items.external_ids, dtype=object))
        t.index = pd.RangeIndex(len(items))
        item_table = t
    meta = {"source": str(p), "format": "sasrec", "timestamp": "position in the user's sequence"}
    if apath is not None:
        meta["attributes"] = str(apath)
    return ShopData(events=ev, users=users, items=items, item_table=item_table, name=name or p.stem, meta=meta)
