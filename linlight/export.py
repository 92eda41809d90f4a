"""Saving and loading the plain model, the tutorial's way, and ONNX export for deployment.

    from linlight.export import export_state_dict, load_model, export_onnx
    export_state_dict(lit_module, "model.pth")      # torch.save(model.state_dict(), ...)
    model = load_model("model.pth")                 # a fresh tutorial model with those weights, in eval mode
    model = load_model("lightning_logs/version_0/checkpoints/last.ckpt")   # from a checkpoint, too
    export_onnx(model, "model.onnx")                # needs: pip install 'linlight[export]'
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from linlight.checkpoints import MODEL_KEYS, read_checkpoint
from linlight.errors import CheckpointError
from linlight.models import build_model


def plain_model(model: nn.Module) -> nn.Module:
    """The tutorial ``nn.Module`` inside a ``LitLinearRegression`` (or the model itself)."""
    return getattr(model, "model", model)


def export_state_dict(model: nn.Module, path: str | Path) -> Path:
    """Save the plain model's ``state_dict`` as the tutorial does (``torch.save``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(plain_model(model).state_dict(), path)
    return path


def load_model(path: str | Path) -> nn.Module:
    """A fresh tutorial model loaded from a ``state_dict`` file or a linlight checkpoint, in eval mode.

    Files are read with ``torch.load(weights_only=True)``: no code in them runs.
    """
    path = Path(path)
    if path.suffix == ".ckpt":
        state = {k.removeprefix("model."): v for k, v in read_checkpoint(path)["state_dict"].items()
                 if k.startswith("model.")}
    else:
        if not path.is_file():
            raise CheckpointError(f"model file {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(
                f"cannot read {path} as a state_dict (weights_only=True): {type(e).__name__}"
            ) from None
    plain_keys = {arch: {k.removeprefix("model.") for k in keys} for arch, keys in MODEL_KEYS.items()}
    arch = next((a for a, keys in plain_keys.items() if set(state) == keys), None)
    if arch is None:
        raise CheckpointError(f"{path} is not a state_dict of a linlight model: its keys are {sorted(state)[:6]}")
    model = build_model(arch)
    model.load_state_dict(state)
    return model.eval()


def export_onnx(model: nn.Module, path: str | Path) -> Path:
    """Export the plain model to ONNX with a dynamic batch dimension (needs ``linlight[export]``)."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise CheckpointError("ONNX export needs the export extra: pip install 'linlight[export]'") from None
    path = Path(path)
    model = plain_model(model).eval().cpu()
    example = torch.tensor([[0.5], [1.0]])
    batch = torch.export.Dim("batch", min=1)
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision not installed"
    level = registration.level
    registration.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=["x"], output_names=["y"],
                          dynamic_shapes={"x": {0: batch}}, dynamo=True, external_data=False, verbose=False)
    registration.setLevel(level)
    return path


def onnx_predict(path: str | Path, x: torch.Tensor) -> torch.Tensor:
    """Run an exported model with onnxruntime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x.detach().cpu().numpy()})
    return torch.from_numpy(y)
