"""Noise on the line (data.noise_std) and your own points (data.csv): the same training, checked against the
plain PyTorch loop (tests/plain.py) on the same points, with every bad file refused in one clear line."""

import inspect
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import REPO, cli, linlight, load_ckpt, run_dir, scalars
from PIL import Image
from plain import plain_loop
from test_exact import check_run
from test_resume import assert_same_as_plain, start, wait_for

from linlight.data import LINE_DEFAULTS, LineDataModule, make_line, read_x_csv
from linlight.errors import ConfigError

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu"]
TRUE_LINE_TAGS = {"params/weight_true", "params/bias_true", "params/weight_error", "params/bias_error"}


def fit(cwd, *args):
    code, out, err = cli("fit", *args, *FAST, cwd=cwd)
    assert code == 0, err
    return out


def write_csv(path, x, y, header="x,y"):
    """Points as CSV, each float32 written so that it reads back as the same float32."""
    rows = [f"{a!r},{b!r}" for a, b in zip(x.flatten().tolist(), y.flatten().tolist())]
    path.write_text("\n".join([header, *rows] if header else rows) + "\n")
    return path


def random_points(n=60, seed=3):
    """Points off any line: a plain loop on them has nothing to agree with but the same arithmetic."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=gen) * 4 - 2
    return x, 1.5 * x - 0.5 + 0.3 * torch.randn(n, 1, generator=gen)


# --- noise -------------------------------------------------------------------------------------------------


def test_noise_zero_leaves_the_tutorial_data_unchanged():
    x, y = make_line()
    assert torch.equal(y, 0.7 * torch.arange(0, 1, 0.02).unsqueeze(1) + 0.3)
    for explicit in (make_line(noise_std=0.0), make_line(noise_std=0.0, seed=7)):
        assert torch.equal(explicit[0], x) and torch.equal(explicit[1], y)
    dm = LineDataModule(noise_std=0.0)
    dm.setup("fit")
    assert torch.equal(dm.y, y)


def test_noise_is_the_documented_recipe():
    """y = weight * X + bias + noise_std * randn(n, 1) from Generator().manual_seed(seed), whatever ran before."""
    X = torch.arange(0, 1, 0.01).unsqueeze(1)
    want = 0.3 * X + 0.9 + 0.25 * torch.randn(len(X), 1, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(0)  # the global RNG plays no part
    dm = LineDataModule(weight=0.3, bias=0.9, step=0.01, noise_std=0.25, seed=7)
    dm.setup("fit")
    assert torch.equal(dm.x, X) and torch.equal(dm.y, want)
    assert dm.true_line == (0.3, 0.9)
    other = LineDataModule(weight=0.3, bias=0.9, step=0.01, noise_std=0.25, seed=8)
    other.setup("fit")
    assert not torch.equal(other.y, want)
    with pytest.raises(ConfigError, match="data.noise_std must be zero or positive"):
        LineDataModule(noise_std=-0.1)


def test_noise_zero_run_is_the_reference(tmp_path):
    fit(tmp_path, "--data.noise_std", "0", "--trainer.max_epochs", "50")
    check_run(run_dir(tmp_path), plain_loop(epochs=50))


def test_noisy_run_reproduces_the_plain_loop(tmp_path):
    out = fit(tmp_path, "--data.noise_std", "0.1", "--data.batch_size", "8", "--data.shuffle", "true",
              "--trainer.max_epochs", "60")
    truth = plain_loop(epochs=60, noise_std=0.1, batch_size=8, shuffle=True)
    check_run(run_dir(tmp_path), truth)
    logged = scalars(run_dir(tmp_path))
    assert {v for _, v in logged["params/weight_true"]} == {torch.tensor(0.7).item()}  # the line, not the noise
    assert logged["params/weight_error"][-1][1] == pytest.approx(abs(truth.weight - 0.7), abs=1e-6)
    r2 = logged["val/r2"][-1][1]
    assert r2 == pytest.approx(truth.test_metrics[-1]["r2"], rel=1e-6) and r2 < 0.9  # the noise shows
    assert "+ noise (std 0.1, seed 42)" in out
    assert re.search(r"weight\s+learned \S+   true 0.7000   error \S+", out)


@pytest.mark.slow
def test_noisy_run_kill_9_resumes_bit_exact(tmp_path):
    args = ["--data.noise_std", "0.1", "--data.step", "0.005", "--data.batch_size", "10", "--data.shuffle", "true",
            "--checkpoint.every_n_epochs", "10", "--trainer.max_epochs", "300"]
    proc = start("fit", *args, *FAST, cwd=tmp_path)
    wait_for(run_dir(tmp_path) / "checkpoints" / "last.ckpt", proc)
    time.sleep(random.Random(7).uniform(0.0, 1.0))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill: make it longer"
    code, _, err = cli("fit", "--ckpt_path", "last", cwd=tmp_path)
    assert code == 0, err
    assert_same_as_plain(run_dir(tmp_path), plain_loop(epochs=300, noise_std=0.1, step=0.005, batch_size=10,
                                                      shuffle=True))


# --- your own data (data.csv) ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["tutorial-line", "random-points-shuffled"])
def test_csv_trains_like_the_plain_loop_on_the_same_points(tmp_path, case):
    if case == "tutorial-line":  # the tutorial's own points: the reference experiment, from a file
        x, y = make_line()
        args, plain = [], {}
    else:
        x, y = random_points()
        args, plain = ["--data.batch_size", "8", "--data.shuffle", "true"], {"batch_size": 8, "shuffle": True}
    csv = write_csv(tmp_path / "points.csv", x, y, header="x,y" if case == "tutorial-line" else None)
    out = fit(tmp_path, "--data.csv", "points.csv", "--trainer.max_epochs", "60", *args)
    truth = plain_loop(points=(x, y), epochs=60, **plain)
    if case == "tutorial-line":
        assert truth.train_losses == plain_loop(epochs=60).train_losses  # the file holds exactly those points
    run = run_dir(tmp_path)
    logged = scalars(run)
    assert [v for _, v in logged["loss/train"]] == truth.train_losses
    assert [v for _, v in logged["loss/val"]] == truth.test_losses
    assert logged["params/weight"][-1][1] == truth.weight and logged["params/bias"][-1][1] == truth.bias
    assert not TRUE_LINE_TAGS & logged.keys()  # no true line to compare with
    state = load_ckpt(run / "checkpoints" / "last.ckpt")
    learned = [v for k, v in state["state_dict"].items() if k.startswith("model.")]
    assert all(torch.equal(a, b) for a, b in zip(learned, truth.state.values()))
    data = state["datamodule_hyper_parameters"]
    assert data["csv"] == str(csv.resolve()) and len(data["_csv_sha256"]) == 64
    assert not {"weight", "bias", "step", "noise_std"} & data.keys()  # the line's settings are not the data's
    assert " true " not in out and f"data         {csv.resolve()} (sha256 " in out
    assert re.search(r"weight\s+learned \S+\n", out)


def bad(tmp_path, content: str | bytes | None, *args, words: str, name="bad.csv"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    code, out, err = cli("fit", "--data.csv", str(path), *args, *FAST, cwd=tmp_path)
    assert code == 1, err
    assert "Traceback" not in out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("linlight: error:") and words in last, last
    assert not (tmp_path / "lightning_logs").exists()  # refused before anything was written
    return last


@pytest.mark.parametrize(
    "content, args, words",
    [(None, [], "cannot read data.csv {path}: No such file or directory"),
     ("", [], "data.csv {path} has no data rows: expected x,y (a header row is optional)"),
     ("x,y\n\n", [], "has no data rows"),
     ("x,y\n0,1\n0.5,oops\n1,2\n", [], "data.csv {path} line 3: 'oops' is not a number (expected x,y)"),
     ("0,1\n\n1,nan\n", [], "line 3: '1,nan' is not finite (NaN or infinity)"),
     ("0,1\n1,2\n-inf,3\n", [], "line 3: '-inf,3' is not finite"),
     ("x\n1\n2\n3\n", [], "line 2: expected 2 columns (x,y), found one column"),
     ("0,1,2\n", [], "line 1: expected 2 columns (x,y), found 3 columns"),
     ("x,y\n0,1\n", [], "data.csv {path} has 1 row: data.train_split=0.8 leaves none for training; the train and "
                        "test splits need at least one row each, so at least 2 rows"),
     ("0,1\n1,2\n2,3\n", ["--data.train_split", "0.3"], "has 3 rows: data.train_split=0.3 leaves none for "
                                                         "training; the train and test splits need at least one "
                                                         "row each, so at least 4 rows"),
     (b"\xff\xfe\x00binary", [], "is not a CSV text file"),
     ("0,1\n1,2\n2,3\n", ["--data.weight", "0.3", "--data.noise_std", "0.1"],
      "data.csv replaces the generated line: leave out its settings (data.weight=0.3, data.noise_std=0.1)")],
    ids=["missing", "empty", "header-only", "not-a-number", "nan", "inf", "one-column", "three-columns",
         "one-row", "too-few-for-the-split", "binary", "line-settings"],
)
def test_bad_csv_files(tmp_path, content, args, words):
    bad(tmp_path, content, *args, words=words.format(path=tmp_path / "bad.csv"))


def test_a_bad_csv_as_a_shell_sees_it(tmp_path):
    (tmp_path / "points.csv").write_text("x,y\n1,2\nthree,4\n")
    proc = linlight("fit", "--data.csv", "points.csv", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "linlight: error: data.csv points.csv line 3: 'three' is not a number (expected x,y)")
    assert not (tmp_path / "lightning_logs").exists()


def test_a_changed_csv_is_refused_on_resume(tmp_path):
    """The file's content is part of the data: a resume on a changed file is refused, on the same one it
    continues exactly, from any folder (the run recorded the file's absolute path)."""
    x, y = random_points()
    csv = write_csv(tmp_path / "points.csv", x, y)
    original = csv.read_bytes()
    fit(tmp_path, "--data.csv", "points.csv", "--trainer.max_epochs", "20")
    last = run_dir(tmp_path) / "checkpoints" / "last.ckpt"
    saved = last.read_bytes()
    csv.write_bytes(original[:-1] + b"1\n")  # one more digit in the last row
    code, _, err = cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "40", *FAST, cwd=tmp_path)
    assert code == 1, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"linlight: error: {last} was trained on other data: data.csv's content has changed "
                           "(sha256 "), line
    assert last.read_bytes() == saved and not run_dir(tmp_path, 1).exists()
    before = scalars(run_dir(tmp_path))
    code, _, err = cli("test", *FAST, cwd=tmp_path)  # evaluating it is allowed, and says so
    assert code == 0 and "test on other data than training: data.csv's content has changed" in err
    assert scalars(run_dir(tmp_path)) == before  # its results printed, not written into the run
    csv.write_bytes(original)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, _, err = cli("fit", "--ckpt_path", str(last), "--trainer.max_epochs", "40", *FAST, cwd=elsewhere)
    assert code == 0, err
    assert_same_as_plain(run_dir(tmp_path), plain_loop(points=(x, y), epochs=40))


def test_train_script_on_a_csv(tmp_path):
    """scripts/train.py --data.csv FILE: the whole workflow on your own points, plots and summary included."""
    x, y = random_points()
    write_csv(tmp_path / "points.csv", x, y)
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--data.csv", "points.csv",
                           "--trainer.max_epochs", "30", *FAST], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    run = run_dir(tmp_path)
    for name in ("predictions.png", "loss_curves.png"):
        with Image.open(run / name) as image:
            assert image.format == "PNG" and image.size == (1000, 700)
    truth = plain_loop(points=(x, y), epochs=30)
    out = proc.stdout
    assert " true " not in out
    assert float(re.search(r"weight\s+learned (\S+)\n", out).group(1)) == round(truth.weight, 4)
    assert re.search(r"test\s+test/loss (\S+)", out).group(1) == f"{truth.test_losses[-1]:.4g}"
    logged = scalars(run)
    assert not TRUE_LINE_TAGS & logged.keys() and {"test/loss", "params/weight"} <= logged.keys()
    fresh = torch.load(run / "model.pth", weights_only=True)
    assert torch.equal(fresh["linear_layer.weight"], truth.state["weight"])


def test_predict_needs_the_training_file_unless_told_data_csv_null(tmp_path):
    """predict rebuilds the run's data: with the file gone it says so in one line; `--data.csv null` predicts
    without it, the trained model's numbers."""
    x, y = random_points()
    csv = write_csv(tmp_path / "points.csv", x, y)
    fit(tmp_path, "--data.csv", "points.csv", "--trainer.max_epochs", "10")
    csv.rename(tmp_path / "moved.csv")
    code, out, err = cli("predict", "--data.predict_x", "[0.5, -1.0]", *FAST, cwd=tmp_path)
    assert code == 1 and "Traceback" not in out + err
    assert err.strip().splitlines()[-1] == f"linlight: error: cannot read data.csv {csv}: No such file or directory"
    code, out, err = cli("predict", "--data.predict_x", "[0.5, -1.0]", "--data.csv", "null", *FAST, cwd=tmp_path)
    assert code == 0, err
    want = plain_loop(points=(x, y), epochs=10).predict([0.5, -1.0])
    assert out.strip().splitlines()[-2:] == [f"0.5,{np.float32(want[0])!s}", f"-1.0,{np.float32(want[1])!s}"]


def test_predict_csv_shares_the_reader(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("x,y\n0.25,1\n-1,2\n")  # a training file works as prediction input: its first column
    assert torch.equal(read_x_csv(path), torch.tensor([[0.25], [-1.0]]))
    path.write_text("x\n0.5\nabc\n")
    with pytest.raises(ConfigError, match=r"data.predict_csv .* line 3: 'abc' is not a number"):
        read_x_csv(path)


def test_line_defaults_are_the_signatures():
    """data.csv refuses line settings that differ from these defaults: they must be the real ones."""
    params = inspect.signature(LineDataModule).parameters
    assert {k: params[k].default for k in LINE_DEFAULTS} == LINE_DEFAULTS

