"""The callbacks a linlight run uses: checkpoints, a light progress bar, and a clean stop on signals.

- ``RunCheckpoint``: Lightning's ``ModelCheckpoint`` saving ``last.ckpt`` every ``every_n_epochs`` epochs,
  whatever ``loss/val`` does, and at the epoch training ends on; and the best ``loss/val`` (``best-epoch=E``)
  at those checkpoint epochs, or, with early stopping on, at every epoch early stopping judges an
  improvement. Each save comes after the TensorBoard events written so far are flushed, so a resumed run
  never misses an epoch in its curves. At the start of a fit it removes temporary files that a killed save
  left (and, resuming, best checkpoints of epochs the resume replaces); when a fit fails it says what is
  intact and how to continue (``linlight.faults``).
- ``EpochProgressBar``: one bar over epochs with the latest losses, redrawn at most a few times a second;
  Lightning's TQDM bar redraws two bars every epoch, which costs more than a whole epoch of this model.
- ``GracefulStop``: Ctrl-C or SIGTERM finishes the current epoch, saves ``last.ckpt`` and stops with the
  command that continues the run exactly. A second Ctrl-C, or one while the run starts, stops at once.
- ``PredictionWriter``: ``linlight predict`` results as CSV.
"""

from __future__ import annotations

import copy
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint, ProgressBar
from tqdm import tqdm

from linlight import faults
from linlight.atomic import remove_stale_temps
from linlight.errors import ConfigError, Interrupted, Stopped
from linlight.locks import holds_lock
from linlight.stopping import RunEarlyStopping
from linlight.summary import resume_command


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` follows the run, and whose best follows early stopping.

    At the end of every training epoch (``every_n_epochs`` = N, Lightning's own rule for "checkpoint epochs"):

    - the best ``loss/val`` (top-k) is judged at every N-th epoch, as Lightning does; with early stopping on,
      at every validation early stopping judges an improvement instead, so ``best-epoch=E.ckpt`` holds the
      weights of the epoch early stopping judged best, which its stop leaves behind;
    - ``last.ckpt`` is saved at every N-th epoch and at the epoch training ends on (``max_epochs``, early
      stopping, Ctrl-C), whatever ``loss/val`` does. Lightning 2.6 saves ``last`` only beside a new best, so
      once ``loss/val`` stopped improving, ``last.ckpt`` stopped following the run; and it saves the final
      state in ``on_train_end``, which does not run if another callback's ``on_train_end`` fails first.

    A best checkpoint is written together with the next ``last.ckpt``, just before it, and the best it
    replaces is removed just after; until then it is held in memory, a copy of the checkpoint (of the model
    and optimizer state, on their device). Early stopping may judge an improvement at every epoch: a copy
    costs a fraction of an fsync'ed write (about 1 ms against 2 to 12 ms here), and only the last of the
    improvements between two checkpoint epochs is written. At every moment the ``last.ckpt`` on disk names
    a best checkpoint that is on disk. A kill -9 loses the bests judged since the last save, as it loses
    those epochs: the resumed run trains them again and judges them again.

    ``resuming`` is set by the CLI when a fit continues a run in its own checkpoint folder.
    """

    resuming = False
    _last_saved_step: int | None = None  # the global step last.ckpt was last saved at, in this fit
    _held: dict[str, dict[str, Any] | None]  # bests judged, not yet written, by path (None: ranks that don't write)
    _replaced: list[str]  # checkpoints to remove once the next last.ckpt no longer names them

    @property
    def state_key(self) -> str:
        # Lightning formats this key at every hook call of every batch; ModelCheckpoint builds it from its
        # settings each time. They do not change after __init__, so build it once.
        if "_state_key" not in self.__dict__:
            self.__dict__["_state_key"] = super().state_key
        return self.__dict__["_state_key"]

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        with warnings.catch_warnings():
            if self.resuming:  # continuing this folder is the point; Lightning warns of any non-empty one
                warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            super().setup(trainer, pl_module, stage)
        if stage == "fit" and self._save_on_train_epoch_end is not True:
            raise ConfigError("linlight saves checkpoints at the end of training epochs: leave out "
                              "--checkpoint.save_on_train_epoch_end (or set it to true)")
        self._last_saved_step, self._held, self._replaced = None, {}, []
        if stage == "fit" and trainer.is_global_zero and self.dirpath and not trainer.fast_dev_run:  # fail now,
            try:  # not at the first save
                Path(self.dirpath).mkdir(parents=True, exist_ok=True)
                probe = Path(self.dirpath) / ".write-test"
                probe.touch()
                probe.unlink()
            except OSError as e:
                raise ConfigError(f"cannot write checkpoints to {self.dirpath}: {e.strerror}") from None
            remove_stale_temps(self.dirpath, any_writer=self._run_is_locked(trainer))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # The best score and paths belong to the checkpoint's run folder: restored only when that run goes on.
        # A fit from a checkpoint outside its run starts a run of its own (whose best is its own), and an
        # evaluation saves nothing; restoring there is where Lightning warns that "the dirpath has changed".
        # The callback stays in those Trainers all the same: without it Lightning warns that the checkpoint's
        # callbacks "need to be provided".
        if self.resuming:
            super().load_state_dict(state_dict)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if self.resuming and trainer.is_global_zero and self._run_is_locked(trainer):
            self._remove_replaced_bests(trainer)

    def _remove_replaced_bests(self, trainer: pl.Trainer) -> None:
        """Best checkpoints the checkpoint this fit resumed from does not name: saved after it (a kill -9 cut
        the run short between a best's write and last.ckpt's), or replaced before it (a kill -9 between
        last.ckpt's write and the old best's removal). The resumed run trains those epochs again, as their
        curves are replaced. Without the callback's state for this folder (saved with another cadence, or in a
        run since moved), only the newer go."""
        if trainer.ckpt_path is None:
            return
        try:
            since = Path(trainer.ckpt_path).stat().st_mtime
        except OSError:
            return
        folder = Path(self.dirpath).resolve()
        kept = {Path(p).resolve() for p in (*self.best_k_models, self.best_model_path) if p}
        named = any(p.parent == folder for p in kept)  # (a run moved elsewhere names its old folder)
        for path in folder.glob("best*.ckpt"):
            try:
                if path.resolve() not in kept and (named or path.stat().st_mtime > since):
                    trainer.strategy.remove_checkpoint(path)
            except OSError:
                pass  # gone already

    def _run_is_locked(self, trainer: pl.Trainer) -> bool:
        """True if this process holds the lock of the run folder the checkpoints are in: no one else writes."""
        log_dir = getattr(trainer.logger, "log_dir", None)  # the logger's own, not trainer.log_dir (a broadcast)
        if not log_dir or not holds_lock(log_dir):
            return False
        return Path(log_dir).resolve() in Path(self.dirpath).resolve().parents

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        faults.explain(exception, self.dirpath, trainer.default_root_dir, distributed=trainer.world_size > 1)

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        if self.save_last and filepath in self.best_k_models:  # a best: held until the next last.ckpt
            checkpoint = trainer._checkpoint_connector.dump_checkpoint(self.save_weights_only)  # (every rank)
            self._held[filepath] = copy.deepcopy(checkpoint) if trainer.is_global_zero else None
            return
        for logger in trainer.loggers:  # events up to this epoch reach the disk before the checkpoint does
            logger.save()
        super()._save_checkpoint(trainer, filepath)
        if self.save_last and filepath == self.last_model_path:
            self._last_saved_step = trainer.global_step

    def _remove_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        if filepath in self._held:  # replaced before it was written: nothing on disk
            del self._held[filepath]
        else:  # the last.ckpt on disk may name it: removed after the next one is saved
            self._replaced.append(filepath)

    def _save_with_last(self, trainer: pl.Trainer, candidates: dict[str, torch.Tensor]) -> None:
        """The held bests, then ``last.ckpt`` (which names them), then the files they replace."""
        if self._held:
            for logger in trainer.loggers:
                logger.save()
            for path, checkpoint in list(self._held.items()):
                trainer.strategy.save_checkpoint(checkpoint, path)  # (rank 0 writes)
                del self._held[path]
        if self.save_last:
            self._save_last_checkpoint(trainer, candidates)
        while self._replaced:
            super()._remove_checkpoint(trainer, self._replaced.pop(0))

    def _monitor_candidates(self, trainer: pl.Trainer) -> dict[str, torch.Tensor]:
        # Lightning deep-copies every metric here at every epoch end, saving or not; the values are never
        # modified in place, so a shallow copy gives the same candidates for far less.
        candidates = dict(trainer.callback_metrics)
        for key, value in (("epoch", trainer.current_epoch), ("step", trainer.global_step)):
            logged = candidates.get(key)
            candidates[key] = logged.int() if isinstance(logged, torch.Tensor) else torch.tensor(value)
        return candidates

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning's own conditions for not saving (fast_dev_run, not fitting, already saved at this step)
        if self._should_skip_saving_checkpoint(trainer):
            return
        every = self.every_n_epochs or 0
        checkpoint_epoch = every >= 1 and (trainer.current_epoch + 1) % every == 0
        stopping = trainer.early_stopping_callback
        if isinstance(stopping, RunEarlyStopping) and stopping.enabled:
            best = stopping.improved_at == trainer.current_epoch  # its best, whichever epoch it falls on
        else:
            best = checkpoint_epoch
        last = self.save_last and (checkpoint_epoch or _training_ends(trainer))
        if best or last:
            candidates = self._monitor_candidates(trainer)
            if best:  # judged before last.ckpt is saved: it then records this epoch's best
                self._save_topk_checkpoint(trainer, candidates)
            if last:
                self._save_with_last(trainer, candidates)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # The final state is saved at the epoch training ends on; this covers a stop no epoch end foresaw.
        if trainer.fast_dev_run:
            return
        if self._last_saved_step != trainer.global_step or self._held or self._replaced:
            self._save_with_last(trainer, self._monitor_candidates(trainer))


def _training_ends(trainer: pl.Trainer) -> bool:
    """Whether the fit stops after this epoch, as ``FitLoop.done`` decides after the epoch-end hooks.

    ``should_stop`` is set by early stopping, Ctrl-C (``GracefulStop``) and Lightning's ``Timer`` before the
    checkpoint callbacks run (Lightning calls them last). ``min_epochs`` can still veto a ``should_stop``:
    then ``last.ckpt`` is saved one time more than needed, never one time less.
    """
    max_epochs, max_steps = trainer.max_epochs, trainer.max_steps
    return (trainer.should_stop
            or (max_epochs is not None and max_epochs >= 0 and trainer.current_epoch + 1 >= max_epochs)
            or (max_steps is not None and max_steps >= 0 and trainer.global_step >= max_steps))


class EpochProgressBar(ProgressBar):
    """A progress bar over epochs showing ``loss/train`` and ``loss/val``.

    Args:
        refresh_seconds: the shortest time between two redraws.
    """

    def __init__(self, refresh_seconds: float = 0.25) -> None:
        super().__init__()
        self.refresh_seconds = refresh_seconds
        self._enabled = True
        self._bar: tqdm | None = None
        self._last = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None
        self._bar = tqdm(
            total=total, initial=trainer.current_epoch, desc="fit", unit="epoch", dynamic_ncols=True,
            disable=not self._enabled or not trainer.is_global_zero, file=sys.stderr, mininterval=self.refresh_seconds,
        )

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if time.monotonic() - self._last >= self.refresh_seconds:
            self._update(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is not None:
            self._update(trainer)
            self._bar.close()
            self._bar = None

    def _update(self, trainer: pl.Trainer) -> None:
        """Show the epochs completed so far and their latest losses."""
        bar = self._bar
        if bar is None or bar.disable:
            return
        metrics = trainer.callback_metrics
        bar.set_postfix(
            {k: f"{metrics[k].item():.4g}" for k in ("loss/train", "loss/val") if k in metrics}, refresh=False
        )
        bar.update(trainer.current_epoch - bar.n)
        self._last = time.monotonic()

    def print(self, *args: Any, **kwargs: Any) -> None:
        (self._bar.write if self._bar is not None else print)(" ".join(map(str, args)), **kwargs)


class GracefulStop(pl.Callback):
    """On SIGINT (Ctrl-C) or SIGTERM, stop after the current epoch with ``last.ckpt`` saved.

    A signal while the run starts (before the first epoch) stops it at once, as does a second Ctrl-C. Every
    message ends with the command that continues the run.

    Args:
        program: the words that start this program's ``fit`` in a new shell (see ``linlight.summary``).
    """

    def __init__(self, program: list[str]) -> None:
        self.program = program
        self.signum: int | None = None
        self._training = False
        self._trainer: pl.Trainer | None = None
        self._previous: dict[int, Any] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer
        if stage == "fit":
            self._install()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._install()  # again: Lightning wraps the SIGTERM handler in its own after setup
        self._training = True

    def _install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous = signal.signal(sig, self._handle)
                self._previous.setdefault(sig, previous)

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if not self._training:
            raise Interrupted(f"stopped on {name} while starting, before the first epoch; nothing was trained")
        if self.signum is not None and signum == signal.SIGINT:
            raise Interrupted(f"stopped at once by a second Ctrl-C during epoch {self._trainer.current_epoch}; "
                              f"{self._continue()}")
        self.signum = signum
        print(f"\n{name}: finishing this epoch, then saving last.ckpt (Ctrl-C again stops at once)", file=sys.stderr)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        stop = self.signum is not None
        if trainer.world_size > 1:  # whichever process got the signal, all of them stop together
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop:
            trainer.should_stop = True

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        self._training = False

    def raise_if_stopped(self, trainer: pl.Trainer) -> None:
        """After ``fit``: a run stopped by a signal ends with ``Stopped`` (exit code 128 + the signal)."""
        if self.signum is not None:
            name = signal.Signals(self.signum).name
            raise Stopped(f"stopped on {name} after {trainer.current_epoch} epochs, last.ckpt saved; "
                          f"{self._continue()}", self.signum)

    def _continue(self) -> str:
        """What to run to go on from the newest ``last.ckpt`` of this run."""
        ckpt = self._trainer.checkpoint_callback if self._trainer is not None else None
        last = Path(ckpt.dirpath) / "last.ckpt" if ckpt is not None and ckpt.dirpath else None
        if last is None or not last.is_file():
            return "no checkpoint was saved yet, so there is nothing to continue"
        return f"continue with: {resume_command(self.program, last)}"


class PredictionWriter(BasePredictionWriter):
    """Writes ``linlight predict`` results as CSV (``x,y``): to ``output`` if given, else to standard output.

    Values are printed as the float32 numbers they are (``0.1``, not ``0.10000000149011612``).

    Args:
        output: the CSV file to write; standard output when not set.
    """

    def __init__(self, output: Path | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output = output

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size > 1:
            raise ConfigError("linlight predict runs in one process: leave out --trainer.devices/--trainer.strategy")

    def write_on_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        (x,) = trainer.predict_dataloaders.dataset.tensors
        y = torch.cat(predictions).cpu()
        lines = ["x,y", *(f"{a!s},{b!s}" for a, b in zip(x.flatten().numpy(), y.flatten().numpy()))]
        if self.output is None:
            print("\n".join(lines))
            return
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.output.write_text("\n".join(lines) + "\n")
        except OSError as e:
            why = f"{e.filename} is a file, not a folder" if isinstance(e, FileExistsError) else e.strerror or e
            raise ConfigError(f"cannot write predictions to {self.output}: {why}; "
                              "choose another --predictions.output") from None
        print(f"wrote {len(y)} predictions to {self.output.resolve()}", file=sys.stderr)
