"""The data: a straight line ``y = weight * X + bias``, split in order 80/20 as the tutorial does.

``LineDataModule`` is a ``LightningDataModule``; every setting is an ``__init__`` argument, so the CLI can
set it (``linlight fit --data.step 0.01 --data.batch_size 8 --data.shuffle true``).

Batches are slices of two tensors (``TensorBatches``), not per-sample ``Dataset`` lookups and collation:
for data that already sits in memory that is one to two orders of magnitude faster. The shuffle order is a
function of ``(seed, epoch)`` only, so a resumed run sees the same batches as an uninterrupted one. Under
DDP each process takes a disjoint, equal share of every global batch (``batch_size`` is global).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from linlight.errors import ConfigError


def make_line(
    weight: float = 0.7, bias: float = 0.3, start: float = 0.0, end: float = 1.0, step: float = 0.02
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tutorial's data: ``X = arange(start, end, step)`` as a column and ``y = weight * X + bias``."""
    x = torch.arange(start, end, step).unsqueeze(dim=1)
    y = weight * x
    return x, y.add_(bias)  # in place: the same values as `weight * x + bias`, without a temporary copy


class EpochSampler:
    """Yields the index batches of one epoch; Lightning calls ``set_epoch`` before each epoch.

    Unshuffled batches are ``slice``s (views, no copy). Shuffled ones are index tensors drawn from a
    permutation seeded by ``(seed, epoch)``. ``rank``/``world_size`` pick this process's share of each batch.
    """

    def __init__(
        self, n: int, batch_size: int | None, shuffle: bool, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.batch_size = batch_size or n
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[slice | torch.Tensor]:
        bs, r, w = self.batch_size, self.rank, self.world_size
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            perm = torch.randperm(self.n, generator=gen, dtype=torch.int32)  # half the memory of int64
            for i in range(0, self.n, bs):
                yield perm[i : i + bs][r::w]  # a view; with one process, the whole batch
        else:
            for i in range(0, self.n, bs):
                j = min(i + bs, self.n)
                share = (j - i) // w  # contiguous equal shares (sizes checked in setup)
                yield slice(i + r * share, i + (r + 1) * share)


class TensorBatches:
    """An iterable of ``(x, y)`` batches cut from two tensors by an ``EpochSampler``.

    It is not a ``DataLoader`` on purpose: Lightning leaves it as it is (no ``DistributedSampler`` is
    injected; the sampler already shards), and there is no per-sample work or worker process. With
    ``steps_per_execution`` K > 1 it yields lists of K consecutive batches (the last list may be shorter):
    Lightning runs one step per list, and the LightningModule runs K optimizer steps in it.
    """

    batch_sampler = None  # the DataLoader attributes Lightning inspects: ``sampler`` and ``batch_sampler``

    def __init__(self, x: torch.Tensor, y: torch.Tensor, sampler: EpochSampler, steps_per_execution: int = 1) -> None:
        self.x, self.y, self.sampler, self.steps_per_execution = x, y, sampler, steps_per_execution

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.steps_per_execution)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor] | list[tuple[torch.Tensor, torch.Tensor]]]:
        x, y, k = self.x, self.y, self.steps_per_execution
        batches = ((x[idx], y[idx]) for idx in self.sampler)
        if k == 1:
            yield from batches
            return
        group = []
        for batch in batches:
            group.append(batch)
            if len(group) == k:
                yield group
                group = []
        if group:
            yield group


def read_x_csv(path: Path) -> torch.Tensor:
    """X values for prediction from a CSV file: one number per row, an optional header row."""
    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f) if row and row[0].strip()]
    except OSError as e:
        raise ConfigError(f"cannot read prediction input {path}: {e.strerror}") from None
    if rows and not _is_number(rows[0][0]):
        rows = rows[1:]
    bad = [row[0] for row in rows if not _is_number(row[0])]
    if bad or not rows:
        raise ConfigError(f"{path}: expected one number per row in the first column, got {bad[:3] or 'nothing'}")
    return torch.tensor([float(row[0]) for row in rows]).unsqueeze(1)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


class LineDataModule(pl.LightningDataModule):
    """The straight line ``y = weight * X + bias`` with the tutorial's in-order train/test split.

    Args:
        weight: true slope of the line.
        bias: true intercept of the line.
        start: first X value (inclusive).
        end: last X value (exclusive).
        step: spacing of X values (``1e-6`` gives a million points).
        train_split: fraction of points, from the start, used for training; the rest is the test split,
            which is also the validation set evaluated every epoch, as in the tutorial.
        batch_size: global batch size; ``None`` is the whole split in one batch (the tutorial).
        shuffle: reshuffle the training data every epoch (from ``seed`` and the epoch number).
        seed: seed of the shuffle order.
        steps_per_execution: batches per Lightning step (K). With K > 1 the LightningModule runs K optimizer
            steps on K consecutive batches inside one Lightning step, so Lightning's per-step cost is paid once
            per K batches: for many small batches an epoch. The batches, their order and every result are
            those of K = 1; per-batch callback hooks run once per K batches.
        predict_x: X values to predict for ``linlight predict``.
        predict_csv: a CSV file of X values to predict for ``linlight predict``.
    """

    def __init__(
        self,
        weight: float = 0.7,
        bias: float = 0.3,
        start: float = 0.0,
        end: float = 1.0,
        step: float = 0.02,
        train_split: float = 0.8,
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int = 42,
        steps_per_execution: int = 1,
        predict_x: list[float] | None = None,
        predict_csv: Path | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("weight", weight), ("bias", bias), ("start", start), ("end", end), ("step", step)):
            if not math.isfinite(value):
                raise ConfigError(f"data.{name} must be a finite number, got {value}")
        if step <= 0:
            raise ConfigError(f"data.step must be positive, got {step}")
        if start >= end:
            raise ConfigError(f"data.start ({start}) must be less than data.end ({end})")
        if not 0 < train_split < 1:
            raise ConfigError(f"data.train_split must be between 0 and 1 (exclusive), got {train_split}")
        n = math.ceil((end - start) / step)
        n_train = int(train_split * n)
        if n_train == 0:  # (the test split always keeps at least one point: int() rounds down)
            raise ConfigError(
                f"data.train_split={train_split} of {n} points leaves an empty train split; "
                "use more points (smaller data.step) or a larger split"
            )
        if batch_size is not None and batch_size <= 0:
            raise ConfigError(f"data.batch_size must be a positive integer (or null for full batch), got {batch_size}")
        if steps_per_execution < 1:
            raise ConfigError(f"data.steps_per_execution must be a positive integer, got {steps_per_execution}")
        if predict_x is not None and not all(math.isfinite(v) for v in predict_x):
            raise ConfigError("data.predict_x must contain finite numbers only")
        self.save_hyperparameters(ignore=["predict_x", "predict_csv"])
        self.predict_x, self.predict_csv = predict_x, predict_csv
        self.x: torch.Tensor | None = None

    def setup(self, stage: str) -> None:
        if self.x is None:
            h = self.hparams
            self.x, self.y = make_line(h.weight, h.bias, h.start, h.end, h.step)
            self.n_train = int(h.train_split * len(self.x))
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self.x.device != device:  # keep the data where the model is: no host-to-device copy per step
            self.x, self.y = self.x.to(device), self.y.to(device)

    @property
    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[: self.n_train], self.y[: self.n_train]

    @property
    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[self.n_train :], self.y[self.n_train :]

    def _batches(self, x: torch.Tensor, y: torch.Tensor | None, shuffle: bool, split: str) -> TensorBatches:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        sampler = EpochSampler(len(x), self.hparams.batch_size, shuffle, self.hparams.seed, rank, world)
        if world > 1:
            n, bs = len(x), sampler.batch_size
            sizes = {min(bs, n)} | ({n % bs} if n > bs and n % bs else set())  # full batches and the last one
            if any(s % world for s in sizes):
                raise ConfigError(
                    f"with {world} processes every batch must split into equal shares, but the {split} split's "
                    f"{len(x)} points in batches of {sampler.batch_size} make batches of {sorted(sizes)}; choose "
                    f"data.batch_size and the split sizes as multiples of {world}"
                )
        return TensorBatches(x, y, sampler, self.hparams.steps_per_execution)

    def train_dataloader(self) -> TensorBatches:
        return self._batches(*self.train_data, shuffle=self.hparams.shuffle, split="train")

    def val_dataloader(self) -> TensorBatches:
        return self._batches(*self.test_data, shuffle=False, split="test")

    def test_dataloader(self) -> TensorBatches:
        return self._batches(*self.test_data, shuffle=False, split="test")

    def predict_dataloader(self) -> DataLoader:
        """A ``DataLoader``, once per run: through its sampler Lightning tells prediction writers which x is whose."""
        if self.predict_csv is not None:
            x = read_x_csv(self.predict_csv)
        elif self.predict_x:
            x = torch.tensor(self.predict_x, dtype=torch.float).unsqueeze(1)
        else:
            raise ConfigError("nothing to predict: give --data.predict_x '[0.1, 0.5]' or --data.predict_csv FILE")
        return DataLoader(TensorDataset(x), batch_size=len(x))
