"""The R² linlight logs is the formula, including the small errors torchmetrics' R2Score rounds to 1.0."""

import torch
from plain import metrics

from linlight.metrics import R2, regression_metrics


def test_r2_is_the_formula_even_for_a_close_fit():
    y = torch.linspace(0.86, 0.986, 10).unsqueeze(1)
    pred = y + 0.003 * torch.tensor([1, -1] * 5).unsqueeze(1)  # residual sum of squares 9e-5 < 1e-4
    r2 = R2()
    r2.update(pred[:4], y[:4])  # in two batches, as validation feeds it
    r2.update(pred[4:], y[4:])
    assert r2.compute().item() == torch.tensor(metrics(pred, y)["r2"], dtype=torch.float64).item()
    assert r2.compute().item() < 0.9999


def test_constant_target():
    y = torch.full((5, 1), 2.0)
    perfect, off = R2(), R2()
    perfect.update(y.clone(), y)
    off.update(y + 0.5, y)
    assert perfect.compute().item() == 1.0 and off.compute().item() == 0.0


def test_collection_names_and_values():
    y = torch.tensor([[1.0], [2.0], [4.0]])
    pred = torch.tensor([[1.5], [2.0], [3.0]])
    collection = regression_metrics("val/")
    collection.update(pred.double(), y.double())
    got = {k: v.item() for k, v in collection.compute().items()}
    want = metrics(pred, y)
    assert got.keys() == {"val/mae", "val/mse", "val/r2"}
    for name in ("mae", "mse", "r2"):
        assert abs(got[f"val/{name}"] - want[name]) < 1e-12
