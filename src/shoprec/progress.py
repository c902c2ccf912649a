"""Progress of long steps (fitting a strategy, an epoch loop, an evaluation), told to whoever listens.

Library code marks its long steps and says nothing about how they are shown::

    from shoprec import progress

    with progress.step("fitting sasrec", total=epochs, unit="epoch") as p:
        for epoch in range(epochs):
            ...
            p.advance()

By default nobody listens and a step costs a context-variable lookup. The command line installs a
reporter (rich progress bars with counts and ETA) around what it runs::

    with progress.reporting(reporter):
        Recommender().fit(data)

Steps nest (a scenario's fit contains its strategies' fits); a reporter decides what to show. The
reporter lives in a :class:`contextvars.ContextVar`, so it reaches code run in the same thread (and in
tasks copied from it) and nothing else; a step marked in another thread is silent unless that thread
installs the reporter too. This module imports nothing of shoprec (every layer may use it).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Protocol

__all__ = ["Recorder", "Reporter", "Step", "current", "reporting", "step"]


class Reporter(Protocol):
    """What a display implements: one call when a step starts, as it advances, when it ends."""

    def start(self, description: str, total: float | None, unit: str) -> object:
        """A new step (``total`` None: no known end); returns a handle passed back below."""

    def advance(self, handle: object, amount: float, description: str | None) -> None:
        """``amount`` more of the step done (and, when given, a new description)."""

    def finish(self, handle: object, failed: bool) -> None:
        """The step ended (``failed``: by an exception)."""


_current: ContextVar[Reporter | None] = ContextVar("shoprec_progress", default=None)


def current() -> Reporter | None:
    """The reporter installed in this context, or None."""
    return _current.get()


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[Reporter | None]:
    """Install ``reporter`` for the steps marked inside the block (None: silence them)."""
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)


class Step:
    """A running step: ``advance(n)`` as it goes, ``describe(text)`` to change what it says."""

    __slots__ = ("_reporter", "_handle", "done", "total")

    def __init__(self, reporter: Reporter | None, handle: object, total: float | None) -> None:
        self._reporter = reporter
        self._handle = handle
        self.done = 0.0
        self.total = total

    def advance(self, amount: float = 1.0, description: str | None = None) -> None:
        self.done += amount
        if self._reporter is not None:
            self._reporter.advance(self._handle, amount, description)

    def describe(self, description: str) -> None:
        if self._reporter is not None:
            self._reporter.advance(self._handle, 0.0, description)


@contextmanager
def step(description: str, total: float | None = None, unit: str = "") -> Iterator[Step]:
    """Mark a long step; see the module docstring. Costs nothing when nobody listens."""
    reporter = _current.get()
    handle = reporter.start(description, total, unit) if reporter is not None else None
    s = Step(reporter, handle, total)
    failed = True
    try:
        yield s
        failed = False
    finally:
        if reporter is not None:
            reporter.finish(handle, failed)


class Recorder:
    """A reporter that remembers every step (for tests, of shoprec and of plug-ins): ``steps`` in
    start order, each a dict with ``description`` (as started), ``total``, ``unit``, ``done`` (the sum
    of its advances), ``advances`` (their count), ``depth`` (0 = outermost), ``failed`` (None while
    running) and ``descriptions`` (every new description given)."""

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self._open: list[dict] = []

    def start(self, description: str, total: float | None, unit: str) -> object:
        rec = {"description": description, "total": total, "unit": unit, "done": 0.0, "advances": 0,
               "depth": len(self._open), "failed": None, "descriptions": []}
        self.steps.append(rec)
        self._open.append(rec)
        return rec

    def advance(self, handle: object, amount: float, description: str | None) -> None:
        rec: dict = handle  # type: ignore[assignment]
        rec["done"] += amount
        rec["advances"] += amount != 0
        if description is not None:
            rec["descriptions"].append(description)

    def finish(self, handle: object, failed: bool) -> None:
        rec: dict = handle  # type: ignore[assignment]
        rec["failed"] = failed
        self._open = [r for r in self._open if r is not rec]

    def named(self, prefix: str) -> list[dict]:
        """The steps whose description starts with ``prefix``."""
        return [s for s in self.steps if s["description"].startswith(prefix)]
