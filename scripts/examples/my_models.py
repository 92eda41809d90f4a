"""A model of your own, in a file of your own: a small network for a table of features.

linlight imports it by its class path (``my_models.MLP``) from the folders a config names in ``import_path``
(``scripts/examples/mlp.yaml``: this file's folder). It is a plain ``nn.Module``, as the tutorial's models are; its
``in_features`` is linked to the data's number of feature columns, so nobody types it twice.
"""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """``in_features`` -> ``hidden`` -> 1, with a tanh between.

    Args:
        in_features: inputs per row (linked to ``data.num_features`` by linlight's CLI).
        hidden: width of the hidden layer.
    """

    def __init__(self, in_features: int, hidden: int = 16) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
