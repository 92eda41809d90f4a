"""The LightningModule: a regression model (any ``nn.Module``) with its loss, optimizer and scheduler.

``LitRegression`` is the module to copy. It is written as Lightning's documentation teaches: the parts are
given to it (dependency injection: LightningCLI builds them from ``class_path``/``init_args`` settings), one
shared step serves train, validation and test, values are logged with ``self.log``, and Lightning's automatic
optimization trains. It logs ``loss/train`` and ``loss/val`` (the curves; the tutorial's "test loss" is
``loss/val``) and ``test/loss``, and torchmetrics' MAE, MSE and R² of the validation and test splits as
``val/mae``, ``val/mse``, ``val/r2`` and ``test/...``. Why these tags: ``linlight/board.py``.

``LitLinearRegression`` is what the ``linlight`` command trains: ``LitRegression`` with linlight's mixins
(``linlight/mixins.py``: cheap epoch logging, steps per execution, the given ``lr`` on resume), the tutorial's
two models by short name (``arch``, the default ``"v2"``), and checks that end in one clear line. Its defaults
are the tutorial's: V2, L1 loss, SGD with lr 0.01. The learned line (``params/*``) is logged by a callback,
``linlight.board.LearnedLine``, for the models that are a line.

    trainer.fit(LitLinearRegression(arch="v2", lr=0.01), datamodule=LineDataModule())
    LitLinearRegression(model=MLP(3), loss=nn.MSELoss(), optimizer=torch.optim.Adam)     # your own parts

From the command line (``linlight fit --print_config`` shows them all)::

    linlight fit --model.model my_models.MLP --model.model.hidden 32 --model.loss torch.nn.MSELoss \\
        --model.optimizer torch.optim.Adam --model.lr 0.003
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable
from torch import nn

from linlight.errors import ConfigError, DivergedError
from linlight.metrics import RegressionMetrics
from linlight.mixins import EpochLogging, LearningRateOnResume, StepsPerExecution
from linlight.models import Arch, build_model

# An optimizer class (or a function) called as ``optimizer(params, lr)``: the learning rate is the module's
# ``lr`` setting, the one `--model.lr`, sweeps and `lr_find` set; its other settings are its ``init_args``.
OptimizerCallable = Callable[[Iterable, float], torch.optim.Optimizer]

# The tag each stage's loss has: the curves side by side in one group, the single test point in its own.
LOSS_TAGS = {"train": "loss/train", "val": "loss/val", "test": "test/loss"}


class LitRegression(pl.LightningModule):
    """Trains ``model`` to predict ``y`` from ``x`` with ``loss`` and ``optimizer``.

    Args:
        model: the network: any ``nn.Module`` from a batch of inputs ``[n, features]`` to ``[n, targets]``.
        lr: the optimizer's learning rate.
        loss: the loss function; ``None`` is the tutorial's ``nn.L1Loss()``.
        optimizer: the optimizer class, called as ``optimizer(params, lr)``; its other settings are its own.
        scheduler: a learning-rate scheduler class, called as ``scheduler(optimizer)``; stepped every epoch
            (``ReduceLROnPlateau`` on ``loss/val``); ``None``: a constant learning rate.
    """

    def __init__(self, model: nn.Module, lr: float = 0.01, loss: nn.Module | None = None,
                 optimizer: OptimizerCallable = torch.optim.SGD, scheduler: LRSchedulerCallable | None = None) -> None:
        super().__init__()
        # the parts are objects: the settings that built them are saved by whoever built them (linlight's CLI)
        self.save_hyperparameters(ignore=["model", "loss", "optimizer", "scheduler"])
        self.model = model
        self.loss_fn = nn.L1Loss() if loss is None else loss
        self.optimizer, self.scheduler = optimizer, scheduler
        self.val_metrics = RegressionMetrics("val/")
        self.test_metrics = RegressionMetrics("test/")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        (x,) = batch
        return self(x)

    def _shared_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        pred = self(x)
        loss = self.loss_fn(pred, y)
        self.log(LOSS_TAGS[stage], loss, on_step=False, on_epoch=True, batch_size=len(x), sync_dist=True)
        if stage != "train":
            (self.val_metrics if stage == "val" else self.test_metrics).update(pred, y)
        return loss

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics)

    def _log_metrics(self, metrics: RegressionMetrics) -> None:
        self.log_dict(metrics.compute(), on_step=False, on_epoch=True)  # global already: torchmetrics syncs
        metrics.reset()

    def configure_optimizers(self) -> torch.optim.Optimizer | dict:
        optimizer = self.optimizer(self.parameters(), self.hparams.lr)
        if self.scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler(optimizer), "monitor": "loss/val"}}


class LitLinearRegression(EpochLogging, StepsPerExecution, LearningRateOnResume, LitRegression):
    """``LitRegression`` as the ``linlight`` command runs it: the tutorial's defaults and linlight's mixins.

    Args:
        arch: the tutorial's model by its short name: ``"v2"`` (``nn.Linear(1, 1)``) or ``"model0"`` (two
            ``nn.Parameter``s). Left as is when ``model`` is given (it replaces it).
        lr: the optimizer's learning rate.
        model: your own ``nn.Module`` instead of the tutorial's (an ``in_features`` argument of its class is
            linked to the data's number of features).
        loss: the loss function; ``None`` is the tutorial's ``nn.L1Loss()``.
        optimizer: the optimizer class, called as ``optimizer(params, lr)``; the tutorial's SGD by default.
        scheduler: a learning-rate scheduler class, called as ``scheduler(optimizer)``, stepped every epoch.
    """

    def __init__(self, arch: Arch | None = "v2", lr: float = 0.01, model: nn.Module | None = None,
                 loss: nn.Module | None = None, optimizer: OptimizerCallable = torch.optim.SGD,
                 scheduler: LRSchedulerCallable | None = None) -> None:
        if not (math.isfinite(lr) and 0 < lr <= torch.finfo(torch.float32).max):
            raise ConfigError(f"model.lr must be a positive finite number, got {lr}")
        if model is not None and arch not in (None, "v2"):
            raise ConfigError(f"model.model replaces the tutorial's model.arch: leave out model.arch {arch}")
        if isinstance(model, dict):  # e.g. Lightning's load_from_checkpoint: settings are never turned into code
            raise ConfigError("model.model must be an nn.Module; linlight builds models from settings in its CLI only")
        if model is None:
            model = build_model(arch or "v2")
        else:
            arch = None  # (the saved hyperparameters say which model this is)
        super().__init__(model, lr, loss, optimizer, scheduler)

    def check_data(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One row through the model (on the CPU, no gradient, eval mode): a model that cannot take the data's
        rows, or gives another shape than the target's, says so in one line, before anything runs."""
        x, y = x[:1].cpu(), y[:1].cpu()
        training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model(x)
        except RuntimeError as e:
            raise ConfigError(f"the model ({type(self.model).__name__}) cannot take the data's rows of "
                              f"{x.shape[1]} feature{'s' * (x.shape[1] != 1)}: {' '.join(str(e).split())}") from None
        finally:
            self.model.train(training)
        if out.shape != y.shape:
            raise ConfigError(f"the model ({type(self.model).__name__}) gives {list(out.shape[1:])} values for a row, "
                              f"the data's target has {list(y.shape[1:])}")

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        loss = self.trainer.callback_metrics.get("loss/train")
        if loss is not None and not torch.isfinite(loss):  # once an epoch: no sync with the device every step
            raise DivergedError(f"training diverged at epoch {self.current_epoch}: the loss is {loss.item()}; "
                                f"try a smaller learning rate than --model.lr {self.hparams.lr}")
