"""Benchmarks, side by side in one run, as ratios beside their goals (the machine is shared and noisy: compare
variants measured together, alternating, by their medians; never trust one time).

    python scripts/bench.py                  # everything (about ten minutes on 2 cores)
    python scripts/bench.py --quick          # tiny settings, a minute: checks that every variant runs
    python scripts/bench.py --only reference,costs --repeats 7

1. reference: the reference experiment as whole processes, start to exit: the tutorial's plain script
   (scripts/tutorial_plain.py), Lightning's floor (a bare Trainer with a DataLoader and validation every
   epoch, nothing else), a straightforward Lightning port (DataLoader(TensorDataset), self.log, a checkpoint
   every epoch, the TQDM bar) and `linlight fit` with all it does by default. Goal: linlight <= 1.15x the floor.
2. costs: where linlight's time goes, in one process, the reference fit with one part taken away after
   another; each row is the difference that part makes.
3. scale: seconds per epoch (train and validation) at 10^6 points, shuffled: a raw PyTorch loop slicing
   shuffled indices from the tensors, a bare Trainer over linlight's module and data (Lightning's own
   per-step floor), linlight with data.steps_per_execution 1 and K, and Lightning over DataLoader(TensorDataset).
   Goals: linlight (K=1) <= 1.10x the bare Trainer; with K, >= 0.9x the raw loop's samples per second.
4. memory: peak resident memory of one epoch at 10^8 points (800 MB of data), batch 65536, shuffled, above
   the reference run's. Goal: <= 1.5x the data's size.
5. module: what each of linlight's mixins (linlight/mixins.py) is worth: the reference fit in a bare Trainer
   (linlight's data, no logger, checkpoints or bar) with LitLinearRegression, then one mixin taken away after
   another down to LitRegression, the module to copy (Lightning's self.log, automatic optimization); each row
   says in how many epochs its loss/train and loss/val equal the plain loop's (==). No goal: it says what the
   clean form costs.
6. sweep: trials per minute of `linlight sweep --workers N` for N = 1, 2, 4, whole commands start to exit on a
   new study (SQLite), every trial the same work (the exercise, 100 epochs, the learning rate searched, nothing
   pruned). Goal: 2 workers >= 1.5x the trials per minute of 1 (on 2 cores).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset

from linlight.data import LineDataModule

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
QUIET = ["--trainer.enable_progress_bar", "false"]


def run_process(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(SCRIPTS)})
    return time.perf_counter() - start


def worker(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPTS / "bench.py"), "--worker", *args], check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(SCRIPTS)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def quiet() -> None:
    """Workers print only their result."""
    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


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


LADDER = ["linlight fit", "- progress bar", "- TensorBoard logger", "- checkpoints", "- signal handling",
          "- metrics", "- LightningCLI"]


def costs(epochs: int, repeats: int) -> dict:
    """The reference fit, in this process, with linlight's parts taken away one after another (LADDER)."""
    quiet()
    import torch

    from linlight.callbacks import GracefulStop, RunCheckpoint
    from linlight.cli import LinlightCLI
    from linlight.metrics import RegressionMetrics
    from linlight.module import LitLinearRegression

    class Without(LinlightCLI):
        drop: tuple[type, ...] = ()

        def instantiate_trainer(self, **kwargs):
            trainer = super().instantiate_trainer(**kwargs)
            trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, self.drop)]
            return trainer

    @contextlib.contextmanager
    def no_metrics():
        saved = RegressionMetrics.update, RegressionMetrics.compute
        RegressionMetrics.update, RegressionMetrics.compute = lambda self, *a: None, lambda self: {}
        try:
            yield
        finally:
            RegressionMetrics.update, RegressionMetrics.compute = saved

    def run(step: int) -> float:
        with tempfile.TemporaryDirectory() as root, (no_metrics() if step >= 5 else contextlib.nullcontext()):
            start = time.perf_counter()
            if step == 6:  # no LightningCLI: a Trainer with linlight's module and data, nothing else
                pl.seed_everything(42, verbose=False)
                trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=root)
                trainer.fit(LitLinearRegression(), datamodule=LineDataModule())
                return time.perf_counter() - start
            args = ["fit", "--trainer.max_epochs", str(epochs), "--trainer.default_root_dir", root]
            args += QUIET if step >= 1 else []
            args += ["--trainer.logger", "false"] if step >= 2 else []
            Without.drop = (RunCheckpoint,) * (step >= 3) + (GracefulStop,) * (step >= 4)
            Without(args=args, summary=False)
            return time.perf_counter() - start

    torch.set_num_threads(1)  # the two cores: one for this, one for the machine
    times: dict[str, list[float]] = {name: [] for name in LADDER}
    run(0)  # warm-up: imports, first allocations
    for _ in range(repeats):
        order = list(range(len(LADDER)))
        random.shuffle(order)
        for step in order:
            times[LADDER[step]].append(run(step))
    return {name: statistics.median(ts) for name, ts in times.items()}


MODULES = ["LitLinearRegression", "- EpochLogging (Lightning's self.log)", "- StepsPerExecution",
           "- LearningRateOnResume: LitRegression"]


def module_variants(epochs: int, repeats: int) -> dict:
    """The reference fit with each module of MODULES, alternating, in this process: median seconds, and the epochs
    whose loss/train and loss/val equal the plain loop's."""
    quiet()
    import torch
    from torch import nn

    from linlight.mixins import LearningRateOnResume, StepsPerExecution
    from linlight.models import build_model
    from linlight.module import LitLinearRegression, LitRegression

    class NoEpochLogging(StepsPerExecution, LearningRateOnResume, LitRegression):
        pass

    class NoSteps(LearningRateOnResume, LitRegression):
        pass

    makers = [LitLinearRegression, lambda: NoEpochLogging(build_model("v2")), lambda: NoSteps(build_model("v2")),
              lambda: LitRegression(build_model("v2"))]

    class Losses(pl.Callback):
        def __init__(self):
            self.train, self.val = [], []

        def on_train_epoch_start(self, trainer, pl_module):
            self._record(trainer)

        def on_train_end(self, trainer, pl_module):
            self._record(trainer)

        def _record(self, trainer):
            metrics = trainer.callback_metrics
            if "loss/train" in metrics:
                self.train.append(metrics["loss/train"].item())
                self.val.append(metrics["loss/val"].item())

    def plain() -> tuple[list[float], list[float]]:  # the tutorial's loop
        X = torch.arange(0, 1, 0.02).unsqueeze(1)
        y = 0.7 * X + 0.3
        torch.manual_seed(42)
        model, loss_fn = nn.Linear(1, 1), nn.L1Loss()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        train, val = [], []
        for _ in range(epochs):
            loss = loss_fn(model(X[:40]), y[:40])
            opt.zero_grad()
            loss.backward()
            opt.step()
            train.append(loss.item())
            with torch.inference_mode():
                val.append(loss_fn(model(X[40:]), y[40:]).item())
        return train, val

    def run(i: int) -> tuple[float, int]:
        pl.seed_everything(42, verbose=False)
        losses = Losses()
        trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, accelerator="cpu", callbacks=[losses])
        module = makers[i]()
        start = time.perf_counter()
        trainer.fit(module, datamodule=LineDataModule())
        elapsed = time.perf_counter() - start
        equal = sum(a == b and c == d for a, b, c, d in zip(losses.train, truth[0], losses.val, truth[1]))
        return elapsed, equal

    torch.set_num_threads(1)
    truth = plain()
    run(0)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in MODULES}
    exact: dict[str, int] = {}
    for _ in range(repeats):
        for i in random.sample(range(len(MODULES)), len(MODULES)):
            elapsed, exact[MODULES[i]] = run(i)
            times[MODULES[i]].append(elapsed)
    return {name: [statistics.median(ts), exact[name]] for name, ts in times.items()}


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


def scale(variant: str, step: float, batch: int, epochs: int, k: int = 1) -> float:
    """Seconds per epoch of one variant (see the module docstring)."""
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
            perm = torch.randperm(n, generator=gen, dtype=torch.int32)
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
        return per_epoch(starts)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "starts.json"
        if variant == "bare":  # linlight's module and data in a Trainer with nothing else
            from linlight.module import LitLinearRegression

            pl.seed_everything(42, verbose=False)
            trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                                 enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                                 callbacks=[EpochTimer(str(out))])
            trainer.fit(LitLinearRegression(), datamodule=LineDataModule(step=step, batch_size=batch, shuffle=True))
            return per_epoch(json.loads(out.read_text()))

        import linlight.cli
        from linlight.cli import LinlightCLI

        args = ["fit", "--data.step", str(step), "--data.batch_size", str(batch), "--data.shuffle", "true",
                "--data.steps_per_execution", str(k), "--trainer.max_epochs", str(epochs),
                "--trainer.default_root_dir", tmp, "--trainer.callbacks+=bench.EpochTimer",
                f"--trainer.callbacks.out={out}"]
        if variant == "dataloader":  # the same CLI and module, only the data pipeline swapped
            linlight.cli.LineDataModule = TensorDatasetLine
        try:
            LinlightCLI(args=args, summary=False)
        finally:
            linlight.cli.LineDataModule = LineDataModule
        return per_epoch(json.loads(out.read_text()))


class TensorDatasetLine(LineDataModule):
    """linlight's data as a DataLoader over a TensorDataset: the usual way, with per-sample indexing."""

    def train_dataloader(self):
        return DataLoader(TensorDataset(*self.train_data), batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(*self.test_data), batch_size=self.hparams.batch_size)


def scale_all(step: float, epochs: int, plan: list[tuple[int, int]], rounds: int = 2) -> dict:
    """Every scale variant in one process, alternating rounds; the DataLoader one once, last (it is slow)."""
    quiet()
    results: dict[str, dict[str, list[float]]] = {}
    for batch, k in plan:
        variants = {"raw": ("raw", 1), "bare": ("bare", 1), "linlight": ("linlight", 1), f"linlight K={k}":
                    ("linlight", k)}
        runs = results.setdefault(str(batch), {name: [] for name in variants})
        for _ in range(rounds):
            for name, (variant, kk) in random.sample(list(variants.items()), len(variants)):
                runs[name].append(scale(variant, step, batch, epochs, kk))
    batch = str(plan[0][0])
    results[batch]["dataloader"] = [scale("dataloader", step, plan[0][0], max(2, epochs // 2))]
    return {b: {name: statistics.median(ts) for name, ts in runs.items()} for b, runs in results.items()}


def memory(step: float, batch: int | None, epochs: int) -> dict:
    quiet()
    from linlight.cli import LinlightCLI

    with tempfile.TemporaryDirectory() as tmp:
        args = ["fit", "--data.step", str(step), "--trainer.max_epochs", str(epochs),
                "--trainer.default_root_dir", tmp, *QUIET]
        if batch:
            args += ["--data.batch_size", str(batch), "--data.shuffle", "true"]
        LinlightCLI(args=args, summary=False)
    return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def bench_sweep(trials: int, rounds: int) -> list[tuple[str, str, str]]:
    """Trials per minute of whole ``linlight sweep`` commands with 1, 2 and 4 workers, alternated, by medians;
    beside it, the rate while trials run (from the first trial's start to the last one's end, as the study
    recorded them), which leaves out what a command does once: start-up, the check, the summary."""
    import optuna

    rates: dict[int, list[float]] = {1: [], 2: [], 4: []}
    running: dict[int, list[float]] = {1: [], 2: [], 4: []}
    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp) / "bench.yaml"
        space.write_text(f"config: {REPO / 'linlight' / 'configs' / 'exercise.yaml'}\n"
                         "fixed: {trainer.max_epochs: 100, trainer.accelerator: cpu}\n"
                         "space: {model.lr: {type: float, low: 1.0e-3, high: 0.5, log: true}}\n")
        for r in range(rounds):
            order = list(rates)
            random.shuffle(order)
            for workers in order:
                root = Path(tmp) / f"r{r}w{workers}"
                seconds = run_process([sys.executable, "-m", "linlight", "sweep", "--space", str(space), "--trials",
                                       str(trials), "--workers", str(workers), "--prune-every", "1000", "--root",
                                       str(root)], Path(tmp))
                rates[workers].append(60 * trials / seconds)
                study = optuna.load_study(study_name="bench", storage=f"sqlite:///{root}/lightning_logs/sweep.db")
                span = (max(t.datetime_complete for t in study.trials) -
                        min(t.datetime_start for t in study.trials)).total_seconds()
                running[workers].append(60 * trials / span)
    med = {workers: statistics.median(r) for workers, r in rates.items()}
    steady = {workers: statistics.median(r) for workers, r in running.items()}
    rows = []
    for workers, rate in med.items():
        ratio = rate / med[1]
        note = goal(ratio >= 1.5, f">= 1.5x 1 worker ({ratio:.2f}x)") if workers == 2 else ""
        rows.append((f"sweep, {trials} trials: {workers} worker{'s' if workers > 1 else ''}",
                     f"{rate:6.1f} trials/min   {ratio:4.2f}x 1 worker   {steady[workers]:6.1f} trials/min while "
                     f"trials run ({steady[workers] / steady[1]:4.2f}x)", note))
    return rows


# ----------------------------------------------------------------------------------------------- main
def goal(met: bool, text: str) -> str:
    return f"goal {text}: {'met' if met else 'NOT MET'}"


def bench_reference(repeats: int, epochs: int) -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        cmds = {
            "plain PyTorch (tutorial)": [sys.executable, str(SCRIPTS / "tutorial_plain.py"), "--epochs", str(epochs)],
            "bare Lightning (floor)": [sys.executable, str(SCRIPTS / "bench.py"), "--worker", "bare", str(epochs), tmp],
            "naive Lightning": [sys.executable, str(SCRIPTS / "bench.py"), "--worker", "naive", str(epochs), tmp],
            "linlight fit": [sys.executable, "-m", "linlight", "fit", "--trainer.max_epochs", str(epochs),
                             "--trainer.default_root_dir", tmp],
        }
        times: dict[str, list[float]] = {k: [] for k in cmds}
        order = list(cmds)
        for _ in range(repeats):
            random.shuffle(order)  # alternate, so drift on a shared machine hits every variant alike
            for name in order:
                times[name].append(run_process(cmds[name], Path(tmp)))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    floor = med["bare Lightning (floor)"]
    rows = []
    for name, t in med.items():
        note = goal(t / floor <= 1.15, "<= 1.15x floor") if name == "linlight fit" else ""
        rows.append((f"reference, {epochs} epochs: {name}", f"{t:6.2f} s   {t / floor:5.2f}x floor", note))
    return rows


def bench_costs(repeats: int, epochs: int) -> list[tuple[str, str, str]]:
    med = worker("costs", str(epochs), str(repeats))
    total = med[LADDER[0]]
    rows = [(f"costs, {epochs} epochs: {LADDER[0]}", f"{total:6.2f} s", "in one process, fit only")]
    for before, after in itertools.pairwise(LADDER):
        part = med[before] - med[after]
        rows.append((f"costs: {after[2:]}", f"{part:+6.2f} s   {100 * part / total:5.1f}% of linlight fit", ""))
    rows.append(("costs: what is left (a bare Trainer with linlight's module and data)", f"{med[LADDER[-1]]:6.2f} s",
                 ""))
    return rows


def bench_scale(step: float, epochs: int, plan: list[tuple[int, int]], rounds: int = 2) -> list[tuple[str, str, str]]:
    everything = worker("scale", str(step), str(epochs), ",".join(f"{b}:{k}" for b, k in plan), str(rounds))
    rows = []
    n = round(1 / step)
    for batch, _ in plan:
        res = everything[str(batch)]
        for name, t in res.items():
            note = ""
            if name == "linlight":
                note = goal(t / res["bare"] <= 1.10, f"<= 1.10x bare ({t / res['bare']:.2f}x)")
            elif name.startswith("linlight K="):
                note = goal(res["raw"] / t >= 0.9, f">= 0.9x raw samples/s ({res['raw'] / t:.2f}x)")
            elif name == "dataloader":
                note = f"{t / res['linlight']:.1f}x slower than linlight"
            rows.append((f"scale, {n:.0e} points, batch {batch}: {name}",
                         f"{t:7.3f} s/epoch   {t / res['raw']:5.2f}x raw", note))
    return rows


def bench_module(repeats: int, epochs: int) -> list[tuple[str, str, str]]:
    med = worker("module", str(epochs), str(repeats))
    clean = med[MODULES[-1]][0]
    rows = []
    for i, name in enumerate(MODULES):
        t, exact = med[name]
        label = f"module, {epochs} epochs (bare Trainer): {name}" if i == 0 else f"module: {name}"
        note = f"{exact} of {epochs} epochs' losses == plain"
        rows.append((label, f"{t:6.2f} s   {t / clean:5.2f}x the clean form", note))
    return rows


def bench_memory(step: float) -> list[tuple[str, str, str]]:
    ref = worker("memory", "0.02", "0", "20")["peak_mb"]
    big = worker("memory", str(step), "65536", "1")["peak_mb"]
    data_mb = 2 * 4 * round(1 / step) / 2**20  # X and y, float32
    above = (big - ref) / data_mb
    return [("memory: reference run peak", f"{ref:7.1f} MB", ""),
            (f"memory: {round(1 / step):.0e} points, one epoch, peak", f"{big:7.1f} MB   +{above:4.2f}x the data's "
             f"{data_mb:.0f} MB", goal(above <= 1.5, "<= 1.5x the data"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny settings: a minute, not ten")
    parser.add_argument("--only", default="reference,costs,scale,memory,module,sweep",
                        help="comma-separated parts to run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        sys.argv = sys.argv[:1]  # the worker's own options are not LightningCLI's
        if kind in ("naive", "bare"):
            lightning_reference(int(rest[0]), rest[1], bare=kind == "bare")
            return
        if kind == "costs":
            result = costs(int(rest[0]), int(rest[1]))
        elif kind == "module":
            result = module_variants(int(rest[0]), int(rest[1]))
        elif kind == "scale":
            plan = [tuple(map(int, part.split(":"))) for part in rest[2].split(",")]
            result = scale_all(float(rest[0]), int(rest[1]), plan, int(rest[3]))
        else:
            result = memory(float(rest[0]), int(rest[1]) or None, int(rest[2]))
        print(json.dumps(result))
        return
    parts, quick = args.only.split(","), args.quick
    rows: list[tuple[str, str, str]] = []
    if "reference" in parts:
        rows += bench_reference(1 if quick else args.repeats, 20 if quick else 1000)
    if "costs" in parts:
        rows += bench_costs(1 if quick else args.repeats, 20 if quick else 1000)
    if "scale" in parts:
        rows += bench_scale(1e-4 if quick else 1e-6, 3 if quick else 4, [(1024, 32), (65536, 16)], 1 if quick else 2)
    if "memory" in parts:
        rows += bench_memory(1e-5 if quick else 1e-8)
    if "module" in parts:
        rows += bench_module(1 if quick else args.repeats, 20 if quick else 1000)
    if "sweep" in parts:
        rows += bench_sweep(4 if quick else 24, 1 if quick else args.repeats)
    import torch

    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    print(f"linlight benchmark ({'quick' if quick else 'full'}), {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
          f"python {sys.version.split()[0]}, torch {torch.__version__}")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:<{value_width}}  {note}".rstrip())


if __name__ == "__main__":
    main()
