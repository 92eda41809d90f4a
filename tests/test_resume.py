"""Resume you can trust: kill -9 at any moment, Ctrl-C, SIGTERM, concurrent runs."""

import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import linlight, load_ckpt, run_dir, scalars
from plain import plain_loop

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.accelerator", "cpu"]


def start(*args, cwd):
    return subprocess.Popen([sys.executable, "-m", "linlight.cli", *args, *FAST], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None or path.exists(), proc.communicate()[1]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def curves(run):
    logged = scalars(run)
    return {tag: logged[tag] for tag in ("loss/train", "loss/val", "params/weight")}


def assert_same_run(run, reference_run, epochs):
    got, want = curves(run), curves(reference_run)
    for tag in want:
        assert [s for s, _ in got[tag]] == list(range(epochs)), f"{tag}: each epoch exactly once"
        assert got[tag] == want[tag]
    a = load_ckpt(run / "checkpoints" / "last.ckpt")["state_dict"]
    b = load_ckpt(reference_run / "checkpoints" / "last.ckpt")["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for path in (run / "checkpoints").glob("*.ckpt"):  # every checkpoint left behind loads
        load_ckpt(path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, epochs",
    [(["--checkpoint.every_n_epochs", "50"], 500),
     (["--checkpoint.every_n_epochs", "10", "--data.batch_size", "4", "--data.shuffle", "true"], 120)],
    ids=["full-batch", "shuffled"],
)
def test_kill_9_at_random_moments_then_resume(tmp_path, args, epochs):
    args = [*args, "--trainer.max_epochs", str(epochs)]
    reference = tmp_path / "reference"
    reference.mkdir()
    linlight("fit", *args, *FAST, cwd=reference)
    rng = random.Random(1234)
    for trial in range(3):
        work = tmp_path / f"trial{trial}"
        work.mkdir()
        proc = start("fit", *args, cwd=work)
        wait_for(run_dir(work) / "checkpoints" / "last.ckpt", proc)
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL, "the run ended before the kill: make it longer"
        linlight("fit", "--ckpt_path", "last", *args, *FAST, cwd=work)
        assert not run_dir(work, 1).exists()
        assert_same_run(run_dir(work), run_dir(reference), epochs)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_and_resumes_exactly(tmp_path, sig):
    proc = start("fit", "--trainer.max_epochs", "100000", cwd=tmp_path)
    wait_for(run_dir(tmp_path) / "checkpoints" / "last.ckpt", proc)  # epoch 100 was saved
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    last_line = err.strip().splitlines()[-1]
    assert "continue with: linlight fit --ckpt_path last" in last_line
    stopped = load_ckpt(run_dir(tmp_path) / "checkpoints" / "last.ckpt")
    stopped_at = stopped["epoch"]
    reported = int(re.search(r"stopped after (\d+) epochs", last_line).group(1))
    assert stopped_at == reported > 100  # saved where it stopped, not at the last cadence checkpoint
    epochs = stopped_at + 30
    linlight("fit", "--ckpt_path", "last", "--trainer.max_epochs", str(epochs), *FAST, cwd=tmp_path)
    truth = plain_loop(epochs=epochs)
    logged = scalars(run_dir(tmp_path))
    assert [s for s, _ in logged["loss/train"]] == list(range(epochs))
    assert [v for _, v in logged["loss/train"]] == truth.train_losses
    assert [v for _, v in logged["loss/val"]] == truth.test_losses
    last = load_ckpt(run_dir(tmp_path) / "checkpoints" / "last.ckpt")["state_dict"]
    assert torch.equal(last["model.linear_layer.weight"], truth.state["weight"])


def test_concurrent_runs_get_separate_folders(tmp_path):
    procs = [start("fit", "--trainer.max_epochs", "40", cwd=tmp_path) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    truth = plain_loop(epochs=40)
    for version in (0, 1):
        run = run_dir(tmp_path, version)
        assert len(list(run.glob("events.out.tfevents.*"))) == 1
        assert [v for _, v in scalars(run)["loss/train"]] == truth.train_losses
        assert load_ckpt(run / "checkpoints" / "last.ckpt")["epoch"] == 40
        assert (run / "config.yaml").is_file()
    assert sorted(os.listdir(tmp_path / "lightning_logs")) == ["version_0", "version_1"]
