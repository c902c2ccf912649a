"""MovieLens 1M (GroupLens) — ratings with user demographics and movie genres.

Files of the folder (ISO-8859-1 / latin-1 text, fields separated by ``::``)::

    ratings.dat                 UserID::MovieID::Rating::Timestamp   (unix seconds)
      or ratings_no_timestamp.csv   user_id,movie_id,rating (with header; no timestamps → -1)
    users.dat                   UserID::Gender::Age::Occupation::Zip-code
    movies.dat                  MovieID::Title::Genres   (genres separated by '|')

Every rating is an event of behaviour ``RATING`` with its ``rating`` value (1–5). ``users.dat`` becomes
the user table (``gender`` text, ``age`` and ``occupation`` as the integer codes of the GroupLens README,
``zip`` text); ``movies.dat`` the item table (``title``; ``category`` = the genres as text, e.g.
``"Animation|Children's|Comedy"``, also in ``genres``; ``year`` parsed from the title). Users and movies of
those tables join the id maps even without ratings (ML-1M: 6,040 users; 3,883 movies, 3,706 rated).
The load report (skips, if any) is in ``data.meta["load_report"]``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...exceptions import DataError
from ..dataset import ShopData
from ..readers import (LoadReport, _events_core, _items_from_raw, _Raw, _read_csv, _users_from_raw,
                       _Validator, frame_to_shopdata)
from ..schema import Behaviour
from ._intlines import require_folder

_SEP = "\x1f"  # '::' is replaced by this one-character separator (never in the data) to use a fast parser


def _read_dat(path: Path, names: tuple[str, ...]) -> _Raw:
    text = path.read_bytes().decode("latin-1")
    data = text.replace("::", _SEP).encode("utf-8")
    raw = _read_csv(path, "csv", _SEP, "utf-8", list(names), data=data)
    return raw


def load_movielens_1m(folder: str | Path, *, strict: bool = False, name: str | None = None) -> ShopData:
    """Load a MovieLens-1M folder into :class:`ShopData` (see the module docstring)."""
    root = require_folder(folder)
    if (root / "ratings.dat").exists():
        raw = _read_dat(root / "ratings.dat", ("user_id", "item_id", "rating", "timestamp"))
    elif (root / "ratings_no_timestamp.csv").exists():
        p = root / "ratings_no_timestamp.csv"
        raw = _read_csv(p, "csv", ",", "latin-1", None, data=p.read_bytes().decode("latin-1").encode("utf-8"))
        raw.frame = raw.frame.rename(columns={"movie_id": "item_id", "movieId": "item_id", "userId": "user_id"})
    else:
        raise FileNotFoundError(f"{root}: neither ratings.dat nor ratings_no_timestamp.csv")
    colmap = {k: k for k in ("user_id", "item_id", "rating", "timestamp") if k in raw.frame.columns}
    for k in ("user_id", "item_id", "rating"):
        if k not in colmap:
            raise DataError(f"the ratings file lacks the column {k!r}; it has {list(raw.frame.columns)}",
                            path=str(raw.path))
    report = LoadReport(str(raw.path), rows_read=raw.rows_read)
    v = _Validator(report, raw.path, raw.lines, raw.label, strict)
    for reason, line, fld, msg in raw.outside:
        v.outside(reason, line, fld, msg)
    frame = _events_core(raw, colmap, v, default_behaviour=Behaviour.RATING, behaviour_map=None, dedupe=True)
    v.finish()
    report.rows_kept = len(frame)
    if len(frame) == 0:
        raise DataError("no valid rating.\n" + report.summary(), path=str(raw.path))

    user_table = item_table = None
    if (root / "users.dat").exists():
        uraw = _read_dat(root / "users.dat", ("user_id", "gender", "age", "occupation", "zip"))
        user_table, ureport = _users_from_raw(uraw, {"user_id": "user_id"}, strict)
        for c in ("age", "occupation"):
            user_table[c] = pd.to_numeric(user_table[c], errors="coerce").astype("Int64")
        report.related.append(ureport)
    if (root / "movies.dat").exists():
        mraw = _read_dat(root / "movies.dat", ("item_id", "title", "genres"))
        item_table, mreport = _items_from_raw(mraw, {"item_id": "item_id", "title": "title", "category": "genres"},
                                              strict)
        item_table["genres"] = item_table["category"]
        item_table["year"] = pd.to_numeric(item_table["title"].str.extract(r"\((\d{4})\)\s*$")[0],
                                           errors="coerce").astype("Int64")
        report.related.append(mreport)
    return frame_to_shopdata(frame, name=name or root.resolve().name, item_table=item_table, user_table=user_table,
                             meta={"source": str(root), "format": "movielens", "load_report": report})
