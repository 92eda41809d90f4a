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
from pathlib import Path
from typing import Any

import yaml

from linlight.checkpoints import next_epoch, read_checkpoint
from linlight.errors import CheckpointError, ConfigError, LinlightError
from linlight.summary import linlight_fit, shell, tool

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
        raise ConfigError(f"cannot create run folder under {d}: {e.strerror}; choose another "
                          "--trainer.default_root_dir") from None


def find_checkpoint(root: str | Path, which: str, subcommand: str = "fit") -> Path:
    """The ``last.ckpt`` (or newest ``best-*.ckpt``) of the newest run under ``root`` that has checkpoints.

    Never another run's, silently: if that run has no best checkpoint, the error says so and why. The file is
    read (``read_checkpoint``): if it is unreadable, the error names it and the newest readable checkpoint,
    with the command that uses that one instead.
    """
    ckpt_dir = _newest_checkpoint_dir(root)
    if ckpt_dir is None:
        raise LinlightError(
            f"no {which} checkpoint found under {runs_dir(root)}: train first with `linlight fit`, or pass "
            "--ckpt_path FILE (and --trainer.default_root_dir if the runs are elsewhere)"
        )
    if which == "last":
        found = ckpt_dir / "last.ckpt"
        if not found.is_file():  # (a run saves last.ckpt with every best one: only if removed by hand)
            raise LinlightError(f"the newest run, {ckpt_dir.parent}, has no last.ckpt; pass --ckpt_path FILE")
    else:
        found = max(ckpt_dir.glob("best*.ckpt"), key=os.path.getmtime, default=None)
    if found is None:
        raise LinlightError(
            f"the newest run, {ckpt_dir.parent}, has no best checkpoint: a best-*.ckpt is saved when a "
            "validation falls on a checkpoint epoch (every --checkpoint.every_n_epochs, 100 by default), so a "
            "shorter run has only last.ckpt; use --ckpt_path last, or an older run's best-*.ckpt by its path"
        )
    try:
        read_checkpoint(found, need_training_state=subcommand == "fit")
    except CheckpointError as e:
        raise CheckpointError(f"{e}; {_alternative(root, found, subcommand)}") from None
    return found


def _newest_checkpoint_dir(root: str | Path) -> Path | None:
    """The checkpoint folder of the newest run that has one checkpoint or more (not, say, an lr_find run)."""
    for v in reversed(versions(root)):
        ckpt_dir = runs_dir(root) / f"version_{v}" / "checkpoints"
        if (ckpt_dir / "last.ckpt").is_file() or any(ckpt_dir.glob("best*.ckpt")):
            return ckpt_dir
    return None


def _alternative(root: str | Path, bad: Path, subcommand: str) -> str:
    """The newest readable checkpoint other than ``bad``: same run first (newest file first), then older runs."""
    def newest_first(folder: Path) -> list[Path]:
        files = [p for p in folder.glob("*.ckpt") if p.is_file() and p != bad]
        return sorted(files, key=os.path.getmtime, reverse=True)

    same_run = newest_first(bad.parent)
    bad_run = run_of(bad)
    bad_version = bad_run[1] if bad_run is not None else None
    older = [runs_dir(root) / f"version_{v}" / "checkpoints" for v in reversed(versions(root))
             if bad_version is None or v < bad_version]
    for path in [*same_run, *(p for d in older for p in newest_first(d))]:
        try:
            ckpt = read_checkpoint(path, need_training_state=subcommand == "fit")
        except CheckpointError:
            continue
        where = "of the same run" if path.parent == bad.parent else "of an older run"
        epochs = f", after {next_epoch(ckpt)} epochs" if "loops" in ckpt else ""
        command = shell([*tool("linlight", "linlight"), subcommand, "--ckpt_path", path.resolve()])
        return f"the newest readable checkpoint is {path} ({where}{epochs}): to use it, run {command}"
    return f"no other readable checkpoint under {runs_dir(root)}: start a new run with {shell(linlight_fit())}"


def run_of(ckpt: Path) -> tuple[Path, int] | None:
    """``(root, N)`` if ``ckpt`` lies in ``<root>/lightning_logs/version_N/checkpoints/``, else None."""
    path = Path(ckpt).resolve()
    m = re.fullmatch(r"version_(\d+)", path.parent.parent.name)
    if m and path.parent.name == "checkpoints" and path.parents[2].name == "lightning_logs":
        return path.parents[3], int(m.group(1))
    return None


def run_config(root: str | Path, version: int) -> dict[str, Any] | None:
    """The settings a run's latest segment trained with (see ``linlight.records``), or None if it has none."""
    from linlight.records import latest_config

    path = latest_config(runs_dir(root) / f"version_{version}")
    if path is None:
        return None
    try:
        saved = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read the run's settings {path}: {e}") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"cannot read the run's settings {path}: not a linlight config")
    return saved


def is_primary_process() -> bool:
    """True in the process that starts a run: not a DDP worker, not a non-zero node or rank.

    Only rank variables decide: ``VERSION_ENV`` may be left over in a process that ran linlight before.
    """
    rank_vars = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")
    return all(int(os.environ.get(k, "0") or 0) == 0 for k in rank_vars)
