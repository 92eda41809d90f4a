"""Faults a real run meets (issue 13): a second writer, changed settings, a full disk, a kill mid-save,
a corrupt last.ckpt, a dead DDP peer, untrusted dependency releases, a stampede of new runs.

Each fault ends with one ``linlight: error:`` line (no traceback) and a non-zero exit, leaves checkpoints
that load with ``weights_only=True``, and a run that continues to the same result as an uninterrupted one,
checked against the plain PyTorch loop (tests/plain.py) or an uninterrupted run, with ``==``.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import linlight, load_ckpt, run_dir, scalars
from plain import plain_loop

from linlight.cli import main  # imported here: Lightning's log handler then writes to pytest's session capture

FAST = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.accelerator", "cpu"]
LONG = ["--trainer.max_epochs", "100000"]
PROBE_ENV = {"PYTHONPATH": os.path.dirname(__file__)}


def start(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "linlight.cli", *args, *FAST], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def error_line(stderr: str, returncode: int, *words: str) -> str:
    """The one-line error: the last stderr line, no traceback anywhere, a non-zero exit."""
    assert returncode != 0, stderr
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("linlight: error:"), stderr
    for w in words:
        assert w in last, last
    return last


def in_process(*args: str, capsys) -> tuple[int, str]:
    """Run `linlight ARGS` in this process (so a monkeypatch reaches it); the exit code and stderr."""
    capsys.readouterr()
    try:
        main([*args, *FAST])
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def all_checkpoints_load(folder: Path) -> list[Path]:
    found = sorted(folder.glob("*.ckpt"))
    for path in found:
        load_ckpt(path)
    return found


def temps(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def assert_same_as_plain(run: Path, epochs: int, **plain) -> None:
    """Curves (every epoch once) and final weights equal the plain loop's, bit for bit."""
    truth = plain_loop(epochs=epochs, **plain)
    logged = scalars(run)
    assert [s for s, _ in logged["loss/train"]] == list(range(epochs))
    assert [v for _, v in logged["loss/train"]] == truth.train_losses
    assert [v for _, v in logged["loss/val"]] == truth.test_losses
    state = load_ckpt(run / "checkpoints" / "last.ckpt")["state_dict"]
    assert torch.equal(state["model.linear_layer.weight"], truth.state["weight"])
    assert torch.equal(state["model.linear_layer.bias"], truth.state["bias"])


def epochs_in(path: Path) -> int:
    return load_ckpt(path)["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"]


def resume_command_in(line: str) -> list[str]:
    """The arguments (from `fit` on) of the command an error line says to run, as printed with full paths."""
    words = shlex.split(re.search(r"to use it, run (.*)$", line).group(1))
    assert words[0] == f"{sys.prefix}/bin/linlight", words  # runs as printed, in any shell
    return words[1:]


# 1. one writer per run ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_second_writer_is_refused_and_the_run_continues_exactly(tmp_path):
    run = run_dir(tmp_path)
    first = start("fit", *LONG, "--checkpoint.every_n_epochs", "5", cwd=tmp_path)
    wait_for(run / "checkpoints" / "last.ckpt", first)
    lock_note = (run / ".lock").read_text()
    assert f"pid {first.pid} on host" in lock_note

    second = linlight("fit", "--ckpt_path", "last", "--trainer.max_epochs", "300", *FAST, cwd=tmp_path, check=False)
    last = error_line(second.stderr, second.returncode, f"run {run.resolve()}", f"pid {first.pid}",
                      f"continue with: {sys.prefix}/bin/linlight fit --ckpt_path "
                      f"{run.resolve() / 'checkpoints' / 'last.ckpt'}")
    assert "being trained by another process" in last
    assert first.poll() is None, "the first writer was disturbed"
    # the second process wrote nothing into the run: one segment, one event file, one config
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    assert [p.name for p in run.glob("config*.yaml")] == ["config.yaml"]

    first.send_signal(signal.SIGTERM)  # stop the first writer cleanly, then continue its run
    _, err = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM, err
    stopped = epochs_in(run / "checkpoints" / "last.ckpt")
    linlight("fit", "--ckpt_path", "last", "--trainer.max_epochs", str(stopped + 10), *FAST, cwd=tmp_path)
    assert sorted(os.listdir(tmp_path / "lightning_logs")) == ["version_0"]
    assert_same_as_plain(run, stopped + 10)
    all_checkpoints_load(run / "checkpoints")


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP],
                         ids=["ENOLCK", "ENOSYS", "EOPNOTSUPP"])
def test_lock_on_a_filesystem_without_locks(tmp_path, monkeypatch, capsys, code):
    """flock fails outright: `linlight fit` stops with one line before training (no run folder left); with
    LINLIGHT_RUN_LOCK=off it trains, with a warning, and holds no lock."""
    from linlight import locks

    def no_locks(fd, op):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(locks.fcntl, "flock", no_locks)
    monkeypatch.delenv(locks.LOCK_ENV, raising=False)
    root = ["--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "3"]
    status, err = in_process("fit", *root, capsys=capsys)
    error_line(err, status, f"the filesystem does not support file locks ({os.strerror(code)})",
               "LINLIGHT_RUN_LOCK=off")
    assert not (tmp_path / "lightning_logs").exists()
    monkeypatch.setenv(locks.LOCK_ENV, "off")
    status, err = in_process("fit", *root, capsys=capsys)
    assert status == 0, err
    assert "linlight: warning: training" in err and "without a lock" in err
    assert not locks.holds_lock(run_dir(tmp_path))
    assert_same_as_plain(run_dir(tmp_path), 3)


def test_lock_is_per_process_and_released(tmp_path):
    from linlight import locks
    from linlight.errors import RunLocked

    lock = locks.lock_run(tmp_path)
    assert locks.holds_lock(tmp_path)
    holder = subprocess.run([sys.executable, "-c", "from linlight.locks import lock_run; import sys; "
                             f"lock_run({str(tmp_path)!r})"], capture_output=True, text=True, env=os.environ)
    assert holder.returncode != 0 and RunLocked.__name__ in holder.stderr and f"pid {os.getpid()}" in holder.stderr
    assert locks.lock_run(tmp_path).fd is not None  # the same process again (a script's second fit): allowed
    lock.release()
    locks.lock_run(tmp_path).release()


# 2. a resume that changes settings keeps the record, and is honoured -------------------------------------

def test_resume_with_another_lr_is_honoured_and_every_segment_recorded(tmp_path, capsys):
    run = run_dir(tmp_path)
    linlight("fit", "--trainer.max_epochs", "30", "--checkpoint.every_n_epochs", "10", *FAST, cwd=tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    ckpt = load_ckpt(last)
    assert ckpt["linlight_versions"]["torch"] == str(torch.__version__)
    ckpt["linlight_versions"] = {**ckpt["linlight_versions"], "torch": "2.4.0"}  # as if saved elsewhere
    torch.save(ckpt, last)

    resumed = linlight("fit", "--ckpt_path", "last", "--model.lr", "0.05", "--trainer.max_epochs", "60",
                       "--checkpoint.every_n_epochs", "15", *FAST, cwd=tmp_path)
    warning = [line for line in resumed.stderr.splitlines() if line.startswith("linlight: warning:")]
    assert len(warning) == 1 and f"saved with torch 2.4.0 (now torch {torch.__version__})" in warning[0]

    assert_same_as_plain(run, 60, lr_changes={30: 0.05})  # the new lr from epoch 30 on, as in a plain loop
    # another cadence: the same last.ckpt is continued, not a last-v1.ckpt beside a stale one
    assert "last-v1.ckpt" not in [p.name for p in all_checkpoints_load(run / "checkpoints")]
    assert load_ckpt(last)["hyper_parameters"]["lr"] == 0.05
    first, second = (yaml.safe_load((run / name).read_text()) for name in ("config.yaml", "config.resume-1.yaml"))
    assert first["model"]["lr"] == 0.01 and second["model"]["lr"] == 0.05
    from linlight.records import config_changes, latest_config, read_segments

    assert config_changes(run) == ["resume 1 (from epoch 30): checkpoint.every_n_epochs 10 -> 15, "
                                   "model.lr 0.01 -> 0.05, trainer.max_epochs 30 -> 60"]
    assert latest_config(run) == run / "config.resume-1.yaml"
    segments = read_segments(run)
    assert [(s["config"], s["start_epoch"]) for s in segments] == [("config.yaml", 0), ("config.resume-1.yaml", 30)]
    assert all(s["versions"]["lightning"] and s["versions"]["linlight"] for s in segments)

    code, err = in_process("fit", "--trainer.default_root_dir", str(tmp_path), "--ckpt_path", "last",
                           "--model.arch", "model0", "--trainer.max_epochs", "70", capsys=capsys)
    error_line(err, code, "holds weights of model.arch='v2', not 'model0'")
    assert not (run / "config.resume-2.yaml").exists()


# 3. a full disk, a read-only folder ---------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 300 KB tmpfs at tmp_path/disk (root only), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root, or a container allowing mounts): {mounted.stderr}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-R", "-l", str(disk)], capture_output=True)


@pytest.mark.slow
def test_full_disk_stops_with_the_path_and_resumes_exactly(small_disk):
    root = ["--trainer.default_root_dir", str(small_disk)]
    run = run_dir(small_disk)
    proc = start("fit", *LONG, *root, "--checkpoint.every_n_epochs", "10", cwd=small_disk)
    _, err = proc.communicate(timeout=300)  # the events fill 300 KB after a few hundred epochs
    last = error_line(err, proc.returncode, "No space left on device", str(run.resolve()),
                      "is intact: free space, then continue with: "
                      f"{sys.prefix}/bin/linlight fit --ckpt_path {run.resolve() / 'checkpoints' / 'last.ckpt'}")
    assert "Exception in thread" not in err  # TensorBoard's writer thread does not print the error again
    saved = epochs_in(run / "checkpoints" / "last.ckpt")
    assert f"(after {saved} epochs)" in last
    all_checkpoints_load(run / "checkpoints")
    assert temps(run / "checkpoints") == []

    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)  # space freed
    linlight("fit", "--ckpt_path", "last", *root, "--trainer.max_epochs", str(saved + 20),
             "--checkpoint.every_n_epochs", "10", *FAST, cwd=small_disk)
    assert_same_as_plain(run, saved + 20)
    all_checkpoints_load(run / "checkpoints")


@pytest.mark.slow
def test_checkpoint_folder_made_read_only_mid_run(small_disk):
    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    root = ["--trainer.default_root_dir", str(small_disk)]
    run = run_dir(small_disk)
    ckpts = run / "checkpoints"
    proc = start("fit", *LONG, *root, "--checkpoint.every_n_epochs", "5", cwd=small_disk)
    wait_for(ckpts / "last.ckpt", proc)
    subprocess.run(["mount", "--bind", str(ckpts), str(ckpts)], check=True)
    for _ in range(200):  # a read-only remount is refused (EBUSY) while a save has a file open for writing
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(ckpts)], capture_output=True).returncode == 0:
            break
        time.sleep(0.005)
    else:
        pytest.fail("could not make the checkpoint folder read-only")
    try:
        _, err = proc.communicate(timeout=120)
        last = error_line(err, proc.returncode, "cannot write checkpoint", "Read-only file system",
                          f"make {ckpts.resolve()} writable, then continue with: "
                          f"{sys.prefix}/bin/linlight fit --ckpt_path {ckpts.resolve() / 'last.ckpt'}")
        saved = epochs_in(ckpts / "last.ckpt")
        assert f"(after {saved} epochs)" in last
    finally:
        subprocess.run(["umount", str(ckpts)], check=True)
    all_checkpoints_load(ckpts)
    linlight("fit", "--ckpt_path", "last", *root, "--trainer.max_epochs", str(saved + 10),
             "--checkpoint.every_n_epochs", "5", *FAST, cwd=small_disk)
    assert_same_as_plain(run, saved + 10)


def test_injected_enospc_in_the_checkpoint_write(tmp_path, monkeypatch, capsys):
    """The write of the second last.ckpt fails halfway: the error names it, the first one stays intact."""
    real_save = torch.save
    writes = []

    def save(obj, f, *args, **kwargs):
        if ".last.ckpt." in str(getattr(f, "name", "")):
            writes.append(f.name)
            if len(writes) == 2:
                f.write(b"PK\x03\x04 half a checkpoint")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    root = ["--trainer.default_root_dir", str(tmp_path)]
    code, err = in_process("fit", *root, "--trainer.max_epochs", "50", "--checkpoint.every_n_epochs", "10",
                           capsys=capsys)
    ckpts = run_dir(tmp_path) / "checkpoints"
    last = error_line(err, code, f"cannot write checkpoint {ckpts / 'last.ckpt'}: No space left on device; "
                      "the previous last.ckpt (after 10 epochs) is intact: free space, then continue with: "
                      f"{sys.prefix}/bin/linlight fit --ckpt_path {ckpts / 'last.ckpt'}")
    assert last.count("linlight: error:") == 1
    assert epochs_in(ckpts / "last.ckpt") == 10
    all_checkpoints_load(ckpts)
    assert temps(ckpts) == [], "the failed write's temporary file is removed"

    monkeypatch.setattr(torch, "save", real_save)  # space is free again
    code, err = in_process("fit", "--ckpt_path", "last", *root, "--trainer.max_epochs", "50",
                           "--checkpoint.every_n_epochs", "10", capsys=capsys)
    assert code == 0, err
    assert_same_as_plain(run_dir(tmp_path), 50)


def test_injected_enospc_in_the_event_writer(tmp_path, monkeypatch, capfd):
    """TensorBoard's writer thread fails: the next log call stops the run with the run folder named."""
    from tensorboard.summary.writer import record_writer

    real_write, calls = record_writer.RecordWriter.write, []

    def write(self, data):
        calls.append(1)
        if len(calls) > 40:  # well after the first checkpoint (epoch 5: two events an epoch, one per stage)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", write)
    root = ["--trainer.default_root_dir", str(tmp_path)]
    code, err = in_process("fit", *root, "--trainer.max_epochs", "60", "--checkpoint.every_n_epochs", "5",
                           capsys=capfd)
    run = run_dir(tmp_path)
    last = error_line(err, code, f"cannot write TensorBoard logs in {run}: No space left on device; the previous "
                      "last.ckpt (after ")
    assert "Exception in thread" not in err
    saved = epochs_in(run / "checkpoints" / "last.ckpt")
    assert f"(after {saved} epochs)" in last and saved >= 5
    monkeypatch.setattr(record_writer.RecordWriter, "write", real_write)
    code, err = in_process("fit", "--ckpt_path", "last", *root, "--trainer.max_epochs", "60",
                           "--checkpoint.every_n_epochs", "5", capsys=capfd)
    assert code == 0, err
    assert_same_as_plain(run, 60)


# 4. kill -9 during a checkpoint write ---------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("aim", ["write", "replace"], ids=["mid-write", "before-rename"])
def test_kill_9_during_the_checkpoint_write(tmp_path, aim):
    marker = tmp_path / "held"
    run = run_dir(tmp_path)
    ckpts = run / "checkpoints"
    args = ["--trainer.max_epochs", "60", "--checkpoint.every_n_epochs", "10"]
    probe = ["--trainer.callbacks+=fault_probe.HoldSave", f"--trainer.callbacks.aim={aim}",
             f"--trainer.callbacks.marker={marker}", "--trainer.callbacks.nth=2"]
    proc = start("fit", *args, *probe, cwd=tmp_path, env=PROBE_ENV)
    wait_for(marker, proc)  # the second last.ckpt is being written: kill the process right there
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert epochs_in(ckpts / "last.ckpt") == 10  # the previous last.ckpt, whole
    [temp] = temps(ckpts)
    assert temp.name.startswith(".last.ckpt.")
    assert all_checkpoints_load(ckpts)
    from linlight.runs import find_checkpoint

    assert find_checkpoint(tmp_path, "last") == ckpts / "last.ckpt"
    assert temps(ckpts) == [temp]

    # the run's config names the probe; the resume drops it (a resumed run brings back its callbacks)
    linlight("fit", "--ckpt_path", "last", *args, "--trainer.callbacks", "null", *FAST, cwd=tmp_path)
    assert temps(ckpts) == [], "the killed save's temporary file is cleaned up"
    assert_same_as_plain(run, 60)


def test_stale_temporary_files_are_removed_only_when_safe(tmp_path):
    from linlight.atomic import remove_stale_temps, temp_path

    mine = temp_path(tmp_path / "last.ckpt")
    dead = tmp_path / f".last.ckpt.{mine.name.split('.')[3]}.999999999.0123abcd.tmp"
    elsewhere = tmp_path / f".last.ckpt.otherhost.{os.getpid()}.0123abcd.tmp"
    for p in (mine, dead, elsewhere):
        p.write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == [dead]  # another host's writer may be alive; this one's is
    assert remove_stale_temps(tmp_path, any_writer=True) == [elsewhere]  # the run is locked: nobody else writes
    assert mine.exists()


# 5. a corrupt newest last.ckpt ------------------------------------------------------------------------

def test_corrupt_last_names_the_newest_good_checkpoint_and_how_to_use_it(tmp_path, capsys):
    run = run_dir(tmp_path)
    ckpts = run / "checkpoints"
    root = ["--trainer.default_root_dir", str(tmp_path)]
    assert in_process("fit", *root, "--trainer.max_epochs", "30", "--checkpoint.every_n_epochs", "10",
                      capsys=capsys)[0] == 0
    good = (ckpts / "last.ckpt").read_bytes()
    (ckpts / "last.ckpt").write_bytes(good[: len(good) // 2])
    code, err = in_process("fit", "--trainer.default_root_dir", str(tmp_path), "--ckpt_path", "last",
                           "--trainer.max_epochs", "50", capsys=capsys)
    best = ckpts / "best-epoch=29.ckpt"
    last = error_line(err, code, f"{ckpts / 'last.ckpt'} is not a readable PyTorch checkpoint (truncated or corrupt)",
                      f"the newest readable checkpoint is {best} (of the same run, after 30 "
                      f"epochs): to use it, run {sys.prefix}/bin/linlight fit --ckpt_path {best}")
    assert [p.name for p in run.glob("config*.yaml")] == ["config.yaml"]  # it did not start anything
    code, err = in_process(*resume_command_in(last), "--trainer.max_epochs", "50", capsys=capsys)  # as printed
    assert code == 0, err
    assert_same_as_plain(run, 50)


def test_corrupt_checkpoints_point_to_an_older_run_or_to_nothing(tmp_path):
    from linlight.errors import CheckpointError
    from linlight.runs import find_checkpoint

    older, newer = (tmp_path / "lightning_logs" / f"version_{v}" / "checkpoints" for v in (0, 1))
    for d in (older, newer):
        d.mkdir(parents=True)
    (newer / "last.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"is empty \(0 bytes\); no other readable checkpoint"):
        find_checkpoint(tmp_path, "last")
    torch.save({"state_dict": {"model.linear_layer.weight": torch.zeros(1, 1), "model.linear_layer.bias":
                torch.zeros(1)}, "pytorch-lightning_version": "2.6.6", "optimizer_states": [],
                "loops": {"fit_loop": {"epoch_progress": {"current": {"processed": 7}}}}}, older / "last.ckpt")
    with pytest.raises(CheckpointError, match=r"is empty.*readable checkpoint is .*version_0.*last.ckpt \(of an "
                       r"older run, after 7 epochs\): to use it, run \S+/bin/linlight test --ckpt_path \S+/version_0/"):
        find_checkpoint(tmp_path, "last", "test")


# 6. a dead or hung DDP peer ---------------------------------------------------------------------------

DDP = ["--trainer.devices", "2", "--trainer.strategy", "ddp"]


def ranks(proc: subprocess.Popen) -> tuple[int, int]:
    """(rank 0, rank 1): Lightning's launcher starts rank 1 as a child of the process the user started."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        for pid in children:
            try:
                if b"linlight.cli" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return proc.pid, int(pid)
            except FileNotFoundError:
                continue
        time.sleep(0.05)
    raise AssertionError("rank 1 did not start")


def state_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def ends(pid: int, within: float = 10) -> bool:
    """The process is gone (or a zombie) within ``within`` seconds: it may still be exiting as its pipes close."""
    deadline = time.monotonic() + within
    while state_of(pid) not in ("gone", "Z"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_a_killed_ddp_peer_ends_the_run_with_an_error_and_it_resumes_exactly(tmp_path):
    """Kill rank 1, then (another run) rank 0: the survivor reports in one line; the run resumes bit for bit.

    Rank 1 dies while rank 0 is busy outside any collective for 6 s: Lightning's child observer would SIGKILL
    rank 0 within 5 s, before it could say anything (linlight.ddp.ChildWatch waits for it).
    """
    args = [*DDP, "--trainer.max_epochs", "120", "--checkpoint.every_n_epochs", "10"]
    reference = tmp_path / "reference"
    reference.mkdir()
    linlight("fit", *args, *FAST, cwd=reference)
    for victim in (1, 0):
        work = tmp_path / f"kill_rank{victim}"
        work.mkdir()
        marker = work / "busy"
        busy = ["--trainer.callbacks+=fault_probe.Busy", "--trainer.callbacks.epoch=20",
                "--trainer.callbacks.seconds=6", f"--trainer.callbacks.marker={marker}"]
        proc = start("fit", *args, *(busy if victim == 1 else []), cwd=work, env=PROBE_ENV)
        rank = ranks(proc)
        wait_for(marker if victim == 1 else run_dir(work) / "checkpoints" / "last.ckpt", proc)
        os.kill(rank[victim], signal.SIGKILL)
        began = time.monotonic()
        _, err = proc.communicate(timeout=120)  # returns once every process holding stderr has exited
        assert time.monotonic() - began < 60, "the surviving process hung"
        assert proc.returncode == (-signal.SIGKILL if victim == 0 else 1), err
        last = error_line(err, 1, "lost contact with another DDP process", "Connection", "last.ckpt (after",
                          f"is intact: continue with: {sys.prefix}/bin/linlight fit --ckpt_path")
        all_checkpoints_load(run_dir(work) / "checkpoints")
        if victim == 1:
            assert "(after 20 epochs)" in last
            continue  # the resume after losing rank 0, the one that writes, is the one to check
        assert ends(rank[1])  # the orphaned rank 1 ended too
        linlight("fit", "--ckpt_path", "last", *args, *FAST, cwd=work)
        got, want = scalars(run_dir(work)), scalars(run_dir(reference))
        for tag in ("loss/train", "loss/val", "params/weight"):
            assert got[tag] == want[tag], f"{tag} after killing rank {victim}"
        a = load_ckpt(run_dir(work) / "checkpoints" / "last.ckpt")["state_dict"]
        b = load_ckpt(run_dir(reference) / "checkpoints" / "last.ckpt")["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in b)


@pytest.mark.slow
def test_a_hung_ddp_peer_times_out_and_is_not_left_behind(tmp_path):
    # the timeout also bounds the start-up rendezvous: 5 s failed there on a loaded machine
    timeout = ["--trainer.strategy", "linlight.ddp.DDPStrategy", "--trainer.strategy.timeout", "0:00:15"]
    proc = start("fit", "--trainer.devices", "2", *timeout, *LONG, "--checkpoint.every_n_epochs", "10", cwd=tmp_path)
    _, rank1 = ranks(proc)
    wait_for(run_dir(tmp_path) / "checkpoints" / "last.ckpt", proc)
    os.kill(rank1, signal.SIGSTOP)  # alive, holding its sockets open, answering nothing
    began = time.monotonic()
    try:
        _, err = proc.communicate(timeout=90)
    finally:
        if state_of(rank1) == "T":
            os.kill(rank1, signal.SIGKILL)
    assert time.monotonic() - began < 60
    error_line(err, proc.returncode, "lost contact with another DDP process", "Timed out waiting 15000ms",
               f"is intact: continue with: {sys.prefix}/bin/linlight fit --ckpt_path")
    assert ends(rank1), "the stopped rank 1 was left behind"


def test_ddp_names_build_linlight_ddp_with_a_60_s_timeout(tmp_path, monkeypatch):
    from datetime import timedelta

    from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry

    from linlight import ddp
    from linlight.cli import LinlightCLI

    # Lightning's own registry, as before linlight touched it. Not monkeypatch.setitem: it saves the old value
    # with the registry's get(), which Lightning overrides to build a strategy, and would restore that.
    saved = dict(StrategyRegistry.items())
    try:
        for name, entry in saved.items():
            if entry["strategy"] is ddp.DDPStrategy:
                StrategyRegistry[name] = {**entry, "strategy": DDPStrategy}
        monkeypatch.chdir(tmp_path)
        for strategy in ("ddp", "auto", "ddp_find_unused_parameters_true"):
            cli = LinlightCLI(args=["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy",
                                    strategy, *FAST], run=False)
            assert isinstance(cli.trainer.strategy, ddp.DDPStrategy), strategy
            assert cli.trainer.strategy._timeout == timedelta(seconds=60)
        cli = LinlightCLI(args=["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy",
                                "linlight.ddp.DDPStrategy", "--trainer.strategy.timeout", "0:05:00", *FAST], run=False)
        assert cli.trainer.strategy._timeout == timedelta(minutes=5)
    finally:
        StrategyRegistry.clear()
        StrategyRegistry.update(saved)


# 7. dependencies you can trust -----------------------------------------------------------------------------

def test_dependencies_exclude_the_malicious_lightning_releases_and_bound_jsonargparse():
    from packaging.requirements import Requirement
    from test_versions import pyproject

    deps = {r.name: r for r in map(Requirement, pyproject()["project"]["dependencies"])}
    lightning = deps["lightning"].specifier
    assert "2.6.2" not in lightning and "2.6.3" not in lightning  # GHSA-w37p-236h-pfx3
    assert "2.6.5" not in lightning and "2.6.6" in lightning  # GHSA-qqmf-gpg7-g8gw, fixed in 2.6.6
    assert "3.0.0" not in lightning
    jsonargparse = deps["jsonargparse"]
    assert "signatures" in jsonargparse.extras
    assert "4.53.0" in jsonargparse.specifier and "5.0.0" not in jsonargparse.specifier
    assert "2.21.0" in deps["tensorboard"].specifier and "2.20.0" not in deps["tensorboard"].specifier


# 8. the atomic run-folder claim, under a stampede ---------------------------------------------------------

def _claim(root: str, gate, results) -> None:
    from linlight.runs import claim_version

    gate.wait()
    results.put(claim_version(root))


def test_run_folder_claims_at_the_same_moment_are_all_distinct(tmp_path):
    ctx = multiprocessing.get_context("fork")  # children start in milliseconds, all waiting at one gate
    n = 24
    for round_ in range(3):
        root = tmp_path / f"round{round_}"
        gate, results = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_claim, args=(str(root), gate, results)) for _ in range(n)]
        for p in procs:
            p.start()
        claimed = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
        assert sorted(claimed) == list(range(n)), f"two runs got the same folder: {sorted(claimed)}"
