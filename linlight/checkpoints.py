"""Reading checkpoints safely: ``torch.load(weights_only=True)`` only, so no code in a file ever runs.

``read_checkpoint`` turns every way a file can be wrong (missing, empty, truncated, random bytes, a
pickle with code in it, another model's checkpoint) into a ``CheckpointError`` that says what is wrong.
``SafeCheckpointIO`` is the Trainer plugin that makes Lightning itself load checkpoints through it.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from linlight.errors import CheckpointError

# The state_dict keys of the LightningModule for each tutorial model (the module holds it as ``model``).
MODEL_KEYS = {
    "v2": {"model.linear_layer.weight", "model.linear_layer.bias"},
    "model0": {"model.weights", "model.bias"},
}


def read_checkpoint(path: str | Path, need_training_state: bool = False) -> dict[str, Any]:
    """Load a linlight Lightning checkpoint on the CPU, or raise ``CheckpointError`` saying why not."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} is not a file")
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {p} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():  # torch's remarks on a foreign file's pickle protocol are noise here
            warnings.simplefilter("ignore")
            ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's wording: "Unsupported global: GLOBAL os.system" (<= 2.6), "unsupported GLOBAL os.system" (later)
        found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL (\S+)", str(e))
        if found:
            raise CheckpointError(
                f"refusing to load {p}: it holds a Python object ({found.group(1)}) where a checkpoint holds only "
                "tensors and plain data, and unpickling it could run code; linlight loads with weights_only=True"
            ) from None
        raise CheckpointError(
            f"refusing to load {p}: it is not a checkpoint that loads safely as tensors and plain data (corrupt, "
            "another kind of file, or a pickle that may run code); linlight loads with weights_only=True"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError):
        raise CheckpointError(f"{p} is not a readable PyTorch checkpoint (truncated or corrupt)") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "pytorch-lightning_version" not in ckpt:
        raise CheckpointError(
            f"{p} is not a Lightning checkpoint (no 'state_dict'/'pytorch-lightning_version'); a plain "
            "state_dict such as model.pth loads with linlight.export.load_model"
        )
    keys = {k for k in ckpt["state_dict"] if not k.startswith(("val_metrics.", "test_metrics."))}
    if keys not in MODEL_KEYS.values():
        raise CheckpointError(
            f"{p} is a checkpoint of another model: its weights are {sorted(keys)[:6]}, but linlight's "
            f"models have {' or '.join(str(sorted(v)) for v in MODEL_KEYS.values())}"
        )
    if need_training_state and not {"optimizer_states", "loops"} <= ckpt.keys():
        raise CheckpointError(f"{p} holds weights only (no optimizer or loop state), so training cannot resume from it")
    return ckpt


def next_epoch(ckpt: dict[str, Any]) -> int:
    """The first epoch a run resumed from this checkpoint will train (the epochs it has fully processed)."""
    return int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, with every load checked and restricted to ``weights_only=True``."""

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return read_checkpoint(path)
