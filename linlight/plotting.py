"""The tutorial's plots: ``plot_predictions`` and the loss curves, as PNG files and TensorBoard images.

``Plots`` is a callback: every ``every_n_epochs`` it keeps a copy of the test predictions (a few floats),
and when training ends it draws them, so the TensorBoard image slider shows the line being learned without
slowing training. It writes ``predictions.png`` and ``loss_curves.png`` into the run folder.

    linlight fit --trainer.callbacks+=linlight.plotting.Plots     # scripts/train.py adds it for you
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import matplotlib

matplotlib.use("Agg")  # headless: files and TensorBoard, never a window

import matplotlib.pyplot as plt
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure


def plot_predictions(train_data, train_labels, test_data, test_labels, predictions=None) -> Figure:
    """The tutorial's plot: training data blue, testing data green, predictions red."""
    fig = plt.figure(figsize=(10, 7))
    plt.scatter(_np(train_data), _np(train_labels), c="b", s=4, label="Training data")
    plt.scatter(_np(test_data), _np(test_labels), c="g", s=4, label="Testing data")
    if predictions is not None:
        plt.scatter(_np(test_data), _np(predictions), c="r", s=4, label="Predictions")
    plt.legend(prop={"size": 14})
    return fig


def plot_loss_curves(epochs: list[int], train_loss: list[float], test_loss: list[float],
                     test_epochs: list[int] | None = None) -> Figure:
    """Train and test loss against epochs, as the tutorial draws them."""
    fig = plt.figure(figsize=(10, 7))
    plt.plot(epochs, train_loss, label="Train loss")
    plt.plot(test_epochs or epochs, test_loss, label="Test loss")
    plt.title("Training and test loss curves")
    plt.ylabel("Loss")
    plt.xlabel("Epochs")
    plt.legend()
    return fig


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t


class Plots(pl.Callback):
    """Predictions images during training (drawn at the end) and the tutorial's PNGs in the run folder.

    The loss curves are read back from the run's TensorBoard events, so a resumed run draws all its epochs.

    Args:
        every_n_epochs: epochs between two predictions images; ``None`` gives about ten per run.
    """

    def __init__(self, every_n_epochs: int | None = None) -> None:
        self.every_n_epochs = every_n_epochs
        self._snapshots: list[tuple[int, torch.Tensor]] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        every = self.every_n_epochs or max(1, (trainer.max_epochs or 1000) // 10)
        if trainer.current_epoch % every == 0:
            self._snapshot(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._snapshot(trainer, pl_module)
        out = Path(trainer.log_dir or trainer.default_root_dir)  # a broadcast: every process asks
        if not trainer.is_global_zero:
            return
        data = (*trainer.datamodule.train_data, *trainer.datamodule.test_data)
        logger = trainer.logger if isinstance(trainer.logger, TensorBoardLogger) else None
        for epoch, predictions in self._snapshots:
            fig = plot_predictions(*data, predictions)
            plt.title(f"epoch {epoch}")
            if logger is not None:
                logger.experiment.add_figure("predictions", fig, global_step=epoch, close=False)
            if epoch == self._snapshots[-1][0]:
                fig.savefig(out / "predictions.png")
            plt.close(fig)
        if logger is not None:
            logger.experiment.flush()
            fig = loss_figure(Path(logger.log_dir))
            fig.savefig(out / "loss_curves.png")
            logger.experiment.add_figure("loss_curves", fig, global_step=trainer.current_epoch)
            logger.experiment.flush()

    def _snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Keep the model's test predictions as they are at the start of this epoch."""
        epoch = trainer.current_epoch
        if not self._snapshots or self._snapshots[-1][0] != epoch:
            with torch.inference_mode():
                self._snapshots.append((epoch, pl_module(trainer.datamodule.test_data[0]).cpu()))


def loss_figure(run_dir: Path) -> Figure:
    """The loss curves of a run folder, from its TensorBoard events."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    train, val = (events.Scalars(tag) for tag in ("train/loss", "val/loss"))
    return plot_loss_curves([e.step for e in train], [e.value for e in train], [e.value for e in val],
                            [e.step for e in val])
