"""Bad input ends with one clear error line and a non-zero exit: no traceback, nothing lost, no code run."""

import os
import pickle

import pytest
import torch
from conftest import linlight, load_ckpt, run_dir, scalars

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def fails(tmp_path, *args, words: str, code: int | None = None):
    proc = linlight(*args, *FAST, cwd=tmp_path, check=False)
    assert proc.returncode != 0, proc.stderr
    if code is not None:
        assert proc.returncode == code
    assert "Traceback" not in proc.stderr + proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("linlight: error:") and words in last, last
    return proc


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
     (["--data.weight", "nan"], "data.weight"), (["--data.bias", "inf"], "data.bias"),
     (["--data.weight", "-inf"], "data.weight"),
     (["--data.batch_size", "0"], "data.batch_size must be a positive"),
     (["--data.batch_size", "-2"], "data.batch_size must be a positive"),
     (["--data.batch_size", "two"], "data.batch_size"),
     (["--model.arch", "v3"], "model.arch"), (["--data.nokey", "1"], "unrecognized arguments")],
)
def test_impossible_settings(tmp_path, args, words):
    fails(tmp_path, "fit", *args, words=words)
    assert not (tmp_path / "lightning_logs").exists()  # refused before any work started


def test_config_files(tmp_path):
    fails(tmp_path, "fit", "--config", "missing.yaml", words="does not exist")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    fails(tmp_path, "fit", "--config", "bad.yaml", words="config")
    (tmp_path / "unknown.yaml").write_text("model:\n  arch: v2\n  learning_rate: 0.1\n")
    fails(tmp_path, "fit", "--config", "unknown.yaml", words="learning_rate")
    (tmp_path / "wrongtype.yaml").write_text("data:\n  step: fast\n")
    fails(tmp_path, "fit", "--config", "wrongtype.yaml", words="data.step")


def test_unwritable_log_dir_fails_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    fails(tmp_path, "fit", "--trainer.default_root_dir", str(blocker / "runs"), words="cannot create run folder")
    fails(tmp_path, "fit", "--checkpoint.dirpath", str(blocker / "ckpts"), words="cannot write checkpoints")
    assert scalars(run_dir(tmp_path)) == {}  # stopped before the first epoch logged anything


class Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['PWNED_MARKER']}",))


@pytest.fixture
def trained(tmp_path):
    linlight("fit", "--trainer.max_epochs", "20", *FAST, cwd=tmp_path)
    return run_dir(tmp_path) / "checkpoints" / "last.ckpt"


def test_bad_checkpoints(tmp_path, trained, monkeypatch):
    good = trained.read_bytes()
    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "truncated.ckpt").write_bytes(good[: len(good) // 2])
    (tmp_path / "random.ckpt").write_bytes(os.urandom(4096))
    torch.save({"state_dict": {"encoder.weight": torch.zeros(3, 3)}, "pytorch-lightning_version": "2.6.0"},
               tmp_path / "foreign.ckpt")
    torch.save({"weight": torch.zeros(1, 1), "bias": torch.zeros(1)}, tmp_path / "model.pth")
    marker = tmp_path / "PWNED"
    monkeypatch.setenv("PWNED_MARKER", str(marker))
    with open(tmp_path / "evil.ckpt", "wb") as f:
        pickle.dump({"state_dict": Exploit(), "pytorch-lightning_version": "2.6.0"}, f)
    torch.save({"state_dict": Exploit(), "pytorch-lightning_version": "2.6.0"}, tmp_path / "evil_torch.ckpt")
    assert not marker.exists()

    cases = {"missing.ckpt": "does not exist", "empty.ckpt": "is empty", "truncated.ckpt": "truncated or corrupt",
             "random.ckpt": "not a", "foreign.ckpt": "checkpoint of another model",
             "model.pth": "not a Lightning checkpoint", "evil.ckpt": "refusing to load",
             "evil_torch.ckpt": "refusing to load"}
    for name, words in cases.items():
        fails(tmp_path, "fit", "--ckpt_path", str(tmp_path / name), words=words)
    for sub in ("test", "predict"):  # every subcommand reads checkpoints the same way
        for name in ("evil_torch.ckpt", "truncated.ckpt"):
            fails(tmp_path, sub, "--ckpt_path", str(tmp_path / name), "--data.predict_x", "[1.0]", words=cases[name])
    assert not marker.exists(), "code in a checkpoint ran"
    assert trained.read_bytes() == good  # the run's own checkpoint is untouched
    fails(tmp_path, "fit", "--ckpt_path", str(trained), "--weights_only", "false", words="weights_only=True")


def test_resume_with_other_data_is_refused(tmp_path, trained):
    fails(tmp_path, "fit", "--ckpt_path", "last", "--data.step", "0.01", words="data.step=0.01 (trained with 0.02)")


def test_divergence_stops_with_the_epoch_and_keeps_the_last_good_checkpoint(tmp_path):
    # unscaled inputs: the predictions overflow to inf at the second step
    args = ["--data.end", "1e20", "--data.step", "1e18", "--model.lr", "1", "--checkpoint.every_n_epochs", "1"]
    fails(tmp_path, "fit", *args, words="diverged at epoch 1")
    ckpt_dir = run_dir(tmp_path) / "checkpoints"
    last = load_ckpt(ckpt_dir / "last.ckpt")
    assert last["epoch"] == 0  # saved after epoch 0, not overwritten by the failed epoch
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    for path in ckpt_dir.glob("*.ckpt"):
        load_ckpt(path)
