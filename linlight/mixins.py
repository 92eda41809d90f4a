"""What linlight's LightningModule adds to a plain one (``linlight.module.LitRegression``): three mixins, each
separable. Keep them, or drop any of them, when you copy the module; ``scripts/bench.py --only module`` measures
what each is worth.

- ``EpochLogging`` (speed): ``self.log(..., on_step=False, on_epoch=True)`` values are summed in the step and
  computed once per epoch, then handed to the logger (at step = epoch) and to ``trainer.callback_metrics``,
  where ``ModelCheckpoint``, ``EarlyStopping`` and the progress bar read them as they read Lightning's own.
  Lightning's ``self.log`` costs about half a millisecond a call; five calls an epoch doubled the reference fit.
  The epoch's mean is summed in float64 (Lightning sums in float32), so a full batch's loss comes back bit for
  bit. ``validate`` and ``test`` hand their final values to Lightning's ``self.log`` once, for its results table.
- ``StepsPerExecution`` (speed): with ``data.steps_per_execution`` K > 1 the data hands Lightning lists of K
  batches, and one Lightning step runs K optimizer steps (manual optimization), so Lightning's per-step cost is
  paid once per K batches. K = 1 is Lightning's automatic optimization, untouched.
- ``LearningRateOnResume`` (behaviour): a resumed fit restores the optimizer's state, its learning rate included;
  this puts back the ``lr`` the command was given (``--ckpt_path last --model.lr 0.05``). With a scheduler, the
  schedule owns the learning rate and it is left alone (the CLI refuses a new ``lr`` there).

Each works on any module that logs with ``self.log`` and takes ``lr`` as a hyperparameter.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.trainer.states import TrainerFn

Batch = tuple[torch.Tensor, torch.Tensor] | list[tuple[torch.Tensor, torch.Tensor]]  # a list: steps_per_execution


class EpochLogging(pl.LightningModule):
    """``self.log(name, value, on_step=False, on_epoch=True, ...)`` at the cost of an addition per step.

    Values logged that way are the sample-weighted mean over the epoch (``batch_size`` weights; one value logged
    once counts once), summed over DDP processes when ``sync_dist=True``. Any other ``self.log`` call (per step,
    another reduction, a ``Metric`` object, ``prog_bar``) goes to Lightning's as written.
    """

    def log(self, name: str, value: Any, prog_bar: bool = False, logger: bool | None = None,
            on_step: bool | None = None, on_epoch: bool | None = None, reduce_fx: Any = "mean",
            enable_graph: bool = False, sync_dist: bool = False, sync_dist_group: Any | None = None,
            add_dataloader_idx: bool = True, batch_size: int | None = None, metric_attribute: str | None = None,
            rank_zero_only: bool = False, **kwargs: Any) -> None:
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a Trainer: Lightning's log says so
            trainer = None
        fast = (on_step is False and on_epoch is True and reduce_fx in ("mean", torch.mean) and not prog_bar
                and not enable_graph and logger is not False and sync_dist_group is None and metric_attribute is None
                and not rank_zero_only and not kwargs and isinstance(value, (torch.Tensor, float, int))
                and trainer is not None)
        if not fast:
            super().log(name, value, prog_bar=prog_bar, logger=logger, on_step=on_step, on_epoch=on_epoch,
                        reduce_fx=reduce_fx, enable_graph=enable_graph, sync_dist=sync_dist,
                        sync_dist_group=sync_dist_group, add_dataloader_idx=add_dataloader_idx,
                        batch_size=batch_size, metric_attribute=metric_attribute, rank_zero_only=rank_zero_only,
                        **kwargs)
            return
        if trainer.sanity_checking:  # Lightning's pre-fit check of the validation step: nothing to keep
            return
        sums = self.__dict__.setdefault("_epoch_sums", {})
        count = 1 if batch_size is None else batch_size
        # float64, in order, added in place: a full batch's value comes back bit for bit, and a list of
        # per-step tensors would keep the heap from shrinking (+0.25x the data over an epoch of 10^8 points)
        weighted = torch.as_tensor(value).detach().double() * count
        if name in sums:
            sums[name][0].add_(weighted)
            sums[name][1] += count
        else:
            sums[name] = [weighted, count, sync_dist]

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self._publish()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._publish()

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._publish()

    def _publish(self) -> None:
        """This epoch's values: to the logger at step = epoch and to ``trainer.callback_metrics`` (fit), or once
        to Lightning's ``self.log`` (validate, test), which prints them and returns them from ``trainer.test``."""
        sums = self.__dict__.pop("_epoch_sums", None)
        if not sums or self.trainer.sanity_checking:
            return
        values = {}
        distributed = self.trainer.world_size > 1
        for name, (total, count, sync) in sums.items():
            if distributed and sync:
                count = torch.tensor(float(count), dtype=torch.float64, device=total.device)
                total, count = (self.trainer.strategy.reduce(t, reduce_op="sum") for t in (total, count))
            values[name] = (total / count).float()
        if self.trainer.state.fn != TrainerFn.FITTING:
            for name, value in values.items():  # already global: averaging equal values changes nothing
                super().log(name, value, on_step=False, on_epoch=True, sync_dist=True, batch_size=1)
            return
        self.trainer.callback_metrics.update(values)
        if self.logger is not None:
            self.logger.log_metrics({k: v.item() for k, v in values.items()}, step=self.current_epoch)


class StepsPerExecution(pl.LightningModule):
    """K batches per Lightning step (``data.steps_per_execution``), K optimizer steps in it.

    The data module hands a list of K ``(x, y)`` batches; this runs the module's ``training_step`` on each, with
    the order of Lightning's automatic optimization (step, zero_grad, backward, optimizer step) through Lightning's
    manual optimization (``manual_backward``, its optimizer wrapper), so ``global_step``, precision plugins and
    callbacks' optimizer hooks see every step. Schedulers step once per epoch (per step with interval "step").
    """

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = self.trainer.datamodule
        steps = getattr(getattr(datamodule, "hparams", None), "steps_per_execution", 1) if datamodule else 1
        if steps > 1 and stage == "fit":
            from linlight.errors import ConfigError

            # Lightning checks these settings against manual optimization before this hook: say it here
            for option, value, default in (("gradient_clip_val", self.trainer.gradient_clip_val, None),
                                           ("accumulate_grad_batches", self.trainer.accumulate_grad_batches, 1)):
                if value not in (default, 0):
                    raise ConfigError(
                        f"data.steps_per_execution {steps} runs the optimizer inside one Lightning step, where "
                        f"--trainer.{option} {value} cannot apply; leave it out or use data.steps_per_execution 1"
                    )
        self.automatic_optimization = steps == 1

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        if self.automatic_optimization:
            return super().training_step(batch, batch_idx)
        optimizer = self.optimizers()
        for part in batch:
            loss = super().training_step(part, batch_idx)
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            for config in self.trainer.lr_scheduler_configs:
                if config.interval == "step":
                    config.scheduler.step()
        return None

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        for part in batch if isinstance(batch, list) else [batch]:
            super().validation_step(part, batch_idx)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        for part in batch if isinstance(batch, list) else [batch]:
            super().test_step(part, batch_idx)

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        if not self.automatic_optimization:  # Lightning steps schedulers itself only in automatic optimization
            for config in self.trainer.lr_scheduler_configs:
                if config.interval != "epoch":
                    continue
                if config.reduce_on_plateau:  # on the monitored value, as Lightning does
                    monitored = self.trainer.callback_metrics.get(config.monitor)
                    if monitored is not None:
                        config.scheduler.step(monitored)
                else:
                    config.scheduler.step()


class LearningRateOnResume(pl.LightningModule):
    """The ``lr`` hyperparameter, not the checkpoint's, trains a resumed fit (without a scheduler)."""

    def on_train_start(self) -> None:
        super().on_train_start()
        # only a resume (lr_find's search sets its own rates, from its first step on); a scheduler owns the lr
        if self.trainer.ckpt_path is None or self.trainer.lr_scheduler_configs:
            return
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.hparams.lr
