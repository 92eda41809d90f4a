"""``linlight sweep``: a hyperparameter search over ordinary linlight runs, on Optuna.

    linlight sweep --space linlight/configs/sweep.yaml --trials 30 --seed 1     # one process, reproducible
    linlight sweep --space linlight/configs/sweep.yaml --trials 30 --workers 2  # two trial processes
    linlight sweep --space sweep.yaml --trials 200 --storage postgresql+psycopg://user@host/db  # on every machine

Needs the ``sweep`` extra: ``pip install 'linlight[sweep]'`` (and a database server's driver to share a study
between machines). One module per job:

- ``command``: the command line, the header, the worker processes, the end (``main``);
- ``space``: the search space file, checked before anything runs;
- ``storage``: the study's database: its URL printed without the password, the driver, the connect timeout, an
  outage waited for within a bound; ``lock``: the study lock; ``faults``: its errors, said in one line;
- ``trials``: one trial as a ``linlight fit`` run, and a worker's loop over the shared study;
- ``results``: the line per trial, the ranked table, the best trial's command, the history plot.

The study lives in an Optuna storage: by default ``sqlite:///<root>/lightning_logs/sweep.db``; a database server
lets many machines share one study. ``--trials N`` is the total for the study (COMPLETE, PRUNED and FAIL trials
count), whichever processes run them: every ``linlight sweep`` process pointed at the same storage and study name
takes part, returns when the study holds N ended trials, and prints all of them; rerunning the command continues
the study. Trials send heartbeats: the trial of a worker that was killed is marked FAIL once its last heartbeat
is ``2 x --heartbeat`` seconds old, and is one of the N (Optuna's ``RetryFailedTrialCallback`` would queue its
settings again as one trial more than N). ``--seed`` seeds the TPE samplers, so a single-process study is
reproducible; processes sharing a study need different seeds, or none.

Why ``linlight sweep`` is not a LightningCLI subcommand: LightningCLI's subcommands are ``Trainer`` methods
(``fit``, ``validate``, ``test``, ``predict``) run on one model; a sweep runs many fits. So ``linlight/__main__.py``
hands ``linlight sweep ...`` to ``main`` here before LightningCLI parses anything: ``linlight.cli`` knows nothing
of sweeps, and the sweep modules use it as any caller would.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver

# what a worker imports: torch, Lightning, Optuna and linlight, and what Optuna's database storage, Lightning's
# TensorBoard logger and the first trial import on first use
WORKER_MODULES = ["linlight.sweep.command", "alembic.command", "alembic.migration", "sqlalchemy.orm",
                  "tensorboard.plugins.hparams.metadata"]


def main(argv: list[str]) -> None:
    """``linlight sweep ARGV`` (see ``linlight.sweep.command``); without Optuna, one line saying what to install.

    """
    from linlight.cli import user_errors
    from linlight.errors import ConfigError

    try:
        import optuna  # noqa: F401
        import optuna_integration  # noqa: F401
    except ImportError as e:  # the optional extra
        with user_errors():
            raise ConfigError(f"linlight sweep needs Optuna ({e}): pip install 'linlight[sweep]'") from None
    from linlight.sweep.command import main as command

    command(argv)


def start_fork_server() -> None:
    """Start ``multiprocessing``'s fork server (for workers of a process that has threads: see
    ``linlight.sweep.command.Workers``), importing what every worker needs once (idempotent)."""
    multiprocessing.set_forkserver_preload(WORKER_MODULES)
    multiprocessing.forkserver.ensure_running()
