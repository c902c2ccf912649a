"""The command line on tiny files: tables, JSON output, clear errors."""

import json

import pytest
from typer.testing import CliRunner

from shoprec.cli import app

runner = CliRunner()


@pytest.fixture
def events_csv(tmp_path):
    lines = ["user_id,item_id,behaviour,timestamp"]
    t = 1_600_000_000
    for j in range(6):
        for u in range(30):
            t += 60
            item = (u % 3) * 5 + (j % 5)
            lines.append(f"u{u},i{item},{'purchase' if j % 2 else 'view'},{t}")
    p = tmp_path / "events.csv"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_evaluate_prints_table_and_writes_json(events_csv, tmp_path):
    out = tmp_path / "res.json"
    r = runner.invoke(app, ["evaluate", "--data", f"csv:{events_csv}", "--strategies", "popularity,item_knn",
                            "--k", "5,10", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "item_knn" in r.output and "recall@10" in r.output
    payload = json.loads(out.read_text())
    res = payload["results"]["item_knn"]
    for key in ("recall@10", "ndcg@10", "hr@5", "mrr@10", "fit_seconds"):
        assert key in res
    assert 0.0 <= res["recall@10"] <= 1.0


def test_evaluate_param_and_unknown_strategy(events_csv):
    r = runner.invoke(app, ["evaluate", "--data", f"csv:{events_csv}", "--strategies", "item_knn",
                            "--param", "item_knn.neighbours=3", "--k", "5"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["evaluate", "--data", f"csv:{events_csv}", "--strategies", "nope", "--k", "5"])
    assert r.exit_code != 0
    assert "unknown strategy 'nope'" in r.output


def test_unknown_format_is_a_clear_error(events_csv):
    r = runner.invoke(app, ["evaluate", "--data", f"excel:{events_csv}"])
    assert r.exit_code != 0
    assert "excel" in r.output and "lightgcn" in r.output  # lists the known formats


def test_strict_names_file_line_and_field(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("user_id,item_id,behaviour\nu1,i1,view\nu2,i2,teleport\n")
    r = runner.invoke(app, ["evaluate", "--data", f"csv:{p}", "--strict"])
    assert r.exit_code != 0
    assert "bad.csv" in r.output and "line 3" in r.output and "behaviour" in r.output


def test_listing_commands():
    r = runner.invoke(app, ["strategies"])
    assert r.exit_code == 0 and "item_knn" in r.output and "ease" in r.output
    r = runner.invoke(app, ["formats"])
    assert r.exit_code == 0 and "lightgcn" in r.output and "online_retail" in r.output


def test_missing_file_is_a_message_not_a_traceback(tmp_path):
    r = runner.invoke(app, ["evaluate", "--data", f"csv:{tmp_path / 'nope.csv'}"])
    assert r.exit_code == 2
    assert "nope.csv" in r.output and "Traceback" not in r.output


@pytest.mark.realdata
def test_evaluate_on_a_research_format(shared_data, tmp_path):
    """Every format works through the CLI, --strict included (research splits are strict already)."""
    beauty = shared_data("amazon-beauty", "Beauty.txt")
    out = tmp_path / "b.json"
    r = runner.invoke(app, ["evaluate", "--data", f"sasrec:{beauty}", "--strategies", "sequential",
                            "--k", "10", "--strict", "--json", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())["results"]["sequential"]
    assert res["hr@10"] > 0.06  # SASRec's published .0605; ours measured .0937


def test_a_failing_strategy_is_reported_the_others_printed_and_written(events_csv, tmp_path, monkeypatch):
    """Without torch sasrec fails with its install hint; popularity's results still print and go to --json."""
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails
    out = tmp_path / "res.json"
    r = runner.invoke(app, ["evaluate", "--data", f"csv:{events_csv}", "--strategies", "popularity,sasrec",
                            "--k", "5", "--json", str(out)])
    assert r.exit_code == 1, r.output
    assert "sasrec failed during fit: ConfigError" in r.output
    assert 'pip install "shoprec[neural]"' in r.output  # the extra's name survives the printing
    assert "  popularity: recall@5" in r.output and "1 of 2 strategies failed" in r.output
    payload = json.loads(out.read_text())
    assert list(payload["results"]) == ["popularity"]
    failure = payload["failures"]["sasrec"]
    assert failure["stage"] == "fit" and failure["error_type"] == "ConfigError"
    assert 'pip install "shoprec[neural]"' in failure["error"]


def test_auc_is_printed_and_written(events_csv, tmp_path):
    out = tmp_path / "res.json"
    r = runner.invoke(app, ["evaluate", "--data", f"csv:{events_csv}", "--strategies", "item_knn", "--k", "5",
                            "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert ", auc 0." in r.output  # the line per strategy
    header = next(line for line in r.output.splitlines() if line.lstrip().startswith("strategy "))
    assert " auc " in header  # the table's column
    assert 0.5 < json.loads(out.read_text())["results"]["item_knn"]["auc"] <= 1.0


def test_default_strategies_follow_the_data_and_say_why(events_csv, tmp_path):
    r = runner.invoke(app, ["evaluate", "--data", f"csv:{events_csv}", "--k", "5", "--json", str(tmp_path / "a.json")])
    assert r.exit_code == 0, r.output
    assert "strategies: popularity, item_knn, ease, als, linear_filter, sequential, session_knn — " in r.output
    assert "events are ordered" in r.output and "choose others with --strategies" in r.output
    assert "session_knn" in json.loads((tmp_path / "a.json").read_text())["results"]

    split = tmp_path / "split"
    split.mkdir()
    (split / "train.txt").write_text("\n".join(f"{u} {u % 5} {(u + 1) % 5} {(u + 2) % 5}" for u in range(12)) + "\n")
    (split / "test.txt").write_text("\n".join(f"{u} {(u + 3) % 5}" for u in range(12)) + "\n")
    r = runner.invoke(app, ["evaluate", "--data", f"lightgcn:{split}", "--k", "2"])
    assert r.exit_code == 0, r.output
    assert "strategies: popularity, item_knn, ease, als, linear_filter — a user×item split without order" in r.output


def test_default_strategies_for_sessions_and_sequences(tmp_path, monkeypatch):
    import importlib.util

    from shoprec.cli import default_strategies
    from shoprec.data.adapters import load

    folder = tmp_path / "sessions"
    folder.mkdir()
    (folder / "train_sessions.txt").write_text("1 2 3\n2 3 4\n3 4 5\n")
    (folder / "test_cases.txt").write_text("1 2\t3\n3\t4\n")
    names, params, why = default_strategies(load(f"sessions:{folder}"), sequential=False)
    assert names[:2] == ["session_knn", "sequential"] and "sessions" in why
    assert params == {"item_knn": {"similarity": "covisit"}}

    seqs = tmp_path / "Beauty.txt"
    seqs.write_text("1 1 2 3\n2 2 3 4\n3 3 4 5\n")
    loaded = load(f"sasrec:{seqs}")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)  # as without torch
    names, _, why = default_strategies(loaded, sequential=True)
    assert names[0] == "sequential" and "sasrec" not in names and 'shoprec[neural]' in why


def test_unknown_strategy_is_refused_before_loading(tmp_path):
    r = runner.invoke(app, ["evaluate", "--data", f"csv:{tmp_path / 'huge.csv'}", "--strategies", "nope"])
    assert r.exit_code == 2 and "unknown strategy 'nope'" in r.output and "huge.csv" not in r.output


def test_a_long_load_report_is_cut_with_a_pointer_to_all_of_it(capsys):
    from shoprec import cli

    class Report:
        def summary(self, examples=None):
            return "\n".join(["f.csv: read 1,000 rows, kept 900, skipped 100"] +
                             [f"  [duplicate_row] f.csv row {i}: exact duplicate of row {i - 1}" for i in range(40)])

    cli._print_report((None, Report()))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 13 and out[0].startswith("f.csv: read 1,000")
    assert out[1].startswith("  [duplicate_row] f.csv row 0")  # the reason in brackets is printed
    assert "29 more lines of the load report" in out[-1] and "-v" in out[-1]


def test_notes_titles_and_reasons_are_printed_as_they_are(capsys):
    from types import SimpleNamespace

    from shoprec import cli

    item = SimpleNamespace(item_id="85123A", title="MUG [BLUE] SET", reason="because you liked [red] things")
    resp = SimpleNamespace(scenario="home", items=[item],
                           notes=['sasrec skipped: install it with pip install "shoprec[neural]"'])
    cli.print_response(resp, {"user_id": "u1"})
    out = capsys.readouterr().out
    assert "MUG [BLUE] SET" in out and "[red] things" in out and 'pip install "shoprec[neural]"' in out


def test_errors_keep_their_brackets(capsys):
    from shoprec import cli
    from shoprec.strategies.sasrec import TORCH_HINT

    cli._error(TORCH_HINT)
    assert 'pip install "shoprec[neural]"' in capsys.readouterr().out


def test_every_finished_step_is_a_line_in_logs(events_csv):
    r = runner.invoke(app, ["evaluate", "--data", f"csv:{events_csv}", "--strategies", "popularity", "--k", "5"])
    assert r.exit_code == 0, r.output
    for line in ("✓ loading csv:", "✓ building the evaluation task in", "  ✓ popularity: fitting in",
                 "  ✓ popularity: ranking 15 items: ", "✓ evaluating 1 strategy on "):
        assert line in r.output, line
