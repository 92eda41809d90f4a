"""data.steps_per_execution: K batches in one Lightning step, K optimizer steps by manual optimization, and
nothing else changed: the same batches in the same order, so every loss, the weights and the checkpoint equal
(==) those of K = 1 and of the plain loop."""

import signal
import time

import pytest
import torch
from conftest import cli, linlight, load_ckpt, run_dir, scalars
from plain import plain_loop
from test_resume import FAST, assert_same_as_plain, start, wait_for

from linlight.data import LineDataModule


def fit(tmp_path, name, *args):
    root = tmp_path / name
    root.mkdir()
    code, _, err = cli("fit", *args, *FAST, cwd=root)
    assert code == 0, err
    return run_dir(root)


def assert_same_checkpoint(a, b):
    a, b = (load_ckpt(run / "checkpoints" / "last.ckpt") for run in (a, b))
    assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"]  # optimizer steps, not Lightning's
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["optimizer_states"] == b["optimizer_states"]


def test_groups_of_k_batches_with_a_short_last_group():
    dm = LineDataModule(batch_size=6, steps_per_execution=3)
    dm.setup("fit")
    groups = list(dm.train_dataloader())
    assert [[len(x) for x, _ in group] for group in groups] == [[6, 6, 6], [6, 6, 6], [4]]  # 7 batches of 40
    assert len(dm.train_dataloader()) == 3
    single = LineDataModule(batch_size=6)
    single.setup("fit")
    flat = [x for group in groups for x, _ in group]
    assert all(torch.equal(a, b) for a, (b, _) in zip(flat, single.train_dataloader(), strict=True))


@pytest.mark.parametrize(
    "args, plain",
    [(["--data.batch_size", "6", "--data.shuffle", "true"], {"batch_size": 6, "shuffle": True}),
     ([], {})],  # full batch: one group of one batch
    ids=["shuffled", "full-batch"],
)
def test_k_steps_equal_one_step_and_the_plain_loop(tmp_path, args, plain):
    one = fit(tmp_path, "k1", *args, "--trainer.max_epochs", "30")
    k = fit(tmp_path, "k3", *args, "--data.steps_per_execution", "3", "--trainer.max_epochs", "30")
    assert scalars(k) == scalars(one)
    assert_same_checkpoint(k, one)
    assert_same_as_plain(k, plain_loop(epochs=30, **plain))


def test_k_can_change_on_resume(tmp_path):
    """K changes no result, so a run may resume with another K."""
    args = ["--data.batch_size", "6", "--data.shuffle", "true", "--checkpoint.every_n_epochs", "10"]
    run = fit(tmp_path, "run", *args, "--data.steps_per_execution", "4", "--trainer.max_epochs", "20")
    code, _, err = cli("fit", "--ckpt_path", "last", "--data.steps_per_execution", "2", "--trainer.max_epochs", "35",
                       *FAST, cwd=run.parents[1])
    assert code == 0, err
    assert_same_as_plain(run, plain_loop(epochs=35, batch_size=6, shuffle=True))


@pytest.mark.parametrize("option", [["--trainer.gradient_clip_val", "0.5"], ["--trainer.accumulate_grad_batches", "2"]])
def test_trainer_options_that_cannot_apply_are_refused(tmp_path, option):
    code, _, err = cli("fit", "--data.steps_per_execution", "4", *option, *FAST, cwd=tmp_path)
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"linlight: error: data.steps_per_execution 4 runs the optimizer inside one Lightning step, where "
        f"{option[0]} {option[1]} cannot apply; leave it out or use data.steps_per_execution 1")


@pytest.mark.slow
def test_k_steps_under_ddp_equal_one_step(tmp_path):
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--data.batch_size", "8", "--data.shuffle", "true",
           "--trainer.max_epochs", "20", *FAST]
    for name, k in (("k1", "1"), ("k3", "3")):
        (tmp_path / name).mkdir()
        linlight("fit", *ddp, "--data.steps_per_execution", k, cwd=tmp_path / name)
    assert scalars(run_dir(tmp_path / "k3")) == scalars(run_dir(tmp_path / "k1"))
    assert_same_checkpoint(run_dir(tmp_path / "k3"), run_dir(tmp_path / "k1"))


@pytest.mark.slow
def test_kill_9_with_k_steps_then_resume(tmp_path):
    args = ["--data.batch_size", "6", "--data.shuffle", "true", "--data.steps_per_execution", "3",
            "--checkpoint.every_n_epochs", "10", "--trainer.max_epochs", "150"]
    proc = start("fit", *args, *FAST, cwd=tmp_path)
    wait_for(run_dir(tmp_path) / "checkpoints" / "last.ckpt", proc)
    time.sleep(0.4)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill: make it longer"
    code, _, err = cli("fit", "--ckpt_path", "last", cwd=tmp_path)
    assert code == 0, err
    assert_same_as_plain(run_dir(tmp_path), plain_loop(epochs=150, batch_size=6, shuffle=True))
