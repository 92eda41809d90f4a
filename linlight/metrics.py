"""The evaluation metrics: torchmetrics' MAE and MSE, and R² computed exactly.

torchmetrics' ``R2Score`` reports 1.0 whenever the residual sum of squares is below 1e-4 (an absolute
tolerance meant for near-constant targets); on a line fitted this well that is most of training, so a good
fit and a perfect one would look the same. ``R2`` is the formula, with float64 states.
"""

from __future__ import annotations

import torch
from torchmetrics import MeanAbsoluteError, MeanSquaredError, Metric, MetricCollection


class R2(Metric):
    """The coefficient of determination ``1 - SS_res / SS_tot`` over everything seen.

    A constant target (``SS_tot == 0``) gives 1.0 for a perfect fit and 0.0 otherwise, as scikit-learn does.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        for name in ("sum_y", "sum_y2", "sse", "n"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        p, t = pred.double().flatten(), target.double().flatten()
        self.sum_y += t.sum()
        self.sum_y2 += (t * t).sum()
        self.sse += ((p - t) ** 2).sum()
        self.n += len(t)

    def compute(self) -> torch.Tensor:
        tss = self.sum_y2 - self.sum_y * self.sum_y / self.n
        if tss == 0:
            return (self.sse == 0).double()
        return 1 - self.sse / tss


def regression_metrics(prefix: str) -> MetricCollection:
    """MAE, MSE and R² for one stage, as ``{prefix}mae``, ``{prefix}mse``, ``{prefix}r2``, in float64."""
    # compute_groups=False: the metrics share no state, so grouping only adds checks to every update
    metrics = MetricCollection({"mae": MeanAbsoluteError(), "mse": MeanSquaredError(), "r2": R2()},
                               prefix=prefix, compute_groups=False)
    return metrics.set_dtype(torch.float64)
