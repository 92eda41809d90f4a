"""The data: a straight line ``y = weight * X + bias``, or your own points, split in order 80/20 as the tutorial does.

``LineDataModule`` is a ``LightningDataModule``; every setting is an ``__init__`` argument, so the CLI can
set it (``linlight fit --data.step 0.01 --data.batch_size 8 --data.shuffle true``).

Noise (``data.noise_std``) is drawn once, over all points before the split, from a generator of its own:
``y = weight * X + bias + noise_std * torch.randn(len(X), 1, generator=torch.Generator().manual_seed(seed))``,
so a noisy run is reproducible and resumes exactly; ``noise_std`` 0 adds nothing (the tutorial's numbers).
``data.csv`` replaces the generated line with the ``x,y`` rows of a file (a header row is optional); its
sha256 is recorded with the run, so resuming on a file that changed since is refused.

Batches are slices of two tensors (``TensorBatches``), not per-sample ``Dataset`` lookups and collation:
for data that already sits in memory that is one to two orders of magnitude faster. The shuffle order is a
function of ``(seed, epoch)`` only, so a resumed run sees the same batches as an uninterrupted one. Under
DDP each process takes a disjoint, equal share of every global batch (``batch_size`` is global).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from linlight.errors import ConfigError

LINE_DEFAULTS = {"weight": 0.7, "bias": 0.3, "start": 0.0, "end": 1.0, "step": 0.02, "noise_std": 0.0}


def make_line(
    weight: float = 0.7, bias: float = 0.3, start: float = 0.0, end: float = 1.0, step: float = 0.02,
    noise_std: float = 0.0, seed: int = 42,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tutorial's data: ``X = arange(start, end, step)`` as a column and ``y = weight * X + bias``.

    With ``noise_std`` > 0, ``y`` gets ``noise_std`` times standard normal noise, drawn in one call for all
    points from ``torch.Generator().manual_seed(seed)``: the same noise whatever ran before.
    """
    x = torch.arange(start, end, step).unsqueeze(dim=1)
    y = weight * x
    y.add_(bias)  # in place: the same values as `weight * x + bias`, without a temporary copy
    if noise_std:
        noise = torch.randn(len(x), 1, generator=torch.Generator().manual_seed(seed))
        y.add_(noise.mul_(noise_std))
    return x, y


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


def take(t: torch.Tensor, idx: slice | torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of ``t``: a view for a slice; ``index_select`` for indices, which (unlike ``t[idx]`` with
    int32 indices) leaves no memory behind: over an epoch of 10^8 points, ``t[idx]`` grew the process by 0.3x
    the data."""
    return t[idx] if isinstance(idx, slice) else t.index_select(0, idx)


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
        batches = ((take(x, idx), take(y, idx)) for idx in self.sampler)
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


def _read_bytes(path: Path, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {setting} {path}: {e.strerror}") from None


def _csv_rows(path: Path, setting: str) -> tuple[list[tuple[int, list[str]]], str]:
    """The non-blank rows of a CSV file with their line numbers, and the sha256 of the bytes they came from."""
    raw = _read_bytes(path, setting)
    try:
        reader = csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
        rows = [(reader.line_num, row) for row in reader if any(field.strip() for field in row)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{setting} {path} is not a CSV text file: {e}") from None
    return rows, hashlib.sha256(raw).hexdigest()


def read_numbers(path: Path, setting: str, columns: int, exact: bool) -> tuple[torch.Tensor, str]:
    """The numbers of a CSV file as a ``[rows, columns]`` float32 tensor, and the file's sha256.

    A first row that is not all numbers is a header and is skipped. ``exact``: every row has exactly
    ``columns`` fields (else the first ``columns`` are used). Every problem names the line it is on.
    """
    rows, sha = _csv_rows(path, setting)
    if rows and not all(_is_number(field) for field in rows[0][1][:columns]):
        rows = rows[1:]  # a header
    shape = "x,y" if columns == 2 else "one number per row"
    if not rows:
        raise ConfigError(f"{setting} {path} has no data rows: expected {shape} (a header row is optional)")
    values = []
    for line, row in rows:
        if len(row) < columns or (exact and len(row) != columns):
            found = "one column" if len(row) == 1 else f"{len(row)} columns"
            raise ConfigError(f"{setting} {path} line {line}: expected {columns} columns ({shape}), found {found}")
        fields = row[:columns]
        bad = next((f for f in fields if not _is_number(f)), None)
        if bad is not None:
            raise ConfigError(f"{setting} {path} line {line}: {bad.strip()!r} is not a number (expected {shape})")
        numbers = [float(f) for f in fields]
        if not all(math.isfinite(v) for v in numbers):
            raise ConfigError(f"{setting} {path} line {line}: {','.join(fields)!r} is not finite (NaN or infinity)")
        values.append(numbers)
    return torch.tensor(values, dtype=torch.float32), sha


def read_x_csv(path: Path) -> torch.Tensor:
    """X values for prediction from a CSV file: one number per row (the first column), an optional header row."""
    return read_numbers(path, "data.predict_csv", columns=1, exact=False)[0]


def csv_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes: what linlight records of a ``data.csv`` to know it again."""
    return hashlib.sha256(_read_bytes(Path(path), "data.csv")).hexdigest()


def data_identity(settings: dict) -> dict[str, str]:
    """What identifies the data beyond its settings: the content of a ``data.csv`` file (``_csv_sha256``).

    The CLI compares it, with the settings, against the data a checkpoint was trained on.
    """
    return {"_csv_sha256": csv_sha256(settings["csv"])} if settings.get("csv") else {}


def data_change(key: str, old: object, new: object) -> str:
    """A difference between the data a checkpoint was trained on and the data given now, in words."""
    if key == "_csv_sha256":
        return f"data.csv's content has changed (sha256 {new[:12]}... now, {old[:12]}... in training)"
    return f"data.{key}={new!r} (trained with {old!r})"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class LineDataModule(pl.LightningDataModule):
    """The straight line ``y = weight * X + bias`` (or a CSV file's points) with the tutorial's in-order split.

    Args:
        weight: true slope of the line.
        bias: true intercept of the line.
        start: first X value (inclusive).
        end: last X value (exclusive).
        step: spacing of X values (``1e-6`` gives a million points).
        noise_std: standard deviation of Gaussian noise added to ``y`` (drawn from ``seed``); 0 adds none.
        csv: a CSV file of ``x,y`` rows (a header row is optional) to learn instead of the generated line. The
            line's settings above have no use then, and setting them is refused; its content is recorded
            (sha256), so a resume refuses a file that changed.
        train_split: fraction of points, from the start, used for training; the rest is the test split,
            which is also the validation set evaluated every epoch, as in the tutorial.
        batch_size: global batch size; ``None`` is the whole split in one batch (the tutorial).
        shuffle: reshuffle the training data every epoch (from ``seed`` and the epoch number).
        seed: seed of the shuffle order and of the noise.
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
        noise_std: float = 0.0,
        csv: str | None = None,
        train_split: float = 0.8,
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int = 42,
        steps_per_execution: int = 1,
        predict_x: list[float] | None = None,
        predict_csv: Path | None = None,
    ) -> None:
        super().__init__()
        line = {"weight": weight, "bias": bias, "start": start, "end": end, "step": step, "noise_std": noise_std}
        if not 0 < train_split < 1:
            raise ConfigError(f"data.train_split must be between 0 and 1 (exclusive), got {train_split}")
        self.x: torch.Tensor | None = None  # made in setup, or read here from data.csv
        if csv is None:
            n = self._check_line(**line)
            if int(train_split * n) == 0:  # (the test split always keeps at least one point: int() rounds down)
                raise ConfigError(
                    f"data.train_split={train_split} of {n} points leaves an empty train split; "
                    "use more points (smaller data.step) or a larger split"
                )
        else:
            given = [f"data.{k}={v}" for k, v in line.items() if v != LINE_DEFAULTS[k]]
            if given:
                raise ConfigError(f"data.csv replaces the generated line: leave out its settings ({', '.join(given)})")
            points, sha = read_numbers(Path(csv), "data.csv", columns=2, exact=True)
            self.x, self.y = points[:, :1].clone(), points[:, 1:].clone()
            self.n_train = int(train_split * len(points))
            if self.n_train == 0:
                n, least = len(points), next(m for m in count(2) if int(train_split * m) > 0)
                raise ConfigError(
                    f"data.csv {csv} has {n} row{'s' * (n != 1)}: data.train_split={train_split} leaves none for "
                    f"training; the train and test splits need at least one row each, so at least {least} rows"
                )
        if batch_size is not None and batch_size <= 0:
            raise ConfigError(f"data.batch_size must be a positive integer (or null for full batch), got {batch_size}")
        if steps_per_execution < 1:
            raise ConfigError(f"data.steps_per_execution must be a positive integer, got {steps_per_execution}")
        if predict_x is not None and not all(math.isfinite(v) for v in predict_x):
            raise ConfigError("data.predict_x must contain finite numbers only")
        # a CSV run records its file (by absolute path, and its content), not the settings of a line it has not
        self.save_hyperparameters(ignore=["predict_x", "predict_csv", *(line if csv is not None else ())])
        if csv is not None:
            self.hparams.update(csv=str(Path(csv).resolve()), _csv_sha256=sha)
        self.predict_x, self.predict_csv = predict_x, predict_csv

    @staticmethod
    def _check_line(weight: float, bias: float, start: float, end: float, step: float, noise_std: float) -> int:
        """Refuse a line that cannot be generated; its number of points."""
        for name, value in (("weight", weight), ("bias", bias), ("start", start), ("end", end), ("step", step),
                            ("noise_std", noise_std)):
            if not math.isfinite(value):
                raise ConfigError(f"data.{name} must be a finite number, got {value}")
        if step <= 0:
            raise ConfigError(f"data.step must be positive, got {step}")
        if start >= end:
            raise ConfigError(f"data.start ({start}) must be less than data.end ({end})")
        if noise_std < 0:
            raise ConfigError(f"data.noise_std must be zero or positive, got {noise_std}")
        return math.ceil((end - start) / step)

    @property
    def true_line(self) -> tuple[float, float] | None:
        """``(weight, bias)`` of the line the data comes from; ``None`` for a CSV file's points."""
        h = self.hparams
        return None if h.get("csv") else (h.weight, h.bias)

    def describe(self) -> str:
        """One line on what the data is (after ``setup``), for the end-of-run summary."""
        h = self.hparams
        if h.get("csv"):
            source = f"{h.csv} (sha256 {h._csv_sha256[:12]}...)"
        else:
            noise = f" + noise (std {h.noise_std:g}, seed {h.seed})" if h.noise_std else ""
            source = f"y = {h.weight:g} x + {h.bias:g}{noise}, x from {h.start:g} to {h.end:g} step {h.step:g}"
        if self.x is None:
            return source
        return f"{source}: {self.n_train} train, {len(self.x) - self.n_train} test points"

    def setup(self, stage: str) -> None:
        if self.x is None:
            h = self.hparams
            self.x, self.y = make_line(h.weight, h.bias, h.start, h.end, h.step, h.noise_std, h.seed)
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
