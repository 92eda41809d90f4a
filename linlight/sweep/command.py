"""The ``linlight sweep`` command: its options, its header, its worker processes, and its end.

    linlight sweep --space linlight/configs/sweep.yaml --trials 8 --seed 1

The command checks the space (``linlight.sweep.space``), opens the study (``linlight.sweep.storage``), says where it
stands, runs this command's share of the trials (``linlight.sweep.trials``) in this process or in ``--workers``
processes, and prints the whole study (``linlight.sweep.results``).

Worker processes (``Workers``) are forks of this process made before it computes anything: torch, Lightning and
Optuna are imported once for all of them, instead of once more in each (the seconds of a fresh interpreter),
and they wait while this process checks the space and opens the study. They only load the study this process
created and checked. A worker's error is handed to this process, which ends with it in one line.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import multiprocessing
import os
import socket
import sys
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import optuna
from optuna.trial import TrialState

from linlight import configs
from linlight.cli import user_errors
from linlight.errors import LinlightError, Stopped
from linlight.faults import user_error
from linlight.sweep import WORKER_MODULES, start_fork_server
from linlight.sweep.results import summarize
from linlight.sweep.space import check_space, load_space
from linlight.sweep.storage import Storage, sqlite_url
from linlight.sweep.trials import ENDED, Sweep, work


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
    parser = _Parser(prog="linlight sweep", allow_abbrev=False,
                     description="Search linlight settings with Optuna: each trial is a `linlight fit` run in its own "
                     "lightning_logs/version_N folder.",
                     epilog="space file: see linlight/configs/sweep.yaml and the docstring of linlight/sweep/space.py")
    parser.add_argument("--space", required=True,
                        help="the search space, a YAML file, or a shipped one by name: sweep (linlight.configs)")
    parser.add_argument("--trials", type=int, default=20,
                        help="trials of the study in all, whichever processes run them (default: 20)")
    parser.add_argument("--workers", type=int, default=1, help="trial processes on this machine (default: 1)")
    parser.add_argument("--root", "--trainer.default_root_dir", dest="root", type=Path, default=Path.cwd(),
                        help="folder for lightning_logs/ (default: the current folder)")
    parser.add_argument("--storage", metavar="URL",
                        help="database URL of the study, shared by every process of it, e.g. "
                        "postgresql+psycopg://user@host/db (default: sqlite:///ROOT/lightning_logs/sweep.db)")
    parser.add_argument("--study", help="study name (default: the space file's name without .yaml)")
    parser.add_argument("--seed", type=int, help="seed of the TPE samplers, for a reproducible single-process study; "
                        "each worker and each rerun draws from its own seed derived from it; processes that share a "
                        "study need different seeds, or none")
    parser.add_argument("--heartbeat", type=int, default=60, metavar="SECONDS",
                        help="time between a trial's heartbeats; a trial silent for twice that is marked FAIL; a "
                        "storage unreachable for longer than that ends the sweep (default: 60)")
    parser.add_argument("--prune-every", type=int, default=10, metavar="EPOCHS",
                        help="report loss/val to the pruner at the validations of every EPOCHS-th epoch (default: 10)")
    a = parser.parse_args(argv)
    for name in ("trials", "workers", "heartbeat", "prune_every"):
        if getattr(a, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(a, name)}")
    space = Path(configs.resolve(a.space, "search space"))
    root = a.root.resolve()
    command = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    return Sweep(load_space(space), root, a.storage or sqlite_url(root), a.study or space.stem, a.trials,
                 a.workers, a.seed, a.heartbeat, a.prune_every, command)


def main(argv: list[str]) -> None:
    """``linlight sweep ARGV``: check the space, run the trials (in ``--workers`` processes), print the results."""
    with user_errors(), quiet(), _interruptible():
        run(parse_args(argv))


def run(sweep: Sweep) -> None:
    """A whole ``linlight sweep`` command: check, run this machine's share of the trials, summarize."""
    workers = Workers(sweep) if sweep.workers > 1 else None  # forked first: before anything is computed
    try:
        storage = Storage(sweep.storage, sweep.heartbeat)
        check_space(sweep.space, sweep.root)
        (sweep.root / "lightning_logs").mkdir(parents=True, exist_ok=True)
        with storage.errors():
            study = storage.open_study(sweep.study, None, first=True)
            trials = study.get_trials(deepcopy=False)
            ended = sum(t.state in ENDED for t in trials)
            print(f"linlight sweep: study {sweep.study!r} in {storage.shown}: {ended} of {sweep.trials} trials "
                  f"ended; {sweep.workers} worker process{'es' if sweep.workers > 1 else ''} here", flush=True)
            if running := [str(t.number) for t in trials if t.state == TrialState.RUNNING]:
                print(f"linlight sweep: trial{'s' * (len(running) > 1)} {', '.join(running)} RUNNING, in another "
                      "process or left by one that stopped; the study ends when it does: a trial is marked FAIL "
                      f"{2 * sweep.heartbeat} s after its last heartbeat", flush=True)
            if workers is None:
                seed = worker_seed(sweep.seed, len(trials), 0)
                study.sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
                storage.quiet_heartbeat()
                work(sweep, study, storage, 0)
            else:
                workers.run(len(trials))
            summarize(study, storage.shown, sweep.root)
    finally:
        if workers is not None:
            workers.close()


def worker_seed(seed: int | None, started: int, worker: int) -> int | None:
    """The sampler seed of a worker: from ``--seed``, the trials the study had when the command started, and the
    worker's number; so a rerun or another worker never replays the draws that picked earlier trials."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, started, worker]).generate_state(1)[0])


def single_threaded() -> bool:
    """Whether this process runs one Python thread, so that a fork copies no lock of Python's that another holds.
    (Native threads are there already, e.g. OpenBLAS's from importing numpy; OpenBLAS handles a fork itself.)"""
    return threading.active_count() == 1


class Workers:
    """``--workers N``: N processes running trials of the study, started before this process computes anything.

    They are forks of this process, made as soon as the command line is read: torch, Lightning and Optuna are
    imported once, for all of them, and nothing has run yet that a fork could copy in a bad state (no thread of
    Python's, no database connection, no torch computation), as with ``multiprocessing``'s fork server, which
    imports and forks the same way. Where this process has threads already (``linlight.sweep.main`` called inside
    another program) they come from a fork server instead (``start_fork_server``). They wait until this process
    has checked the space and opened the study (``run``), or are let go (``close``).
    """

    def __init__(self, sweep: Sweep) -> None:
        if single_threaded():
            for name in WORKER_MODULES:  # what the first trial or the storage would import in each worker
                importlib.import_module(name)
            context = multiprocessing.get_context("fork")
        else:
            start_fork_server()
            context = multiprocessing.get_context("forkserver")
        self.errors = context.SimpleQueue()
        self.go, self.started = context.Event(), context.Value("q", -1)
        self.procs = [context.Process(target=_worker, args=(sweep, i, self.errors, self.go, self.started),
                                      name=f"worker-{i}") for i in range(sweep.workers)]
        for p in self.procs:
            p.start()

    def run(self, started: int) -> None:
        """Let the workers go on a study that had ``started`` trials; return when they are done."""
        self.started.value = started
        self.go.set()
        try:
            for p in self.procs:
                p.join()
        except KeyboardInterrupt:  # Ctrl-C reached the workers too: let them record their trials
            for p in self.procs:
                p.join()
            raise
        said: list[str] = []
        while not self.errors.empty():
            if (message := self.errors.get()) not in said:
                said.append(message)
        stopped = [f"{p.name} (exit code {p.exitcode})" for p in self.procs if p.exitcode != 0]
        if said:  # the workers' own words: usually one fault they all met
            raise LinlightError(f"{said[0]}{f' (and {len(said) - 1} other error(s))' if len(said) > 1 else ''}")
        if stopped:
            raise LinlightError(f"{', '.join(stopped)} stopped before the study ended; run the same command to "
                                "finish it")

    def close(self) -> None:
        """Workers never let go (the space or the storage was refused) end without doing anything."""
        if not self.go.is_set():
            self.go.set()  # with started still -1: stop
        for p in self.procs:
            p.join()


def _worker(sweep: Sweep, index: int, errors: Any, go: Any, started: Any) -> None:
    """One worker process: wait for the go, load the study, run trials; an error goes to the command's process,
    which says it."""
    parent = multiprocessing.parent_process()
    try:
        while not go.wait(1):
            if parent is not None and not parent.is_alive():
                return
    except KeyboardInterrupt:  # Ctrl-C while the command was starting: it says so
        return
    if started.value < 0:
        return
    storage = Storage(sweep.storage, sweep.heartbeat)
    with user_errors():
        try:
            with quiet(), _interruptible(), storage.errors():
                study = storage.open_study(sweep.study, worker_seed(sweep.seed, started.value, index), first=False)
                storage.quiet_heartbeat()
                work(sweep, study, storage, index)
        except Exception as e:
            error = user_error(e)
            if error is None or isinstance(error, Stopped):
                raise
            errors.put(str(error))
            sys.exit(error.exit_code)


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
