"""The ``linlight`` command: Lightning's ``LightningCLI`` for the line model and data.

    linlight fit                                   # the reference experiment (tutorial V2, 1000 epochs)
    linlight fit --config linlight/configs/model0.yaml --trainer.max_epochs 50
    linlight fit --ckpt_path last                  # resume the newest run where it stopped
    linlight test                                  # test the newest run's last.ckpt
    linlight predict --data.predict_x '[0.1, 0.5]' --ckpt_path best
    linlight fit --print_config                    # every setting, as YAML

What it adds to plain ``LightningCLI``: runs go to ``<default_root_dir>/lightning_logs/version_N/`` with
a folder claimed atomically; ``--ckpt_path last``/``best`` find the newest run's checkpoint (Lightning's own
``"last"`` only looks in the new run's folder) and a resumed run continues its own folder and curves;
every checkpoint is checked and read with ``weights_only=True``; bad input ends with one clear line.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from linlight import ddp, resume
from linlight.callbacks import EpochProgressBar, GracefulStop, PredictionWriter, RunCheckpoint
from linlight.checkpoints import SafeCheckpointIO, next_epoch, read_checkpoint
from linlight.data import LineDataModule
from linlight.errors import CheckpointError, LinlightError
from linlight.faults import user_error
from linlight.locks import lock_run, release_all
from linlight.logger import RunLogger
from linlight.module import LitLinearRegression
from linlight.records import RunRecord
from linlight.runs import (
    VERSION_ENV,
    claim_version,
    find_checkpoint,
    is_primary_process,
    run_version_of,
    runs_dir,
)

# Lightning's own settings a run needs; checkpoint cadence is a setting (--checkpoint.every_n_epochs).
CHECKPOINT_DEFAULTS = {
    "checkpoint.monitor": "val/loss",
    "checkpoint.mode": "min",
    "checkpoint.filename": "best-{epoch}",
    "checkpoint.save_last": True,
    "checkpoint.every_n_epochs": 100,
    "checkpoint.save_on_train_epoch_end": True,  # after the epoch's metrics are logged
    # a resume with another cadence does not get its state back (its state key differs) and would save
    # last-v1.ckpt beside a stale last.ckpt, which `--ckpt_path last` then resumes: replace last.ckpt instead
    "checkpoint.enable_version_counter": False,
}


class LinlightParser(LightningArgumentParser):
    """LightningCLI's parser, ending a bad command line or config with one short error line."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # jsonargparse is trying alternatives: let it
            super().error(message, ex)
        sys.stderr.write(f"linlight: error: {' '.join(message.split())} (see: linlight --help)\n")
        sys.exit(2)


class LinlightCLI(LightningCLI):
    """``LightningCLI`` with linlight's run folders, resume, safe checkpoints and callbacks."""

    def __init__(self, args: list[str] | None = None, run: bool = True) -> None:
        self.run_version: int | None = None
        self.next_epoch: int | None = None
        super().__init__(
            LitLinearRegression,
            LineDataModule,
            save_config_callback=RunRecord,  # each fit segment's config, versions (linlight.records)
            save_config_kwargs={"overwrite": True},
            seed_everything_default=42,
            # the tutorial's 1000 epochs; metrics are logged per epoch (module.py), so no per-step interval;
            # no model summary table (two parameters), whose callback would run at every hook of every epoch
            trainer_defaults={"max_epochs": 1000, "log_every_n_steps": 1, "enable_model_summary": False},
            auto_configure_optimizers=False,  # the optimizer is the tutorial's SGD, set by --model.lr
            parser_kwargs={"description": "Learn a straight line, the Lightning way."},
            parser_class=LinlightParser,
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(CHECKPOINT_DEFAULTS)
        parser.add_lightning_class_args(PredictionWriter, "predictions")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand is not None:
            self._resolve_ckpt_path(subcommand, self.config[subcommand])
        self.given_model = resume.given_model_settings(parser, args, self.config)  # linlight.resume

    def before_instantiate_classes(self) -> None:
        resume.keep_given_model_settings(self.config, self.given_model)  # over the checkpoint's (linlight.resume)

    def _resolve_ckpt_path(self, subcommand: str, config: Any) -> None:
        """Turn ``last``/``best`` into a file, check the file, and find the run it continues."""
        if config.get("weights_only") is False:
            raise CheckpointError("linlight reads checkpoints with weights_only=True only, so no code in a file runs")
        ckpt = config.get("ckpt_path")
        if ckpt is None and subcommand != "fit":
            ckpt = "last"  # validate/test/predict use the newest run's weights unless told otherwise
        if ckpt is None:
            return
        root = Path(config.trainer.default_root_dir or os.getcwd())
        path = find_checkpoint(root, ckpt, subcommand) if ckpt in ("last", "best") else Path(ckpt)
        checkpoint = read_checkpoint(path, need_training_state=subcommand == "fit")
        config.ckpt_path = str(path)
        if subcommand == "fit":
            self._check_same_data(path, checkpoint, config)
            self.next_epoch = next_epoch(checkpoint)
        version = run_version_of(path)
        if version is not None and path.resolve().parents[2] == runs_dir(root).resolve():
            self.run_version = version
        print(f"linlight: using checkpoint {path}", file=sys.stderr)

    @staticmethod
    def _check_same_data(path: Path, checkpoint: dict, config: Any) -> None:
        saved = checkpoint.get("datamodule_hyper_parameters", {})
        now = config.data.as_dict()
        changed = {k: (v, now.get(k)) for k, v in saved.items() if k in now and now.get(k) != v}
        if changed:
            diffs = ", ".join(f"data.{k}={old!r} (now {new!r})" for k, (old, new) in changed.items())
            raise CheckpointError(
                f"{path} was trained with {diffs}; resume with the same data settings, or start a new run"
            )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._get(self.config_init, "trainer")
        callbacks = list(config.get("callbacks") or [])
        if self.subcommand == "fit":
            callbacks.append(GracefulStop())
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(EpochProgressBar())
        kwargs["callbacks"] = callbacks
        kwargs["plugins"] = [SafeCheckpointIO(), *(config.get("plugins") or [])]
        if config.get("logger") in (None, True):
            kwargs["logger"] = self._logger(config)
        ddp.use_for_ddp_names()  # `--trainer.strategy ddp` times out in 60 s, not 30 min (linlight.ddp)
        trainer = super().instantiate_trainer(**kwargs)
        if self.subcommand != "predict":  # every callback costs a call at every hook of every batch
            trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, PredictionWriter)]
        return trainer

    def _logger(self, config: dict[str, Any]) -> RunLogger | bool:
        """Lightning's default TensorBoard logger, writing into a claimed (or the resumed) run folder."""
        if self.subcommand == "predict":
            return False
        root = config.get("default_root_dir") or os.getcwd()
        version = self.run_version
        if version is None:
            if not is_primary_process():  # a DDP worker: the launching process chose the folder
                version = int(os.environ[VERSION_ENV]) if VERSION_ENV in os.environ else None
            elif self.subcommand == "fit":
                version = claim_version(root)
        if version is not None and is_primary_process():
            os.environ[VERSION_ENV] = str(version)
            if self.subcommand == "fit":  # one writer per run: fail now if another process trains it
                self.run_lock = lock_run(runs_dir(root) / f"version_{version}")  # (linlight.locks)
        purge_step = self.next_epoch if self.subcommand == "fit" else None
        return RunLogger(root, name="lightning_logs", version=version, default_hp_metric=False,
                         purge_step=purge_step)

    def after_fit(self) -> None:
        stop = next((c for c in self.trainer.callbacks if isinstance(c, GracefulStop)), None)
        if stop is not None and stop.signum is not None:
            raise Stopped(stop.signum, self.trainer)


class Stopped(Exception):
    """A run stopped cleanly by a signal, with its checkpoint saved."""

    def __init__(self, signum: int, trainer: Trainer) -> None:
        self.signum = signum
        super().__init__(
            f"stopped after {trainer.current_epoch} epochs on {signal.Signals(signum).name}; last.ckpt saved in "
            f"{trainer.checkpoint_callback.dirpath}; continue with: linlight fit --ckpt_path last (same arguments)"
        )


class _NoAdvert(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn linlight's user-facing errors into one line on stderr and a non-zero exit, without a traceback."""
    # Lightning advertises a cloud logger on every run; it is not advice about this run.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NoAdvert())
    # Lightning 2.6 calls a torch API that torch 2.13 deprecates; nothing a user can change.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
    try:
        yield
    except Stopped as e:
        print(f"linlight: {e}", file=sys.stderr)
        sys.exit(128 + e.signum)
    except LinlightError as e:
        print(f"linlight: error: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # a fault a run meets (a full disk, a lost DDP peer): one line (linlight.faults)
        error = user_error(e)
        if error is None:
            raise
        print(f"linlight: error: {error}", file=sys.stderr)
        sys.exit(1)
    finally:
        release_all()  # a run's lock lasts as long as the command (linlight.locks)


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``linlight`` console script."""
    with user_errors():
        LinlightCLI(args=args)


if __name__ == "__main__":
    main()
