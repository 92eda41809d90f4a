"""linlight reproduces the tutorial bit for bit: every epoch's losses and the final weights equal (==) the
plain PyTorch loop's (tests/plain.py), read back from the TensorBoard files and checkpoints a run wrote; the
validation metrics equal their formulas on the plain loop's predictions."""

import pytest
import torch
from conftest import CONFIGS, cli, load_ckpt, run_dir, scalars
from plain import plain_loop

FAST = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false"]


def check_run(run, truth, test_every=1):
    logged = scalars(run)
    train = logged["loss/train"]
    assert [s for s, _ in train] == list(range(len(truth.train_losses)))  # one value per epoch, step = epoch
    assert [v for _, v in train] == truth.train_losses
    val = logged["loss/val"]
    val_steps = list(range(test_every - 1, len(truth.train_losses), test_every))
    assert [s for s, _ in val] == val_steps
    assert [v for _, v in val] == truth.test_losses
    for name in ("mae", "mse", "r2"):  # torchmetrics against the formulas, every validated epoch
        got = logged[f"val/{name}"]
        assert [s for s, _ in got] == val_steps
        want = [m[name] for m in truth.test_metrics]
        assert [v for _, v in got] == pytest.approx(want, rel=1e-6, abs=1e-9), name
    assert logged["val/mae"] == val  # the L1 loss and the MAE of the same predictions: one number
    state = load_ckpt(run / "checkpoints" / "last.ckpt")["state_dict"]
    learned = [v for k, v in state.items() if k.startswith("model.")]
    assert len(learned) == len(truth.state) == 2
    assert all(torch.equal(a, b) for a, b in zip(learned, truth.state.values()))
    assert logged["params/weight"][-1][1] == truth.weight and logged["params/bias"][-1][1] == truth.bias


def test_reference_run_reproduces_the_plain_loop(reference_run):
    """`python scripts/train.py` (the README's main job) is the tutorial's V2 experiment, bit for bit."""
    _, run, _ = reference_run
    check_run(run, plain_loop())
    logged = scalars(run)
    # the tutorial's printed figures, as linlight logged and saved them (rounded as the tutorial prints them)
    assert logged["loss/train"][0][1] == 0.5551779866218567 and logged["loss/val"][0][1] == 0.5739762187004089
    assert logged["loss/train"][200][1] == 0.0012645035749301314
    state = load_ckpt(run / "checkpoints" / "last.ckpt")["state_dict"]
    assert round(state["model.linear_layer.weight"].item(), 4) == 0.6968
    assert round(state["model.linear_layer.bias"].item(), 4) == 0.3025


def test_exercise_reproduces_the_plain_loop(exercise_run):
    check_run(exercise_run[1], plain_loop(arch="model0", weight=0.3, bias=0.9, step=0.01, epochs=300,
                                          test_every=20), test_every=20)


def test_model0_reproduces_the_plain_loop(tmp_path):
    code, _, err = cli("fit", "--config", str(CONFIGS / "model0.yaml"), *FAST, cwd=tmp_path)
    assert code == 0, err
    truth = plain_loop(arch="model0", epochs=100)
    check_run(run_dir(tmp_path), truth)
    assert (round(truth.weight, 4), round(truth.bias, 4)) == (0.5784, 0.3513)  # the tutorial's figures


@pytest.mark.parametrize(
    "args, plain",
    [(["--data.batch_size", "16"], {"batch_size": 16}),  # 40 points: batches of 16, 16 and a short 8
     (["--data.batch_size", "6", "--data.shuffle", "true", "--data.seed", "7"],
      {"batch_size": 6, "shuffle": True, "seed": 7}),  # reshuffled every epoch, the last batch 4
     (["--model.arch", "model0", "--data.batch_size", "7", "--data.shuffle", "true", "--data.step", "0.01"],
      {"arch": "model0", "batch_size": 7, "shuffle": True, "step": 0.01})],
    ids=["in-order", "shuffled", "model0-shuffled"],
)
def test_mini_batches_reproduce_the_plain_loop(tmp_path, args, plain):
    code, _, err = cli("fit", *args, "--trainer.max_epochs", "40", *FAST, cwd=tmp_path)
    assert code == 0, err
    check_run(run_dir(tmp_path), plain_loop(epochs=40, **plain))
