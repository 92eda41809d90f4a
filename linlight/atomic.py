"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

The bytes go to a hidden temporary file in the same folder (so the rename stays on one filesystem),
are flushed and fsynced, then ``os.replace`` puts the file in place in one step, and the folder is
fsynced so the rename itself survives a power cut. If anything fails, the temporary file is removed
and the old file is untouched. A process killed mid-write leaves only the temporary file, named
``.NAME.HOST.PID.RANDOM.tmp``: it matches no ``*.ckpt`` pattern, and ``remove_stale_temps`` deletes it later.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP_RE = re.compile(r"\.(?P<name>.+)\.(?P<host>[^.]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")


def _host() -> str:
    return socket.gethostname().split(".")[0] or "host"


def temp_path(path: Path) -> Path:
    """A fresh hidden temporary name beside ``path``, saying which host and process writes it."""
    host = _host()
    return path.with_name(f".{path.name}.{host}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(file)`` so that it is replaced in one step or not at all.

    Raises the ``OSError`` of the step that failed (the old file, if any, is then unchanged).
    """
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_text_atomically(path: str | Path, text: str) -> None:
    write_atomically(path, lambda f: f.write(text.encode()))


def fsync_dir(folder: str | Path) -> None:
    """Make a rename in ``folder`` durable; filesystems that cannot fsync a folder are left as they are."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temps(folder: str | Path, any_writer: bool = False) -> list[Path]:
    """Delete temporary files that killed writers left in ``folder``; returns what was removed.

    Without ``any_writer`` only files of dead processes on this host go (another host's writer may still
    be running); with it (the caller holds the run's lock, so no one else writes here) every one goes.
    """
    removed = []
    host = _host()
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = TEMP_RE.fullmatch(p.name)
        if not m:
            continue
        here, pid = m.group("host") == host, int(m.group("pid"))
        if here and pid == os.getpid():  # this process's own write in progress
            continue
        if any_writer or (here and not _alive(pid)):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
