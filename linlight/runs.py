"""Run folders: ``<root>/lightning_logs/version_N/`` with TensorBoard events, ``checkpoints/`` and config.

``claim_version`` creates the next version folder atomically (``mkdir`` either creates it or fails), so
runs started at the same moment in one root never share a folder. ``find_checkpoint`` resolves
``--ckpt_path last`` / ``best`` to a file of the newest run that has one, so a resume continues that run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from linlight.errors import ConfigError, LinlightError

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


def find_checkpoint(root: str | Path, which: str) -> Path:
    """The ``last.ckpt`` (or newest ``best-*.ckpt``) of the newest run under ``root`` that has one."""
    for v in reversed(versions(root)):
        ckpt_dir = runs_dir(root) / f"version_{v}" / "checkpoints"
        if which == "last" and (ckpt_dir / "last.ckpt").is_file():
            return ckpt_dir / "last.ckpt"
        if which == "best" and (best := sorted(ckpt_dir.glob("best*.ckpt"), key=os.path.getmtime)):
            return best[-1]
    raise LinlightError(
        f"no {which} checkpoint found under {runs_dir(root)}: train first with `linlight fit`, or pass "
        "--ckpt_path FILE (and --trainer.default_root_dir if the runs are elsewhere)"
    )


def run_of(ckpt: Path) -> tuple[Path, int] | None:
    """``(root, N)`` if ``ckpt`` lies in ``<root>/lightning_logs/version_N/checkpoints/``, else None."""
    path = Path(ckpt).resolve()
    m = re.fullmatch(r"version_(\d+)", path.parent.parent.name)
    if m and path.parent.name == "checkpoints" and path.parents[2].name == "lightning_logs":
        return path.parents[3], int(m.group(1))
    return None


def run_config(root: str | Path, version: int) -> dict[str, Any] | None:
    """The settings a run was trained with (its saved ``config.yaml``), or None if it has none."""
    path = runs_dir(root) / f"version_{version}" / "config.yaml"
    try:
        saved = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        return None
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
