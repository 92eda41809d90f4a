"""The LightningModule: a tutorial model (``linlight.models``) with its L1 loss, SGD optimizer and logging.

One shared step serves train, validation and test. Once per epoch of ``fit`` it logs the loss curves
``loss/train`` and ``loss/val`` (the tutorial's test loss), torchmetrics' MAE, MSE and R² on the
validation split as ``val/mae``, ``val/mse``, ``val/r2``, and what the model learned: ``params/weight`` and
``params/bias`` beside the line's ``params/weight_true`` and ``params/bias_true``, and their absolute errors
``params/weight_error`` and ``params/bias_error`` (data from a CSV file has no true line: those four are not
logged). The TensorBoard step of all these scalars is the epoch.
``validate`` and ``test`` report ``{stage}/loss``, ``{stage}/mae``, ... once, at the step of the epoch the
evaluated weights come from. Why these tags: ``linlight/board.py``.

Why not ``self.log`` in the step: Lightning's ``self.log`` costs about 0.7 ms a call (its result
collection moves itself to the device on every call), more than a whole epoch of this model. So the step
only accumulates, and the epoch-end hook computes the values once, hands them to the logger
(``logger.log_metrics``) and to ``trainer.callback_metrics``, where ``ModelCheckpoint``, ``EarlyStopping``
and the progress bar read them as if they had been logged with ``self.log(..., on_epoch=True)``.

Run it through the CLI (``linlight fit``) or a ``Trainer``:

    trainer.fit(LitLinearRegression(arch="v2", lr=0.01), datamodule=LineDataModule())
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn

from linlight.board import RunLogger
from linlight.checkpoints import next_epoch
from linlight.errors import ConfigError, DivergedError
from linlight.metrics import RegressionMetrics
from linlight.models import Arch, build_model

Batch = tuple[torch.Tensor, torch.Tensor] | list[tuple[torch.Tensor, torch.Tensor]]  # a list: steps_per_execution


def parts(batch: Batch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The ``(x, y)`` batches in one Lightning batch: itself, or the K of ``data.steps_per_execution``."""
    return batch if isinstance(batch[0], (tuple, list)) else [batch]


class LitLinearRegression(pl.LightningModule):
    """Fits ``y = weight * x + bias`` with the tutorial's loss (``nn.L1Loss``) and optimizer (SGD).

    Args:
        arch: which tutorial model: ``"v2"`` (``nn.Linear``) or ``"model0"`` (two ``nn.Parameter``s).
        lr: SGD learning rate.
    """

    def __init__(self, arch: Arch = "v2", lr: float = 0.01) -> None:
        super().__init__()
        if not (math.isfinite(lr) and 0 < lr <= torch.finfo(torch.float32).max):
            raise ConfigError(f"model.lr must be a positive finite number, got {lr}")
        self.save_hyperparameters()
        self.model = build_model(arch)
        self.loss_fn = nn.L1Loss()
        # compute_groups=False: the three metrics share no state, so grouping only adds checks to every update
        self.val_metrics = RegressionMetrics("val/")
        self.test_metrics = RegressionMetrics("test/")
        self._loss_sums: dict[str, torch.Tensor] = {}  # per stage: the sum of loss * batch size, float64
        self._counts: dict[str, int] = {}
        self.epoch_metrics: dict[str, float] = {}
        self.trained_epochs = 0  # how many epochs the weights have seen: the step of evaluation results
        self._true_line: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        if self.automatic_optimization:
            return self._shared_step(batch, "train")
        optimizer = self.optimizers()  # data.steps_per_execution > 1: K batches, K optimizer steps, one Lightning step
        for part in parts(batch):
            loss = self._shared_step(part, "train")
            optimizer.zero_grad()  # the order of Lightning's automatic optimization (and the tutorial's)
            self.manual_backward(loss)
            optimizer.step()
        return None

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        (x,) = batch
        return self(x)

    def _eval_step(self, batch: Batch, stage: str) -> None:
        for part in parts(batch):
            self._shared_step(part, stage)

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        pred = self(x)
        loss = self.loss_fn(pred, y)
        # A float64 running sum, in order (a full batch's mean comes back bit for bit), added in place: a list
        # of per-step tensors kept the heap from shrinking, +0.25x the data over an epoch of 10^8 points.
        weighted = loss.detach().double() * len(x)
        if stage in self._loss_sums:
            self._loss_sums[stage].add_(weighted)
        else:
            self._loss_sums[stage] = weighted
        self._counts[stage] = self._counts.get(stage, 0) + len(x)
        if stage != "train":
            self._stage_metrics(stage).update(pred, y)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        steps = getattr(datamodule.hparams, "steps_per_execution", 1) if datamodule is not None else 1
        if steps > 1 and stage == "fit":
            # Lightning checks these settings against manual optimization before this hook: say it here
            for option, value, default in (("gradient_clip_val", self.trainer.gradient_clip_val, None),
                                           ("accumulate_grad_batches", self.trainer.accumulate_grad_batches, 1)):
                if value not in (default, 0):
                    raise ConfigError(
                        f"data.steps_per_execution {steps} runs the optimizer inside one Lightning step, where "
                        f"--trainer.{option} {value} cannot apply; leave it out or use data.steps_per_execution 1"
                    )
        self.automatic_optimization = steps == 1

    def on_train_start(self) -> None:
        # A resumed fit restores the optimizer's state, learning rate included, after configure_optimizers;
        # the lr this run was started with (``--model.lr``) is the one to train with. (Only then: lr_find's
        # search sets its own rates, from its first step on.)
        if self.trainer.ckpt_path is None:
            return
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.hparams.lr

    def on_fit_start(self) -> None:
        if isinstance(self.logger, RunLogger) and self.trainer.is_global_zero:
            datamodule = self.trainer.datamodule
            settings = {**self.hparams, **(datamodule.hparams if datamodule is not None else {}),
                        "max_epochs": self.trainer.max_epochs}
            self.logger.describe_run({k: v for k, v in settings.items() if not k.startswith("_")})

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._log_epoch("val")
            return
        # Lightning's pre-fit check of the validation step: nothing to report, nothing to keep
        self._loss_sums.pop("val", None)
        self._counts.pop("val", None)
        self.val_metrics.reset()

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def _stage_metrics(self, stage: str) -> RegressionMetrics:
        return self.val_metrics if stage == "val" else self.test_metrics

    def _log_epoch(self, stage: str) -> None:
        """Compute the stage's epoch values once and publish them to the logger and the callbacks."""
        total = self._loss_sums.pop(stage, None)
        if total is None:
            return
        if stage == "train" and not torch.isfinite(total):  # once an epoch: no sync with the device every step
            raise DivergedError(
                f"training diverged at epoch {self.current_epoch}: the loss is {total.item() / self._counts[stage]}; "
                f"try a smaller learning rate than --model.lr {self.hparams.lr}"
            )
        count = self._counts.pop(stage)
        if self.trainer.world_size > 1:  # every process saw an equal share: sum over all of them
            count = torch.tensor(float(count), dtype=torch.float64, device=total.device)
            total, count = (self.trainer.strategy.reduce(t, reduce_op="sum") for t in (total, count))
        fitting = self.trainer.state.fn == TrainerFn.FITTING
        values = {f"loss/{stage}" if fitting else f"{stage}/loss": (total / count).float()}  # see linlight.board
        if stage == "train":
            values.update(self._learned_line())
        else:
            metrics = self._stage_metrics(stage)
            values.update(metrics.compute())
            metrics.reset()
        self.publish(values)

    def _learned_line(self) -> dict[str, torch.Tensor]:
        weight, bias = (p.detach().reshape(()) for p in self.model.parameters())
        true_line = getattr(self.trainer.datamodule, "true_line", None)
        if true_line is None:  # your own data (data.csv): no true line to compare with
            return {"params/weight": weight, "params/bias": bias}
        if self._true_line is None or self._true_line[0].device != weight.device:  # made once, not every epoch
            self._true_line = tuple(torch.tensor(v, device=weight.device) for v in true_line)
        true_w, true_b = self._true_line
        return {
            "params/weight": weight, "params/bias": bias, "params/weight_true": true_w, "params/bias_true": true_b,
            "params/weight_error": (weight - true_w).abs(), "params/bias_error": (bias - true_b).abs(),
        }

    def on_train_end(self) -> None:
        self.trained_epochs = self.trainer.current_epoch

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.trained_epochs = next_epoch(checkpoint)

    def publish(self, values: dict[str, torch.Tensor]) -> None:
        """Log scalars at step = epoch and expose them as ``trainer.callback_metrics``.

        A ``validate`` or ``test`` run has one epoch: there ``self.log_dict`` is cheap enough, and it gives
        Lightning's results table and the return value of ``trainer.test``.
        """
        values = {k: v.detach() for k, v in values.items()}
        if self.trainer.state.fn != TrainerFn.FITTING:
            # "step" is Lightning's documented x-axis key: the epoch the evaluated weights come from
            values["step"] = torch.tensor(float(max(self.trained_epochs - 1, 0)))
            self.log_dict(values, sync_dist=True)  # already global: averaging equal values changes nothing
            return
        self.trainer.callback_metrics.update(values)
        self.epoch_metrics.update({k: v.item() for k, v in values.items()})
        if self.logger is not None:
            self.logger.log_metrics({k: self.epoch_metrics[k] for k in values}, step=self.current_epoch)
