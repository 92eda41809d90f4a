"""The tutorial's whole workflow ("all together"), end to end, on the reference experiment.

    python -m linlight.train                              # V2, 1000 epochs: fit, test, plots, export
    python -m linlight.train --config exercise            # a shipped config by name (linlight.configs)
    python -m linlight.train --ckpt_path last             # continue the newest run, then test and export
    python -m linlight.train --data.csv points.csv        # your own x,y points instead of the generated line
    python -m linlight.train --config scripts/examples/mlp.yaml   # your own model and table of features

It takes the same options as ``linlight fit``, then tests the trained model, draws the tutorial's plots
(``predictions.png``, ``loss_curves.png``, and TensorBoard images), exports ``model.pth`` (the plain
state_dict) and, with ``pip install 'linlight[export]'``, ``model.onnx``, and prints a summary. It is part of
the package, so an installed linlight runs it from any folder; ``scripts/train.py`` in a clone runs the same.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from linlight.cli import LinlightCLI, user_errors
from linlight.export import export_onnx, export_state_dict, fresh_model, load_model, onnx_predict
from linlight.summary import fit_summary


def main(program: Sequence[str] | None = None) -> None:
    """Fit, test, plot, export and summarize, with ``linlight fit``'s options from the command line.

    Args:
        program: the words that start this workflow again in a new shell, printed in the commands that
            continue the run; ``python -m linlight.train`` (this Python by its full path) by default.
    """
    # The options are `linlight fit`'s, read from the command line as LightningCLI reads it (given as `args` as
    # well, it warns); a DDP rank re-runs this program (script or `-m` module) with this command line, "fit" included.
    if sys.argv[1:2] != ["fit"]:
        sys.argv.insert(1, "fit")
    with user_errors():
        program = list(program or [sys.executable, "-m", "linlight.train"])
        cli = LinlightCLI(program=program, plots=True, summary=False)
        trainer, model, data = cli.trainer, cli.model, cli.datamodule
        fitted = dict(trainer.callback_metrics)  # the fit's last values (the test replaces them)
        # every process: DDP syncs the test metrics, and log_dir is a broadcast
        (tested,) = trainer.test(model, datamodule=data, verbose=False)
        run = Path(trainer.log_dir).resolve()
        test = "  ".join(f"{k} {tested[k]:.4g}" for k in ("test/loss", "test/mae", "test/mse", "test/r2"))
        lines = fit_summary(trainer, model, program, extra=[f"  test         {test}"], metrics=fitted)
        if not trainer.is_global_zero:
            return
        pth = export_state_dict(model, run / "model.pth")
        # the tutorial's check: a fresh model of the same kind, given the saved weights, predicts the same
        reloaded = load_model(pth, model=fresh_model(model.hparams))
        x_test = data.test_data[0].cpu()
        with torch.inference_mode():
            expected = model.model.cpu()(x_test)
            assert torch.equal(reloaded(x_test), expected), "the reloaded state_dict predicts differently"
        onnx = None
        if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnxscript"):
            onnx = export_onnx(reloaded, run / "model.onnx", features=data.num_features)
            assert torch.allclose(onnx_predict(onnx, x_test), expected, atol=1e-6)
        lines += [
            f"  plots        {run / 'predictions.png'}  {run / 'loss_curves.png'}",
            f"  state_dict   {pth}",
            f"  onnx         {onnx or 'not exported (pip install linlight[export])'}",
        ]
        print("\n".join(["", *lines]))


if __name__ == "__main__":
    main()
