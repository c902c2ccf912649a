"""The command line's progress display: plain lines in logs, live rich bars on a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from shoprec import progress
from shoprec.cli_progress import PlainReporter, RichReporter, format_seconds, make_reporter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def plain(clock: Clock, heartbeat: float = 30.0) -> tuple[PlainReporter, io.StringIO]:
    out = io.StringIO()
    return PlainReporter(Console(file=out, width=200), heartbeat=heartbeat, clock=clock), out


def test_one_line_per_finished_step_with_count_and_time_nested_ones_indented():
    clock = Clock()
    reporter, out = plain(clock)
    with progress.reporting(reporter):
        with progress.step("evaluating 2 strategies", total=2, unit="strategy") as outer:
            with progress.step("ease [all items]: fitting"):
                clock.now += 4.2
            with progress.step("ease: ranking", total=1000, unit="query") as p:
                p.advance(600)
                p.advance(400, description="ease: ranking, almost there")
                clock.now += 12
            outer.advance(2)
    assert out.getvalue().splitlines() == [
        "  ✓ ease [all items]: fitting in 4.2 s",      # brackets print as they are, no markup
        "  ✓ ease: ranking: 1,000/1,000 queries in 12 s",  # the description it started with
        "✓ evaluating 2 strategies: 2/2 strategies in 16 s",
    ]


def test_a_failed_step_says_so():
    clock = Clock()
    reporter, out = plain(clock)
    try:
        with progress.reporting(reporter), progress.step("sasrec: training", total=30, unit="epoch") as p:
            p.advance(3)
            clock.now += 75
            raise RuntimeError("out of memory")
    except RuntimeError:
        pass
    assert out.getvalue().strip() == "✗ sasrec: training: 3/30 epochs failed after 1 min 15 s"


def test_a_long_step_prints_where_it_is_every_heartbeat():
    clock = Clock()
    reporter, out = plain(clock, heartbeat=30)
    with progress.reporting(reporter), progress.step("sasrec: training", total=10, unit="epoch") as p:
        for _ in range(4):
            clock.now += 20
            p.advance()
    lines = out.getvalue().splitlines()
    assert lines[0] == "… sasrec: training: 2/10 epochs, 40 s so far, about 2 min 40 s to go"
    assert lines[1] == "… sasrec: training: 4/10 epochs, 1 min 20 s so far, about 2 min 0 s to go"
    assert lines[2] == "✓ sasrec: training: 4/10 epochs in 1 min 20 s" and len(lines) == 3


def test_terminal_shows_live_bars_and_leaves_the_finished_lines():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    reporter = make_reporter(console)
    assert isinstance(reporter, RichReporter)
    with progress.reporting(reporter):
        with progress.step("evaluating", total=2, unit="strategy") as outer:
            with progress.step("item_knn: ranking", total=100, unit="query") as p:
                p.advance(50)
                assert reporter._progress is not None and len(reporter._progress.tasks) == 2
                # nested steps are lines of their own, the inner one under the outer one
                labels = [t.fields["label"] for t in reporter._progress.tasks]
                assert labels == ["evaluating", "  item_knn: ranking"]
                p.advance(50)
            outer.advance(2)
        assert reporter._progress is None  # the live display stops with the last step
        console.print("between steps")
    text = out.getvalue()
    assert "✓ item_knn: ranking: 100/100 queries in" in text and "✓ evaluating: 2/2 strategies in" in text
    assert text.rstrip().endswith("between steps")


def test_not_a_terminal_gets_plain_lines():
    assert isinstance(make_reporter(Console(file=io.StringIO())), PlainReporter)


def test_format_seconds():
    assert [format_seconds(x) for x in (0.04, 9.96, 42.4, 3725, 60)] == \
        ["0.0 s", "10.0 s", "42 s", "1 h 2 min", "1 min 0 s"]
