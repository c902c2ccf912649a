"""`shoprec health prices` and `shoprec health bots` on the demo shop and on a file, and bad input."""

import pandas as pd
from typer.testing import CliRunner

from shoprec.cli import app

runner = CliRunner()


def test_health_prices_on_the_demo_shop_writes_its_flags(tmp_path):
    out = tmp_path / "flags.csv"
    r = runner.invoke(app, ["health", "prices", "--top", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "daily prices of" in r.output and "most recent price flags" in r.output
    flags = pd.read_csv(out)
    assert len(flags) > 0 and set(flags["kind"]) <= {"spike", "drop", "subsidy", "creep"}
    assert flags["reason"].str.contains("usual|earlier").all()


def test_health_bots_finds_a_crawler_in_a_file(tmp_path):
    rows = [f"u{u},i{u % 7},view,{1_600_000_000 + 97 * u + 3 * k},s{u}" for u in range(30) for k in range(3)]
    rows += [f"bot,page{k},view,{1_600_100_000 + k},crawl" for k in range(50)]
    p = tmp_path / "events.csv"
    p.write_text("user_id,item_id,behaviour,timestamp,session_id\n" + "\n".join(rows) + "\n")
    r = runner.invoke(app, ["health", "bots", "--data", f"csv:{p}"])
    assert r.exit_code == 0, r.output
    assert "session crawl" in r.output and "crawler" in r.output and "1 flags (crawler 1)" in r.output


def test_health_commands_report_bad_input():
    r = runner.invoke(app, ["health", "prices", "--data", "csv:/no/such/file.csv"])
    assert r.exit_code == 2 and "no/such/file.csv" in r.output


def test_health_protection_lists_often_returned_items_of_the_demo_shop(tmp_path):
    out = tmp_path / "protection.csv"
    r = runner.invoke(app, ["health", "protection", "--top", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    flagged = pd.read_csv(out)
    assert len(flagged) > 0 and flagged["kinds"].str.contains("often_returned").any()
    assert flagged["return_rate"].between(0, 1).all()
    assert flagged["reason"].str.startswith("often returned (").any()


def test_health_reviews_on_a_small_olist_folder(tmp_path):
    rows = [f"r{k},o{k},5,,,2018-01-{1 + k % 28:02d} 00:00:00,2018-01-02 00:00:00" for k in range(20)]
    (tmp_path / "olist_order_reviews_dataset.csv").write_text(
        "review_id,order_id,review_score,review_comment_title,review_comment_message,review_creation_date,"
        "review_answer_timestamp\n" + "\n".join(rows) + "\n")
    out = tmp_path / "flags.jsonl"
    r = runner.invoke(app, ["health", "reviews", "--olist", str(tmp_path), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "20 reviews of 20 rows" in r.output and out.exists()
    bad = runner.invoke(app, ["health", "reviews", "--olist", str(tmp_path / "none")])
    assert bad.exit_code == 2
