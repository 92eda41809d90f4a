"""What a sweep prints: one line per finished trial, and at the end the ranked table, the best trial's checkpoint
and the ``linlight fit`` command that reproduces it (it runs as printed, from any folder), and Optuna's
optimization history as ``<root>/lightning_logs/<study>-history.png`` (beside the runs, so git ignores it too).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from linlight.errors import LinlightError
from linlight.summary import linlight_fit, shell


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


def summarize(study: optuna.Study, where: str, root: Path) -> None:
    """Print the ranked trials of ``study`` (in the storage ``where``, as printed), the best one's checkpoint and
    command, and write the optimization history PNG under ``root``."""
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
    print(f"\nstudy {study.study_name!r} in {where}: {len(trials)} trials ({counts}); loss/val is the final one, "
          "of a pruned trial the last it reported")
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if not any(t.state == TrialState.COMPLETE for t in trials):
        raise LinlightError(f"no trial of study {study.study_name!r} completed; see the errors above")
    best = study.best_trial
    print(f"\nbest: trial {best.number}, loss/val {best.value!r} after {best.user_attrs.get('epochs')} epochs, "
          f"run folder {best.user_attrs.get('run_dir')} on {best.user_attrs.get('host')}")
    print(f"checkpoint: {best.user_attrs.get('checkpoint')}")
    print(f"reproduce: {reproduce_command(best.user_attrs['args'])}")
    print(f"history: {write_history(study, root / 'lightning_logs')}")


def write_history(study: optuna.Study, folder: Path) -> Path:
    """Optuna's optimization-history plot of the study, as ``<folder>/<study>-history.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization.matplotlib import plot_optimization_history

    ax = plot_optimization_history(study)
    path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', study.study_name)}-history.png"
    ax.figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(ax.figure)
    return path

