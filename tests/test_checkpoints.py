"""last.ckpt and the best checkpoint at their edges: long past loss/val's plateau, killed late, with early
stopping (stopped or not, resumed, killed), and with a callback that fails at the end of training.

What a checkpoint holds is checked against the plain PyTorch loop (tests/plain.py): its weights after the
number of epochs the checkpoint says it holds, bit for bit (==), and the epoch early stopping judged best
from the plain rule written out there.
"""

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import cli, load_ckpt, run_dir, scalars
from plain import plain_loop
from test_resume import assert_same_as_plain

from linlight.checkpoints import next_epoch

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu"]
PROBES = {"PYTHONPATH": os.path.dirname(__file__)}  # tests/fault_probe.py, for --trainer.callbacks+=


def fit(cwd, *args):
    code, out, err = cli("fit", *args, *FAST, cwd=cwd)
    assert code == 0, err
    return out


def holds(path: Path, truth_state: dict) -> bool:
    """Whether the checkpoint's model weights are the plain loop's, bit for bit."""
    learned = [v for k, v in load_ckpt(path)["state_dict"].items() if k.startswith("model.")]
    return len(learned) == len(truth_state) and all(torch.equal(a, b) for a, b in zip(learned, truth_state.values()))


def bests(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("best*.ckpt"))


# --- last.ckpt follows the run -----------------------------------------------------------------------------


def test_last_ckpt_advances_at_every_checkpoint_epoch_past_the_plateau(tmp_path):
    """The reference's loss/val settles into a period-2 plateau: at the checkpoint epochs (all odd) it stops
    improving. last.ckpt still holds every checkpoint epoch when the next epoch starts, the final state at the
    end (305, not a checkpoint epoch); the best stays the lowest loss/val of the checkpoint epochs."""
    record = tmp_path / "last_epochs.txt"
    out = fit(tmp_path, "--trainer.max_epochs", "305", "--checkpoint.every_n_epochs", "10",
              "--trainer.callbacks+=fault_probe.LastEpochs", "--trainer.callbacks.record", str(record))
    truth = plain_loop(epochs=305)
    at = {e: truth.test_losses[e] for e in range(9, 305, 10)}  # loss/val at the checkpoint epochs
    best = min(at, key=lambda e: (at[e], e))  # the first of the lowest: a later equal value is no improvement
    assert best + 10 * 10 < 305, "loss/val must stop improving well before the end, or this proves nothing"
    seen = [tuple(line.split()) for line in record.read_text().splitlines()]
    assert seen == [(str(e), str(e) if e else "-") for e in range(0, 305, 10)]
    run = run_dir(tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    assert next_epoch(load_ckpt(last)) == 305 and holds(last, truth.state)
    assert bests(run) == [f"best-epoch={best}.ckpt"]
    assert holds(run / "checkpoints" / f"best-epoch={best}.ckpt", plain_loop(epochs=best + 1).state)
    assert f"best         {run / 'checkpoints' / f'best-epoch={best}.ckpt'}   (loss/val {at[best]:.4g}, " in out


def test_the_final_last_ckpt_is_saved_when_a_callback_fails_at_train_end(tmp_path):
    """Another callback's on_train_end raises (a bug: it keeps its traceback): last.ckpt holds the final state
    all the same, although 30 epochs hold no checkpoint epoch (every 100)."""
    with pytest.raises(RuntimeError, match="FailsAtTrainEnd"):
        cli("fit", "--trainer.max_epochs", "30", "--trainer.callbacks+=fault_probe.FailsAtTrainEnd", *FAST,
            cwd=tmp_path)
    last = run_dir(tmp_path) / "checkpoints" / "last.ckpt"
    assert next_epoch(load_ckpt(last)) == 30 and holds(last, plain_loop(epochs=30).state)


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "linlight.cli", *args, *FAST], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **PROBES})


def trained(progress: Path) -> int:
    try:
        return int(progress.read_text())
    except (OSError, ValueError):  # not written yet, or caught mid-write
        return 0


def kill_after(proc: subprocess.Popen, progress: Path, epochs: int, timeout: float = 600) -> None:
    """kill -9 the run once it has trained ``epochs`` epochs (read from the Progress probe's file)."""
    deadline = time.monotonic() + timeout
    while trained(progress) < epochs:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"the run did not reach epoch {epochs}"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill: make it longer"


def resumed_from(run: Path) -> int:
    segments = yaml.safe_load((run / "segments.yaml").read_text())
    return segments[-1]["start_epoch"]


@pytest.mark.slow
def test_a_long_run_killed_past_epoch_2000_resumes_at_most_a_checkpoint_interval_back(tmp_path):
    """The reference run, far past its plateau (epoch ~45), killed -9 at a random epoch past 2000: the resume
    starts at most every_n_epochs (100) behind the last epoch its curves hold, and ends with the weights and
    curves of a run that never stopped."""
    epochs, every = 2300, 100
    progress = tmp_path / "progress.txt"
    proc = start("fit", "--trainer.max_epochs", str(epochs), "--checkpoint.every_n_epochs", str(every),
                 "--trainer.callbacks+=fault_probe.Progress", "--trainer.callbacks.path", str(progress), cwd=tmp_path)
    kill_after(proc, progress, 2000 + random.Random(18).randrange(20, 180))
    run = run_dir(tmp_path)
    logged = max(step for step, _ in scalars(run)["loss/train"]) + 1  # epochs whose curves reached the disk
    assert logged > 2000
    code, _, err = cli("fit", "--ckpt_path", "last", *FAST, cwd=tmp_path)  # the run's own settings: to 2300
    assert code == 0, err
    start_epoch = resumed_from(run)
    assert logged - every <= start_epoch <= logged, f"resumed from epoch {start_epoch}, {logged} epochs logged"
    assert_same_as_plain(run, plain_loop(epochs=epochs))


# --- early stopping keeps its best -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, plain",
    [(["--early_stopping.patience", "20"], {"patience": 20}),  # stops at 63, before any checkpoint epoch
     (["--early_stopping.patience", "20", "--checkpoint.every_n_epochs", "10"], {"patience": 20}),  # 39 < 43 < 49
     (["--early_stopping.patience", "200", "--trainer.max_epochs", "150"], {"patience": 200, "epochs": 150}),
     (["--early_stopping.patience", "5", "--early_stopping.min_delta", "0.001", "--data.batch_size", "6",
       "--data.shuffle", "true", "--checkpoint.every_n_epochs", "7"],
      {"patience": 5, "min_delta": 0.001, "batch_size": 6, "shuffle": True}),
     (["--config", "linlight/configs/exercise.yaml", "--early_stopping.patience", "2", "--early_stopping.min_delta",
       "0.02"], {"arch": "model0", "weight": 0.3, "bias": 0.9, "step": 0.01, "test_every": 20, "patience": 2,
                 "min_delta": 0.02}),
     (["--early_stopping.patience", "3", "--early_stopping.min_delta", "10"], {"patience": 3, "min_delta": 10})],
    ids=["reference", "checkpoint-epochs-around-it", "not-stopped", "shuffled-min-delta", "exercise-every-20",
         "only-the-first-improves"],
)
def test_early_stopping_keeps_the_weights_of_the_epoch_it_judged_best(tmp_path, args, plain):
    """best-epoch=E.ckpt is the epoch whose loss/val early stopping last judged an improvement (the lowest, by
    more than min_delta), with its weights; last.ckpt is where training ended; the summary names both."""
    plain = {"epochs": 300, **plain}
    repo = Path(__file__).resolve().parents[1]
    code, out, err = cli("fit", *args, "--trainer.max_epochs", str(plain["epochs"]),
                         "--trainer.default_root_dir", str(tmp_path), *FAST, cwd=repo)
    assert code == 0, err
    truth = plain_loop(**plain)
    best = truth.best_epoch
    ends = len(truth.train_losses)
    assert (truth.stopped_epoch is None) == (plain["patience"] == 200), "the case must stop early, or not"
    run = run_dir(tmp_path)
    ckpts = run / "checkpoints"
    assert bests(run) == [f"best-epoch={best}.ckpt"]
    assert holds(ckpts / f"best-epoch={best}.ckpt", plain_loop(**{**plain, "epochs": best + 1}).state)
    assert next_epoch(load_ckpt(ckpts / "last.ckpt")) == ends and holds(ckpts / "last.ckpt", truth.state)
    value = truth.test_losses[(best + 1) // plain.get("test_every", 1) - 1]
    best_line = f"best         {ckpts / f'best-epoch={best}.ckpt'}   (loss/val {value:.4g}, the best early stopping"
    assert f"{best_line} judged)" in out
    assert f"last         {ckpts / 'last.ckpt'}" in out
    code, _, err = cli("validate", "--ckpt_path", "best", "--trainer.default_root_dir", str(tmp_path), *FAST,
                       cwd=tmp_path)
    assert code == 0 and f"using checkpoint {ckpts / f'best-epoch={best}.ckpt'}" in err


def test_early_stopping_that_has_judged_nothing_has_no_best(tmp_path):
    """Early stopping on, and no validation yet (every 50 epochs, 30 trained): no best file, the summary says so,
    `--ckpt_path best` says there is none; last.ckpt is the plain loop's."""
    out = fit(tmp_path, "--early_stopping.patience", "2", "--trainer.check_val_every_n_epoch", "50",
              "--trainer.max_epochs", "30")
    run = run_dir(tmp_path)
    assert bests(run) == [] and re.search(r"^  best +none$", out, re.M), out
    last = run / "checkpoints" / "last.ckpt"
    assert next_epoch(load_ckpt(last)) == 30 and holds(last, plain_loop(epochs=30).state)
    code, _, err = cli("validate", "--ckpt_path", "best", *FAST, cwd=tmp_path)
    assert code == 1 and f"the newest run, {run}, has no best checkpoint" in err.strip().splitlines()[-1]


def test_the_readmes_early_stopping_figures_are_the_plain_rules():
    """The README's example (the reference stops at epoch 63, loss/val lowest at 43; best-epoch=43.ckpt, last.ckpt
    after 64 epochs) is what the rule written out in plain PyTorch gives (the runs are held to that rule above)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    stop, low = map(int, re.search(r"the reference stops at epoch (\d+): loss/val was lowest at epoch (\d+)",
                                   text).groups())
    best, ends = map(int, re.search(r"the reference: `best-epoch=(\d+)\.ckpt`, `last\.ckpt` after (\d+) epochs",
                                    text).groups())
    truth = plain_loop(epochs=1000, patience=20)
    assert (stop, best, ends) == (truth.stopped_epoch, truth.best_epoch, truth.stopped_epoch + 1)
    assert truth.test_losses[low] == min(truth.test_losses) and low == best


def test_a_resume_keeps_the_early_stopping_best(tmp_path):
    """Stopped by max_epochs while early stopping waits, then resumed to its stop: the best is the epoch an
    uninterrupted run judges best, the only best file. A best the checkpoint the resume starts from does not name
    (left by a kill -9 between a best's write and last.ckpt's, or between last.ckpt's and the old best's removal)
    is not kept: the resumed run trains those epochs again."""
    fit(tmp_path, "--early_stopping.patience", "20", "--trainer.max_epochs", "50", "--checkpoint.every_n_epochs", "10")
    run = run_dir(tmp_path)
    truth = plain_loop(epochs=300, patience=20)
    assert bests(run) == [f"best-epoch={truth.best_epoch}.ckpt"]  # judged by epoch 50 already
    stray = run / "checkpoints" / "best-epoch=47.ckpt"
    stray.write_bytes((run / "checkpoints" / "last.ckpt").read_bytes())  # saved after last.ckpt: newer
    replaced = run / "checkpoints" / "best-epoch=29.ckpt"  # replaced, not yet removed when last.ckpt was saved
    replaced.write_bytes(stray.read_bytes())
    os.utime(replaced, (0, 0))
    fit(tmp_path, "--ckpt_path", "last", "--trainer.max_epochs", "300")
    assert bests(run) == [f"best-epoch={truth.best_epoch}.ckpt"]
    best = run / "checkpoints" / f"best-epoch={truth.best_epoch}.ckpt"
    assert holds(best, plain_loop(epochs=truth.best_epoch + 1).state)
    assert_same_as_plain(run, truth)


@pytest.mark.slow
def test_early_stopping_killed_and_resumed_keeps_its_best(tmp_path):
    """A slow descent (lr 0.001: loss/val improves at nearly every epoch for 400 epochs), killed -9 between two
    checkpoint epochs, resumed: it stops where an uninterrupted run does, with that run's best."""
    args = ["--model.lr", "0.001", "--early_stopping.patience", "20", "--trainer.max_epochs", "600",
            "--checkpoint.every_n_epochs", "50"]
    progress = tmp_path / "progress.txt"
    proc = start("fit", *args, "--trainer.callbacks+=fault_probe.Progress", "--trainer.callbacks.path", str(progress),
                 cwd=tmp_path)
    kill_after(proc, progress, 330)
    code, _, err = cli("fit", "--ckpt_path", "last", *FAST, cwd=tmp_path)
    assert code == 0, err
    run = run_dir(tmp_path)
    assert resumed_from(run) == 300
    truth = plain_loop(epochs=600, lr=0.001, patience=20)
    assert truth.stopped_epoch is not None and truth.best_epoch > 330
    assert bests(run) == [f"best-epoch={truth.best_epoch}.ckpt"]
    assert holds(run / "checkpoints" / f"best-epoch={truth.best_epoch}.ckpt",
                 plain_loop(epochs=truth.best_epoch + 1, lr=0.001).state)
    assert_same_as_plain(run, truth)


def test_early_stopping_writes_one_best_per_checkpoint_epoch_not_one_per_improvement(tmp_path, monkeypatch):
    """The reference improves at nearly every epoch up to 43; with a checkpoint every 10 epochs, a best is
    written only with last.ckpt: at 9, 19, 29, 39 and the stop, each the newest improvement then."""
    from linlight import checkpoints

    written = []
    real = checkpoints.save_checkpoint

    def counting(checkpoint, path):
        written.append((Path(path).name, next_epoch(checkpoint)))
        real(checkpoint, path)

    monkeypatch.setattr(checkpoints, "save_checkpoint", counting)
    fit(tmp_path, "--early_stopping.patience", "20", "--checkpoint.every_n_epochs", "10")
    truth = plain_loop(epochs=300, patience=20)
    losses = truth.test_losses
    improved = [e for e in range(truth.best_epoch + 1) if losses[e] < min(losses[:e], default=float("inf"))]
    assert len(improved) > 30  # nearly every epoch: what a write per improvement would have cost
    newest = [max(i for i in improved if i < end) for end in (10, 20, 30, 40)] + [truth.best_epoch]
    bests = [(name, held) for name, held in written if name.startswith("best")]
    assert bests == [(f"best-epoch={e}.ckpt", e + 1) for e in newest]
    lasts = [held for name, held in written if name == "last.ckpt"]
    assert lasts == [10, 20, 30, 40, 50, 60, truth.stopped_epoch + 1]
