"""Reading checkpoints safely: ``torch.load(weights_only=True)`` only, so no code in a file ever runs.

``read_checkpoint`` turns every way a file can be wrong (missing, empty, truncated, random bytes, a
pickle with code in it, not a Lightning checkpoint) into a ``CheckpointError`` that says what is wrong. Whether
its weights are those of the model a command builds is checked there, for any model: the model is built from
the settings and the weights are loaded strictly (``linlight.parts.check_weights_fit``).
``SafeCheckpointIO`` is the Trainer plugin (Lightning's extension point for checkpoint I/O) that makes
Lightning load checkpoints through it and save them atomically.

Why not Lightning's own save: ``TorchCheckpointIO.save_checkpoint`` (``cloud_io._atomic_save``) serializes
into memory, then writes through an fsspec transaction, which for a local path writes a temporary file
in the system temp folder (``tempfile.mkstemp()``, not beside the checkpoint) and ``shutil.move``s it over
the old file, without fsync. Where the temp folder is another filesystem than the run (a tmpfs ``/tmp``,
runs on a network disk) the move is a copy into the open, truncated ``last.ckpt``: a kill or a full disk
mid-copy leaves it truncated, and the old checkpoint is gone. A killed save also leaves the temp file in
``/tmp``. ``SafeCheckpointIO`` writes beside the checkpoint, fsyncs, renames (``linlight.atomic``).
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

from linlight.atomic import write_atomically
from linlight.errors import CheckpointError, WriteFailed


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
    if need_training_state and not {"optimizer_states", "loops"} <= ckpt.keys():
        raise CheckpointError(f"{p} holds weights only (no optimizer or loop state), so training cannot resume from it")
    return ckpt


def next_epoch(ckpt: dict[str, Any]) -> int:
    """The first epoch a run resumed from this checkpoint will train (the epochs it has fully processed)."""
    return int(ckpt["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Write a checkpoint atomically, or raise ``WriteFailed`` naming the file and the cause.

    The file at ``path`` is the old checkpoint or the new one at every moment, whatever happens.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda f: torch.save(checkpoint, f))
    except OSError as e:
        raise WriteFailed("write checkpoint", path, e) from None


def checkpoint_summary(path: str | Path) -> str | None:
    """``"after N epochs"`` for a readable training checkpoint, else None."""
    try:
        return f"after {next_epoch(read_checkpoint(path, need_training_state=True))} epochs"
    except (CheckpointError, KeyError, TypeError):
        return None


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O: every load checked and ``weights_only=True``, every save atomic."""

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return read_checkpoint(path)

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's fsspec path
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        save_checkpoint(checkpoint, path)

    def remove_checkpoint(self, path) -> None:
        try:
            super().remove_checkpoint(path)
        except OSError as e:
            raise WriteFailed("remove old checkpoint", path, e) from None
