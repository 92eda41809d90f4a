"""``linlight sweep``: a hyperparameter search over ordinary linlight runs, on Optuna.

    linlight sweep --space linlight/configs/sweep.yaml --trials 30 --seed 1     # one process, reproducible
    linlight sweep --space linlight/configs/sweep.yaml --trials 30 --workers 2  # two trial processes
    linlight sweep --space sweep.yaml --trials 200 --storage postgresql://user@host/db   # on every machine

Needs the ``sweep`` extra: ``pip install 'linlight[sweep]'``.

Each trial is a ``linlight fit`` (``LinlightCLI(args=["fit", ...])``, in-process in a worker process) with the
trial's settings, seeded as every linlight run is (``seed_everything`` 42): a trial equals a direct
``linlight fit`` with the same settings bit for bit, and has its own ``lightning_logs/version_N`` folder, so
TensorBoard's HPARAMS tab compares the trials. Optuna's ``PyTorchLightningPruningCallback`` stops trials whose
``loss/val`` falls behind the others' (``MedianPruner``, at every ``--prune-every``-th epoch; the callback reads
``trainer.callback_metrics``, where linlight's module puts ``loss/val`` at each validation's end). A trial that
diverges is recorded FAIL and the study goes on.

The objective is the trial's final ``loss/val``: the one of the last validated epoch, that is of the weights the
trial ends with. That is the model a trial hands over (its ``last.ckpt``) and what the printed ``linlight fit``
command reproduces. The lowest ``loss/val`` over all epochs would score weights that no file holds (linlight
saves its best checkpoint every ``checkpoint.every_n_epochs`` epochs only), and it would make
``trainer.max_epochs`` a setting where more is never worse.

The search space is a YAML file (``linlight/configs/sweep.yaml`` is an example)::

    config: exercise.yaml              # linlight config(s) every trial starts from, relative to this file
    fixed:                             # settings every trial shares, as `linlight fit --KEY VALUE` would set them
      data.batch_size: null
    space:                             # the searched settings, each an Optuna distribution
      model.lr: {type: float, low: 1.0e-3, high: 1.0, log: true}
      trainer.max_epochs: {type: int, low: 20, high: 300, step: 20}
      data.batch_size: {type: categorical, choices: [null, 8, 16]}

It is checked before the study starts, by parsing trials at the ends of every range with the ``LinlightCLI``
parser and building their model and data.

The study lives in an Optuna storage: by default ``sqlite:///<root>/lightning_logs/sweep.db``; any database URL
Optuna accepts lets many machines share one study. ``--trials N`` is the total for the study (COMPLETE, PRUNED
and FAIL trials count), whichever processes run them: every ``linlight sweep`` process pointed at the same
storage and study name takes part, returns when the study holds N ended trials, and prints all of them;
rerunning the command continues the study. Trials send heartbeats: the trial of a worker that was killed is
marked FAIL once its last heartbeat is ``2 x --heartbeat`` seconds old, and is one of the N (Optuna's
``RetryFailedTrialCallback`` would queue its settings again as one trial more than N). ``--seed`` seeds the TPE
sampler, so a single-process study is reproducible; processes sharing a study need different seeds, or none.

Why ``linlight sweep`` is not a LightningCLI subcommand: LightningCLI's subcommands are ``Trainer`` methods
(``fit``, ``validate``, ``test``, ``predict``) run on one model; a sweep runs many fits. So ``linlight.cli.main``
hands ``linlight sweep ...`` to ``main`` here before LightningCLI parses anything.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import re
import socket
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import lightning.pytorch as pl
import yaml

from linlight import configs
from linlight.cli import LinlightCLI, user_errors
from linlight.errors import ConfigError, DivergedError, LinlightError, Stopped
from linlight.summary import linlight_fit, shell

try:
    import optuna
    from optuna.trial import FrozenTrial, TrialState
    from optuna_integration import PyTorchLightningPruningCallback

    ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    CLAIMED = (*ENDED, TrialState.RUNNING)  # ended or in progress in some process
    MISSING = None
except ImportError as e:  # the optional extra: only `linlight sweep` needs it, and main() says so first
    MISSING = f"linlight sweep needs Optuna ({e}): pip install 'linlight[sweep]'"
    PyTorchLightningPruningCallback = pl.Callback  # a stand-in base class, so that this module imports

try:
    import fcntl
except ImportError:  # not POSIX: no lock between processes (see StudyLock)
    fcntl = None

TRIAL_ONLY_ARGS = ["--trainer.enable_progress_bar", "false"]  # trials report one line each; no bars
KINDS = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"}, "categorical": {"choices"}}


@dataclass(frozen=True)
class Param:
    """One searched setting and its Optuna distribution, as written in the space file."""

    name: str
    kind: str
    low: float = 0
    high: float = 0
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.name, list(self.choices))

    def extremes(self) -> list[Any]:
        """The values that bound what a trial can get: both ends of a range, every choice."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


@dataclass(frozen=True)
class Space:
    """A search space file: linlight configs and fixed settings every trial shares, and the searched ones."""

    path: Path
    configs: tuple[str, ...]
    fixed: dict[str, Any]
    params: dict[str, Param]

    def fit_args(self, values: dict[str, Any], root: Path) -> list[str]:
        """The ``linlight fit`` arguments of a trial with these values."""
        args = ["fit"]
        for config in self.configs:
            args += ["--config", config]
        for key, value in {**self.fixed, **values}.items():
            args += [f"--{key}", value if isinstance(value, str) else json.dumps(value)]
        return [*args, "--trainer.default_root_dir", str(root)]


@dataclass(frozen=True)
class Sweep:
    """What one ``linlight sweep`` command asks for; handed to each worker process."""

    space: Space
    root: Path
    storage: str
    study: str
    trials: int
    workers: int
    seed: int | None
    heartbeat: int
    prune_every: int


def load_space(path: Path) -> Space:
    """Read and check a search space file; every mistake is a ``ConfigError`` naming the file and the key."""
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"cannot read search space {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from None
    example = "space: {model.lr: {type: float, low: 1.0e-3, high: 1.0, log: true}}"
    if not isinstance(doc, dict) or not isinstance(doc.get("space"), dict) or not doc["space"]:
        raise ConfigError(f"{path}: expected a 'space' mapping of settings to distributions, e.g. {example}")
    if unknown := sorted(set(doc) - {"config", "fixed", "space"}):
        raise ConfigError(f"{path}: unknown top-level key(s) {unknown}; allowed: config, fixed, space")
    configs = doc.get("config") or []
    configs = [configs] if isinstance(configs, str) else configs
    if not isinstance(configs, list) or not all(isinstance(c, str) for c in configs):
        raise ConfigError(f"{path}: 'config' must be a file name or a list of them")
    resolved = tuple(str((path.parent / c).resolve()) for c in configs)
    for name, full in zip(configs, resolved):
        if not Path(full).is_file():
            raise ConfigError(f"{path}: config {name} not found at {full} (paths are relative to the space file)")
    fixed = doc.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ConfigError(f"{path}: 'fixed' must map settings to values, e.g. fixed: {{data.batch_size: 8}}")
    params = {str(name): _param(path, str(name), spec) for name, spec in doc["space"].items()}
    for key in [*map(str, fixed), *params]:
        if key in fixed and key in params:
            raise ConfigError(f"{path}: {key} is both fixed and searched")
        if key == "trainer.default_root_dir":
            raise ConfigError(f"{path}: {key} is the sweep's root: set it with linlight sweep --root")
    return Space(path, resolved, {str(k): v for k, v in fixed.items()}, params)


def _param(path: Path, name: str, spec: Any) -> Param:
    where = f"{path}: space.{name}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping such as {{type: float, low: 1.0e-3, high: 1.0}}")
    kind = spec.get("type")
    if kind not in KINDS:
        raise ConfigError(f"{where}: unknown type {kind!r}; use float, int or categorical")
    if unknown := sorted(set(spec) - KINDS[kind] - {"type"}):
        raise ConfigError(f"{where}: unknown field(s) {unknown} for type {kind}; allowed: {sorted(KINDS[kind])}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: 'choices' must be a non-empty list")
        if bad := [c for c in choices if c is not None and not isinstance(c, (bool, int, float, str))]:
            raise ConfigError(f"{where}: choices must be numbers, strings, true/false or null, got {bad[0]!r}")
        if len({json.dumps(c) for c in choices}) < len(choices):
            raise ConfigError(f"{where}: choices repeat a value")
        return Param(name, kind, choices=tuple(choices))
    low, high = (_number(where, spec, field, integral=kind == "int") for field in ("low", "high"))
    log, step = spec.get("log", False), spec.get("step")
    if not low < high:
        raise ConfigError(f"{where}: low ({low}) must be below high ({high})")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: 'log' must be true or false, got {log!r}")
    if step is not None:
        step = _number(where, spec, "step", integral=kind == "int")
        if log or step <= 0:
            raise ConfigError(f"{where}: 'step' must be positive and cannot go with log: true")
        if abs((n := (high - low) / step) - round(n)) > 1e-9 * max(1.0, n):
            raise ConfigError(f"{where}: high - low ({high - low}) must be a multiple of step ({step})")
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got {low}")
    return Param(name, kind, low, high, log, step)


def _number(where: str, spec: dict, field: str, integral: bool) -> float:
    value = spec.get(field)
    if isinstance(value, str):  # YAML reads 1e-3 (no dot) as a string
        with suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: '{field}' must be a finite number, got {spec.get(field)!r}")
    if integral:
        if value != int(value):
            raise ConfigError(f"{where}: '{field}' must be a whole number for type int, got {value}")
        return int(value)
    return float(value)


class _Checked(Exception):
    """A trial's arguments parsed and its model and data were built."""


class CheckCLI(LinlightCLI):
    """``LinlightCLI`` that parses a trial and builds its model and data, then stops before the Trainer."""

    def init_parser(self, **kwargs: Any) -> Any:
        return super().init_parser(**{**kwargs, "exit_on_error": False})  # raise, so the error names the space file

    def instantiate_trainer(self, **kwargs: Any) -> NoReturn:
        raise _Checked


def check_space(space: Space, root: Path) -> None:
    """Parse trials at the ends of every range (and with every choice) as ``linlight fit`` would, before any runs."""
    extremes = {name: p.extremes() for name, p in space.params.items()}
    for i in range(max(len(values) for values in extremes.values())):
        values = {name: options[i % len(options)] for name, options in extremes.items()}
        try:
            CheckCLI(args=space.fit_args(values, root))
        except _Checked:
            continue
        except (argparse.ArgumentError, LinlightError) as e:
            trial = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise ConfigError(f"{space.path}: a trial with {trial} is not a valid `linlight fit`: "
                              f"{' '.join(str(e).split())}") from None


class StudyLock:
    """Lets one process at a time count the study's trials and create the next one (or create the study).

    Optuna creates trials unconditionally, so two processes that both see one trial left would both start it.
    For a SQLite storage, which lives on one machine, an exclusive ``flock`` on ``<db>.lock`` makes counting and
    creating one step. A server database gets no lock: there machines that start the last trial within the same
    few milliseconds can run one trial more than asked for.
    """

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        database = parsed.database if parsed.get_backend_name() == "sqlite" else None
        self.path = Path(f"{database}.lock") if fcntl and database and database != ":memory:" else None
        self._file: Any = None

    def acquire(self, *_: Any) -> None:
        """Take the lock (waiting for it); also an Optuna callback, ``(study, trial)``."""
        if self.path is not None and self._file is None:
            self._file = open(self.path, "a")  # noqa: SIM115 -- held across calls, closed in release()
            fcntl.flock(self._file, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file releases the flock
            self._file = None

    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *_: Any) -> None:
        self.release()


def open_study(sweep: Sweep, seed: int | None = None) -> optuna.Study:
    """The sweep's study in its storage, created by whichever process comes first."""
    engine = {"connect_args": {"timeout": 60}} if sweep.storage.startswith("sqlite") else {}  # writers take turns
    try:
        with StudyLock(sweep.storage):  # one process at a time creates the tables and the study
            storage = optuna.storages.RDBStorage(
                sweep.storage, engine_kwargs=engine, heartbeat_interval=sweep.heartbeat,
                grace_period=2 * sweep.heartbeat,
            )
            return optuna.create_study(
                storage=storage, study_name=sweep.study, direction="minimize", load_if_exists=True,
                sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True), pruner=optuna.pruners.MedianPruner(),
            )
    except (ImportError, ValueError, OSError) as e:  # no driver, a malformed URL, an unwritable file
        raise ConfigError(f"cannot open the storage {sweep.storage}: {' '.join(str(e).split())}") from None
    except Exception as e:
        if type(e).__module__.startswith("sqlalchemy"):  # the database refused: unreachable, no such database
            raise ConfigError(f"cannot open the storage {sweep.storage}: {str(e).splitlines()[0]}") from None
        raise


class TrialRecord(pl.Callback):
    """Writes a trial's run folder into its Optuna ``user_attrs`` as soon as it exists (so a killed trial has one)."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.trainer: pl.Trainer | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.trainer = trainer  # before anything is written into the run folder
        self.trial.set_user_attr("run_dir", str(Path(trainer.log_dir).resolve()))

    def finish(self) -> float | None:
        """Record epochs and checkpoint however the run ended; return its final ``loss/val`` if it has one."""
        trainer = self.trainer
        if trainer is None:
            return None
        # epochs whose training steps all ran: a pruned epoch trained before its validation stopped the run
        self.trial.set_user_attr("epochs", trainer.global_step // max(1, int(trainer.num_training_batches)))
        if trainer.checkpoint_callback is not None and trainer.checkpoint_callback.last_model_path:
            self.trial.set_user_attr("checkpoint", str(Path(trainer.checkpoint_callback.last_model_path).resolve()))
        value = trainer.callback_metrics.get("loss/val")
        return None if value is None else value.item()


class Pruning(PyTorchLightningPruningCallback):
    """Optuna's pruning callback, reporting ``loss/val`` at the validations of every ``every``-th epoch only.

    Each report makes Optuna read all of the trial's reports so far back from the storage: at every epoch of a
    1000-epoch trial that costs more than twice the training. All trials report at the same epochs, so the
    pruner compares them at equal steps.
    """

    def __init__(self, trial: optuna.Trial, every: int) -> None:
        super().__init__(trial, monitor="loss/val")
        self.every = every

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (pl_module.current_epoch + 1) % self.every == 0:
            super().on_validation_end(trainer, pl_module)


class TrialCLI(LinlightCLI):
    """``linlight fit`` as a trial: ``LinlightCLI`` with the trial's callbacks added to its Trainer."""

    def __init__(self, args: list[str], callbacks: list[pl.Callback]) -> None:
        self.trial_callbacks = callbacks
        super().__init__(args=args, summary=False)

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks[:0] = self.trial_callbacks
        return trainer


class Objective:
    """One trial: sample its settings, run them as ``linlight fit``, return the final ``loss/val``."""

    def __init__(self, sweep: Sweep, lock: StudyLock) -> None:
        self.sweep, self.lock = sweep, lock

    def __call__(self, trial: optuna.Trial) -> float:
        self.lock.release()  # this trial exists now: other processes may count it and start theirs
        values = {name: param.suggest(trial) for name, param in self.sweep.space.params.items()}
        args = self.sweep.space.fit_args(values, self.sweep.root)
        trial.set_user_attr("args", args)
        trial.set_user_attr("host", socket.gethostname())
        record = TrialRecord(trial)
        try:
            TrialCLI([*args, *TRIAL_ONLY_ARGS], [record, Pruning(trial, self.sweep.prune_every)])
        except DivergedError as e:  # recorded FAIL by Optuna (catch=), the study goes on
            trial.set_user_attr("error", str(e))
            raise
        finally:
            value = record.finish()
        if value is None:
            raise ConfigError(f"trial {trial.number} logged no loss/val: validation never ran (see "
                              "trainer.check_val_every_n_epoch and trainer.max_epochs in the space file)")
        return value


def work(sweep: Sweep, seed: int | None) -> None:
    """Run trials of the shared study until it holds ``sweep.trials`` ended ones (one worker process).

    Optuna's ``MaxTrialsCallback`` stops this process after a trial once the study's trials reach the total. It
    counts the RUNNING trials of every process with the ended ones, so no process starts a trial that others
    already fill the total with; the ``StudyLock`` is held from that count until the next trial exists.
    """
    study = open_study(sweep, seed)
    lock = StudyLock(sweep.storage)
    budget = optuna.study.MaxTrialsCallback(sweep.trials, states=CLAIMED)
    waiting = False
    while len(study.get_trials(deepcopy=False, states=ENDED)) < sweep.trials:
        with lock:
            optuna.storages.fail_stale_trials(study)  # a killed worker's trial, once its heartbeat is stale
            if len(study.get_trials(deepcopy=False, states=CLAIMED)) < sweep.trials:
                study.optimize(Objective(sweep, lock), callbacks=[report, lock.acquire, budget],
                               catch=(DivergedError,))
                continue
        if not waiting:  # the last trials run elsewhere: wait for them, so this process can show the whole study
            running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
            print(f"waiting for {running} trial(s) running in other processes (the trial of a worker that stopped "
                  f"is marked FAIL {2 * sweep.heartbeat} s after its last heartbeat)", flush=True)
            waiting = True
        time.sleep(1)


def report(study: optuna.Study, trial: FrozenTrial) -> None:
    """One line per finished trial (an Optuna callback)."""
    print(f"trial {trial.number}: {_outcome(trial)}; {_params(trial)}  {trial.user_attrs.get('run_dir', '')}",
          flush=True)


def _outcome(trial: FrozenTrial) -> str:
    epochs = trial.user_attrs.get("epochs")
    after = f" after {epochs} epochs" if epochs is not None else ""
    if (value := _value(trial)) is not None:
        return f"{trial.state.name} loss/val {value:.6g}{after}"
    error = trial.user_attrs.get("error") or "no result: its worker stopped or was interrupted"
    return f"{trial.state.name}{after} ({error})"


def _params(trial: FrozenTrial) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in trial.params.items())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


def _value(trial: FrozenTrial) -> float | None:
    """A trial's loss/val: the objective of a COMPLETE trial, the last one reported by a PRUNED trial."""
    if trial.state == TrialState.COMPLETE:
        return trial.value
    if trial.state == TrialState.PRUNED and trial.last_step is not None:
        return trial.intermediate_values[trial.last_step]
    return None


def reproduce_command(args: list[str]) -> str:
    """A shell command that runs ``linlight fit`` with these arguments (``fit ...``), as printed, from any folder."""
    return shell([*linlight_fit(), *args[1:]])


def summarize(study: optuna.Study, sweep: Sweep) -> None:
    """Print the ranked trials, the best one's checkpoint and command, and write the optimization history PNG."""
    trials = study.get_trials(deepcopy=False)
    order = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1}
    ranked = sorted(trials, key=lambda t: (order.get(t.state, 2), _value(t) or 0.0, t.number))
    names = list(dict.fromkeys(k for t in trials for k in t.params))
    rows = [["rank", "trial", "state", "loss/val", "epochs", *names]]
    for i, t in enumerate(ranked, start=1):
        value = _value(t)
        rows.append([str(i) if t.state == TrialState.COMPLETE else "-", str(t.number), t.state.name,
                     "-" if value is None else f"{value:.6g}", str(t.user_attrs.get("epochs", "-")),
                     *(_short(t.params[k]) if k in t.params else "-" for k in names)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    states = Counter(t.state.name for t in trials)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    print(f"\nstudy {sweep.study!r} in {sweep.storage}: {len(trials)} trials ({counts}); loss/val is the final one, "
          "of a pruned trial the last it reported")
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if not any(t.state == TrialState.COMPLETE for t in trials):
        raise LinlightError(f"no trial of study {sweep.study!r} completed; see the errors above")
    best = study.best_trial
    print(f"\nbest: trial {best.number}, loss/val {best.value!r} after {best.user_attrs.get('epochs')} epochs, "
          f"run folder {best.user_attrs.get('run_dir')} on {best.user_attrs.get('host')}")
    print(f"checkpoint: {best.user_attrs.get('checkpoint')}")
    print(f"reproduce: {reproduce_command(best.user_attrs['args'])}")
    print(f"history: {write_history(study, sweep.root)}")


def write_history(study: optuna.Study, root: Path) -> Path:
    """Optuna's optimization-history plot of the study, as ``<root>/<study>-history.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history

    ax = plot_optimization_history(study)
    path = root / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', study.study_name)}-history.png"
    ax.figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(ax.figure)
    return path


@contextmanager
def quiet() -> Iterator[None]:
    """One line per trial: Lightning's and Optuna's messages of every run are held back (warnings still show)."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    verbosity = optuna.logging.get_verbosity()
    with warnings.catch_warnings():
        # each trial passes its own args while sys.argv holds the sweep's: as intended here
        warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
        # heartbeats, stale-trial handling and the matplotlib plots are marked experimental; chosen knowingly
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # `report` prints each trial, failures included
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)
            optuna.logging.set_verbosity(verbosity)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"linlight: error: {message} (see: linlight sweep --help)\n")
        sys.exit(2)


def parse_args(argv: list[str]) -> Sweep:
    """The ``linlight sweep`` command line, as a ``Sweep``."""
    parser = _Parser(prog="linlight sweep", description="Search linlight settings with Optuna: each trial is a "
                     "`linlight fit` run in its own lightning_logs/version_N folder.",
                     epilog="space file: see linlight/configs/sweep.yaml and the docstring of linlight/sweep.py")
    parser.add_argument("--space", required=True,
                        help="the search space, a YAML file, or a shipped one by name: sweep (linlight.configs)")
    parser.add_argument("--trials", type=int, default=20,
                        help="trials of the study in all, whichever processes run them (default: 20)")
    parser.add_argument("--workers", type=int, default=1, help="trial processes on this machine (default: 1)")
    parser.add_argument("--root", "--trainer.default_root_dir", dest="root", type=Path, default=Path.cwd(),
                        help="folder for lightning_logs/ and the history plot (default: the current folder)")
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna storage, shared by every process of the study "
                        "(default: sqlite:///ROOT/lightning_logs/sweep.db)")
    parser.add_argument("--study", help="study name (default: the space file's name without .yaml)")
    parser.add_argument("--seed", type=int, help="seed of the TPE sampler, for a reproducible single-process study; "
                        "worker i takes seed+i; processes that share a study need different seeds, or none")
    parser.add_argument("--heartbeat", type=int, default=60, metavar="SECONDS",
                        help="time between a trial's heartbeats; a trial silent for twice that is marked FAIL "
                        "(default: 60)")
    parser.add_argument("--prune-every", type=int, default=10, metavar="EPOCHS",
                        help="report loss/val to the pruner at the validations of every EPOCHS-th epoch (default: 10)")
    a = parser.parse_args(argv)
    for name in ("trials", "workers", "heartbeat", "prune_every"):
        if getattr(a, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(a, name)}")
    space = Path(configs.resolve(a.space, "search space"))
    root = a.root.resolve()
    storage = a.storage or f"sqlite:///{root / 'lightning_logs' / 'sweep.db'}"
    return Sweep(load_space(space), root, storage, a.study or space.stem, a.trials, a.workers, a.seed, a.heartbeat,
                 a.prune_every)


def main(argv: list[str]) -> None:
    """``linlight sweep ARGV``: check the space, run the trials (in ``--workers`` processes), print the results."""
    with user_errors():
        if MISSING:
            raise ConfigError(MISSING)
        with quiet(), _interruptible():
            run(parse_args(argv))


def run(sweep: Sweep) -> None:
    """A whole ``linlight sweep`` command: check, run this machine's share of the trials, summarize."""
    check_space(sweep.space, sweep.root)
    (sweep.root / "lightning_logs").mkdir(parents=True, exist_ok=True)
    study = open_study(sweep)
    started = len(study.get_trials(deepcopy=False))
    ended = len(study.get_trials(deepcopy=False, states=ENDED))
    print(f"linlight sweep: study {sweep.study!r} in {sweep.storage}: {ended} of {sweep.trials} trials ended; "
          f"{sweep.workers} worker process{'es' if sweep.workers > 1 else ''} here", flush=True)
    # a continued study's sampler must not replay the draws that picked its earlier trials
    seed = None if sweep.seed is None else sweep.seed + started
    if sweep.workers == 1:
        work(sweep, seed)
    else:
        _spawn(sweep, seed)
    summarize(study, sweep)


def _spawn(sweep: Sweep, seed: int | None) -> None:
    """``--workers N``: N processes, each running trials of the study; returns when the study is done."""
    context = multiprocessing.get_context("spawn")  # no forked copies of torch's threads or of the database pool
    procs = [context.Process(target=_worker, args=(sweep, None if seed is None else seed + i), name=f"worker-{i}")
             for i in range(sweep.workers)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:  # Ctrl-C reached the workers too: let them record their trials
        for p in procs:
            p.join()
        raise
    stopped = [f"{p.name} (exit code {p.exitcode})" for p in procs if p.exitcode != 0]
    study = open_study(sweep)
    if stopped and len(study.get_trials(deepcopy=False, states=ENDED)) < sweep.trials:
        raise LinlightError(f"{', '.join(stopped)} stopped before the study ended; run the same command to finish it")
    if stopped:
        print(f"linlight sweep: {', '.join(stopped)} stopped; the other workers finished the study", file=sys.stderr)


def _worker(sweep: Sweep, seed: int | None) -> None:
    with user_errors(), quiet(), _interruptible():
        work(sweep, seed)


@contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C or SIGTERM: the running trial stops after its epoch and is recorded FAIL; say how to go on."""
    try:
        yield
    except Stopped as e:
        print(f"linlight: sweep stopped by signal {e.exit_code - 128}; the trial it interrupted is recorded FAIL; "
              "run the same command to continue the study", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("linlight: sweep interrupted; run the same command to continue the study", file=sys.stderr)
        sys.exit(130)
