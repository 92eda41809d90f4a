"""The metrics linlight logs are their formulas, including the close fits torchmetrics' R2Score rounds to 1.0; MAE and
MSE are what the L1 and MSE losses give on the same batches (so an L1 loss and the MAE print as one number)."""

import torch
from plain import metrics

from linlight.metrics import RegressionMetrics


def test_metrics_are_the_formulas_even_for_a_close_fit():
    y = torch.linspace(0.86, 0.986, 10).unsqueeze(1)
    pred = y + 0.003 * torch.tensor([1, -1] * 5).unsqueeze(1)  # residual sum of squares 9e-5 < 1e-4
    m = RegressionMetrics("val/")
    m.update(pred[:4], y[:4])  # in two batches, as validation feeds it
    m.update(pred[4:], y[4:])
    got = {k: v.item() for k, v in m.compute().items()}
    want = metrics(pred, y)
    assert got.keys() == {"val/mae", "val/mse", "val/r2"}
    # R² is the float64 formula, rounded once to float32
    assert got["val/r2"] == torch.tensor(want["r2"], dtype=torch.float32).item() and got["val/r2"] < 0.9999
    # MAE, MSE: each batch's loss (float32), the batches weighted by size in float64, as the epoch's loss is
    for name, loss in (("mae", torch.nn.L1Loss()), ("mse", torch.nn.MSELoss())):
        batches = [(loss(pred[:4], y[:4]).item(), 4), (loss(pred[4:], y[4:]).item(), 6)]
        weighted = sum(v * n for v, n in batches) / 10
        assert got[f"val/{name}"] == torch.tensor(weighted, dtype=torch.float64).float().item(), name
        assert abs(got[f"val/{name}"] - want[name]) < 1e-7 * want[name], name  # and the formula, to float32
    one = RegressionMetrics()
    one.update(pred, y)  # one batch: the loss function's own number
    assert one.compute()["mae"].item() == torch.nn.L1Loss()(pred, y).item()
    m.reset()
    m.update(y, y)
    assert m.compute()["val/mae"].item() == 0.0  # reset: nothing of before


def test_constant_target():
    y = torch.full((5, 1), 2.0)
    perfect, off = RegressionMetrics(), RegressionMetrics()
    perfect.update(y.clone(), y)
    off.update(y + 0.5, y)
    assert perfect.compute()["r2"].item() == 1.0 and off.compute()["r2"].item() == 0.0
