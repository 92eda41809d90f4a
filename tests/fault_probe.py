"""Callbacks for trials, to aim a fault at a moment or watch a run: ``HoldSave``, ``Busy``, ``Progress``,
``LastEpochs`` and ``FailsAtTrainEnd``.

``HoldSave`` holds one save of ``last.ckpt`` open so a test can kill -9 right there.

``--trainer.callbacks+=fault_probe.HoldSave --trainer.callbacks.aim write --trainer.callbacks.marker M``:
at the ``nth`` write of ``last.ckpt`` (1 = the first) it pauses, with the marker file ``M`` created, either
halfway through the bytes of the temporary file (``aim=write``) or with the temporary file complete, just
before it is renamed over ``last.ckpt`` (``aim=replace``). The test waits for ``M`` and kills the process.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from linlight.atomic import TEMP_RE


class HoldSave(pl.Callback):
    def __init__(self, aim: str = "write", marker: str = "held", nth: int = 2, pause: float = 60.0) -> None:
        self.aim, self.marker, self.nth, self.pause = aim, Path(marker), nth, pause
        self.count = 0

    def _hold(self) -> None:
        self.marker.write_text(str(os.getpid()))
        time.sleep(self.pause)

    def _is_last(self, name: object) -> bool:
        """A write of last.ckpt: its temporary file, or the file itself (should a save ever write it in place)."""
        name = Path(str(name)).name
        m = TEMP_RE.fullmatch(name)
        return name == "last.ckpt" or (bool(m) and m.group("name") == "last.ckpt")

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        real_save, real_replace = torch.save, os.replace

        def save(obj, f, *args, **kwargs):
            if self.aim != "write" or not self._is_last(getattr(f, "name", "")):
                return real_save(obj, f, *args, **kwargs)
            self.count += 1
            if self.count != self.nth:
                return real_save(obj, f, *args, **kwargs)
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            data = buf.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            self._hold()
            f.write(data[len(data) // 2 :])
            return None

        def replace(src, dst, *args, **kwargs):
            if self.aim == "replace" and self._is_last(src):
                self.count += 1
                if self.count == self.nth:
                    self._hold()
            return real_replace(src, dst, *args, **kwargs)

        torch.save, os.replace = save, replace


class Busy(pl.Callback):
    """Keeps rank 0 busy outside any collective for ``seconds`` at the end of epoch ``epoch``."""

    def __init__(self, epoch: int = 20, seconds: float = 7.0, marker: str = "busy") -> None:
        self.epoch, self.seconds, self.marker = epoch, seconds, Path(marker)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch and trainer.is_global_zero:
            self.marker.write_text(str(os.getpid()))
            time.sleep(self.seconds)


class LastEpochs(pl.Callback):
    """At the start of every ``every``-th epoch, appends ``EPOCH HELD`` to the file ``record``: how many epochs
    ``last.ckpt`` holds then (``-`` while there is none), read back as a resume reads it."""

    def __init__(self, record: str = "last_epochs.txt", every: int = 10) -> None:
        self.record, self.every = Path(record), every

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        if epoch % self.every == 0:
            last = Path(trainer.checkpoint_callback.dirpath) / "last.ckpt"
            held = "-"
            if last.is_file():
                loops = torch.load(last, weights_only=True)["loops"]
                held = loops["fit_loop"]["epoch_progress"]["current"]["processed"]
            with self.record.open("a") as f:
                f.write(f"{epoch} {held}\n")


class FailsAtTrainEnd(pl.Callback):
    """A callback whose ``on_train_end`` raises, as a buggy third-party callback might."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise RuntimeError("FailsAtTrainEnd: a callback failed at the end of training")


class Progress(pl.Callback):
    """Writes the number of epochs trained so far into the file ``path`` after every epoch (for a test to pick
    its moment to kill the run)."""

    def __init__(self, path: str = "progress.txt") -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.path.write_text(str(trainer.current_epoch + 1))
