"""Seeing and using the result of `python scripts/train.py`: TensorBoard (read back from the files and from a
running server), the tutorial's plots, the summary, predictions and the exported model."""

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import cli, load_ckpt, scalars
from PIL import Image
from plain import plain_loop

from linlight.export import load_model, onnx_predict
from linlight.models import LinearRegressionModelV2
from linlight.plotting import loss_figure

EPOCHS = 1000
PER_EPOCH = ["loss/train", "loss/val", "val/mae", "val/mse", "val/r2", "params/weight", "params/bias",
             "params/weight_true", "params/bias_true", "params/weight_error", "params/bias_error"]
ONCE = ["test/loss", "test/mae", "test/mse", "test/r2"]


def test_tensorboard_files_hold_every_tag(reference_run):
    _, run, _ = reference_run
    logged = scalars(run)
    assert sorted(logged) == sorted(PER_EPOCH + ONCE)  # nothing else: no stray `epoch`, no `hparams/...`
    for tag in PER_EPOCH:
        assert [s for s, _ in logged[tag]] == list(range(EPOCHS)), tag
    for tag in ONCE:  # one test, at the epoch its weights come from
        assert [s for s, _ in logged[tag]] == [EPOCHS - 1], tag
    assert {v for _, v in logged["params/weight_true"]} == {torch.tensor(0.7).item()}
    state = load_ckpt(run / "checkpoints" / "last.ckpt")["state_dict"]
    weight = state["model.linear_layer.weight"]
    assert logged["params/weight"][-1][1] == weight.item()
    assert logged["params/weight_error"][-1][1] == (weight - torch.tensor(0.7)).abs().item()  # float32, as trained
    truth = plain_loop()
    assert logged["test/loss"][0][1] == truth.test_losses[-1]  # the final weights on the test split
    assert logged["test/mae"] == logged["test/loss"] and logged["val/mae"] == logged["loss/val"]  # L1: bit for bit
    assert logged["test/mae"][0][1] == pytest.approx(truth.test_metrics[-1]["mae"], rel=1e-6)
    assert logged["test/r2"][0][1] == pytest.approx(truth.test_metrics[-1]["r2"], rel=1e-6)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    steps = [e.step for e in events.Images("plots/predictions")]
    assert steps == [0, 2, 5, 10, 20, 50, 100, 200, 500, EPOCHS]  # the untrained line first; ten: TensorBoard's cap
    assert len(events.Images("plots/loss_curves")) == 1
    hparams = events.PluginTagToContent("hparams")  # the HPARAMS tab: the run's settings
    assert "_hparams_/session_start_info" in hparams
    assert "_hparams_/experiment" not in hparams  # TensorBoard then takes its columns from all the runs shown
    start = hparams["_hparams_/session_start_info"]
    for key in (b"arch", b"lr", b"step", b"weight", b"max_epochs", b"optimizer", b"loss"):
        assert key in start, key
    assert b"_instantiator" not in start and b"batch_size" not in start  # unset (full batch): no column of "None"


def test_the_plots_callback_on_linlight_fit(tmp_path):
    """`--trainer.callbacks+=linlight.plotting.Plots` gives `linlight fit` the images: predictions at epoch 0
    (untrained), then 1, 2, 5, 10 (the 1-2-5 steps below the end) and the last epoch; the loss curves once."""
    code, _, err = cli("fit", "--trainer.max_epochs", "12", "--trainer.callbacks+=linlight.plotting.Plots",
                       "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", cwd=tmp_path)
    assert code == 0, err
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "lightning_logs" / "version_0"
    events = EventAccumulator(str(run), size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Images("plots/predictions")] == [0, 1, 2, 5, 10, 12]
    assert len(events.Images("plots/loss_curves")) == 1
    assert (run / "predictions.png").is_file() and (run / "loss_curves.png").is_file()


def test_pngs_are_the_tutorials_plots(reference_run):
    _, run, _ = reference_run
    for name in ("predictions.png", "loss_curves.png"):
        with Image.open(run / name) as image:
            assert image.format == "PNG" and image.size == (1000, 700)  # figsize 10x7 at 100 dpi
            colors = {c for _, c in image.convert("RGB").getcolors(1_000_000)}
        if name == "predictions.png":  # training data blue, testing green, predictions red
            assert {(0, 0, 255), (0, 128, 0), (255, 0, 0)} <= colors


def test_loss_curves_end_at_the_losses_the_run_ended_with(reference_run):
    """loss_curves.png samples about a hundred points (a solid band otherwise, where the reference's losses
    alternate between two values at their plateau); they end at the final epoch's losses, those the summary
    prints, not at the other value of the plateau."""
    _, run, out = reference_run
    truth = plain_loop()
    train, val = loss_figure(run).axes[0].get_lines()
    assert list(train.get_xdata())[-1] == list(val.get_xdata())[-1] == EPOCHS - 1
    assert list(train.get_ydata())[-1] == truth.train_losses[-1] and list(val.get_ydata())[-1] == truth.test_losses[-1]
    assert truth.test_losses[-1] != truth.test_losses[-2], "the plateau must alternate for this to mean anything"
    assert f"loss/train {truth.train_losses[-1]:.4g}  loss/val {truth.test_losses[-1]:.4g}" in out
    assert 90 <= len(train.get_xdata()) <= 110


def test_exported_model_predicts_like_the_checkpoint(reference_run):
    _, run, _ = reference_run
    state = torch.load(run / "model.pth", weights_only=True)
    fresh = LinearRegressionModelV2()  # the tutorial's way: a fresh instance, load_state_dict
    fresh.load_state_dict(state)
    x = torch.linspace(-2, 3, 101).unsqueeze(1)
    truth = torch.tensor(plain_loop().predict(x.flatten().tolist())).unsqueeze(1)
    with torch.inference_mode():
        assert torch.equal(fresh(x), truth)
        assert torch.equal(load_model(run / "checkpoints" / "last.ckpt")(x), truth)
        assert torch.equal(load_model(run / "model.pth")(x), truth)
    assert torch.allclose(onnx_predict(run / "model.onnx", x), truth, atol=1e-6, rtol=0)


def test_summary_matches_the_run(reference_run):
    _, run, out = reference_run
    truth = plain_loop()
    learned = dict(re.findall(r"^\s+(weight|bias)\s+learned (\S+)", out, re.M))
    assert float(learned["weight"]) == round(truth.weight, 4) and float(learned["bias"]) == round(truth.bias, 4)
    assert float(re.search(r"test/mae (\S+)", out).group(1)) == pytest.approx(truth.test_metrics[-1]["mae"], rel=1e-3)
    tensorboard = re.search(r"TensorBoard\s+(.+)$", out, re.M).group(1)
    assert tensorboard == f"{sys.prefix}/bin/tensorboard --logdir {run.parent}"  # runs as printed, anywhere
    for name in ("last.ckpt", "predictions.png", "loss_curves.png", "model.pth", "model.onnx"):
        assert name in out


def get_json(url: str, body: dict | None = None):
    """GET ``url``, or POST ``body`` as JSON (as TensorBoard's own pages ask its hparams plugin)."""
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def tensorboard(logdir: Path):
    """A TensorBoard server on ``logdir``: its plugins' base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}/data/plugin"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_hparams_shows_first_the_settings_the_runs_differ_in(tmp_path):
    """TensorBoard's HPARAMS tab as it is served to a browser: the columns come from all the runs, the settings
    they differ in first (what a sweep varies: lr, max_epochs), and a number setting left unset in some run is
    still a number column (batch_size 16, not the string "16.0")."""
    for args in (["--model.lr", "0.01", "--trainer.max_epochs", "3", "--data.batch_size", "16"],
                 ["--model.lr", "0.05", "--trainer.max_epochs", "4"]):
        code, _, err = cli("fit", *args, "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
                           cwd=tmp_path)
        assert code == 0, err
    with tensorboard(tmp_path / "lightning_logs") as base:
        deadline = time.monotonic() + 90
        while True:
            try:
                experiment = get_json(f"{base}/hparams/experiment", {"experimentName": ""})
                groups = get_json(f"{base}/hparams/session_groups", {
                    "experimentName": "", "startIndex": 0, "sliceSize": 10,
                    "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
                    "colParams": [{"hparam": "batch_size", "includeInResult": True}]})
                if len(groups.get("sessionGroups", [])) == 2:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "tensorboard did not serve the runs' hparams"
            time.sleep(0.5)
    infos = experiment["hparamInfos"]
    # The HPARAMS tab sorts the settings it is served with the differing ones first and ticks the first five
    # (TensorBoard's tf-hparams-query-pane, _computeHParams); the server sends them in that order too.
    shown = [i["name"] for i in sorted(infos, key=lambda i: not i.get("differs", False))][:5]
    assert [i["name"] for i in infos][:2] == shown[:2] == ["lr", "max_epochs"]
    assert {"arch", "optimizer", "optimizer.momentum", "loss", "step"} <= {i["name"] for i in infos}
    optimizer = next(i for i in infos if i["name"] == "optimizer")
    assert optimizer["domainDiscrete"] == ["torch.optim.SGD"]  # a part given by class path: its class
    batch = next(i for i in infos if i["name"] == "batch_size")
    assert batch["type"] == "DATA_TYPE_FLOAT64"
    values = [g["hparams"].get("batch_size") for g in groups["sessionGroups"]]
    assert sorted(values, key=str) == [16, None]
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    for group in groups["sessionGroups"]:  # every scalar, its last value
        logged = scalars(tmp_path / "lightning_logs" / group["name"])
        assert {m["name"]["tag"]: m["value"] for m in group["metricValues"]} == {
            tag: values[-1][1] for tag, values in logged.items()}
        assert set(logged) <= metrics


def test_tensorboard_serves_the_story(reference_run):
    """TensorBoard itself, over HTTP: the tags, the custom-scalars charts' exact lines, the image slider."""
    root, _, _ = reference_run
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(root / "lightning_logs"),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/data/plugin"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                tags = get_json(f"{base}/scalars/tags")
                if "version_0" in tags and "test/r2" in tags["version_0"]:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "tensorboard did not serve the run"
            time.sleep(0.5)
        assert sorted(tags["version_0"]) == sorted(PER_EPOCH + ONCE)
        for tag in tags["version_0"]:
            series = get_json(f"{base}/scalars/scalars?run=version_0&tag={urllib.parse.quote(tag)}")
            assert len(series) == (1 if tag in ONCE else EPOCHS), tag  # [wall_time, step, value] each
        layout = get_json(f"{base}/custom_scalars/layout")
        charts = [c["multiline"]["tag"] for cat in layout["category"] for c in cat["chart"]]
        drawn = []
        for regexes in charts:  # the tags each chart draws, as the dashboard asks for them
            pattern = "|".join(f"({r})" for r in regexes)  # how the dashboard joins a chart's regexes
            found = get_json(f"{base}/custom_scalars/scalars?run=version_0&tag={urllib.parse.quote(pattern)}")
            assert found["regex_valid"], regexes
            drawn.append(sorted(found["tag_to_events"]))
        # the README's charts: train and val loss in one, learned against true weight and bias in one each, and
        # the two absolute errors in one
        assert sorted(drawn) == sorted([["loss/train", "loss/val"], ["params/weight", "params/weight_true"],
                                        ["params/bias", "params/bias_true"], ["params/bias_error",
                                                                              "params/weight_error"]])
        images = get_json(f"{base}/images/images?run=version_0&tag=plots/predictions")
        assert [i["step"] for i in images] == [0, 2, 5, 10, 20, 50, 100, 200, 500, EPOCHS]  # what the slider shows
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_resumed_runs_events_are_read_after_the_earlier_ones(tmp_path):
    """TensorBoard reads a run's event files in name order; names start with the second, then the pid."""
    from linlight.board import RunLogger

    run = tmp_path / "lightning_logs" / "version_0"
    run.mkdir(parents=True)
    earlier = run / f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.999999999.0"  # this second
    earlier.write_bytes(b"")
    logger = RunLogger(str(tmp_path), name="lightning_logs", version=0, purge_step=5)
    logger.log_metrics({"loss/train": 0.5}, step=5)
    logger.experiment.flush()
    files = sorted(p.name for p in run.glob("events.out.tfevents.*"))
    assert len(files) == 2 and files[0] == earlier.name
