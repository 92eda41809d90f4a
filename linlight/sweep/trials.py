"""A sweep's trials: each one a ``linlight fit`` run, and a worker's loop that runs them until the study is done.

Each trial is ``LinlightCLI(args=["fit", ...])`` in this process with the trial's settings, seeded as every
linlight run is (``seed_everything`` 42): a trial equals a direct ``linlight fit`` with the same settings bit for
bit, and has its own ``lightning_logs/version_N`` folder, so TensorBoard's HPARAMS tab compares the trials.
Optuna's ``PyTorchLightningPruningCallback`` stops trials whose ``loss/val`` falls behind the others'
(``MedianPruner``, at every ``--prune-every``-th epoch; the callback reads ``trainer.callback_metrics``, where
linlight's module puts ``loss/val`` at each validation's end). A trial that diverges is recorded FAIL and the
study goes on.

The objective is the trial's final ``loss/val``: the one of the last validated epoch, that is of the weights the
trial ends with. That is the model a trial hands over (its ``last.ckpt``) and what the printed ``linlight fit``
command reproduces. The lowest ``loss/val`` over all epochs would score weights that no file holds (linlight
saves its best checkpoint every ``checkpoint.every_n_epochs`` epochs only), and it would make
``trainer.max_epochs`` a setting where more is never worse.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
from optuna.trial import TrialState
from optuna_integration import PyTorchLightningPruningCallback

from linlight.cli import LinlightCLI
from linlight.errors import ConfigError, DivergedError
from linlight.sweep.results import report
from linlight.sweep.space import Space
from linlight.sweep.storage import Storage

ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
CLAIMED = (*ENDED, TrialState.RUNNING)  # ended or in progress in some process
TRIAL_ONLY_ARGS = ["--trainer.enable_progress_bar", "false"]  # trials report one line each; no bars


@dataclass(frozen=True)
class Sweep:
    """What one ``linlight sweep`` command asks for; handed to each of its worker processes."""

    space: Space
    root: Path
    storage: str
    study: str
    trials: int
    workers: int
    seed: int | None
    heartbeat: int
    prune_every: int
    command: str  # this command's name in its trials' user_attrs: host, process id and a random part


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
    pruner compares them at equal steps. The last epoch is reported but never pruned: a trial that has run
    every epoch is complete, and is ranked. At each epoch's end it also stops the trial if the storage was
    given up by the heartbeat thread (``Storage.lost``).
    """

    def __init__(self, trial: optuna.Trial, every: int, storage: Storage) -> None:
        super().__init__(trial, monitor="loss/val")
        self.every, self.storage = every, storage

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = pl_module.current_epoch
        if (epoch + 1) % self.every != 0 or trainer.sanity_checking:
            return
        if trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs > 0:
            value = trainer.callback_metrics.get(self.monitor)
            if value is not None:
                self._trial.report(value.item(), step=epoch)
            return
        super().on_validation_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.storage.lost is not None:
            raise self.storage.lost


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

    def __init__(self, sweep: Sweep, storage: Storage, worker: int) -> None:
        self.sweep, self.storage, self.worker = sweep, storage, worker

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("sweep", self.sweep.command)
        trial.set_user_attr("worker", self.worker)
        self.storage.lock.release()  # this trial exists, and whose it is: others may count it and start theirs
        values = {name: param.suggest(trial) for name, param in self.sweep.space.params.items()}
        args = self.sweep.space.fit_args(values, self.sweep.root)
        trial.set_user_attr("args", args)
        record, value = TrialRecord(trial), None
        try:
            TrialCLI([*args, *TRIAL_ONLY_ARGS], [record, Pruning(trial, self.sweep.prune_every, self.storage)])
        except DivergedError as e:  # recorded FAIL by Optuna (catch=), the study goes on
            trial.set_user_attr("error", str(e))
            raise
        finally:
            if self.storage.lost is None:
                value = record.finish()
        if value is None:
            raise ConfigError(f"trial {trial.number} logged no loss/val: validation never ran (see "
                              "trainer.check_val_every_n_epoch and trainer.max_epochs in the space file)")
        return value


def work(sweep: Sweep, study: optuna.Study, storage: Storage, worker: int) -> None:
    """Run trials of the shared study until it holds ``sweep.trials`` ended ones (one worker).

    Optuna's ``MaxTrialsCallback`` stops this worker after a trial once the study's trials reach the total. It
    counts the RUNNING trials of every process with the ended ones, so no process starts a trial that others
    already fill the total with; the study lock is held from that count until the next trial exists. Then the
    worker waits for the trials still running elsewhere, so that it can show the whole study; worker 0 of the
    command says so, once, when they are another command's.
    """
    budget = optuna.study.MaxTrialsCallback(sweep.trials, states=CLAIMED)
    waited = False
    while True:
        with storage.lock:
            optuna.storages.fail_stale_trials(study)  # a killed worker's trial, once its heartbeat is stale
            trials = study.get_trials(deepcopy=False)
            if sum(t.state in ENDED for t in trials) >= sweep.trials:
                return
            if sum(t.state in CLAIMED for t in trials) < sweep.trials:
                study.optimize(Objective(sweep, storage, worker), callbacks=[report, storage.lock.acquire, budget],
                               catch=(DivergedError,))
                continue
        elsewhere = [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("sweep") != sweep.command]
        if worker == 0 and elsewhere and not waited:
            where = ", ".join(f"{t.number} (on {t.user_attrs.get('host', 'an unknown host')})" for t in elsewhere)
            print(f"linlight sweep: waiting for the study's last trial(s), running in other processes: {where}; "
                  f"a trial whose process stopped is marked FAIL {2 * sweep.heartbeat} s after its last heartbeat",
                  flush=True)
            waited = True
        time.sleep(1)
