"""Shared helpers: run the CLI as a user does, and read back what a run wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "linlight" / "configs"
sys.path.insert(0, str(Path(__file__).parent))


def linlight(*args: str, cwd: Path, check: bool = True, timeout: float = 300, env: dict | None = None):
    """Run ``linlight ARGS`` in a subprocess, as a user would; returns the CompletedProcess."""
    cmd = [sys.executable, "-m", "linlight.cli", *args]
    full_env = {**os.environ, "PYTHONWARNINGS": "default", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"linlight {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series in a run folder as TensorBoard itself reads it (purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def run_dir(root: Path, version: int = 0) -> Path:
    return root / "lightning_logs" / f"version_{version}"


@pytest.fixture
def fast_args() -> list[str]:
    return ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
