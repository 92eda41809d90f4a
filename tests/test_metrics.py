"""The metrics linlight logs are their formulas, including the close fits torchmetrics' R2Score rounds to 1.0."""

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
    for name in ("mae", "mse", "r2"):
        assert abs(got[f"val/{name}"] - want[name]) < 1e-12, name
    assert got["val/r2"] < 0.9999
    m.reset()
    m.update(y, y)
    assert m.compute()["val/mae"].item() == 0.0  # reset: nothing of before


def test_constant_target():
    y = torch.full((5, 1), 2.0)
    perfect, off = RegressionMetrics(), RegressionMetrics()
    perfect.update(y.clone(), y)
    off.update(y + 0.5, y)
    assert perfect.compute()["r2"].item() == 1.0 and off.compute()["r2"].item() == 0.0
