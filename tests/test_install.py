"""linlight as a user who installs it rather than cloning it has it: the shipped configs named from any folder
(``--config model0``, ``--space sweep``), and the wheel installed into a fresh environment running the
reference, a shipped config and the all-together workflow from an empty folder, with no repository in reach.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, REPO, cli, load_ckpt, run_dir, scalars
from plain import plain_loop
from test_exact import check_run

FAST = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"]


# the shipped configs, by name -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["model0", "model0.yaml"])
def test_a_shipped_config_by_name_from_an_empty_folder(tmp_path, name):
    code, _, err = cli("fit", "--config", name, *FAST, cwd=tmp_path)
    assert code == 0, err
    check_run(run_dir(tmp_path), plain_loop(arch="model0", epochs=100))  # model0.yaml's 100 epochs of model 0


def test_every_form_of_the_config_flag_names_a_shipped_config(tmp_path):
    for form in (["--config=exercise"], ["-c", "exercise.yaml"]):
        code, out, err = cli("fit", *form, "--print_config", cwd=tmp_path)
        assert code == 0, err
        assert "weight: 0.3" in out and "bias: 0.9" in out, form  # the exercise's line, not the reference's


def test_a_file_of_that_name_in_the_current_folder_comes_first(tmp_path):
    (tmp_path / "model0.yaml").write_text("trainer:\n  max_epochs: 3\n")
    code, _, err = cli("fit", "--config", "model0.yaml", *FAST, cwd=tmp_path)
    assert code == 0, err
    assert len(scalars(run_dir(tmp_path))["loss/train"]) == 3
    assert load_ckpt(run_dir(tmp_path) / "checkpoints" / "last.ckpt")["hyper_parameters"]["arch"] == "v2"


def test_an_unknown_config_name_is_one_line_that_lists_the_shipped_ones(tmp_path):
    code, out, err = cli("fit", "--config", "modell0", *FAST, cwd=tmp_path)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"linlight: error: config modell0: no such file here ({tmp_path}), and linlight ships no config of that "
        "name (shipped: exercise, model0, sweep, v2; a file elsewhere: give its path)"]
    assert not (tmp_path / "lightning_logs").exists()


def test_the_shipped_search_space_by_name(tmp_path):
    from linlight.sweep.command import parse_args

    sweep = parse_args(["--space", "sweep", "--root", str(tmp_path)])
    assert sweep.space.path == CONFIGS / "sweep.yaml" and sweep.study == "sweep"
    assert sweep.space.configs == (str(CONFIGS / "exercise.yaml"),)  # its own config, found beside it


EXTRAS = ("onnx", "onnxruntime", "onnxscript", "optuna", "optuna_integration")  # export and sweep


def test_without_the_extras_the_workflow_trains_tests_plots_and_saves_the_state_dict(tmp_path):
    """`pip install linlight` alone: the extras' packages cannot be imported, and the all-together workflow still
    runs, leaving out model.onnx and saying how to get it."""
    block = "; ".join(f"sys.modules[{name!r}] = None" for name in EXTRAS)  # `import onnx` raises ImportError
    code = (f"import sys; {block}; sys.argv = ['linlight.train', '--trainer.max_epochs', '5', *{FAST!r}]; "
            "from linlight.train import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "onnx         not exported (pip install linlight[export])" in proc.stdout
    made = {p.name for p in run_dir(tmp_path).iterdir()}
    assert {"model.pth", "predictions.png", "loss_curves.png"} <= made and "model.onnx" not in made


# the wheel, installed elsewhere ----------------------------------------------------------------------------

def run(command: list, cwd: Path, timeout: float = 600) -> str:
    """A command with none of this checkout on its paths: its output, or a failure that shows it."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{command} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def pinned_torch() -> str:
    """requirements-dev.txt's torch pin (the CPU build this machine has)."""
    (pin,) = re.findall(r"^torch==\S+$", (REPO / "requirements-dev.txt").read_text(), re.M)
    return pin


@pytest.mark.slow
def test_the_wheel_installed_in_a_fresh_environment_runs_from_an_empty_folder(tmp_path):
    """Build the wheel from the tracked files, install it with the pinned CPU torch into a new virtual
    environment, and from an empty folder run the all-together workflow on the reference experiment
    (``python -m linlight.train``) and ``linlight fit --config model0``: both equal the plain loop."""
    source = tmp_path / "source"
    tracked = run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO).split("\n")
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp_path / "dist", source],
        cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("linlight-*.whl")
    assert f"`dist/{wheel.name}`" in (REPO / "README.md").read_text()  # the file the README's Install names
    env = tmp_path / "env"
    run([sys.executable, "-m", "venv", env], cwd=tmp_path)
    python = env / "bin" / "python"
    # as the README's Install says: the CPU build of torch first (here: the pinned one), then linlight, which keeps it
    run([python, "-m", "pip", "install", "--quiet", pinned_torch()], cwd=tmp_path)
    run([python, "-m", "pip", "install", "--quiet", f"{wheel}[export]"], cwd=tmp_path)
    shutil.rmtree(source)  # nothing of the repository is left to find

    work = tmp_path / "empty"
    work.mkdir()
    where = run([python, "-c", "import linlight.configs, torch; print(linlight.configs.FOLDER, torch.__version__)"],
                cwd=work).split()
    assert Path(where[0]).is_relative_to(env) and where[1] == torch.__version__  # the installed copy, the CPU build

    out = run([python, "-m", "linlight.train"], cwd=work)  # the reference, all together
    reference = run_dir(work)
    check_run(reference, plain_loop())
    assert {"model.pth", "model.onnx", "predictions.png", "loss_curves.png"} <= {p.name for p in reference.iterdir()}
    assert f"train more   {python} -m linlight.train --ckpt_path {reference / 'checkpoints' / 'last.ckpt'}" in out

    run([env / "bin" / "linlight", "fit", "--config", "model0", "--trainer.enable_progress_bar", "false"], cwd=work)
    check_run(run_dir(work, 1), plain_loop(arch="model0", epochs=100))
    state = load_ckpt(run_dir(work, 1) / "checkpoints" / "last.ckpt")["state_dict"]
    assert set(state) == {"model.weights", "model.bias"}
