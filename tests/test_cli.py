"""The `linlight` command: help, configs, overrides, run folders, checkpoints, resume.

Most run in this process (`conftest.cli`, the command's own `main`); the process itself (the console script,
exit codes, start-up) is tested by a few subprocess tests here and in test_resume.py and test_bad_input.py.
"""

import importlib.metadata
import os
import platform
import re
import shutil
import socket
import sys
import time
import warnings

import pytest
import torch
import yaml
from conftest import CONFIGS, REPO, cli, linlight, load_ckpt, run_dir, scalars
from plain import plain_loop

from linlight.checkpoints import next_epoch

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu"]


def fit(cwd, *args):
    code, out, err = cli("fit", *args, *FAST, cwd=cwd)
    assert code == 0, err
    return out, err


def test_help_lists_the_subcommands(tmp_path):
    code, out, _ = cli("--help", cwd=tmp_path)  # the console script itself: test_resume's printed command runs it
    assert code == 0
    for sub in ("fit", "validate", "test", "predict", "lr_find"):
        assert sub in out


def test_fit_help_lists_the_settings(tmp_path):
    code, out, _ = cli("fit", "--help", cwd=tmp_path)
    assert code == 0
    for option in ("--model.arch", "--model.lr", "--model.model", "--model.loss", "--model.optimizer",
                   "--model.scheduler", "--data.help", "--import_path", "--checkpoint.every_n_epochs",
                   "--predictions.output"):
        assert option in out
    for data in ("LineDataModule", "TableDataModule"):  # the data's own settings: LightningCLI's --data.help
        code, out, _ = cli("fit", "--data.help", data, cwd=tmp_path)
        assert code == 0
        for option in {"LineDataModule": ("--data.step", "--data.batch_size", "--data.predict_csv"),
                       "TableDataModule": ("--data.csv", "--data.target", "--data.features")}[data]:
            assert option in out, (data, option)


def test_print_config_shows_the_reference_defaults(tmp_path):
    _, out, _ = cli("fit", "--print_config", cwd=tmp_path)
    config = yaml.safe_load(out)
    assert config["seed_everything"] == 42
    model = config["model"]
    assert (model["arch"], model["lr"], model["model"], model["scheduler"]) == ("v2", 0.01, None, None)
    assert model["loss"]["class_path"] == "torch.nn.L1Loss" and model["optimizer"]["class_path"] == "torch.optim.SGD"
    assert config["data"]["class_path"] == "linlight.data.LineDataModule"
    assert config["data"]["init_args"]["step"] == 0.02 and config["data"]["init_args"]["batch_size"] is None
    assert config["trainer"]["max_epochs"] == 1000 and config["trainer"]["accelerator"] == "auto"
    assert config["checkpoint"]["save_last"] is True and config["checkpoint"]["monitor"] == "loss/val"
    _, out, _ = cli("fit", "--model.lr", "0.1", "--data.step", "0.01", "--trainer.max_epochs", "50",
                       "--print_config", cwd=tmp_path)
    overridden = yaml.safe_load(out)
    assert overridden["model"]["lr"] == 0.1 and overridden["data"]["init_args"]["step"] == 0.01
    assert overridden["trainer"]["max_epochs"] == 50


def test_an_abbreviated_option_is_an_error(tmp_path):
    code, _, err = cli("fit", "--trainer.max_epoch", "10", cwd=tmp_path)
    assert code == 2
    assert err.strip().splitlines()[-1] == ("linlight: error: unrecognized arguments: --trainer.max_epoch 10 "
                                            "(did you mean --trainer.max_epochs?) (see: linlight fit --help)")
    assert not (tmp_path / "lightning_logs").exists()


def test_overrides_reach_the_run(tmp_path):
    fit(tmp_path, "--model.lr", "0.05", "--data.step", "0.01", "--trainer.max_epochs", "30")
    truth = plain_loop(lr=0.05, step=0.01, epochs=30)
    assert [v for _, v in scalars(run_dir(tmp_path))["loss/train"]] == truth.train_losses
    saved = yaml.safe_load((run_dir(tmp_path) / "config.yaml").read_text())
    assert saved["model"]["lr"] == 0.05 and saved["data"]["init_args"]["step"] == 0.01
    ckpt = load_ckpt(run_dir(tmp_path) / "checkpoints" / "last.ckpt")
    assert ckpt["hyper_parameters"]["lr"] == 0.05 and ckpt["datamodule_hyper_parameters"]["step"] == 0.01


@pytest.mark.parametrize("config", ["v2.yaml", "model0.yaml", "exercise.yaml"])
def test_every_shipped_config_runs_from_the_repository_root(config, tmp_path):
    """`linlight fit --config linlight/configs/NAME.yaml`, from the repository root as the README says."""
    code, _, err = cli("fit", "--config", f"linlight/configs/{config}", "--trainer.default_root_dir", str(tmp_path),
                       "--trainer.max_epochs", "5", *FAST, cwd=REPO)
    assert code == 0, err
    assert len(scalars(run_dir(tmp_path))["loss/train"]) == 5


def test_the_v2_config_is_plain_linlight_fit(tmp_path):
    """`linlight fit --config v2` is the reference: every setting as with no arguments at all."""
    configs = []
    for args in ([], ["--config", "v2"]):
        code, out, err = cli("fit", *args, "--print_config", cwd=tmp_path)
        assert code == 0, err
        configs.append({k: v for k, v in yaml.safe_load(out).items() if k != "config"})
    assert configs[0] == configs[1]


def test_shipped_configs_are_all_tested():
    fit_configs = {p.name for p in CONFIGS.glob("*.yaml")} - {"sweep.yaml"}  # sweep.yaml: test_sweep.py
    assert fit_configs == {"v2.yaml", "model0.yaml", "exercise.yaml"}


def test_run_folder_checkpoints_and_the_best_one(tmp_path):
    out, err = fit(tmp_path, "--trainer.max_epochs", "250")
    assert "fit:" not in err  # --trainer.enable_progress_bar false: no bar
    run = run_dir(tmp_path)
    (events,) = run.glob("events.out.tfevents.*")
    assert sorted(p.name for p in run.iterdir()) == sorted([".lock", "checkpoints", "config.yaml", events.name,
                                                            "hparams.yaml", "segments.yaml"])
    host = socket.gethostname()
    assert (run / ".lock").read_text().strip() == f"pid {os.getpid()} on host {host}"  # (this process trained it)
    (segment,) = yaml.safe_load((run / "segments.yaml").read_text())
    assert {k: segment[k] for k in ("config", "start_epoch", "ckpt_path", "host", "pid")} == {
        "config": "config.yaml", "start_epoch": 0, "ckpt_path": None, "host": host, "pid": os.getpid()}
    assert segment["versions"] == {"python": platform.python_version(), "torch": str(torch.__version__),
                                   "lightning": importlib.metadata.version("lightning"),
                                   "linlight": importlib.metadata.version("linlight")}
    truth = plain_loop(epochs=250)
    best_epoch = 99 if truth.test_losses[99] <= truth.test_losses[199] else 199  # best of the epochs saved
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [f"best-epoch={best_epoch}.ckpt", "last.ckpt"]
    last = load_ckpt(run / "checkpoints" / "last.ckpt")  # weights_only=True
    assert next_epoch(last) == 250  # the final state, although 250 is not a multiple of every_n_epochs=100
    assert torch.equal(last["state_dict"]["model.linear_layer.weight"], truth.state["weight"])
    # the summary: where everything is, with commands that run as printed
    assert f"last         {run / 'checkpoints' / 'last.ckpt'}" in out
    assert f"best         {run / 'checkpoints' / f'best-epoch={best_epoch}.ckpt'}" in out
    assert f"TensorBoard  {sys.prefix}/bin/tensorboard --logdir {run.parent}" in out
    assert (f"train more   {sys.prefix}/bin/linlight fit --ckpt_path {run / 'checkpoints' / 'last.ckpt'} "
            "--trainer.max_epochs 500") in out

    # --ckpt_path best: the best checkpoint of the newest run, continued in its run
    _, err = fit(tmp_path, "--ckpt_path", "best", "--trainer.max_epochs", str(best_epoch + 11))
    assert f"best-epoch={best_epoch}.ckpt" in err
    logged = scalars(run)
    assert [s for s, _ in logged["loss/train"]] == list(range(best_epoch + 11))
    assert [v for _, v in logged["loss/train"]] == plain_loop(epochs=best_epoch + 11).train_losses


def test_resume_last_continues_the_same_run(tmp_path):
    fit(tmp_path, "--trainer.max_epochs", "120")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, err = fit(tmp_path, "--ckpt_path", "last", "--trainer.max_epochs", "300")
    assert "version_0/checkpoints/last.ckpt" in err
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]  # continuing it is the point
    assert not run_dir(tmp_path, 1).exists()  # no new run folder
    logged = scalars(run_dir(tmp_path))
    truth = plain_loop(epochs=300)
    assert [s for s, _ in logged["loss/train"]] == list(range(300))  # each epoch once
    assert [v for _, v in logged["loss/train"]] == truth.train_losses
    assert [v for _, v in logged["loss/val"]] == truth.test_losses
    last = load_ckpt(run_dir(tmp_path) / "checkpoints" / "last.ckpt")
    assert torch.equal(last["state_dict"]["model.linear_layer.bias"], truth.state["bias"])


def test_resume_takes_the_runs_settings(tmp_path):
    """Resumed without repeating them, a run keeps its settings: its model, data and epochs."""
    fit(tmp_path, "--model.arch", "model0", "--data.step", "0.01", "--trainer.max_epochs", "60",
        "--checkpoint.every_n_epochs", "20")
    code, _, err = cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "90", cwd=tmp_path)  # nothing else
    assert code == 0, err
    truth = plain_loop(arch="model0", step=0.01, epochs=90)
    assert [v for _, v in scalars(run_dir(tmp_path))["loss/train"]] == truth.train_losses


def test_resume_from_a_file_outside_the_runs_starts_a_new_run(tmp_path):
    fit(tmp_path, "--trainer.max_epochs", "100")
    saved = tmp_path / "saved.ckpt"
    shutil.copy(run_dir(tmp_path) / "checkpoints" / "last.ckpt", saved)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, _ = fit(tmp_path, "--ckpt_path", str(saved), "--trainer.max_epochs", "150")
    assert not [w for w in caught if "dirpath has changed" in str(w.message)]
    # the new run's best is its own: epochs 100-149 hold no checkpoint epoch, so it has none (not version_0's)
    assert re.search(r"^  best +none$", out, re.M), out
    last = load_ckpt(run_dir(tmp_path, 1) / "checkpoints" / "last.ckpt")
    assert next_epoch(last) == 150
    assert torch.equal(last["state_dict"]["model.linear_layer.weight"], plain_loop(epochs=150).state["weight"])
    assert [s for s, _ in scalars(run_dir(tmp_path, 1))["loss/train"]] == list(range(100, 150))


def test_resume_last_without_any_run_is_an_error(tmp_path):
    code, _, err = cli("fit", "--ckpt_path", "last", *FAST, cwd=tmp_path)
    assert code == 1
    assert "no last checkpoint found" in err.strip().splitlines()[-1]
    assert not (tmp_path / "lightning_logs" / "version_0").exists()  # no silent fresh start


def test_a_resume_with_nothing_left_to_train_says_so(tmp_path):
    fit(tmp_path, "--trainer.max_epochs", "20")
    out, _ = fit(tmp_path, "--ckpt_path", "last")  # the run's own max_epochs: reached
    assert "linlight: no epochs trained: the run already holds 20 epochs of LinearRegressionModelV2" in out
    assert "--trainer.max_epochs 40" in out.splitlines()[-1]  # and how to train more


def test_a_resume_that_fails_before_training_or_trains_nothing_records_no_segment(tmp_path):
    """Only a segment that trains is recorded: a resume with nothing left to train, one Lightning refuses when
    the Trainer is built, and one that fails when the fit is set up leave config*.yaml and segments.yaml as
    they were; the resume that trains adds its own."""
    from linlight.records import read_segments

    fit(tmp_path, "--trainer.max_epochs", "20")
    run = run_dir(tmp_path)
    fit(tmp_path, "--ckpt_path", "last")  # the run's own max_epochs: nothing left to train
    code, _, err = cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "30", "--trainer.devices", "0", *FAST,
                       cwd=tmp_path)
    assert code == 1 and "--trainer.devices 0" in err.strip().splitlines()[-1]
    (tmp_path / "a_file").write_text("")
    code, _, err = cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "30", "--checkpoint.dirpath",
                       str(tmp_path / "a_file" / "ckpts"), *FAST, cwd=tmp_path)
    assert code == 1 and "cannot write checkpoints" in err.strip().splitlines()[-1]
    assert sorted(p.name for p in run.glob("config*.yaml")) == ["config.yaml"]
    assert [s["config"] for s in read_segments(run)] == ["config.yaml"]
    fit(tmp_path, "--ckpt_path", "last", "--trainer.max_epochs", "30")
    assert [(s["config"], s["start_epoch"]) for s in read_segments(run)] == [("config.yaml", 0),
                                                                            ("config.resume-1.yaml", 20)]
    assert [v for _, v in scalars(run)["loss/train"]] == plain_loop(epochs=30).train_losses


def test_lightnings_defaults_that_linlight_changes_and_how_to_change_them_back(tmp_path):
    """The Performance section's list, as a shell shows it: no model summary table (`--trainer.enable_model_summary
    true` brings it back), an epoch bar redrawn at most four times a second (Lightning's TQDM bar by
    `--trainer.callbacks+=`)."""
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    started = time.monotonic()
    proc = linlight("fit", "--trainer.max_epochs", "600", "--trainer.accelerator", "cpu", cwd=tmp_path / "a")
    took = time.monotonic() - started  # more than the bar was shown: the bound below is generous, not loose
    assert "| Name" not in proc.stdout + proc.stderr and "Trainable params" not in proc.stdout + proc.stderr
    redraws = sum(line.startswith("fit:") for line in proc.stderr.splitlines())  # (text mode reads \r as a line end)
    assert 2 <= redraws <= 4 * took + 2, f"{redraws} redraws in {took:.1f} s"  # the first, <= 4/s, the last
    proc = linlight("fit", "--trainer.max_epochs", "2", "--trainer.accelerator", "cpu",
                    "--trainer.enable_model_summary", "true",
                    "--trainer.callbacks+=lightning.pytorch.callbacks.TQDMProgressBar", cwd=tmp_path / "b")
    assert "| Name" in proc.stdout + proc.stderr and "Trainable params" in proc.stdout + proc.stderr
    assert "Epoch 1: 100%" in proc.stdout + proc.stderr and "\nfit:" not in proc.stderr  # Lightning's, not linlight's
