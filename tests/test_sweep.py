"""`linlight sweep`: Optuna studies of linlight runs, checked against the plain loop and read back from disk."""

from __future__ import annotations

import math
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

optuna = pytest.importorskip("optuna")
from conftest import CONFIGS, load_ckpt, scalars  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from PIL import Image  # noqa: E402
from plain import plain_loop  # noqa: E402

from linlight.sweep import main  # noqa: E402

ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
LR = {"type": "float", "low": 1e-3, "high": 0.5, "log": True}


def write_space(path: Path, space: dict, fixed: dict | None = None) -> Path:
    path.write_text(yaml.safe_dump({"fixed": {"trainer.accelerator": "cpu", **(fixed or {})}, "space": space}))
    return path


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "linlight", "sweep", *args]


def load(root: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root / 'lightning_logs' / 'sweep.db'}")


def printed(out: str, label: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(label)).removeprefix(label)


def test_a_study_finds_a_faster_lr_and_its_best_trial_is_a_plain_fit(tmp_path, capsys):
    """30 epochs are too few for lr 0.01; the study finds a larger lr, and its best trial is the plain loop's run."""
    epochs, root = 30, tmp_path / "runs"
    space = write_space(tmp_path / "lr.yaml", {"model.lr": LR}, {"trainer.max_epochs": epochs})
    main(["--space", str(space), "--trials", "8", "--seed", "1", "--root", str(root)])
    out = capsys.readouterr().out

    study = load(root, "lr")
    assert len(study.trials) == 8 and all(t.state in ENDED for t in study.trials)
    assert len({t.user_attrs["run_dir"] for t in study.trials}) == 8  # one run folder each
    for t in study.trials:  # where each ran: its run folder, checkpoint, host, arguments, command and worker
        assert {"run_dir", "host", "args", "sweep", "worker"} <= t.user_attrs.keys(), t.state
        assert t.user_attrs["host"] == socket.gethostname() and t.user_attrs["worker"] == 0
        if t.state == TrialState.COMPLETE:  # (one pruned before its first checkpoint epoch has none)
            assert Path(t.user_attrs["checkpoint"]) == Path(t.user_attrs["run_dir"]) / "checkpoints" / "last.ckpt"
    assert len({t.user_attrs["sweep"] for t in study.trials}) == 1
    best = study.best_trial
    lr = best.params["model.lr"]
    assert lr > 0.01 and best.value < plain_loop(lr=0.01, epochs=epochs).test_losses[-1]

    truth = plain_loop(lr=lr, epochs=epochs)
    assert best.value == truth.test_losses[-1]  # the objective: the final val/loss
    run = Path(best.user_attrs["run_dir"])
    logged = scalars(run)
    assert [v for _, v in logged["loss/val"]] == truth.test_losses
    assert [v for _, v in logged["loss/train"]] == truth.train_losses
    ckpt = load_ckpt(Path(best.user_attrs["checkpoint"]))
    assert torch.equal(ckpt["state_dict"]["model.linear_layer.weight"], truth.state["weight"])
    assert torch.equal(ckpt["state_dict"]["model.linear_layer.bias"], truth.state["bias"])

    header = next(i for i, line in enumerate(out.splitlines()) if line.startswith("rank"))
    first = out.splitlines()[header + 1].split()
    assert first[:3] == ["1", str(best.number), "COMPLETE"]  # ranked: the best trial first
    assert printed(out, "checkpoint: ") == best.user_attrs["checkpoint"]
    assert printed(out, "history: ") == str(root / "lightning_logs" / "lr-history.png")  # git ignores lightning_logs
    with Image.open(printed(out, "history: ")) as png:
        assert png.format == "PNG" and min(png.size) > 100

    # the printed command, run as printed from another folder, is the best trial once more
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(shlex.split(printed(out, "reproduce: ")), cwd=elsewhere, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    rerun = root / "lightning_logs" / "version_8"
    assert scalars(rerun)["loss/val"] == logged["loss/val"]
    again = load_ckpt(rerun / "checkpoints" / "last.ckpt")
    assert all(torch.equal(again["state_dict"][k], v) for k, v in ckpt["state_dict"].items())


def test_a_seeded_study_repeats_and_a_continued_one_draws_new_settings(tmp_path, capsys):
    space = write_space(tmp_path / "seeded.yaml", {"model.lr": LR}, {"trainer.max_epochs": 10})
    for root in ("a", "b"):
        main(["--space", str(space), "--trials", "2", "--seed", "5", "--root", str(tmp_path / root)])
    first, second = ([(t.params, t.value) for t in load(tmp_path / root, "seeded").trials] for root in ("a", "b"))
    assert first == second
    main(["--space", str(space), "--trials", "3", "--seed", "5", "--root", str(tmp_path / "a")])  # continue to 3
    trials = load(tmp_path / "a", "seeded").trials
    assert [(t.params, t.value) for t in trials[:2]] == first and len(trials) == 3
    assert trials[2].params["model.lr"] not in {t.params["model.lr"] for t in trials[:2]}  # not a replayed draw
    capsys.readouterr()


def test_a_diverging_trial_is_recorded_fail_and_the_study_goes_on(tmp_path, capsys):
    """Unscaled inputs overflow at lr 1 (see test_bad_input.py); the trials around it still run."""
    data = {"data.end": 1e20, "data.step": 1e18}
    lr = {"type": "float", "low": 1e-9, "high": 1.0, "log": True}
    space = write_space(tmp_path / "space.yaml", {"model.lr": lr}, {**data, "trainer.max_epochs": 5})
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name="overflow")  # an existing study: the sweep continues it
    study.enqueue_trial({"model.lr": 1.0})
    study.enqueue_trial({"model.lr": 1e-6})
    main(["--space", str(space), "--trials", "3", "--root", str(tmp_path), "--storage", url, "--study", "overflow"])
    out = capsys.readouterr().out

    trials = optuna.load_study(study_name="overflow", storage=url).trials
    assert [t.number for t in trials] == [0, 1, 2] and trials[0].params["model.lr"] == 1.0
    for t in trials:
        truth = plain_loop(start=0, end=1e20, step=1e18, lr=t.params["model.lr"], epochs=5)
        diverges = not all(math.isfinite(loss) for loss in truth.train_losses)
        assert t.state == (TrialState.FAIL if diverges else TrialState.COMPLETE), t.params
        if diverges:
            assert "diverged at epoch" in t.user_attrs["error"]
        else:
            assert t.value == truth.test_losses[-1]
    assert f"trial 0: FAIL after {trials[0].user_attrs['epochs']} epochs (training diverged" in out


def test_the_shipped_space_runs_the_exercise(tmp_path, capsys):
    """linlight/configs/sweep.yaml: trials of the tutorial's exercise, whatever the current folder."""
    main(["--space", str(CONFIGS / "sweep.yaml"), "--trials", "1", "--seed", "0", "--root", str(tmp_path)])
    (trial,) = load(tmp_path, "sweep").trials
    assert trial.state == TrialState.COMPLETE
    run = Path(trial.user_attrs["run_dir"])
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["init_args"]["weight"] == 0.3 and config["model"]["arch"] == "model0"
    assert config["trainer"]["max_epochs"] == trial.params["trainer.max_epochs"]
    steps = [s for s, _ in scalars(run)["loss/val"]]
    assert steps == list(range(19, trial.params["trainer.max_epochs"], 20))  # tested every 20 epochs, the last too
    assert "reproduce: " in capsys.readouterr().out


def test_the_pruner_stops_trials_behind_the_median_at_the_epochs_they_report(tmp_path, capsys):
    """Optuna's median rule, checked from its definition: a trial is pruned at a reporting epoch when its best
    loss/val so far is above the median of the COMPLETE trials' loss/val at that epoch; what it reported is the
    plain loop's, and its run folder ends there."""
    epochs, every = 40, 10
    lr = {"type": "float", "low": 1e-4, "high": 0.5, "log": True}
    space = write_space(tmp_path / "pruned.yaml", {"model.lr": lr}, {"trainer.max_epochs": epochs})
    main(["--space", str(space), "--trials", "12", "--seed", "3", "--prune-every", str(every), "--root", str(tmp_path)])
    capsys.readouterr()
    trials = load(tmp_path, "pruned").trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    for t in trials:
        truth = plain_loop(lr=t.params["model.lr"], epochs=epochs).test_losses
        steps = sorted(t.intermediate_values)
        assert steps == list(range(every - 1, (t.last_step or 0) + 1, every))  # every 10th epoch, from the 10th
        assert [t.intermediate_values[s] for s in steps] == [truth[s] for s in steps]
        logged = scalars(Path(t.user_attrs["run_dir"]))["loss/val"]
        if t.state == TrialState.COMPLETE:
            assert t.value == truth[-1] and t.user_attrs["epochs"] == epochs and steps[-1] == epochs - 1
            continue
        step = t.last_step
        assert step < epochs - 1 and logged[-1][0] == step and t.user_attrs["epochs"] == step + 1  # stopped there
        before = [u.intermediate_values[step] for u in trials if u.state == TrialState.COMPLETE and u.number < t.number]
        assert len(before) >= 5 and min(t.intermediate_values.values()) > statistics.median(before)


def test_a_trial_that_runs_every_epoch_is_complete_even_at_a_pruning_epoch(tmp_path, capsys):
    """max_epochs equal to --prune-every: each trial's only report is at its last epoch, which is never pruned."""
    space = write_space(tmp_path / "last.yaml", {"model.lr": LR}, {"trainer.max_epochs": 10})
    main(["--space", str(space), "--trials", "10", "--seed", "3", "--prune-every", "10", "--root", str(tmp_path)])
    out = capsys.readouterr().out
    trials = load(tmp_path, "last").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 10
    assert all(t.intermediate_values == {9: t.value} for t in trials)  # reported for the others to compare with
    ranks = [line.split()[0] for line in out.splitlines()[out.splitlines().index(next(
        line for line in out.splitlines() if line.startswith("rank"))) + 1:][:10]]
    assert ranks == [str(i) for i in range(1, 11)]  # all ranked


def first_draw(seed: int) -> float:
    """The first model.lr a TPE sampler with this seed suggests (its first trials are random draws)."""
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True))
    return study.ask().suggest_float("model.lr", LR["low"], LR["high"], log=LR["log"])


def test_workers_with_a_seed_each_draw_from_a_seed_of_their_own_and_a_rerun_from_new_ones(tmp_path, capsys,
                                                                                         monkeypatch):
    """Also both ways workers start: forks of the command's process, and (in a process that runs another thread,
    as a notebook or a service may) forks of a fork server."""
    import linlight.sweep.command as command

    servers, real = [], command.start_fork_server
    monkeypatch.setattr(command, "start_fork_server", lambda: servers.append(real()))
    root = tmp_path / "runs"
    space = write_space(tmp_path / "workers.yaml", {"model.lr": LR}, {"trainer.max_epochs": 10})
    other = threading.Event()
    thread = threading.Thread(target=other.wait)
    thread.start()
    try:  # with a thread: from a fork server
        main(["--space", str(space), "--trials", "4", "--workers", "2", "--seed", "7", "--root", str(root)])
    finally:
        other.set()
        thread.join()
    assert len(servers) == 1
    # then continued, by forks of this process where it runs no other thread (a test process may hold threads of
    # earlier tests, TensorBoard's writers: then from a fork server again): the rerun's workers draw anew
    forks = command.single_threaded()
    main(["--space", str(space), "--trials", "8", "--workers", "2", "--seed", "7", "--root", str(root)])
    assert len(servers) == (1 if forks else 2)
    capsys.readouterr()
    trials = load(root, "workers").trials
    assert len(trials) == 8 and all(t.state in ENDED for t in trials)
    assert len({t.params["model.lr"] for t in trials}) == 8  # no settings drawn twice
    commands = list(dict.fromkeys(t.user_attrs["sweep"] for t in trials))
    assert len(commands) == 2
    for started, name in zip((0, 4), commands):
        for worker in (0, 1):
            mine = [t for t in trials if t.user_attrs["sweep"] == name and t.user_attrs["worker"] == worker]
            if mine:  # a worker's first trial is its seed's first draw
                assert mine[0].params["model.lr"] == first_draw(command.worker_seed(7, started, worker))


BAD_SPACES = {
    "unknown type": ("model.lr: {type: uniform, low: 0.001, high: 1.0}", "unknown type 'uniform'"),
    "low above high": ("model.lr: {type: float, low: 1.0, high: 0.1}", "low (1.0) must be below high (0.1)"),
    "not a setting": ("model.lrr: {type: float, low: 0.001, high: 1.0}", "unrecognized arguments: --model.lrr"),
    "wrong value type": ("trainer.max_epochs: {type: categorical, choices: [10, ten]}", 'key "trainer.max_epochs"'),
    "impossible value": ("model.lr: {type: float, low: 0.0, high: 1.0}", "model.lr must be a positive finite number"),
    "impossible high end": ("model.lr: {type: float, low: 0.001, high: 1.0e39}", "model.lr must be a positive finite"),
    "not YAML": ("model.lr: {type: float", "is not valid YAML"),
}


@pytest.mark.parametrize("name", BAD_SPACES)
def test_bad_space_files_are_refused_before_anything_runs(name, tmp_path, capsys):
    space, words = BAD_SPACES[name]
    path = tmp_path / "bad.yaml"
    path.write_text(f"space:\n  {space}\n")
    with pytest.raises(SystemExit) as stop:
        main(["--space", str(path), "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert stop.value.code != 0
    assert err.startswith("linlight: error: ") and err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "lightning_logs").exists()


def test_without_optuna_the_error_says_what_to_install(tmp_path):
    """As a user sees it: one line, no traceback (the space file errors are tested in-process above)."""
    (tmp_path / "space.yaml").write_text("space:\n  model.lr: {type: float, low: 0.001, high: 0.1}\n")
    no_optuna = "import sys; sys.modules['optuna'] = None; from linlight.__main__ import main; main()"
    proc = subprocess.run([sys.executable, "-c", no_optuna, "sweep", "--space", "space.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "linlight: error: linlight sweep needs Optuna (import of optuna halted; None in sys.modules): "
        "pip install 'linlight[sweep]'")
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.slow
def test_ctrl_c_stops_the_running_trial_after_its_epoch_records_it_fail_and_exits(tmp_path):
    """Ctrl-C mid-trial: the trial's epoch ends, its last.ckpt holds every epoch its curves hold, the trial is
    recorded FAIL, and the command exits 130 saying how to go on; no other trial starts."""
    root = tmp_path / "runs"
    space = write_space(tmp_path / "stopped.yaml", {"model.lr": LR}, {"trainer.max_epochs": 100000})
    proc = subprocess.Popen(sweep_command("--space", str(space), "--trials", "3", "--root", str(root)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    last = root / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists():  # the trial trains (its first checkpoint, at epoch 100, is written)
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == ("linlight: sweep stopped by signal 2; the trial it interrupted is recorded "
                                            "FAIL; run the same command to continue the study")
    (trial,) = load(root, "stopped").trials
    assert trial.state == TrialState.FAIL
    logged = len(scalars(Path(trial.user_attrs["run_dir"]))["loss/train"])
    assert 100 <= logged < 100000 and load_ckpt(last)["loops"]["fit_loop"]["epoch_progress"]["current"][
        "processed"] == logged


@pytest.mark.slow
def test_two_commands_on_one_storage_run_exactly_the_total_between_them(tmp_path):
    """One command with 2 workers and one plain command share the study: 6 trials in all, none run twice."""
    root = tmp_path / "runs"
    space = write_space(tmp_path / "shared.yaml", {"model.lr": LR}, {"trainer.max_epochs": 150})
    command = sweep_command("--space", str(space), "--trials", "6", "--root", str(root))
    procs = [subprocess.Popen([*command, "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
             subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "6 trials" in out  # each command shows the whole study

    trials = load(root, "shared").trials
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state in ENDED for t in trials)
    assert len({t.params["model.lr"] for t in trials}) == 6
    run_dirs = {t.user_attrs["run_dir"] for t in trials}
    assert len(run_dirs) == 6 and all(Path(d).is_dir() for d in run_dirs)


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_a_study_the_same_command_finishes(tmp_path):
    root = tmp_path / "runs"
    space = write_space(tmp_path / "killed.yaml", {"model.lr": LR}, {"trainer.max_epochs": 300})
    command = sweep_command("--space", str(space), "--trials", "3", "--root", str(root), "--heartbeat", "1")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = root / "lightning_logs" / "version_0"
    deadline = time.monotonic() + 300
    while not list(first.glob("events.out.tfevents.*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the first trial has begun (so the database and the study exist)
    running = []
    while not running and proc.poll() is None and time.monotonic() < deadline:
        running = [t for t in load(root, "killed").trials if "run_dir" in t.user_attrs]  # it is training
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (killed,) = load(root, "killed").trials
    assert killed.state == TrialState.RUNNING and killed.user_attrs["run_dir"] == str(first)  # killed mid-trial

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"trial {killed.number} RUNNING" in rerun.stdout  # the rerun says what it waits for
    trials = load(root, "killed").trials
    assert len(trials) == 3 and all(t.state in ENDED for t in trials)
    assert trials[killed.number].state == TrialState.FAIL
    assert sum(t.state != TrialState.FAIL for t in trials) == 2
