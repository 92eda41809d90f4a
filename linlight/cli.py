"""The ``linlight`` command: Lightning's ``LightningCLI`` for a regression model and its data (the line by default).

    linlight fit                                   # the reference experiment (tutorial V2, 1000 epochs)
    linlight fit --config linlight/configs/model0.yaml --trainer.max_epochs 50
    linlight fit --ckpt_path last                  # continue the newest run, with its own settings
    linlight test                                  # test the newest run's last.ckpt on the data it was trained on
    linlight predict --data.predict_x '[0.1, 0.5]' --ckpt_path best
    linlight fit --print_config                    # every setting, as YAML
    linlight lr_find                               # suggest a learning rate (linlight/tuning.py)
    linlight fit --config scripts/examples/mlp.yaml        # your own model and data, by configuration

The model is ``LitLinearRegression`` with its parts given the LightningCLI way (``--model.model``,
``--model.loss``, ``--model.optimizer``, ``--model.scheduler``: class paths and their ``init_args``); the data
is a ``TensorDataModule`` (``--data linlight.data.TableDataModule``; the line by default), whose
``num_features`` is linked to the model's ``in_features``. What is imported from where: ``linlight/parts.py``.

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
import re
import shutil
import sys
import typing
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

from linlight import configs, ddp, parts
from linlight.board import LearnedLine, RunBoard, RunLogger
from linlight.callbacks import EpochProgressBar, GracefulStop, PredictionWriter, RunCheckpoint
from linlight.checkpoints import SafeCheckpointIO, next_epoch, read_checkpoint
from linlight.data import LineDataModule, TableDataModule, TensorDataModule, data_change, data_identity
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
DEFAULT_DATA = "linlight.data.LineDataModule"

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
        text = parse_error(subclass_error(" ".join(message.split())), self._actions, data_hints())
        sys.stderr.write(f"linlight: error: {text} (see: {command} --help)\n")
        sys.exit(2)


def data_hints() -> dict[str, Any]:
    """The types of linlight's data settings, by key (``data.weight``): the data is a class given by class path,
    whose settings the parser holds no action of its own for."""
    hints: dict[str, Any] = {}
    for cls in (TableDataModule, LineDataModule):
        for name, hint in typing.get_type_hints(cls.__init__).items():
            hints.setdefault(f"data.{name}", hint)
    return hints


def subclass_error(message: str) -> str:
    """jsonargparse's error about a setting of a class given by class path (``--data.batch_size two``), said of that
    setting, not as the list of every type the group could have been."""
    found = re.search(r'Parser key "([\w.]+)": Does not validate against any of the Union subtypes .*? - Problem '
                      r"with given class_path '[^']+': (.*) - Expected a <class 'NoneType'> Given value type: "
                      r"<class '(?:jsonargparse[^']*|dict)'>", message)
    if found is None:
        return message
    group, inner = found.groups()
    option = re.fullmatch(r"Option '(\w+)' is not accepted", inner)
    if option:
        value = re.search(r"NestedArg\(key='\w+', val='([^']*)'\)", message)
        return f"unrecognized arguments: --{group}.{option.group(1)}" + (f" {value.group(1)}" if value else "")
    if inner.startswith('Parser key "'):
        return inner.replace('Parser key "', f'Parser key "{group}.', 1)
    return f'Parser key "{group}": {inner}'


def _option_value(argv: list[str], option: str) -> str | None:
    """The value of ``--option VALUE`` or ``--option=VALUE`` on a command line (the last one given)."""
    found = None
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(f"{option}="):
            found = arg.split("=", 1)[1]
    return found


def _own_callbacks(argv: list[str]) -> bool:
    return any(a.startswith("--trainer.callbacks") for a in argv)


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
        self.checkpoint: tuple[Path, dict] | None = None  # the checkpoint this command uses, read and checked
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
            TensorDataModule,  # any of its subclasses by class path: the line by default (add_arguments_to_parser)
            subclass_mode_data=True,
            # linlight records the parts' settings itself (record_parts), and its checkpoints name no instantiator
            # that Lightning's load_from_checkpoint would use to build classes a file names (GHSA-qqmf-gpg7-g8gw)
            load_from_checkpoint_support=False,
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
        parser.add_argument("--import_path", type=list[parts.Folder] | None, default=None,
                            help="folders to import your own classes from (in a config file: relative to it)")
        parser.set_defaults({"data": {"class_path": DEFAULT_DATA}, "model.loss": {"class_path": "torch.nn.L1Loss"}})
        # the model's input size is the data's, for a model class that takes `in_features`
        parser.link_arguments("data.num_features", "model.model.init_args.in_features", apply_on="instantiate")
        parser.add_lightning_class_args(RunCheckpoint, "checkpoint")
        parser.set_defaults(CHECKPOINT_DEFAULTS)
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.add_lightning_class_args(RunEarlyStopping, "early_stopping")  # off unless given a patience

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse with a checkpoint's settings as the defaults: at once when the command line names the checkpoint
        (or an evaluation takes the newest), so settings of its model and data parse (``--model.optimizer.betas``
        of an Adam run); else parse, find the checkpoint, and parse again."""
        if args is None:  # `--config model0`: a config shipped in the package, from any folder (linlight.configs)
            sys.argv[1:] = configs.resolve_args(sys.argv[1:])  # (DDP ranks re-run sys.argv: they get the path too)
        elif isinstance(args, list):
            args = configs.resolve_args(args)
        early = None
        if isinstance(args, list) or args is None:
            argv = list(sys.argv[1:] if args is None else args)
            check_config_files(argv)
            parts.add_import_paths(argv)  # before parsing: the class paths may name modules found there
            early = self._named_checkpoint(argv)
        if early is not None:
            subcommand, path, checkpoint, defaults = early
            at = argv.index(subcommand) + 1
            self.config = parser.parse_args([*argv[:at], "--config", json.dumps(defaults), *argv[at:]])
        else:
            super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand is None:
            return
        config = self.config[subcommand]
        if config.get("weights_only") is False:
            raise CheckpointError("linlight reads checkpoints with weights_only=True only, so no code in a file runs")
        if early is None:
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
                defaults = self._checkpoint_defaults(subcommand, path, checkpoint, _own_callbacks(argv))
                parts.use_import_paths(defaults.get("import_path"))
                self.config = parser.parse_args([*argv[:at], "--config", json.dumps(defaults), *argv[at:]])
                config = self.config[subcommand]
        config.ckpt_path = str(path)
        self._check_against(subcommand, path, checkpoint, config)
        self.checkpoint = (path, checkpoint)
        if subcommand == "fit":
            self.next_epoch = next_epoch(checkpoint)
        run = run_of(path)
        if run is not None and Path(config.trainer.default_root_dir or os.getcwd()).resolve() == run[0]:
            self.run_version = run[1]
        print(f"linlight: using checkpoint {path.resolve()}", file=sys.stderr)

    def _named_checkpoint(self, argv: list[str]) -> tuple[str, Path, dict, dict] | None:
        """The checkpoint the command line names (``--ckpt_path``; an evaluation's default, ``last``), read and
        checked, with its settings as defaults; ``None`` where only a parse can tell (a config file names it)."""
        subcommand = next((a for a in argv if a in SUBCOMMANDS), None)
        if subcommand is None or subcommand == "lr_find" or {"-h", "--help", "--print_config"} & set(argv):
            return None
        given = _option_value(argv, "--ckpt_path")
        configs = any(a in ("--config", "-c") or a.startswith("--config=") for a in argv)
        if given is None and (subcommand == "fit" or configs):
            return None  # none, or one a config file may name: parse first
        ckpt = given or "last"
        if ckpt in ("last", "best"):
            root = _option_value(argv, "--trainer.default_root_dir")
            if root is None and configs:
                return None  # the root may be in the config: parse first
            path = find_checkpoint(Path(root or os.getcwd()), ckpt, subcommand)
        else:
            path = Path(ckpt)
        checkpoint = read_checkpoint(path, need_training_state=subcommand == "fit")
        try:
            defaults = self._checkpoint_defaults(subcommand, path, checkpoint, _own_callbacks(argv))
        except CheckpointError:  # e.g. a class the user's own config imports: parse that first
            return None
        parts.use_import_paths(defaults.get("import_path"))
        return subcommand, path, checkpoint, defaults

    @staticmethod
    def _checkpoint_defaults(subcommand: str, path: Path, checkpoint: dict, own_callbacks: bool) -> dict[str, Any]:
        """The settings a checkpoint was made with: its run's config (resuming: all of it; evaluating: the model
        and the data), else the model and data settings saved in the checkpoint itself.

        Callbacks given on the command line replace the run's (which may name a module not importable here). A
        class path saved in a checkpoint outside a run is used only if the class is imported already (given by
        the user's own settings, or torch's and linlight's): a checkpoint never names code to import.
        """
        defaults: dict[str, Any] = {}
        run = run_of(path)
        saved = run_config(run[0], run[1]) if run is not None else None
        if saved:
            if subcommand == "fit":
                defaults = {k: v for k, v in saved.items() if k not in ("ckpt_path", "weights_only")}
                if own_callbacks:
                    defaults.get("trainer", {}).pop("callbacks", None)
            else:
                defaults = {k: saved[k] for k in ("model", "data", "import_path") if k in saved}
        else:
            model = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")}
            stored = checkpoint.get("datamodule_hyper_parameters", {})
            data = {"class_path": stored.get("_class_path", DEFAULT_DATA),
                    "init_args": {k: v for k, v in stored.items() if not k.startswith("_")}}
            parts.check_imported(model, path)
            parts.check_imported(data, path)
            for value in (model.get("model"),):  # linked from the data, never given
                if isinstance(value, dict):
                    for key in parts.LINKED:
                        (value.get("init_args") or {}).pop(key, None)
            defaults = {"model": model, "data": data}
        if run is not None:
            defaults.setdefault("trainer", {})["default_root_dir"] = str(run[0])
        return defaults

    def _check_against(self, subcommand: str, path: Path, checkpoint: dict, config: Any) -> None:
        """Refuse settings the checkpoint's weights cannot take; say what differs from training."""
        now = parts.plain(config.model)
        parts.check_against_checkpoint(subcommand, path, checkpoint.get("hyper_parameters", {}), now)
        if subcommand == "predict":  # predictions depend on the weights and the given x only
            return
        saved = checkpoint.get("datamodule_hyper_parameters", {})
        data = parts.plain(config.data.init_args)
        now = {**data, **data_identity(data), "_class_path": config.data.class_path}  # and a data.csv's content
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
        # file settings, read where they were given, are recorded (config.yaml, printed commands) absolute
        parts.absolute_paths(self.config[self.subcommand] if self.subcommand else self.config)
        self._record_parts()
        if isinstance(self.datamodule, TensorDataModule) and self.subcommand != "predict":
            if self.datamodule.x is None:
                self.datamodule.load()  # (setup keeps it)
            self.model.check_data(self.datamodule.x, self.datamodule.y)
        if self.checkpoint is not None:  # before a run folder is claimed or locked: a misfit writes nothing
            path, checkpoint = self.checkpoint
            parts.check_weights_fit(self.model, checkpoint, path, self.model.hparams)
        self._building_trainer = True
        trainer = self._instantiate_trainer_with(**kwargs)
        self._building_trainer = False
        return trainer

    def _instantiate_trainer_with(self, **kwargs: Any) -> Trainer:
        config = self._get(self.config_init, "trainer")
        callbacks = list(config.get("callbacks") or [])
        weights_epoch = 0
        if self.checkpoint is not None and "loops" in self.checkpoint[1]:
            weights_epoch = max(next_epoch(self.checkpoint[1]) - 1, 0)  # where an evaluation's results go
        callbacks.append(RunBoard(weights_epoch))
        if self.subcommand == "fit":
            callbacks += [LearnedLine(), GracefulStop(self.program)]
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
        unused = {"fit": (PredictionWriter,), "predict": (RunEarlyStopping, RunBoard),
                  "lr_find": (RunCheckpoint, PredictionWriter, RunEarlyStopping)}.get(
            self.subcommand, (PredictionWriter, RunEarlyStopping))
        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, unused)
                             and not (isinstance(c, RunEarlyStopping) and not c.enabled)]
        if isinstance(trainer.checkpoint_callback, RunCheckpoint):
            trainer.checkpoint_callback.resuming = self.subcommand == "fit" and self.run_version is not None
        return trainer

    def _record_parts(self) -> None:
        """The module's parts and the data's class, saved with their settings in the run's checkpoints (the module
        holds objects; the settings that built them are the config's)."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        features = getattr(self.datamodule, "num_features", None)
        self.model.save_hyperparameters(parts.recorded_parts(config.model, features, self.model.model))
        if self.datamodule is not None:
            self.datamodule.hparams["_class_path"] = config.data.class_path

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
            record = next((c for c in self.trainer.callbacks if isinstance(c, RunRecord)), None)
            if record is not None:
                record.save_search_config(self.trainer)
            args = fit_arguments(config, defaults, root)
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


def _wrapped_error(exc: BaseException) -> LinlightError | None:
    """A linlight error that another exception was raised while handling (jsonargparse builds a class given by
    class path inside its own error handling, and reports the class's error as its own)."""
    seen = exc.__cause__ or exc.__context__
    while seen is not None:
        if isinstance(seen, LinlightError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


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
        wrapped = _wrapped_error(e)  # e.g. a data module's error, inside jsonargparse's "does not validate"
        if wrapped is not None:
            sys.stderr.write(f"linlight: {wrapped.prefix}{wrapped}\n")
            sys.exit(wrapped.exit_code)
        error = user_error(e)
        if error is None:
            raise
        sys.stderr.write(f"linlight: error: {error}\n")
        sys.exit(1)
    finally:
        release_all()  # a run's lock lasts as long as the command (linlight.locks)


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``linlight`` command's LightningCLI subcommands (``linlight sweep``: see
    ``linlight/__main__.py``)."""
    with user_errors():
        LinlightCLI(args=args)


if __name__ == "__main__":
    main()
