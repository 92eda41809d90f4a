"""The LightningModule: a tutorial model (``linlight.models``) with its L1 loss, SGD optimizer and logging.

One shared step serves train, validation and test. Once per epoch each stage logs ``{stage}/loss``;
validation and test also log torchmetrics' MAE, MSE and R² as ``{stage}/mae``, ``{stage}/mse``,
``{stage}/r2``. Training also logs what the model learned: ``params/weight`` and ``params/bias`` beside
the line's ``params/true_weight`` and ``params/true_bias``, and their absolute errors
``params/weight_error`` and ``params/bias_error``. The TensorBoard step of all these scalars is the epoch.
At the end of ``fit`` the hyperparameters go to TensorBoard's HPARAMS tab with the final values
(``hparams/...``).

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
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from linlight.errors import ConfigError, DivergedError
from linlight.models import Arch, build_model

# TensorBoard's CUSTOM SCALARS tab: the learned line against the true one, in one chart each.
CUSTOM_SCALARS = {
    "learned vs true line": {
        "weight": ["Multiline", ["params/weight", "params/true_weight"]],
        "bias": ["Multiline", ["params/bias", "params/true_bias"]],
        "absolute error": ["Multiline", ["params/weight_error", "params/bias_error"]],
    }
}


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
        metrics = MetricCollection(
            {"mae": MeanAbsoluteError(), "mse": MeanSquaredError(), "r2": R2Score()}, compute_groups=False
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self._loss_sums: dict[str, list[torch.Tensor]] = {}  # per stage: loss * batch size, per step
        self._counts: dict[str, int] = {}
        self.epoch_metrics: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "test")

    def predict_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return self(batch)

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        pred = self(x)
        loss = self.loss_fn(pred, y)
        if stage == "train" and not torch.isfinite(loss):
            raise DivergedError(
                f"training diverged at epoch {self.current_epoch}: the loss is {loss.item()}; "
                f"try a smaller learning rate than --model.lr {self.hparams.lr}"
            )
        # float64 sums: a full batch's mean comes back bit for bit, many batches' mean is exact enough
        self._loss_sums.setdefault(stage, []).append(loss.detach().double() * len(x))
        self._counts[stage] = self._counts.get(stage, 0) + len(x)
        if stage != "train":
            self._stage_metrics(stage).update(pred, y)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def on_train_start(self) -> None:
        # A resumed fit restores the optimizer's state, learning rate included, after configure_optimizers;
        # the lr this run was started with (``--model.lr``, see linlight.resume) is the one to train with.
        for optimizer in self.trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.hparams.lr

    def on_fit_start(self) -> None:
        if isinstance(self.logger, TensorBoardLogger) and self.trainer.is_global_zero:
            self.logger.experiment.add_custom_scalars(CUSTOM_SCALARS)

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

    def _stage_metrics(self, stage: str) -> MetricCollection:
        return self.val_metrics if stage == "val" else self.test_metrics

    def _log_epoch(self, stage: str) -> None:
        """Compute the stage's epoch values once and publish them to the logger and the callbacks."""
        sums = self._loss_sums.pop(stage, [])
        if not sums:
            return
        total = torch.stack(sums).sum() if len(sums) > 1 else sums[0]
        count = torch.tensor(float(self._counts.pop(stage)), dtype=torch.float64, device=total.device)
        if self.trainer.world_size > 1:  # every process saw an equal share: sum over all of them
            total, count = (self.trainer.strategy.reduce(t, reduce_op="sum") for t in (total, count))
        values = {f"{stage}/loss": (total / count).float()}
        if stage == "train":
            values.update(self._learned_line())
        else:
            metrics = self._stage_metrics(stage)
            values.update(metrics.compute())
            metrics.reset()
        self.publish(values)

    def _learned_line(self) -> dict[str, torch.Tensor]:
        weight, bias = (p.detach().reshape(()) for p in self.model.parameters())
        datamodule = self.trainer.datamodule
        if datamodule is None or not hasattr(datamodule.hparams, "weight"):
            return {"params/weight": weight, "params/bias": bias}
        h = datamodule.hparams
        true_w, true_b = (torch.tensor(v, device=weight.device) for v in (h.weight, h.bias))
        return {
            "params/weight": weight, "params/bias": bias, "params/true_weight": true_w, "params/true_bias": true_b,
            "params/weight_error": (weight - true_w).abs(), "params/bias_error": (bias - true_b).abs(),
        }

    def on_fit_end(self) -> None:
        if self.logger is None or self.trainer.interrupted:
            return
        final = {f"hparams/{k.replace('/', '_')}": v for k, v in self.epoch_metrics.items() if "true" not in k}
        datamodule = self.trainer.datamodule
        hparams = {**self.hparams, **(datamodule.hparams if datamodule is not None else {})}
        hparams = {k: v for k, v in hparams.items() if not k.startswith("_")}  # not LightningCLI's internals
        self.logger.log_hyperparams(hparams, metrics=final, step=self.current_epoch)

    def publish(self, values: dict[str, torch.Tensor]) -> None:
        """Log scalars at step = epoch and expose them as ``trainer.callback_metrics``.

        A ``validate`` or ``test`` run has one epoch: there ``self.log_dict`` is cheap enough, and it gives
        Lightning's results table and the return value of ``trainer.test``.
        """
        values = {k: v.detach() for k, v in values.items()}
        if self.trainer.state.fn != TrainerFn.FITTING:
            self.log_dict(values, sync_dist=True)  # already global: averaging equal values changes nothing
            return
        self.trainer.callback_metrics.update(values)
        self.epoch_metrics.update({k: v.item() for k, v in values.items()})
        if self.logger is not None:
            self.logger.log_metrics({k: self.epoch_metrics[k] for k in values}, step=self.current_epoch)
