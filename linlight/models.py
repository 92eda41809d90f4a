"""The tutorial's two plain PyTorch models of a straight line, ``y = weight * x + bias``.

These are ordinary ``nn.Module``s with no training logic: the LightningModule in
``linlight.module`` wraps them with the loss, the optimizer and the logging.

    >>> import torch
    >>> from linlight.models import build_model
    >>> torch.manual_seed(42); model = build_model("v2")
    >>> model(torch.tensor([[0.5]]))
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Arch = Literal["v2", "model0"]


class LinearRegressionModel(nn.Module):
    """Model 0 of the tutorial: one weight and one bias as explicit ``nn.Parameter``s."""

    def __init__(self) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)
        self.bias = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights * x + self.bias

    def line(self) -> tuple[float, float]:
        """The learned ``(weight, bias)`` as Python floats."""
        return self.weights.item(), self.bias.item()


class LinearRegressionModelV2(nn.Module):
    """Model V2 of the tutorial ("putting it all together"): a single ``nn.Linear(1, 1)``."""

    def __init__(self) -> None:
        super().__init__()
        self.linear_layer = nn.Linear(in_features=1, out_features=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_layer(x)

    def line(self) -> tuple[float, float]:
        """The learned ``(weight, bias)`` as Python floats."""
        return self.linear_layer.weight.item(), self.linear_layer.bias.item()


MODELS: dict[str, type[nn.Module]] = {"v2": LinearRegressionModelV2, "model0": LinearRegressionModel}


def build_model(arch: Arch = "v2") -> nn.Module:
    """A fresh, randomly initialised model of the given architecture (seed the RNG first for the tutorial's values)."""
    try:
        return MODELS[arch]()
    except KeyError:
        raise ValueError(f"unknown model architecture {arch!r}; choose one of {sorted(MODELS)}") from None
