"""What linlight tells a person after a run: where everything is, and the commands to go on from there.

Every command it prints runs as printed in a new shell, from any folder: programs are named by their full
path in this Python environment (no activated virtual environment needed), files by absolute paths, and
words are quoted for the shell. ``linlight fit`` ends with ``fit_summary``; ``scripts/train.py`` adds its
test results, plots and exports to the same lines.
"""

from __future__ import annotations

import shlex
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl

from linlight.stopping import RunEarlyStopping


def shell(words: Sequence[str | Path]) -> str:
    """One command line, quoted for a POSIX shell."""
    return shlex.join(str(w) for w in words)


def tool(name: str, module: str) -> list[str]:
    """A console script of this environment by its full path, else ``python -m module``."""
    script = Path(sysconfig.get_path("scripts")) / name
    return [str(script)] if script.is_file() else [sys.executable, "-m", module]


def linlight_fit() -> list[str]:
    """The words that start ``linlight fit`` in this environment from any shell."""
    return [*tool("linlight", "linlight"), "fit"]


def tensorboard_command(logdir: str | Path) -> str:
    return shell([*tool("tensorboard", "tensorboard.main"), "--logdir", Path(logdir).resolve()])


def resume_command(program: Sequence[str], checkpoint: str | Path, *extra: str) -> str:
    """The command that continues the run ``checkpoint`` belongs to, with that run's own settings."""
    return shell([*program, "--ckpt_path", Path(checkpoint).resolve(), *extra])


def fit_summary(trainer: pl.Trainer, module: pl.LightningModule, program: Sequence[str],
                extra: Sequence[str] = ()) -> list[str]:
    """The lines ``linlight fit`` prints at the end: what was learned, where it is, what to run next.

    ``extra`` lines (``scripts/train.py``'s test results) follow what was learned.
    """
    if trainer.fast_dev_run:  # Lightning's check of the loops: no logger, no checkpoint, no run folder
        return [f"linlight: fast_dev_run: {int(trainer.fast_dev_run)} batch(es) of training and validation ran as a "
                "check; nothing was written (no run folder, no checkpoint)"]
    metrics = module.epoch_metrics
    run = Path(trainer.log_dir).resolve()
    ckpt = trainer.checkpoint_callback
    epochs = trainer.current_epoch
    losses = "  ".join(f"{k} {metrics[k]:.4g}" for k in ("loss/train", "loss/val") if k in metrics)
    if metrics:
        lines = [f"linlight: trained {type(module.model).__name__} for {epochs} epochs   {losses}"]
    else:  # a resume with nothing left to do (max_epochs reached, or stopped early with no more patience)
        lines = [f"linlight: no epochs trained: the run already holds {epochs} epochs of {type(module.model).__name__}"
                 f" and has nothing left to train with these settings"]
    describe = getattr(trainer.datamodule, "describe", None)
    if describe is not None:
        lines.append(f"  data         {describe()}")
    for name in ("weight", "bias"):
        learned, true = metrics.get(f"params/{name}"), metrics.get(f"params/{name}_true")
        if learned is not None:  # a true line only where the data has one (not for a data.csv file)
            versus = f"   true {true:.4f}   error {abs(learned - true):.4f}" if true is not None else ""
            lines.append(f"  {name:<12} learned {learned:.4f}{versus}")
    stop = trainer.early_stopping_callback
    stopping = isinstance(stop, RunEarlyStopping) and stop.enabled
    stopped = stopping and stop.stopped_early
    if stopped:
        lines.append(f"  stopped      {stop.describe()}")
    lines += extra
    if ckpt is not None and ckpt.last_model_path:
        which = "the best early stopping judged" if stopping else "the lowest of the checkpoint epochs"
        best = (f"   (loss/val {ckpt.best_model_score.item():.4g}, {which})"
                if ckpt.best_model_score is not None else "")
        lines += [f"  last         {Path(ckpt.last_model_path).resolve()}",
                  f"  best         {Path(ckpt.best_model_path).resolve() if ckpt.best_model_path else 'none'}{best}"]
    lines.append(f"  run          {run}")
    from linlight.records import config_changes  # (imports Lightning's CLI module: only when summarizing)

    lines += [f"  changed      {change}" for change in config_changes(run)]
    lines.append(f"  TensorBoard  {tensorboard_command(run.parent)}")
    if ckpt is not None and ckpt.last_model_path:
        # more of what ended the run: patience if it stopped early, else epochs
        more = (["--early_stopping.patience", str(2 * stop.patience)] if stopped
                else ["--trainer.max_epochs", str(max(2 * epochs, epochs + 1))])
        command = resume_command(program, ckpt.last_model_path, *more)
        lines += on_every_node(trainer, command) if trainer.num_nodes > 1 else [f"  train more   {command}"]
    return lines


def on_every_node(trainer: pl.Trainer, command: str) -> list[str]:
    """A multi-node run goes on only with every node: the command for each, as this run was started.

    Started by hand (Lightning's own environment: ``MASTER_ADDR``, ``MASTER_PORT``, ``NODE_RANK``), each node's
    line names its rank; under a cluster's launcher (SLURM, torchrun) the launcher sets them, so the one command
    is started as this run was.
    """
    nodes = trainer.num_nodes
    env = trainer.strategy.cluster_environment
    if type(env).__name__ != "LightningEnvironment":
        return [f"  train more   on all {nodes} nodes, started as this run was ({type(env).__name__}): {command}"]
    lines = [f"  train more   on all {nodes} nodes at once, one line each (the run folder must be on a filesystem "
             "they share):"]
    for rank in range(nodes):
        setting = f"MASTER_ADDR={shlex.quote(str(env.main_address))} MASTER_PORT={env.main_port} NODE_RANK={rank}"
        lines.append(f"    node {rank}   {setting} {command}")
    return lines
