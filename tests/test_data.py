"""The data module: the tutorial's line, its in-order split, cheap batches, shuffling and sharding."""

from types import SimpleNamespace

import pytest
import torch

from linlight.data import EpochSampler, LineDataModule, TensorBatches
from linlight.errors import ConfigError


def tutorial_data(weight=0.7, bias=0.3, start=0, end=1, step=0.02):
    X = torch.arange(start, end, step).unsqueeze(dim=1)
    y = weight * X + bias
    n = int(0.8 * len(X))
    return X[:n], y[:n], X[n:], y[n:]


def setup(**kwargs) -> LineDataModule:
    dm = LineDataModule(**kwargs)
    dm.setup("fit")
    return dm


@pytest.mark.parametrize(
    "kwargs, n_train, n_test",
    [({}, 40, 10), ({"step": 0.01}, 80, 20), ({"weight": 0.3, "bias": 0.9, "step": 0.01}, 80, 20),
     ({"start": -1.0, "end": 1.0, "step": 0.1}, 16, 4), ({"train_split": 0.5}, 25, 25)],
)
def test_line_and_split_match_the_tutorial(kwargs, n_train, n_test):
    dm = setup(**kwargs)
    x_train, y_train = dm.train_data
    x_test, y_test = dm.test_data
    assert x_train.shape == (n_train, 1) and x_test.shape == (n_test, 1)
    if kwargs.get("train_split", 0.8) == 0.8:
        start, end = kwargs.get("start", 0), kwargs.get("end", 1)
        args = {k: kwargs[k] for k in ("weight", "bias", "step") if k in kwargs}
        for ours, theirs in zip((x_train, y_train, x_test, y_test), tutorial_data(start=start, end=end, **args)):
            assert torch.equal(ours, theirs)
    # the split is in order: every test X lies after every train X
    assert x_train.max() < x_test.min()
    w, b = kwargs.get("weight", 0.7), kwargs.get("bias", 0.3)
    assert torch.allclose(y_train, w * x_train + b)


def test_full_batch_is_one_batch_of_views():
    dm = setup()
    batches = list(dm.train_dataloader())
    assert len(batches) == 1 == len(dm.train_dataloader())
    x, _ = batches[0]
    assert x.shape == (40, 1) and x.data_ptr() == dm.x.data_ptr()  # a view, not a copy


@pytest.mark.parametrize("batch_size, sizes", [(16, [16, 16, 8]), (40, [40]), (64, [40]), (1, [1] * 40)])
def test_mini_batches_cover_the_split_in_order(batch_size, sizes):
    dm = setup(batch_size=batch_size)
    batches = list(dm.train_dataloader())
    assert [len(x) for x, _ in batches] == sizes
    assert torch.equal(torch.cat([x for x, _ in batches]), dm.train_data[0])


def test_shuffle_is_a_function_of_seed_and_epoch():
    def order(seed, epoch):
        loader = setup(batch_size=8, shuffle=True, seed=seed).train_dataloader()
        loader.sampler.set_epoch(epoch)
        return torch.cat([x for x, _ in loader]).flatten()

    first = order(42, 0)
    assert sorted(first.tolist()) == sorted(setup().train_data[0].flatten().tolist())  # a permutation
    assert torch.equal(first, order(42, 0))  # same seed and epoch: same order, whatever ran before
    assert not torch.equal(first, order(42, 1))
    assert not torch.equal(first, order(7, 0))
    assert not torch.equal(first, setup().train_data[0].flatten())


def test_pairs_stay_together_when_shuffled():
    loader = setup(batch_size=5, shuffle=True, weight=2.0, bias=-1.0).train_dataloader()
    for x, y in loader:
        assert torch.allclose(y, 2.0 * x - 1.0)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("batch_size", [None, 8])
def test_ranks_get_disjoint_equal_shares_of_every_batch(shuffle, batch_size):
    x = torch.arange(40.0).unsqueeze(1)
    whole = list(TensorBatches(x, x, EpochSampler(40, batch_size, shuffle, seed=3)))
    shards = [list(TensorBatches(x, x, EpochSampler(40, batch_size, shuffle, seed=3, rank=r, world_size=2)))
              for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(whole)
    for (full, _), (a, _), (b, _) in zip(whole, *shards):
        assert len(a) == len(b) == len(full) // 2
        assert set(a.flatten().tolist()).isdisjoint(b.flatten().tolist())
        assert sorted(torch.cat([a, b]).flatten().tolist()) == sorted(full.flatten().tolist())


@pytest.mark.parametrize(
    "kwargs, words",
    [({"step": 0.0}, "data.step must be positive"), ({"step": -0.1}, "data.step must be positive"),
     ({"start": 1.0, "end": 1.0}, "must be less than data.end"), ({"start": 2.0}, "must be less than data.end"),
     ({"train_split": 0.0}, "between 0 and 1"), ({"train_split": 1.0}, "between 0 and 1"),
     ({"train_split": 0.01}, "empty train split"), ({"train_split": 0.4, "step": 0.5}, "empty train split"),
     ({"weight": float("nan")}, "data.weight must be a finite number"),
     ({"bias": float("inf")}, "data.bias must be a finite number"),
     ({"batch_size": 0}, "data.batch_size must be a positive integer"),
     ({"batch_size": -4}, "data.batch_size must be a positive integer")],
)
def test_impossible_settings_are_refused(kwargs, words):
    with pytest.raises(ConfigError, match=words):
        LineDataModule(**kwargs)


def test_predict_inputs(tmp_path):
    dm = LineDataModule(predict_x=[0.5, 2.0])
    dm.setup("predict")
    assert torch.equal(next(iter(dm.predict_dataloader()))[0], torch.tensor([[0.5], [2.0]]))
    csv = tmp_path / "x.csv"
    csv.write_text("x\n0.25\n-1\n")
    dm = LineDataModule(predict_csv=csv)
    dm.setup("predict")
    assert torch.equal(next(iter(dm.predict_dataloader()))[0], torch.tensor([[0.25], [-1.0]]))
    csv.write_text("x\nabc\n")
    with pytest.raises(ConfigError, match="one number per row"):
        dm.predict_dataloader()


@pytest.mark.parametrize("batch_size, splits", [(7, False), (8, True), (None, True)])
def test_shares_that_cannot_be_equal_are_refused(batch_size, splits):
    """With 2 processes, every batch (the short last one too) must split in two: 40 points in 7s leave 5."""
    dm = setup(batch_size=batch_size)
    dm.trainer = SimpleNamespace(global_rank=0, world_size=2)  # what the Trainer tells the data module
    if splits:
        assert len(list(dm.train_dataloader())) == len(dm.train_dataloader())
    else:
        with pytest.raises(ConfigError, match=r"the train split's 40 points in batches of 7 make batches of \[5, 7\]"):
            dm.train_dataloader()
