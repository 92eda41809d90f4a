"""What early stopping's best checkpoint costs, side by side in one run (alternating, medians, ratios).

    python scripts/bench_best.py               # three rounds, about a minute on 2 cores
    python scripts/bench_best.py --repeats 7

One `linlight fit` (in this process) where `loss/val` improves at nearly every epoch, the worst case for a
best checkpoint: `--model.lr 0.001 --early_stopping.patience 20` (436 improvements in 456 epochs), three ways:

- no best: `--checkpoint.save_top_k 0`, the floor;
- linlight: the best judged at every improvement, held in memory, written with the next last.ckpt;
- Lightning's way: linlight's best off, and Lightning's own `ModelCheckpoint(monitor="loss/val")` beside it,
  which writes a checkpoint at every improvement.

It prints each fit's time and what the best costs over the floor, linlight's against Lightning's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

RUN = ["--model.lr", "0.001", "--early_stopping.patience", "20", "--trainer.max_epochs", "600",
       "--checkpoint.every_n_epochs", "100", "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu"]
VARIANTS = {
    "no best": ["--checkpoint.save_top_k", "0"],
    "linlight: best held, written with last.ckpt": [],
    "Lightning: ModelCheckpoint writes every best": [
        "--checkpoint.save_top_k", "0", "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        "--trainer.callbacks.monitor", "loss/val", "--trainer.callbacks.filename", "lightning-best-{epoch}"],
}


def fit_seconds(args: list[str]) -> float:
    from linlight.cli import main

    with tempfile.TemporaryDirectory() as root, contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        start = time.perf_counter()
        main(["fit", *RUN, *args, "--trainer.default_root_dir", root])
        seconds = time.perf_counter() - start
        written = sorted(p.name for p in Path(root, "lightning_logs", "version_0", "checkpoints").iterdir())
    assert written, "the run saved nothing"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    fit_seconds(VARIANTS["no best"])  # imports and first-call costs, not measured
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(repeats):
        for name, args in VARIANTS.items():
            times[name].append(fit_seconds(args))
    medians = {name: statistics.median(t) for name, t in times.items()}
    floor = medians["no best"]
    for name, median in medians.items():
        print(f"{name:<48} {median:6.2f} s   +{median - floor:5.2f} s over no best")
    held, lightning = (medians[n] - floor for n in list(VARIANTS)[1:])
    ratio = f"{held / lightning:.2f}x" if lightning > 0 else "n/a (no measurable cost)"
    print(f"{'the best, linlight against Lightning':<48} {ratio}")


if __name__ == "__main__":
    sys.exit(main())
