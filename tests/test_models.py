"""The tutorial's two plain models and their seed-42 initial values."""

import pytest
import torch
from lightning.pytorch import seed_everything

from linlight.models import LinearRegressionModel, LinearRegressionModelV2, build_model
from linlight.module import LitLinearRegression


def test_initial_values_are_the_tutorials():
    torch.manual_seed(42)
    reference = torch.nn.Linear(1, 1)
    seed_everything(42, verbose=False)
    v2 = LitLinearRegression(arch="v2").model
    assert isinstance(v2, LinearRegressionModelV2)
    assert torch.equal(v2.linear_layer.weight, reference.weight) and torch.equal(v2.linear_layer.bias, reference.bias)
    assert v2.line() == pytest.approx((0.7645, 0.8300), abs=5e-5)  # the figures the tutorial printed

    torch.manual_seed(42)
    weights, bias = torch.randn(1), torch.randn(1)
    seed_everything(42, verbose=False)
    model0 = LitLinearRegression(arch="model0").model
    assert isinstance(model0, LinearRegressionModel)
    assert torch.equal(model0.weights.data, weights) and torch.equal(model0.bias.data, bias)
    assert model0.line() == pytest.approx((0.3367, 0.1288), abs=5e-5)


@pytest.mark.parametrize("arch", ["v2", "model0"])
def test_forward_is_the_line(arch):
    model = build_model(arch)
    w, b = model.line()
    x = torch.tensor([[0.0], [1.0], [2.5]])
    assert torch.allclose(model(x), w * x + b)


def test_bad_arch_and_lr():
    with pytest.raises(ValueError, match="unknown model architecture"):
        build_model("v3")
    for lr in (0.0, -0.01, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="model.lr must be a positive finite number"):
            LitLinearRegression(lr=lr)
