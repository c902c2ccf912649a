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
