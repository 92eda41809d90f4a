"""Stopping and resuming you can trust: Ctrl-C, SIGTERM and kill -9, each continued exactly.

Every resumed run is compared with the plain PyTorch loop (tests/plain.py) over all its epochs: each epoch
logged once, every loss and the final weights equal (==).
"""

import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import cli, load_ckpt, run_dir, scalars
from plain import plain_loop

from linlight.checkpoints import next_epoch

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu"]


def start(*args, cwd, module="linlight.cli"):
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def new_shell(command: str, cwd) -> subprocess.CompletedProcess:
    """A command as a person pastes it into a new terminal: no virtual environment active."""
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def assert_same_as_plain(run, truth):
    """The run's curves and weights are the plain loop's: every epoch once, every value equal."""
    logged = scalars(run)
    epochs = len(truth.train_losses)
    assert [s for s, _ in logged["loss/train"]] == list(range(epochs)), "each epoch exactly once"
    assert [v for _, v in logged["loss/train"]] == truth.train_losses
    assert [v for _, v in logged["loss/val"]] == truth.test_losses
    assert logged["params/weight"][-1][1] == truth.weight
    last = load_ckpt(run / "checkpoints" / "last.ckpt")
    assert next_epoch(last) == epochs  # trained to the end
    learned = [v for k, v in last["state_dict"].items() if k.startswith("model.")]
    assert len(learned) == 2 and all(torch.equal(a, b) for a, b in zip(learned, truth.state.values()))
    for path in (run / "checkpoints").glob("*.ckpt"):  # every checkpoint left behind loads
        load_ckpt(path)


def continue_command(err: str) -> str:
    last = err.strip().splitlines()[-1]
    assert "continue with: " in last, last
    return last.split("continue with: ", 1)[1]


def test_sigterm_saves_and_prints_the_command_that_continues_the_run(tmp_path):
    """SIGTERM: the epoch ends, last.ckpt is saved where it stopped, and the printed command, pasted into a
    new shell in another folder, continues that run to the same weights as an uninterrupted run."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    proc = start("fit", "--trainer.max_epochs", "1000", "--checkpoint.every_n_epochs", "20", *FAST, cwd=work)
    wait_for(run_dir(work) / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    stopped = int(re.search(r"stopped on SIGTERM after (\d+) epochs", err.strip().splitlines()[-1]).group(1))
    assert next_epoch(load_ckpt(run_dir(work) / "checkpoints" / "last.ckpt")) == stopped  # saved where it stopped
    assert 20 <= stopped < 1000, "the run ended before the signal: make it longer"
    resumed = new_shell(continue_command(err), cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert not (elsewhere / "lightning_logs").exists()
    assert_same_as_plain(run_dir(work), plain_loop(epochs=1000))


def test_ctrl_c_while_starting_is_one_line(tmp_path):
    proc = start("fit", *FAST, cwd=tmp_path, module="linlight")  # the command's entry point
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + 60
    while "libtorch" not in maps.read_text():  # importing torch: Lightning's imports take seconds more
        assert proc.poll() is None and time.monotonic() < deadline, "the command did not start importing torch"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["linlight: interrupted (Ctrl-C) while starting; nothing was trained"]
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_and_the_run_resumes(tmp_path):
    """Ctrl-C, then Ctrl-C again within the same epoch: out at once, the last checkpoint intact."""
    args = ["--data.step", "0.001", "--data.batch_size", "2", "--checkpoint.every_n_epochs", "2"]  # slow epochs
    proc = start("fit", *args, "--trainer.max_epochs", "1000", *FAST, cwd=tmp_path)
    wait_for(run_dir(tmp_path) / "checkpoints" / "last.ckpt", proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "stopped at once by a second Ctrl-C during epoch" in err.strip().splitlines()[-1]
    saved = load_ckpt(run_dir(tmp_path) / "checkpoints" / "last.ckpt")["epoch"]  # the cadence checkpoint
    epochs = saved + 1 + 3
    code, _, err = cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", str(epochs), cwd=tmp_path)
    assert code == 0, err
    assert_same_as_plain(run_dir(tmp_path), plain_loop(epochs=epochs, step=0.001, batch_size=2))


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, plain, epochs",
    [(["--checkpoint.every_n_epochs", "50"], {}, 500),
     (["--checkpoint.every_n_epochs", "10", "--data.batch_size", "6", "--data.shuffle", "true"],
      {"batch_size": 6, "shuffle": True}, 120)],
    ids=["full-batch", "shuffled"],
)
def test_kill_9_at_random_moments_then_resume(tmp_path, args, plain, epochs):
    args = [*args, "--trainer.max_epochs", str(epochs)]
    truth = plain_loop(epochs=epochs, **plain)
    rng = random.Random(1234)
    for trial in range(2):
        work = tmp_path / f"trial{trial}"
        work.mkdir()
        proc = start("fit", *args, *FAST, cwd=work)
        wait_for(run_dir(work) / "checkpoints" / "last.ckpt", proc)
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL, "the run ended before the kill: make it longer"
        code, _, err = cli("fit", "--ckpt_path", "last", cwd=work)  # the run's own settings, its epochs
        assert code == 0, err
        assert not run_dir(work, 1).exists()
        assert_same_as_plain(run_dir(work), truth)


@pytest.mark.parametrize("train", [[sys.executable, str(Path(__file__).resolve().parents[1] / "scripts" / "train.py")],
                                   [sys.executable, "-m", "linlight.train"]], ids=["script", "module"])
def test_the_training_scripts_train_more_command_runs_as_printed(tmp_path, train):
    """scripts/train.py's summary (and the installed package's `python -m linlight.train`'s) ends with the command
    that trains further; pasted in a new shell elsewhere it continues the run to the plain loop's result, and says
    nothing alarming (a resumed run's events begin with TensorBoard's purge step, which its reader reports unless
    told not to)."""
    first = subprocess.run([*train, "--trainer.max_epochs", "20", *FAST], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    (line,) = [line for line in first.stdout.splitlines() if line.startswith("  train more ")]
    command = line.split("train more", 1)[1].strip()
    assert command.startswith(shlex.join(train)) and command.endswith("--trainer.max_epochs 40"), command
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    more = new_shell(f"{command} --trainer.enable_progress_bar false", elsewhere)
    assert more.returncode == 0, more.stderr
    assert "Detected out of order" not in more.stderr and "Warning" not in more.stderr, more.stderr
    assert_same_as_plain(run_dir(tmp_path), plain_loop(epochs=40))
    assert (tmp_path / "lightning_logs" / "version_0" / "loss_curves.png").is_file()


def test_train_more_under_a_relative_root_continues_the_run_from_any_folder(tmp_path):
    """`--trainer.default_root_dir runs`, a relative folder: the summary prints absolute paths, and its "train
    more" command, pasted into a new shell in another folder, continues that run (not one in that folder)."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    code, out, err = cli("fit", "--trainer.default_root_dir", "runs", "--trainer.max_epochs", "20", *FAST, cwd=work)
    assert code == 0, err
    run = run_dir(work / "runs")
    printed = {line[2:15].strip(): line[15:] for line in out.splitlines() if line.startswith("  ")}
    assert printed["last"] == str(run / "checkpoints" / "last.ckpt") and printed["run"] == str(run)
    assert printed["TensorBoard"].endswith(f"--logdir {run.parent}")
    more = new_shell(f"{printed['train more']} --trainer.enable_progress_bar false", elsewhere)
    assert more.returncode == 0, more.stderr
    assert not (elsewhere / "runs").exists() and not (elsewhere / "lightning_logs").exists()
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]
    assert_same_as_plain(run, plain_loop(epochs=40))
