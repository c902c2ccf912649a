"""`shoprec demo` run twice: the second run reuses the stored evaluation and model and is serving within
seconds. A small configuration (three quick scenarios, one strategy evaluated) keeps the cost low."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

SMALL = ["--scenarios", "cart,first_visit,search", "--strategies", "popularity"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shoprec(*args: str) -> list[str]:
    return [sys.executable, "-m", "shoprec", *args]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, str]:
    """The first run: evaluate, train, answer every page, no serving."""
    home = tmp_path_factory.mktemp("demo") / "shoprec-demo"
    out = subprocess.run(shoprec("demo", "--no-serve", "--dir", str(home), *SMALL), capture_output=True,
                         text=True, timeout=300, env={**os.environ, "COLUMNS": "160"})
    assert out.returncode == 0, out.stdout + out.stderr
    return home, out.stdout


def test_first_run_evaluates_trains_and_stores_both(first_run):
    home, output = first_run
    assert "evaluating 1 strategy" in output and "wrote model" in output
    assert (home / "evaluation.json").is_file() and (home / "models" / "CURRENT").is_file()


@pytest.mark.slow
def test_second_run_reuses_everything_and_serves_within_15_s(first_run, tmp_path):
    home, _ = first_run
    port = free_port()
    log = tmp_path / "second.log"
    start = time.monotonic()
    with log.open("w") as f:
        proc = subprocess.Popen(shoprec("demo", "--dir", str(home), "--port", str(port), *SMALL), stdout=f,
                                stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "160"})
    try:
        ready = None
        while time.monotonic() - start < 60 and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                    if r.status == 200:
                        ready = time.monotonic() - start
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    output = log.read_text()
    assert ready is not None, output
    assert "reused from" in output and "--reevaluate computes it again" in output
    assert "using the trained model" in output and "Training" not in output
    assert ready < 15, f"serving after {ready:.1f} s\n{output}"


def test_evaluation_is_reused_only_for_the_same_data_and_settings(first_run, capsys):
    from shoprec.cli import _demo_evaluation, _evaluation_key
    from shoprec.data.adapters import load_online_retail
    from shoprec.demo_data import DEMO_PATH
    from shoprec.testing import tiny_shop

    home, _ = first_run
    data, report = load_online_retail(DEMO_PATH)
    capsys.readouterr()
    _demo_evaluation(data, report, home, ["popularity"], (10, 20), None, reevaluate=False)
    assert "reused from" in capsys.readouterr().out
    _demo_evaluation(data, report, home, ["popularity"], (5,), None, reevaluate=False)  # another K
    out = capsys.readouterr().out
    assert "other data or settings: evaluating again" in out and "popularity: recall@5" in out
    _demo_evaluation(data, report, home, ["popularity"], (5,), None, reevaluate=True)
    assert "reused" not in capsys.readouterr().out
    assert _evaluation_key(data, ["popularity"], {}, "temporal", (10,)) != \
        _evaluation_key(tiny_shop(), ["popularity"], {}, "temporal", (10,))
    _demo_evaluation(data, report, home, ["popularity"], (10, 20), None, reevaluate=False)  # as the fixture had it


def test_a_model_of_other_scenarios_is_not_reused(first_run, capsys):
    from shoprec.cli import _reusable_model, _scenario_configs
    from shoprec.data.adapters import load_online_retail
    from shoprec.demo_data import DEMO_PATH

    home, _ = first_run
    data, _ = load_online_retail(DEMO_PATH)
    assert _reusable_model(home / "models", data, _scenario_configs("cart,first_visit,search", False)) is not None
    assert _reusable_model(home / "models", data, _scenario_configs("cart,search", False)) is None
    assert "other scenarios or strategies than this run asks for (first_visit)" in capsys.readouterr().out
