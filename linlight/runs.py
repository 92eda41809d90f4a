"""Run folders: ``<root>/lightning_logs/version_N/`` with TensorBoard events, ``checkpoints/`` and config.

``claim_version`` creates the next version folder atomically (``mkdir`` either creates it or fails), so
runs started at the same moment in one root never share a folder. ``find_checkpoint`` resolves
``--ckpt_path last`` / ``best`` to a file of the newest run that has one, so a resume continues that run.
It reads the file it found: a corrupt one is named with the newest readable checkpoint and the command
that resumes from it, never passed over silently.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from linlight.checkpoints import next_epoch, read_checkpoint
from linlight.errors import CheckpointError, ConfigError, LinlightError

VERSION_ENV = "LINLIGHT_RUN_VERSION"  # hands the chosen version to the processes DDP launches


def runs_dir(root: str | Path) -> Path:
    return Path(root) / "lightning_logs"


def versions(root: str | Path) -> list[int]:
    """Existing version numbers under ``root``, oldest first."""
    d = runs_dir(root)
    if not d.is_dir():
        return []
    found = (re.fullmatch(r"version_(\d+)", p.name) for p in d.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def claim_version(root: str | Path) -> int:
    """Create and return the next free ``version_N`` folder; fail early if the root is not writable."""
    d = runs_dir(root)
    try:
        d.mkdir(parents=True, exist_ok=True)
        v = max(versions(root), default=-1) + 1
        while True:
            try:
                (d / f"version_{v}").mkdir()
                return v
            except FileExistsError:
                v += 1
    except PermissionError:
        raise ConfigError(
            f"cannot write to {d}: permission denied; choose another --trainer.default_root_dir"
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot create run folder under {d}: {e.strerror}") from None


def find_checkpoint(root: str | Path, which: str, subcommand: str = "fit") -> Path:
    """The ``last.ckpt`` (or newest ``best-*.ckpt``) of the newest run under ``root`` that has one.

    The file is read (``read_checkpoint``): if it is unreadable, the error names it and the newest
    readable checkpoint, with the command that uses that one instead.
    """
    found = _candidate(root, which)
    if found is None:
        raise LinlightError(
            f"no {which} checkpoint found under {runs_dir(root)}: train first with `linlight fit`, or pass "
            "--ckpt_path FILE (and --trainer.default_root_dir if the runs are elsewhere)"
        )
    try:
        read_checkpoint(found, need_training_state=subcommand == "fit")
    except CheckpointError as e:
        raise CheckpointError(f"{e}; {_alternative(root, found, subcommand)}") from None
    return found


def _candidate(root: str | Path, which: str) -> Path | None:
    for v in reversed(versions(root)):
        ckpt_dir = runs_dir(root) / f"version_{v}" / "checkpoints"
        if which == "last" and (ckpt_dir / "last.ckpt").is_file():
            return ckpt_dir / "last.ckpt"
        if which == "best" and (best := sorted(ckpt_dir.glob("best*.ckpt"), key=os.path.getmtime)):
            return best[-1]
    return None


def _alternative(root: str | Path, bad: Path, subcommand: str) -> str:
    """The newest readable checkpoint other than ``bad``: same run first (newest file first), then older runs."""
    def newest_first(folder: Path) -> list[Path]:
        files = [p for p in folder.glob("*.ckpt") if p.is_file() and p != bad]
        return sorted(files, key=os.path.getmtime, reverse=True)

    same_run = newest_first(bad.parent)
    bad_version = run_version_of(bad)
    older = [runs_dir(root) / f"version_{v}" / "checkpoints" for v in reversed(versions(root))
             if bad_version is None or v < bad_version]
    for path in [*same_run, *(p for d in older for p in newest_first(d))]:
        try:
            ckpt = read_checkpoint(path, need_training_state=subcommand == "fit")
        except CheckpointError:
            continue
        where = "of the same run" if path.parent == bad.parent else "of an older run"
        epochs = f", after {next_epoch(ckpt)} epochs" if "loops" in ckpt else ""
        return (f"the newest readable checkpoint is {path} ({where}{epochs}): to use it, run "
                f"linlight {subcommand} --ckpt_path {shlex.quote(str(path))} (same arguments)")
    return f"no other readable checkpoint under {runs_dir(root)}: start a new run with linlight fit"


def resume_command(ckpt: Path, root: str | Path) -> str:
    """The command that continues from ``ckpt``: ``--ckpt_path last`` when that finds it, else its path."""
    found = _candidate(root, "last")
    use = "last" if found is not None and found.resolve() == ckpt.resolve() else shlex.quote(str(ckpt))
    return f"linlight fit --ckpt_path {use} (same arguments)"


def run_version_of(ckpt: Path) -> int | None:
    """N if ``ckpt`` lies in ``.../lightning_logs/version_N/checkpoints/``, else None."""
    m = re.fullmatch(r"version_(\d+)", ckpt.resolve().parent.parent.name)
    return int(m.group(1)) if m and ckpt.resolve().parent.name == "checkpoints" else None


def is_primary_process() -> bool:
    """True in the process that starts a run: not a DDP worker, not a non-zero node or rank.

    Only rank variables decide: ``VERSION_ENV`` may be left over in a process that ran linlight before.
    """
    rank_vars = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")
    return all(int(os.environ.get(k, "0") or 0) == 0 for k in rank_vars)
