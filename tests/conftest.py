"""Shared helpers: run the CLI as a user does, and read back what a run wrote."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from unittest.mock import patch

import pytest
import torch

try:
    from contextlib import chdir
except ImportError:  # Python 3.10 (contextlib.chdir is 3.11's)

    @contextmanager
    def chdir(path):
        before = os.getcwd()
        os.chdir(path)
        try:
            yield
        finally:
            os.chdir(before)

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


def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run ``linlight ARGS`` in this process (as ``linlight.cli.main``), from ``cwd``: (exit code, stdout, stderr).

    For tests about what the command does, not about it being a process; faster by the start-up's seconds.
    """
    from linlight.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with chdir(cwd), redirect_stdout(out), redirect_stderr(err), patch.object(sys, "argv", ["linlight"]):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def exercise_run(tmp_path_factory) -> tuple[Path, Path]:
    """The tutorial's exercise (linlight/configs/exercise.yaml) trained once: (root, run folder)."""
    root = tmp_path_factory.mktemp("exercise")
    code, _, err = cli("fit", "--config", str(CONFIGS / "exercise.yaml"), "--trainer.accelerator", "cpu",
                       "--trainer.enable_progress_bar", "false", cwd=root)
    assert code == 0, err
    return root, run_dir(root)


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> tuple[Path, Path, str]:
    """`python scripts/train.py`, exactly as the README's first command runs it: (root, run folder, stdout)."""
    root = tmp_path_factory.mktemp("reference")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py")], cwd=root, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return root, run_dir(root), proc.stdout


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, the tests that read one shared run go to one worker, which makes the run once."""
    for item in items:
        shared = [name for name in ("reference_run", "exercise_run") if name in getattr(item, "fixturenames", ())]
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))
