"""The evaluation metrics: MAE, MSE and R² of a regression, as one torchmetrics ``Metric``.

One metric for all three, since they share their sums: one update, one compute and one reset per epoch
instead of three of each (a torchmetrics call costs more than this model's whole step). R² is the formula:
torchmetrics' ``R2Score`` reports 1.0 whenever the residual sum of squares is below 1e-4 (an absolute
tolerance meant for near-constant targets); on a line fitted this well that is most of training. The sums
are float64: R² subtracts sums of squares of nearly equal size, which in float32 loses four digits here.

MAE and MSE are computed as the L1 and MSE losses compute them, and as the epoch's loss is averaged: each
batch's mean error in the predictions' precision (float32), the batches weighted by their size in float64,
the result in float32. So the MAE of an L1-trained model is its loss, bit for bit, not the same number in
another precision (0.3180275 beside 0.31802750).
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

SUMS = ("abs_error", "squared_error", "residual", "target", "squared_target", "count")


class RegressionMetrics(Metric):
    """``{prefix}mae``, ``{prefix}mse`` and ``{prefix}r2`` over everything seen since the last reset.

    R² of a constant target (total sum of squares 0) is 1.0 for a perfect fit and 0.0 otherwise, as in
    scikit-learn. States are summed over DDP processes.

    Args:
        prefix: put before each name, e.g. ``"val/"``.
    """

    full_state_update = False
    # identity, as its equality is: torchmetrics hashes every state tensor, and Lightning's train()/eval()
    # switches hash each submodule (a set of the modules seen) several times an epoch
    __hash__ = object.__hash__

    def __init__(self, prefix: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prefix = prefix
        for name in SUMS:
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        # in place: `self.state += ...` would go through torchmetrics' and nn.Module's __setattr__ each time
        error = pred.detach() - target  # in the predictions' precision, as a loss function computes it
        n = error.numel()
        self.abs_error.add_(error.abs().mean().double() * n)
        self.squared_error.add_((error * error).mean().double() * n)
        t = target.double()
        exact = pred.detach().double() - t  # R² in float64 from the start: it subtracts nearly equal sums
        self.residual.add_((exact * exact).sum())
        self.target.add_(t.sum())
        self.squared_target.add_((t * t).sum())
        self.count.add_(n)
        self.__dict__["result_dtype"] = pred.dtype  # (not through nn.Module's __setattr__, every step)

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.count
        total = self.squared_target - self.target * self.target / n
        r2 = (self.residual == 0).double() if total == 0 else 1 - self.residual / total
        dtype = getattr(self, "result_dtype", torch.float32)
        values = {"mae": self.abs_error / n, "mse": self.squared_error / n, "r2": r2}
        return {f"{self.prefix}{k}": v.to(dtype) for k, v in values.items()}
