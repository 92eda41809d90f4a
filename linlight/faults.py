"""Faults a run meets, said in one line: what failed, what is safe, and the command that continues.

- a write that fails (no space, quota, read-only folder, I/O error): ``WriteFailed`` from linlight's own
  writers (checkpoints, events, records), or a plain ``OSError`` from anywhere else in the run;
- a DDP peer that died or stopped responding: gloo/NCCL raise a ``RuntimeError`` (or a ``DistError``)
  such as "Connection reset by peer" or "Timed out waiting 60000ms for recv operation".

``explain`` runs in ``RunCheckpoint.on_exception`` (Lightning's hook for a failed fit, on every rank),
where the run's checkpoint folder is known: it attaches the resume hint. ``user_error`` is what the CLI
prints. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

from linlight.checkpoints import checkpoint_summary
from linlight.errors import LinlightError, RunFault, WriteFailed
from linlight.summary import linlight_fit, resume_command

WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG}
FIXES = {errno.ENOSPC: "free space", errno.EDQUOT: "free space (disk quota exceeded)", errno.EIO: "check the disk"}
_PEER = re.compile(
    r"gloo|nccl|connection (reset|closed|refused)|broken pipe|timed out waiting|socket timeout|"
    r"recvValue|tcpstore|watchdog caught collective|pair closure", re.IGNORECASE)
_ATTR = "linlight_error"  # the one-line error attached to an exception by ``explain``


def user_error(exc: BaseException, distributed: bool | None = None) -> LinlightError | None:
    """The one-line error for ``exc``, or None if it is not a fault a run meets (a bug: keep the traceback)."""
    attached = getattr(exc, _ATTR, None)
    if attached is not None:
        return attached
    if isinstance(exc, LinlightError):
        return exc
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        return WriteFailed("write", exc.filename or "the run's files", exc)
    if distributed is not False and _is_peer_failure(exc):
        return RunFault(f"lost contact with another DDP process, which died or stopped responding ({_gist(exc)})")
    return None


def explain(exc: BaseException, ckpt_dir: str | Path | None, root: str | Path, distributed: bool) -> None:
    """Attach to ``exc`` its one-line error with what is safe and how to continue (never raises)."""
    try:
        error = user_error(exc, distributed)
        if isinstance(error, RunFault) and error.hint is None and ckpt_dir is not None:
            error.hint = resume_hint(Path(ckpt_dir), Path(root), getattr(error, "errno", None))
        if error is not None and error is not exc:
            setattr(exc, _ATTR, error)
    except Exception:  # an explanation must never hide the fault itself
        pass


def resume_hint(ckpt_dir: Path, root: Path, err: int | None = None) -> str:
    """What is intact and the command that continues, e.g. after a full disk: "free space, then ..."."""
    fix = FIXES.get(err) if err is not None else None
    if err in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = f"make {ckpt_dir} writable"
    then = f"{fix}, then " if fix else ""
    last = ckpt_dir / "last.ckpt"
    saved = checkpoint_summary(last) if last.is_file() else None
    if saved is None:
        return f"no checkpoint of this run was saved yet: {then}start it again"
    return f"the previous last.ckpt ({saved}) is intact: {then}continue with: {resume_command(linlight_fit(), last)}"


def _is_peer_failure(exc: BaseException) -> bool:
    from torch.distributed import DistError

    return isinstance(exc, DistError) or (isinstance(exc, RuntimeError) and bool(_PEER.search(str(exc))))


def _gist(exc: BaseException) -> str:
    """The informative part of a gloo/NCCL message: no source location, no generic advice."""
    text = " ".join(str(exc).split())
    text = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", text)
    text = re.split(r"\. This is typically caused|\. Check the logs", text)[0]
    return text[:200]
