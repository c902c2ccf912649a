"""Session-based next-item splits in the SR-GNN / GCE-GNN form (Diginetica, Yoochoose, Tmall, …),
written as text.

Format of the folder::

    train_sessions.txt  one training session per line: ``item item item …`` (ints, space separated)
    test_cases.txt      one test case per line: ``item item …<TAB>next_item`` (the prefix, oldest
                        first, then a tab and the item that followed)

Training session on line *n* becomes an anonymous user ``"s<n>"`` with the session id ``"s<n>"``; each
item is an event of behaviour ``INTERACTION`` whose ``timestamp`` is its position in the session (0, 1,
…), so :meth:`ShopData.sequences` keeps the order. The item map holds every item of both files (sorted by
the int; test-only items are appended to the catalogue, without events), so every test prefix and target
maps to an index. Blank lines of the training file are skipped (their count is in ``meta``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...exceptions import DataError
from ..dataset import SessionCases, ShopData, empty_events
from ..idmap import IdMap
from ..ragged import Ragged
from ..schema import Behaviour
from ._intlines import read_int_lines, require_file, require_folder


def load_sessions(folder: str | Path, *, train: str = "train_sessions.txt", test: str = "test_cases.txt",
                  name: str | None = None) -> SessionCases:
    """Load a session split folder into :class:`SessionCases` (see the module docstring)."""
    root = require_folder(folder)
    name = name or root.resolve().name
    if name == "sessions":  # diginetica/sessions → diginetica
        name = root.resolve().parent.name
    tr_path, te_path = require_file(root / train), require_file(root / test)
    tr = read_int_lines(tr_path, what="item id")
    te = read_int_lines(te_path, what="item id")

    # --- test cases: exactly one tab per line, one token after it
    tabs = np.fromiter((line.count(b"\t") for line in te.raw_lines), dtype=np.int64, count=len(te))
    te_counts = te.counts
    nonblank = te_counts > 0
    bad = nonblank & (tabs != 1)
    if not bad.any():
        after = np.fromiter((len(line.split(b"\t", 1)[1].split()) if b"\t" in line else 0
                             for line in te.raw_lines), dtype=np.int64, count=len(te))
        bad = nonblank & (after != 1)
    if bad.any():
        r = int(np.argmax(bad))
        raise DataError(f"got {te.raw_lines[r][:80].decode('utf-8', 'replace')!r}; expected "
                        "'<prefix items separated by spaces><TAB><next item>'", path=str(te_path), line=r + 1)
    rows = np.flatnonzero(nonblank)
    last = te.indptr[1:][rows] - 1
    targets_ext = te.values[last]
    in_prefix = np.ones(len(te.values), dtype=bool)
    in_prefix[te.indptr[1:][nonblank] - 1] = False
    prefix_vals = te.values[in_prefix]
    prefix_len = te_counts[rows] - 1

    # --- training sessions
    tr_counts = tr.counts
    srows = np.flatnonzero(tr_counts > 0)
    if len(srows) == 0:
        raise DataError("no training session", path=str(tr_path))
    sess_len = tr_counts[srows]
    items_ev = tr.values
    iid = np.unique(np.concatenate([items_ev, prefix_vals, targets_ext]))
    items = IdMap(iid.astype(str).astype(object))
    labels = np.char.add("s", tr.line_no[srows].astype(str)).astype(object)
    users = IdMap(labels)
    sessions = IdMap(labels)
    owner = np.repeat(np.arange(len(srows), dtype=np.int32), sess_len)
    starts = np.repeat(np.cumsum(sess_len) - sess_len, sess_len)
    ev = empty_events(len(items_ev))
    ev["user_idx"] = owner
    ev["session_idx"] = owner
    ev["item_idx"] = np.searchsorted(iid, items_ev).astype(np.int32)
    ev["behaviour"] = np.int8(Behaviour.INTERACTION)
    ev["timestamp"] = np.arange(len(items_ev), dtype=np.int64) - starts
    train_data = ShopData(events=ev, users=users, items=items, sessions=sessions, name=f"{name}/train",
                          meta={"source": str(tr_path), "format": "sessions",
                                "timestamp": "position in the session",
                                "blank_lines_skipped": int(len(tr) - len(srows))})
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(prefix_len, out=indptr[1:])
    prefixes = Ragged(indptr, np.searchsorted(iid, prefix_vals).astype(np.int32))
    targets = np.searchsorted(iid, targets_ext).astype(np.int32)
    return SessionCases(train=train_data, prefixes=prefixes, targets=targets, name=name)
