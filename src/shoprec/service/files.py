"""Files the service and training create hold a shop's data (events, impressions, the API key, the
models): they are created owner-only, 0600 files in 0700 folders, whatever the umask."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: str | Path) -> Path:
    """``path`` as a folder; the folders created for it (it and its missing parents) are 0700.
    Folders that exist already keep their mode."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)  # mkdir's mode passes through the umask; this does not widen it
    return path


def touch_private(path: str | Path) -> Path:
    """Create ``path`` empty and 0600 if it does not exist (an existing file is left as it is)."""
    path = Path(path)
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    os.close(fd)
    return path


def write_private(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` as a 0600 file, atomically: the content is never readable by
    others, not even for a moment (a temporary 0600 file in the same folder, then renamed)."""
    path = Path(path)
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
    return path


def make_private(root: str | Path) -> None:
    """Every file under ``root`` 0600 and every folder 0700 (``root`` included)."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, DIR_MODE)
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, FILE_MODE)
