"""One writer per run: the process training a run holds an exclusive lock on ``version_N/.lock``.

``lock_run`` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the lock file and writes the holder's pid and host
into it. The kernel releases the lock when the holder exits, however it exits (kill -9 included), so
the lock never goes stale and is never deleted. A second ``linlight fit`` into the same run fails at once,
before it writes anything, naming the holder. A process that lives on after its command (a script, a
notebook calling ``linlight.cli.main``) releases it when the command ends (``release_all``).

Where the filesystem cannot lock (``ENOLCK``, ``ENOSYS``, ``EOPNOTSUPP``: NFS without a working lock
manager, Lustre mounted without ``-o flock``), the run stops with an error rather than going unguarded:
two writers corrupt a run silently, a refusal costs one command. ``LINLIGHT_RUN_LOCK=off`` trains
without the lock (with a warning) where the user knows no one else writes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
from pathlib import Path

from linlight.errors import ConfigError, RunLocked
from linlight.summary import linlight_fit, resume_command

LOCK_NAME = ".lock"
LOCK_ENV = "LINLIGHT_RUN_LOCK"  # "off": train without the lock where the filesystem has none
UNSUPPORTED = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL}

_held: dict[Path, RunLock] = {}  # the locks this process holds, by run folder


class RunLock:
    """An open, exclusively locked ``.lock`` file; closing it (or exiting) releases the lock."""

    def __init__(self, run_dir: Path, fd: int | None) -> None:
        self.run_dir, self.fd = run_dir, fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if _held.get(self.run_dir) is self:
            del _held[self.run_dir]


def lock_run(run_dir: str | Path) -> RunLock:
    """Lock ``run_dir`` for this process, or raise ``RunLocked`` naming the process that holds it."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _held:  # an earlier fit in this same process (a script, a test): it has ended
        _held[run_dir].release()
    path = run_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise ConfigError(f"cannot lock run {run_dir}: {path}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = _read_holder(fd)
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise RunLocked(
                f"run {run_dir} is being trained by another process ({holder}); a second writer would mix "
                "up its checkpoints and curves: wait for it to end (or stop it with Ctrl-C), then continue "
                f"with: {resume_command(linlight_fit(), Path(run_dir) / 'checkpoints' / 'last.ckpt')}"
            ) from None
        if e.errno in UNSUPPORTED:
            return _unlocked(run_dir, e)
        raise ConfigError(f"cannot lock run {run_dir}: {e.strerror}") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
    except OSError:
        pass  # the lock holds without the note (e.g. a full disk): the note is for people
    lock = _held[run_dir] = RunLock(run_dir, fd)
    return lock


def release_all() -> None:
    """Release every run lock this process holds: its command is over (a script or notebook lives on)."""
    for lock in list(_held.values()):
        lock.release()


def holds_lock(run_dir: str | Path) -> bool:
    """True if this process holds the lock of ``run_dir`` (so no other process writes there)."""
    held = _held.get(Path(run_dir).resolve())
    return held is not None and held.fd is not None


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "pid and host not yet written"


def _unlocked(run_dir: Path, e: OSError) -> RunLock:
    if os.environ.get(LOCK_ENV, "").lower() != "off":
        raise ConfigError(
            f"cannot lock run {run_dir}: the filesystem does not support file locks ({e.strerror}), so linlight "
            f"cannot keep a second process from writing into the run; put the runs on a filesystem that locks "
            f"(--trainer.default_root_dir), or set {LOCK_ENV}=off if you are sure only one process trains it"
        ) from None
    print(f"linlight: warning: training {run_dir} without a lock ({LOCK_ENV}=off): nothing stops a second "
          "writer", file=sys.stderr)
    return RunLock(run_dir, None)
