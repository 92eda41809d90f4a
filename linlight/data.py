"""The data: a straight line ``y = weight * X + bias``, or your own rows, split in order 80/20 as the tutorial does.

- ``LineDataModule``: the tutorial's line (with noise, ``data.noise_std``), or the ``x,y`` points of a CSV file
  (``data.csv``). The CLI's default: ``linlight fit --data.step 0.01 --data.batch_size 8 --data.shuffle true``.
- ``TableDataModule``: a CSV file with a header row, any number of feature columns and a named target
  (``linlight fit --data linlight.data.TableDataModule --data.csv houses.csv --data.target price``).

Both are ``TensorDataModule``s: every setting is an ``__init__`` argument, so the CLI can set it, and they
share the split, the batches, shuffling, DDP shares, the record of a file's content and the move to the GPU.
A file setting in a config file is read against the config file's folder (``FilePath``) and recorded by its
absolute path.

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
import json
import math
import os
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import lightning.pytorch as pl
import torch
from jsonargparse.typing import path_type
from torch.utils.data import DataLoader, TensorDataset

from linlight.errors import ConfigError

# A file setting: given on the command line, relative to the current folder; in a config file, relative to
# the config file's folder (jsonargparse reads it there). Its check is linlight's, at use: "D" only refuses a
# folder, so a missing file gets linlight's own message, naming the line and what to do.
FilePath = path_type("D", docstring="a file; in a config file, relative to the config file's folder")

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


def _read_bytes(path: str | Path, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {setting} {path}: {e.strerror}") from None


def _csv_rows(path: str | Path, setting: str) -> tuple[list[tuple[int, list[str]]], str]:
    """The non-blank rows of a CSV file with their line numbers, and the sha256 of the bytes they came from."""
    raw = _read_bytes(path, setting)
    try:
        reader = csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
        rows = [(reader.line_num, row) for row in reader if any(field.strip() for field in row)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{setting} {path} is not a CSV text file: {e}") from None
    return rows, hashlib.sha256(raw).hexdigest()


def _numbers(rows: list[tuple[int, list[str]]], path: str | Path, setting: str, shape: str) -> torch.Tensor:
    """Rows of number fields as a float32 tensor; a field that is not a finite number names its line."""
    values = []
    for line, fields in rows:
        bad = next((f for f in fields if not _is_number(f)), None)
        if bad is not None:
            raise ConfigError(f"{setting} {path} line {line}: {bad.strip()!r} is not a number (expected {shape})")
        numbers = [float(f) for f in fields]
        if not all(math.isfinite(v) for v in numbers):
            raise ConfigError(f"{setting} {path} line {line}: {','.join(fields)!r} is not finite (NaN or infinity)")
        values.append(numbers)
    return torch.tensor(values, dtype=torch.float32)


def _found(row: list[str]) -> str:
    return "one column" if len(row) == 1 else f"{len(row)} columns"


def read_numbers(path: str | Path, setting: str, columns: int, exact: bool) -> tuple[torch.Tensor, str]:
    """The numbers of a CSV file as a ``[rows, columns]`` float32 tensor, and the file's sha256.

    A first row that is not all numbers is a header and is skipped. ``exact``: every row has exactly
    ``columns`` fields (else the first ``columns`` are used). Every problem names the line it is on.
    """
    rows, sha = _csv_rows(path, setting)
    if rows and not all(_is_number(field) for field in rows[0][1][:columns]):
        rows = rows[1:]  # a header
    shape = "x,y" if columns == 2 else "one number per row" if columns == 1 else f"{columns} numbers per row"
    if not rows:
        raise ConfigError(f"{setting} {path} has no data rows: expected {shape} (a header row is optional)")
    for line, row in rows:
        if len(row) < columns or (exact and len(row) != columns):
            more = ("; for several features use --data linlight.data.TableDataModule (a header row names the "
                    "columns, --data.target the one to predict)") if columns == 2 and len(row) > 2 else ""
            raise ConfigError(f"{setting} {path} line {line}: expected {columns} columns ({shape}), "
                              f"found {_found(row)}{more}")
    return _numbers([(line, row[:columns]) for line, row in rows], path, setting, shape), sha


def read_table(path: str | Path, target: str, features: list[str] | None) -> tuple[torch.Tensor, torch.Tensor,
                                                                                   list[str], str]:
    """A CSV file with a header row: the feature columns ``[rows, features]``, the target ``[rows, 1]``, the
    feature names and the file's sha256. ``features`` ``None``: every column but the target, in file order."""
    setting = "data.csv"
    rows, sha = _csv_rows(path, setting)
    if not rows:
        raise ConfigError(f"{setting} {path} is empty: expected a header row naming the columns, then rows of numbers")
    header_line, header = rows[0]
    names = [name.strip() for name in header]
    if all(_is_number(name) for name in names):
        raise ConfigError(f"{setting} {path} line {header_line}: expected a header row naming the columns "
                          f"(the target is found by its name, --data.target {target}), found numbers")
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"{setting} {path} line {header_line}: the column names must differ, {twice} repeat")
    if target not in names:
        raise ConfigError(f"{setting} {path} has no column {target!r} (data.target); its columns are {names}")
    if features is None:
        features = [n for n in names if n != target]
    missing = [f for f in features if f not in names]
    if missing or target in features or not features:
        why = (f"has no column(s) {missing}; its columns are {names}" if missing else
               "names the target among the features" if target in features else "leaves no feature column")
        raise ConfigError(f"{setting} {path}: data.features {why}")
    body = rows[1:]
    if not body:
        raise ConfigError(f"{setting} {path} has no data rows after its header")
    for line, row in body:
        if len(row) != len(names):
            raise ConfigError(f"{setting} {path} line {line}: expected {len(names)} columns (as the header), "
                              f"found {_found(row)}")
    columns = [names.index(f) for f in features] + [names.index(target)]
    shape = f"numbers in the {len(names)} columns"
    values = _numbers([(line, [row[c] for c in columns]) for line, row in body], path, setting, shape)
    return values[:, :-1].clone(), values[:, -1:].clone(), features, sha


def read_x_csv(path: str | Path, features: list[str] | None = None) -> torch.Tensor:
    """Inputs for prediction from a CSV file, ``[rows, features]``.

    ``features`` ``None`` (one input, the line): one number per row (the first column), an optional header.
    Named features: a header naming them (in any order, other columns ignored), or rows of exactly that many
    numbers with no header.
    """
    setting = "data.predict_csv"
    if features is None:
        return read_numbers(path, setting, columns=1, exact=False)[0]
    rows, _ = _csv_rows(path, setting)
    shape = f"{len(features)} numbers per row ({','.join(features)})"
    if not rows:
        raise ConfigError(f"{setting} {path} has no data rows: expected {shape} (a header row is optional)")
    names = [f.strip() for f in rows[0][1]]
    header = not all(_is_number(f) for f in names)
    if header:  # the feature columns by name
        missing = [f for f in features if f not in names]
        if missing:
            raise ConfigError(f"{setting} {path} line {rows[0][0]}: no column(s) {missing} for the model's "
                              f"features {features}; its columns are {names}")
        columns, width, rows = [names.index(f) for f in features], len(names), rows[1:]
    else:
        columns, width = list(range(len(features))), len(features)
    if not rows:
        raise ConfigError(f"{setting} {path} has no data rows after its header")
    for line, row in rows:
        if len(row) != width:
            expected = f"{width} columns (as the header)" if header else shape
            raise ConfigError(f"{setting} {path} line {line}: expected {expected}, found {_found(row)}")
    return _numbers([(line, [row[c] for c in columns]) for line, row in rows], path, setting, shape)


Rows = list[float] | list[list[float]]  # values to predict: rows of features ([[1, 2], [3, 4]]), or one per row


def rows_tensor(rows: Rows, features: list[str]) -> torch.Tensor:
    """``data.predict_x`` as ``[rows, features]``: a list of rows, or for one feature a list of values."""
    if len(features) == 1 and all(isinstance(v, (int, float)) for v in rows):
        rows = [[v] for v in rows]
    for row in rows:
        if not isinstance(row, list) or len(row) != len(features) or not all(math.isfinite(v) for v in row):
            shape = "finite numbers" if len(features) == 1 else f"rows of {len(features)} finite numbers"
            raise ConfigError(f"data.predict_x must be {shape} ({','.join(features)}), got {row}")
    return torch.tensor(rows, dtype=torch.float32).reshape(len(rows), len(features))


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
    if key == "_class_path":
        return f"--data {new} (trained with {old})"
    return f"data.{key}={new!r} (trained with {old!r})"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class TensorDataModule(pl.LightningDataModule):
    """Rows of inputs ``x`` ``[n, features]`` and targets ``y`` ``[n, targets]`` in memory, split in order.

    What ``LineDataModule`` and ``TableDataModule`` share (subclass it for data of your own): the first
    ``train_split`` of the rows train, the rest validate and test; batches are slices (shuffled: index tensors
    from ``(seed, epoch)``); under DDP each process takes an equal share of every global batch; the tensors move
    to the model's device once, in ``setup``. A subclass sets ``self.x``, ``self.y`` (in ``__init__`` or in
    ``load``) and names its columns (``feature_names``, ``target_names``).

    Args:
        train_split: fraction of rows, from the start, used for training; the rest is the test split, which
            is also the validation set evaluated every epoch, as in the tutorial.
        batch_size: global batch size; ``None`` is the whole split in one batch (the tutorial).
        shuffle: reshuffle the training data every epoch (from ``seed`` and the epoch number).
        seed: seed of the shuffle order (and of a line's noise).
        steps_per_execution: batches per Lightning step (K). With K > 1 the LightningModule runs K optimizer
            steps on K consecutive batches inside one Lightning step, so Lightning's per-step cost is paid once
            per K batches: for many small batches an epoch. The batches, their order and every result are
            those of K = 1; per-batch callback hooks run once per K batches.
    """

    feature_names: list[str] = ["x"]
    target_names: list[str] = ["y"]

    def __init__(self, train_split: float = 0.8, batch_size: int | None = None, shuffle: bool = False,
                 seed: int = 42, steps_per_execution: int = 1) -> None:
        super().__init__()
        if not 0 < train_split < 1:
            raise ConfigError(f"data.train_split must be between 0 and 1 (exclusive), got {train_split}")
        if batch_size is not None and batch_size <= 0:
            raise ConfigError(f"data.batch_size must be a positive integer (or null for full batch), got {batch_size}")
        if steps_per_execution < 1:
            raise ConfigError(f"data.steps_per_execution must be a positive integer, got {steps_per_execution}")
        self.x: torch.Tensor | None = None  # the inputs and targets: set by a subclass (or its ``load``)
        self.y: torch.Tensor | None = None
        self.n_train = 0

    @property
    def num_features(self) -> int:
        """The number of input features: the CLI links it to the model's ``in_features``."""
        return len(self.feature_names)

    @property
    def true_line(self) -> tuple[float, float] | None:
        """``(weight, bias)`` of the line the data comes from, if it is one (``LineDataModule``)."""
        return None

    def _split(self, rows: int, what: str) -> None:
        """Set ``n_train``; refuse a split that leaves the train split empty."""
        split = self.hparams.train_split
        self.n_train = int(split * rows)
        if self.n_train == 0:
            least = next(m for m in count(2) if int(split * m) > 0)
            raise ConfigError(f"{what} has {rows} row{'s' * (rows != 1)}: data.train_split={split} leaves none for "
                              f"training; the train and test splits need at least one row each, so at least "
                              f"{least} rows")

    def load(self) -> None:
        """Make ``self.x``, ``self.y`` (and ``n_train``) if ``__init__`` did not: data made where it is used."""

    def describe(self) -> str:
        """One line on what the data is, for the end-of-run summary."""
        return f"{len(self.x) if self.x is not None else '?'} rows"

    def setup(self, stage: str) -> None:
        if self.x is None:
            self.load()
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

    def predict_rows(self) -> torch.Tensor:
        """The inputs to predict, ``[rows, features]`` (``linlight predict``'s ``data.predict_x``/``predict_csv``)."""
        raise ConfigError(f"{type(self).__name__} has nothing to predict")

    def predict_dataloader(self) -> DataLoader:
        """A ``DataLoader``, once per run: through its sampler Lightning tells prediction writers which row is whose."""
        x = self.predict_rows()
        return DataLoader(TensorDataset(x), batch_size=len(x))


def _record_file(module: TensorDataModule, path: str | Path, sha: str) -> None:
    """A data file is recorded by its absolute path and the sha256 of its content, so a resume knows it again."""
    module.hparams.update(csv=os.fspath(Path(path).resolve()), _csv_sha256=sha)


class LineDataModule(TensorDataModule):
    """The straight line ``y = weight * X + bias`` (or a CSV file's ``x,y`` points) with the tutorial's split.

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
        steps_per_execution: batches per Lightning step (K); see ``TensorDataModule``.
        predict_x: X values to predict for ``linlight predict`` (``[0.1, 0.5]``, or rows ``[[0.1], [0.5]]``).
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
        csv: FilePath | None = None,
        train_split: float = 0.8,
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int = 42,
        steps_per_execution: int = 1,
        predict_x: Rows | None = None,
        predict_csv: FilePath | None = None,
    ) -> None:
        super().__init__(train_split, batch_size, shuffle, seed, steps_per_execution)
        line = {"weight": weight, "bias": bias, "start": start, "end": end, "step": step, "noise_std": noise_std}
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
            points, sha = read_numbers(csv, "data.csv", columns=2, exact=True)
            self.x, self.y = points[:, :1].clone(), points[:, 1:].clone()
        if predict_x is not None:
            rows_tensor(predict_x, self.feature_names)
        # a CSV run records its file (by absolute path, and its content), not the settings of a line it has not
        self.save_hyperparameters(ignore=["predict_x", "predict_csv", *(line if csv is not None else ())])
        if csv is not None:
            _record_file(self, csv, sha)
            self._split(len(self.x), f"data.csv {csv}")
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

    def load(self) -> None:
        h = self.hparams
        self.x, self.y = make_line(h.weight, h.bias, h.start, h.end, h.step, h.noise_std, h.seed)
        self.n_train = int(h.train_split * len(self.x))

    def predict_rows(self) -> torch.Tensor:
        if self.predict_csv is not None:
            return read_x_csv(self.predict_csv)
        if self.predict_x:
            return rows_tensor(self.predict_x, self.feature_names)
        raise ConfigError("nothing to predict: give --data.predict_x '[0.1, 0.5]' or --data.predict_csv FILE")


class TableDataModule(TensorDataModule):
    """Your own table: a CSV file whose header names its columns, any number of features and one target.

    Everything else is as for the line: the first ``train_split`` of the rows (in file order) train, the rest
    validate and test; batches, shuffling, DDP shares, the file's recorded sha256 and the move to the GPU are
    ``TensorDataModule``'s. The model's ``in_features`` is linked to ``num_features`` by the CLI.

    Args:
        csv: the CSV file: a header row naming the columns, then one row of numbers per example.
        target: the column to predict.
        features: the columns to predict it from, in this order; ``None``: every other column, in file order.
        train_split: fraction of rows, from the start, used for training; the rest validate and test.
        batch_size: global batch size; ``None`` is the whole split in one batch.
        shuffle: reshuffle the training rows every epoch (from ``seed`` and the epoch number).
        seed: seed of the shuffle order.
        steps_per_execution: batches per Lightning step (K); see ``TensorDataModule``.
        predict_x: rows of feature values to predict for ``linlight predict``, e.g. ``[[1, 2, 3], [4, 5, 6]]``.
        predict_csv: a CSV file of rows to predict: a header naming the features (other columns are ignored),
            or rows of exactly ``num_features`` numbers.
    """

    def __init__(
        self,
        csv: FilePath,
        target: str,
        features: list[str] | None = None,
        train_split: float = 0.8,
        batch_size: int | None = None,
        shuffle: bool = False,
        seed: int = 42,
        steps_per_execution: int = 1,
        predict_x: Rows | None = None,
        predict_csv: FilePath | None = None,
    ) -> None:
        super().__init__(train_split, batch_size, shuffle, seed, steps_per_execution)
        self.x, self.y, names, sha = read_table(csv, target, features)
        self.feature_names, self.target_names = names, [target]
        if predict_x is not None:
            rows_tensor(predict_x, names)
        self.save_hyperparameters(ignore=["predict_x", "predict_csv"])
        _record_file(self, csv, sha)
        self._split(len(self.x), f"data.csv {csv}")
        self.predict_x, self.predict_csv = predict_x, predict_csv

    def describe(self) -> str:
        h = self.hparams
        return (f"{h.csv} (sha256 {h._csv_sha256[:12]}...): {h.target} from {len(self.feature_names)} feature"
                f"{'s' * (len(self.feature_names) != 1)} ({', '.join(self.feature_names)}): {self.n_train} train, "
                f"{len(self.x) - self.n_train} test rows")

    def predict_rows(self) -> torch.Tensor:
        if self.predict_csv is not None:
            return read_x_csv(self.predict_csv, self.feature_names)
        if self.predict_x:
            return rows_tensor(self.predict_x, self.feature_names)
        example = [[0.0] * len(self.feature_names)] * 2
        raise ConfigError(f"nothing to predict: give --data.predict_x '{json.dumps(example)}' (rows of "
                          f"{','.join(self.feature_names)}) or --data.predict_csv FILE")
