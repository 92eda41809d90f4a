"""Bad input ends with one clear error line and a non-zero exit: no traceback, nothing lost, no code run.

The cases run in this process through the command's own `main`; one case runs as a real process, for the
exit code and stderr a shell sees.
"""

import os
import pickle
import random
import shutil

import pytest
import torch
from conftest import cli, linlight, load_ckpt, run_dir

from linlight.errors import CheckpointError
from linlight.export import load_model

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu"]


def fails(tmp_path, *args, words: str, code: int = 1) -> str:
    got, out, err = cli(*args, *FAST, cwd=tmp_path)
    assert got == code, err
    assert "Traceback" not in out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("linlight: error:") and words in last, last
    return last


def test_an_error_as_a_shell_sees_it(tmp_path):
    proc = linlight("fit", "--model.lr", "-1", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "linlight: error: model.lr must be a positive finite number, got -1.0"
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.parametrize(
    "args, words",
    [(["--model.lr", "0"], "model.lr must be a positive"), (["--model.lr", "-0.1"], "model.lr must be a positive"),
     (["--model.lr", "1e39"], "model.lr must be a positive"),
     (["--data.step", "0"], "data.step must be positive"), (["--data.step", "-0.02"], "data.step must be positive"),
     (["--data.start", "1", "--data.end", "0"], "must be less than data.end"),
     (["--data.start", "1", "--data.end", "1"], "must be less than data.end"),
     (["--data.train_split", "1.5"], "train_split must be between 0 and 1"),
     (["--data.train_split", "0"], "train_split must be between 0 and 1"),
     (["--data.train_split", "0.01"], "empty train split"),
     (["--data.batch_size", "0"], "data.batch_size must be a positive"),
     (["--data.batch_size", "-2"], "data.batch_size must be a positive")],
)
def test_impossible_settings(tmp_path, args, words):
    fails(tmp_path, "fit", *args, words=words)
    assert not (tmp_path / "lightning_logs").exists()  # refused before any work started


@pytest.mark.parametrize(
    "args, words",
    [(["--data.batch_size", "two"], "data.batch_size"), (["--model.arch", "v3"], "model.arch"),
     (["--data.weight", "nan"], "data.weight: expected a finite number, got nan"),
     (["--data.bias", "inf"], "data.bias: expected a finite number, got inf"),
     (["--data.weight=-inf"], "data.weight: expected a finite number, got -inf"),
     (["--data.predict_x", "0.5"],
      "data.predict_x: expected a list of numbers such as [0.5], or a list of rows of numbers such as [[0.5]], or "
      "null, got 0.5"),
     (["--data.stp", "0.01"], "unrecognized arguments: --data.stp 0.01 (did you mean --data.step?)"),
     (["--data.nokey", "1"], "unrecognized arguments: --data.nokey 1")],
)
def test_unparsable_settings(tmp_path, args, words):
    fails(tmp_path, "fit", *args, words=words, code=2)
    assert not (tmp_path / "lightning_logs").exists()


def test_config_files(tmp_path):
    fails(tmp_path, "fit", "--config", "missing.yaml", words="missing.yaml", code=2)
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    fails(tmp_path, "fit", "--config", "bad.yaml", words="config file bad.yaml is not valid YAML")
    (tmp_path / "unknown.yaml").write_text("model:\n  arch: v2\n  learning_rate: 0.1\n")
    fails(tmp_path, "fit", "--config", "unknown.yaml", words="learning_rate", code=2)
    (tmp_path / "wrongtype.yaml").write_text("data:\n  step: fast\n")
    fails(tmp_path, "fit", "--config", "wrongtype.yaml", words="data.step", code=2)
    assert not (tmp_path / "lightning_logs").exists()


def test_unwritable_folders_fail_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    fails(tmp_path, "fit", "--trainer.default_root_dir", str(blocker / "runs"), words="cannot create run folder")
    fails(tmp_path, "fit", "--checkpoint.dirpath", str(blocker / "ckpts"), words="cannot write checkpoints")
    assert not (tmp_path / "lightning_logs").exists()  # stopped before the first epoch: no run folder left


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['PWNED_MARKER']}",))


@pytest.fixture
def trained(tmp_path):
    code, _, err = cli("fit", "--trainer.max_epochs", "20", *FAST, cwd=tmp_path)
    assert code == 0, err
    return run_dir(tmp_path) / "checkpoints" / "last.ckpt"


def test_bad_checkpoints(tmp_path, trained, monkeypatch):
    good = trained.read_bytes()
    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "truncated.ckpt").write_bytes(good[: len(good) // 2])
    # fixed garbage: random bytes read as a corrupt zip or as a bad pickle, and the two have their own message
    (tmp_path / "random.ckpt").write_bytes(random.Random(0).randbytes(4096))
    torch.save({"state_dict": {"encoder.weight": torch.zeros(3, 3)}, "pytorch-lightning_version": "2.6.0"},
               tmp_path / "foreign.ckpt")
    torch.save({"weight": torch.zeros(1, 1), "bias": torch.zeros(1)}, tmp_path / "model.pth")
    torch.save({"state_dict": {k: v for k, v in torch.load(trained, weights_only=True)["state_dict"].items()},
                "pytorch-lightning_version": "2.6.6"}, tmp_path / "weights_only.ckpt")
    marker = tmp_path / "PWNED"
    monkeypatch.setenv("PWNED_MARKER", str(marker))
    with open(tmp_path / "evil.ckpt", "wb") as f:
        pickle.dump({"state_dict": Exploit(), "pytorch-lightning_version": "2.6.0"}, f)
    torch.save({"state_dict": Exploit(), "pytorch-lightning_version": "2.6.0"}, tmp_path / "evil_torch.ckpt")

    cases = {
        "missing.ckpt": "does not exist", "empty.ckpt": "is empty (0 bytes)",
        "truncated.ckpt": "is not a readable PyTorch checkpoint (truncated or corrupt)",
        "random.ckpt": "it is not a checkpoint that loads safely as tensors and plain data",
        "foreign.ckpt": "holds weights only (no optimizer or loop state)",
        "model.pth": "is not a Lightning checkpoint (no 'state_dict'/'pytorch-lightning_version')",
        "weights_only.ckpt": "holds weights only (no optimizer or loop state), so training cannot resume from it",
        "evil.ckpt": "it is not a checkpoint that loads safely as tensors and plain data",
        "evil_torch.ckpt": "it holds a Python object (posix.system)",
    }
    for name, words in cases.items():
        fails(tmp_path, "fit", "--ckpt_path", str(tmp_path / name), words=f"{tmp_path / name}")
        fails(tmp_path, "fit", "--ckpt_path", str(tmp_path / name), words=words)
    # whether the weights are the model's is found by loading them strictly into the model the settings build
    cases["foreign.ckpt"] = ("holds weights of another model than model.arch='v2': it has no model.linear_layer.bias, "
                             "model.linear_layer.weight; it has encoder.weight the model has not")
    for sub in ("validate", "test", "predict"):  # every subcommand reads checkpoints the same way
        for name in ("evil_torch.ckpt", "truncated.ckpt", "foreign.ckpt"):
            fails(tmp_path, sub, "--ckpt_path", str(tmp_path / name), "--data.predict_x", "[1.0]", words=cases[name])
    assert not marker.exists(), "code in a checkpoint ran"
    assert trained.read_bytes() == good  # the run's own checkpoint is untouched
    fails(tmp_path, "fit", "--ckpt_path", str(trained), "--weights_only", "false", words="weights_only=True")
    # 20 epochs, a best checkpoint every 100: there is none, and the error says why and what to use; an
    # older run's best is not taken instead
    older = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "best-epoch=99.ckpt"
    shutil.copytree(trained.parent.parent, tmp_path / "lightning_logs" / "version_1")
    older.write_bytes(good)
    fails(tmp_path, "predict", "--ckpt_path", "best", "--data.predict_x", "[1.0]",
          words=f"the newest run, {tmp_path / 'lightning_logs' / 'version_1'}, has no best checkpoint")


def test_predictions_that_cannot_be_written(tmp_path, trained):
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file" / "predictions.csv"
    fails(tmp_path, "predict", "--ckpt_path", str(trained), "--data.predict_x", "[1.0]", "--predictions.output",
          str(out), words=f"cannot write predictions to {out}: {out.parent} is a file, not a folder; choose another")


def test_a_malicious_state_dict_is_refused_by_load_model(tmp_path, monkeypatch):
    marker = tmp_path / "PWNED"
    monkeypatch.setenv("PWNED_MARKER", str(marker))
    torch.save({"linear_layer.weight": Exploit()}, tmp_path / "model.pth")
    with pytest.raises(CheckpointError, match=r"cannot read .*model.pth as a state_dict \(weights_only=True\)"):
        load_model(tmp_path / "model.pth")
    assert not marker.exists(), "code in a state_dict ran"


def test_resume_with_other_data_is_refused(tmp_path, trained):
    fails(tmp_path, "fit", "--ckpt_path", "last", "--data.step", "0.01", words="data.step=0.01 (trained with 0.02)")
    assert not run_dir(tmp_path, 1).exists()


def test_divergence_stops_with_the_epoch_and_keeps_the_last_good_checkpoint(tmp_path):
    # unscaled inputs: the predictions overflow to inf at the second step
    args = ["--data.end", "1e20", "--data.step", "1e18", "--model.lr", "1", "--checkpoint.every_n_epochs", "1"]
    fails(tmp_path, "fit", *args, words="training diverged at epoch 1")
    ckpt_dir = run_dir(tmp_path) / "checkpoints"
    last = load_ckpt(ckpt_dir / "last.ckpt")
    assert last["epoch"] == 0  # saved after epoch 0, not overwritten by the failed epoch
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    for path in ckpt_dir.glob("*.ckpt"):
        load_ckpt(path)


def test_a_run_that_fails_in_its_first_epoch_leaves_no_run_folder(tmp_path):
    """Diverged within epoch 0 (batches of 2: the second step overflows): one line, and no run folder behind
    (it would show in TensorBoard as a run, with nothing to resume); one that fails later keeps its (above)."""
    args = ["--data.end", "1e20", "--data.step", "1e18", "--model.lr", "1", "--data.batch_size", "2"]
    fails(tmp_path, "fit", *args, words="training diverged at epoch 0")
    assert not (tmp_path / "lightning_logs").exists()
