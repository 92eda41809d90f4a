"""Scaling out through Lightning's DDP (gloo on CPU): sharded data, averaged gradients, unchanged results."""

import os
import socket
import subprocess
import sys

import pytest
import torch
from conftest import REPO, linlight, load_ckpt, run_dir, scalars
from plain import plain_loop

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.accelerator", "cpu"]
DDP = ["--trainer.devices", "2", "--trainer.strategy", "ddp"]
PROBE_ENV = {"PYTHONPATH": os.path.dirname(__file__)}


def probe(out):
    return ["--trainer.callbacks+=ddp_probe.ShardRecorder", f"--trainer.callbacks.out={out}"]


def assert_close_to(run, truth, tol=1e-6):
    logged = scalars(run)
    assert [s for s, _ in logged["loss/train"]] == list(range(len(truth.train_losses)))
    assert len(logged["loss/val"]) == len(truth.test_losses)
    for (_, got), want in zip(logged["loss/train"], truth.train_losses):
        assert abs(got - want) <= tol
    for (_, got), want in zip(logged["loss/val"], truth.test_losses):
        assert abs(got - want) <= tol
    state = load_ckpt(run / "checkpoints" / "last.ckpt")["state_dict"]
    for key, want in zip(("model.linear_layer.weight", "model.linear_layer.bias"), truth.state.values()):
        assert torch.allclose(state[key], want, atol=tol, rtol=0)


def shards(out):
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.mark.slow
def test_two_processes_full_batch_equal_one_and_each_sees_half(tmp_path):
    linlight("fit", *DDP, "--trainer.max_epochs", "150", *FAST, *probe(tmp_path / "seen"), cwd=tmp_path,
             env=PROBE_ENV)
    assert_close_to(run_dir(tmp_path), plain_loop(epochs=150))
    assert sorted(os.listdir(tmp_path / "lightning_logs")) == ["version_0"]  # one run, written once
    assert len(list(run_dir(tmp_path).glob("events.out.tfevents.*"))) == 1
    a, b = shards(tmp_path / "seen")
    assert a["world_size"] == b["world_size"] == 2
    assert len(a["seen"]) == len(b["seen"]) == 150
    full = [round(0.02 * i, 6) for i in range(40)]
    for epoch_a, epoch_b in zip(a["seen"], b["seen"]):
        (xa,), (xb,) = epoch_a, epoch_b  # one (half) batch each per epoch
        assert len(xa) == len(xb) == 20 and set(xa).isdisjoint(xb)
        assert sorted(round(v, 6) for v in xa + xb) == full


@pytest.mark.slow
def test_shuffled_batch_size_is_global(tmp_path):
    """--data.batch_size is the global batch: 2 processes x 4 samples give the 1-process result of batches of 8."""
    args = ["--data.batch_size", "8", "--data.shuffle", "true", "--trainer.max_epochs", "40"]
    single, double = tmp_path / "single", tmp_path / "double"
    single.mkdir(), double.mkdir()
    linlight("fit", *args, *FAST, *probe(single / "seen"), cwd=single, env=PROBE_ENV)
    linlight("fit", *args, *DDP, *FAST, *probe(double / "seen"), cwd=double, env=PROBE_ENV)
    one = torch.load(single / "seen" / "rank0.pt", weights_only=True)["seen"]
    a, b = (s["seen"] for s in shards(double / "seen"))
    assert len(one) == len(a) == len(b) == 40
    for epoch, (batches, batches_a, batches_b) in enumerate(zip(one, a, b)):
        assert len(batches) == len(batches_a) == len(batches_b) == 5
        for whole, xa, xb in zip(batches, batches_a, batches_b):
            assert len(xa) == len(xb) == 4 and set(xa).isdisjoint(xb)
            assert sorted(xa + xb) == sorted(whole), f"epoch {epoch}: the ranks split the same global batch"
    got = load_ckpt(run_dir(double) / "checkpoints" / "last.ckpt")["state_dict"]
    want = load_ckpt(run_dir(single) / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.allclose(got[k], want[k], atol=1e-6, rtol=0) for k in want)


@pytest.mark.slow
def test_batches_that_do_not_split_evenly_are_refused(tmp_path):
    proc = linlight("fit", *DDP, "--data.batch_size", "7", "--trainer.max_epochs", "5", *FAST, cwd=tmp_path,
                    check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "linlight: error: with 2 processes every batch must split into equal shares, but the test split's 10 points "
        "in batches of 7 make batches of [3, 7]; choose data.batch_size and the split sizes as multiples of 2")


@pytest.mark.slow
def test_ddp_run_resumes_exactly(tmp_path):
    linlight("fit", *DDP, "--trainer.max_epochs", "100", *FAST, cwd=tmp_path)
    linlight("fit", *DDP, "--ckpt_path", "last", "--trainer.max_epochs", "180", *FAST, cwd=tmp_path)
    assert sorted(os.listdir(tmp_path / "lightning_logs")) == ["version_0"]
    assert_close_to(run_dir(tmp_path), plain_loop(epochs=180))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_over_loopback(tmp_path):
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    cmd = [sys.executable, "-m", "linlight.cli", "fit", "--trainer.num_nodes", "2", "--trainer.devices", "1",
           "--trainer.strategy", "ddp", "--trainer.max_epochs", "60", *FAST]
    nodes = [subprocess.Popen(cmd, cwd=tmp_path, env={**env, "NODE_RANK": str(rank)}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for rank in (0, 1)]
    outputs = []
    for node in nodes:
        out, err = node.communicate(timeout=300)
        assert node.returncode == 0, err
        outputs.append(out)
    assert sorted(os.listdir(tmp_path / "lightning_logs")) == ["version_0"]
    assert_close_to(run_dir(tmp_path), plain_loop(epochs=60))
    # the summary (node 0) says what to run on each node to train more; both lines, pasted into new shells in
    # another folder at once, continue the run
    commands = [line.split(f"node {rank}   ", 1)[1] for rank in (0, 1)
                for line in outputs[0].splitlines() if line.startswith(f"    node {rank}   ")]
    assert len(commands) == 2 and all(f"NODE_RANK={rank} " in c for rank, c in enumerate(commands)), outputs[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shell_env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    nodes = [subprocess.Popen(["bash", "-c", command], cwd=elsewhere, env=shell_env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for command in commands]
    for node in nodes:
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err
    assert not (elsewhere / "lightning_logs").exists()
    assert_close_to(run_dir(tmp_path), plain_loop(epochs=120))


def test_a_multi_node_summary_says_what_to_run_on_each_node(monkeypatch):
    """Started by hand, one "train more" line per node with its MASTER_ADDR, MASTER_PORT and NODE_RANK; under a
    cluster's launcher (SLURM, torchrun), the one command, started as the run was."""
    from types import SimpleNamespace

    from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment, TorchElasticEnvironment

    from linlight.summary import on_every_node

    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29511")
    command = "/venv/bin/linlight fit --ckpt_path /runs/last.ckpt --trainer.max_epochs 120"

    def lines(env) -> list[str]:
        trainer = SimpleNamespace(num_nodes=2, strategy=SimpleNamespace(cluster_environment=env))
        return on_every_node(trainer, command)

    by_hand = lines(LightningEnvironment())
    assert by_hand[1:] == [f"    node {rank}   MASTER_ADDR=10.0.0.1 MASTER_PORT=29511 NODE_RANK={rank} {command}"
                           for rank in (0, 1)]
    for env in (SLURMEnvironment(), TorchElasticEnvironment()):
        (line,) = lines(env)
        assert line.endswith(f": {command}") and "on all 2 nodes" in line and "NODE_RANK" not in line


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_run_matches_cpu(tmp_path):
    linlight("fit", "--trainer.accelerator", "gpu", "--trainer.devices", "1", "--trainer.max_epochs", "300",
             "--trainer.enable_progress_bar", "false", cwd=tmp_path)
    assert_close_to(run_dir(tmp_path), plain_loop(epochs=300), tol=1e-5)


@pytest.mark.slow
def test_training_script_under_ddp(tmp_path):
    """scripts/train.py with 2 processes: collectives (log_dir, test metrics) are reached by every rank."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *DDP, "--trainer.max_epochs", "20",
                           *FAST], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = run_dir(tmp_path)
    for name in ("predictions.png", "loss_curves.png", "model.pth", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    assert proc.stdout.count("linlight: trained") == 1  # the summary comes from rank 0 only
    assert_close_to(run, plain_loop(epochs=20))
