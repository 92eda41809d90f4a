"""Evaluating a run without repeating its settings: validate, test and predict use the data and model the
checkpoint was trained with, unless told otherwise, and then say what differs. Never a silent wrong number."""

import re
import shutil
import warnings

import numpy as np
import pytest
import torch
from conftest import cli, linlight, run_dir, scalars
from plain import metrics, plain_loop

EXERCISE = {"arch": "model0", "weight": 0.3, "bias": 0.9, "step": 0.01, "epochs": 300, "test_every": 20}


@pytest.fixture(scope="module")
def truth():
    return plain_loop(**EXERCISE)


def final_test_metrics(truth) -> dict[str, float]:
    """test/* of the trained exercise model, from first principles."""
    x = torch.arange(0, 1, 0.01).unsqueeze(1)
    y = 0.3 * x + 0.9
    n = int(0.8 * len(x))
    pred = torch.tensor(truth.predict(x[n:].flatten().tolist())).unsqueeze(1)
    return {"loss": truth.test_losses[-1], **metrics(pred, y[n:])}


def table(output: str, stage: str) -> dict[str, float]:
    """Lightning's results table, as printed: ``{stage}/name`` rows, and the loss by the tag it has in the run."""
    rows = {k: float(v) for k, v in re.findall(r"^\s*(\w+/\w+)\s+(\S+)\s*$", output, re.M)}
    loss = "loss/val" if stage == "val" else f"{stage}/loss"
    found = {k.split("/")[1]: v for k, v in rows.items() if k.startswith(f"{stage}/")}
    if loss in rows:
        found["loss"] = rows[loss]
    return found


def test_test_uses_the_runs_data_and_writes_into_the_run(exercise_run, truth):
    """`linlight test` after training the exercise: tested on the exercise's line, as a user types it."""
    root, run = exercise_run
    before = scalars(run)
    proc = linlight("test", "--trainer.enable_progress_bar", "false", cwd=root)
    want = final_test_metrics(truth)
    printed = table(proc.stdout, "test")
    assert not re.search(r"^\s*(step|epoch)\s", proc.stdout, re.M)  # only the metrics: no x-axis row
    assert printed["loss"] == want["loss"]  # the plain loop's float32 L1 loss, bit for bit
    assert printed["mae"] == printed["loss"]  # both the L1 error of the same predictions: one number, one precision
    for name in ("mae", "mse", "r2"):
        assert printed[name] == pytest.approx(want[name], rel=1e-5, abs=1e-7), name
    logged = scalars(run)
    for name in ("loss", "mae", "mse", "r2"):
        assert len(logged[f"test/{name}"]) == len(before.get(f"test/{name}", [])) + 1
        step, value = logged[f"test/{name}"][-1]
        assert step == 299  # the epoch the tested weights come from: the last of 300
        assert value == pytest.approx(printed[name], rel=1e-6)
    assert "epoch" not in logged and "step" not in logged
    assert "other data" not in proc.stderr


def test_validate_and_predict_use_the_run_too(exercise_run, truth):
    root, run = exercise_run
    before = scalars(run)
    code, out, err = cli("validate", "--ckpt_path", "last", "--trainer.enable_progress_bar", "false", cwd=root)
    assert code == 0, err
    printed = table(out, "val")
    assert re.search(r"^\s*loss/val\s", out, re.M) and not re.search(r"^\s*val/loss\s", out, re.M)  # the run's tag
    assert printed["loss"] == truth.test_losses[-1]  # the loss/val curve's last value, bit for bit
    assert printed["r2"] == pytest.approx(truth.test_metrics[-1]["r2"], rel=1e-5)
    assert scalars(run) == before  # validate writes nothing: the run's curves hold these values already

    xs = [0.0, 0.1, 0.5, 2.0]
    code, out, err = cli("predict", "--data.predict_x", str(xs), "--trainer.enable_progress_bar", "false", cwd=root)
    assert code == 0, err
    rows = [line.split(",") for line in out.strip().splitlines()[-len(xs) - 1:]]
    assert rows[0] == ["x", "y"]
    assert [x for x, _ in rows[1:]] == ["0.0", "0.1", "0.5", "2.0"]  # float32 values, printed as such
    assert [y for _, y in rows[1:]] == [str(np.float32(v)) for v in truth.predict(xs)]


def test_an_explicit_data_setting_is_used_and_said(exercise_run, truth):
    root, run = exercise_run
    before = scalars(run)
    code, out, err = cli("test", "--data.weight", "0.7", "--trainer.enable_progress_bar", "false", cwd=root)
    assert code == 0, err
    assert "test on other data than training: data.weight=0.7 (trained with 0.3)" in err
    x = torch.arange(0, 1, 0.01).unsqueeze(1)
    y = 0.7 * x + 0.9
    n = int(0.8 * len(x))
    pred = torch.tensor(truth.predict(x[n:].flatten().tolist())).unsqueeze(1)
    assert table(out, "test")["mae"] == pytest.approx(metrics(pred, y[n:])["mae"], rel=1e-5)
    assert scalars(run) == before  # results on other data are not written into the run


def test_evaluations_give_no_lightning_warnings(exercise_run):
    # what a user would read as trouble: "the dirpath has changed", "callbacks ... need to be provided", ...
    root, run = exercise_run
    before = scalars(run)
    for args in (["validate", "--ckpt_path", "last"], ["test", "--data.weight", "0.7"],
                 ["predict", "--data.predict_x", "[0.5]"]):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code, _, err = cli(*args, "--trainer.enable_progress_bar", "false", cwd=root)
        assert code == 0, err
        said = [f"{w.category.__name__}: {w.message}" for w in caught
                if "lightning" in w.filename and not w.category.__name__.startswith("Jsonargparse")]
        assert said == [], args
    assert scalars(run) == before


def test_a_checkpoint_of_another_model_is_refused(exercise_run):
    root, _ = exercise_run
    code, _, err = cli("test", "--model.arch", "v2", cwd=root)
    assert code == 1
    assert err.strip().splitlines()[-1].endswith("holds weights of model.arch='model0', not 'v2'")


def test_fit_resume_takes_the_runs_settings(exercise_run, truth, tmp_path):
    """`linlight fit --ckpt_path FILE` from another folder continues that run with its own settings."""
    root = tmp_path / "runs"
    shutil.copytree(exercise_run[0], root)  # a copy: the other tests read the run as trained
    run = run_dir(root)
    start = tmp_path / "elsewhere"
    start.mkdir()
    bests = sorted((run / "checkpoints").glob("best*.ckpt"))
    code, _, err = cli("fit", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--trainer.max_epochs", "320",
                       "--trainer.enable_progress_bar", "false", cwd=start)
    assert code == 0, err
    assert not (start / "lightning_logs").exists()  # nothing written where the command ran
    longer = plain_loop(**{**EXERCISE, "epochs": 320})
    logged = scalars(run)
    assert [v for _, v in logged["loss/train"]] == longer.train_losses
    assert [s for s, _ in logged["loss/val"]] == list(range(19, 320, 20))  # still tested every 20 epochs
    assert run_dir(root, 1).exists() is False
    assert bests and sorted((run / "checkpoints").glob("best*.ckpt")) == bests  # a moved run keeps its best


@pytest.mark.parametrize("header", ["", "x\n"], ids=["no-header", "header"])
def test_predict_reads_a_csv_of_one_number_per_row_and_writes_a_file(exercise_run, truth, tmp_path, header):
    """`--data.predict_csv FILE` (one number per row, the header optional), `--predictions.output FILE`: the rows
    `x,y` in that file, each y the trained model's prediction (float32, as printed), nothing on standard output."""
    root, run = exercise_run
    xs = [0.0, 0.25, -1.5, 3.0]
    (tmp_path / "x.csv").write_text(header + "\n".join(map(str, xs)) + "\n")
    before = scalars(run)
    code, out, err = cli("predict", "--data.predict_csv", str(tmp_path / "x.csv"), "--predictions.output",
                         str(tmp_path / "p.csv"), "--trainer.enable_progress_bar", "false", cwd=root)
    assert code == 0, err
    assert "x,y" not in out
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows == ["x,y", *(f"{np.float32(x)!s},{np.float32(y)!s}" for x, y in zip(xs, truth.predict(xs)))]
    assert scalars(run) == before
