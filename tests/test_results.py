"""Seeing and using the result: scripts/train.py's run folder, TensorBoard, plots, predictions, export."""

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch
from conftest import REPO, linlight, load_ckpt, run_dir, scalars
from PIL import Image
from plain import plain_loop

from linlight.export import load_model, onnx_predict
from linlight.models import LinearRegressionModelV2

EPOCHS = 200


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`python scripts/train.py`, as a user runs it (fewer epochs)."""
    root = tmp_path_factory.mktemp("train")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), "--trainer.max_epochs", str(EPOCHS),
                           "--trainer.accelerator", "cpu"], cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return root, run_dir(root), proc.stdout


def test_tensorboard_has_every_tag_with_one_point_per_epoch(trained):
    _, run, _ = trained
    logged = scalars(run)
    per_epoch = ["loss/train", "loss/val", "val/mae", "val/mse", "val/r2", "params/weight", "params/bias",
                 "params/weight_true", "params/bias_true", "params/weight_error", "params/bias_error"]
    for tag in per_epoch:
        assert [s for s, _ in logged[tag]] == list(range(EPOCHS)), tag
    for tag in ("test/loss", "test/mae", "test/mse", "test/r2"):
        assert len(logged[tag]) == 1, tag
    assert all(v == pytest.approx(0.7) for _, v in logged["params/weight_true"])
    truth = plain_loop(epochs=EPOCHS)
    assert [v for _, v in logged["loss/train"]] == truth.train_losses
    assert [v for _, v in logged["val/mae"]] == pytest.approx(truth.test_losses, abs=1e-7)  # MAE is the L1 loss
    # the learned-parameter curve ends at the checkpoint's weights
    state = load_ckpt(run / "checkpoints" / "last.ckpt")["state_dict"]
    assert logged["params/weight"][-1][1] == state["model.linear_layer.weight"].item()
    assert logged["params/bias"][-1][1] == state["model.linear_layer.bias"].item()
    error = (state["model.linear_layer.weight"] - torch.tensor(0.7)).abs().item()  # in float32, as trained
    assert logged["params/weight_error"][-1][1] == error

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    images = EventAccumulator(str(run), size_guidance={"images": 0})
    images.Reload()
    steps = [e.step for e in images.Images("plots/predictions")]
    assert steps == [0, 1, 2, 5, 10, 20, 50, 100, EPOCHS]  # the slider: the line being learned, from the start
    assert len(images.Images("plots/loss_curves")) == 1
    hparams = images.PluginTagToContent("hparams")  # the HPARAMS tab: settings and final values
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    start = hparams["_hparams_/session_start_info"]
    assert all(key in start for key in (b"arch", b"lr", b"step", b"weight")) and b"_instantiator" not in start


def test_pngs_are_the_tutorials_plots(trained):
    _, run, _ = trained
    for name in ("predictions.png", "loss_curves.png"):
        with Image.open(run / name) as image:
            assert image.format == "PNG" and image.size == (1000, 700)  # figsize 10x7 at 100 dpi
            colors = {c for _, c in image.convert("RGB").getcolors(1_000_000)}
        if name == "predictions.png":  # training data blue, testing green, predictions red
            assert {(0, 0, 255), (0, 128, 0), (255, 0, 0)} <= colors


def test_exported_model_predicts_like_the_checkpoint(trained):
    _, run, _ = trained
    ckpt = run / "checkpoints" / "last.ckpt"
    state = torch.load(run / "model.pth", weights_only=True)
    fresh = LinearRegressionModelV2()  # the tutorial's way: a fresh instance, load_state_dict
    fresh.load_state_dict(state)
    from_ckpt = load_model(ckpt)
    x = torch.linspace(-2, 3, 101).unsqueeze(1)
    with torch.inference_mode():
        expected = from_ckpt(x)
        assert torch.equal(fresh(x), expected)
        assert torch.equal(load_model(run / "model.pth")(x), expected)
    assert torch.allclose(onnx_predict(run / "model.onnx", x), expected, atol=1e-6, rtol=0)


def test_summary_matches_the_checkpoint(trained):
    _, run, out = trained
    state = load_ckpt(run / "checkpoints" / "last.ckpt")["state_dict"]
    learned = dict(re.findall(r"^\s+(weight|bias)\s+learned (\S+)", out, re.M))
    assert float(learned["weight"]) == round(state["model.linear_layer.weight"].item(), 4)
    assert float(learned["bias"]) == round(state["model.linear_layer.bias"].item(), 4)
    test_mae = float(re.search(r"test/mae (\S+)", out).group(1))
    assert test_mae == pytest.approx(scalars(run)["test/mae"][0][1], rel=1e-3)
    assert f"tensorboard --logdir {run.parent}" in out
    for name in ("last.ckpt", "predictions.png", "loss_curves.png", "model.pth", "model.onnx"):
        assert name in out


def test_predict_from_csv_to_csv(trained, tmp_path):
    root, run, _ = trained
    (tmp_path / "x.csv").write_text("x\n0\n0.25\n10\n")
    out = tmp_path / "pred.csv"
    linlight("predict", "--data.predict_csv", str(tmp_path / "x.csv"), "--predictions.output", str(out),
             "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", cwd=root)
    rows = [line.split(",") for line in out.read_text().splitlines()]
    state = load_ckpt(run / "checkpoints" / "last.ckpt")["state_dict"]
    w, b = state["model.linear_layer.weight"].item(), state["model.linear_layer.bias"].item()
    assert rows[0] == ["x", "y"] and [float(x) for x, _ in rows[1:]] == [0.0, 0.25, 10.0]
    for x, y in rows[1:]:
        expected = torch.tensor([[float(x)]]) * torch.tensor(w) + torch.tensor(b)
        assert float(y) == pytest.approx(expected.item(), abs=1e-6)


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_tensorboard_serves_the_run(trained):
    root, _, _ = trained
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
                if "version_0" in tags and "loss/train" in tags["version_0"]:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "tensorboard did not serve the run"
            time.sleep(0.5)
        assert {"loss/val", "params/weight", "test/mae"} <= set(tags["version_0"])
        series = get_json(f"{base}/scalars/scalars?run=version_0&tag=loss/train")
        assert len(series) == EPOCHS and series[0][1] == 0  # [wall_time, step, value]
        images = get_json(f"{base}/images/tags")
        assert {"plots/predictions", "plots/loss_curves"} <= set(images["version_0"])
    finally:
        server.terminate()
        server.wait(timeout=30)
