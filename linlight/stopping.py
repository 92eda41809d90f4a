"""Early stopping: Lightning's ``EarlyStopping`` on ``loss/val``, off unless a patience is given.

    linlight fit --early_stopping.patience 20                          # stop after 20 validations without improvement
    linlight fit --early_stopping.patience 20 --early_stopping.min_delta 1e-4

``RunEarlyStopping`` is the CLI's ``--early_stopping.*`` group, as ``RunCheckpoint`` is ``--checkpoint.*``.
Its ``patience`` defaults to ``None``, which means off: the CLI then leaves it out of the Trainer, so a run
without it is the plain run, hook for hook. The rule is Lightning's: after each validation ``loss/val``
improves if ``loss/val + min_delta < best`` (float32, strict); ``patience`` validations in a row without an
improvement stop training after that epoch. linlight publishes ``loss/val`` in the module's
``on_validation_epoch_end``, before Lightning runs the check (at the end of the training epoch when
validating every epoch, else at the end of validation), so the check always sees the epoch's own value.

Its state (best, wait count, why it stopped) is saved in every checkpoint, so a resumed run stops where the
uninterrupted one would; a run that stopped early stays stopped when resumed with the same patience.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason

from linlight.errors import ConfigError


class RunEarlyStopping(EarlyStopping):
    """Stops training when ``loss/val`` has not improved by more than ``min_delta`` for ``patience`` validations.

    Args:
        patience: validations in a row without improvement that stop training; ``None`` (the default) turns
            early stopping off.
        min_delta: how much lower than the best so far ``loss/val`` must be to count as an improvement.
    """

    def __init__(self, patience: int | None = None, min_delta: float = 0.0) -> None:
        if patience is not None and patience < 1:
            raise ConfigError(f"early_stopping.patience must be a positive integer (or null: off), got {patience}")
        if not (math.isfinite(min_delta) and min_delta >= 0):
            raise ConfigError(f"early_stopping.min_delta must be zero or a positive number, got {min_delta}")
        super().__init__(monitor="loss/val", mode="min", patience=patience or 0, min_delta=min_delta)
        self.enabled = patience is not None
        self.delta = min_delta  # Lightning keeps it negated for mode "min"
        self.improved_at: int | None = None  # the epoch of the latest improvement judged in this fit

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.enabled and stage == "fit" and trainer.limit_val_batches == 0:
            raise ConfigError("early stopping watches loss/val, but --trainer.limit_val_batches 0 turns validation "
                              "off; leave out --early_stopping.patience or validate")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        patience = self.patience
        super().load_state_dict(state_dict)
        self.patience = patience  # the configured one (the run's own unless given anew), not the checkpoint's

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled:  # off (patience None) does nothing, in the CLI's Trainer or any other
            self._check(trainer, pl_module, super().on_train_epoch_end)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled:
            self._check(trainer, pl_module, super().on_validation_end)

    def _check(self, trainer: pl.Trainer, pl_module: pl.LightningModule, check: Any) -> None:
        """Run Lightning's check; note the epoch if it judged an improvement (it then takes the new value as
        its best), for ``RunCheckpoint`` to keep that epoch's weights as the best checkpoint."""
        best = self.best_score
        check(trainer, pl_module)
        if self.best_score is not best:
            self.improved_at = trainer.current_epoch

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled:
            return
        if self.stopping_reason is EarlyStoppingReason.PATIENCE_EXHAUSTED and self.wait_count >= self.patience:
            trainer.should_stop = True  # resumed after it stopped, with no more patience: it stays stopped
        else:  # going on (a fresh run, or more patience than it stopped with)
            self.stopping_reason, self.stopped_epoch = EarlyStoppingReason.NOT_STOPPED, 0
            self.stopping_reason_message = None

    @property
    def stopped_early(self) -> bool:
        return self.stopping_reason is not EarlyStoppingReason.NOT_STOPPED

    def describe(self) -> str:
        """Where and why training stopped, for the end-of-run summary."""
        if self.stopping_reason is EarlyStoppingReason.PATIENCE_EXHAUSTED:
            return (f"early at epoch {self.stopped_epoch}: {self.monitor} did not improve by more than min_delta "
                    f"{self.delta:g} for {self.wait_count} validations in a row (best {self.best_score.item():.4g})")
        return f"early at epoch {self.stopped_epoch}: {self.stopping_reason_message}"
