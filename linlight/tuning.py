"""``linlight lr_find``: Lightning's learning-rate finder (``Tuner.lr_find``) as a subcommand.

    linlight lr_find                                        # the reference: 100 SGD steps, lr from 1e-6 to 1
    linlight lr_find --data.noise_std 0.1 --num_training 200

LightningCLI runs ``Trainer`` methods as subcommands; ``LinlightTrainer.lr_find`` is that method. It trains
``num_training`` steps from the model's initial weights with the learning rate growing from ``min_lr`` to
``max_lr``, and suggests the rate where the (smoothed) training loss falls fastest. Lightning restores the
initial weights afterwards and removes its temporary ``.lr_find_*.ckpt``.

Where it writes: a run folder of its own, ``lightning_logs/version_N/``, claimed as a fit's is, so
TensorBoard shows the search beside the runs it is for: ``lr_find.png`` (the training loss measured at each
step against its learning rate, the suggestion marked), its points as ``lr_find.csv``, the same figure as the
TensorBoard image ``lr_find/loss_vs_lr``, and ``config.yaml``.
It has no ``checkpoints/`` folder, so ``--ckpt_path last`` and ``linlight test`` never take it for a
trained run. The command ends with the suggestion and the ``linlight fit`` command that trains with it,
beside the search (its root given, absolute) from any folder.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import matplotlib

matplotlib.use("Agg")  # headless: a file and TensorBoard, never a window

import matplotlib.pyplot as plt
from jsonargparse import Namespace, namespace_to_dict
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.tuner import Tuner
from lightning.pytorch.tuner.lr_finder import _LRFinder
from matplotlib.figure import Figure

from linlight.errors import ConfigError, DivergedError
from linlight.summary import shell, tensorboard_command

# Lightning's info lines about the search's own temporary checkpoint and loop, a file the user never sees
QUIET_LOGS = ("lightning.pytorch.trainer.connectors.checkpoint_connector", "lightning.pytorch.utilities.rank_zero")
SKIP_BEGIN, SKIP_END = 10, 1  # the points Lightning's suggestion leaves out at each end of the curve
# settings of the search itself, not of the training it prepares
SEARCH_ONLY = {"min_lr", "max_lr", "num_training", "mode", "early_stop_threshold", "config", "model.lr",
               "data.predict_x", "data.predict_csv", "predictions.output"}


class LinlightTrainer(pl.Trainer):
    """Lightning's ``Trainer``, with the learning-rate finder as a method the CLI runs as ``linlight lr_find``."""

    lr_finder: _LRFinder | None = None
    suggested_lr: float | None = None
    lr_losses: list[float] | None = None  # the measured training loss of each step of the search

    def lr_find(
        self,
        model: pl.LightningModule,
        datamodule: pl.LightningDataModule | None = None,
        min_lr: float = 1e-6,
        max_lr: float = 1.0,
        num_training: int = 100,
        mode: Literal["exponential", "linear"] = "exponential",
        early_stop_threshold: float | None = 4.0,
    ) -> float:
        """Find a learning rate: train from the initial weights with a growing learning rate, suggest one.

        Args:
            model: the model, at its initial weights (restored after the search).
            datamodule: the data to train on.
            min_lr: the learning rate of the first step.
            max_lr: the learning rate of the last step.
            num_training: optimizer steps of the search, one learning rate each.
            mode: how the learning rate grows from step to step.
            early_stop_threshold: stop the search once the loss is this many times its lowest; ``null``: never.
        """
        if not 0 < min_lr < max_lr:
            raise ConfigError(f"lr_find needs 0 < --min_lr < --max_lr, got --min_lr {min_lr} --max_lr {max_lr}")
        if num_training < SKIP_BEGIN + SKIP_END + 2:
            raise ConfigError(f"--num_training must be at least {SKIP_BEGIN + SKIP_END + 2}: the suggestion leaves "
                              f"out the first {SKIP_BEGIN} and the last {SKIP_END} steps, got {num_training}")
        steps = getattr(getattr(datamodule, "hparams", None), "steps_per_execution", 1)
        if steps > 1:
            raise ConfigError("lr_find takes one learning rate per Lightning step: use data.steps_per_execution 1")
        max_epochs, self.fit_loop.max_epochs = self.fit_loop.max_epochs, -1  # the search's steps bound it
        measured = _MeasuredLosses(model)
        try:
            with _quiet(*QUIET_LOGS):
                finder = Tuner(self).lr_find(model, datamodule=datamodule, min_lr=min_lr, max_lr=max_lr,
                                             num_training=num_training, mode=mode,
                                             early_stop_threshold=early_stop_threshold, update_attr=False)
        except DivergedError:
            raise ConfigError(f"the loss diverged during the search before --max_lr {max_lr}: lower --max_lr, or "
                              "let the search stop early (--early_stop_threshold)") from None
        finally:
            self.fit_loop.max_epochs = max_epochs
            measured.stop()
        suggestion = finder.suggestion(skip_begin=SKIP_BEGIN, skip_end=SKIP_END) if finder is not None else None
        if suggestion is None:
            raise ConfigError(f"lr_find found no learning rate to suggest: the search stopped after "
                              f"{len(finder.results['lr']) if finder else 0} steps; raise --num_training or "
                              "--early_stop_threshold")
        self.lr_finder, self.suggested_lr = finder, suggestion
        self.lr_losses = measured.losses[: len(finder.results["lr"])]
        if self.is_global_zero:
            self._save_plot(finder.results["lr"], self.lr_losses, suggestion, finder.mode)
        return suggestion

    def _save_plot(self, lrs: list[float], losses: list[float], suggestion: float, mode: str) -> None:
        """``lr_find.png`` and its points, ``lr_find.csv``, in the run folder; the figure as a TensorBoard image."""
        run = Path(self.log_dir)
        rows = "".join(f"{lr!r},{loss!r}\n" for lr, loss in zip(lrs, losses))
        (run / "lr_find.csv").write_text("lr,loss\n" + rows)
        fig = lr_find_figure(lrs, losses, suggestion, mode)
        fig.savefig(run / "lr_find.png")
        if isinstance(self.logger, TensorBoardLogger):
            self.logger.experiment.add_figure("lr_find/loss_vs_lr", fig, global_step=0)  # closes the figure
            self.logger.experiment.flush()
        plt.close(fig)


class _MeasuredLosses:
    """The training loss of each step of the search, as measured: what the model's ``training_step`` returns.

    Lightning's finder keeps a smoothed loss only, and its smoothing's bias correction is one step off: it
    divides the first point by ``1 - beta**2`` instead of ``1 - beta``, so its curve starts at half the
    initial loss and climbs. The plot shows these instead; the suggestion stays Lightning's. (The finder runs
    with its own callback alone, so the step is watched on the model, until ``stop``.)
    """

    def __init__(self, model: pl.LightningModule) -> None:
        self.losses: list[float] = []
        self.model = model
        step = model.training_step

        def training_step(*args: Any, **kwargs: Any) -> Any:
            loss = step(*args, **kwargs)
            self.losses.append(loss.item() if loss is not None else float("nan"))
            return loss

        model.training_step = training_step  # (an instance attribute: the class's method is untouched)

    def stop(self) -> None:
        del self.model.training_step


def lr_find_figure(lrs: list[float], losses: list[float], suggestion: float, mode: str = "exponential") -> Figure:
    """The training loss against the learning rate, the suggested rate marked (a red dot)."""
    fig, ax = plt.subplots()
    ax.plot(lrs, losses)
    if mode == "exponential":
        ax.set_xscale("log")
    ax.set_xlabel("Learning rate")
    ax.set_ylabel("Training loss (measured at each step)")
    if suggestion in lrs:
        i = lrs.index(suggestion)
        ax.plot(lrs[i], losses[i], markersize=10, marker="o", color="red")
    ax.set_title(f"lr_find: suggested lr {suggestion:.3g}")
    fig.tight_layout()
    return fig


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Hold back the info lines of these loggers (warnings still show)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def fit_arguments(config: Namespace, defaults: Namespace, root: str | Path, csv: str | None = None) -> list[str]:
    """The ``linlight fit`` options for the settings of ``config`` that differ from ``defaults``.

    The search's own settings are left out. Paths are absolute, so the command runs from any folder and trains
    beside the search: ``root`` (where the search's run folder is) as ``--trainer.default_root_dir``, always;
    ``csv``, the data file; a checkpoint folder.
    """
    args = []
    for key, value in config.items():
        if key in SEARCH_ONLY or key.endswith("__path__") or value == defaults.get(key):
            continue
        if key == "trainer.default_root_dir":
            continue  # given below, absolute, whether it was set or not
        if key == "data.csv" and csv is not None:
            value = csv
        if key == "checkpoint.dirpath" and value is not None:
            value = Path(value).resolve()
        args += [f"--{key}", command_option(value)]
    return [*args, "--trainer.default_root_dir", str(Path(root).resolve())]


def command_option(value: Any) -> str:
    """A setting as the command line writes it (YAML/JSON scalars, JSON for lists and classes)."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float, str, Path)):
        return str(value)
    plain = namespace_to_dict(value) if isinstance(value, Namespace) else value
    if isinstance(plain, list):
        plain = [namespace_to_dict(v) if isinstance(v, Namespace) else v for v in plain]
    return json.dumps(plain, default=str)


def lr_find_summary(trainer: LinlightTrainer, fit_program: Sequence[str], fit_args: Sequence[str]) -> list[str]:
    """The lines ``linlight lr_find`` prints at the end: the suggestion, the plot, the command to train with it."""
    finder, lr = trainer.lr_finder, trainer.suggested_lr
    lrs = finder.results["lr"]
    run = Path(trainer.log_dir).resolve()
    return [
        f"linlight: lr_find: {len(lrs)} steps, learning rate {lrs[0]:.3g} to {lrs[-1]:.3g} ({finder.mode})",
        f"  suggested    model.lr {lr:.3g}   (where the training loss falls fastest)",
        f"  plot         {run / 'lr_find.png'}   (its points: {run / 'lr_find.csv'})",
        f"  run          {run}",
        f"  TensorBoard  {tensorboard_command(run.parent)}",
        f"  train        {shell([*fit_program, '--model.lr', f'{lr:.3g}', *fit_args])}",
    ]
