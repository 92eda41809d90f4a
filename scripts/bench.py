"""Benchmarks, side by side in one run, as ratios (this machine is shared and noisy: compare, never trust one time).

    python scripts/bench.py                  # everything (several minutes)
    python scripts/bench.py --quick          # tiny settings, seconds: checks that the benchmark runs
    python scripts/bench.py --only reference --repeats 7

1. reference: the reference experiment as whole processes, start to exit: the tutorial's plain script
   (scripts/tutorial_plain.py), `linlight fit` with its defaults, and a straightforward Lightning version
   (DataLoader(TensorDataset), self.log, a checkpoint every epoch, the TQDM bar). Runs alternate.
   Also: `linlight fit` without its progress bar (what the bar costs), and Lightning's floor (a bare
   Trainer with a DataLoader and validation every epoch, nothing else).
2. scale: seconds per epoch (train + validation pass) at 10^6 points, shuffled: a raw loop slicing
   shuffled indices from the tensors, `linlight fit`, a bare Trainer over linlight's module and data
   (Lightning's own per-step floor), and Lightning over DataLoader(TensorDataset).
3. memory: peak resident memory of `linlight fit` at 10^7 points against the reference run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset

from linlight.data import LineDataModule

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"


def run_process(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(SCRIPTS)})
    return time.perf_counter() - start


def worker(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPTS / "bench.py"), "--worker", *args], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SCRIPTS)})
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------- workers
def lightning_reference(epochs: int, root: str, bare: bool) -> None:
    """A straightforward Lightning port of the tutorial, or (bare) Lightning's floor: a Trainer with a
    DataLoader and validation every epoch, and nothing else (no logging, checkpoints or progress bar)."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    class Naive(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = nn.Linear(1, 1)
            self.loss_fn = nn.L1Loss()

        def training_step(self, batch, batch_idx):
            loss = self.loss_fn(self.model(batch[0]), batch[1])
            if not bare:
                self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
            return loss

        def validation_step(self, batch, batch_idx):
            loss = self.loss_fn(self.model(batch[0]), batch[1])
            if not bare:
                self.log("val/loss", loss, prog_bar=True)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    X = torch.arange(0, 1, 0.02).unsqueeze(1)
    y = 0.7 * X + 0.3
    train, test = TensorDataset(X[:40], y[:40]), TensorDataset(X[40:], y[40:])
    pl.seed_everything(42)
    if bare:
        trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, accelerator="auto")
    else:
        trainer = pl.Trainer(max_epochs=epochs, logger=TensorBoardLogger(root), accelerator="auto",
                             callbacks=[ModelCheckpoint(save_last=True, every_n_epochs=1)], log_every_n_steps=1)
    trainer.fit(Naive(), DataLoader(train, batch_size=40), DataLoader(test, batch_size=10))


class EpochTimer(pl.Callback):
    """A callback (loaded by class path) that writes the wall time of every epoch start to a JSON file."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.starts: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.starts.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module):
        self.starts.append(time.perf_counter())
        Path(self.out).write_text(json.dumps(self.starts))


def per_epoch(starts: list[float]) -> float:
    return statistics.median(b - a for a, b in itertools.pairwise(starts[1:]))  # the first epoch warms up


def scale(variant: str, step: float, batch: int, epochs: int) -> dict:
    import torch

    if variant == "raw":
        from torch import nn

        from linlight.data import make_line

        x, y = make_line(step=step)
        n = int(0.8 * len(x))
        xt, yt, xv, yv = x[:n], y[:n], x[n:], y[n:]
        torch.manual_seed(42)
        model, loss_fn = nn.Linear(1, 1), nn.L1Loss()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        gen = torch.Generator().manual_seed(0)
        starts = []
        for _ in range(epochs):
            starts.append(time.perf_counter())
            model.train()
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, batch):
                idx = perm[i : i + batch]
                loss = loss_fn(model(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            with torch.inference_mode():
                for i in range(0, len(xv), batch):
                    loss_fn(model(xv[i : i + batch]), yv[i : i + batch])
        starts.append(time.perf_counter())
        return {"sec_per_epoch": per_epoch(starts)}

    if variant == "bare":  # linlight's module and data in a Trainer with nothing else
        from linlight.module import LitLinearRegression

        pl.seed_everything(42, verbose=False)
        timer = EpochTimer(os.devnull)
        trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, accelerator="cpu", callbacks=[timer])
        trainer.fit(LitLinearRegression(), datamodule=LineDataModule(step=step, batch_size=batch, shuffle=True))
        return {"sec_per_epoch": per_epoch(timer.starts)}

    from linlight.cli import LinlightCLI

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "starts.json"
        args = ["fit", "--data.step", str(step), "--data.batch_size", str(batch), "--data.shuffle", "true",
                "--trainer.max_epochs", str(epochs), "--trainer.default_root_dir", tmp,
                "--trainer.callbacks+=bench.EpochTimer", f"--trainer.callbacks.out={out}"]
        if variant == "dataloader":  # the same CLI and module, only the data pipeline swapped
            import linlight.cli

            linlight.cli.LineDataModule = TensorDatasetLine
        LinlightCLI(args=args)
        return {"sec_per_epoch": per_epoch(json.loads(out.read_text()))}


class TensorDatasetLine(LineDataModule):
    """linlight's data as a DataLoader over a TensorDataset: the usual way, with per-sample indexing."""

    def train_dataloader(self):
        return DataLoader(TensorDataset(*self.train_data), batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(*self.test_data), batch_size=self.hparams.batch_size)


def memory(step: float, batch: int | None, epochs: int) -> dict:
    from linlight.cli import LinlightCLI

    with tempfile.TemporaryDirectory() as tmp:
        args = ["fit", "--data.step", str(step), "--trainer.max_epochs", str(epochs),
                "--trainer.default_root_dir", tmp, "--trainer.enable_progress_bar", "false"]
        if batch:
            args += ["--data.batch_size", str(batch), "--data.shuffle", "true"]
        LinlightCLI(args=args)
    return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ----------------------------------------------------------------------------------------------- main
def bench_reference(repeats: int, epochs: int) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        cmds = {
            "plain PyTorch (tutorial)": [sys.executable, str(SCRIPTS / "tutorial_plain.py"), "--epochs", str(epochs)],
            "linlight fit": [sys.executable, "-m", "linlight.cli", "fit", "--trainer.max_epochs", str(epochs),
                             "--trainer.default_root_dir", tmp],
            "linlight fit, no progress bar": [sys.executable, "-m", "linlight.cli", "fit", "--trainer.max_epochs",
                                              str(epochs), "--trainer.default_root_dir", tmp,
                                              "--trainer.enable_progress_bar", "false"],
            "naive Lightning": [sys.executable, str(SCRIPTS / "bench.py"), "--worker", "naive", str(epochs), tmp],
            "bare Lightning (floor)": [sys.executable, str(SCRIPTS / "bench.py"), "--worker", "bare", str(epochs), tmp],
        }
        times: dict[str, list[float]] = {k: [] for k in cmds}
        order = list(cmds)
        for _ in range(repeats):
            random.shuffle(order)  # alternate, so drift on a shared machine hits every variant alike
            for name in order:
                times[name].append(run_process(cmds[name], Path(tmp)))
    base = statistics.median(times["plain PyTorch (tutorial)"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append((f"reference, {epochs} epochs: {name}", f"{med:6.2f} s   {med / base:5.2f}x plain"))
    return rows


def scale_all(step: float, epochs: int, batches: list[int]) -> dict:
    """Every scale variant in one process (timings are per epoch, in-process); the DataLoader one last."""
    results = {str(b): {v: scale(v, step, b, epochs)["sec_per_epoch"] for v in ("raw", "bare", "linlight")}
               for b in batches}
    results[str(batches[0])]["dataloader"] = scale("dataloader", step, batches[0], epochs)["sec_per_epoch"]
    return results


def bench_scale(step: float, epochs: int, batches: tuple[int, ...]) -> list[tuple[str, str]]:
    rows = []
    everything = worker("scale", str(step), str(epochs), ",".join(map(str, batches)))
    for batch in batches:
        res = everything[str(batch)]
        variants = list(res)
        n = round(1 / step)
        for v in variants:
            ratio = res[v] / res["raw"]
            extra = f"   {res['dataloader'] / res['linlight']:5.1f}x slower than linlight" if v == "dataloader" else ""
            rows.append((f"scale, {n:.0e} points, batch {batch}: {v}",
                         f"{res[v]:7.3f} s/epoch   {ratio:5.2f}x raw{extra}"))
    return rows


def bench_memory(step: float) -> list[tuple[str, str]]:
    ref = worker("memory", "0.02", "0", "20")["peak_mb"]
    big = worker("memory", str(step), "65536", "1")["peak_mb"]
    data_mb = 2 * 4 * round(1 / step) / 2**20  # X and y, float32
    above = f"(+{(big - ref) / data_mb:4.2f}x the data's {data_mb:.0f} MB above the reference)"
    return [("memory: reference run peak", f"{ref:7.1f} MB"),
            (f"memory: {round(1 / step):.0e} points peak", f"{big:7.1f} MB   {above}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny settings: seconds, not minutes")
    parser.add_argument("--only", default="reference,scale,memory", help="comma-separated parts to run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        sys.argv = sys.argv[:1]  # the worker's own options are not LightningCLI's
        if kind in ("naive", "bare"):
            lightning_reference(int(rest[0]), rest[1], bare=kind == "bare")
            return
        if kind == "scale":
            result = scale_all(float(rest[0]), int(rest[1]), [int(b) for b in rest[2].split(",")])
        else:
            result = memory(float(rest[0]), int(rest[1]) or None, int(rest[2]))
        print(json.dumps(result))
        return
    parts = args.only.split(",")
    quick = args.quick
    rows: list[tuple[str, str]] = []
    if "reference" in parts:
        rows += bench_reference(1 if quick else args.repeats, 20 if quick else 1000)
    if "scale" in parts:
        rows += bench_scale(1e-4 if quick else 1e-6, 3 if quick else 5, (1024, 65536))
    if "memory" in parts:
        rows += bench_memory(1e-5 if quick else 1e-7)
    width = max(len(name) for name, _ in rows)
    print(f"linlight benchmark ({'quick' if quick else 'full'}), {time.strftime('%Y-%m-%d')}, "
          f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    main()
