"""The worker processes of ``shoprec serve --workers N`` (uvicorn's supervisor, one master that binds
the port and N spawned workers that serve it).

* **Settings and secrets.** The master writes the validated settings, keys included, to a 0600 file
  in a 0700 folder of its own (:func:`write_settings`) and gives the workers only its path
  (``SHOPREC_SETTINGS_FILE``), so that no key is in a worker's environment (``/proc/<pid>/environ``
  is readable by the same user's every process, and copied into core dumps and crash reports). The
  master removes the folder when it stops; a worker that finds its master gone removes it too.
* **Orphans.** A ``kill -9`` of the master runs none of its shutdown: its workers would go on holding
  the listening socket, and a restarted server could not bind the port. Each worker therefore
  asks the kernel for a signal when its parent dies (``prctl(PR_SET_PDEATHSIG)`` on Linux; SIGUSR2,
  which uvicorn leaves to us) and runs a watchdog thread that compares ``os.getppid()`` with the
  master's pid (``SHOPREC_PARENT_PID``) every half second (every OS). Either way the worker removes
  the settings file and shuts down cleanly (SIGTERM to itself, uvicorn's handling: finish the
  requests in flight, flush the impressions, close the store); if that has not ended the process
  after ``grace`` seconds, it exits at once. A master started later removes settings folders whose
  master is gone (every process of a server killed at once).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)

SETTINGS_ENV = "SHOPREC_SETTINGS_FILE"
PARENT_ENV = "SHOPREC_PARENT_PID"
#: settings that must not reach the workers' environment (they read them from the file)
SECRET_ENV = ("SHOPREC_API_KEY", "SHOPREC_PUBLIC_KEY", "SHOPREC_API_KEY_FILE", "SHOPREC_ID_KEY")
PR_SET_PDEATHSIG = 1
CHECK_SECONDS = 0.5
PREFIX = "shoprec-serve-"
#: what the kernel sends a worker when its master dies: a signal uvicorn does not handle, so that
#: ours runs (uvicorn re-raises SIGTERM after its shutdown, which would end the process before any
#: clean-up of ours)
DEATH_SIGNAL = signal.SIGUSR2


def write_settings(settings) -> Path:
    """``settings`` as a 0600 JSON file in a fresh 0700 folder (in memory, /dev/shm, where there is
    one), named after this process. Folders that masters no longer alive left behind (every process
    of theirs killed at once) are removed first."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    sweep_stale(Path(base or tempfile.gettempdir()))
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))   # 0700
    return settings.write_private(folder / "settings.json")


def sweep_stale(base: Path) -> int:
    """Remove this user's settings folders in ``base`` whose master process is gone; how many."""
    removed = 0
    try:
        entries = list(base.glob(f"{PREFIX}*"))
    except OSError:
        return 0
    for d in entries:
        pid = d.name[len(PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or d.stat().st_uid != os.getuid() or _alive(int(pid)):
                continue
        except OSError:
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_settings(path: str | Path | None) -> None:
    """Remove a settings file of :func:`write_settings` and its folder (quietly if gone)."""
    if not path:
        return
    path = Path(path)
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
    if path.parent.name.startswith(PREFIX):
        shutil.rmtree(path.parent, ignore_errors=True)


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent dies. False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def follow_parent(parent_pid: int, *, settings_file: str | None = None, grace: float = 10.0) -> threading.Thread:
    """Make this worker end when the process ``parent_pid`` (its master) is no longer its parent
    (see the module docstring). Call it from the main thread (it installs a signal handler).
    Returns the watchdog thread (a daemon)."""
    orphaned = threading.Event()
    stop = threading.Event()

    def leave(reason: str) -> None:
        if orphaned.is_set():
            return
        orphaned.set()
        remove_settings(settings_file)                 # the keys go first
        log.warning("worker %d: %s; shutting down", os.getpid(), reason)
        os.kill(os.getpid(), signal.SIGTERM)           # uvicorn's clean shutdown

        def deadline() -> None:                        # … or none, if it hangs
            if not stop.wait(grace):
                log.error("worker %d: not stopped %.0f s after its master died; exiting", os.getpid(), grace)
                os._exit(1)

        threading.Thread(target=deadline, name="shoprec-exit-deadline", daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(DEATH_SIGNAL, lambda signum, frame: leave(f"its master process {parent_pid} died"))
        set_parent_death_signal(DEATH_SIGNAL)
    if os.getppid() != parent_pid:                     # died before the kernel could be asked
        leave(f"its master process {parent_pid} is gone")

    def watch() -> None:
        while not orphaned.is_set():
            if os.getppid() != parent_pid:
                leave(f"its master process {parent_pid} is gone")
                return
            if stop.wait(CHECK_SECONDS):
                return

    thread = threading.Thread(target=watch, name="shoprec-parent-watchdog", daemon=True)
    thread.start()
    return thread


def worker_setup() -> str | None:
    """In a worker of ``--workers`` (both variables set by the master): start following the master;
    the settings file's path, or None outside such a worker."""
    path = os.environ.get(SETTINGS_ENV)
    parent = os.environ.get(PARENT_ENV)
    if parent and parent.isdigit():
        follow_parent(int(parent), settings_file=path)
    return path
