"""The tutorial's plots: ``plot_predictions`` and the loss curves, as PNG files and TensorBoard images.

``Plots`` is a callback: at a few epochs (0, then 1-2-5 steps: 2, 5, 10, 20, 50, ..., and the end) it keeps
a copy of the test predictions (a few floats), and when training ends it draws them, so TensorBoard's image
slider shows the line being learned, from the untrained start, without slowing training. TensorBoard keeps
ten images per tag, so there are at most ten. It writes the tutorial's ``predictions.png`` and
``loss_curves.png`` into the run folder; the TensorBoard images (``plots/predictions``, ``plots/loss_curves``)
are drawn at the size TensorBoard shows them, so their text is readable without "actual size".

    linlight fit --trainer.callbacks+=linlight.plotting.Plots     # scripts/train.py adds it for you
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as pl
import matplotlib

matplotlib.use("Agg")  # headless: files and TensorBoard, never a window

import matplotlib.pyplot as plt
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure

MAX_IMAGES = 10  # TensorBoard's default number of images it keeps per tag (--samples_per_plugin)
TUTORIAL = {"figsize": (10, 7), "size": 4, "fontsize": 14}  # the tutorial's plot_predictions
BOARD = {"figsize": (3.5, 2.45), "size": 6, "fontsize": 8}  # TensorBoard's image card is 350 px wide


def plot_predictions(train_data, train_labels, test_data, test_labels, predictions=None, *,
                     figsize=(10, 7), size: float = 4, fontsize: float = 14) -> Figure:
    """The tutorial's plot: training data blue, testing data green, predictions red."""
    fig = plt.figure(figsize=figsize)
    plt.scatter(_np(train_data), _np(train_labels), c="b", s=size, label="Training data")
    plt.scatter(_np(test_data), _np(test_labels), c="g", s=size, label="Testing data")
    if predictions is not None:
        plt.scatter(_np(test_data), _np(predictions), c="r", s=size, label="Predictions")
    plt.legend(prop={"size": fontsize})
    return fig


def plot_loss_curves(epochs: list[int], train_loss: list[float], test_loss: list[float],
                     test_epochs: list[int] | None = None, *, figsize=(10, 7), fontsize: float = 10) -> Figure:
    """Train and test loss against epochs, as the tutorial draws them."""
    fig = plt.figure(figsize=figsize)
    plt.plot(epochs, train_loss, label="Train loss")
    plt.plot(epochs if test_epochs is None else test_epochs, test_loss, label="Test loss")
    plt.title("Training and test loss curves", fontsize=fontsize + 2)
    plt.ylabel("Loss", fontsize=fontsize)
    plt.xlabel("Epochs", fontsize=fontsize)
    plt.legend(prop={"size": fontsize})
    return fig


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t


def snapshot_epochs(max_epochs: int, every_n_epochs: int | None = None) -> list[int]:
    """The epochs whose predictions are drawn: 0, then 1-2-5 steps (or every ``every_n_epochs``), and the end.

    At most ``MAX_IMAGES``: the earliest steps are dropped first, since the line moves most at the start
    but epochs 1 and 2 look like epoch 0.
    """
    if every_n_epochs:
        between = list(range(every_n_epochs, max_epochs, every_n_epochs))
    else:
        between = sorted(m * 10**k for k in range(len(str(max_epochs))) for m in (1, 2, 5) if m * 10**k < max_epochs)
    return [0, *between[-(MAX_IMAGES - 2):], max_epochs] if max_epochs > 0 else [0]


def sample_every(n_epochs: int) -> int:
    """An even stride giving about a hundred points (the tutorial keeps every 10th epoch of its 1000)."""
    every = round(n_epochs / 100)
    return every + every % 2 if every > 1 else 1


class Plots(pl.Callback):
    """Predictions images during training (drawn at the end) and the tutorial's PNGs in the run folder.

    The loss curves are read back from the run's TensorBoard events, so a resumed run draws all its epochs.

    Args:
        every_n_epochs: epochs between two predictions images; ``None`` gives epoch 0, 1-2-5 steps and the end.
    """

    def __init__(self, every_n_epochs: int | None = None) -> None:
        self.every_n_epochs = every_n_epochs
        self._epochs: set[int] = set()
        self._snapshots: list[tuple[int, torch.Tensor]] = []

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epochs = set(snapshot_epochs(trainer.max_epochs or 1000, self.every_n_epochs))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch in self._epochs:
            self._snapshot(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._snapshot(trainer, pl_module)
        out = Path(trainer.log_dir or trainer.default_root_dir)  # a broadcast: every process asks
        if not trainer.is_global_zero:
            return
        data = (*trainer.datamodule.train_data, *trainer.datamodule.test_data)
        logger = trainer.logger if isinstance(trainer.logger, TensorBoardLogger) else None
        fig = plot_predictions(*data, self._snapshots[-1][1], **TUTORIAL)
        fig.savefig(out / "predictions.png")
        plt.close(fig)
        if logger is None:
            return
        for epoch, predictions in self._snapshots:
            fig = plot_predictions(*data, predictions, **BOARD)
            plt.title(f"after {epoch} epochs", fontsize=BOARD["fontsize"] + 1)
            plt.tick_params(labelsize=BOARD["fontsize"] - 1)
            fig.tight_layout()
            logger.experiment.add_figure("plots/predictions", fig, global_step=epoch)
        logger.experiment.flush()
        events = Path(logger.log_dir)
        fig = loss_figure(events)
        fig.savefig(out / "loss_curves.png")
        plt.close(fig)
        fig = loss_figure(events, figsize=BOARD["figsize"], fontsize=BOARD["fontsize"])
        plt.tick_params(labelsize=BOARD["fontsize"] - 1)
        fig.tight_layout()
        logger.experiment.add_figure("plots/loss_curves", fig, global_step=trainer.current_epoch)
        logger.experiment.flush()

    def _snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Keep the model's test predictions as they are at the start of this epoch."""
        epoch = trainer.current_epoch
        if not self._snapshots or self._snapshots[-1][0] != epoch:
            with torch.inference_mode():
                self._snapshots.append((epoch, pl_module(trainer.datamodule.test_data[0]).cpu()))


def loss_figure(run_dir: Path, **style) -> Figure:
    """The loss curves of a run folder, from its TensorBoard events, one point every few epochs.

    Plotting every epoch of a long run draws a solid band where the loss alternates between two values at
    its plateau; sampling at a fixed, even stride draws the line the tutorial shows. The stride is counted
    back from the last epoch, so the curves end at the losses the run ended with (those the summary prints),
    on whichever of the two values the plateau ended.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    # A resumed run's event file starts with its purge step, and TensorBoard's reader says so as a warning
    # ("Detected out of order event.step ... Purging"): that purge is the resume working, nothing to report.
    reader_log = logging.getLogger("tensorboard")
    level = reader_log.level
    reader_log.setLevel(logging.ERROR)
    try:
        events.Reload()
    finally:
        reader_log.setLevel(level)
    train, val = (events.Scalars(tag) for tag in ("loss/train", "loss/val"))
    every = sample_every(len(train))
    last = train[-1].step if train else 0
    if len(val) == len(train):  # validated every epoch: the same points as the train curve
        val = [e for e in val if (last - e.step) % every == 0]
    train = [e for e in train if (last - e.step) % every == 0]
    return plot_loss_curves([e.step for e in train], [e.value for e in train], [e.value for e in val],
                            [e.step for e in val], **style)
