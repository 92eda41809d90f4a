"""What the model learned, in TensorBoard: the learned weight and bias every epoch beside the true ones.

``LineStory`` logs, once per epoch at step = epoch, ``params/weight`` and ``params/bias`` (learned),
``params/true_weight`` and ``params/true_bias`` (the line's), and their absolute errors
``params/weight_error`` and ``params/bias_error``. A custom-scalars layout ("CUSTOM SCALARS" tab) draws
learned and true values in one chart. At the end of ``fit`` the hyperparameters go to the HPARAMS tab with
the final metrics as ``hparams/...``.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import TensorBoardLogger


class LineStory(pl.Callback):
    """Logs the learned line against the true line every epoch, and the hyperparameters at the end."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._true = self._true_line(trainer)
        if isinstance(trainer.logger, TensorBoardLogger) and trainer.is_global_zero:
            trainer.logger.experiment.add_custom_scalars(
                {"learned vs true line": {
                    "weight": ["Multiline", ["params/weight", "params/true_weight"]],
                    "bias": ["Multiline", ["params/bias", "params/true_bias"]],
                    "absolute error": ["Multiline", ["params/weight_error", "params/bias_error"]],
                }}
            )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        pl_module.publish(self.params(pl_module))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.logger is None or trainer.interrupted:
            return
        final = {f"hparams/{k.replace('/', '_')}": v for k, v in pl_module.epoch_metrics.items()}
        hparams = {**pl_module.hparams, **(trainer.datamodule.hparams if trainer.datamodule else {})}
        trainer.logger.log_hyperparams(hparams, metrics=final, step=trainer.current_epoch)

    def params(self, pl_module: pl.LightningModule) -> dict[str, torch.Tensor]:
        weight, bias = (p.detach().reshape(()) for p in pl_module.model.parameters())
        true_w, true_b = self._true
        return {
            "params/weight": weight, "params/bias": bias,
            "params/true_weight": true_w, "params/true_bias": true_b,
            "params/weight_error": (weight - true_w).abs(), "params/bias_error": (bias - true_b).abs(),
        }

    @staticmethod
    def _true_line(trainer: pl.Trainer) -> tuple[torch.Tensor, torch.Tensor]:
        h = trainer.datamodule.hparams
        return torch.tensor(h.weight), torch.tensor(h.bias)
