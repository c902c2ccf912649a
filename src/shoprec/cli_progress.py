"""How the command line shows :mod:`shoprec.progress` steps: rich progress bars on a terminal, one
line per finished step elsewhere (CI logs, files, pipes).

On a terminal every running step is a line of its own (nested steps indented under their parent) with
a bar, ``M/N unit`` done, the elapsed time and the time remaining; a finished step leaves one line
(``✓ fitting sasrec: 30/30 epochs in 97.1 s``) and its bar goes. The live display runs only while a
step does, so plain ``console.print`` between steps is untouched.

Elsewhere nothing moves: each finished step prints the same one line, and a step running longer than
``heartbeat`` seconds prints how far it is every ``heartbeat`` seconds, so a long fit in CI shows it
is alive.

Everything printed here is plain text: a step's description is never read as rich markup (a strategy
name or a path with ``[...]`` in it prints as it is).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from rich.console import Console
from rich.progress import (BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

__all__ = ["PlainReporter", "RichReporter", "format_seconds", "make_reporter"]


def format_seconds(seconds: float) -> str:
    """``4.2 s``, ``97 s``, ``12 min 5 s``, ``1 h 3 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _plural(unit: str, n: float) -> str:
    """``epoch`` → ``epochs``, ``query`` → ``queries`` (units are given in the singular)."""
    if not unit or n == 1 or (unit.endswith("s") and unit != "pass"):
        return unit
    if unit.endswith("y") and unit[-2:-1] not in tuple("aeiou"):
        return unit[:-1] + "ies"
    if unit in ("batch", "match", "box", "pass"):
        return unit + "es"
    return unit + "s"


def _count(done: float, total: float | None, unit: str) -> str:
    """``12/30 epochs``, ``1,024/60,858 queries``, ``5 blocks`` (no total), ``""`` (nothing to say)."""
    def n(x: float) -> str:
        return f"{int(x):,}" if abs(x - round(x)) < 1e-9 or x >= 100 else f"{x:,.1f}"

    if total is None:
        return f"{n(done)} {_plural(unit, done)}".strip() if done else ""
    return f"{n(min(done, total))}/{n(total)} {_plural(unit, total)}".strip()


@dataclass(eq=False)  # steps are told apart by identity: two may say the same
class _Running:
    description: str        # what the step says now (library code may change it as it goes)
    total: float | None
    unit: str
    depth: int
    started: float
    done: float = 0.0
    last_line: float = 0.0
    task: TaskID | None = None
    title: str = ""          # what it said when it started: the finished line says that

    def __post_init__(self) -> None:
        self.title = self.title or self.description


class _Base:
    """Bookkeeping shared by both displays: the running steps, their depth, the finished line."""

    def __init__(self, console: Console, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self.clock = clock
        self._lock = threading.RLock()
        self._stack: list[_Running] = []

    def _new(self, description: str, total: float | None, unit: str) -> _Running:
        now = self.clock()
        return _Running(description, total, unit, len(self._stack), now, last_line=now)

    def _line(self, r: _Running, failed: bool) -> Text:
        took = format_seconds(self.clock() - r.started)
        count = _count(r.done, r.total, r.unit)
        mark, style = ("✗", "red") if failed else ("✓", "green")
        text = Text("  " * r.depth)
        text.append(mark, style=style)
        text.append(f" {r.title}")
        text.append(f": {count}" if count else "", style="dim")
        text.append(f" {'failed after' if failed else 'in'} {took}", style="red" if failed else "dim")
        return text

    def _pop(self, r: _Running) -> None:
        self._stack = [x for x in self._stack if x is not r]


class PlainReporter(_Base):
    """No live display: one line per finished step, and every ``heartbeat`` seconds a line for a step
    still running (0 turns those off)."""

    def __init__(self, console: Console, *, heartbeat: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(console, clock=clock)
        self.heartbeat = heartbeat

    def start(self, description: str, total: float | None, unit: str) -> object:
        with self._lock:
            r = self._new(description, total, unit)
            self._stack.append(r)
            return r

    def advance(self, handle: object, amount: float, description: str | None) -> None:
        r: _Running = handle  # type: ignore[assignment]
        with self._lock:
            r.done += amount
            if description is not None:
                r.description = description
            now = self.clock()
            if self.heartbeat and now - r.last_line >= self.heartbeat:
                r.last_line = now
                self.console.print(self._heartbeat_line(r, now), markup=False, highlight=False)

    def _heartbeat_line(self, r: _Running, now: float) -> Text:
        elapsed = now - r.started
        parts = [p for p in (_count(r.done, r.total, r.unit), f"{format_seconds(elapsed)} so far") if p]
        if r.total and 0 < r.done < r.total:
            parts.append(f"about {format_seconds(elapsed / r.done * (r.total - r.done))} to go")
        return Text("  " * r.depth + f"… {r.description}: " + ", ".join(parts))

    def finish(self, handle: object, failed: bool) -> None:
        r: _Running = handle  # type: ignore[assignment]
        with self._lock:
            self._pop(r)
            self.console.print(self._line(r, failed), markup=False, highlight=False)


class _CountColumn(ProgressColumn):
    """``12/30 epochs`` (or only the count when there is no total)."""

    def render(self, task: Task) -> Text:
        return Text(_count(task.completed, task.total, task.fields.get("unit", "")), style="progress.download")


class RichReporter(_Base):
    """Live rich progress bars on a terminal; see the module docstring."""

    def __init__(self, console: Console, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(console, clock=clock)
        self._progress: Progress | None = None

    def _display(self) -> Progress:
        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.fields[label]}", markup=False), BarColumn(bar_width=30),
                _CountColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=self.console, transient=True, refresh_per_second=8)
            self._progress.start()
        return self._progress

    def start(self, description: str, total: float | None, unit: str) -> object:
        with self._lock:
            r = self._new(description, total, unit)
            progress = self._display()
            # tasks are drawn in the order they were added, which is the nesting order of one thread's
            # steps: a nested step's line comes right under its parent's
            r.task = progress.add_task("", total=total, label=self._label(r), unit=unit)
            self._stack.append(r)
            return r

    def _label(self, r: _Running) -> str:
        return "  " * r.depth + r.description

    def advance(self, handle: object, amount: float, description: str | None) -> None:
        r: _Running = handle  # type: ignore[assignment]
        with self._lock:
            r.done += amount
            if description is not None:
                r.description = description
            if self._progress is not None and r.task is not None:
                self._progress.update(r.task, advance=amount, label=self._label(r))

    def finish(self, handle: object, failed: bool) -> None:
        r: _Running = handle  # type: ignore[assignment]
        with self._lock:
            self._pop(r)
            if self._progress is not None and r.task is not None:
                self._progress.remove_task(r.task)
            self.console.print(self._line(r, failed), markup=False, highlight=False)
            if not self._stack and self._progress is not None:
                self._progress.stop()
                self._progress = None


def make_reporter(console: Console, *, heartbeat: float = 30.0) -> PlainReporter | RichReporter:
    """Live bars when ``console`` is a terminal, plain lines otherwise."""
    if console.is_terminal and not console.is_dumb_terminal:
        return RichReporter(console)
    return PlainReporter(console, heartbeat=heartbeat)
