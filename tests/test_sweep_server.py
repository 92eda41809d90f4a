"""`linlight sweep` on a real database server (PostgreSQL, started by the tests: tests/postgres.py): processes that
start together on a new database, a server that stops and comes back, a server that never answers, the password
never printed, and the README's storage URL and driver."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

optuna = pytest.importorskip("optuna")
import postgres  # noqa: E402
from conftest import REPO, load_ckpt, scalars  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from plain import plain_loop  # noqa: E402
from test_sweep import LR, write_space  # noqa: E402

from linlight.sweep import main  # noqa: E402

ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
pytestmark = pytest.mark.xdist_group("postgres")  # one server, its tests one after another (one stops it)


@pytest.fixture(scope="session")
def server():
    server = postgres.start_server()
    yield server
    server.close()


@pytest.fixture
def pg(server):
    """The server, running (a test may have stopped it), and a fresh database: (server, database)."""
    if not server.running():
        server.start()
    return server, server.database()


def readme_storage() -> str:
    """The scheme of the storage URL the README's Sweeps section shows, e.g. postgresql+psycopg."""
    text = (REPO / "README.md").read_text()
    return re.search(r"--storage (\w[\w+]*)://", text).group(1)


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "linlight", "sweep", *args]


def started_together(commands: list[list[str]], folder: Path, envs: list[dict]) -> list[subprocess.Popen]:
    """Start ``linlight sweep`` processes that import everything, then wait for one signal to run: they open the
    storage in the same few milliseconds, as a job array's tasks do."""
    go = folder / "go"
    wait = ("import os, sys, time; import linlight.sweep.command; from linlight.__main__ import main\n"
            "open(os.environ['READY'], 'w').close()\n"
            f"while not os.path.exists({str(go)!r}): time.sleep(0.001)\nmain()")
    ready = [folder / f"ready{i}" for i in range(len(commands))]
    procs = [subprocess.Popen([sys.executable, "-c", wait, *command[3:]], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, **env, "READY": str(flag)})
             for command, flag, env in zip(commands, ready, envs)]
    wait_for(lambda: all(flag.exists() for flag in ready), 300, "the processes' imports")
    go.touch()
    return procs


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def study_of(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


@pytest.mark.slow
def test_processes_started_together_on_a_new_database_share_one_study_exactly(pg, tmp_path):
    """Three commands (one with 2 workers, one given its password by PGPASSWORD instead of the URL) started at one
    moment on an empty database, each with its own --root: the tables and the study are made once, exactly 6
    trials run between them, none twice, every command prints the whole study, and the best trial's printed
    command, run in another folder, reproduces it bit for bit."""
    server, database = pg
    scheme = readme_storage()
    url, shown = server.url(database, scheme), server.shown(database, scheme)
    space = write_space(tmp_path / "together.yaml", {"model.lr": LR}, {"trainer.max_epochs": 40})
    roots = [tmp_path / f"machine{i}" for i in range(3)]
    commands = [sweep_command("--space", str(space), "--trials", "6", "--storage", url, "--root", str(root))
                for root in roots]
    commands[0] += ["--workers", "2"]
    commands[2][commands[2].index(url)] = url.replace(f":{server.password}@", "@")
    envs = [{}, {}, {"PGPASSWORD": server.password}]
    procs = started_together(commands, tmp_path, envs)
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert server.password not in out + err
        assert re.search(r"^study 'together' in [^ ]+: 6 trials", out, re.MULTILINE)  # each shows the whole study
    assert f"study 'together' in {shown}: 6 trials" in outs[0][0]
    assert f"study 'together' in {shown.replace(':***@', '@')}: 6 trials" in outs[2][0]

    trials = study_of(url, "together").trials
    assert sorted(t.number for t in trials) == list(range(6)) and all(t.state in ENDED for t in trials)
    assert len({t.params["model.lr"] for t in trials}) == 6  # no settings run twice
    reported: dict[int, Path] = {}  # each trial's line comes from the command that ran it, in its own root
    for root, (out, _) in zip(roots, outs):
        for number in re.findall(r"^trial (\d+): ", out, re.MULTILINE):
            assert int(number) not in reported
            reported[int(number)] = root
    assert sorted(reported) == list(range(6))
    for root, (out, _) in zip(roots, outs):  # a command waits only for other commands' trials, and says which
        for line in re.findall(r"^linlight sweep: waiting for .*$", out, re.MULTILINE):
            waited = {int(n) for n in re.findall(r"(\d+) \(on ", line)}
            assert waited and all(reported[n] != root for n in waited), line
    for number, root in reported.items():
        run = Path(trials[number].user_attrs["run_dir"])
        assert run.is_dir() and run.parent == root / "lightning_logs"

    best = study_of(url, "together").best_trial
    truth = plain_loop(lr=best.params["model.lr"], epochs=40)
    assert best.value == truth.test_losses[-1]
    out = next(out for out, _ in outs if "reproduce: " in out)
    command = next(line for line in out.splitlines() if line.startswith("reproduce: ")).removeprefix("reproduce: ")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(shlex.split(command), cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rerun = next(Path(line.split()[-1]) for line in proc.stdout.splitlines() if line.strip().startswith("run "))
    assert scalars(rerun)["loss/val"] == scalars(Path(best.user_attrs["run_dir"]))["loss/val"]
    again, ckpt = load_ckpt(rerun / "checkpoints" / "last.ckpt"), load_ckpt(Path(best.user_attrs["checkpoint"]))
    assert all(torch.equal(again["state_dict"][k], v) for k, v in ckpt["state_dict"].items())


@pytest.mark.slow
def test_a_server_restart_is_ridden_out_and_a_stopped_server_ends_each_process_in_one_line(pg, tmp_path):
    """A restart (an outage shorter than --heartbeat) passes; a server that stays down ends every process within
    the bound with one line naming the storage and the cause; no COMPLETE trial is lost; rerunning finishes."""
    server, database = pg
    url, shown = server.url(database), server.shown(database)
    space = write_space(tmp_path / "outage.yaml", {"model.lr": LR}, {"trainer.max_epochs": 300})
    heartbeat = 3
    command = sweep_command("--space", str(space), "--trials", "40", "--storage", url, "--heartbeat", str(heartbeat))
    outs = {name: tmp_path / f"{name}.out" for name in ("a", "b")}
    errs = {name: tmp_path / f"{name}.err" for name in ("a", "b")}
    procs = {name: subprocess.Popen([*command, "--root", str(tmp_path / name), *extra],
                                    stdout=outs[name].open("w"), stderr=errs[name].open("w"))
             for name, extra in (("a", ["--workers", "2"]), ("b", []))}

    def ended(name: str) -> int:
        return sum(line.startswith("trial ") for line in outs[name].read_text().splitlines())

    wait_for(lambda: ended("a") >= 2 and ended("b") >= 2, 300, "two trials of each command")
    server.stop()  # as `pg_ctl restart` does: fast shutdown, then start
    server.start()
    before = {name: ended(name) for name in outs}
    wait_for(lambda: all(ended(name) >= before[name] + 2 for name in outs), 300, "two more after the restart")

    server.stop()
    stopped = time.monotonic()
    for name, proc in procs.items():
        proc.wait(timeout=120)
        took = time.monotonic() - stopped
        out, err = outs[name].read_text(), errs[name].read_text()
        lines = err.strip().splitlines()
        assert proc.returncode == 1, err
        assert "Traceback" not in err and server.password not in out + err
        assert lines[-1].startswith(f"linlight: error: lost the storage {shown} for more than {heartbeat} s: "), err
        assert "connection refused" in lines[-1].lower() or "server closed the connection" in lines[-1], lines[-1]
        assert sum(line.startswith("linlight: error:") for line in lines) == 1, err
        assert f"the storage {shown} is back after" in err  # the restart was waited for
        # the bound: the heartbeat thread's wait, then the window, then a connect timeout, with a margin for load
        assert took < 2 * heartbeat + 10 + 60, took

    server.start()
    reported = {int(line.split(":")[0].split()[1]) for out in outs.values() for line in out.read_text().splitlines()
                if line.startswith("trial ") and ": COMPLETE" in line}
    trials = study_of(url, "outage").trials
    assert reported and all(trials[n].state == TrialState.COMPLETE for n in reported)  # nothing completed lost
    left = [t for t in trials if t.state == TrialState.RUNNING]
    rerun = subprocess.run([*command, "--trials", str(len(trials) + 2), "--root", str(tmp_path / "a")],
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    if left:  # the header says the rerun will wait for them
        assert f"trial{'s' * (len(left) > 1)} {', '.join(str(t.number) for t in left)} RUNNING" in rerun.stdout
    total = len(trials) + 2
    trials = study_of(url, "outage").trials
    assert len(trials) == total and all(t.state in ENDED for t in trials)
    assert all(trials[t.number].state == TrialState.FAIL for t in left)  # the interrupted trials, marked FAIL


@pytest.mark.parametrize("query", ["", "?connect_timeout=2"])
def test_a_server_that_never_answers_is_an_error_within_the_connect_timeout(query, tmp_path, capsys):
    """A port that accepts connections and never says a word: one line, in seconds, not a hang; within the
    URL's own connect_timeout where it sets one."""
    space = write_space(tmp_path / "silent.yaml", {"model.lr": LR}, {"trainer.max_epochs": 5})
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes connections; nobody reads or writes
        port = silent.getsockname()[1]
        url = f"postgresql+psycopg://ll:pw-never-shown@127.0.0.1:{port}/db{query}"
        start = time.monotonic()
        with pytest.raises(SystemExit) as stop:
            main(["--space", str(space), "--storage", url, "--root", str(tmp_path)])
        took = time.monotonic() - start
    out, err = capsys.readouterr()
    assert stop.value.code == 1
    assert err.splitlines()[-1].startswith(f"linlight: error: cannot open the storage postgresql+psycopg://ll:***@"
                                           f"127.0.0.1:{port}/db{query}: "), err
    assert "timeout" in err.splitlines()[-1].lower(), err
    assert "pw-never-shown" not in out + err
    if query:  # the URL's 2 s, not linlight's 10 (the check of the space comes first: a second or so)
        assert took < 10, took
    else:
        assert took < 60, took  # the default connect timeout is 10 s; without one, libpq waits for minutes


# the PyPI package that installs each driver module
PROVIDES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pymysql": "PyMySQL"}


@pytest.mark.parametrize("url", [
    "postgresql://ll:pw-never-shown@127.0.0.1:1/db",  # SQLAlchemy's default driver: psycopg 3 (2.1), psycopg2 (2.0)
    "postgresql+psycopg2://ll:pw-never-shown@127.0.0.1:1/db",
    "mysql+pymysql://ll:pw-never-shown@127.0.0.1:1/db",
])
def test_a_missing_driver_is_named_with_its_package(url, tmp_path, capsys, monkeypatch):
    from sqlalchemy.engine import make_url

    driver = make_url(url).get_dialect().driver
    package = PROVIDES[driver]
    monkeypatch.setitem(sys.modules, {"psycopg2": "psycopg2", "pymysql": "pymysql"}.get(driver, driver), None)
    space = write_space(tmp_path / "driver.yaml", {"model.lr": LR}, {"trainer.max_epochs": 5})
    with pytest.raises(SystemExit):
        main(["--space", str(space), "--storage", url, "--root", str(tmp_path)])
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and f"its driver, {driver}, is not installed" in err
    assert err.rstrip().endswith(f"pip install '{package}'"), err
    assert "pw-never-shown" not in out + err and "ll:***@" in err


def test_a_refused_connection_names_the_storage_without_its_password(tmp_path, capsys):
    space = write_space(tmp_path / "refused.yaml", {"model.lr": LR}, {"trainer.max_epochs": 5})
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SystemExit):
        main(["--space", str(space), "--storage", f"postgresql+psycopg://ll:pw-never-shown@127.0.0.1:{port}/db",
              "--root", str(tmp_path)])
    out, err = capsys.readouterr()
    assert err.count("\n") == 1, err
    assert err.startswith(f"linlight: error: cannot open the storage postgresql+psycopg://ll:***@127.0.0.1:{port}/db: ")
    assert "refused" in err.lower() and "pw-never-shown" not in out + err


def test_the_readme_names_the_driver_of_the_url_it_shows():
    """The README's storage URL is one whose driver the README names, and that driver opens it (above)."""
    from sqlalchemy.engine import make_url

    text = (REPO / "README.md").read_text()
    driver = make_url(f"{readme_storage()}://u@h/d").get_dialect().driver
    assert driver == "psycopg" and "pip install 'psycopg[binary]'" in text



def test_every_storage_call_of_the_installed_optuna_is_made_again_or_once_on_purpose():
    """linlight.sweep.storage repeats the RDBStorage calls that Optuna's _CachedStorage makes (which ones depends on
    Optuna's version) after a broken connection; a call it does not know would silently lose that: fail here."""
    import inspect

    from optuna.storages import _cached_storage

    from linlight.sweep.storage import NOT_REPEATED, REPEATED, RidingStorage

    called = set(re.findall(r"_backend\.(\w+)\(", inspect.getsource(_cached_storage)))
    assert {"get_trial", "set_trial_state_values"} <= called  # (the source is Optuna's, read as it is)
    unknown = sorted(called - set(REPEATED) - set(NOT_REPEATED))
    assert not unknown, f"optuna {optuna.__version__}'s storage calls {unknown}: add them to linlight/sweep/storage.py"
    for name in called & set(REPEATED):
        assert getattr(RidingStorage, name) is not getattr(optuna.storages.RDBStorage, name), name


def test_without_postgresql_these_tests_skip_or_fail_as_ci_asks(monkeypatch):
    """No PostgreSQL here: skipped with the reason; with LINLIGHT_TEST_POSTGRES=required (as .ci/run sets), failed."""
    monkeypatch.setattr(postgres, "programs", lambda: None)
    for required, outcome in ((False, pytest.skip.Exception), (True, pytest.fail.Exception)):
        monkeypatch.setattr(postgres, "REQUIRED", required)
        with pytest.raises(outcome, match="initdb and pg_ctl are not installed"):
            postgres.start_server()
    assert "LINLIGHT_TEST_POSTGRES=required" in (REPO / ".ci" / "run").read_text()
