"""The ``linlight`` command: Lightning's ``LightningCLI`` for the line model and data.

    linlight fit                                   # the reference experiment (tutorial V2, 1000 epochs)
    linlight fit --config linlight/configs/model0.yaml --trainer.max_epochs 50
    linlight fit --ckpt_path last                  # continue the newest run, with its own settings
    linlight test                                  # test the newest run's last.ckpt on the data it was trained on
    linlight predict --data.predict_x '[0.1, 0.5]' --ckpt_path best
    linlight fit --print_config                    # every setting, as YAML
    linlight lr_find                               # suggest a learning rate (linlight/tuning.py)

What it adds to plain ``LightningCLI``: runs go to ``<default_root_dir>/lightning_logs/version_N/`` with a
folder claimed atomically; ``--ckpt_path last``/``best`` find the newest run's checkpoint (Lightning's own
``"last"`` only looks in the new run's folder). A checkpoint's settings are the defaults of the command that
uses it: resuming a run takes that run's saved config, evaluating takes the model and data the weights were
trained with, and only what is given explicitly differs. A checkpoint inside a run folder continues that
run: its curves, its test metrics. Every checkpoint is checked and read with ``weights_only=True``; bad input
ends with one clear line; ``fit`` ends with a summary of where everything is and what to run next.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import yaml
from jsonargparse import Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from linlight import configs, ddp
from linlight.board import RunLogger
from linlight.callbacks import EpochProgressBar, GracefulStop, PredictionWriter, RunCheckpoint
from linlight.checkpoints import SafeCheckpointIO, next_epoch, read_checkpoint
from linlight.data import LineDataModule, data_change, data_identity
from linlight.errors import CheckpointError, ConfigError, LinlightError
from linlight.faults import user_error
from linlight.locks import lock_run, release_all
from linlight.module import LitLinearRegression
from linlight.plotting import Plots
from linlight.records import RunRecord
from linlight.runs import (
    VERSION_ENV,
    claim_version,
    find_checkpoint,
    is_primary_process,
    run_config,
    run_of,
    runs_dir,
)
from linlight.settings import check_trainer, parse_error, setting_error
from linlight.stopping import RunEarlyStopping
from linlight.summary import fit_summary, linlight_fit
from linlight.tuning import LinlightTrainer, command_option, fit_arguments, lr_find_summary

SUBCOMMANDS = ("fit", "validate", "test", "predict", "lr_find")
SAME_RESULTS = {"steps_per_execution"}  # data settings that change how, not what, is computed: free on a resume

# Lightning's own settings a run needs; checkpoint cadence is a setting (--checkpoint.every_n_epochs).
CHECKPOINT_DEFAULTS = {
    "checkpoint.monitor": "loss/val",
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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # no abbreviations in the subcommands' parsers too: jsonargparse < 4.53 gives them only to the main parser
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error:  # jsonargparse is trying alternatives: let it
            super().error(message, ex)
        command = self.prog.replace(" [options]", "")  # "linlight fit" in a subcommand's parser
        sys.stderr.write(f"linlight: error: {parse_error(message, self._actions)} (see: {command} --help)\n")
        sys.exit(2)


def check_config_files(argv: list[str]) -> None:
    """Name the file in a YAML error (jsonargparse reports it as a "<unicode string>")."""
    for flag, value in itertools.pairwise(argv):
        if flag in ("--config", "-c") and Path(value).is_file():
            try:
                yaml.safe_load(Path(value).read_text())
            except yaml.YAMLError as e:
                raise ConfigError(f"config file {value} is not valid YAML: {' '.join(str(e).split())}") from None


class LinlightCLI(LightningCLI):
    """``LightningCLI`` with linlight's run folders, resume, safe checkpoints, callbacks and summary.

    Args:
        args: the command line (without the program name); ``None`` reads ``sys.argv``.
        run: run the subcommand (``False`` only builds the objects).
        program: the words that start this program's ``fit`` again in a new shell, printed in the commands
            that continue a run; ``linlight fit`` by default.
        plots: add the ``Plots`` callback (predictions and loss-curve images) unless the config has one.
        summary: print the summary at the end of ``fit``.
    """

    def __init__(self, args: list[str] | None = None, run: bool = True, program: Sequence[str] | None = None,
                 plots: bool = False, summary: bool = True) -> None:
        self.argv = sys.argv[1:] if args is None else args
        self.program = list(program or linlight_fit())
        self.plots, self.summary = plots, summary
        self.run_version: int | None = None
        self.next_epoch: int | None = None
        self.data_differs: dict[str, tuple[Any, Any]] = {}
        self.claimed: tuple[Path, bool] | None = None  # a run folder this command made, and if it made its parent
        self._building_trainer = False
        try:
            self._init(args, run)
        except BaseException:
            self._discard_untrained_run()
            raise

    def _init(self, args: list[str] | None, run: bool) -> None:
        super().__init__(
            LitLinearRegression,
            LineDataModule,
            trainer_class=LinlightTrainer,  # Lightning's Trainer with lr_find, a subcommand (see subcommands)
            save_config_callback=RunRecord,  # each fit segment's config, versions (linlight.records)
            save_config_kwargs={"overwrite": True},
            seed_everything_default=42,
            # the tutorial's 1000 epochs; metrics are logged per epoch (module.py), so no per-step interval;
            # no model summary table (two parameters), whose callback would run at every hook of every epoch
            trainer_defaults={"max_epochs": 1000, "log_every_n_steps": 1, "enable_model_summary": False},
            auto_configure_optimizers=False,  # the optimizer is the tutorial's SGD, set by --model.lr
            # a mistyped option is an error, never a silently accepted abbreviation of another one
            parser_kwargs={"prog": "linlight", "description": "Learn a straight line, the Lightning way. Searches "
                           "over settings: linlight sweep (see linlight sweep --help).",
                           "allow_abbrev": False},
            parser_class=LinlightParser,
            args=args,
            run=run,
        )

    def subcommands(self) -> dict[str, set[str]]:
        """Lightning's four, and ``lr_find`` (``LinlightTrainer.lr_find``); only the one the command line names.

        LightningCLI builds a parser for every subcommand, each about a tenth of a second of signatures and
        docstrings read; only the one run is needed (all of them for ``linlight --help``).
        """
        every = {**LightningCLI.subcommands(), "lr_find": {"model", "datamodule"}}
        named = next((a for a in self.argv if a in every), None) if isinstance(self.argv, list) else None
        return {named: every[named]} if named else every

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(CHECKPOINT_DEFAULTS)
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.add_lightning_class_args(RunEarlyStopping, "early_stopping")  # off unless given a patience

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then, given a checkpoint, parse again with the checkpoint's settings as the defaults."""
        if args is None:  # `--config model0`: a config shipped in the package, from any folder (linlight.configs)
            sys.argv[1:] = configs.resolve_args(sys.argv[1:])  # (DDP ranks re-run sys.argv: they get the path too)
        elif isinstance(args, list):
            args = configs.resolve_args(args)
        if isinstance(args, list) or args is None:
            check_config_files(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand is None:
            return
        config = self.config[subcommand]
        if config.get("weights_only") is False:
            raise CheckpointError("linlight reads checkpoints with weights_only=True only, so no code in a file runs")
        ckpt = config.get("ckpt_path")
        if ckpt is None and subcommand in ("validate", "test", "predict"):
            ckpt = "last"  # they use the newest run's weights unless told otherwise (lr_find: the initial ones)
        if ckpt is None:
            return
        root = Path(config.trainer.default_root_dir or os.getcwd())
        path = find_checkpoint(root, ckpt, subcommand) if ckpt in ("last", "best") else Path(ckpt)
        checkpoint = read_checkpoint(path, need_training_state=subcommand == "fit")
        if not isinstance(args, (dict, Namespace)):
            argv = list(sys.argv[1:] if args is None else args)
            at = argv.index(subcommand) + 1
            own_callbacks = any(a.startswith("--trainer.callbacks") for a in argv)
            defaults = json.dumps(self._checkpoint_defaults(subcommand, path, checkpoint, own_callbacks))
            self.config = parser.parse_args([*argv[:at], "--config", defaults, *argv[at:]])
            config = self.config[subcommand]
        config.ckpt_path = str(path)
        self._check_against(subcommand, path, checkpoint, config)
        if subcommand == "fit":
            self.next_epoch = next_epoch(checkpoint)
        run = run_of(path)
        if run is not None and Path(config.trainer.default_root_dir or os.getcwd()).resolve() == run[0]:
            self.run_version = run[1]
        print(f"linlight: using checkpoint {path.resolve()}", file=sys.stderr)

    @staticmethod
    def _checkpoint_defaults(subcommand: str, path: Path, checkpoint: dict, own_callbacks: bool) -> dict[str, Any]:
        """The settings a checkpoint was made with: its run's config when resuming, else its model and data.

        Callbacks given on the command line replace the run's (which may name a module not importable here).
        """
        defaults: dict[str, Any] = {}
        run = run_of(path)
        if run is not None:
            if subcommand == "fit":
                saved = run_config(run[0], run[1])
                defaults = {k: v for k, v in (saved or {}).items() if k not in ("ckpt_path", "weights_only")}
                if own_callbacks:
                    defaults.get("trainer", {}).pop("callbacks", None)
            defaults.setdefault("trainer", {})["default_root_dir"] = str(run[0])
        for section, key in (("model", "hyper_parameters"), ("data", "datamodule_hyper_parameters")):
            saved = {k: v for k, v in checkpoint.get(key, {}).items() if not k.startswith("_")}
            defaults[section] = {**defaults.get(section, {}), **saved}
        return defaults

    def _check_against(self, subcommand: str, path: Path, checkpoint: dict, config: Any) -> None:
        """Refuse settings the checkpoint's weights cannot take; say what differs from training."""
        arch = checkpoint.get("hyper_parameters", {}).get("arch")
        if arch is not None and config.model.arch != arch:
            raise CheckpointError(f"{path} holds weights of model.arch={arch!r}, not {config.model.arch!r}")
        if subcommand == "predict":  # predictions depend on the weights and the given x only
            return
        saved = checkpoint.get("datamodule_hyper_parameters", {})
        now = {**config.data.as_dict(), **data_identity(config.data.as_dict())}  # and a data.csv file's content
        self.data_differs = {k: (v, now[k]) for k, v in saved.items()
                             if k in now and now[k] != v and k not in SAME_RESULTS}
        if not self.data_differs:
            return
        diffs = ", ".join(data_change(k, old, new) for k, (old, new) in self.data_differs.items())
        if subcommand == "fit":
            raise CheckpointError(f"{path} was trained on other data: {diffs}; resume with the data it was "
                                  "trained on (leave the data settings out), or start a new run")
        print(f"linlight: {subcommand} on other data than training: {diffs}; the results are printed, "
              "not written to the run", file=sys.stderr)

    def _parse_ckpt_path(self) -> None:
        """Done in ``parse_arguments``: Lightning's version would override explicit settings with the checkpoint's
        hyperparameters (``--model.lr`` on a resume), and load the file without linlight's checks."""

    def before_instantiate_classes(self) -> None:
        """Refuse the Trainer settings Lightning takes and trips over only later, before any run folder exists."""
        if self.subcommand is not None:
            check_trainer(self.config[self.subcommand].trainer.as_dict())

    def _discard_untrained_run(self) -> None:
        """A command that failed before its first epoch was complete leaves no run folder behind (TensorBoard
        and HPARAMS would show it as a run, and it has no checkpoint to resume)."""
        if self.claimed is None:
            return
        folder, made_parent = self.claimed
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.current_epoch > (self.next_epoch or 0):
            return  # it trained: its curves and checkpoints stay
        lock = getattr(self, "run_lock", None)
        if lock is not None:
            lock.release()
        shutil.rmtree(folder, ignore_errors=True)
        if made_parent:
            with contextlib.suppress(OSError):
                folder.parent.rmdir()  # only if empty
        self.claimed = None

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (MisconfigurationException, ValueError, TypeError, ImportError) as e:  # (ImportError: a setting
            # that needs a package that is not installed, e.g. --trainer.precision transformer-engine)
            group = "trainer" if self._building_trainer else _group_of(e)
            if isinstance(e, LinlightError) or group is None:
                raise
            raise self._setting_error(group, e) from None

    def _setting_error(self, group: str, error: Exception) -> ConfigError:
        """Lightning's refusal of a setting, in one line naming it (``linlight.settings``)."""
        config = self.config[self.subcommand][group]
        defaults = self._parser(self.subcommand).get_defaults()[group]
        built = self._get(self.config_init, group) if group == "trainer" else config
        keys = [k for k in vars(config) if k not in ("callbacks", "logger", "plugins")
                and config.get(k) != defaults.get(k)]
        given = {k: built.get(k) for k in keys}
        shown = {k: command_option(config.get(k)) for k in keys}

        def build(setting: dict[str, Any]) -> Trainer:  # a Trainer that writes nothing, but for this setting
            quiet = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                     "enable_model_summary": False}
            return Trainer(**{**quiet, **setting})

        return setting_error(error, group, given, shown, build if group == "trainer" else None)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        self._building_trainer = True
        trainer = self._instantiate_trainer_with(**kwargs)
        self._building_trainer = False
        return trainer

    def _instantiate_trainer_with(self, **kwargs: Any) -> Trainer:
        config = self._get(self.config_init, "trainer")
        callbacks = list(config.get("callbacks") or [])
        if self.subcommand == "fit":
            callbacks.append(GracefulStop(self.program))
            if self.plots and not any(isinstance(c, Plots) for c in callbacks):
                callbacks.append(Plots())
        if config.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(EpochProgressBar())
        kwargs["callbacks"] = callbacks
        kwargs["plugins"] = [SafeCheckpointIO(), *(config.get("plugins") or [])]
        if config.get("logger") in (None, True):
            kwargs["logger"] = self._logger(config)
        ddp.use_for_ddp_names()  # `--trainer.strategy ddp` times out in 60 s, not 30 min (linlight.ddp)
        trainer = super().instantiate_trainer(**kwargs)
        # every callback costs a call at every hook of every batch: keep the ones this subcommand uses
        unused = {"fit": (PredictionWriter,), "predict": (RunEarlyStopping,),
                  "lr_find": (RunCheckpoint, PredictionWriter, RunEarlyStopping)}.get(
            self.subcommand, (PredictionWriter, RunEarlyStopping))
        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, unused)
                             and not (isinstance(c, RunEarlyStopping) and not c.enabled)]
        if isinstance(trainer.checkpoint_callback, RunCheckpoint):
            trainer.checkpoint_callback.resuming = self.subcommand == "fit" and self.run_version is not None
        return trainer

    def _logger(self, config: dict[str, Any]) -> RunLogger | bool:
        """Lightning's TensorBoard logger, writing into a claimed (or the resumed or tested) run folder.

        ``validate`` writes nothing (the run's ``val/*`` curves hold those values already), ``predict`` neither;
        ``test`` writes into the tested run, unless it runs on other data or on a checkpoint of no run.
        """
        if self.subcommand in ("validate", "predict") or config.get("fast_dev_run"):
            return False  # (fast_dev_run: Lightning replaces any logger with a dummy, and saves nothing)
        root = Path(config.get("default_root_dir") or os.getcwd()).resolve()  # every path derived is absolute
        version = self.run_version
        if self.subcommand == "test" and (version is None or self.data_differs):
            return False
        if version is None:
            if not is_primary_process():  # a DDP worker: the launching process chose the folder
                version = int(os.environ[VERSION_ENV]) if VERSION_ENV in os.environ else None
            elif self.subcommand in ("fit", "lr_find"):  # lr_find: a run folder of its own (linlight/tuning.py)
                made_parent = not runs_dir(root).is_dir()
                version = claim_version(root)
                self.claimed = (runs_dir(root) / f"version_{version}", made_parent)
        if version is not None and is_primary_process():
            os.environ[VERSION_ENV] = str(version)
            if self.subcommand == "fit":  # one writer per run: fail now if another process trains it
                self.run_lock = lock_run(runs_dir(root) / f"version_{version}")  # (linlight.locks)
        purge_step = self.next_epoch if self.subcommand == "fit" else None
        return RunLogger(root, name="lightning_logs", version=version, default_hp_metric=False, purge_step=purge_step)

    def after_fit(self) -> None:
        stop = next((c for c in self.trainer.callbacks if isinstance(c, GracefulStop)), None)
        if stop is not None:
            stop.raise_if_stopped(self.trainer)
        if not self.summary:
            return
        lines = fit_summary(self.trainer, self.model, self.program)  # every process: log_dir is a broadcast
        if self.trainer.is_global_zero:
            print("\n".join(["", *lines]))

    def after_lr_find(self) -> None:
        if self.trainer.is_global_zero:
            config, defaults = self.config["lr_find"], self._parser("lr_find").get_defaults()
            root = Path(self.trainer.log_dir).resolve().parents[1]  # <root>/lightning_logs/version_N
            args = fit_arguments(config, defaults, root, csv=self.datamodule.hparams.get("csv"))
            print("\n".join(["", *lr_find_summary(self.trainer, linlight_fit(), args)]))


def _group_of(error: BaseException) -> str | None:
    """The settings group whose class raised ``error`` while being built (the innermost one in its traceback)."""
    groups = {RunCheckpoint: "checkpoint", RunEarlyStopping: "early_stopping", PredictionWriter: "predictions"}
    found, tb = None, error.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        found = next((g for cls, g in groups.items() if isinstance(owner, cls)), found)
        tb = tb.tb_next
    return found


class _NoAdvert(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


class _NoSeedLine(logging.Filter):
    """LightningCLI seeds before it reads a single setting's value, and says so: "Seed set to 42" then came
    before every error; the seed is in the run's config.yaml (``seed_everything``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Seed set to" not in record.getMessage()  # (on other ranks: "[rank: 1] Seed set to 42")


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn linlight's user-facing errors into one line on stderr and a non-zero exit, without a traceback."""
    # Lightning advertises a cloud logger on every run; it is not advice about this run.
    for name, quiet in (("lightning.pytorch.utilities.rank_zero", _NoAdvert), ("lightning.fabric.utilities.seed",
                                                                              _NoSeedLine)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, quiet) for f in logger.filters):  # once per process, however many commands
            logger.addFilter(quiet())
    # Lightning 2.6 calls a torch API that torch 2.13 deprecates; nothing a user can change.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
    try:
        yield
    except LinlightError as e:
        # one write per line: DDP processes share stderr, and print's two writes (text, newline) interleave
        sys.stderr.write(f"linlight: {e.prefix}{e}\n")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:  # Ctrl-C outside training (GracefulStop handles it during a fit)
        sys.stderr.write("linlight: interrupted (Ctrl-C)\n")
        sys.exit(130)
    except Exception as e:  # a fault a run meets (a full disk, a lost DDP peer): one line (linlight.faults)
        error = user_error(e)
        if error is None:
            raise
        sys.stderr.write(f"linlight: error: {error}\n")
        sys.exit(1)
    finally:
        release_all()  # a run's lock lasts as long as the command (linlight.locks)


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``linlight`` command (see ``linlight/__main__.py``)."""
    argv = sys.argv[1:] if args is None else args
    if argv[:1] == ["sweep"]:  # many fits, not a Trainer method: LightningCLI cannot host it (see linlight/sweep.py)
        from linlight.sweep import main as sweep
        return sweep(argv[1:])
    with user_errors():
        LinlightCLI(args=args)


if __name__ == "__main__":
    main()
