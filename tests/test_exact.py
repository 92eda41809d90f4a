"""linlight reproduces the tutorial bit for bit: every epoch's losses and the final weights equal (==) the
plain PyTorch loop's (tests/plain.py), read back from the TensorBoard files and checkpoints a run wrote."""

import pytest
import torch
from conftest import CONFIGS, linlight, load_ckpt, run_dir, scalars
from plain import plain_loop

from linlight.cli import LinlightCLI

EXPERIMENTS = {
    "v2": ({}, {}),
    "model0": ({"arch": "model0", "epochs": 100}, {}),
    "exercise": ({"arch": "model0", "weight": 0.3, "bias": 0.9, "step": 0.01, "epochs": 300, "test_every": 20}, {}),
}


def check_run(directory, truth, test_every=1):
    logged = scalars(directory)
    train = logged["loss/train"]
    assert [s for s, _ in train] == list(range(len(truth.train_losses)))  # one value per epoch, step = epoch
    assert [v for _, v in train] == truth.train_losses
    val = logged["loss/val"]
    assert [s for s, _ in val] == list(range(test_every - 1, len(truth.train_losses), test_every))
    assert [v for _, v in val] == truth.test_losses
    state = load_ckpt(directory / "checkpoints" / "last.ckpt")["state_dict"]
    learned = [v for k, v in state.items() if k.startswith("model.")]
    assert all(torch.equal(a, b) for a, b in zip(learned, truth.state.values()))
    assert len(learned) == len(truth.state) == 2


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_config_reproduces_plain_loop_in_process(name, tmp_path, fast_args):
    plain_kwargs, _ = EXPERIMENTS[name]
    LinlightCLI(args=["fit", "--config", str(CONFIGS / f"{name}.yaml"), "--trainer.default_root_dir", str(tmp_path),
                      "--trainer.accelerator", "cpu", *fast_args])
    check_run(run_dir(tmp_path), plain_loop(**plain_kwargs), plain_kwargs.get("test_every", 1))


def test_reference_run_as_a_subprocess_reproduces_plain_loop(tmp_path):
    """`linlight fit` with no arguments is the tutorial's V2 experiment, bit for bit."""
    proc = linlight("fit", "--trainer.accelerator", "cpu", cwd=tmp_path)
    truth = plain_loop()
    check_run(run_dir(tmp_path), truth)
    # the tutorial's printed figures, for the record (rounded as printed)
    assert truth.train_losses[0] == pytest.approx(0.5551779866218567, abs=0)
    assert (round(truth.weight, 4), round(truth.bias, 4)) == (0.6968, 0.3025)
    assert "Traceback" not in proc.stderr
