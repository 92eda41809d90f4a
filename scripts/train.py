"""The training script: the tutorial's whole workflow, end to end, on the reference experiment.

    python scripts/train.py                               # V2, 1000 epochs: fit, test, plots, export
    python scripts/train.py --config linlight/configs/exercise.yaml
    python scripts/train.py --model.lr 0.05 --trainer.max_epochs 300 --ckpt_path last

It takes the same options as ``linlight fit``, then tests the trained model, draws the tutorial's plots
(``predictions.png``, ``loss_curves.png``, and TensorBoard images), exports ``model.pth`` (the plain
state_dict) and, with ``pip install 'linlight[export]'``, ``model.onnx``, and prints a summary.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

from linlight.cli import LinlightCLI, user_errors
from linlight.export import export_onnx, export_state_dict, load_model, onnx_predict


def main(argv: list[str]) -> None:
    with user_errors():
        cli = LinlightCLI(args=["fit", "--trainer.callbacks+=linlight.plotting.Plots", *argv])
        trainer, model, data = cli.trainer, cli.model, cli.datamodule
        # every process: DDP syncs the test metrics, and log_dir is a broadcast
        (tested,) = trainer.test(model, datamodule=data, verbose=False)
        run = Path(trainer.log_dir)
        if not trainer.is_global_zero:
            return
        pth = export_state_dict(model, run / "model.pth")
        reloaded = load_model(pth)  # the tutorial's check: a fresh model gives the same predictions
        x_test = data.test_data[0].cpu()
        with torch.inference_mode():
            expected = model.model.cpu()(x_test)
            assert torch.equal(reloaded(x_test), expected), "the reloaded state_dict predicts differently"
        onnx = None
        if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnxscript"):
            onnx = export_onnx(reloaded, run / "model.onnx")
            assert torch.allclose(onnx_predict(onnx, x_test), expected, atol=1e-6)
        print(summary(trainer, model, data, tested, run, pth, onnx))


def summary(trainer, model, data, tested: dict, run: Path, pth: Path, onnx: Path | None) -> str:
    """What a person wants to read at a glance after a run."""
    weight, bias = model.model.line()
    w_true, b_true = data.hparams.weight, data.hparams.bias
    test = "  ".join(f"{k.split('/')[1]} {tested[k]:.6g}" for k in ("test/loss", "test/mae", "test/mse", "test/r2"))
    lines = [
        "",
        f"linlight: trained {type(model.model).__name__} for {trainer.current_epoch} epochs",
        f"  weight  true {w_true:<8.4f} learned {weight:.4f}   (error {abs(weight - w_true):.4f})",
        f"  bias    true {b_true:<8.4f} learned {bias:.4f}   (error {abs(bias - b_true):.4f})",
        f"  test    {test}",
        f"  checkpoint   {trainer.checkpoint_callback.last_model_path or run / 'checkpoints' / 'last.ckpt'}",
        f"  best         {trainer.checkpoint_callback.best_model_path or 'none yet (see --checkpoint.every_n_epochs)'}",
        f"  plots        {run / 'predictions.png'}  {run / 'loss_curves.png'}",
        f"  state_dict   {pth}",
        f"  onnx         {onnx or 'not exported (pip install linlight[export])'}",
        f"  TensorBoard  tensorboard --logdir {run.parent}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:])
