"""What TensorBoard shows of a run: the tags, the step axis, the custom-scalars layout and the HPARAMS record.

TensorBoard groups tags by the part before the first ``/``, sorts the groups by name and opens the first
two (TIME SERIES and SCALARS alike; the rest start collapsed). linlight's tags are laid out for that:

- ``loss/train``, ``loss/val``: the loss curves (the tutorial's "test loss" is ``loss/val``), every epoch;
- ``params/weight``, ``params/bias`` beside the true line's ``params/weight_true``, ``params/bias_true``
  and their absolute errors ``params/weight_error``, ``params/bias_error``, every epoch, for a model that is a
  line (``LearnedLine``; data from a CSV file has no true line: only the learned one);
- ``val/mae``, ``val/mse``, ``val/r2``: torchmetrics on the validation split, every epoch (collapsed);
- ``test/loss``, ``test/mae``, ``test/mse``, ``test/r2``: one point per ``linlight test``, at the epoch the
  tested weights come from (collapsed, so no single-point chart is in the view TensorBoard opens on);
- images (``linlight.plotting.Plots``) in ``plots/``, which sorts after ``params``.

The step of every epoch-level scalar is the epoch (``RunBoard``): linlight's own and a module's own
``self.log(..., on_epoch=True)`` alike (Lightning would put those at the number of optimizer steps). CUSTOM
SCALARS draws the two losses in one chart and, for a line, learned against true in one chart each: only
charts of tags the run logs. HPARAMS: each run's settings (``RunBoard``); TensorBoard takes its columns
from all the runs it shows, the settings that differ between them first (so a sweep's searched settings
lead), and every scalar tag as a metric column, the run's last value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard.summary import hparams

from linlight.errors import WriteFailed

# TensorBoard's CUSTOM SCALARS tab, as ``{title: [chart kind, [tag regexes]]}``. Its tags are regular
# expressions matched at the start of a tag (re.match), so each is anchored at the end too.
LOSS_CHARTS = {"loss: train and val": ["Multiline", ["^loss/train$", "^loss/val$"]]}
LINE_CHARTS = {
    "weight: learned, and true (the flat line)": ["Multiline", ["^params/weight$", "^params/weight_true$"]],
    "bias: learned, and true (the flat line)": ["Multiline", ["^params/bias$", "^params/bias_true$"]],
}
ERROR_CHARTS = {"absolute error (weight, bias)": ["Multiline", ["^params/weight_error$", "^params/bias_error$"]]}


class RunLogger(TensorBoardLogger):
    """Lightning's TensorBoard logger for a linlight run folder, with the run's layout and HPARAMS record.

    A step's scalars go into one event (one write), not one event each as ``add_scalar`` writes them: with
    eleven scalars an epoch, that is most of the logger's cost. TensorBoard reads both the same way.

    A resumed run (``purge_step`` set) starts its event file in a later second than the run's earlier ones:
    TensorBoard reads a run's files in name order, the names begin with the second a file was opened in, and
    within one second the process ids would decide, so a run resumed at once could show its epochs shuffled.

    A failed event write (a full disk, a quota, a read-only folder) is one ``WriteFailed`` naming the run
    folder. TensorBoard writes events from a background thread, which on an ``OSError`` prints it as a
    thread traceback, drops the queued events and dies; the error comes back at the next write or flush,
    which Lightning re-raises as "you tried to log 0.01 which is currently not supported". The thread's
    duplicate report is kept off stderr, and a failed run's final flush fails quietly (the first error is the
    one to report). Checkpoints are written only after a successful flush (``RunCheckpoint``), so the events
    of every epoch a checkpoint holds are on disk.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epoch_step: int | None = None  # where Lightning's epoch-level values go (set by ``RunBoard``)
        _quiet_event_writer_thread()
        if kwargs.get("purge_step") is not None:
            opened = [int(p.name.split(".")[3]) for p in Path(self.log_dir).glob("events.out.tfevents.*")]
            while opened and int(time.time()) <= max(opened):
                time.sleep(0.02)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if "epoch" in metrics and self.epoch_step is not None:  # Lightning's epoch-end values: at the epoch
            metrics = {k: v for k, v in metrics.items() if k != "epoch"}
            step = self.epoch_step
        try:
            if self._prefix or not all(isinstance(v, (int, float)) or getattr(v, "ndim", 1) == 0
                                       for v in metrics.values()):
                super().log_metrics(metrics, step)
                return
            values = [Summary.Value(tag=k, simple_value=float(v)) for k, v in metrics.items()]
            self.experiment._get_file_writer().add_summary(Summary(value=values), step)
        except OSError as e:
            raise self._failed(e) from None
        except ValueError as e:  # Lightning re-raises any add_scalar error as "you tried to log X ..."
            if isinstance(e.__cause__, OSError):
                raise self._failed(e.__cause__) from None
            raise

    def log_hyperparams(self, params: Any, metrics: dict[str, Any] | None = None, step: int | None = None) -> None:
        try:
            super().log_hyperparams(params, metrics, step)
        except OSError as e:
            raise self._failed(e) from None

    def save(self) -> None:
        try:
            super().save()
        except OSError as e:
            raise self._failed(e) from None

    def finalize(self, status: str) -> None:
        try:
            super().finalize(status)
        except OSError as e:
            if status == "success":
                raise self._failed(e) from None

    def _failed(self, e: OSError) -> WriteFailed:
        return WriteFailed("write TensorBoard logs in", self.log_dir, e)

    def describe_run(self, settings: dict[str, bool | int | float | str], charts: dict[str, list]) -> None:
        """Write the run's custom-scalars layout and its HPARAMS record (its settings).

        The record is the session's start (and end) only, not an experiment summary: TensorBoard shows the
        experiment summary of one run, arbitrarily chosen, as the columns of every run, in the order of their
        names, the first five ticked; without one it takes the columns from all the runs' settings, those
        that differ between them first, and every scalar tag as a metric (the run's last value), so no extra
        single-point ``hparams/...`` scalars are written either.
        """
        try:
            writer = self.experiment
            writer.add_custom_scalars({"linlight": charts})
            _experiment, start, end = hparams(settings, {})
            for summary in (start, end):
                writer._get_file_writer().add_summary(summary)
            writer.flush()
        except OSError as e:
            raise self._failed(e) from None


def _quiet_event_writer_thread() -> None:
    """Keep TensorBoard's writer thread from printing an ``OSError`` the training process raises anyway."""
    previous = threading.excepthook
    if getattr(previous, "linlight_quiet", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
            return
        previous(args)

    hook.linlight_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def hparams_settings(*sources: Mapping[str, Any], **more: Any) -> dict[str, bool | int | float | str]:
    """A run's settings as HPARAMS columns: a part given by ``class_path`` as its class (``optimizer``
    ``torch.optim.Adam``) and its ``init_args`` beside it (``optimizer.betas``). Unset settings (``None``) are
    left out, so a column has one type in every run (a number column shows 1024, not a string's "1024.0")."""
    flat: dict[str, bool | int | float | str] = {}

    def add(key: str, value: Any) -> None:
        if value is None or key.startswith("_"):
            return
        if isinstance(value, Mapping) and "class_path" in value:
            flat[key] = str(value["class_path"])
            for k, v in (value.get("init_args") or {}).items():
                add(f"{key}.{k}", v)
        elif isinstance(value, (bool, int, float, str)):
            flat[key] = value
        else:
            flat[key] = str(value)

    for source in (*sources, more):
        for key, value in source.items():
            add(key, value)
    return flat


class RunBoard(pl.Callback):
    """What a run shows in TensorBoard beyond its scalars, and on which step axis (with a ``RunLogger``).

    At the start of a fit it writes the run's HPARAMS record (the module's and the data's settings and
    ``max_epochs``) and its custom-scalars layout (the loss chart, and a ``LearnedLine``'s charts when it
    applies). Lightning writes the values of ``self.log(..., on_epoch=True)`` at the number of optimizer steps
    so far; this puts them at the epoch, as linlight's own are, and those of ``validate``/``test`` at the epoch
    the evaluated weights come from.

    Args:
        weights_epoch: for an evaluation of a checkpoint, the epoch its weights come from.
    """

    def __init__(self, weights_epoch: int = 0) -> None:
        self.weights_epoch = weights_epoch

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = trainer.logger
        if not isinstance(logger, RunLogger) or not trainer.is_global_zero:
            return
        charts = dict(LOSS_CHARTS)
        for callback in trainer.callbacks:
            if isinstance(callback, LearnedLine):
                charts.update(callback.charts(trainer, pl_module))
        datamodule = trainer.datamodule
        logger.describe_run(hparams_settings(pl_module.hparams, datamodule.hparams if datamodule else {},
                                             max_epochs=trainer.max_epochs), charts)

    @staticmethod
    def _at(trainer: pl.Trainer, step: int | None) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, RunLogger):
                logger.epoch_step = step

    # Lightning logs epoch-level values after the epoch-end hooks: the step is set there and unset after
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._at(trainer, None)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._at(trainer, trainer.current_epoch)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING
        self._at(trainer, trainer.current_epoch if fitting else self.weights_epoch)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._at(trainer, None)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._at(trainer, self.weights_epoch)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.weights_epoch = max(trainer.current_epoch - 1, 0)  # a test after this fit tests these weights


class LearnedLine(pl.Callback):
    """What a model that is a line learned, every epoch: ``params/weight`` and ``params/bias``, and where the
    data comes from a known line (``datamodule.true_line``) the true ``params/weight_true``,
    ``params/bias_true`` and the absolute errors ``params/weight_error``, ``params/bias_error``.

    A line: one input feature, and a model whose parameters are one weight and one bias (the tutorial's two
    models, ``nn.Linear(1, 1)``). For any other model or data it logs nothing and adds no charts.
    """

    def __init__(self) -> None:
        self._params: list[torch.nn.Parameter] | None = None
        self._true: tuple[torch.Tensor, torch.Tensor] | None = None

    @staticmethod
    def _line(trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[torch.nn.Parameter] | None:
        params = list(getattr(pl_module, "model", pl_module).parameters())
        features = getattr(trainer.datamodule, "num_features", 1)
        return params if features == 1 and len(params) == 2 and all(p.numel() == 1 for p in params) else None

    @staticmethod
    def _true_line(trainer: pl.Trainer) -> tuple[float, float] | None:
        return getattr(trainer.datamodule, "true_line", None)

    def charts(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, list]:
        """The custom-scalars charts of what this logs in this run (none if the model is not a line)."""
        if self._line(trainer, pl_module) is None:
            return {}
        return {**LINE_CHARTS, **(ERROR_CHARTS if self._true_line(trainer) is not None else {})}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._params = self._line(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._params is None:
            return
        weight, bias = (p.detach().reshape(()) for p in self._params)
        values = {"params/weight": weight, "params/bias": bias}
        true_line = self._true_line(trainer)
        if true_line is not None:
            if self._true is None or self._true[0].device != weight.device:  # made once, not every epoch
                self._true = tuple(torch.tensor(v, device=weight.device) for v in true_line)
            true_w, true_b = self._true
            values.update({"params/weight_true": true_w, "params/bias_true": true_b,
                           "params/weight_error": (weight - true_w).abs(), "params/bias_error": (bias - true_b).abs()})
        for name, value in values.items():
            pl_module.log(name, value, on_step=False, on_epoch=True)
