"""How much of the machine a benchmark had: other processes' CPU use while it ran.

The machine has 2 cores shared with other work; a timing measured while another job ran is inflated.
:class:`CoreShare` measures, over a ``with`` block, the CPU seconds used by every process except this
one (system-wide busy time minus this process's own), so each result can say whether it had the cores
to itself.
"""

from __future__ import annotations

import time

import psutil


def _busy_seconds() -> float:
    t = psutil.cpu_times()
    return sum(getattr(t, f) for f in ("user", "nice", "system", "irq", "softirq", "steal") if hasattr(t, f))


class CoreShare:
    """Context manager: ``other_cores`` = mean number of cores other processes kept busy."""

    def __enter__(self) -> "CoreShare":
        self._proc = psutil.Process()
        self._wall = time.perf_counter()
        self._busy = _busy_seconds()
        self._own = self._own_seconds()
        return self

    def _own_seconds(self) -> float:
        t = self._proc.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def __exit__(self, *exc) -> None:
        wall = max(time.perf_counter() - self._wall, 1e-9)
        other = (_busy_seconds() - self._busy) - (self._own_seconds() - self._own)
        self.other_cores = max(other, 0.0) / wall

    def note(self, threshold: float = 0.2) -> str:
        """A sentence for BENCHMARKS.md when other processes used more than ``threshold`` cores."""
        if self.other_cores < threshold:
            return ""
        return (f"other jobs shared the 2 cores during this run (on average {self.other_cores:.1f} cores busy "
                "with them), so its timings are inflated")
