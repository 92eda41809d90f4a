"""The `linlight` command as a user runs it: help, configs, overrides, checkpoints, resume."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONFIGS, REPO, linlight, load_ckpt, run_dir, scalars
from plain import plain_loop

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def test_console_script_help():
    beside_python = Path(sys.executable).parent / "linlight"  # where pip puts it in this environment
    exe = str(beside_python) if beside_python.exists() else shutil.which("linlight")
    assert exe, "the linlight console script is not installed"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    for sub in ("fit", "validate", "test", "predict"):
        assert sub in out
    fit_help = subprocess.run([exe, "fit", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--model.arch", "--model.lr", "--data.step", "--data.batch_size", "--checkpoint.every_n_epochs"):
        assert option in fit_help


def test_print_config_shows_the_reference_defaults(tmp_path):
    out = linlight("fit", "--print_config", cwd=tmp_path).stdout
    config = yaml.safe_load(out)
    assert config["seed_everything"] == 42
    assert config["model"] == {"arch": "v2", "lr": 0.01}
    assert config["data"]["step"] == 0.02 and config["data"]["batch_size"] is None
    assert config["trainer"]["max_epochs"] == 1000 and config["trainer"]["accelerator"] == "auto"
    assert config["checkpoint"]["save_last"] is True and config["checkpoint"]["monitor"] == "loss/val"
    overridden = yaml.safe_load(linlight("fit", "--model.lr", "0.1", "--data.step", "0.01",
                                         "--trainer.max_epochs", "50", "--print_config", cwd=tmp_path).stdout)
    assert overridden["model"]["lr"] == 0.1 and overridden["data"]["step"] == 0.01
    assert overridden["trainer"]["max_epochs"] == 50


def test_overrides_reach_the_run(tmp_path):
    linlight("fit", "--model.lr", "0.05", "--data.step", "0.01", "--trainer.max_epochs", "30",
             "--trainer.accelerator", "cpu", *FAST, cwd=tmp_path)
    truth = plain_loop(lr=0.05, step=0.01, epochs=30)
    logged = scalars(run_dir(tmp_path))
    assert [v for _, v in logged["loss/train"]] == truth.train_losses
    saved = yaml.safe_load((run_dir(tmp_path) / "config.yaml").read_text())
    assert saved["model"]["lr"] == 0.05 and saved["data"]["step"] == 0.01
    ckpt = load_ckpt(run_dir(tmp_path) / "checkpoints" / "last.ckpt")
    assert ckpt["hyper_parameters"]["lr"] == 0.05 and ckpt["datamodule_hyper_parameters"]["step"] == 0.01


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name != "sweep.yaml"))
def test_every_shipped_config_runs_from_a_clone(config, tmp_path):
    """`linlight fit --config linlight/configs/NAME.yaml`, run from the repository root as the README says."""
    root = tmp_path / "runs"
    linlight("fit", "--config", f"linlight/configs/{config}", "--trainer.default_root_dir", str(root),
             "--trainer.max_epochs", "5", "--trainer.accelerator", "cpu", *FAST, cwd=REPO)
    assert (run_dir(root) / "checkpoints" / "last.ckpt").is_file()
    assert len(scalars(run_dir(root))["loss/train"]) == 5


def test_run_folder_contents_and_checkpoints(tmp_path):
    linlight("fit", "--trainer.max_epochs", "250", *FAST, cwd=tmp_path)
    run = run_dir(tmp_path)
    assert (run / "config.yaml").is_file() and (run / "hparams.yaml").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in ckpts and any(name.startswith("best-") for name in ckpts)
    last = load_ckpt(run / "checkpoints" / "last.ckpt")  # weights_only=True
    assert last["epoch"] == 250  # the final state, although 250 is not a multiple of every_n_epochs=100
    truth = plain_loop(epochs=250)
    assert torch.equal(last["state_dict"]["model.linear_layer.weight"], truth.state["weight"])
    best = load_ckpt(next((run / "checkpoints").glob("best-*.ckpt")))
    assert best["callbacks"]  # a full Lightning checkpoint
    val = dict(scalars(run)["loss/val"])
    best_epoch = int(next((run / "checkpoints").glob("best-*.ckpt")).stem.split("=")[1])
    assert val[best_epoch] == min(val[e] for e in (99, 199))  # best of the epochs checkpointed


def test_resume_last_continues_the_same_run(tmp_path):
    linlight("fit", "--trainer.max_epochs", "120", *FAST, cwd=tmp_path)
    proc = linlight("fit", "--ckpt_path", "last", "--trainer.max_epochs", "300", *FAST, cwd=tmp_path)
    assert "version_0/checkpoints/last.ckpt" in proc.stderr
    assert not run_dir(tmp_path, 1).exists()  # no new run folder
    logged = scalars(run_dir(tmp_path))
    truth = plain_loop(epochs=300)
    assert [s for s, _ in logged["loss/train"]] == list(range(300))  # each epoch once
    assert [v for _, v in logged["loss/train"]] == truth.train_losses
    assert [v for _, v in logged["loss/val"]] == truth.test_losses
    last = load_ckpt(run_dir(tmp_path) / "checkpoints" / "last.ckpt")
    assert torch.equal(last["state_dict"]["model.linear_layer.bias"], truth.state["bias"])


def test_resume_from_a_path(tmp_path):
    linlight("fit", "--trainer.max_epochs", "100", *FAST, cwd=tmp_path)
    saved = tmp_path / "saved.ckpt"
    shutil.copy(run_dir(tmp_path) / "checkpoints" / "last.ckpt", saved)
    linlight("fit", "--ckpt_path", str(saved), "--trainer.max_epochs", "150", *FAST, cwd=tmp_path)
    # a file outside the runs: a new run that starts from it
    last = load_ckpt(run_dir(tmp_path, 1) / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 150
    assert torch.equal(last["state_dict"]["model.linear_layer.weight"], plain_loop(epochs=150).state["weight"])
    assert [s for s, _ in scalars(run_dir(tmp_path, 1))["loss/train"]] == list(range(100, 150))


def test_resume_last_without_any_run_is_an_error(tmp_path):
    proc = linlight("fit", "--ckpt_path", "last", *FAST, cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "no last checkpoint found" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "lightning_logs" / "version_0").exists()  # no silent fresh start


def test_test_and_predict_use_the_newest_run(tmp_path):
    linlight("fit", "--trainer.max_epochs", "200", *FAST, cwd=tmp_path)
    test = linlight("test", *FAST, cwd=tmp_path)
    assert "test/mae" in test.stdout
    logged = scalars(run_dir(tmp_path))
    assert "test/loss" in logged and "test/r2" in logged
    pred = linlight("predict", "--data.predict_x", "[0.0, 0.5, 2.0]", *FAST, cwd=tmp_path)
    rows = [line.split(",") for line in pred.stdout.strip().splitlines()]
    assert rows[0] == ["x", "y"]
    w, b = (t.item() for t in plain_loop(epochs=200).state.values())
    for x, y in rows[1:]:
        assert float(y) == pytest.approx(w * float(x) + b, abs=1e-6)
