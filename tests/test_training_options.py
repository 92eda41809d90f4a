"""Early stopping (--early_stopping.patience) and the learning-rate finder (linlight lr_find).

Early stopping is checked against its rule written out in the plain PyTorch loop (tests/plain.py,
``EarlyStop``): the same epochs, the same values, the same stop; the learning-rate finder by training with
what it suggests.
"""

import re
import shlex
import sys

import pytest
import torch
import yaml
from conftest import CONFIGS, cli, load_ckpt, run_dir, scalars
from PIL import Image
from plain import plain_loop
from test_exact import check_run

from linlight.data import LineDataModule
from linlight.module import LitLinearRegression
from linlight.tuning import LinlightTrainer

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu"]
STATE_KEY = "RunEarlyStopping{'monitor': 'loss/val', 'mode': 'min'}"


def fit(cwd, *args):
    code, out, err = cli("fit", *args, *FAST, cwd=cwd)
    assert code == 0, err
    return out


def stopped_at(out: str) -> int:
    return int(re.search(r"stopped      early at epoch (\d+): loss/val did not improve", out).group(1))


# --- early stopping ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, plain",
    [(["--early_stopping.patience", "20"], {"patience": 20}),  # the reference: loss/val turns up after epoch 43
     (["--early_stopping.patience", "5", "--early_stopping.min_delta", "0.001", "--data.batch_size", "6",
       "--data.shuffle", "true"], {"patience": 5, "min_delta": 0.001, "batch_size": 6, "shuffle": True}),
     (["--config", str(CONFIGS / "exercise.yaml"), "--early_stopping.patience", "2", "--early_stopping.min_delta",
       "0.02"], {"arch": "model0", "weight": 0.3, "bias": 0.9, "step": 0.01, "test_every": 20, "patience": 2,
                 "min_delta": 0.02})],  # validated every 20 epochs: the check runs after validation
    ids=["reference", "shuffled-min-delta", "exercise-every-20"],
)
def test_early_stopping_stops_where_the_plain_rule_does(tmp_path, args, plain):
    out = fit(tmp_path, *args, "--trainer.max_epochs", "300")
    truth = plain_loop(epochs=300, **plain)
    assert truth.stopped_epoch is not None and truth.stopped_epoch < 299, "the rule must stop this run early"
    check_run(run_dir(tmp_path), truth, test_every=plain.get("test_every", 1))  # every epoch up to the stop, ==
    assert stopped_at(out) == truth.stopped_epoch
    assert f"for {plain['patience']} validations in a row" in out
    assert f"trained LinearRegressionModel{'V2' * ('arch' not in plain)} for {truth.stopped_epoch + 1} epochs" in out
    state = load_ckpt(run_dir(tmp_path) / "checkpoints" / "last.ckpt")["callbacks"][STATE_KEY]
    assert state["wait_count"] == plain["patience"] and state["stopped_epoch"] == truth.stopped_epoch
    assert "train more" in out and f"--early_stopping.patience {2 * plain['patience']}" in out


def test_early_stopping_is_off_by_default(exercise_run):
    _, run = exercise_run
    callbacks = load_ckpt(run / "checkpoints" / "last.ckpt")["callbacks"]
    assert not any("EarlyStopping" in key for key in callbacks)  # not in the Trainer at all


@pytest.mark.parametrize("args, words", [(["--early_stopping.patience", "0"], "early_stopping.patience must be a "
                                                                                "positive integer (or null: off)"),
                                         (["--early_stopping.patience", "3", "--early_stopping.min_delta", "-1"],
                                          "early_stopping.min_delta must be zero or a positive number"),
                                         (["--early_stopping.patience", "3", "--trainer.limit_val_batches", "0"],
                                          "early stopping watches loss/val")],
                         ids=["patience-0", "negative-min-delta", "no-validation"])
def test_impossible_early_stopping(tmp_path, args, words):
    code, out, err = cli("fit", *args, *FAST, cwd=tmp_path)
    assert code == 1 and "Traceback" not in out + err
    assert err.strip().splitlines()[-1].startswith("linlight: error: ") and words in err


def test_resumes_keep_the_early_stopping_state(tmp_path):
    """Stopped by max_epochs while waiting, then resumed: it stops where an uninterrupted run does. A run that
    stopped early stays stopped when resumed; with more patience it goes on as a run with that patience would."""
    fit(tmp_path, "--early_stopping.patience", "20", "--trainer.max_epochs", "50")
    state = load_ckpt(run_dir(tmp_path) / "checkpoints" / "last.ckpt")["callbacks"][STATE_KEY]
    assert 0 < state["wait_count"] < 20, "the run must end mid-wait"
    out = fit(tmp_path, "--ckpt_path", "last", "--trainer.max_epochs", "300")
    truth = plain_loop(epochs=300, patience=20)
    check_run(run_dir(tmp_path), truth)
    assert stopped_at(out) == truth.stopped_epoch
    out = fit(tmp_path, "--ckpt_path", "last")  # the run's own settings: nothing more to do
    assert stopped_at(out) == truth.stopped_epoch
    check_run(run_dir(tmp_path), truth)
    out = fit(tmp_path, "--ckpt_path", "last", "--early_stopping.patience", "40")  # what "train more" prints
    more = plain_loop(epochs=300, patience=40)
    check_run(run_dir(tmp_path), more)
    assert stopped_at(out) == more.stopped_epoch > truth.stopped_epoch


# --- the learning-rate finder ------------------------------------------------------------------------------


def lr_find(cwd, *args) -> tuple[float, str]:
    code, out, err = cli("lr_find", *args, *FAST, cwd=cwd)
    assert code == 0, err
    assert "Traceback" not in err
    return float(re.search(r"suggested    model\.lr (\S+)", out).group(1)), out


def test_lr_find_suggests_a_rate_that_trains(tmp_path):
    """The search runs under a relative root; its printed `linlight fit` command, run from another folder,
    trains beside it (the root is in the command, absolute) with the suggested rate, to a low loss."""
    root = tmp_path / "runs"
    lr, out = lr_find(tmp_path, "--data.noise_std", "0.05", "--trainer.default_root_dir", "runs")
    run = run_dir(root)
    assert 1e-6 < lr < 1
    assert f"plot         {run / 'lr_find.png'}" in out
    with Image.open(run / "lr_find.png") as image:
        assert image.format == "PNG" and image.size[0] >= 400
        assert (255, 0, 0) in {c for _, c in image.convert("RGB").getcolors(1_000_000)}  # the suggestion's dot
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Images("lr_find/loss_vs_lr")] == [0]
    assert not (run / "checkpoints").exists() and not list(tmp_path.glob(".lr_find*"))
    assert len((run / "lr_find.csv").read_text().splitlines()) == 1 + 100  # --num_training's default: 100 steps
    config = yaml.safe_load((run / "config.yaml").read_text())  # the search's own settings
    assert config["data"]["init_args"]["noise_std"] == 0.05 and config["num_training"] == 100
    # the printed command, run as printed from another folder (in this process): it trains beside the search
    words = shlex.split(re.search(r"  train        (.+)", out).group(1))
    assert words[:2] == [f"{sys.prefix}/bin/linlight", "fit"]
    args = words[2:]
    assert dict(zip(args[::2], args[1::2])) == {"--model.lr": f"{lr:.3g}", "--data.noise_std": "0.05",
                                                "--trainer.accelerator": "cpu",
                                                "--trainer.enable_progress_bar": "false",
                                                "--trainer.default_root_dir": str(root)}  # what lr_find was given
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    fit(elsewhere, *args, "--trainer.max_epochs", "200")
    assert not (elsewhere / "lightning_logs").exists()
    losses = [v for _, v in scalars(run_dir(root, 1))["loss/val"]]
    assert losses[-1] < 0.1 * losses[0] and min(losses) < 0.05
    # another search later does not get in the way of the trained run: it has no checkpoints
    lr_find(tmp_path, "--num_training", "20", "--trainer.default_root_dir", "runs")
    code, _, err = cli("test", "--trainer.default_root_dir", "runs", *FAST, cwd=tmp_path)
    assert code == 0 and f"using checkpoint {run_dir(root, 1) / 'checkpoints' / 'last.ckpt'}" in err


def test_lr_find_plots_the_losses_it_measured(tmp_path):
    """lr_find.png is drawn from lr_find.csv: each step's learning rate and the training loss of that step, as
    a plain PyTorch loop measures it when it trains with those rates, from the first step on (not Lightning's
    smoothed curve, which starts at half the initial loss)."""
    lr_find(tmp_path, "--num_training", "40")
    rows = (run_dir(tmp_path) / "lr_find.csv").read_text().splitlines()
    assert rows[0] == "lr,loss" and len(rows) == 41
    steps = [tuple(map(float, row.split(","))) for row in rows[1:]]
    assert steps[0][1] == plain_loop(epochs=1).train_losses[0]  # the untrained model's loss: 0.555
    lrs = [lr for lr, _ in steps]  # growing from --min_lr 1e-6 to --max_lr 1 (the defaults)
    assert lrs[0] == 1e-6 and lrs[-1] == pytest.approx(1.0, rel=1e-12) and lrs == sorted(set(lrs))
    X = torch.arange(0, 1, 0.02).unsqueeze(1)
    X, y = X[:40], 0.7 * X[:40] + 0.3
    torch.manual_seed(42)
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for lr, logged in steps:  # full batch: one step per learning rate
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = torch.nn.L1Loss()(model(X), y)
        assert loss.item() == logged
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_lr_find_restores_the_initial_weights(tmp_path):
    torch.manual_seed(42)
    model = LitLinearRegression()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = LinlightTrainer(max_epochs=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                              accelerator="cpu", default_root_dir=tmp_path)
    lr = trainer.lr_find(model, datamodule=LineDataModule(), num_training=30)
    assert len(trainer.lr_finder.results["lr"]) == 30  # 30 full-batch steps, though max_epochs is 5
    assert trainer.fit_loop.max_epochs == 5 and 1e-6 <= lr <= 1
    assert all(torch.equal(v, initial[k]) for k, v in model.state_dict().items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr_find.csv", "lr_find.png"]  # its checkpoint removed


@pytest.mark.parametrize("args, words", [(["--min_lr", "0"], "lr_find needs 0 < --min_lr < --max_lr"),
                                         (["--min_lr", "0.1", "--max_lr", "0.01"], "lr_find needs 0 < --min_lr"),
                                         (["--num_training", "5"], "--num_training must be at least 13"),
                                         (["--data.steps_per_execution", "2"], "use data.steps_per_execution 1")],
                         ids=["min-lr-0", "min-above-max", "too-few-steps", "k-steps"])
def test_impossible_lr_find(tmp_path, args, words):
    code, out, err = cli("lr_find", *args, *FAST, cwd=tmp_path)
    assert code == 1 and "Traceback" not in out + err
    assert err.strip().splitlines()[-1].startswith("linlight: error: ") and words in err
