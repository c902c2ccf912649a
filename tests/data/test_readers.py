"""Tests of shoprec.data.readers: formats, validation, skip reasons and their counts, strict mode."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprec.data import Behaviour, ShopData
from shoprec.data.readers import LoadReport, parse_timestamps, read_events, read_items, read_users
from shoprec.exceptions import DataError, EmptyInputError, SchemaError

HEADER = "user_id,item_id,behaviour,timestamp,session_id,quantity,price,country"
GOOD_ROWS = [
    "u1,i1,view,2020-01-01T10:00:00Z,s1,,,DE",
    "u1,i2,add_to_cart,1577872800,s1,1,9.5,DE",
    "u1,i2,buy,1577872800000,s1,1,9.5,DE",
    "u2,i3,pv,2020-01-01 11:00:00,s2,,,FR",
    "u2,i1,purchase,2020-01-02T00:00:00+01:00,,2,3.25,FR",
]


def write(path: Path, lines: list[str], newline: bool = True) -> Path:
    path.write_text("\n".join(lines) + ("\n" if newline else ""), encoding="utf-8")
    return path


def good_csv(tmp_path: Path) -> Path:
    return write(tmp_path / "events.csv", [HEADER, *GOOD_ROWS])


def assert_same_data(a: ShopData, b: ShopData) -> None:
    assert a.users == b.users
    assert a.items == b.items
    assert (a.sessions is None) == (b.sessions is None)
    if a.sessions is not None:
        assert a.sessions == b.sessions
    cols = ["user_idx", "item_idx", "behaviour", "timestamp", "session_idx", "quantity", "price", "rating"]
    pd.testing.assert_frame_equal(a.events[cols], b.events[cols])
    assert list(a.events["country"].astype(str)) == list(b.events["country"].astype(str))


def check_invariant(report: LoadReport) -> None:
    assert report.rows_read == report.rows_kept + sum(report.skipped.values())


# ------------------------------------------------------------------------------- the happy path
def test_csv_values_are_parsed(tmp_path):
    data, report = read_events(good_csv(tmp_path))
    assert report.rows_read == 5 and report.rows_kept == 5 and report.skipped == {}
    assert data.n_users == 2 and data.n_items == 3 and data.n_events == 5
    ev = data.events
    assert list(data.users.external_ids) == ["u1", "u2"]
    assert list(data.items.external_ids) == ["i1", "i2", "i3"]
    assert list(ev["behaviour"]) == [Behaviour.VIEW, Behaviour.ADD_TO_CART, Behaviour.PURCHASE, Behaviour.VIEW,
                                     Behaviour.PURCHASE]
    # ISO with Z, unix seconds, unix milliseconds (> 1e11), naive ISO (= UTC), ISO with offset
    assert list(ev["timestamp"]) == [1577872800, 1577872800, 1577872800, 1577876400, 1577919600]
    assert ev["quantity"].isna().sum() == 2 and float(ev["price"].iloc[4]) == pytest.approx(3.25)
    # the last row has no session: -1, not a session called 'nan'
    assert list(ev["session_idx"]) == [0, 0, 0, 1, -1]
    assert list(data.sessions.external_ids) == ["s1", "s2"]
    assert isinstance(ev["country"].dtype, pd.CategoricalDtype)
    assert data.name == "events"
    assert ev.dtypes["user_idx"] == np.int32 and ev.dtypes["timestamp"] == np.int64


def test_each_format_gives_the_same_shopdata(tmp_path):
    ref, _ = read_events(good_csv(tmp_path))
    raw = pd.read_csv(good_csv(tmp_path), dtype=str)
    # TSV
    raw.to_csv(tmp_path / "events.tsv", sep="\t", index=False)
    # gzip CSV
    with gzip.open(tmp_path / "events.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write((tmp_path / "events.csv").read_text())
    # Parquet with native types: numbers as numbers
    typed = raw.copy()
    typed["quantity"] = pd.to_numeric(typed["quantity"])
    typed["price"] = pd.to_numeric(typed["price"])
    typed.to_parquet(tmp_path / "events.parquet")
    # JSON Lines with missing keys for empty fields and numbers as JSON numbers
    with open(tmp_path / "events.jsonl", "w", encoding="utf-8") as fh:
        for rec in raw.to_dict("records"):
            obj = {k: v for k, v in rec.items() if isinstance(v, str)}
            if "quantity" in obj:
                obj["quantity"] = float(obj["quantity"])
            fh.write(json.dumps(obj) + "\n")
    for name in ("events.tsv", "events.csv.gz", "events.parquet", "events.jsonl"):
        data, report = read_events(tmp_path / name)
        assert report.rows_kept == 5, name
        assert_same_data(ref, data)
    # the format can be forced
    (tmp_path / "events.data").write_text((tmp_path / "events.jsonl").read_text())
    data, _ = read_events(tmp_path / "events.data", format="jsonl")
    assert_same_data(ref, data)


def test_column_mapping(tmp_path):
    path = write(tmp_path / "shop.csv", [
        "visitor;sku;evt;when;basket;extra",
        "a;x;view;1600000000;b1;zzz",
        "a;y;addtocart;1600000100;b1;zzz",
        "b;x;transaction;1600000200;b2;zzz",
    ])
    data, report = read_events(path, delimiter=";", columns={
        "user_id": "visitor", "item_id": "sku", "behaviour": "evt", "timestamp": "when", "session_id": "basket"})
    assert report.rows_kept == 3
    assert list(data.users.external_ids) == ["a", "b"]
    assert list(data.items.external_ids) == ["x", "y"]
    assert list(data.events["behaviour"]) == [Behaviour.VIEW, Behaviour.ADD_TO_CART, Behaviour.PURCHASE]
    assert list(data.sessions.external_ids) == ["b1", "b2"]
    assert any("extra" in n for n in report.notes)  # unused columns are named, not silently ignored


def test_mapping_to_an_absent_column_is_a_schema_error(tmp_path):
    with pytest.raises(SchemaError, match="visitor"):
        read_events(good_csv(tmp_path), columns={"user_id": "visitor"})
    with pytest.raises(SchemaError, match="unknown"):
        read_events(good_csv(tmp_path), columns={"usr": "user_id"})


def test_default_behaviour_and_behaviour_map(tmp_path):
    path = write(tmp_path / "e.csv", ["user_id,item_id", "u,i", "u,j"])
    data, _ = read_events(path)
    assert set(data.events["behaviour"]) == {int(Behaviour.INTERACTION)}
    data, _ = read_events(path, default_behaviour="view")
    assert set(data.events["behaviour"]) == {int(Behaviour.VIEW)}
    path = write(tmp_path / "codes.csv", ["user_id,item_id,behaviour", "u,i,1", "u,j,4", "u,k,", "u,l,Add to cart"])
    data, report = read_events(path, behaviour_map={"1": "view", "4": Behaviour.PURCHASE}, default_behaviour="click")
    assert report.rows_kept == 4
    assert list(data.events["behaviour"]) == [Behaviour.VIEW, Behaviour.PURCHASE, Behaviour.CLICK,
                                              Behaviour.ADD_TO_CART]


# ------------------------------------------------------------------------ whole-file errors
def test_empty_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(EmptyInputError, match="empty"):
        read_events(tmp_path / "empty.csv")


def test_header_only(tmp_path):
    write(tmp_path / "header.csv", [HEADER])
    with pytest.raises(EmptyInputError, match="no data rows"):
        read_events(tmp_path / "header.csv")
    write(tmp_path / "blank.csv", [HEADER, "", ""])
    with pytest.raises(EmptyInputError):
        read_events(tmp_path / "blank.csv")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(EmptyInputError):
        read_events(tmp_path / "empty.jsonl")
    pd.DataFrame({"user_id": pd.Series([], dtype=str), "item_id": pd.Series([], dtype=str)}).to_parquet(
        tmp_path / "empty.parquet")
    with pytest.raises(EmptyInputError):
        read_events(tmp_path / "empty.parquet")


def test_wrong_delimiter_hint(tmp_path):
    path = write(tmp_path / "semi.csv", ["user_id;item_id;behaviour", "u;i;view"])
    with pytest.raises(SchemaError) as err:
        read_events(path)
    assert "wrong delimiter? pass delimiter=';'" in str(err.value)
    path = write(tmp_path / "tabs.csv", ["user_id\titem_id", "u\ti"])
    with pytest.raises(SchemaError, match=r"delimiter='\\t'"):
        read_events(path)
    data, _ = read_events(tmp_path / "semi.csv", delimiter=";")
    assert data.n_events == 1


def test_missing_column(tmp_path):
    path = write(tmp_path / "noitem.csv", ["user_id,product,behaviour", "u,i,view"])
    with pytest.raises(SchemaError) as err:
        read_events(path)
    assert "'item_id'" in str(err.value) and "product" in str(err.value)
    assert err.value.field == "item_id"
    # neither user_id nor session_id
    path = write(tmp_path / "nouser.csv", ["item_id,behaviour", "i,view"])
    with pytest.raises(SchemaError, match="user_id"):
        read_events(path)


def test_unknown_suffix(tmp_path):
    (tmp_path / "events.xyz").write_text("user_id,item_id\nu,i\n")
    with pytest.raises(DataError, match="format"):
        read_events(tmp_path / "events.xyz")
    with pytest.raises(FileNotFoundError):
        read_events(tmp_path / "nope.csv")


# ----------------------------------------------------------------------------- row skips
def test_unknown_behaviour(tmp_path):
    path = write(tmp_path / "e.csv", [HEADER, *GOOD_ROWS, "u3,i1,clik,2020-01-01,,,,"])
    data, report = read_events(path)
    assert report.skipped == {"unknown_behaviour": 1}
    assert report.rows_kept == 5 and data.n_events == 5
    (msg,) = report.examples
    assert "e.csv line 7" in msg and "'behaviour'" in msg and "'clik'" in msg and "expected one of" in msg
    check_invariant(report)


def test_unparseable_timestamp(tmp_path):
    path = write(tmp_path / "e.csv", [HEADER, *GOOD_ROWS, "u3,i1,view,yesterday,,,,", "u3,i1,view,-5,,,,",
                                      "u3,i2,view,,,,,"])
    data, report = read_events(path)
    assert report.skipped == {"bad_timestamp": 2}
    assert any("line 7" in e and "'yesterday'" in e and "ISO 8601" in e for e in report.examples)
    # an empty timestamp is unknown (-1), not an error
    assert data.events["timestamp"].iloc[-1] == -1
    check_invariant(report)


def test_timestamp_parsing_rules():
    s = pd.Series(["1600000000", "1600000000000", "2020-09-13T12:26:40Z", "2020-09-13 14:26:40+02:00", "", None,
                   "13/09/2020"])
    secs, bad = parse_timestamps(s)
    assert list(secs[:4]) == [1600000000] * 4
    assert list(secs[4:6]) == [-1, -1] and not bad[4:6].any()
    assert bad[6] and secs[6] == -1
    secs, bad = parse_timestamps(pd.Series([1.6e9, 1.6e12, np.nan]))
    assert list(secs) == [1600000000, 1600000000, -1] and not bad.any()
    secs, _ = parse_timestamps(pd.Series(pd.to_datetime(["2020-09-13 12:26:40"])))
    assert list(secs) == [1600000000]


def test_non_numeric_fields(tmp_path):
    path = write(tmp_path / "e.csv", ["user_id,item_id,quantity,price,rating",
                                      "u,i,1,2.5,4", "u,j,two,2.5,4", "u,k,1,€3,4", "u,l,1,2,five", "u,m,,,"])
    data, report = read_events(path)
    assert report.skipped == {"bad_quantity": 1, "bad_price": 1, "bad_rating": 1}
    assert data.n_events == 2 and np.isnan(data.events["rating"].iloc[1])
    assert any("field 'price'" in e and "'€3'" in e for e in report.examples)


def test_duplicate_rows(tmp_path):
    rows = [HEADER, *GOOD_ROWS, GOOD_ROWS[0], GOOD_ROWS[3], GOOD_ROWS[0]]
    path = write(tmp_path / "e.csv", rows)
    data, report = read_events(path)
    assert report.skipped == {"duplicate_row": 3}
    assert data.n_events == 5
    assert "e.csv line 7: exact duplicate of line 2" in report.examples[0]
    data, report = read_events(path, dedupe=False)
    assert data.n_events == 8 and report.skipped == {}


def test_missing_ids_and_guest_rows(tmp_path):
    path = write(tmp_path / "e.csv", ["user_id,item_id,session_id", "u1,i1,s1", ",i2,s9", ",i3,", "u2,,s2",
                                      "  ,i4,s9"])
    data, report = read_events(path)
    assert report.skipped == {"missing_user_id": 1, "missing_item_id": 1}
    assert report.recoded == {"guest_user_from_session": 2}
    assert list(data.users.external_ids) == ["u1", "session:s9"]
    assert data.n_events == 3
    assert list(data.events["user_idx"]) == [0, 1, 1]
    assert any("line 4" in e and "'user_id'" in e for e in report.examples)
    # a file of guests only: session_id without any user column
    path = write(tmp_path / "guests.csv", ["session_id,item_id", "a,i", "b,j"])
    data, _ = read_events(path)
    assert list(data.users.external_ids) == ["session:a", "session:b"]


def test_bad_lines_blank_lines_and_line_numbers(tmp_path):
    path = write(tmp_path / "e.csv", [HEADER, GOOD_ROWS[0], "", "u9,i9,view,2020-01-01,,,,DE,surplus",
                                      "u3,i1,clik,2020-01-01,,,,", GOOD_ROWS[1]])
    data, report = read_events(path)
    assert report.skipped == {"empty_row": 1, "bad_line": 1, "unknown_behaviour": 1}
    assert report.rows_read == 5 and report.rows_kept == 2
    joined = "\n".join(report.examples)
    assert "e.csv line 3: empty line" in joined
    assert "e.csv line 4: got 9 fields; expected 8" in joined
    assert "e.csv line 5, field 'behaviour'" in joined  # numbering survives the skipped lines
    check_invariant(report)


def test_bad_json_line(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text('{"user_id": "u", "item_id": "i"}\nnot json\n\n[1, 2]\n{"user_id": "v", "item_id": 7}\n')
    data, report = read_events(path)
    assert report.skipped == {"bad_json": 2, "empty_row": 1}
    assert list(data.items.external_ids) == ["i", "7"]  # a JSON number id becomes '7', not '7.0'
    assert any("e.jsonl line 2" in e for e in report.examples)
    assert any("e.jsonl line 4" in e and "list" in e for e in report.examples)
    check_invariant(report)


def test_examples_are_capped_per_reason(tmp_path):
    rows = [HEADER] + [f"u{i},i{i},nope,2020-01-01,,,," for i in range(12)] + GOOD_ROWS
    data, report = read_events(write(tmp_path / "e.csv", rows))
    assert report.skipped == {"unknown_behaviour": 12}
    assert len(report.examples) == 5
    text = report.summary()
    assert "read 17 rows, kept 5, skipped 12" in text and "unknown_behaviour 12" in text


def test_all_rows_bad_is_an_error(tmp_path):
    path = write(tmp_path / "e.csv", ["user_id,item_id,behaviour", "u,i,nope", "v,j,nada"])
    with pytest.raises(DataError, match="no valid event rows"):
        read_events(path)


# ----------------------------------------------------------------------------- strict mode
def test_strict_mode(tmp_path):
    path = write(tmp_path / "e.csv", [HEADER, *GOOD_ROWS, "u3,i1,view,2020-13-45,,,,", "u3,i1,clik,2020-01-01,,,,"])
    data, report = read_events(path)  # lenient: 2 skips
    assert report.rows_skipped == 2
    with pytest.raises(DataError) as err:
        read_events(path, strict=True)
    e = err.value
    assert e.line == 7 and e.field == "timestamp" and e.path == str(path)
    assert "'2020-13-45'" in str(e) and "expected" in str(e) and "line 7" in str(e)
    # the first bad line wins, whatever the reason
    path = write(tmp_path / "f.csv", [HEADER, GOOD_ROWS[0], GOOD_ROWS[0], "u,,view,,,,,"])
    with pytest.raises(DataError) as err:
        read_events(path, strict=True)
    assert err.value.line == 3 and "duplicate" in str(err.value)
    good, _ = read_events(good_csv(tmp_path), strict=True)
    assert good.n_events == 5


# ------------------------------------------------------------------------- items and users
def test_read_items(tmp_path):
    path = write(tmp_path / "items.csv", [
        "item_id,title,category,price,in_stock,colour",
        "i1,Lamp,Home > Lighting,19.9,true,red",
        "i2,Chair,Home > Furniture,,no,",
        "i3,Mug,01,4,YES,blue",
        "i2,Chair v2,Home > Furniture,49,1,green",
        "i4,Broken,Home,12,maybe,",
        ",Nameless,Home,1,0,",
        "i5,Cheap,Home,free,0,",
    ])
    items, report = read_items(path)
    assert report.skipped == {"duplicate_item_id": 1, "bad_in_stock": 1, "missing_item_id": 1, "bad_price": 1}
    assert list(items.index) == ["i1", "i3", "i2"]
    assert items.loc["i2", "title"] == "Chair v2"  # the last row of a repeated id wins
    assert items.loc["i3", "category"] == "01"  # category stays text
    assert items["in_stock"].dtype == "boolean" and list(items["in_stock"]) == [True, True, True]
    assert items["price"].dtype == np.float64
    assert items.loc["i1", "colour"] == "red"  # other columns are kept
    check_invariant(report)
    with pytest.raises(DataError) as err:
        read_items(path, strict=True)
    assert err.value.line == 3 and "appears again on line 5" in str(err.value)  # i2 superseded


def test_read_users_and_tables_joining_the_maps(tmp_path):
    users_path = write(tmp_path / "users.csv", ["customer,age,zip", "u1,34,01234", "u9,51,99999", "u9,52,99999"])
    users, report = read_users(users_path, columns={"user_id": "customer"})
    assert list(users.index) == ["u1", "u9"] and users.loc["u1", "zip"] == "01234"
    assert users.loc["u9", "age"] == "52" and report.skipped == {"duplicate_user_id": 1}
    items_path = write(tmp_path / "items.csv", ["item_id,title", "i1,Lamp", "i99,Never bought"])
    data, report = read_events(good_csv(tmp_path), item_table=items_path,
                               user_table=users.rename(index={"u9": "u2"}))
    assert "i99" in data.items and data.n_items == 4  # catalogue item without events joins the map
    assert data.item_table.loc[data.items.to_index(["i99"])[0], "title"] == "Never bought"
    assert data.user_table.loc[data.users.to_index(["u1"])[0], "age"] == "34"
    assert len(report.related) == 1 and report.related[0].rows_kept == 2


def test_many_duplicate_rows_are_summarised_in_one_line(tmp_path):
    """A file of repeated rows gets a short report: the count and three examples on one line, not a
    line per example; the other reasons keep their own examples."""
    rows = ["user_id,item_id,timestamp"] + [f"u{i % 4},i{i % 4},2020-01-0{1 + i % 4}" for i in range(200)]
    rows.append("u1,,2020-01-01")
    p = tmp_path / "e.csv"
    p.write_text("\n".join(rows) + "\n")
    _, report = read_events(p, dedupe=True)
    assert report.skipped == {"duplicate_row": 196, "missing_item_id": 1}
    text = report.summary()
    dup_lines = [line for line in text.splitlines() if "[duplicate_row]" in line]
    assert dup_lines == ["    [duplicate_row] 196 rows are exact copies of earlier ones, e.g. e.csv line 6 = line 2, "
                         "line 7 = line 3, line 8 = line 4, … (dedupe=False keeps them)"]
    assert sum("[missing_item_id]" in line for line in text.splitlines()) == 1
    assert len(text.splitlines()) == 5      # counts, reasons, "examples:", one line per reason
    # the examples themselves stay as they were (file, line, what was expected) for a caller to read
    assert len([e for e in report.examples if e.startswith("[duplicate_row]")]) == LoadReport.MAX_EXAMPLES
