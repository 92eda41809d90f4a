"""Saving and loading the plain model, the tutorial's way, and ONNX export for deployment, for any model.

    from linlight.export import export_state_dict, load_model, export_onnx
    export_state_dict(lit_module, "model.pth")      # torch.save(model.state_dict(), ...)
    model = load_model("lightning_logs/version_0/checkpoints/last.ckpt")   # rebuilt from its settings, in eval mode
    model = load_model("model.pth")                 # the tutorial's models, known by their weights' names
    model = load_model("model.pth", model=MLP(3))   # any other: load the weights into a model of yours
    export_onnx(model, "model.onnx", features=3)    # needs: pip install 'linlight[export]'

Files are read with ``torch.load(weights_only=True)``: no code in them runs. A checkpoint's model is rebuilt from
the settings saved in it only when they name classes already imported (torch's, linlight's, or a module you
imported first): a checkpoint never names code to import (``linlight/parts.py``).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from linlight.checkpoints import read_checkpoint
from linlight.errors import CheckpointError
from linlight.models import MODELS, build_model
from linlight.parts import check_imported


def plain_model(model: nn.Module) -> nn.Module:
    """The plain ``nn.Module`` inside a ``LitRegression`` (or the model itself)."""
    return getattr(model, "model", model)


def export_state_dict(model: nn.Module, path: str | Path) -> Path:
    """Save the plain model's ``state_dict`` as the tutorial does (``torch.save``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(plain_model(model).state_dict(), path)
    return path


def fresh_model(settings: dict[str, Any], source: str = "the settings") -> nn.Module:
    """A new model of the kind module settings name (``arch``, or ``model`` by class path), with new weights.

    The global random generator is left as it was.
    """
    spec = settings.get("model")
    with torch.random.fork_rng(devices=[]):
        if spec is None:
            return build_model(settings.get("arch") or "v2")
        if not isinstance(spec, dict) or "class_path" not in spec:
            raise CheckpointError(f"{source} does not say which model it holds (no model.arch or model.model "
                                  "class path): pass model=YourModel(...) to load its weights into")
        check_imported(spec, source)
        from jsonargparse import ArgumentParser

        parser = ArgumentParser(exit_on_error=False)
        parser.add_argument("--model", type=nn.Module)
        return parser.instantiate(parser.parse_object({"model": spec})).model


def _tutorial_model(state: dict[str, Any]) -> nn.Module | None:
    """The tutorial's model whose weights have these names (built on the meta device: no random draw)."""
    for arch in MODELS:
        with torch.device("meta"):
            keys = set(build_model(arch).state_dict())
        if set(state) == keys:
            with torch.random.fork_rng(devices=[]):
                return build_model(arch)
    return None


def load_model(path: str | Path, model: nn.Module | None = None) -> nn.Module:
    """A model loaded from a ``state_dict`` file or a linlight checkpoint, strictly, in eval mode.

    Args:
        path: ``model.pth`` (a plain ``state_dict``) or a ``.ckpt`` checkpoint.
        model: the model to load the weights into; ``None``: a checkpoint's model rebuilt from its saved settings,
            or for a plain ``state_dict`` the tutorial's model its weights name.
    """
    path = Path(path)
    if path.suffix == ".ckpt":
        checkpoint = read_checkpoint(path)
        state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
        if model is None:
            model = fresh_model(checkpoint.get("hyper_parameters", {}), str(path))
    else:
        if not path.is_file():
            raise CheckpointError(f"model file {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(
                f"cannot read {path} as a state_dict (weights_only=True): {type(e).__name__}"
            ) from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointError(f"{path} is not a state_dict (a dict of tensors)")
        if model is None:
            model = _tutorial_model(state)
            if model is None:
                raise CheckpointError(f"{path} is not a state_dict of the tutorial's models (its keys are "
                                      f"{sorted(state)[:6]}): pass model=YourModel(...) to load it into")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit {type(model).__name__}: {' '.join(str(e).split())[:300]}") from None
    return model.eval()


def export_onnx(model: nn.Module, path: str | Path, features: int = 1) -> Path:
    """Export the plain model to ONNX with a dynamic batch dimension (needs ``linlight[export]``).

    Args:
        model: the model (or a ``LitRegression`` holding it).
        path: the ``.onnx`` file to write.
        features: the number of inputs a row has (1 for the line).
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise CheckpointError("ONNX export needs the export extra: pip install 'linlight[export]'") from None
    path = Path(path)
    model = plain_model(model).eval().cpu()
    example = torch.linspace(0.5, 1.0, 2 * features).reshape(2, features)
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
