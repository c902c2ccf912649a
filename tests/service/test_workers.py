"""``shoprec serve --workers 2`` as a real process tree: the keys reach the workers in a 0600 file, not
in their environment, and a ``kill -9`` of the master takes its workers down (the port is free again
for a restart), instead of leaving orphans that hold the socket."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from ._server import ServerProcess
from .conftest import API_KEY, PUBLIC_KEY, REDIS_URL, require_redis

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _workers(master: int, timeout: float = 30.0) -> list[int]:
    """The master's worker processes (uvicorn spawns them with multiprocessing; skip its helpers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for pid in _children(master):
            try:
                cmd = (Path("/proc") / str(pid) / "cmdline").read_bytes()
            except OSError:
                continue
            if b"resource_tracker" not in cmd:
                found.append(pid)
        if len(found) >= 2:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no two workers under {master}: {_children(master)}")


@pytest.fixture()
def redis_url():
    require_redis()
    return REDIS_URL


def test_kill_9_of_the_master_ends_its_workers_and_keys_stay_out_of_their_environment(demo_models, tmp_path,
                                                                                      redis_url):
    if not Path("/proc/self/environ").exists():
        pytest.skip("needs /proc")
    srv = ServerProcess(demo_models, tmp_path / "events.db", log=tmp_path / "server.log",
                        extra_args=("--workers", "2", "--state-bus", redis_url))
    srv.start(timeout=120)
    try:
        master = srv.proc.pid
        workers = _workers(master)
        for pid in workers:
            env = (Path("/proc") / str(pid) / "environ").read_bytes()
            assert API_KEY.encode() not in env and PUBLIC_KEY.encode() not in env, "a key in a worker's environment"
            assert b"SHOPREC_API_KEY=" not in env
            settings_file = next(v.split(b"=", 1)[1] for v in env.split(b"\0")
                                 if v.startswith(b"SHOPREC_SETTINGS_FILE="))
            path = Path(settings_file.decode())
            assert (path.stat().st_mode & 0o777) == 0o600 and (path.parent.stat().st_mode & 0o777) == 0o700
        # both workers answer, with the key the master was given
        r = httpx.post(f"{srv.url}/v1/events", json={"events": [{"user_id": "w", "item_id": "85123A"}]},
                       headers={"X-API-Key": API_KEY}, timeout=10)
        assert r.status_code == 200, r.text

        os.kill(master, signal.SIGKILL)
        srv.proc.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "workers outlived their master"
        assert not path.parent.exists(), "the settings file (with the keys) was left behind"
        # a restart on the same port binds it and serves (no orphan holds the socket)
        srv.start(timeout=120)
        assert httpx.post(f"{srv.url}/v1/recommendations/home", json={"k": 3}, timeout=10).status_code == 200
    finally:
        srv.stop()
