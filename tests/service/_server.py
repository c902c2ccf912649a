"""The real server for end-to-end tests: ``shoprec serve`` in a subprocess on a free loopback port.

    with ServerProcess(demo_models, tmp_path / "events.db", log=tmp_path / "server.log") as srv:
        httpx.get(f"{srv.url}/ready")

``start`` returns once ``/ready`` answers 200; ``kill`` is SIGKILL (no shutdown code runs), ``stop``
is a clean SIGTERM. The same object can be started again on the same store and port after either.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .conftest import API_KEY, PUBLIC_KEY


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_command() -> list[str]:
    """``shoprec`` of the interpreter running the tests (the venv's script, or the module)."""
    script = Path(sys.executable).parent / "shoprec"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from shoprec.cli import app; app()"]


class ServerError(RuntimeError):
    """The server did not come up (the message carries the end of its log)."""


class ServerProcess:
    """``shoprec serve --model MODEL --store sqlite:///STORE`` on 127.0.0.1 (see the module doc)."""

    def __init__(self, model: Path, store: Path, *, port: int | None = None, api_key: str = API_KEY,
                 public_key: str = PUBLIC_KEY, log: Path | None = None, extra_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.model = Path(model)
        self.store = Path(store)
        self.port = port or free_port()
        self.api_key = api_key
        self.public_key = public_key
        self.log = Path(log) if log is not None else self.store.with_suffix(".server.log")
        self.extra_args = extra_args
        self.env = dict(env or {})   # SHOPREC_* settings of this test's own
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store_url(self) -> str:
        return f"sqlite:///{self.store}"

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 60.0) -> "ServerProcess":
        """Start the server and wait until ``/ready`` is 200 (ServerError with its log if not)."""
        if self.proc is not None and self.proc.poll() is None:
            raise ServerError("already running")
        # the test decides every setting: no SHOPREC_* of the caller's environment leaks in
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPREC_")}
        env["SHOPREC_WATCH_SECONDS"] = "0"
        env.setdefault("OMP_NUM_THREADS", "1")
        env.update(self.env)
        cmd = serve_command() + ["serve", "--model", str(self.model), "--store", self.store_url,
                                 "--host", "127.0.0.1", "--port", str(self.port), "--api-key", self.api_key,
                                 "--public-key", self.public_key, *self.extra_args]
        with open(self.log, "a") as log:
            log.write(f"\n--- start {self.starts + 1}: {' '.join(cmd)}\n")
            log.flush()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
        self.starts += 1
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60.0) -> dict:
        """The ``/ready`` body once it is 200; ServerError if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise ServerError(f"the server exited with {code} before it was ready:\n{self.log_tail()}")
            try:
                r = httpx.get(f"{self.url}/ready", timeout=2.0)
                if r.status_code == 200:
                    return r.json()
                last = f"{r.status_code} {r.text[:200]}"
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
            time.sleep(0.05)
        raise ServerError(f"/ready not 200 after {timeout:.0f} s (last: {last}):\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: the process dies at once, nothing of its shutdown runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM and wait (SIGKILL after ``timeout``)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
