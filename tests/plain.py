"""Ground truth: the tutorial's own training loop in plain PyTorch, written out as the tutorial does it.

``plain_loop`` is the tutorial's loop (full batch); with ``batch_size`` it runs mini-batches in the order
linlight promises (in order, or a permutation drawn from ``torch.Generator().manual_seed(seed * 1_000_003 +
epoch)`` each epoch), the last batch shorter when the split does not divide. Per-epoch losses are the
sample-weighted mean of the batch losses; the validation metrics come from their formulas.

Beyond the tutorial: ``noise_std`` adds ``noise_std * torch.randn(len(X), 1, generator=torch.Generator().
manual_seed(seed))`` to ``y`` (linlight's documented recipe); ``points`` trains on given ``(X, y)`` instead
of the line (a CSV file's); ``patience`` stops as Lightning's ``EarlyStopping`` on the test loss does, and
``best_epoch`` is the epoch of its last improvement (its best).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    test_metrics: list[dict[str, float]] = field(default_factory=list)  # mae, mse, r2 per test pass
    predict: object = None  # x -> the trained model's prediction
    stopped_epoch: int | None = None  # where early stopping ended training, if it did
    best_epoch: int | None = None  # the epoch early stopping last judged an improvement (its best)


class EarlyStop:
    """Lightning's ``EarlyStopping`` rule, mode "min", written out: after each test pass the loss improves if
    ``loss + min_delta < best`` (float32, strict); ``patience`` passes in a row without improvement, or a loss
    that is not finite, stop training after that epoch."""

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best, self.wait = torch.tensor(float("inf")), 0
        self.improved = False  # whether the latest pass was judged an improvement (its loss the new best)

    def stop(self, loss: float) -> bool:
        current = torch.tensor(loss)  # the logged float32 value
        self.improved = False
        if not torch.isfinite(current):
            return True
        if current + self.min_delta < self.best:
            self.best, self.wait, self.improved = current, 0, True
            return False
        self.wait += 1
        return self.wait >= self.patience


def metrics(pred: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """MAE, MSE and R² from their formulas, in float64."""
    p, t = pred.double().flatten(), y.double().flatten()
    residual = ((p - t) ** 2).sum().item()
    return {"mae": (p - t).abs().mean().item(), "mse": residual / len(t),
            "r2": 1 - residual / ((t - t.mean()) ** 2).sum().item()}


def weighted_mean(losses: list[tuple[float, int]]) -> float:
    """The epoch's loss: batch losses weighted by batch size, summed in float64, rounded to float32."""
    total = sum(loss * n for loss, n in losses)
    return torch.tensor(total / sum(n for _, n in losses), dtype=torch.float64).float().item()


def batches(n: int, batch_size: int | None, shuffle: bool, seed: int, epoch: int) -> list[torch.Tensor | slice]:
    bs = batch_size or n
    if not shuffle:
        return [slice(i, i + bs) for i in range(0, n, bs)]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch), dtype=torch.int32)
    return [order[i : i + bs] for i in range(0, n, bs)]


def plain_loop(arch="v2", weight=0.7, bias=0.3, start=0, end=1, step=0.02, epochs=1000, lr=0.01,
               test_every=1, batch_size=None, shuffle=False, seed=42, noise_std=0.0, points=None,
               patience=None, min_delta=0.0, lr_changes: dict[int, float] | None = None,
               loss_changes: dict[int, nn.Module] | None = None, plateau: dict | None = None) -> PlainRun:
    """The tutorial's loop: seed 42, L1 loss, SGD, a test pass under inference_mode (full batch by default).

    ``lr_changes``: ``{epoch: lr}``, the learning rate to use from that epoch on (a resume with a new lr);
    ``loss_changes``: ``{epoch: loss module}``, likewise for the loss (training and test). ``plateau``: the
    settings of a ``torch.optim.lr_scheduler.ReduceLROnPlateau``, stepped with each test loss.
    """
    if points is None:
        X = torch.arange(start, end, step).unsqueeze(dim=1)
        y = weight * X + bias
    else:
        X, y = points
    if noise_std:
        y = y + noise_std * torch.randn(len(X), 1, generator=torch.Generator().manual_seed(seed))
    early = EarlyStop(patience, min_delta) if patience is not None else None
    stopped = best_epoch = None
    train_split = int(0.8 * len(X))
    X_train, y_train, X_test, y_test = X[:train_split], y[:train_split], X[train_split:], y[train_split:]
    torch.manual_seed(42)
    model = nn.Linear(in_features=1, out_features=1) if arch == "v2" else LinearRegressionModel()
    loss_fn = nn.L1Loss()
    optimizer = torch.optim.SGD(params=model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **plateau) if plateau is not None else None
    torch.manual_seed(42)
    train_losses, test_losses, test_metrics = [], [], []
    for epoch in range(epochs):
        if lr_changes and epoch in lr_changes:
            for group in optimizer.param_groups:
                group["lr"] = lr_changes[epoch]
        if loss_changes and epoch in loss_changes:
            loss_fn = loss_changes[epoch]
        model.train()
        seen = []
        for idx in batches(len(X_train), batch_size, shuffle, seed, epoch):
            y_pred = model(X_train[idx])
            loss = loss_fn(y_pred, y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen.append((loss.item(), len(y_pred)))
        train_losses.append(seen[0][0] if len(seen) == 1 else weighted_mean(seen))
        if (epoch + 1) % test_every == 0:
            model.eval()
            with torch.inference_mode():
                parts = [(model(X_test[i]), y_test[i]) for i in batches(len(X_test), batch_size, False, seed, 0)]
                losses = [(loss_fn(p, t).item(), len(t)) for p, t in parts]
                test_losses.append(losses[0][0] if len(losses) == 1 else weighted_mean(losses))
                test_metrics.append(metrics(torch.cat([p for p, _ in parts]), y_test))
            if scheduler is not None:
                scheduler.step(test_losses[-1])
            if early is not None:
                stop = early.stop(test_losses[-1])
                best_epoch = epoch if early.improved else best_epoch
                if stop:
                    stopped = epoch
                    break
    w, b = (p.item() for p in model.parameters())
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def predict(x: list[float]) -> list[float]:
        with torch.inference_mode():
            return model(torch.tensor(x).unsqueeze(1)).flatten().tolist()

    return PlainRun(train_losses, test_losses, w, b, state, test_metrics, predict, stopped, best_epoch)


class MLP(nn.Module):  # the README's model of your own (scripts/examples/my_models.py), copied here on purpose
    def __init__(self, in_features: int, hidden: int = 16) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def plain_fit(make_model, X: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, optimizer=torch.optim.SGD,
              loss_fn: nn.Module | None = None, batch_size: int | None = None, shuffle: bool = False, seed: int = 42,
              train_split: float = 0.8) -> PlainRun:
    """Any model on given rows ``X`` ``[n, features]``, ``y`` ``[n, 1]``: the tutorial's loop with another model,
    loss and optimizer (``optimizer(params, lr=lr)``), validated every epoch; ``make_model()`` is called right
    after ``torch.manual_seed(42)``, as linlight builds the model right after seeding."""
    loss_fn = nn.L1Loss() if loss_fn is None else loss_fn
    n = int(train_split * len(X))
    X_train, y_train, X_test, y_test = X[:n], y[:n], X[n:], y[n:]
    torch.manual_seed(42)
    model = make_model()
    opt = optimizer(model.parameters(), lr=lr)
    train_losses, test_losses, test_metrics = [], [], []
    for epoch in range(epochs):
        model.train()
        seen = []
        for idx in batches(len(X_train), batch_size, shuffle, seed, epoch):
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen.append((loss.item(), len(y_train[idx])))
        train_losses.append(seen[0][0] if len(seen) == 1 else weighted_mean(seen))
        model.eval()
        with torch.inference_mode():
            parts = [(model(X_test[i]), y_test[i]) for i in batches(len(X_test), batch_size, False, seed, 0)]
            losses = [(loss_fn(p, t).item(), len(t)) for p, t in parts]
            test_losses.append(losses[0][0] if len(losses) == 1 else weighted_mean(losses))
            test_metrics.append(metrics(torch.cat([p for p, _ in parts]), y_test))
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def predict(rows: list[list[float]]) -> list[float]:
        with torch.inference_mode():
            return model(torch.tensor(rows)).flatten().tolist()

    return PlainRun(train_losses, test_losses, float("nan"), float("nan"), state, test_metrics, predict)
