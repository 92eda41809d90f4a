"""Ground truth: the tutorial's own training loop in plain PyTorch, written out as the tutorial does it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class LinearRegressionModel(nn.Module):  # the tutorial's model 0, copied here on purpose (independent truth)
    def __init__(self) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)
        self.bias = nn.Parameter(torch.randn(1, dtype=torch.float), requires_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weights * x + self.bias


@dataclass
class PlainRun:
    train_losses: list[float]
    test_losses: list[float]
    weight: float
    bias: float
    state: dict


def plain_loop(arch="v2", weight=0.7, bias=0.3, start=0, end=1, step=0.02, epochs=1000, lr=0.01,
               test_every=1, lr_changes: dict[int, float] | None = None) -> PlainRun:
    """The tutorial's loop: seed 42, full batch, L1 loss, SGD, a test pass under inference_mode.

    ``lr_changes``: ``{epoch: lr}``, the learning rate to use from that epoch on (a resume with a new lr).
    """
    X = torch.arange(start, end, step).unsqueeze(dim=1)
    y = weight * X + bias
    train_split = int(0.8 * len(X))
    X_train, y_train, X_test, y_test = X[:train_split], y[:train_split], X[train_split:], y[train_split:]
    torch.manual_seed(42)
    model = nn.Linear(in_features=1, out_features=1) if arch == "v2" else LinearRegressionModel()
    loss_fn = nn.L1Loss()
    optimizer = torch.optim.SGD(params=model.parameters(), lr=lr)
    torch.manual_seed(42)
    train_losses, test_losses = [], []
    for epoch in range(epochs):
        if lr_changes and epoch in lr_changes:
            for group in optimizer.param_groups:
                group["lr"] = lr_changes[epoch]
        model.train()
        y_pred = model(X_train)
        loss = loss_fn(y_pred, y_train)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        train_losses.append(loss.item())
        if (epoch + 1) % test_every == 0:
            model.eval()
            with torch.inference_mode():
                test_losses.append(loss_fn(model(X_test), y_test).item())
    w, b = (p.item() for p in model.parameters())
    return PlainRun(train_losses, test_losses, w, b, {k: v.clone() for k, v in model.state_dict().items()})
